"""The out-of-sample record of a walk-forward run: every fold's test block, stitched.

Each fold's best checkpoint is backtested on that fold's test block
(:func:`algospace.evaluation.backtest.backtest` with ``EnvConfig(fold=k, split="test")``),
and the baselines (flat, buy_and_hold, random, rule) trade exactly the same bars. The test
blocks tile the tail of the data in time order and do not overlap, so their P&L chains into
one equity curve (:func:`stitch`): every block starts from the capital the one before ended
with, and the stitched net P&L is the sum of the folds'.

**Costs.** Each fold's decisions are re-run through the account at 0×, 0.5×, 1×, 2× and
3× the contract's commission and slippage (:func:`algospace.evaluation.costs.cost_runs`,
nothing re-decided); at each multiple the folds' curves are stitched as above, giving
the stitched record's cost table (net P&L, dollar Sharpe, trades, costs) and its
break-even multiple (``cost_sensitivity``; ``costs.png``). Its 1× row is the stitched
record.

**Capture** (built-in market): the yardstick of
:mod:`algospace.evaluation.oracles` applied to the stitched record — the agents' P&L
over the oracle's on the same bars, realised (net P&L) and expected (the planted
components' share), where both sides are summed over the folds' test blocks (each
oracle, like the agents, starts every block afresh).

The Deflated Sharpe Ratio of the stitched curve counts every fold's model selection: its
number of trials is the sum over folds of the effective number of independent validation
candidates of that fold (:func:`algospace.tune.results.selection_trials`), and its Sharpe
variance is their mean.

:func:`write_walk_forward` writes ``report.json``, ``equity.png`` (stitched equity, fold
boundaries marked), ``folds.png`` (per fold: agents' vs the best baseline's net P&L) and
``costs.png`` (stitched net P&L against the cost multiple) into one folder, all at once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from algospace.errors import AlgoSpaceError
from algospace.evaluation.backtest import Backtest
from algospace.evaluation.baselines import baseline_equity
from algospace.evaluation.costs import CostRun, cost_runs, cost_table
from algospace.evaluation.metrics import Metrics, compute_metrics, daily_returns, to_dict
from algospace.evaluation.oracles import CAPTURE_KEYS, capture_ratio
from algospace.evaluation.stats import deflated_sharpe_ratio, probabilistic_sharpe_ratio
from algospace.files import atomic_dir, write_json

__all__ = ["FoldRecord", "cost_lines", "fold_record", "stitch", "stitched_capture",
           "stitched_costs", "walk_forward_report", "walk_forward_table", "write_walk_forward"]

FIGURES: tuple[str, ...] = ("net_pnl", "sharpe", "max_drawdown", "trades", "total_return",
                            "costs")
"""Figures of every fold and of the stitched curve (agents and baselines)."""
CAPTURE = (*CAPTURE_KEYS, "expected_pnl")
"""The agents' oracle figures where the built-in market's truth exists."""


@dataclass(frozen=True)
class FoldRecord:
    """One fold's test-block backtest: the agents' and the baselines' equity."""

    fold: int
    blocks: dict[str, Any]
    """The fold's train ranges, val and test blocks (base-bar rows), purge and embargo."""
    checkpoint: str
    equity: pd.Series
    metrics: Metrics
    baselines: dict[str, pd.Series]
    baseline_metrics: dict[str, Metrics]
    capture: dict[str, float] = field(default_factory=dict)
    selection: dict[str, Any] = field(default_factory=dict)
    """The fold's model selection (candidates, effective trials, Sharpe variance)."""
    costs: list[CostRun] = field(default_factory=list)
    """The fold's decisions re-run at each cost multiple."""
    oracle: dict[str, Any] = field(default_factory=dict)
    """The env's layer oracle and the joint one on the block: net and expected P&L."""


