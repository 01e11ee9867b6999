"""The one home of what the run needs from Ray's internals (Ray 2.60.0 only).

Ray has no public switch for these, so each is checked against the pinned Ray version
(:data:`RAY_VERSION`, as in pyproject.toml) before use, and each changes Ray only while a
``with`` block runs and is undone after it:

- :func:`resumable_tune_state`: Tune saves its experiment state after every trial
  checkpoint, and copies the state's files into the experiment directory whole (a copy
  to a temporary name, then a rename; the state after the trials' result rows), so
  ``--resume`` always finds a state that names an existing checkpoint, and every result
  row up to it;
- :func:`loopback_node`: a local Ray started in the block uses 127.0.0.1 as its node
  address (Ray 2.60 binds every interface otherwise);
- :func:`keyed_wandb_callback`: Ray's W&B callback with the API key passed to each
  logging actor as an argument instead of in its runtime_env (which Ray logs);
- :class:`OwnMinibatches`: a Learner mixin whose class supplies its own minibatch
  iterator (RLlib's iterator is fixed inside ``Learner``; this one replaces it for the
  classes that inherit the mixin, and nothing else);
- :class:`FiniteOnce`: a Learner mixin that checks an update's gradients for NaN/inf
  once, not once per tensor and again per optimizer (two host synchronisations per
  parameter tensor on a GPU);
- :func:`filled_episode`: a ``MultiAgentEpisode`` given whole ``SingleAgentEpisode`` objects
  (RLlib builds one only step by step, or from per-step dicts of every agent), for the
  vectorised sampler (:mod:`algospace.training.sampler`);
- :func:`runner_fields`: an env runner's seed, torch device and weights version, which
  ``MultiAgentEnvRunner`` keeps in private fields and a subclass's ``sample()`` needs;
- :func:`custom_runner_connectors`: whether a config sets its own env-to-module or
  module-to-env connectors (RLlib keeps them in private fields), which that sampler
  cannot run.

It also names the internal loggers of two messages :mod:`algospace.tune.console` filters
from the console (:data:`TOKEN_AUTH_LOGGER`, :data:`DEPRECATION_LOGGER`); on another Ray
the filter just stops matching.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

RAY_VERSION = "2.60.0"
"""The Ray version whose internals this module knows (pinned in pyproject.toml)."""
CLUSTER_FLAG = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
"""Ray's switch for multi-node clusters; off, a node's address is 127.0.0.1."""
TOKEN_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"
"""The logger of Ray's token-authentication notice at each local start."""
DEPRECATION_LOGGER = "ray._common.deprecation"
"""The logger of Ray's ``DeprecationWarning: … has been deprecated`` messages."""


def check_ray_version(what: str) -> None:
    """Fail clearly when the installed Ray is not the one :data:`RAY_VERSION` names."""
    import ray

    from algospace.errors import AlgoSpaceError

    if ray.__version__ != RAY_VERSION:
        raise AlgoSpaceError(
            f"{what} relies on internals of Ray {RAY_VERSION}, but Ray {ray.__version__} is "
            f"installed; install ray[rllib,default]=={RAY_VERSION} (pyproject.toml), or port "
            "algospace/ray_compat.py to the new version")


@contextlib.contextmanager
def resumable_tune_state() -> Iterator[None]:
    """While the block runs: Tune's saved experiment state follows the checkpoints, whole.

    Tune 2.60 saves the state at most every 10 s, or once a trial has checkpointed
    ``checkpoint.keep`` times; in between, the saved state names an older checkpoint, which
    Tune may already have deleted: a driver killed then (SIGKILL, a lost node) resumes
    iterations behind, or not at all ("does not exist on storage"). Here it is saved after
    every trial checkpoint. And Tune copies the state into the experiment directory in
    place: a driver killed mid-copy leaves a truncated file, and Tune then silently
    restarts the experiment from scratch. Here each file is copied to a temporary name and
    renamed, the experiment's state after the trials' result rows
    (:func:`copy_whole_files`).
    """
    check_ray_version("saving Tune's experiment state after every checkpoint")
    from ray.train._internal import storage as train_storage
    from ray.tune.execution.experiment_state import _ExperimentCheckpointManager as Manager

    original = Manager.on_trial_checkpoint
    upload = train_storage._upload_to_fs_path

    def on_trial_checkpoint(self: Any, trial: Any) -> None:
        original(self, trial)
        self._should_force_sync_up = True

    def upload_whole_files(local_path: str, fs: Any, fs_path: str,
                           exclude: list[str] | None = None) -> None:
        import pyarrow.fs

        if exclude or not isinstance(fs, pyarrow.fs.LocalFileSystem) \
                or not os.path.isdir(local_path):
            return upload(local_path, fs, fs_path, exclude)
        copy_whole_files(local_path, fs_path)
        return None

    Manager.on_trial_checkpoint = on_trial_checkpoint
    train_storage._upload_to_fs_path = upload_whole_files
    try:
        yield
    finally:
        Manager.on_trial_checkpoint = original
        train_storage._upload_to_fs_path = upload


