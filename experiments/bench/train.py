"""``bench train``: training throughput of joint_v0, ours against plain RLlib PPO.

Both runs train ``joint_v0`` on the built-in synthetic market with the same
PPO hyperparameters (train batch, minibatch, epochs, learning rate: our
defaults) for a few timed iterations after one warm-up iteration:

- **ours**: the default :class:`TrainConfig` — MAPPO (shared 127-input
  critic, MC-dropout actors with 8 passes per sampled action), one env runner
  with four envs (batched inference), complete episodes;
- **baseline**: plain RLlib PPO as it comes — no env runner (sampling in the
  driver), one env, RLlib's default PPO module per agent (flattened Dict
  observation, default MLP and value head), no centralized critic.

Figures: env steps/s and agent steps/s over whole iterations, and the share of
an iteration spent sampling vs learning (RLlib's timers). The target is ours
≥ 1.5 × the baseline's env steps/s. ``--gpu`` puts our learner on one GPU
(``num_gpus_per_learner=1``) and adds the figures of that run.
"""

from __future__ import annotations

import time
from typing import Any

from algospace.training.builder import TrainConfig, build_ppo_config, rllib_env_config

TARGET_RATIO = 1.5
"""Ours must sample and learn at least this many times as many env steps per second."""


def _timed(algo: Any, iterations: int) -> dict[str, float]:
    """Train ``iterations`` iterations after one warm-up; steps, seconds and timers."""
    algo.train()
    env_steps = agent_steps = 0.0
    wall = sampling = learning = 0.0
    for _ in range(iterations):
        started = time.perf_counter()
        result = algo.train()
        wall += time.perf_counter() - started
        runners = result["env_runners"]
        env_steps += float(runners["num_env_steps_sampled"])
        agent_steps += float(sum(runners["num_agent_steps_sampled"].values()))
        timers = result.get("timers", {})
        sampling += float(timers.get("env_runner_sampling_timer", float("nan")))
        learning += float(timers.get("learner_update_timer", float("nan")))
    return {"env_steps_per_s": env_steps / wall, "agent_steps_per_s": agent_steps / wall,
            "seconds_per_iteration": wall / iterations,
            "sampling_share": sampling / wall, "learning_share": learning / wall,
            "env_steps_per_iteration": env_steps / iterations}


def ours(iterations: int, gpus: float = 0.0) -> dict[str, float]:
    """Our default MAPPO training of joint_v0."""
    cfg = TrainConfig(env="joint_v0", num_gpus_per_learner=gpus)
    algo = build_ppo_config(cfg).build_algo()
    try:
        return _timed(algo, iterations)
    finally:
        algo.stop()


def baseline_config() -> Any:
    """Plain RLlib PPO on joint_v0: 0 env runners, 1 env, default modules, our PPO settings."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.connectors.env_to_module import FlattenObservations

    from envs.rllib import make_env, register_envs

    register_envs()
    cfg = TrainConfig(env="joint_v0")
    env_config = rllib_env_config(cfg)
    agents = list(make_env("joint_v0", env_config).possible_agents)
    p = cfg.ppo
    return (
        PPOConfig()
        .environment("joint_v0", env_config=env_config)
        .env_runners(num_env_runners=0, num_envs_per_env_runner=1,
                     env_to_module_connector=lambda env, spaces, device:
                     FlattenObservations(multi_agent=True))
        .multi_agent(policies=set(agents), policy_mapping_fn=lambda agent, *a, **k: agent)
        .training(lr=p.lr, gamma=p.gamma, lambda_=p.lambda_, clip_param=p.clip_param,
                  entropy_coeff=p.entropy_coeff, num_epochs=p.num_epochs,
                  train_batch_size_per_learner=p.train_batch_size,
                  minibatch_size=p.minibatch_size)
        .debugging(seed=cfg.seed)
    )


def baseline(iterations: int) -> dict[str, float]:
    """Plain RLlib PPO's throughput on joint_v0."""
    algo = baseline_config().build_algo()
    try:
        return _timed(algo, iterations)
    finally:
        algo.stop()


def run(iterations: int = 3, gpu: bool = False) -> dict[str, Any]:
    """Both runs (and ours on a GPU learner if asked); figures with the ratio to target."""
    import ray

    ray.init(address="local", include_dashboard=False, log_to_driver=False,
             ignore_reinit_error=True)
    try:
        figures: dict[str, Any] = {"env": "joint_v0", "timed_iterations": iterations}
        base = baseline(iterations)
        mine = ours(iterations)
        figures.update({f"ours_{k}": v for k, v in mine.items()})
        figures.update({f"baseline_{k}": v for k, v in base.items()})
        ratio = mine["env_steps_per_s"] / base["env_steps_per_s"]
        figures.update({"ratio_env_steps_per_s": ratio, "target_ratio": TARGET_RATIO,
                        "ratio_vs_target": ratio / TARGET_RATIO,
                        "pass_target": ratio >= TARGET_RATIO})
        if gpu:
            on_gpu = ours(iterations, gpus=1.0)
            figures.update({f"ours_gpu_{k}": v for k, v in on_gpu.items()})
        return figures
    finally:
        ray.shutdown()
