"""Sampling speed of the stock env runner and the vectorised sampler, side by side.

``python -m experiments.sampler_speed [--env joint_v0] [--copies 16 64] [--calls 2]
[--json FILE] [--profile]``

For each number of copies N, one process builds RLlib's ``MultiAgentEnvRunner`` and
:class:`algospace.training.sampler.VectorEnvRunner` from the same config (sampling in
this process, ``batch_mode="complete_episodes"``, the env's default episode length, the
synthetic market), gives them the same weights, warms each up with one ``sample()`` and
then times ``--calls`` further calls of each, alternating. A call returns N complete
episodes; the env steps counted are the ones the runner reports as sampled
(``num_env_steps_sampled``). Torch runs on one intra-op thread in both (the actors are
tiny; on a busy machine a second thread only adds waits). Sampling only: no learner.
``--profile`` also prints where the vectorised sampler's time goes: the share of its
timed calls spent in the actors' forwards, the env's step, building the episodes and
drawing the random numbers (cProfile, which slows Python-heavy parts more than the
rest: read the shares, not the times).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from typing import Any, cast


def _steps(runner: Any) -> int:
    """Env steps the runner reported since its last ``get_metrics()``."""
    value = runner.get_metrics()["num_env_steps_sampled"]
    return int(value.peek() if hasattr(value, "peek") else value)


PROFILED = {"forwards": ("actor_np.py", "explore"),
            "MC statistics": ("actor_np.py", "mc_stats_of"), "env step": ("vector.py", "step"),
            "episodes": ("sampler_episodes.py", "episodes"),
            "random draws": ("sampling_draws.py", "draw_exploration")}
"""The parts ``--profile`` reports: (file, function) whose cumulative time it shows."""


def _shares(stats: Any) -> dict[str, float]:
    """Each :data:`PROFILED` part's share of the profiled ``sample()`` calls' time."""
    total = sum(entry[3] for key, entry in stats.stats.items()
                if key[0].endswith("training/sampler.py") and key[2] == "sample")
    out = {}
    for name, (file, func) in PROFILED.items():
        spent = sum(entry[3] for key, entry in stats.stats.items()
                    if key[0].endswith(file) and key[2] == func)
        out[name] = round(spent / total, 3) if total else 0.0
    return out


def measure(env: str, copies: int, calls: int, cache_dir: str,
            profile: bool = False) -> dict[str, Any]:
    """Env steps per second of both runners for ``copies`` copies."""
    import torch
    from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner

    from algospace.config import DataConfig, EnvConfig
    from algospace.data.synthetic import SyntheticConfig
    from algospace.training.builder import TrainConfig, build_ppo_config
    from algospace.training.sampler import VectorEnvRunner

    torch.set_num_threads(1)
    data = DataConfig(synthetic=SyntheticConfig(days=30, seed=7, signal=0.0),
                      cache_dir=cache_dir)
    cfg = TrainConfig(env=cast(Any, env), env_config=EnvConfig(data=data), num_env_runners=0,
                      num_envs_per_env_runner=copies, seed=1, out_dir=cache_dir)
    config = build_ppo_config(cfg)
    runners = {"stock": MultiAgentEnvRunner(config=config),
               "vector": VectorEnvRunner(config=config)}
    runners["vector"].module.set_state(runners["stock"].module.get_state())
    seconds = dict.fromkeys(runners, 0.0)
    steps = dict.fromkeys(runners, 0)
    for runner in runners.values():  # warm-up
        runner.sample()
        _steps(runner)
    for _ in range(calls):
        for name, runner in runners.items():
            start = time.perf_counter()
            runner.sample()
            seconds[name] += time.perf_counter() - start
            steps[name] += _steps(runner)
    rate = {name: steps[name] / seconds[name] for name in runners}
    shares: dict[str, Any] = {}
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(calls):
            runners["vector"].sample()
        profiler.disable()
        shares = {"vector_time_shares": _shares(pstats.Stats(profiler))}
    return {**shares, "env": env, "copies": copies, "calls": calls,
            "stock_env_steps": steps["stock"], "vector_env_steps": steps["vector"],
            "stock_env_steps_per_s": round(rate["stock"], 1),
            "vector_env_steps_per_s": round(rate["vector"], 1),
            "speedup": round(rate["vector"] / rate["stock"], 2)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="joint_v0",
                        choices=["strategic_v0", "tactical_v0", "joint_v0", "single_v0"])
    parser.add_argument("--copies", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--calls", type=int, default=2)
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--profile", action="store_true",
                        help="also report where the vectorised sampler's time goes")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as cache:
        results = [measure(args.env, n, args.calls, cache, args.profile)
                   for n in args.copies]
    for row in results:
        print(json.dumps(row))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
