"""``bench train``: training throughput of joint_v0, ours against RLlib's runner at its best.

One run, one machine, the same PPO settings on every side (our defaults: train batch,
minibatch, epochs, learning rate; our modules, learner and MAPPO critic):

- **ours**: our learner with the vectorised sampler (``resources.sampler: vector``,
  :class:`algospace.training.sampler.VectorEnvRunner`), sampling in the driver
  (``num_env_runners`` 0) with ``--copies`` env copies (default 16: one sample() call
  gives 16 complete episodes of 276 steps, 4,416 env steps, the train batch of 4,000
  rounded up to whole episodes, as the stock runner rounds it);
- **stock**: RLlib's ``MultiAgentEnvRunner`` with the same modules and learner, at the
  best point of the grid ``num_env_runners`` {0, 1} × ``num_envs_per_env_runner``
  {1, 4, 8, 16}. Every grid point is built as for training and timed sampling alone
  (one warm-up ``sample()``, then ``sample()`` calls until at least 2,000 env steps came
  back, episodes returned to the driver included, and at least 1.5 s passed); whole
  iterations then run at the best point. Ours' sampling alone is timed the same way;
- **env alone**: one ``joint_v0`` stepping with pre-drawn random actions in this process
  (as ``bench env`` steps it, not pinned), and the vector env of ``--copies`` copies.

Figures: env and agent steps per second for sampling alone and for whole iterations
(one warm-up iteration, then ``--timed-iterations``), the sampling / learning split of
an iteration (RLlib's timers), and the ratios ours / stock and ours / env alone. Targets
(issue 22): sampling ≥ 10× and whole iterations ≥ 3× the stock runner's best.
The learner runs in this process on one torch thread (:data:`LEARNER_THREADS`), on both
sides. ``--gpu`` puts our learner on one GPU (``num_gpus_per_learner`` 1) and fails at once
where torch sees none.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace
from typing import Any

from algospace.errors import ConfigError

SAMPLING_TARGET = 10.0
"""Ours must sample at least this many times as many env steps per second as stock."""
TRAIN_TARGET = 3.0
"""... and train (whole iterations) at least this many times as many."""
GRID_RUNNERS = (0, 1)
GRID_ENVS = (1, 4, 8, 16)
DEFAULT_COPIES = 16
LEARNER_THREADS = 1
"""Torch intra-op threads of this process, where the learner (and the samplers with
``num_env_runners`` 0) run, on both sides: the count Ray gives an actor that reserves one
CPU (``OMP_NUM_THREADS``). With both cores, on a busy 2-core machine, one learner update
of joint_v0 took 58 s instead of 3.6 s (the second thread's waits)."""


@dataclass(frozen=True)
class Setting:
    """What one bench run trains: the env, its market, batch sizes and the grid."""

    copies: int = DEFAULT_COPIES
    runners: tuple[int, ...] = GRID_RUNNERS
    envs: tuple[int, ...] = GRID_ENVS
    iterations: int = 3
    grid_steps: int = 2000  # env steps timed per grid point (at least one sample() call)
    sampling_seconds: float = 1.5  # ... and at least this long (one call of ours: 0.25 s)
    env_seconds: float = 2.0
    episode_steps: int | None = None  # None: the env's default (276)
    days: int | None = None  # None: the default synthetic market
    train_batch: int | None = None  # None: our default (4000); smoke runs only
    minibatch: int | None = None


SMOKE = Setting(copies=2, runners=(0,), envs=(1, 2), iterations=1, grid_steps=24,
                sampling_seconds=0.0, env_seconds=0.2,
                episode_steps=12, days=20, train_batch=24, minibatch=12)
"""``--quick``: a run of every part on a tiny market and batch; its figures are no result."""


def train_config(setting: Setting, *, sampler: str, runners: int, envs: int,
                 gpus: float = 0.0) -> Any:
    """Our default :class:`TrainConfig` of joint_v0 with this sampler and layout."""
    from algospace.config import DataConfig, EnvConfig, PPOSettings
    from algospace.data.synthetic import SyntheticConfig
    from algospace.training.builder import TrainConfig

    env_config = EnvConfig()
    if setting.days is not None or setting.episode_steps is not None:
        data = DataConfig() if setting.days is None else DataConfig(
            synthetic=SyntheticConfig(days=setting.days))
        env_config = EnvConfig(data=data, episode_steps=setting.episode_steps)
    ppo = PPOSettings()
    if setting.train_batch is not None:
        ppo = replace(ppo, train_batch_size=setting.train_batch,
                      minibatch_size=setting.minibatch or setting.train_batch)
    return TrainConfig(env="joint_v0", env_config=env_config, ppo=ppo, sampler=sampler,
                       num_env_runners=runners, num_envs_per_env_runner=envs,
                       num_gpus_per_learner=gpus)


def _build(cfg: Any) -> Any:
    from algospace.training.builder import build_ppo_config

    return build_ppo_config(cfg).build_algo()


def _sample_once(algo: Any) -> list[Any]:
    """One ``sample()`` of every env runner (the driver's when there is none)."""
    group = algo.env_runner_group
    if group.num_remote_env_runners() == 0:
        return list(algo.env_runner.sample())
    out: list[Any] = []
    for episodes in group.foreach_env_runner(lambda r: r.sample(), local_env_runner=False):
        out.extend(episodes)
    return out


def time_sampling(algo: Any, batch: int, seconds: float = 0.0) -> dict[str, float]:
    """Sampling alone: one warm-up ``sample()``, then ``sample()`` until ``batch`` env
    steps came back (at least once) and ``seconds`` passed (one call of a fast sampler is
    too short to time on a shared machine); env and agent steps per second (none for 0)."""
    if batch <= 0:
        return {}
    _sample_once(algo)
    env_steps = agent_steps = 0
    start = time.perf_counter()
    wall = 0.0
    while env_steps < batch or not env_steps or wall < seconds:
        for episode in _sample_once(algo):
            env_steps += episode.env_steps()
            agent_steps += episode.agent_steps()
        wall = time.perf_counter() - start
    return {"env_steps_per_s": env_steps / wall, "agent_steps_per_s": agent_steps / wall,
            "env_steps": float(env_steps), "seconds": wall}


def time_iterations(algo: Any, iterations: int) -> dict[str, float]:
    """Whole iterations after one warm-up: steps per second and the sampling / learning
    split (RLlib's ``env_runner_sampling_timer`` and ``learner_update_timer``)."""
    algo.train()
    env_steps = agent_steps = wall = sampling = learning = 0.0
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
            "env_steps_per_iteration": env_steps / iterations,
            "sampling_share": sampling / wall, "learning_share": learning / wall}


