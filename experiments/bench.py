"""Benchmarks: ``python -m experiments.bench NAME [--json FILE]``.

Each benchmark prints a table of figures (units in the names) with the
machine they were measured on, and with ``--json`` writes the same figures
as one flat JSON object. Measurements that need a clean process (peak
memory) run in a fresh Python subprocess.

Benchmarks so far:

- ``data``: five years of 5-minute bars from the synthetic market (≈350,000
  rows) written to CSV, then load + validate + resample + align (time and
  peak memory), all features and both matrices (time and peak memory), RDE
  inference over every 30-minute bar, a cold ``prepare`` and a cached
  ``prepare``. Targets: load/validate/resample < 15 s and < 1.5 GB; features
  < 60 s and < 3 GB; RDE inference < 30 s; cached < 1 s.
- ``env``: strategic_v0, tactical_v0 and joint_v0 on the built-in synthetic
  market. Env steps per second with uniformly random actions (drawn before
  the clock starts; resets at episode ends are timed), in a child pinned to
  one core, and the same × the number of agents (agent steps, the plain ×8
  for joint_v0 although its strategic agents decide every 6th step); memory
  of an extra env (current RSS after 20 more instances, each reset and
  stepped, minus before, / 20). Targets: joint_v0 ≥ 20,000 env steps/s
  (160,000 agent steps/s), strategic_v0 and tactical_v0 ≥ 30,000; an extra
  env < 10 MB.
- ``learn``: MAPPO on ``strategic_v0``, three seeds, evaluated on a fresh long
  market against the strategic oracle (experiments/learn.py); headline: expected
  capture, target 0.25, and more net P&L than every baseline; training within
  10 minutes per seed.
- ``train``: training throughput on ``joint_v0``, ours against plain RLlib
  PPO (experiments/throughput.py); target: ×1.5 env steps/s.
- ``compare``: MAPPO vs IPPO on ``joint_v0``, same market, iterations and
  seeds (experiments/learn.py).
- ``market``: the default synthetic market's three causal oracles (strategic,
  tactical, joint) per split and over the whole market: expected and realised
  net daily dollar Sharpe and net P&L, joint over the better single layer
  (experiments/market.py); ``--days`` (default 250) and ``--seed`` set the market.
- ``latency``: per-bar decision latency on one CPU thread (experiments/latency.py):
  p50/p99 of the tactical and strategic steps (4 agents each), without and with
  the 50-pass MC consensus and the gates, eager and TorchScript-exported actors
  side by side; and the stream's feature update per 5-minute bar. Targets: p99
  tactical < 1 ms, strategic < 5 ms including the MC passes.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from algospace.errors import AlgoSpaceError, ConfigError

Figures = dict[str, Any]


def machine() -> Figures:
    """The machine the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    except ImportError:
        gpu = "unknown (torch not installed)"
    return {"machine_cpu": cpu, "machine_cores": os.cpu_count(), "machine_gpu": gpu,
            "python": platform.python_version()}


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB (VmHWM on Linux: not inherited via fork)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return usage / 1024 if sys.platform != "darwin" else usage / 2**20


