"""The report's figures: equity and drawdown, price and trades, actions, monthly returns,
net P&L against the cost multiple, and net P&L per hour and weekday.

:func:`write_plots` writes the six PNGs of an evaluation
(:mod:`algospace.evaluation.report`) into its folder; matplotlib is imported
there, with the ``Agg`` backend (no display needed).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from algospace.evaluation.attribution import hour_weekday
from algospace.evaluation.backtest import Backtest
from algospace.evaluation.metrics import Metrics

__all__ = ["at_bar_closes", "calibration_plot", "cost_plot", "strategy_label", "write_plots"]


def _bar_length(index: pd.DatetimeIndex) -> pd.Timedelta:
    """The usual spacing of ``index`` (its median positive step; zero for one row)."""
    steps = index[1:] - index[:-1]
    steps = steps[steps > pd.Timedelta(0)]
    return pd.Timedelta(steps.median()) if len(steps) else pd.Timedelta(0)


def at_bar_closes(curve: pd.Series, index: pd.DatetimeIndex) -> np.ndarray:
    """``curve``'s values at the closes of ``index``'s bars.

    Both are indexed by bar open times, and a value belongs to its bar's close (equity after
    the bar). A curve on finer bars (the 5-minute oracle under 30-minute agents) is read at
    its last bar inside each of ``index``'s bars — the one closing with it — not at the
    first, which would show it one coarse bar minus one fine bar late.
    """
    shift = max(_bar_length(index) - _bar_length(pd.DatetimeIndex(curve.index)),
                pd.Timedelta(0))
    return curve.reindex(index + shift, method="ffill").to_numpy()


def _equity_plot(bt: Backtest, curves: dict[str, tuple[pd.Series, Metrics]],
                 report: dict[str, Any], folder: Path, gated: pd.Series | None) -> None:
    """``equity.png``: the agents' equity (and the gated run's), the baselines and the
    oracle, with the agents' drawdown underneath."""
    import matplotlib.pyplot as plt

    initial = report["initial_equity"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(13, 6.5), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1]})
    x = np.arange(len(bt.equity))
    top.plot(x, bt.equity.to_numpy(), label="agents", lw=1.6)
    shown = [bt.equity.to_numpy(), *(c.to_numpy() for c, _ in curves.values())]
    if gated is not None:  # same bars, unless a tile was ruined in one run only
        on_bars = gated[~gated.index.duplicated()].reindex(bt.equity.index).to_numpy()
        top.plot(x, on_bars, label="agents, gated", lw=1.3)
        shown.append(on_bars)
    for name, (curve, _) in curves.items():
        top.plot(x, curve.to_numpy(), label=strategy_label(name), lw=0.9, alpha=0.8)
    low, high = min(map(np.nanmin, shown)), max(map(np.nanmax, shown))
    for layer, run in bt.oracles.items():
        oracle = at_bar_closes(run.equity, bt.equity.index)
        label = f"{layer} oracle"
        off_scale = np.nanmax(oracle) - initial > 3 * max(high - low, 1.0)
        if off_scale:  # keep the agents and baselines readable; say where the oracle ends
            label += f", off the scale: ends at ${oracle[-1]:,.0f}"
        top.plot(x, oracle, label=label, ls="--", lw=0.9)
        if off_scale:
            pad = 0.08 * (high - low)
            top.set_ylim(low - pad, high + pad)
    if bt.ruin_level > 0 and low < initial - 0.5 * (initial - bt.ruin_level):
        top.axhline(bt.ruin_level, color="tab:red", lw=0.6, ls=":", label="ruin level")
    top.axhline(initial, color="grey", lw=0.5)
    top.set(ylabel="equity ($)", title=f"{report['env']} — {report['split']} split, "
            f"{report['period']['trading_days']} trading days, after costs")
    top.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    values = bt.equity.to_numpy()
    peak = np.maximum.accumulate(np.concatenate([[initial], values]))[1:]
    bottom.fill_between(x, (values - peak) / initial * 100, 0, color="tab:red", alpha=0.5)
    bottom.set(ylabel="drawdown (% of capital)", xlabel="trading day")
    _day_ticks(bottom, bt.equity.index)
    fig.tight_layout()
    fig.savefig(folder / "equity.png", dpi=100)
    plt.close(fig)


