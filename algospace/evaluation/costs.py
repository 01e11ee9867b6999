"""Cost sensitivity: the same decisions through the account at other costs.

:func:`cost_sensitivity` re-runs :class:`~algospace.market.account.Account` on a
backtest's recorded decisions (:class:`~algospace.evaluation.decisions.Decisions`: the
target position and bracket the policy sent to the account at each executed bar) with
the contract's commission and slippage both scaled by 0, 0.5, 1, 2 and 3. Nothing is
re-decided: the policy is not run again, so a target the agents chose after a bracket
exit is kept as chosen. The replay follows the backtest's tiles exactly — each tile
starts flat on a fresh account, a position left at a tile's end is closed at the scaled
``cost_per_side``, and the chained account's ruin stop applies alike (once the chained
equity reaches the ruin level the strategy stays flat) — so the 1× row is the backtest.

Each row gives net P&L, the dollar Sharpe (daily, as in
:mod:`algospace.evaluation.metrics`), the round trips, and the costs paid. The
**break-even multiple** is where net P&L crosses zero, interpolated linearly between the
two multiples around the crossing; ``None`` with a note when net P&L is still positive
at 3× or already at or below zero at 0×.

With brackets and the ruin stop the account is path-dependent (a stop is placed from a
fill price that includes slippage; costlier trading reaches ruin sooner), so net P&L is
not decreasing in the multiple by construction; ``monotone`` says whether it is here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from algospace.data.contracts import ContractSpec
from algospace.evaluation.decisions import Decisions
from algospace.evaluation.metrics import compute_metrics
from algospace.market.account import Account

if TYPE_CHECKING:
    from algospace.evaluation.backtest import Backtest

__all__ = ["COST_MULTIPLES", "CostRun", "Replay", "break_even", "cost_runs", "cost_sensitivity",
           "cost_table", "replay", "scaled_contract"]

COST_MULTIPLES: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 3.0)
"""The multiples of the contract's commission and slippage the report re-runs."""


def scaled_contract(contract: ContractSpec, multiple: float) -> ContractSpec:
    """``contract`` with commission and slippage (ticks) both times ``multiple``."""
    if multiple == 1.0:
        return contract
    return replace(contract, commission=contract.commission * multiple,
                   slippage_ticks=contract.slippage_ticks * multiple)


class Replay:
    """One re-run of the account: per-bar P&L, round trips, costs, the ruin bar."""

    def __init__(self, pnl: np.ndarray, trades: int, costs: float, ruin_bar: int | None):
        """Hold a replay's results."""
        self.pnl, self.trades, self.costs, self.ruin_bar = pnl, trades, costs, ruin_bar


def replay(decisions: Decisions, ohlc: np.ndarray, contract: ContractSpec, *, limit: int,
           initial_equity: float, ruin_level: float) -> Replay:
    """Run the account on ``decisions`` over ``ohlc`` (one row per executed bar), tile by
    tile as :func:`~algospace.evaluation.backtest.backtest` does (module docstring)."""
    n = len(decisions.targets)
    pnl = np.zeros(n, dtype=np.float64)
    exit_cost = float(contract.cost_per_side)
    chained, ruin_bar, trades, costs = float(initial_equity), None, 0, 0.0
    bars = np.asarray(ohlc, dtype=np.float64).tolist()
    bounds = np.flatnonzero(np.diff(decisions.tiles)) + 1
    for lo, hi in zip([0, *bounds.tolist()], [*bounds.tolist(), n], strict=True):
        if hi <= lo:
            continue
        acct = Account(contract, max_position=limit, initial_equity=initial_equity)
        if ruin_bar is None:
            acct.ruin_level = max(ruin_level, ruin_level + initial_equity - chained)
        else:
            acct.ruined = True
        for i in range(lo, hi):
            before = acct.equity
            o, h, low, c = bars[i]
            acct.step(int(decisions.targets[i]), o, h, low, c,
                      stop_distance=float(decisions.stop_distance[i]),
                      target_distance=float(decisions.target_distance[i]), t=i)
            pnl[i] = acct.equity - before
            chained += pnl[i]
            if ruin_bar is None and acct.ruined and chained <= ruin_level + 1e-6:
                ruin_bar = i
        closing = abs(acct.position)
        if closing:
            pnl[hi - 1] -= closing * exit_cost
            chained -= closing * exit_cost
        trades += len(acct.trades())
        costs += acct.commissions + acct.slippage_cost + closing * exit_cost
    return Replay(pnl, trades, costs, ruin_bar)


@dataclass(frozen=True)
class CostRun:
    """The backtest's decisions through the account at one cost multiple."""

    multiple: float
    equity: pd.Series
    """Equity after each executed bar (the backtest's index), from its initial equity."""
    net_pnl: float
    """The sum of the per-bar P&L (dollars)."""
    trades: int
    costs: float
    ruin_bar: int | None


def cost_runs(bt: Backtest, multiples: tuple[float, ...] = COST_MULTIPLES) -> list[CostRun]:
    """One :class:`CostRun` per multiple: :func:`replay` of ``bt``'s decisions."""
    if bt.decisions is None:
        raise ValueError("cost_sensitivity needs a backtest with its decisions recorded")
    ohlc = bt.bars[["open", "high", "low", "close"]].to_numpy(np.float64)
    initial = bt.initial_equity
    out = []
    for m in multiples:
        run = replay(bt.decisions, ohlc, scaled_contract(bt.contract, m),
                     limit=bt.position_limit, initial_equity=initial,
                     ruin_level=bt.ruin_level)
        equity = pd.Series(initial + np.cumsum(run.pnl), index=bt.equity.index)
        out.append(CostRun(m, equity, float(run.pnl.sum()), run.trades, run.costs, run.ruin_bar))
    return out


def cost_sensitivity(bt: Backtest, multiples: tuple[float, ...] = COST_MULTIPLES
                     ) -> dict[str, Any]:
    """The report's ``cost_sensitivity``: one row per multiple, and the break-even."""
    rows = []
    for run in cost_runs(bt, multiples):
        metrics = compute_metrics(run.equity, initial_equity=bt.initial_equity,
                                  ruin_bar=run.ruin_bar)
        rows.append({"multiple": run.multiple, "net_pnl": run.net_pnl,
                     "sharpe": metrics.sharpe, "trades": run.trades, "costs": run.costs,
                     "ruined": run.ruin_bar is not None})
    return cost_table(rows)


def cost_table(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``rows`` (one per multiple, ascending, each with ``multiple`` and ``net_pnl``) with
    the break-even multiple and whether net P&L falls with the multiple."""
    pnls = [r["net_pnl"] for r in rows]
    multiple, note = break_even([r["multiple"] for r in rows], pnls)
    return {"rows": rows, "break_even_multiple": multiple, "break_even_note": note,
            "monotone": all(b <= a + 1e-6 for a, b in pairwise(pnls)),
            "scaled": "commission and slippage per contract per side, both × multiple"}


def break_even(multiples: list[float], pnls: list[float]) -> tuple[float | None, str]:
    """Where net P&L first crosses zero, interpolated; or None and why not."""
    if not pnls or pnls[0] <= 0:
        return None, "already at or below zero at 0× costs"
    for (m0, p0), (m1, p1) in pairwise(zip(multiples, pnls, strict=True)):
        if p0 > 0 >= p1:
            x = m0 + (m1 - m0) * p0 / (p0 - p1)
            return (x if math.isfinite(x) else m1), f"net P&L reaches zero at {x:.2f}× costs"
    return None, f"none below {multiples[-1]:g}×: still positive at {multiples[-1]:g}× costs"
