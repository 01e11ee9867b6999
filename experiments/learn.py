"""``bench learn``: MAPPO learns the planted 30-minute component of the built-in market.

The built-in market (:mod:`algospace.data.synthetic`) plants a 30-minute and a
5-minute component of known expected drift; the **strategic oracle** holds the
position path that maximises the expected net dollar P&L of the 30-minute
component under the same position limit and costs as the agents
(:mod:`algospace.evaluation.oracles`). So on ``strategic_v0`` the best any
policy can expect is that oracle's expected P&L, and the headline is the
agents' **expected capture** of it: Σ position × planted drift × point value −
costs, over the oracle's — nearly free of the noise of one draw.

For each seed (the market seed varies with the training seed) the bench
trains ``strategic_v0`` with the default :class:`TrainConfig` on the train
split, prints **validation** figures along the way (the test split is not
looked at while training), and evaluates the final checkpoint once on a
**fresh long market** from the same generator with another seed
(``--eval-days``, 1,000 trading days by default: 37 test days cannot tell
strategies apart). It checks:

- expected capture of the strategic oracle ≥ :data:`CAPTURE_TARGET`;
- net dollar P&L above every baseline (flat, random, buy-and-hold, synergy
  rule) on the same bars;
- training time (sampling + learning) ≤ 10 minutes per seed.

Figures, the curves (JSON) and a plot go to ``--out`` (default
``results/bench/learn``).
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from algospace.config import DataConfig, EnvConfig
from algospace.data.synthetic import SyntheticConfig
from algospace.evaluation.backtest import Backtest, backtest, greedy_policy
from algospace.files import atomic_write, write_text
from algospace.training.builder import TrainConfig
from algospace.training.checkpoint import load_actors
from algospace.training.train import actor_modules, train

LEARN_DAYS = 250
"""Trading days of the training market (70/15/15 split)."""
LEARN_SEED = 11
"""Seed of the training market for training seed 0 (seed k trains on LEARN_SEED + k)."""
EVAL_SEED = 1000
"""Seed of the fresh evaluation market for training seed 0 (EVAL_SEED + k for seed k)."""
EVAL_DAYS = 1000
"""Trading days of the fresh evaluation market."""
EVAL_SPLIT = (0.1, 0.05, 0.85)
"""Split of the evaluation market: the first 10 % only standardises its features; the
agents are scored on the last 85 %."""
CAPTURE_TARGET = 0.25
"""Expected capture of the strategic oracle the bench asks for."""
TIME_LIMIT_S = 600.0
"""Training must finish within this on 2 cores."""
BASELINE_NAMES = ("flat", "random", "buy_and_hold", "rule")


def learn_config(*, days: int, seed: int, iterations: int, out: Path,
                 env: str = "strategic_v0", algorithm: str = "mappo",
                 signal: float = 1.0, market_seed: int | None = None,
                 cache_dir: str | None = None) -> TrainConfig:
    """Default training settings on the built-in market (market seed follows ``seed``)."""
    synth = SyntheticConfig(days=days, seed=LEARN_SEED + seed if market_seed is None
                            else market_seed, signal=signal)
    data = DataConfig(synthetic=synth)
    if cache_dir is not None:
        data = replace(data, cache_dir=cache_dir)
    return TrainConfig(env=env, env_config=EnvConfig(data=data),  # type: ignore[arg-type]
                       algorithm=algorithm,  # type: ignore[arg-type]
                       iterations=iterations, seed=seed, out_dir=str(out))


def evaluation_env(cfg: EnvConfig, *, days: int, seed: int) -> EnvConfig:
    """The same env settings on a fresh market of ``days`` days (scored on its test split)."""
    synth = replace(cfg.data.synthetic, days=days, seed=seed)
    data = replace(cfg.data, synthetic=synth, split=EVAL_SPLIT)
    return replace(cfg, data=data, split="test", random_start=False)


def score(bt: Backtest, prefix: str = "eval_") -> dict[str, Any]:
    """Dollar figures of one backtest: capture, net P&L, Sharpe, PSR, the baselines'."""
    m = bt.metrics
    row: dict[str, Any] = {f"{prefix}{k}": bt.capture.get(k, math.nan)
                           for k in ("expected_capture", "capture_of_oracle",
                                     "expected_capture_of_joint_oracle")}
    row.update({f"{prefix}net_pnl": m.net_pnl, f"{prefix}sharpe": m.sharpe,
                f"{prefix}psr": m.probabilistic_sharpe, f"{prefix}max_drawdown": m.max_drawdown,
                f"{prefix}trades": m.trades, f"{prefix}days": m.days,
                f"{prefix}ruined": m.ruined})
    for name in BASELINE_NAMES:
        row[f"{prefix}{name}_net_pnl"] = bt.baselines[name].net_pnl
    if bt.oracles:
        own = bt.oracles[bt.layer]
        row[f"{prefix}oracle_net_pnl"] = own.metrics.net_pnl
        row[f"{prefix}oracle_expected_pnl"] = own.expected_pnl
        row[f"{prefix}oracle_sharpe"] = own.metrics.sharpe
    return row