def fold_record(fold: int, blocks: Mapping[str, Any], checkpoint: str, bt: Backtest,
                selection: Mapping[str, Any], initial: float, seed: int = 0) -> FoldRecord:
    """A :class:`FoldRecord` from the fold's test backtest (``initial``: its starting
    equity); the baselines trade the same bars."""
    curves, metrics = {}, {}
    for name in bt.baselines:
        curve, m = baseline_equity(name, bt.bars, bt.contract, size=max(1, bt.position_limit),
                                   seed=seed, rule_signal=bt.rule_signal,
                                   initial_equity=initial, ruin_level=bt.ruin_level)
        curves[name], metrics[name] = curve, m
    oracle: dict[str, Any] = {}
    if bt.oracles:
        own, joint = bt.oracles[bt.layer], bt.oracles["joint"]
        oracle = {"layer": bt.layer, "net_pnl": own.metrics.net_pnl,
                  "expected_pnl": own.expected_pnl, "joint_net_pnl": joint.metrics.net_pnl,
                  "joint_expected_pnl": joint.expected_pnl}
    return FoldRecord(fold, dict(blocks), checkpoint, bt.equity, bt.metrics, curves, metrics,
                      {k: float(bt.capture[k]) for k in CAPTURE if k in bt.capture},
                      dict(selection), cost_runs(bt), oracle)


def stitch(curves: Sequence[pd.Series], initial: float) -> pd.Series:
    """One equity curve from consecutive blocks' curves (each starting from ``initial``):
    each block's P&L is chained onto the capital the previous block ended with.

    Raises :class:`AlgoSpaceError` when the blocks are out of time order or overlap.
    """
    pieces, level = [], float(initial)
    for i, curve in enumerate(curves):
        if i and len(curve) and len(curves[i - 1]) and curve.index[0] <= curves[i - 1].index[-1]:
            raise AlgoSpaceError(f"walk-forward test block {i} starts at {curve.index[0]}, "
                                 f"not after block {i - 1} ends ({curves[i - 1].index[-1]}); "
                                 "blocks must be consecutive and disjoint")
        pnl = np.diff(np.r_[initial, curve.to_numpy(np.float64)])
        pieces.append(pd.Series(level + np.cumsum(pnl), index=curve.index))
        level += float(pnl.sum())
    if not pieces:
        return pd.Series([], dtype=np.float64, name="equity")
    return pd.concat(pieces).rename("equity")


def _figures(m: Metrics) -> dict[str, Any]:
    d = to_dict(m)
    return {k: d[k] for k in FIGURES}


def _summed(curve: pd.Series, initial: float, folds: Sequence[Metrics]) -> dict[str, Any]:
    """Figures of a stitched curve; trades and costs summed over the folds."""
    out = _figures(compute_metrics(curve, initial_equity=initial))
    out["trades"] = int(sum(m.trades for m in folds))
    out["costs"] = float(sum(m.costs for m in folds))
    return out


def stitched_costs(records: Sequence[FoldRecord], initial: float) -> dict[str, Any] | None:
    """The stitched record's cost table: at each multiple the folds' re-runs stitched
    (:func:`algospace.evaluation.costs.cost_table`); None when a fold has no re-runs."""
    if not records or any(not r.costs for r in records):
        return None
    rows = []
    for i, multiple in enumerate(c.multiple for c in records[0].costs):
        runs = [r.costs[i] for r in records]
        curve = stitch([c.equity for c in runs], initial)
        ruined = [r.fold for r, c in zip(records, runs, strict=True) if c.ruin_bar is not None]
        rows.append({"multiple": multiple, "net_pnl": float(sum(c.net_pnl for c in runs)),
                     "sharpe": compute_metrics(curve, initial_equity=initial).sharpe,
                     "trades": int(sum(c.trades for c in runs)),
                     "costs": float(sum(c.costs for c in runs)), "ruined": bool(ruined),
                     "ruined_folds": ruined})
    return cost_table(rows)


def stitched_capture(records: Sequence[FoldRecord]) -> dict[str, float]:
    """The agents' capture of the oracles over all test blocks (ratios of the folds'
    summed P&L); empty unless every fold has the market's truth."""
    if not records or any(not r.oracle or "expected_pnl" not in r.capture for r in records):
        return {}
    net = sum(r.metrics.net_pnl for r in records)
    expected = sum(r.capture["expected_pnl"] for r in records)
    oracle = {k: float(sum(r.oracle[k] for r in records))
              for k in ("net_pnl", "expected_pnl", "joint_net_pnl", "joint_expected_pnl")}
    return {"capture_of_oracle": capture_ratio(net, oracle["net_pnl"]),
            "capture_of_joint_oracle": capture_ratio(net, oracle["joint_net_pnl"]),
            "expected_capture": capture_ratio(expected, oracle["expected_pnl"]),
            "expected_capture_of_joint_oracle": capture_ratio(expected,
                                                              oracle["joint_expected_pnl"]),
            "expected_pnl": float(expected),
            **{f"oracle_{k}": v for k, v in oracle.items()}}