def copy_whole_files(local_path: str, fs_path: str) -> None:
    """Copy Tune's driver folder ``local_path`` into the experiment folder ``fs_path``.

    Each file is copied to a temporary name and renamed, so no file is ever half-written.
    The trials' folders (their ``result.json`` rows) go first and the experiment's own
    files (``experiment_state-*.json``, the searcher's state) last: a driver killed
    mid-copy leaves a state that names no checkpoint whose result row is not on disk yet.
    In Tune's order (the state first) such a kill lost that row for good: the resumed run
    went on from the checkpoint after it.
    """
    walked = [(folder, sorted(files)) for folder, _, files in os.walk(local_path)]
    walked.sort(key=lambda entry: os.path.relpath(entry[0], local_path) == ".")  # top last
    for folder, files in walked:
        target = Path(fs_path) / os.path.relpath(folder, local_path)
        target.mkdir(parents=True, exist_ok=True)
        for name in files:
            if name.startswith(".") and "-tmp-" in name:  # Tune's own temporary file
                continue
            tmp = target / f".{name}.algospace-sync"
            try:
                shutil.copyfile(os.path.join(folder, name), tmp)
            except FileNotFoundError:  # replaced meanwhile (Tune writes via a temp name)
                continue
            os.replace(tmp, target / name)


@contextlib.contextmanager
def loopback_node() -> Iterator[None]:
    """While the block runs, a Ray started by this process uses 127.0.0.1 as its address.

    Ray reads the flag at import time (and its node processes inherit it from the
    environment), so it is set both in the environment and in the imported module; the
    node processes started in the block keep it, the driver's settings are restored after.
    """
    check_ray_version("keeping the local Ray on 127.0.0.1")
    from ray._private import ray_constants

    before_env = os.environ.get(CLUSTER_FLAG)
    before = ray_constants.ENABLE_RAY_CLUSTER
    os.environ[CLUSTER_FLAG] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before
        if before_env is None:
            os.environ.pop(CLUSTER_FLAG, None)
        else:
            os.environ[CLUSTER_FLAG] = before_env