def rss_mb(field: str = "VmRSS") -> float:
    """Current (not peak) resident memory of this process in MB: ``VmRSS``, or ``RssAnon``
    (private memory only, without mapped files) from /proc/self/status; NaN elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _child(task: str, args: list[str]) -> Figures:
    """Run one measurement in a fresh interpreter and return its JSON figures."""
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.bench", "_child", task, *args],
        capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark step {task} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def child_load(csv: str) -> Figures:
    """Load + validate + resample + align one CSV; report time and peak memory."""
    from algospace.data.loader import load_bars
    from algospace.data.resample import align_index, resample

    baseline = peak_rss_mb()
    start = time.perf_counter()
    bars = load_bars(csv)
    loaded = time.perf_counter()
    strategic = resample(bars, 30)
    align_index(bars, strategic)
    done = time.perf_counter()
    return {"rows": len(bars), "load_validate_s": loaded - start,
            "resample_align_s": done - loaded, "load_validate_resample_s": done - start,
            "peak_rss_mb": peak_rss_mb(), "rss_after_imports_mb": baseline}


def child_features(csv: str) -> Figures:
    """Build all features and both matrices for one CSV; report time and peak memory."""
    from algospace.data.loader import load_bars
    from algospace.data.resample import align_index, resample
    from algospace.features.assembler import FeatureMatrices, MatrixAssembler
    from algospace.features.build import (
        STRATEGIC_FEATURES,
        TACTICAL_FEATURES,
        FeatureConfig,
        strategic_features,
        synergy_features,
        tactical_features,
    )

    bars = load_bars(csv)
    strategic = resample(bars, 30)
    index = align_index(bars, strategic)
    cfg = FeatureConfig()
    before = peak_rss_mb()
    start = time.perf_counter()
    strat = strategic_features(strategic, cfg)
    t_strat = time.perf_counter()
    tact = tactical_features(bars, cfg)
    t_tact = time.perf_counter()
    synergy_features(strat, tact, index, cfg)
    t_syn = time.perf_counter()
    matrices = FeatureMatrices(
        MatrixAssembler(strat[list(STRATEGIC_FEATURES)].to_numpy(), cfg.strategic_window),
        MatrixAssembler(tact[list(TACTICAL_FEATURES)].to_numpy(), cfg.tactical_window), index)
    usable = matrices.usable
    done = time.perf_counter()
    return {"strategic_rows": len(strategic), "strategic_s": t_strat - start,
            "tactical_s": t_tact - t_strat, "synergy_s": t_syn - t_tact,
            "matrices_s": done - t_syn, "total_s": done - start,
            "usable_steps": int(usable.sum()), "peak_rss_mb": peak_rss_mb(),
            "rss_before_features_mb": before}


def child_rde_encode(csv: str) -> Figures:
    """RDE inference (latent mu of every 30-minute bar) with the default model size.

    Timing only: the weights are freshly initialised (inference cost does not
    depend on their values); training quality is checked by the test suite.
    """
    import torch

    from algospace.config import RDEConfig
    from algospace.data.loader import load_bars
    from algospace.data.resample import resample
    from algospace.data.splits import Normalizer
    from algospace.regime.features import regime_features
    from algospace.regime.latents import encode_all
    from algospace.regime.train import build_model

    strategic = resample(load_bars(csv), 30)
    start = time.perf_counter()
    features = regime_features(strategic)
    featured = time.perf_counter()
    cfg = RDEConfig()
    torch.manual_seed(0)
    model = build_model(features.shape[1], cfg).eval()
    normaliser = Normalizer.fit(features, (0, len(features)))
    encoded = time.perf_counter()
    mu = encode_all(model, normaliser, features, cfg.window)
    done = time.perf_counter()
    return {"rows": len(features), "features_s": featured - start, "encode_s": done - encoded,
            "finite_rows": int(np.isfinite(mu).all(axis=1).sum()), "peak_rss_mb": peak_rss_mb(),
            "torch_threads": torch.get_num_threads()}


def child_prepare(csv: str, cache: str) -> Figures:
    """Time one ``prepare`` call (cold or cached) in a fresh process."""
    from algospace.config import load_data_config
    from algospace.features.pipeline import prepare

    cfg = load_data_config({"source": "csv", "path": csv, "cache_dir": cache})
    start = time.perf_counter()
    prepared = prepare(cfg)
    return {"seconds": time.perf_counter() - start, "cache_hit": prepared.cache_hit,
            "peak_rss_mb": peak_rss_mb()}


def bench_data(days: int) -> Figures:
    """The ``data`` benchmark (see module docstring)."""
    from algospace.data.synthetic import SyntheticConfig, generate, to_csv

    with tempfile.TemporaryDirectory() as tmp:
        csv = str(Path(tmp) / "ES - 5 min.csv")
        start = time.perf_counter()
        market = generate(SyntheticConfig(days=days, seed=0))
        generated = time.perf_counter()
        to_csv(market, csv)
        written = time.perf_counter()
        load = _child("load", [csv])
        feats = _child("features", [csv])
        rde = _child("rde_encode", [csv])
        cache = str(Path(tmp) / "cache")
        cold = _child("prepare", [csv, cache])
        warm = _child("prepare", [csv, cache])
        assert not cold["cache_hit"] and warm["cache_hit"]
        return {
            "data_rows": load["rows"],
            "data_csv_mb": Path(csv).stat().st_size / 2**20,
            "data_synth_generate_s": generated - start,
            "data_synth_write_csv_s": written - generated,
            "data_load_validate_s": load["load_validate_s"],
            "data_resample_align_s": load["resample_align_s"],
            "data_load_validate_resample_s": load["load_validate_resample_s"],
            "data_load_peak_rss_mb": load["peak_rss_mb"],
            "data_rss_after_imports_mb": load["rss_after_imports_mb"],
            "features_strategic_rows": feats["strategic_rows"],
            "features_strategic_s": feats["strategic_s"],
            "features_tactical_s": feats["tactical_s"],
            "features_synergy_s": feats["synergy_s"],
            "features_matrices_s": feats["matrices_s"],
            "features_total_s": feats["total_s"],
            "features_usable_steps": feats["usable_steps"],
            "features_peak_rss_mb": feats["peak_rss_mb"],
            "rde_rows": rde["rows"],
            "rde_features_s": rde["features_s"],
            "rde_encode_s": rde["encode_s"],
            "rde_encode_torch_threads": rde["torch_threads"],
            "rde_peak_rss_mb": rde["peak_rss_mb"],
            "data_prepare_cold_s": cold["seconds"],
            "data_prepare_cold_peak_rss_mb": cold["peak_rss_mb"],
            "data_prepare_cached_s": warm["seconds"],
            "data_target_load_s": 15.0,
            "data_target_load_ratio": load["load_validate_resample_s"] / 15.0,
            "data_target_peak_mb": 1536.0,
            "data_target_peak_ratio": load["peak_rss_mb"] / 1536.0,
            "data_target_cached_s": 1.0,
            "data_target_cached_ratio": warm["seconds"] / 1.0,
            "features_target_s": 60.0,
            "features_target_ratio": feats["total_s"] / 60.0,
            "features_target_peak_mb": 3072.0,
            "features_target_peak_ratio": feats["peak_rss_mb"] / 3072.0,
            "rde_target_encode_s": 30.0,
            "rde_target_encode_ratio": rde["encode_s"] / 30.0,
        }


ENV_NAMES = ("strategic_v0", "tactical_v0", "joint_v0")
ENV_TARGET_STEPS_PER_S = {"strategic_v0": 30_000.0, "tactical_v0": 30_000.0,
                          "joint_v0": 20_000.0}
ENV_TARGET_MB_PER_EXTRA = 10.0
ENV_EXTRA_INSTANCES = 20
ENV_WARMUP_STEPS = 2_000


def make_env(name: str, cache: str) -> Any:
    """One ``envs.<name>`` ParallelEnv on the built-in synthetic market, data in ``cache``."""
    from algospace.config import DataConfig

    return importlib.import_module(f"envs.{name}").parallel_env(data=DataConfig(cache_dir=cache))


def random_actions(env: Any, steps: int, seed: int = 0) -> list[dict[str, Any]]:
    """``steps`` ready-made action dicts (every possible agent), uniform over each action
    space: ``Discrete(n)`` → int in [0, n); ``MultiDiscrete`` → ndarray row below ``nvec``."""
    rng = np.random.default_rng(seed)
    columns: dict[str, list[Any]] = {}
    for agent in env.possible_agents:
        space = env.action_space(agent)
        nvec = getattr(space, "nvec", None)
        if nvec is not None:
            columns[agent] = list(rng.integers(0, nvec, size=(steps, len(nvec))))
        else:
            columns[agent] = rng.integers(0, int(space.n), size=steps).tolist()
    return [{agent: column[i] for agent, column in columns.items()} for i in range(steps)]


def run_actions(env: Any, actions: list[dict[str, Any]], seconds: float
                ) -> tuple[int, int, float, float]:
    """Step through ``actions`` (cycling, reset when an episode ends) for at least
    ``seconds``; returns steps, resets, wall seconds and CPU seconds."""
    step, reset = env.step, env.reset
    steps = resets = 0
    cpu, start = time.process_time(), time.perf_counter()
    while True:
        for action in actions:
            step(action)
            if not env.agents:
                reset()
                resets += 1
        steps += len(actions)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return steps, resets, elapsed, time.process_time() - cpu


def _pin_one_core() -> int:
    """Pin this process to one core (the lowest it may use); -1 where unsupported."""
    if not hasattr(os, "sched_setaffinity"):
        return -1
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return core


def child_env_prepare(cache: str) -> Figures:
    """Build the market arrays into ``cache`` (first env construction) and time it."""
    start = time.perf_counter()
    make_env("joint_v0", cache)
    return {"seconds": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb()}


def child_env_steps(name: str, cache: str, steps: str, seconds: str) -> Figures:
    """Single-core env steps per second of ``name`` with pre-drawn uniform random actions."""
    core = _pin_one_core()
    start = time.perf_counter()
    env = make_env(name, cache)
    built = time.perf_counter()
    actions = random_actions(env, int(steps))
    env.reset(seed=0)
    run_actions(env, actions[:ENV_WARMUP_STEPS], 0.0)
    env.reset(seed=0)
    done, resets, elapsed, cpu = run_actions(env, actions, float(seconds))
    return {"core": core, "agents": len(env.possible_agents), "construct_s": built - start,
            "steps": done, "resets": resets, "seconds": elapsed, "cpu_s": cpu}


def child_env_memory(name: str, cache: str) -> Figures:
    """Current RSS after one env, then after ``ENV_EXTRA_INSTANCES`` more (each reset and
    stepped 10 times so its buffers exist)."""
    importlib.import_module(f"envs.{name}")
    importlib.import_module("algospace.config")
    imported = rss_mb()
    envs = [make_env(name, cache)]

    def exercise(env: Any, seed: int) -> None:
        env.reset(seed=seed)
        for action in random_actions(env, 10, seed):
            env.step(action)
            if not env.agents:
                env.reset()

    exercise(envs[0], 0)
    gc.collect()
    before, anon_before = rss_mb(), rss_mb("RssAnon")
    for i in range(ENV_EXTRA_INSTANCES):
        envs.append(make_env(name, cache))
        exercise(envs[-1], i + 1)
    gc.collect()
    after, anon_after = rss_mb(), rss_mb("RssAnon")
    return {"rss_after_imports_mb": imported, "rss_one_env_mb": before,
            "rss_extra_envs_mb": after, "extra": ENV_EXTRA_INSTANCES,
            "mb_per_extra_env": (after - before) / ENV_EXTRA_INSTANCES,
            "anon_mb_per_extra_env": (anon_after - anon_before) / ENV_EXTRA_INSTANCES}


def bench_env(steps: int, seconds: float) -> Figures:
    """The ``env`` benchmark (see module docstring)."""
    with tempfile.TemporaryDirectory() as tmp:
        cache = str(Path(tmp) / "cache")
        prep = _child("env_prepare", [cache])
        figures: Figures = {"env_prepare_cold_s": prep["seconds"],
                            "env_prepare_peak_rss_mb": prep["peak_rss_mb"],
                            "env_random_action_steps": steps, "env_min_timed_s": seconds}
        for name in ENV_NAMES:
            speed = _child("env_steps", [name, cache, str(steps), str(seconds)])
            memory = _child("env_memory", [name, cache])
            per_s = speed["steps"] / speed["seconds"]
            target = ENV_TARGET_STEPS_PER_S[name]
            figures.update({
                f"{name}_env_steps_per_s": per_s,
                f"{name}_agent_steps_per_s": per_s * speed["agents"],
                f"{name}_target_steps_per_s": target,
                f"{name}_steps_vs_target_ratio": per_s / target,
                f"{name}_us_per_env_step": 1e6 / per_s,
                f"{name}_timed_steps": speed["steps"],
                f"{name}_timed_resets": speed["resets"],
                f"{name}_timed_s": speed["seconds"],
                f"{name}_cpu_share": speed["cpu_s"] / speed["seconds"],
                f"{name}_pinned_core": speed["core"],
                f"{name}_construct_cached_s": speed["construct_s"],
                f"{name}_rss_after_imports_mb": memory["rss_after_imports_mb"],
                f"{name}_rss_one_env_mb": memory["rss_one_env_mb"],
                f"{name}_mb_first_env": memory["rss_one_env_mb"]
                    - memory["rss_after_imports_mb"],
                f"{name}_rss_plus_20_envs_mb": memory["rss_extra_envs_mb"],
                f"{name}_mb_per_extra_env": memory["mb_per_extra_env"],
                f"{name}_anon_mb_per_extra_env": memory["anon_mb_per_extra_env"],
                f"{name}_target_mb_per_extra_env": ENV_TARGET_MB_PER_EXTRA,
                f"{name}_mb_vs_target_ratio":
                    memory["mb_per_extra_env"] / ENV_TARGET_MB_PER_EXTRA,
            })
        return figures


BENCHMARKS: dict[str, Callable[[argparse.Namespace], Figures]] = {
    "data": lambda args: bench_data(1260 if args.days is None else args.days),
    "env": lambda args: bench_env(args.steps, args.seconds),
    "learn": lambda args: _learn(args),
    "train": lambda args: _train(args),
    "compare": lambda args: _compare(args),
    "latency": lambda args: _latency(args),
    "market": lambda args: _market(args),
}


def _market(args: argparse.Namespace) -> Figures:
    """The synthetic market's oracles (experiments/market.py)."""
    from experiments import market

    return market.run(days=250 if args.days is None else args.days, seed=args.seed)


