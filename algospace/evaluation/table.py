"""The headline table of an evaluation report, printed the same by a run's final evaluation,
by ``algospace evaluate`` and (its own rows) by ``algospace decide``."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

HEADER = f"{'':18}{'net P&L':>12}{'Sharpe':>8}{'max DD':>9}{'trades':>8}"
"""The column heads of the table."""
FOOTNOTE = ("* random: Sharpe averaged over its seeds; the other columns are the first "
            "seed's. Sharpe on daily dollar P&L over the fixed capital; max DD in % of "
            "capital")
"""What the columns are (the random baseline's Sharpe is a mean over its seeds)."""


def metric_rows(rows: Iterable[tuple[str, Mapping[str, Any]]]) -> list[str]:
    """The column heads and one line per ``(name, metrics)`` (``to_dict`` of a
    :class:`~algospace.evaluation.metrics.Metrics`; a random baseline's Sharpe is replaced by
    its mean over seeds and the row marked ``random*``)."""
    lines = [HEADER]
    for name, m in rows:
        if name == "random" and m.get("sharpe_mean_over_seeds") is not None:
            m = {**m, "sharpe": m["sharpe_mean_over_seeds"]}
            name = "random*"
        ruined = " ruined" if m.get("ruined") else ""
        lines.append(f"{name:18}{m.get('net_pnl', math.nan):>12,.0f}"
                     f"{m.get('sharpe', math.nan):>8.2f}"
                     f"{100 * m.get('max_drawdown', math.nan):>8.2f}%"
                     f"{m.get('trades', 0):>8}{ruined}")
    return lines


def evaluation_table(report: dict[str, Any]) -> list[str]:
    """A few lines comparing the agents with the baselines and the oracles, in dollars,
    with the footnotes that say what was counted on which bars."""
    rows = [("agents", report["agents"]),
            *([("agents, gated", report["gated"]["metrics"])] if "gated" in report else []),
            *report["baselines"].items(),
            *((f"{layer} oracle", m) for layer, m in report.get("oracles", {}).items())]
    period = report["period"]
    lines = [f"[evaluate] {report['split']} split, {period['first_bar']} to "
             f"{period['last_bar']} ({period['trading_days']} days), after costs, "
             f"up to {report['max_position']} contracts on ${report['initial_equity']:,.0f}:",
             *metric_rows(rows), FOOTNOTE]
    a = report["agents"]
    if "expected_capture" in a:
        lines.append(f"capture: {a['capture_of_oracle']:.1%} of the {report['oracle_layer']} "
                     f"oracle's net P&L ({a['capture_of_joint_oracle']:.1%} of the joint "
                     f"oracle's); expected {a['expected_capture']:.1%} "
                     f"({a['expected_capture_of_joint_oracle']:.1%})")
    lines.append(f"PSR {a.get('probabilistic_sharpe', math.nan):.2f}, DSR "
                 f"{a.get('deflated_sharpe', math.nan):.2f} "
                 f"({report['selection']['effective_trials']:.1f} effective trials)")
    if "gated" in report:
        n, g = report["gated"]["gate_counts"], report["gated"]["gates"]
        lines.append(f"gated: through the gates (gate 1 "
                     f"{'on' if g['synergy_gate'] else 'recorded only'}, threshold "
                     f"{g['threshold']:g}, "
                     f"{g['mc_passes']} MC passes): gate 1 closed at {n['synergy_closed']:,}, "
                     f"gate 2 at {n['consensus_closed']:,} of {n['decisions']:,} decisions; "
                     f"{n['held_back']:,} trades held back")
        lines.append(f"  decisions counted: {counted(period)}")
    u = report.get("uncertainty")
    if u:
        side, cal = u["side_by_side"], u["calibration"]
        how = "chosen on validation" if u["threshold_chosen_on"] == "val" else "as given"
        lines.append(f"uncertainty: MC consensus ECE {cal['ece']:.3f} over "
                     f"{cal['decisions']:,} decisions; gate 2 threshold {u['gate_threshold']:g}"
                     f" ({how}); P&L per trade gated "
                     f"{per_trade(side['gated_pnl_per_trade_usd'], side['gated_trades'])}, "
                     f"ungated "
                     f"{per_trade(side['ungated_pnl_per_trade_usd'], side['ungated_trades'])}")
    return lines


def per_trade(value: float, trades: int) -> str:
    """``$12.3 (4 trades)``, or ``none (0 trades)`` where no trade was made."""
    if not trades:
        return "none (0 trades)"
    return f"{'-' if value < 0 else ''}${abs(value):,.1f} ({trades:,} trades)"


def counted(period: Mapping[str, Any]) -> str:
    """Which bars an evaluation's decisions are: every clock step of its whole tiles."""
    tiles, steps = int(period["tiles"]), int(period["bars"])
    per_tile = steps // tiles if tiles else 0
    return (f"every clock step of {tiles:,} whole episode tiles ({per_tile:,} steps each) "
            f"from {period['first_bar']} to {period['last_bar']}; the split's bars after the "
            "last whole tile (or around a data hole) are not run. algospace decide --start "
            "<the split's first bar> counts the same in its complete sessions")
