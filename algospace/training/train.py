"""``train(config)``: build the PPO/MAPPO algorithm for one env, run it, checkpoint it."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from algospace.training.builder import TrainConfig, build_ppo_config


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced."""

    checkpoint: str
    """Directory of the final checkpoint (``Algorithm.restore_from_path`` reads it)."""
    iterations: int
    """Iterations run."""
    env_steps: int
    """Env steps sampled in all."""
    history: list[dict[str, float]] = field(default_factory=list)
    """Per iteration: env steps, mean episode return, mean losses."""


def summarise(result: dict[str, Any]) -> dict[str, float]:
    """The figures of one RLlib result that a progress line and the history keep."""
    runners = result.get("env_runners", {})  # may be missing after a runner restart
    learners = {k: v for k, v in result.get("learners", {}).items()
                if k != "__all_modules__" and isinstance(v, dict)}

    def mean(key: str) -> float:
        values = [float(v[key]) for v in learners.values() if key in v]
        return sum(values) / len(values) if values else math.nan

    return {
        "iteration": float(result.get("training_iteration", math.nan)),
        "env_steps": float(runners.get("num_env_steps_sampled_lifetime", math.nan)),
        "episode_return_mean": float(runners.get("episode_return_mean", math.nan)),
        "policy_loss": mean("policy_loss"),
        "critic_loss": mean("critic_loss"),
        "vf_loss": mean("vf_loss"),
        "entropy": mean("entropy"),
    }


def train(cfg: TrainConfig, *, log: Callable[[str], None] = print) -> TrainResult:
    """Train ``cfg.env`` for ``cfg.iterations`` iterations and save a checkpoint."""
    algo = build_ppo_config(cfg).build_algo()
    history: list[dict[str, float]] = []
    try:
        for i in range(cfg.iterations):
            row = summarise(algo.train())
            history.append(row)
            log(f"[train] {i + 1}/{cfg.iterations} env steps {row['env_steps']:,.0f} "
                f"return {row['episode_return_mean']:.3f} policy loss "
                f"{row['policy_loss']:.4f} critic loss {row['critic_loss']:.4f}")
        out = Path(cfg.out_dir).resolve() / f"{cfg.env}-{cfg.algorithm}-seed{cfg.seed}"
        checkpoint = str(algo.save_to_path(str(out / "checkpoint")))
    finally:
        algo.stop()
    steps = int(history[-1]["env_steps"]) if history else 0
    return TrainResult(checkpoint, len(history), steps, history)