def _latency(args: argparse.Namespace) -> Figures:
    """The decision-latency benchmark (experiments/latency.py)."""
    from experiments import latency

    return latency.run(checkpoint=args.checkpoint, repeats=args.repeats, quick=args.quick)


def _compare(args: argparse.Namespace) -> Figures:
    """MAPPO vs IPPO on joint_v0 (experiments/learn.py)."""
    from experiments import learn

    return learn.compare(iterations=args.iterations, seeds=_seeds(args, "0,1"),
                         eval_every=args.eval_every, eval_days=args.eval_days)


def _seeds(args: argparse.Namespace, default: str) -> tuple[int, ...]:
    """``--seeds`` as a tuple of ints (``default`` when not given)."""
    text = args.seeds or default
    try:
        return tuple(int(s) for s in text.split(","))
    except ValueError:
        raise ConfigError(f"--seeds {text!r}: give comma-separated integers, e.g. "
                          "0,1,2") from None


def _train(args: argparse.Namespace) -> Figures:
    """The training-throughput benchmark (experiments/throughput.py)."""
    from experiments import throughput

    return throughput.run(iterations=args.timed_iterations, gpu=args.gpu)


def _learn(args: argparse.Namespace) -> Figures:
    """The learning benchmark (experiments/learn.py)."""
    from experiments import learn

    return learn.run_seeds(iterations=args.iterations, eval_every=args.eval_every,
                           seeds=_seeds(args, "0,1,2"), eval_days=args.eval_days)