def write_plots(bt: Backtest, curves: dict[str, tuple[pd.Series, Metrics]],
           counts: dict[str, Counter[int]], report: dict[str, Any], folder: Path,
           window_days: int, gated: pd.Series | None = None) -> None:
    """Write the six PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _equity_plot(bt, curves, report, folder, gated)

    # Price, position and trades over the last days.
    days = pd.DatetimeIndex(bt.equity.index + pd.Timedelta(hours=6)).normalize()
    keep = days >= np.unique(days)[-min(window_days, len(np.unique(days)))]
    idx = np.flatnonzero(keep)
    fig, ax = plt.subplots(figsize=(11, 4.5))
    close = bt.bars["close"].to_numpy()[idx]
    ax.plot(idx, close, color="black", lw=1.0, label="close")
    pos = bt.positions[idx]
    change = np.diff(np.concatenate([[bt.positions[idx[0] - 1] if idx[0] else 0], pos]))
    ax.scatter(idx[change > 0], close[change > 0], marker="^", color="tab:green",
               label="buy", zorder=3)
    ax.scatter(idx[change < 0], close[change < 0], marker="v", color="tab:red",
               label="sell", zorder=3)
    ax.set(ylabel="price", xlabel="bar", title=f"last {window_days} trading days: price, "
           "trades and position")
    twin = ax.twinx()
    twin.step(idx, pos, where="post", color="tab:blue", alpha=0.5, label="position")
    twin.set_ylabel("position (contracts)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "positions.png", dpi=100)
    plt.close(fig)

    # Action distribution per agent.
    table = report["actions"]
    n = max(1, len(table))
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.4 * rows), squeeze=False)
    for ax, agent in zip(axes.flat, table, strict=False):
        names = list(table[agent])
        total = max(1, sum(table[agent].values()))
        ax.bar(range(len(names)), [table[agent][k] / total for k in names])
        ax.set_xticks(range(len(names)), [k.lower().replace("_", " ") for k in names],
                      fontsize=7, rotation=45, ha="right")
        ax.set(title=agent, ylim=(0, 1))
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle("share of decisions per action")
    fig.tight_layout()
    fig.savefig(folder / "actions.png", dpi=100)
    plt.close(fig)

    # Monthly returns table.
    monthly = report["monthly_returns"]
    years = sorted(monthly)
    grid = np.full((len(years), 12), np.nan)
    for i, year in enumerate(years):
        for month, value in monthly[year].items():
            grid[i, int(month) - 1] = value * 100
    fig, ax = plt.subplots(figsize=(11, 0.6 + 0.5 * len(years)))
    limit = np.nanmax(np.abs(grid)) if np.isfinite(grid).any() else 1.0
    ax.imshow(grid, cmap="RdYlGn", vmin=-limit, vmax=limit, aspect="auto")
    for i in range(len(years)):
        for j in range(12):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.1f}%", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(12), ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep",
                              "Oct", "Nov", "Dec"])
    ax.set_yticks(range(len(years)), years)
    ax.set_title("monthly P&L over the capital base")
    fig.tight_layout()
    fig.savefig(folder / "monthly.png", dpi=100)
    plt.close(fig)
    cost_plot(report, folder)
    _hour_weekday_plot(bt, folder)
    if report.get("uncertainty"):
        calibration_plot(report["uncertainty"]["calibration"], folder / "calibration.png")


def cost_plot(report: Mapping[str, Any], folder: Path,
              title: str = "agents' net P&L, same decisions, scaled costs") -> None:
    """``costs.png``: net P&L of the same decisions at each multiple of the costs
    (``report["cost_sensitivity"]``: :func:`algospace.evaluation.costs.cost_table`)."""
    import matplotlib.pyplot as plt

    sens = report["cost_sensitivity"]
    x = [r["multiple"] for r in sens["rows"]]
    y = [r["net_pnl"] for r in sens["rows"]]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(x, y, marker="o")
    ax.axhline(0.0, color="grey", lw=0.6)
    if sens["break_even_multiple"] is not None:
        ax.axvline(sens["break_even_multiple"], color="tab:red", lw=0.8, ls=":",
                   label=f"break-even {sens['break_even_multiple']:.2f}×")
        ax.legend(loc="upper right", fontsize=8)
    ax.set(xlabel="commission and slippage × multiple", ylabel="net P&L ($)",
           title=title)
    fig.tight_layout()
    fig.savefig(folder / "costs.png", dpi=100)
    plt.close(fig)


def calibration_plot(table: Mapping[str, Any], path: Path) -> None:
    """A reliability plot of the MC consensus (``table``:
    :func:`algospace.evaluation.calibration.calibration`): hit rate against mean consensus
    per bin with ± 1 standard error, the diagonal of a calibrated consensus, and the mean
    net P&L of the trades opened in each bin beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in table["bins"] if r["decisions"]]
    x = np.array([r["mean_consensus"] for r in rows])
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    left.errorbar(x, [r["hit_rate"] for r in rows], yerr=[r["hit_rate_se"] for r in rows],
                  marker="o", capsize=3, label="hit rate ± 1 SE")
    left.plot([0, 1], [0, 1], color="grey", ls="--", lw=0.8, label="calibrated")
    left.axhline(0.5, color="grey", lw=0.5, ls=":")
    left.set(xlim=(0, 1), ylim=(0, 1), xlabel="MC consensus (mean of the bin)",
             ylabel=f"share of directions right ({table.get('horizon_minutes', '?')} min)",
             title=f"reliability, {len(table['bins'])} equal-count bins, "
                   f"ECE {table['ece']:.3f} ({table['decisions']:,} decisions)")
    left.legend(loc="upper left", fontsize=8)
    pnl = [r["mean_trade_pnl"] for r in rows]
    labels = [f"{r['bin']}" for r in rows]
    right.bar(labels, np.nan_to_num(pnl), color=["tab:green" if v > 0 else "tab:red"
                                                 for v in np.nan_to_num(pnl)])
    for label, r, v in zip(labels, rows, np.nan_to_num(pnl), strict=True):  # trades per bar
        right.annotate(f"{r['trades_opened']:,}" if r["trades_opened"] else "none",
                       (label, max(float(v), 0.0)), ha="center", va="bottom", fontsize=7)
    right.axhline(0.0, color="grey", lw=0.6)
    right.set(xlabel="consensus bin (1 = lowest); figures: trades opened",
              ylabel="mean net P&L per trade ($)",
              title="trades opened after the bin's decisions")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _hour_weekday_plot(bt: Backtest, folder: Path) -> None:
    """``hours.png``: the agents' net P&L per session hour and weekday (heatmap)."""
    import matplotlib.pyplot as plt

    grid = hour_weekday(bt)
    values = grid.to_numpy(np.float64)
    fig, ax = plt.subplots(figsize=(6, 0.9 + 0.28 * max(1, len(grid))))
    limit = float(np.abs(values).max()) if values.size and np.abs(values).max() > 0 else 1.0
    image = ax.imshow(values, cmap="RdYlGn", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(len(grid.columns)), list(grid.columns))
    ax.set_yticks(range(len(grid)), [f"{h:02d}:00" for h in grid.index], fontsize=7)
    fig.colorbar(image, ax=ax, label="net P&L ($)")
    ax.set_title("net P&L by session hour (bar open) and weekday")
    fig.tight_layout()
    fig.savefig(folder / "hours.png", dpi=100)
    plt.close(fig)


def strategy_label(name: str) -> str:
    """Display name of a strategy column."""
    return {"rule": "synergy rule"}.get(name, name.replace("_", " "))


def _day_ticks(ax: Any, index: pd.DatetimeIndex) -> None:
    """Label a bar-number axis with the first bar of some trading days."""
    days = pd.DatetimeIndex(index + pd.Timedelta(hours=6)).normalize()
    first = np.flatnonzero(np.r_[True, days[1:] != days[:-1]])
    step = max(1, len(first) // 8)
    ticks = first[::step]
    ax.set_xticks(ticks, [d.strftime("%Y-%m-%d") for d in days[ticks]], fontsize=8,
                  rotation=20)
