"""Gate 2's threshold chosen on the validation split, and the gated team beside the ungated.

**The grid and the criterion.** The gated team is backtested on the validation split at
each threshold of :data:`GATE_GRID` (gate 2's MC-consensus threshold; gate 1, the regime
and drawdown adjustments and the cap as configured), and the threshold with the highest
validation **net dollar P&L** is chosen — P&L rather than Sharpe, since a Sharpe of a few
trades is large by chance. Ties (e.g. every threshold trading nothing, all at $0) go to
the threshold nearest the default (:data:`algospace.config.CONSENSUS_THRESHOLD`), then to
the lower one. The test split is then run once with the chosen threshold.

:func:`gated_vs_ungated` puts the two runs of the test split side by side: trades, net
P&L, P&L per trade, dollar Sharpe, the share of the ungated team's trades the gated team
still makes, the share of wanted new exposures the gates held back, and how often each
gate closed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["GATE_GRID", "choose_threshold", "gated_vs_ungated"]

GATE_GRID: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.65, 0.7, 0.8, 0.9)
"""Gate-2 thresholds tried on the validation split. The consensus is a mean top-action
probability, at least 1/3 for the strategic agents' three actions; a trained team's
sits mostly between 0.25 and 0.65 (``bench uncertainty``), so the grid starts low."""


def choose_threshold(pnl_by_threshold: Mapping[float, float], *, default: float) -> float:
    """The threshold of the highest validation net P&L; ties: nearest ``default``, then
    the lower."""
    if not pnl_by_threshold:
        raise ValueError("no threshold to choose from: give at least one (threshold, net "
                         "P&L) pair")
    bad = [t for t, v in pnl_by_threshold.items() if not math.isfinite(v)]
    if bad:
        raise ValueError(f"validation net P&L is not finite at threshold(s) {bad}")
    best = max(pnl_by_threshold.values())
    tied = [t for t, v in pnl_by_threshold.items() if v >= best - 1e-9]
    return min(tied, key=lambda t: (round(abs(t - default), 9), t))


def _per_trade(m: Mapping[str, Any]) -> float:
    trades = int(m["trades"])
    return float(m["net_pnl"]) / trades if trades else math.nan


def gated_vs_ungated(ungated: Mapping[str, Any], gated: Mapping[str, Any],
                     counts: Mapping[str, int]) -> dict[str, Any]:
    """Side-by-side figures of the ungated and gated runs of one split.

    ``ungated``/``gated``: metrics (``to_dict`` of a backtest's metrics: ``trades``,
    ``net_pnl``, ``sharpe``); ``counts``: the gated run's gate counts, with
    ``wanted_new_exposure`` (decisions at which the agents wanted to open, add or reverse).
    """
    wanted = int(counts.get("wanted_new_exposure", 0))
    out: dict[str, Any] = {}
    for name, m in (("ungated", ungated), ("gated", gated)):
        out[f"{name}_trades"] = int(m["trades"])
        out[f"{name}_net_pnl_usd"] = float(m["net_pnl"])
        out[f"{name}_pnl_per_trade_usd"] = _per_trade(m)
        out[f"{name}_sharpe"] = float(m["sharpe"])
    out["trades_let_through"] = (out["gated_trades"] / out["ungated_trades"]
                                 if out["ungated_trades"] else math.nan)
    out["share_of_wanted_trades_held_back"] = (int(counts["held_back"]) / wanted if wanted
                                               else math.nan)
    out["gated_decisions"] = int(counts["decisions"])
    out["gated_synergy_closed"] = int(counts["synergy_closed"])
    out["gated_consensus_closed"] = int(counts["consensus_closed"])
    out["gated_held_back"] = int(counts["held_back"])
    out["gated_wanted_new_exposure"] = wanted
    return out