def measure(cfg: Any, iterations: int, steps: int,
            seconds: float = 0.0) -> tuple[dict[str, float], dict[str, float]]:
    """Sampling alone (``steps`` env steps and ``seconds`` at least), then whole
    iterations, of one config (one algorithm)."""
    algo = _build(cfg)
    try:
        sampling = time_sampling(algo, steps, seconds)
        return sampling, time_iterations(algo, iterations) if iterations else {}
    finally:
        algo.stop()


def env_alone(setting: Setting, seconds: float) -> dict[str, float]:
    """joint_v0 alone with pre-drawn random actions: one env, and the vector env of
    ``setting.copies`` copies (env steps per second)."""
    from envs.core.vector import VectorEnv
    from envs.registry import make_parallel_env
    from experiments.bench.env import (
        random_action_arrays,
        random_actions,
        run_actions,
        run_vector,
    )

    cfg = train_config(setting, sampler="stock", runners=0, envs=1)
    env = make_parallel_env("joint_v0", cfg.env_config)
    env.reset(seed=0)
    steps, _, wall, _ = run_actions(env, random_actions(env, 2000), seconds)
    venv = VectorEnv("joint_v0", setting.copies, cfg.env_config)
    venv.reset(seed=0)
    vsteps, _, vwall, _ = run_vector(venv, random_action_arrays(venv, 200), seconds)
    return {"env_steps_per_s": steps / wall, "vector_env_steps_per_s": vsteps / vwall}


def run(iterations: int = 3, gpu: bool = False, copies: int = DEFAULT_COPIES,
        quick: bool = False) -> dict[str, Any]:
    """The three sides and the ratios (see the module docstring)."""
    if gpu:
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("--gpu: torch sees no CUDA GPU on this machine (torch.cuda."
                              "is_available() is False); run without --gpu, or on a GPU box")
    if copies < 1:
        raise ConfigError(f"--copies must be >= 1, got {copies}")
    setting = SMOKE if quick else Setting(iterations=iterations, copies=copies)
    import ray
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(LEARNER_THREADS)
    ray.init(address="local", include_dashboard=False, log_to_driver=False,
             ignore_reinit_error=True)
    try:
        return {**_run(setting, gpu), "driver_torch_threads": LEARNER_THREADS}
    finally:
        ray.shutdown()
        torch.set_num_threads(threads)


