"""A restored run holds what the checkpoint was taken with: the env runners' weights and
every random state the run draws from (:mod:`algospace.training.rng`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def _runner_snapshot() -> Any:
    """A function of an env runner: (its module weights, its random state incl. its envs',
    its actors' own sampling generators read from the modules) as digests.

    Made here as a closure so that Ray ships it by value: a module-level test function
    is shipped by reference, the env runner's process cannot import ``tests``, and
    ``foreach_env_runner`` drops the error and returns nothing (the test once compared two
    empty lists)."""

    def snapshot(runner: Any) -> tuple[str, str, str]:
        import hashlib
        import json

        import torch

        from algospace.training.rng import runner_state

        digest = hashlib.sha256()
        for module_id, params in sorted(runner.module.get_state().items()):
            for name, value in sorted(params.items()):
                digest.update(f"{module_id}/{name}".encode())
                digest.update(torch.as_tensor(value).numpy().tobytes())
        state = json.dumps(runner_state(runner), sort_keys=True)  # numbers only
        sampling = hashlib.sha256()
        for module_id in sorted(runner.module.keys()):
            module = runner.module[module_id]
            for generator in (module.sampling_rng(), module.mc_rng()):
                sampling.update(json.dumps(generator.bit_generator.state,
                                           sort_keys=True).encode())
        return (digest.hexdigest(), hashlib.sha256(state.encode()).hexdigest(),
                sampling.hexdigest())

    return snapshot


@pytest.mark.train
def test_restored_env_runners_continue_from_the_checkpoint(
        ray_session: Any, env_data: Any, tmp_path: Path) -> None:
    """After a restore, the remote env runners hold the checkpoint's weights (RLlib sends them
    without waiting) and the random state they had when it was taken, their envs' and their
    actors' own sampling generators too (without those, the resumed run drew other actions
    from its first iteration on)."""
    from algospace.training.builder import build_ppo_config
    from algospace.training.rng import restore_rng, save_rng
    from tests.test_checkpoints import tiny

    cfg = tiny(env_data, tmp_path, num_env_runners=1, num_envs_per_env_runner=2)
    first = build_ppo_config(cfg).build_algo()
    try:
        first.train()
        first.save_to_path(str(tmp_path / "ckpt"))
        save_rng(first, tmp_path / "ckpt")
        taken = first.env_runner_group.foreach_env_runner(_runner_snapshot(),
                                                          local_env_runner=False)
        assert len(taken) == 1  # the one remote runner answered
    finally:
        first.stop()
    second = build_ppo_config(cfg).build_algo()
    try:
        second.restore_from_path(str(tmp_path / "ckpt"))
        assert restore_rng(second, tmp_path / "ckpt")
        assert second.env_runner_group.foreach_env_runner(
            _runner_snapshot(), local_env_runner=False) == taken
    finally:
        second.stop()
