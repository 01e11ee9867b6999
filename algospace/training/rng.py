"""The random-number state a checkpoint lacks, so that a resumed run samples as the run did.

RLlib's checkpoint holds the weights, optimiser state, connector state and counters, but not
the random generators of the processes that draw random numbers during training:

- each env runner's global generators (Python ``random``, numpy, torch: the actions it
  samples) and its environments' own generator (the episodes' start positions; the
  adapter seeds an env once, :mod:`envs.rllib`, so that generator runs on across
  iterations);
- the trial process's (where the learner runs with ``resources.num_learners: 0``): the
  minibatch shuffles (:mod:`algospace.training.minibatch`, numpy's global generator).

Nor are the env runners' weights restored in step: ``Algorithm.restore_from_path`` sends
them the restored weights without waiting, and the first resumed iteration can sample with
the weights the runner was built with. :func:`save_rng` keeps each runner's module state
too, and :func:`restore_rng` sets it, waiting for it.

A run built anew seeds them all from the run's seed, so without this file a resumed run
would repeat the random draws of iteration 1 instead of continuing those of the run.
(With ``batch_mode="complete_episodes"`` no episode runs across an iteration boundary, so
there is no episode in progress to carry.)
:func:`save_rng` writes the states into a checkpoint folder; :func:`restore_rng` puts them
back after ``Algorithm.restore_from_path``. Any env-runner class inherits this: the states
are read and set through the public ``EnvRunnerGroup.foreach_env_runner``.
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any

RNG_FILE = "algospace_rng.pkl"
"""The random state of a checkpoint: ``{"trial": state, "env_runners": {index: state}}``."""


def rng_state() -> dict[str, Any]:
    """This process's global generators: Python ``random``, numpy, torch (CPU, and each
    CUDA device where CUDA is in use)."""
    import numpy as np
    import torch

    state: dict[str, Any] = {"random": random.getstate(), "numpy": np.random.get_state(),
                             "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Put back what :func:`rng_state` returned (in this process)."""
    import numpy as np
    import torch

    random.setstate(state["random"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def runner_envs(runner: Any) -> list[Any]:
    """The envs of an env runner that keep a random state of their own (those with
    ``get_rng_state``/``set_rng_state``, :class:`envs.rllib.RLlibEnv`): its ``env``, or
    each of a vector env's ``envs``, unwrapped."""
    env = getattr(runner, "env", None)
    found = list(getattr(env, "envs", None) or [env])
    found = [getattr(e, "unwrapped", e) for e in found if e is not None]
    return [e for e in found if hasattr(e, "get_rng_state") and hasattr(e, "set_rng_state")]


def runner_state(runner: Any) -> dict[str, Any]:
    """An env runner's random state: its process's generators and its envs' own."""
    return {**rng_state(), "envs": [e.get_rng_state() for e in runner_envs(runner)]}


def set_runner_state(runner: Any, state: dict[str, Any]) -> None:
    """Put back what :func:`runner_state` returned (same number of envs)."""
    set_rng_state(state)
    envs = runner_envs(runner)
    if len(envs) == len(state["envs"]):
        for env, env_state in zip(envs, state["envs"], strict=True):
            env.set_rng_state(env_state)


def _runner_state(runner: Any) -> tuple[int, dict[str, Any]]:
    return int(runner.worker_index), {**runner_state(runner), "runner": runner.get_state()}


def save_rng(algo: Any, folder: str | Path) -> None:
    """Write the trial process's and every remote env runner's random state into the
    checkpoint ``folder`` (:data:`RNG_FILE`)."""
    runners = algo.env_runner_group.foreach_env_runner(_runner_state, local_env_runner=False)
    state = {"trial": rng_state(), "env_runners": dict(runners)}
    (Path(folder) / RNG_FILE).write_bytes(pickle.dumps(state))


def restore_rng(algo: Any, folder: str | Path) -> bool:
    """Put back the random state :func:`save_rng` wrote into ``folder``; False (nothing
    changed) for a checkpoint without one (written before it existed)."""
    path = Path(folder) / RNG_FILE
    if not path.is_file():
        return False
    state = pickle.loads(path.read_bytes())
    runners: dict[int, dict[str, Any]] = state["env_runners"]

    def put(runner: Any) -> None:
        state = runners.get(int(runner.worker_index))
        if state is not None:
            runner.set_state(state["runner"])
            set_runner_state(runner, state)

    algo.env_runner_group.foreach_env_runner(put, local_env_runner=False)
    set_rng_state(state["trial"])
    return True
