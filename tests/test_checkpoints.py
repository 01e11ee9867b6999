"""Freezing agents, loading modules from earlier checkpoints, and resuming a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from algospace.config import DataConfig, EnvConfig, PPOSettings
from algospace.errors import CheckpointError, ConfigError
from algospace.evaluation.backtest import greedy_policy
from algospace.training.builder import ModuleSource, TrainConfig, build_ppo_config
from algospace.training.checkpoint import load_actors
from algospace.training.train import actor_modules, load_modules, train
from envs.strategic_v0 import parallel_env


def tiny(data: DataConfig, out: Path, **kwargs: Any) -> TrainConfig:
    """A two-iteration strategic run sampling in the driver."""
    settings: dict[str, Any] = {
        "env": "strategic_v0", "env_config": EnvConfig(data=data, episode_steps=24),
        "iterations": 2, "num_env_runners": 0, "num_envs_per_env_runner": 1,
        "ppo": PPOSettings(train_batch_size=100, minibatch_size=50, num_epochs=2),
        "out_dir": str(out), "checkpoint_every": 0}
    settings.update(kwargs)
    return TrainConfig(**settings)


def weights(module: Any) -> dict[str, torch.Tensor]:
    """A detached copy of a module's parameters and buffers."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Bit-identical state dicts."""
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def trained(env_data: DataConfig, tmp_path_factory: pytest.TempPathFactory,
            ray_session: Any) -> str:
    """The checkpoint of a short strategic run (seed 1)."""
    out = tmp_path_factory.mktemp("trained")
    return train(tiny(env_data, out, seed=1), log=lambda _: None).checkpoint


def test_frozen_agents_stay_bit_identical(env_data: DataConfig, tmp_path: Path,
                                          ray_session: Any) -> None:
    algo = build_ppo_config(tiny(env_data, tmp_path, trainable=("mlmi",))).build_algo()
    try:
        before = {m: weights(mod) for m, mod in actor_modules(algo).items()}
        critic = weights(algo.learner_group._learner.module["critic"])
        for _ in range(2):
            algo.train()
        after = {m: weights(mod) for m, mod in actor_modules(algo).items()}
        assert not same(before["mlmi"], after["mlmi"])
        for frozen in ("nwrqk", "portfolio", "regime"):
            assert same(before[frozen], after[frozen]), frozen
        assert not same(critic, weights(algo.learner_group._learner.module["critic"]))
    finally:
        algo.stop()


def test_unknown_trainable_agent_is_rejected(env_data: DataConfig, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'fvg' is not an actor module of strategic_v0"):
        build_ppo_config(tiny(env_data, tmp_path, trainable=("fvg",)))


def test_loading_a_subset_of_modules(trained: str, env_data: DataConfig, tmp_path: Path,
                                     ray_session: Any) -> None:
    saved = {m: weights(mod) for m, mod in load_actors(trained).items()}
    algo = build_ppo_config(tiny(env_data, tmp_path, seed=2)).build_algo()
    try:
        own = {m: weights(mod) for m, mod in actor_modules(algo).items()}
        assert not same(own["nwrqk"], saved["nwrqk"])  # different seed, different init
        load_modules(algo, (ModuleSource(trained, ("nwrqk", "regime")),), log=lambda _: None)
        now = {m: weights(mod) for m, mod in actor_modules(algo).items()}
        assert same(now["nwrqk"], saved["nwrqk"]) and same(now["regime"], saved["regime"])
        assert same(now["mlmi"], own["mlmi"]) and same(now["portfolio"], own["portfolio"])
        # The sampling copy got the loaded weights too.
        runner = algo.env_runner.module["nwrqk"]
        assert same({k: v for k, v in weights(runner).items() if k in saved["nwrqk"]},
                    saved["nwrqk"])
    finally:
        algo.stop()


def test_loading_errors_name_the_problem(trained: str, env_data: DataConfig, tmp_path: Path,
                                         ray_session: Any) -> None:
    algo = build_ppo_config(tiny(env_data, tmp_path)).build_algo()
    try:
        with pytest.raises(CheckpointError, match="does not exist"):
            load_modules(algo, (ModuleSource(str(tmp_path / "nope")),))
        with pytest.raises(CheckpointError, match="is not an algorithm checkpoint"):
            load_modules(algo, (ModuleSource(str(tmp_path)),))
        with pytest.raises(CheckpointError, match="init_from: 'fvg' is not a module of this run"):
            load_modules(algo, (ModuleSource(trained, ("fvg",)),))
    finally:
        algo.stop()


def test_resume_continues_the_count_and_acts_identically(trained: str, env_data: DataConfig,
                                                         tmp_path: Path,
                                                         ray_session: Any) -> None:
    env = parallel_env(data=env_data, episode_steps=24, split="val")
    obs, _ = env.reset(seed=0)
    saved = load_actors(trained)
    expected = greedy_policy(saved)(obs, True)
    logits = {a: saved[a].logits(torch.as_tensor(o["local"][None])).detach()
              for a, o in obs.items()}

    resumed = train(tiny(env_data, tmp_path, seed=1, iterations=3, resume_from=trained),
                    log=lambda _: None)
    assert resumed.iterations == 1  # iterations 1-2 came from the checkpoint
    assert resumed.history[0]["iteration"] == 3
    first_steps = train(tiny(env_data, tmp_path / "again", seed=1, iterations=1),
                        log=lambda _: None).env_steps
    assert resumed.env_steps > 2 * first_steps  # the lifetime count went on

    from ray.rllib.algorithms.algorithm import Algorithm

    algo = Algorithm.from_checkpoint(trained)
    try:
        restored = actor_modules(algo)
        assert greedy_policy(restored)(obs, True) == expected
        for agent, value in logits.items():
            got = restored[agent].logits(torch.as_tensor(obs[agent]["local"][None])).detach()
            np.testing.assert_array_equal(got.numpy(), value.numpy())
    finally:
        algo.stop()


def test_a_missing_resume_checkpoint_fails_before_training(env_data: DataConfig,
                                                          tmp_path: Path,
                                                          ray_session: Any) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        train(tiny(env_data, tmp_path, resume_from=str(tmp_path / "missing")),
              log=lambda _: None)
    assert not (tmp_path / "strategic_v0-mappo-seed0").exists()


def test_wanted_modules_is_the_one_check_of_modules_to_load() -> None:
    """The run's hand-off check and training's init_from share it (errors name ``where``)."""
    from algospace.errors import ConfigError
    from algospace.training.checkpoint import wanted_modules

    ours, present = ["mlmi", "nwrqk", "critic"], ["mlmi", "critic", "fvg"]
    assert wanted_modules("ck", None, ours, present, where="w") == ["mlmi", "critic"]
    assert wanted_modules("ck", ("critic",), ours, present, where="w") == ["critic"]
    with pytest.raises(CheckpointError, match="w: 'fvg' is not a module of this run"):
        wanted_modules("ck", ("fvg",), ours, present, where="w")
    with pytest.raises(ConfigError, match="w: checkpoint ck has no module 'nwrqk'"):
        wanted_modules("ck", ("nwrqk",), ours, present, where="w", error=ConfigError)
    with pytest.raises(CheckpointError, match="none of this run's modules"):
        wanted_modules("ck", None, ours, ["fvg"], where="w")