def print_table(title: str, figures: Figures) -> None:
    """Print figures as an aligned two-column table."""
    print(f"\n{title}")
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        shown = f"{value:,.3f}" if isinstance(value, float) else f"{value:,}" \
            if isinstance(value, int) and not isinstance(value, bool) else str(value)
        print(f"  {key:<{width}}  {shown:>14}")


def main(argv: list[str] | None = None) -> int:
    """Run the named benchmark."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_child"]:
        task, rest = argv[1], argv[2:]
        steps: dict[str, Callable[..., Figures]] = {
            "load": child_load, "features": child_features, "prepare": child_prepare,
            "rde_encode": child_rde_encode, "env_prepare": child_env_prepare,
            "env_steps": child_env_steps, "env_memory": child_env_memory}
        result = steps[task](*rest)
        print(json.dumps(result))
        return 0
    parser = argparse.ArgumentParser(prog="python -m experiments.bench", description=__doc__)
    parser.add_argument("name", choices=sorted(BENCHMARKS), help="benchmark to run")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--days", type=int, default=None,
                        help="data: trading days of 5-minute bars (default 1260 = 5 years); "
                             "market: days of the market (default 250)")
    parser.add_argument("--steps", type=int, default=20_000,
                        help="env: random actions drawn before timing, cycled (default 20000)")
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="env: minimum timed stepping per env in seconds (default 3)")
    parser.add_argument("--iterations", type=int, default=60,
                        help="learn, compare: training iterations (default 60)")
    parser.add_argument("--eval-every", type=int, default=10,
                        help="learn: backtest the validation split every N iterations "
                             "(default 10)")
    parser.add_argument("--eval-days", type=int, default=1000,
                        help="learn, compare: trading days of the fresh market the final "
                             "policy is evaluated on (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="market: the market's seed")
    parser.add_argument("--seeds", default=None,
                        help="learn (default 0,1,2), compare (default 0,1): comma-separated "
                             "training seeds; the market seed varies with each")
    parser.add_argument("--timed-iterations", type=int, default=3,
                        help="train: iterations timed after one warm-up (default 3)")
    parser.add_argument("--gpu", action="store_true",
                        help="train: also time our learner on one GPU")
    parser.add_argument("--checkpoint",
                        help="latency: time this checkpoint's actors (default: fresh ones)")
    parser.add_argument("--repeats", type=int,
                        help="latency: timed decision steps per variant (default 5000)")
    parser.add_argument("--quick", action="store_true",
                        help="latency: a few repeats only, to check the bench runs")
    args = parser.parse_args(argv)
    info = machine()
    print_table("machine", info)
    try:
        figures = BENCHMARKS[args.name](args)
    except AlgoSpaceError as err:  # bad settings: one line, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
    print_table(f"benchmark: {args.name}", figures)
    if args.json:
        Path(args.json).write_text(json.dumps({**info, **figures}, indent=2))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
