"""``bench learn``: MAPPO learns a planted signal whose best achievable Sharpe is known.

The built-in synthetic market plants a signal: over each 30-minute block the
price drifts by ``signal × σ`` in the direction of the previous block's
return (see :mod:`algospace.data.synthetic`). An agent that reads the last
30-minute return in its window can trade it exactly; the **oracle** holds
that direction × ``max_position`` on every bar through the same account and
costs, so its Sharpe on the test split is the best any policy of
``strategic_v0`` can expect there.

The run trains ``strategic_v0`` with the default :class:`TrainConfig`
(hyperparameters, network sizes, one env runner with four envs) on the train
split, backtests the greedy policy on the **test** split every few
iterations (the curve) and at the end from the saved checkpoint, and checks:

- test Sharpe ≥ half the oracle's test Sharpe;
- test Sharpe above flat, random and buy-and-hold on the same bars;
- training time (sampling + learning, evaluation not included) ≤ 10 minutes.

Figures, the curve (JSON) and a plot go to ``--out`` (default
``results/bench/learn``).
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from algospace.config import DataConfig
from algospace.data.synthetic import SyntheticConfig
from algospace.evaluation.backtest import ORACLE, Backtest, backtest, greedy_policy, load_actors
from algospace.training.builder import TrainConfig
from algospace.training.train import actor_modules, train
from envs.core.config import EnvConfig

LEARN_DAYS = 250
"""Trading days of the learning market (70/15/15 split: about 37 test days)."""
LEARN_SIGNAL = 0.3
"""Planted signal strength of the learning market."""
LEARN_SEED = 11
"""Seed of the learning market."""
TIME_LIMIT_S = 600.0
"""Training must finish within this on 2 cores."""
BASELINE_NAMES = ("flat", "random", "buy_and_hold")


def learn_config(*, days: int, signal: float, seed: int, iterations: int, out: Path,
                 env: str = "strategic_v0", algorithm: str = "mappo") -> TrainConfig:
    """Default training settings on the planted-signal market (default data cache)."""
    data = DataConfig(synthetic=SyntheticConfig(days=days, seed=LEARN_SEED, signal=signal))
    return TrainConfig(env=env, env_config=EnvConfig(data=data),  # type: ignore[arg-type]
                       algorithm=algorithm,  # type: ignore[arg-type]
                       iterations=iterations, seed=seed, out_dir=str(out))


def score(bt: Backtest) -> dict[str, Any]:
    """Test-split figures of one backtest: Sharpe of the policy, oracle and baselines."""
    oracle = bt.baselines[ORACLE].sharpe
    row = {"test_sharpe": bt.metrics.sharpe, "oracle_sharpe": oracle,
           "fraction_of_oracle": bt.metrics.sharpe / oracle if oracle > 0 else float("nan"),
           "test_net_pnl": bt.metrics.net_pnl, "test_max_drawdown": bt.metrics.max_drawdown,
           "test_trades": bt.metrics.trades, "test_exposure": bt.metrics.exposure,
           "test_days": bt.metrics.days}
    for name in BASELINE_NAMES:
        row[f"{name}_sharpe"] = bt.baselines[name].sharpe
    return row


def run(*, iterations: int, eval_every: int, days: int = LEARN_DAYS,
        signal: float = LEARN_SIGNAL, seed: int = 0, out: str = "results/bench/learn",
        env: str = "strategic_v0", algorithm: str = "mappo") -> dict[str, Any]:
    """Train, evaluate along the way and at the end; the figures of the learning bench."""
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = learn_config(days=days, signal=signal, seed=seed, iterations=iterations,
                       out=out_dir, env=env, algorithm=algorithm)
    test_env = replace(cfg.env_config, split="test")
    curve: list[dict[str, float]] = []
    train_seconds = 0.0

    def hook(i: int, algo: Any, row: dict[str, float]) -> None:
        nonlocal train_seconds
        train_seconds += row["seconds"]
        if i % eval_every and i != iterations:
            return
        bt = backtest(cfg.env, test_env, greedy_policy(actor_modules(algo)), seed=seed)
        point = {"iteration": i, "train_seconds": train_seconds, "env_steps": row["env_steps"],
                 "episode_return_mean": row["episode_return_mean"],
                 "test_sharpe": bt.metrics.sharpe,
                 "oracle_sharpe": bt.baselines[ORACLE].sharpe}
        curve.append(point)
        print(f"[learn] iteration {i}: test Sharpe {bt.metrics.sharpe:.2f} "
              f"(oracle {point['oracle_sharpe']:.2f}) after {train_seconds:.0f} s of training",
              flush=True)

    started = time.perf_counter()
    result = train(cfg, on_iteration=hook)
    wall = time.perf_counter() - started
    final = backtest(cfg.env, test_env, greedy_policy(load_actors(result.checkpoint)), seed=seed)
    figures: dict[str, Any] = {
        "env": cfg.env, "algorithm": cfg.algorithm, "seed": seed,
        "market": cfg.env_config.data.synthetic.describe(),
        "iterations": result.iterations, "env_steps": result.env_steps,
        "train_seconds": train_seconds, "wall_seconds_with_evaluation": wall,
        **score(final),
    }
    beats = all(final.metrics.sharpe > final.baselines[n].sharpe for n in BASELINE_NAMES)
    figures.update({
        "pass_half_oracle": figures["fraction_of_oracle"] >= 0.5,
        "pass_beats_baselines": beats,
        "pass_time_limit": train_seconds <= TIME_LIMIT_S,
        "checkpoint": result.checkpoint,
    })
    (out_dir / "curve.json").write_text(json.dumps(curve, indent=2))
    (out_dir / "figures.json").write_text(json.dumps(figures, indent=2, default=str))
    plot(curve, final, out_dir / "learn.png", f"{cfg.env} ({cfg.algorithm})")
    figures["plot"] = str(out_dir / "learn.png")
    return figures


def plot(curve: list[dict[str, float]], final: Backtest, path: Path, title: str) -> None:
    """Learning curve (test Sharpe vs training time) and the final test equity curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    t = [p["train_seconds"] / 60 for p in curve]
    ax1.plot(t, [p["test_sharpe"] for p in curve], marker="o", label="policy (test)")
    ax1.plot(t, [p["oracle_sharpe"] for p in curve], ls="--", label="oracle (test)")
    ax1.plot(t, [0.5 * p["oracle_sharpe"] for p in curve], ls=":", label="half oracle")
    ax1.set(xlabel="training time (min)", ylabel="annualised Sharpe, test split",
            title=f"{title} on the planted-signal market")
    ax1.legend()
    initial = final.equity.iloc[-1] - final.metrics.net_pnl
    ax2.plot(final.equity.index, final.equity.to_numpy() - initial, label="policy")
    if final.oracle_equity is not None:
        ax2.plot(final.oracle_equity.index, final.oracle_equity.to_numpy() - initial,
                 ls="--", label="oracle")
    ax2.set(xlabel="test split", ylabel="net P&L ($)", title="final policy, test split")
    ax2.legend()
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def compare(*, iterations: int, seeds: tuple[int, ...], eval_every: int,
            out: str = "results/bench/compare") -> dict[str, Any]:
    """MAPPO vs IPPO on joint_v0: same market, budget (iterations) and seeds."""
    figures: dict[str, Any] = {"env": "joint_v0", "iterations": iterations,
                               "seeds": ",".join(map(str, seeds))}
    for algorithm in ("mappo", "ippo"):
        sharpe, fraction, seconds, oracles = [], [], [], []
        for seed in seeds:
            row = run(iterations=iterations, eval_every=eval_every, seed=seed,
                      out=f"{out}/{algorithm}-seed{seed}", env="joint_v0", algorithm=algorithm)
            for key in ("test_sharpe", "fraction_of_oracle", "train_seconds"):
                figures[f"{algorithm}_seed{seed}_{key}"] = row[key]
            sharpe.append(row["test_sharpe"])
            fraction.append(row["fraction_of_oracle"])
            seconds.append(row["train_seconds"])
            oracles.append(row["oracle_sharpe"])
        figures[f"{algorithm}_mean_test_sharpe"] = sum(sharpe) / len(sharpe)
        figures[f"{algorithm}_mean_fraction_of_oracle"] = sum(fraction) / len(fraction)
        figures[f"{algorithm}_mean_train_seconds"] = sum(seconds) / len(seconds)
        figures["oracle_test_sharpe"] = oracles[0]
    return figures
