"""The gates chosen on the validation split, and the gated team beside the ungated.

**The search and the criterion.** The gated team is backtested on the validation split
(a coordinate search over :func:`gate_candidates`' settings):

1. gate 1 enforced or recorded only (``synergy_gate``) × each gate-2 threshold of
   :data:`GATE_GRID`, the adjustments as configured;
2. at the best so far, each regime adjustment of :data:`REGIME_ADJUSTMENTS`;
3. at the best so far, each drawdown adjustment of :data:`DRAWDOWN_ADJUSTMENTS`.

Of every setting tried, the one with the highest validation **net dollar P&L** is chosen
— P&L rather than Sharpe, since a Sharpe of a few trades is large by chance. Ties (e.g.
every setting trading nothing, all at $0) go to the configured settings: gate 1 as
configured, then the threshold nearest the configured one (then the lower), then the
adjustments nearest the configured ones. The test split is then run once with the chosen
setting.

:func:`gated_vs_ungated` puts the two runs of the test split side by side: trades, net
P&L, P&L per trade, dollar Sharpe, the share of the ungated team's trades the gated team
still makes, the share of wanted new exposures the gates held back, and how often each
gate closed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from algospace.inference.gates import GateConfig

__all__ = ["DRAWDOWN_ADJUSTMENTS", "GATE_GRID", "REGIME_ADJUSTMENTS", "choose_gates",
           "gate_candidates", "gated_vs_ungated", "search_gates"]

GATE_GRID: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.65, 0.7, 0.8, 0.9)
"""Gate-2 thresholds tried on the validation split. The consensus is a mean top-action
probability, at least 1/3 for the strategic agents' three actions; a trained team's
sits mostly between 0.25 and 0.65 (``bench uncertainty``), so the grid starts low."""


REGIME_ADJUSTMENTS: tuple[float, ...] = (0.0, 0.05, 0.1)
"""Regime adjustments tried on validation (added to the threshold when the regime agent's
direction opposes the trade)."""
DRAWDOWN_ADJUSTMENTS: tuple[float, ...] = (0.0, 0.01, 0.02)
"""Drawdown adjustments tried on validation (added per percent of drawdown)."""

SETTING_KEYS = ("synergy_gate", "threshold", "regime_adjustment", "drawdown_adjustment")
"""The gate settings a validation row records beside its figures."""


def setting(cfg: GateConfig) -> dict[str, Any]:
    """The chosen-on-validation settings of a gate configuration."""
    return {k: getattr(cfg, k) for k in SETTING_KEYS}


def _with(cfg: GateConfig, **changes: Any) -> GateConfig:
    out = replace(cfg, **changes)
    return replace(out, max_threshold=max(out.max_threshold, out.threshold))


def gate_candidates(default: GateConfig, grid: Sequence[float]) -> list[GateConfig]:
    """Stage 1 of the search: gate 1 enforced or not × each threshold of ``grid``."""
    return [_with(default, synergy_gate=s, threshold=float(t)) for s in (True, False)
            for t in grid]


def choose_gates(rows: Sequence[Mapping[str, Any]], *, default: GateConfig
                 ) -> dict[str, Any]:
    """The row (settings and ``net_pnl``) of the highest validation net P&L; ties: the
    settings nearest ``default`` (gate 1, threshold then the lower, adjustments)."""
    if not rows:
        raise ValueError("no gate setting to choose from: give at least one validation row "
                         "(settings and net P&L)")
    bad = [setting_label(r) for r in rows if not math.isfinite(float(r["net_pnl"]))]
    if bad:
        raise ValueError(f"validation net P&L is not finite at {', '.join(bad)}")
    best = max(float(r["net_pnl"]) for r in rows)
    tied = [r for r in rows if float(r["net_pnl"]) >= best - 1e-9]
    return dict(min(tied, key=lambda r: (
        bool(r["synergy_gate"]) != default.synergy_gate,
        round(abs(float(r["threshold"]) - default.threshold), 9), float(r["threshold"]),
        round(abs(float(r["regime_adjustment"]) - default.regime_adjustment), 9),
        round(abs(float(r["drawdown_adjustment"]) - default.drawdown_adjustment), 9))))


def setting_label(row: Mapping[str, Any]) -> str:
    """``gate 1 on, threshold 0.65, regime +0.05, drawdown +0.01/%``."""
    return (f"gate 1 {'on' if row['synergy_gate'] else 'off'}, threshold "
            f"{float(row['threshold']):g}, regime +{float(row['regime_adjustment']):g}, "
            f"drawdown +{float(row['drawdown_adjustment']):g}/%")


def search_gates(evaluate: Callable[[GateConfig], Mapping[str, Any]], default: GateConfig,
                 grid: Sequence[float]) -> tuple[GateConfig, list[dict[str, Any]]]:
    """The coordinate search of the module docstring.

    ``evaluate`` backtests one setting on validation and returns its metrics (``trades``,
    ``net_pnl``, ``sharpe``). Returns the chosen configuration and every row tried (in
    order, with a ``stage``).
    """
    rows: list[dict[str, Any]] = []
    tried: set[tuple[Any, ...]] = set()

    def run(cfg: GateConfig, stage: int) -> None:
        key = tuple(setting(cfg).values())
        if key in tried:
            return
        tried.add(key)
        m = evaluate(cfg)
        rows.append({**setting(cfg), "stage": stage, "trades": int(m["trades"]),
                     "net_pnl": float(m["net_pnl"]), "sharpe": float(m["sharpe"])})

    def best() -> GateConfig:
        row = choose_gates(rows, default=default)
        return _with(default, **{k: row[k] for k in SETTING_KEYS})

    for cfg in gate_candidates(default, grid):
        run(cfg, 1)
    chosen = best()
    for value in REGIME_ADJUSTMENTS:
        run(_with(chosen, regime_adjustment=value), 2)
    chosen = best()
    for value in DRAWDOWN_ADJUSTMENTS:
        run(_with(chosen, drawdown_adjustment=value), 3)
    return best(), rows


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