def _fold_costs(record: FoldRecord) -> dict[str, Any]:
    """A fold's net P&L at each cost multiple and its break-even multiple."""
    table = cost_table([{"multiple": c.multiple, "net_pnl": c.net_pnl} for c in record.costs])
    return {"net_pnl": {f"{r['multiple']:g}x": r["net_pnl"] for r in table["rows"]},
            "break_even_multiple": table["break_even_multiple"]}


def _best_baseline(records: Sequence[FoldRecord]) -> str:
    """The baseline (flat excluded) with the highest stitched net P&L."""
    names = [n for n in records[0].baselines if n != "flat"]
    return max(names, key=lambda n: sum(r.baseline_metrics[n].net_pnl for r in records))


def walk_forward_report(records: Sequence[FoldRecord], initial: float) -> dict[str, Any]:
    """Per-fold and stitched figures of the agents and baselines, PSR and DSR."""
    if not records:
        raise AlgoSpaceError("no walk-forward fold finished with a checkpoint; see the trial "
                             "errors above")
    records = sorted(records, key=lambda r: r.fold)
    agents = stitch([r.equity for r in records], initial)
    names = list(records[0].baselines)
    baselines = {n: stitch([r.baselines[n] for r in records], initial) for n in names}
    trials = sum(float(r.selection.get("effective_trials", 1.0)) for r in records)
    variances = [float(r.selection.get("sharpe_variance", 0.0)) for r in records
                 if r.selection.get("candidates", 0) > 1]
    variance = float(np.mean(variances)) if variances else 0.0
    daily = daily_returns(agents, initial_equity=initial).to_numpy()
    stitched = {"agents": {**_summed(agents, initial, [r.metrics for r in records]),
                           "probabilistic_sharpe": _safe(probabilistic_sharpe_ratio, daily),
                           "deflated_sharpe": _safe(deflated_sharpe_ratio, daily,
                                                    sr_variance=variance, n_trials=trials),
                           **stitched_capture(records)},
                "baselines": {n: _summed(c, initial, [r.baseline_metrics[n] for r in records])
                              for n, c in baselines.items()}}
    best = _best_baseline(records)
    folds = [{"fold": r.fold, **r.blocks, "checkpoint": r.checkpoint,
              "period": [str(r.equity.index[0]), str(r.equity.index[-1])],
              "agents": {**_figures(r.metrics), **r.capture},
              **({"oracle": r.oracle} if r.oracle else {}),
              **({"costs": _fold_costs(r)} if r.costs else {}),
              "baselines": {n: _figures(m) for n, m in r.baseline_metrics.items()},
              "selection": r.selection} for r in records]
    costs = stitched_costs(records, initial)
    return {"folds": folds, "stitched": stitched, "best_baseline": best,
            **({"cost_sensitivity": costs} if costs is not None else {}),
            "initial_equity": initial,
            "deflation": {"n_trials": trials, "sharpe_variance": variance,
                          "note": "trials: the sum over folds of each fold's effective number "
                                  "of independent validation candidates"},
            "boundaries": [str(r.equity.index[0]) for r in records]}


def _safe(fn: Any, returns: np.ndarray, **kwargs: Any) -> float:
    """PSR/DSR, NaN where the curve is too short to have them."""
    try:
        return float(fn(returns, **kwargs))
    except AlgoSpaceError:
        return math.nan