def run(*, iterations: int, eval_every: int, days: int = LEARN_DAYS, seed: int = 0,
        eval_days: int = EVAL_DAYS, out: str = "results/bench/learn",
        env: str = "strategic_v0", algorithm: str = "mappo",
        signal: float = 1.0) -> dict[str, Any]:
    """Train one seed, validate along the way, evaluate once on a fresh long market
    (``signal``: strength of the planted components, 1.0 the calibrated market)."""
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = learn_config(days=days, seed=seed, iterations=iterations, out=out_dir, env=env,
                       algorithm=algorithm, signal=signal)
    val_env = replace(cfg.env_config, split="val", random_start=False)
    curve: list[dict[str, float]] = []
    train_seconds = 0.0

    def hook(i: int, algo: Any, row: dict[str, float]) -> None:
        nonlocal train_seconds
        train_seconds += row["seconds"]
        if i % eval_every and i != iterations:
            return
        bt = backtest(cfg.env, val_env, greedy_policy(actor_modules(algo)), seed=seed)
        point = {"iteration": i, "train_seconds": train_seconds, "env_steps": row["env_steps"],
                 "episode_return_mean": row["episode_return_mean"],
                 **score(bt, prefix="val_")}
        curve.append(point)
        print(f"[learn] seed {seed} iteration {i}: validation expected capture "
              f"{point['val_expected_capture']:.2f}, net P&L ${point['val_net_pnl']:,.0f}, "
              f"Sharpe {point['val_sharpe']:.2f} after {train_seconds:.0f} s of training",
              flush=True)

    started = time.perf_counter()
    result = train(cfg, on_iteration=hook)
    wall = time.perf_counter() - started
    eval_cfg = evaluation_env(cfg.env_config, days=eval_days, seed=EVAL_SEED + seed)
    final = backtest(cfg.env, eval_cfg, greedy_policy(load_actors(result.checkpoint)),
                     seed=seed)
    figures: dict[str, Any] = {
        "env": cfg.env, "algorithm": cfg.algorithm, "seed": seed,
        "market": cfg.env_config.data.synthetic.describe(),
        "eval_market": eval_cfg.data.synthetic.describe() + " test split",
        "iterations": result.iterations, "env_steps": result.env_steps,
        "train_seconds": train_seconds, "wall_seconds_with_validation": wall,
        **score(final),
    }
    figures.update({
        "pass_capture": figures["eval_expected_capture"] >= CAPTURE_TARGET,
        "pass_beats_baselines": beats_baselines(final),
        "pass_time_limit": train_seconds <= TIME_LIMIT_S,
        "checkpoint": result.checkpoint,
    })
    write_text(out_dir / "curve.json", json.dumps(curve, indent=2))
    write_text(out_dir / "figures.json", json.dumps(figures, indent=2, default=str))
    plot(curve, final, out_dir / "learn.png", f"{cfg.env} ({cfg.algorithm}), seed {seed}")
    figures["plot"] = str(out_dir / "learn.png")
    return figures


def beats_baselines(bt: Backtest) -> bool:
    """Net dollar P&L above every baseline's on the same bars."""
    return all(bt.metrics.net_pnl > bt.baselines[n].net_pnl for n in BASELINE_NAMES)


def run_seeds(*, iterations: int, eval_every: int, seeds: tuple[int, ...],
              eval_days: int = EVAL_DAYS, out: str = "results/bench/learn",
              signal: float = 1.0) -> dict[str, Any]:
    """:func:`run` for each seed; mean and spread of the headline figures over seeds."""
    figures: dict[str, Any] = {"seeds": ",".join(map(str, seeds)), "eval_days": eval_days,
                               "signal": signal, "iterations": iterations}
    per_seed = [run(iterations=iterations, eval_every=eval_every, seed=s, eval_days=eval_days,
                    out=f"{out}/seed{s}", signal=signal) for s in seeds]
    keys = ("eval_expected_capture", "eval_capture_of_oracle", "eval_net_pnl", "eval_sharpe",
            "eval_psr", "eval_oracle_net_pnl", "train_seconds")
    for s, row in zip(seeds, per_seed, strict=True):
        for key in (*keys, "pass_capture", "pass_beats_baselines"):
            figures[f"seed{s}_{key}"] = row[key]
    for key in keys:
        values = [float(r[key]) for r in per_seed]
        figures[f"{key}_mean"] = statistics.fmean(values)
        figures[f"{key}_sd"] = statistics.stdev(values) if len(values) > 1 else 0.0
    figures["pass_all"] = all(r["pass_capture"] and r["pass_beats_baselines"]
                              for r in per_seed)
    return figures


def plot(curve: list[dict[str, float]], final: Backtest, path: Path, title: str) -> None:
    """Validation expected capture vs training time, and the evaluation equity curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    t = [p["train_seconds"] / 60 for p in curve]
    ax1.plot(t, [p["val_expected_capture"] for p in curve], marker="o",
             label="expected capture (validation)")
    ax1.plot(t, [p["val_capture_of_oracle"] for p in curve], marker=".", ls=":",
             label="realised capture (validation)")
    ax1.axhline(CAPTURE_TARGET, color="grey", ls="--", lw=0.8, label="target")
    ax1.set(xlabel="training time (min)", ylabel="share of the strategic oracle's P&L",
            title=title)
    ax1.legend()
    initial = final.equity.iloc[-1] - final.metrics.net_pnl
    ax2.plot(final.equity.index, final.equity.to_numpy() - initial, label="agents")
    for layer, run_ in final.oracles.items():
        ax2.plot(run_.equity.index, run_.equity.to_numpy() - initial, ls="--",
                 label=f"{layer} oracle")
    ax2.set(xlabel="fresh evaluation market", ylabel="net P&L ($)",
            title="final policy, out of sample")
    ax2.legend()
    fig.autofmt_xdate()
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)

