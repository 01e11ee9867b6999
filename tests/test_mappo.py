"""MAPPO on RLlib: joint MC features per row, end-to-end training on every env."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from algospace.config import DataConfig
from algospace.errors import ConfigError
from algospace.models.mc_dropout import joint_features
from algospace.training.builder import PPOSettings, TrainConfig, build_ppo_config
from algospace.training.mappo import _features
from algospace.training.train import train
from envs.core.config import EnvConfig


def test_joint_features_use_each_agents_latest_decision() -> None:
    strategic_rows = np.array([10, 16])  # decisions at rows 10 and 16
    tactical_rows = np.arange(10, 20)
    rng = np.random.default_rng(0)
    s_stats = rng.uniform(0, 1, (2, 6)).astype(np.float32)
    t_stats = rng.uniform(0, 1, (10, 6)).astype(np.float32)
    timeline = {"mlmi": (strategic_rows, s_stats), "fvg": (tactical_rows, t_stats)}
    rows = np.array([10, 15, 16, 19])
    got = _features(rows, timeline, 0.65)
    strategic = torch.as_tensor(s_stats[[0, 0, 1, 1]])[:, None, :]
    tactical = torch.as_tensor(t_stats[[0, 5, 6, 9]])[:, None, :]
    np.testing.assert_allclose(got, joint_features(strategic, tactical).numpy(), rtol=1e-6)


def small(env: str, data: DataConfig, tmp_path: Path, **kwargs: Any) -> TrainConfig:
    """A tiny sampling-in-the-driver config."""
    steps = 24 if env == "strategic_v0" else 72
    return TrainConfig(env=env, env_config=EnvConfig(data=data, episode_steps=steps),
                       iterations=2, num_env_runners=0, num_envs_per_env_runner=1,
                       ppo=PPOSettings(train_batch_size=150, minibatch_size=75,
                                       num_epochs=2),
                       out_dir=str(tmp_path), **kwargs)


@pytest.mark.parametrize("env", ["strategic_v0", "tactical_v0", "joint_v0"])
def test_mappo_trains_each_env_and_updates_the_critic(env: str, env_data: DataConfig,
                                                      tmp_path: Path, ray_session: Any) -> None:
    algo = build_ppo_config(small(env, env_data, tmp_path)).build_algo()
    try:
        critic = algo.learner_group._learner.module["critic"]
        before = {k: v.clone() for k, v in critic.state_dict().items()}
        for _ in range(2):
            result = algo.train()
        learners = {k: v for k, v in result["learners"].items()
                    if k not in ("__all_modules__", "critic")}
        assert learners and all(np.isfinite(float(v["critic_loss"])) and
                                np.isfinite(float(v["policy_loss"])) for v in learners.values())
        after = critic.state_dict()
        assert all(not torch.equal(before[k], after[k]) for k in before)
        assert float(critic.value_count) > 0
    finally:
        algo.stop()


def test_ippo_trains_joint(env_data: DataConfig, tmp_path: Path, ray_session: Any) -> None:
    result = train(small("joint_v0", env_data, tmp_path, algorithm="ippo"), log=lambda _: None)
    assert result.iterations == 2 and result.env_steps > 0
    assert all(np.isfinite(row["vf_loss"]) for row in result.history)
    assert Path(result.checkpoint).is_dir()


def test_minibatch_larger_than_batch_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"ppo\.minibatch_size \(500\) is larger"):
        TrainConfig(ppo=PPOSettings(train_batch_size=100, minibatch_size=500))