def walk_forward_table(report: Mapping[str, Any]) -> list[str]:
    """The printed table: a row per fold and the stitched row, agents vs best baseline,
    then the stitched record's cost table."""
    best = report["best_baseline"]
    head = (f"{'fold':>8} {'net P&L':>12} {'Sharpe':>7} {'max DD':>7} {'trades':>6} "
            f"{best + ' P&L':>18} {'capture':>8} {'exp. capture':>12}")
    lines = ["[walk-forward] test blocks (agents vs the best baseline, " + best + ")", head]
    rows = [(str(f["fold"]), f["agents"], f["baselines"][best]) for f in report["folds"]]
    stitched = report["stitched"]
    rows.append(("stitched", stitched["agents"], stitched["baselines"][best]))
    for name, a, b in rows:
        lines.append(f"{name:>8} {a['net_pnl']:12,.0f} {a['sharpe']:7.2f} "
                     f"{a['max_drawdown']:7.1%} {int(a['trades']):6d} {b['net_pnl']:18,.0f} "
                     f"{_share(a.get('capture_of_oracle'), 8)} "
                     f"{_share(a.get('expected_capture'), 12)}")
    s = stitched["agents"]
    lines.append(f"[walk-forward] stitched PSR {s['probabilistic_sharpe']:.3f}, DSR "
                 f"{s['deflated_sharpe']:.3f} (trials {report['deflation']['n_trials']:.1f})")
    return lines + cost_lines(report)


def cost_lines(report: Mapping[str, Any]) -> list[str]:
    """The stitched record's cost table as printed lines (none without one)."""
    costs = report.get("cost_sensitivity")
    if costs is None:
        return []
    lines = ["[walk-forward] stitched record at scaled costs (same decisions; "
             "commission and slippage × multiple)",
             f"{'multiple':>8} {'net P&L':>12} {'Sharpe':>7} {'trades':>6} {'costs paid':>12}"]
    for r in costs["rows"]:
        ruined = f"  ruined in folds {r['ruined_folds']}" if r.get("ruined_folds") else ""
        lines.append(f"{r['multiple']:>7g}× {r['net_pnl']:12,.0f} {r['sharpe']:7.2f} "
                     f"{int(r['trades']):6d} {r['costs']:12,.0f}{ruined}")
    lines.append(f"[walk-forward] break-even: {costs['break_even_note']}")
    return lines


def _share(value: Any, width: int) -> str:
    """A capture (a share, 0.12 = 12 %) in ``width`` characters; ``-`` where undefined."""
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:{width}.1%}"
    return f"{'-':>{width}}"


def write_walk_forward(out: Path, report: Mapping[str, Any],
                       records: Sequence[FoldRecord]) -> Path:
    """Write ``report.json``, ``equity.png``, ``folds.png`` and ``costs.png`` into ``out``
    (at once)."""
    def fill(tmp: Path) -> None:
        write_json(tmp / "report.json", report, default=str)
        _plots(tmp, report, sorted(records, key=lambda r: r.fold))

    return atomic_dir(out, fill)


def _plots(folder: Path, report: Mapping[str, Any], records: Sequence[FoldRecord]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from algospace.evaluation.plots import cost_plot

    initial = float(report["initial_equity"])
    best = report["best_baseline"]
    agents = stitch([r.equity for r in records], initial)
    fig, ax = plt.subplots(figsize=(12, 5))
    x = np.arange(len(agents))
    ax.plot(x, agents.to_numpy(), label="agents", lw=1.6)
    for name in records[0].baselines:
        curve = stitch([r.baselines[name] for r in records], initial)
        ax.plot(x, curve.to_numpy(), label=name, lw=1.0, alpha=0.8)
    start = 0
    for r in records:
        ax.axvline(start, color="grey", ls="--", lw=0.8)
        ax.text(start, ax.get_ylim()[1], f" fold {r.fold}", va="top", fontsize=8)
        start += len(r.equity)
    ax.set(title="walk-forward test blocks, stitched", xlabel="test-block step",
           ylabel="equity ($)")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "equity.png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(8, 4))
    idx = np.arange(len(records))
    ax.bar(idx - 0.2, [r.metrics.net_pnl for r in records], 0.4, label="agents")
    ax.bar(idx + 0.2, [r.baseline_metrics[best].net_pnl for r in records], 0.4, label=best)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(idx, [f"fold {r.fold}" for r in records])
    ax.set(title="net P&L per test block", ylabel="$")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "folds.png", dpi=100)
    plt.close(fig)
    if "cost_sensitivity" in report:
        cost_plot(report, folder, title="stitched test blocks' net P&L, same decisions, "
                                        "scaled costs")