def keyed_wandb_callback(settings: dict[str, str], **kwargs: Any) -> Any:
    """Ray's ``WandbLoggerCallback`` that keeps the API key out of runtime_env.

    Ray 2.60's callback starts one logging actor per trial and hands it ``WANDB_API_KEY``
    in the actor's ``runtime_env``, which Ray's runtime-env agent writes, in plain text, to
    ``runtime_env_agent.log``. This one starts the same actors with a runtime_env holding
    only ``settings`` (the non-secret ``WANDB_*`` variables) and gives the key to the actor
    as a constructor argument, which travels in Ray's task data and is not logged.
    ``kwargs`` go to ``WandbLoggerCallback``.
    """
    check_ray_version("the W&B callback")
    from ray.air.integrations.wandb import (
        WANDB_ENV_VAR,
        WandbLoggerCallback,
        _force_on_current_node,
        _WandbLoggingActor,
    )
    from ray.util.queue import Queue

    class KeyedLoggingActor(_WandbLoggingActor):
        """Ray's W&B logging actor, given the API key as an argument."""

        def __init__(self, *args: Any, api_key: str | None = None, **kw: Any) -> None:
            if api_key:
                os.environ[WANDB_ENV_VAR] = api_key
            super().__init__(*args, **kw)

    class KeyedWandbCallback(WandbLoggerCallback):
        """``WandbLoggerCallback`` that passes the key as an actor argument."""

        _logger_actor_cls = KeyedLoggingActor
        _remote_logger_class: Any

        def _start_logging_actor(self, trial: Any, exclude_results: list[str],
                                 **wandb_init_kwargs: Any) -> None:
            """Ray 2.60's method, less the key in runtime_env, plus the key as an argument."""
            if trial in self._trial_logging_futures:  # a restarted trial keeps its actor
                return
            if not self._remote_logger_class:
                import ray

                self._remote_logger_class = ray.remote(
                    num_cpus=0, **_force_on_current_node(),
                    runtime_env={"env_vars": settings},
                    max_restarts=-1, max_task_retries=-1)(self._logger_actor_cls)
            self._trial_queues[trial] = Queue(actor_options={
                "num_cpus": 0, **_force_on_current_node(), "max_restarts": -1,
                "max_task_retries": -1})
            self._trial_logging_actors[trial] = self._remote_logger_class.remote(
                logdir=trial.local_path, queue=self._trial_queues[trial],
                exclude=exclude_results, to_config=self.AUTO_CONFIG_KEYS,
                api_key=os.environ.get(WANDB_ENV_VAR), **wandb_init_kwargs)
            future = self._trial_logging_actors[trial].run.remote()
            self._trial_logging_futures[trial] = future
            self._logging_future_to_trial[future] = trial

    return KeyedWandbCallback(**kwargs)


class OwnMinibatches:
    """Learner mixin: the update's minibatches come from ``self.minibatches(...)``.

    RLlib 2.60's ``Learner.update`` builds the train batch and then always cuts it with
    ``MiniBatchCyclicIterator`` (equal row counts per module, cycling the smaller modules;
    see :mod:`algospace.training.minibatch`). A learner class that inherits this mixin
    (before RLlib's learner class) and defines
    ``minibatches(batch, *, num_epochs, minibatch_size, shuffle, num_total_minibatches)``
    gets RLlib's whole, filtered train batch and returns the iterator the update loops
    over. Offline data iterators (``data_iterators``) keep RLlib's own path.
    """

    def minibatches(self, batch: Any, *, num_epochs: int, minibatch_size: int | None,
                    shuffle: bool, num_total_minibatches: int) -> Any:
        """The iterator of minibatches (a ``MultiAgentBatch`` each) over ``batch``."""
        raise NotImplementedError

    def _create_iterator_if_necessary(self, *, training_data: Any,
                                      num_total_minibatches: int = 0, num_epochs: int = 1,
                                      minibatch_size: int | None = None,
                                      shuffle_batch_per_epoch: bool = False,
                                      **kwargs: Any) -> Any:
        """Ray 2.60's method: the whole batch from it, the minibatches from the class."""
        check_ray_version("the per-module minibatches of the MAPPO/IPPO learner")
        parent: Any = super()
        if training_data.data_iterators:
            return parent._create_iterator_if_necessary(
                training_data=training_data, num_total_minibatches=num_total_minibatches,
                num_epochs=num_epochs, minibatch_size=minibatch_size,
                shuffle_batch_per_epoch=shuffle_batch_per_epoch, **kwargs)
        whole = parent._create_iterator_if_necessary(
            training_data=training_data, num_total_minibatches=0, num_epochs=1,
            minibatch_size=None, shuffle_batch_per_epoch=False, **kwargs)
        if isinstance(whole, dict):  # no module to update
            return whole
        batch = next(iter(whole))
        return self.minibatches(batch, num_epochs=num_epochs, minibatch_size=minibatch_size,
                                shuffle=shuffle_batch_per_epoch,
                                num_total_minibatches=num_total_minibatches)