def _run(setting: Setting, gpu: bool) -> dict[str, Any]:
    """The bench's measurements in order: env alone, the stock grid, stock's best, ours."""
    figures: dict[str, Any] = {"env": "joint_v0", "timed_iterations": setting.iterations}
    alone = env_alone(setting, setting.env_seconds)
    _progress(f"env alone: {alone['env_steps_per_s']:,.0f} env steps/s")
    grid: dict[tuple[int, int], dict[str, float]] = {}
    for runners in setting.runners:
        for envs in setting.envs:
            cfg = train_config(setting, sampler="stock", runners=runners, envs=envs)
            grid[(runners, envs)] = measure(cfg, 0, setting.grid_steps,
                                            setting.sampling_seconds)[0]
            _progress(f"stock, {runners} env runner(s) x {envs} env(s): sampling "
                      f"{grid[(runners, envs)]['env_steps_per_s']:,.0f} env steps/s")
            figures[f"stock_grid_r{runners}_e{envs}_env_steps_per_s"] = \
                grid[(runners, envs)]["env_steps_per_s"]
    best = max(grid, key=lambda k: grid[k]["env_steps_per_s"])
    stock_cfg = train_config(setting, sampler="stock", runners=best[0], envs=best[1])
    _, stock_train = measure(stock_cfg, setting.iterations, 0)
    _progress(f"stock at its best: {stock_train['env_steps_per_s']:,.0f} env steps/s training")
    ours_cfg = train_config(setting, sampler="vector", runners=0, envs=setting.copies,
                            gpus=1.0 if gpu else 0.0)
    ours_sampling, ours_train = measure(ours_cfg, setting.iterations, setting.grid_steps,
                                        setting.sampling_seconds)
    stock_sampling = grid[best]
    _progress(f"ours: sampling {ours_sampling['env_steps_per_s']:,.0f}, training "
              f"{ours_train['env_steps_per_s']:,.0f} env steps/s")
    figures.update({
        "train_batch_env_steps": ours_cfg.ppo.train_batch_size,
        "ours_config": f"num_env_runners=0, num_envs_per_env_runner={setting.copies}, "
                       f"sampler=vector{', num_gpus_per_learner=1' if gpu else ''}",
        "ours_sampling_env_steps_per_s": ours_sampling["env_steps_per_s"],
        "ours_sampling_agent_steps_per_s": ours_sampling["agent_steps_per_s"],
        "ours_train_env_steps_per_s": ours_train["env_steps_per_s"],
        "ours_train_agent_steps_per_s": ours_train["agent_steps_per_s"],
        "ours_env_steps_per_iteration": ours_train["env_steps_per_iteration"],
        "ours_seconds_per_iteration": ours_train["seconds_per_iteration"],
        "ours_sampling_share": ours_train["sampling_share"],
        "ours_learning_share": ours_train["learning_share"],
        "stock_best_config": f"num_env_runners={best[0]}, num_envs_per_env_runner={best[1]}",
        "stock_sampling_env_steps_per_s": stock_sampling["env_steps_per_s"],
        "stock_sampling_agent_steps_per_s": stock_sampling["agent_steps_per_s"],
        "stock_train_env_steps_per_s": stock_train["env_steps_per_s"],
        "stock_train_agent_steps_per_s": stock_train["agent_steps_per_s"],
        "stock_env_steps_per_iteration": stock_train["env_steps_per_iteration"],
        "stock_seconds_per_iteration": stock_train["seconds_per_iteration"],
        "stock_sampling_share": stock_train["sampling_share"],
        "stock_learning_share": stock_train["learning_share"],
        "env_alone_env_steps_per_s": alone["env_steps_per_s"],
        f"env_alone_vector_{setting.copies}_env_steps_per_s": alone["vector_env_steps_per_s"],
    })
    sampling_ratio = ours_sampling["env_steps_per_s"] / stock_sampling["env_steps_per_s"]
    train_ratio = ours_train["env_steps_per_s"] / stock_train["env_steps_per_s"]
    figures.update({
        "sampling_speedup_vs_stock": sampling_ratio,
        "train_speedup_vs_stock": train_ratio,
        "ours_sampling_share_of_env_alone": ours_sampling["env_steps_per_s"]
        / alone["env_steps_per_s"],
        "sampling_target": SAMPLING_TARGET, "train_target": TRAIN_TARGET,
        "pass_sampling_target": sampling_ratio >= SAMPLING_TARGET,
        "pass_train_target": train_ratio >= TRAIN_TARGET,
    })
    return figures


def _progress(line: str) -> None:
    """A progress line on stderr (the figures' table comes at the end, on stdout)."""
    print(f"[bench train] {line}", file=sys.stderr, flush=True)
