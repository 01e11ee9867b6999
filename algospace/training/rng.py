"""The random-number state a checkpoint lacks, so that a resumed run samples as the run did.

RLlib's checkpoint holds the weights, optimiser state, connector state and counters, but not
the random generators of the processes that draw random numbers during training:

- each env runner's global generators (Python ``random``, numpy, torch), its modules'
  own sampling and MC generators (the actions and dropout masks they draw,
  :mod:`algospace.models.sampling_draws`) and its environments' own generator (the episodes' start
  positions; the adapter seeds an env once, :mod:`envs.rllib`, so that generator runs on
  across iterations) — the local env runner's too (it samples when
  ``resources.num_env_runners`` is 0);
- the trial process's (where the learner runs with ``resources.num_learners: 0``): the
  minibatch shuffles (:mod:`algospace.training.minibatch`, numpy's global generator).

Nor are the env runners' weights restored in step: ``Algorithm.restore_from_path`` sends
them the restored weights without waiting, and the first resumed iteration can sample with
the weights the runner was built with. :func:`restore_rng` sends the learner's weights
again and waits for every runner to hold them.

The states are written as JSON (numbers only; nothing of a checkpoint is unpickled, see
``tests/test_safe_defaults.py``).

A run built anew seeds them all from the run's seed, so without this file a resumed run
would repeat the random draws of iteration 1 instead of continuing those of the run.
(With ``batch_mode="complete_episodes"`` no episode runs across an iteration boundary, so
there is no episode in progress to carry.)
:func:`save_rng` writes the states into a checkpoint folder; :func:`restore_rng` puts them
back after ``Algorithm.restore_from_path``. Any env-runner class inherits this: the states
are read and set through the public ``EnvRunnerGroup.foreach_env_runner``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

RNG_FILE = "algospace_rng.json"
"""The random state of a checkpoint: ``{"trial": state, "env_runners": {index: state}}``."""


def rng_state() -> dict[str, Any]:
    """This process's global generators as JSON-ready numbers: Python ``random``, numpy,
    torch (CPU, and each CUDA device where CUDA is in use)."""
    import numpy as np
    import torch

    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "random": [version, list(internal), gauss],
        "numpy": [name, np.asarray(keys).tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state().tolist()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Put back what :func:`rng_state` returned (in this process)."""
    import numpy as np
    import torch

    version, internal, gauss = state["random"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8)
                                      for s in state["cuda"]])


def runner_envs(runner: Any) -> list[Any]:
    """The envs of an env runner that keep a random state of their own (those with
    ``get_rng_state``/``set_rng_state``, :class:`envs.rllib.RLlibEnv`): its ``env``, or
    each of a vector env's ``envs``, unwrapped; a runner that steps envs of its own
    (:class:`algospace.training.sampler.VectorEnvRunner`) names them in ``rng_envs()``."""
    own = getattr(runner, "rng_envs", None)
    if callable(own):
        return list(own())
    env = getattr(runner, "env", None)
    found = list(getattr(env, "envs", None) or [env])
    found = [getattr(e, "unwrapped", e) for e in found if e is not None]
    return [e for e in found if hasattr(e, "get_rng_state") and hasattr(e, "set_rng_state")]


def module_generators(runner: Any, which: str = "sampling_rng") -> dict[str, Any]:
    """The generators of an env runner's modules, by module id: each actor draws its
    actions and its consistent-dropout masks from a NumPy generator of its own
    (``sampling_rng``) and the masks of its MC-dropout passes from a second one
    (``mc_rng``; :mod:`algospace.models.sampling_draws`), both made on first use from a
    seed fixed at construction."""
    modules = getattr(runner, "module", None)
    if modules is None:
        return {}
    found = {}
    for module_id in sorted(modules.keys()):
        module = modules[module_id]
        if hasattr(module, which):
            found[str(module_id)] = getattr(module, which)()
    return found


def runner_state(runner: Any) -> dict[str, Any]:
    """An env runner's random state: its process's generators, its envs' own and its
    modules' sampling and MC generators."""
    return {**rng_state(), "envs": [e.get_rng_state() for e in runner_envs(runner)],
            **{key: {module_id: generator.bit_generator.state
                     for module_id, generator in module_generators(runner, which).items()}
               for key, which in _MODULE_GENERATORS.items()}}


def set_runner_state(runner: Any, state: dict[str, Any]) -> None:
    """Put back what :func:`runner_state` returned (same number of envs)."""
    set_rng_state(state)
    envs = runner_envs(runner)
    if len(envs) == len(state["envs"]):
        for env, env_state in zip(envs, state["envs"], strict=True):
            env.set_rng_state(env_state)
    for key, which in _MODULE_GENERATORS.items():
        generators = module_generators(runner, which)
        for module_id, generator_state in state.get(key, {}).items():
            # a checkpoint of a version that sampled from torch generators holds byte lists
            # (one written before the MC generator, no "mc_modules"): those generators
            # draw on from the module's seed
            if module_id in generators and isinstance(generator_state, dict):
                generators[module_id].bit_generator.state = generator_state


_MODULE_GENERATORS = {"modules": "sampling_rng", "mc_modules": "mc_rng"}
"""Key in a runner's state -> the module method that gives the generator."""


def _runner_state(runner: Any) -> tuple[int, dict[str, Any]]:
    return int(runner.worker_index), runner_state(runner)


def save_rng(algo: Any, folder: str | Path) -> None:
    """Write the trial process's and every remote env runner's random state into the
    checkpoint ``folder`` (:data:`RNG_FILE`)."""
    runners = algo.env_runner_group.foreach_env_runner(_runner_state, local_env_runner=False)
    state: dict[str, Any] = {"trial": rng_state(),
                             "env_runners": {str(i): s for i, s in runners}}
    local = getattr(algo.env_runner_group, "local_env_runner", None)
    if local is not None:
        state["local_env_runner"] = runner_state(local)
    (Path(folder) / RNG_FILE).write_text(json.dumps(state))


def restore_rng(algo: Any, folder: str | Path) -> bool:
    """Put back the random state :func:`save_rng` wrote into ``folder`` and wait until every
    env runner holds the restored weights; False (nothing changed) for a checkpoint without
    one (written before it existed)."""
    path = Path(folder) / RNG_FILE
    if not path.is_file():
        return False
    state = json.loads(path.read_text())
    runners: dict[str, dict[str, Any]] = state["env_runners"]
    algo.env_runner_group.sync_weights(from_worker_or_learner_group=algo.learner_group,
                                       inference_only=True, timeout_seconds=None)

    def put(runner: Any) -> None:
        state = runners.get(str(int(runner.worker_index)))
        if state is not None:
            set_runner_state(runner, state)

    algo.env_runner_group.foreach_env_runner(put, local_env_runner=False)
    local = getattr(algo.env_runner_group, "local_env_runner", None)
    if local is not None and "local_env_runner" in state:
        set_runner_state(local, state["local_env_runner"])
    set_rng_state(state["trial"])  # last: the local runner shares the trial's process
    return True