class FiniteOnce:
    """Learner mixin: RLlib 2.60's ``TorchLearner.apply_gradients`` with one finiteness
    check per update.

    RLlib checks every gradient tensor with ``torch.isfinite(grad).all()`` (zeroing and
    warning where one is not finite), then each optimizer's tensors again before its step.
    Here the sum of all the update's gradients is checked once: a finite sum means every
    element is finite, and then RLlib's checks would pass everything, so the grads are set
    and every optimizer steps, as RLlib would. A sum that is not finite (a NaN or inf
    somewhere, or an overflow) takes RLlib's own path, which zeroes exactly the tensors
    that need it. So do loss scaling, learning-rate schedules and
    ``torch_skip_nan_gradients``.
    """

    def apply_gradients(self, gradients_dict: dict[Any, Any]) -> None:
        """Ray 2.60's method, checking the gradients once (see the class docstring)."""
        check_ray_version("the learner's single gradient check")
        import torch

        learner: Any = self
        parent: Any = super()
        grads = [g for g in gradients_dict.values() if g is not None]
        if (learner.config.torch_skip_nan_gradients or learner._grad_scalers is not None
                or learner._lr_scheduler_classes is not None or len(grads) < len(
                    gradients_dict) or not bool(torch.isfinite(
                        torch.cat([g.reshape(-1) for g in grads]).sum()))):
            return parent.apply_gradients(gradients_dict)
        for ref, grad in gradients_dict.items():
            learner._params[ref].grad = grad
        for module_id, names in learner._module_optimizers.items():
            for name in names:
                learner.get_optimizer(module_id, name).step()
        return None


def filled_episode(episode: Any, agent_episodes: dict[str, Any], *, env_t: int,
                   agent_env_steps: dict[str, Any], terminated: bool, truncated: bool,
                   start_time: float, end_time: float) -> Any:
    """``episode`` (a new, empty ``MultiAgentEpisode``) holding ``agent_episodes`` whole.

    Sets what ``MultiAgentEpisode.add_env_reset``/``add_env_step`` would have set after
    ``env_t`` steps: the agent episodes, the env clock, each agent's env-step → agent-step
    map (``agent_env_steps[agent]``: the env steps at which the agent observed, ascending;
    the other steps get RLlib's skip tag), the done flags and the wall-clock times that
    ``get_duration_s`` reads. Ray 2.60's field names.
    """
    check_ray_version("building whole multi-agent episodes")
    import numpy as np
    from ray.rllib.env.utils.infinite_lookback_buffer import InfiniteLookbackBuffer

    episode.agent_episodes = dict(agent_episodes)
    episode.env_t_started = 0
    episode.env_t = int(env_t)
    for agent, steps in agent_env_steps.items():
        mapping = np.full(int(env_t) + 1, episode.SKIP_ENV_TS_TAG, dtype=object)
        mapping[np.asarray(steps, np.int64)] = np.arange(len(steps))
        episode.env_t_to_agent_t[agent] = InfiniteLookbackBuffer(data=mapping.tolist(),
                                                                 lookback=0)
        episode.agent_t_started[agent] = 0
    episode.is_terminated = bool(terminated)
    episode.is_truncated = bool(truncated)
    episode._start_time = float(start_time)
    episode._last_step_time = float(end_time)
    return episode


def custom_runner_connectors(config: Any) -> list[str]:
    """The env-runner connector pipelines an ``AlgorithmConfig`` customises (Ray 2.60 keeps
    the user's connector factories in private fields): ``env_to_module`` and/or
    ``module_to_env``, also when a default pipeline is switched off."""
    check_ray_version("checking an env runner's connector settings")
    found = []
    if getattr(config, "_env_to_module_connector", None) is not None \
            or not config.add_default_connectors_to_env_to_module_pipeline:
        found.append("env_to_module")
    if getattr(config, "_module_to_env_connector", None) is not None \
            or not config.add_default_connectors_to_module_to_env_pipeline:
        found.append("module_to_env")
    return found


def runner_fields(runner: Any) -> tuple[int | None, Any, int]:
    """An env runner's seed (the run's seed + its index; None: unseeded), the torch device
    its modules run on and the version of the weights it holds (Ray 2.60's
    ``_seed``, ``_device`` and ``_weights_seq_no``)."""
    check_ray_version("reading an env runner's seed, device and weights version")
    return runner._seed, runner._device, int(runner._weights_seq_no)
