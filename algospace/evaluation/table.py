"""The headline table of an evaluation report, printed by runs and by ``algospace evaluate``."""

from __future__ import annotations

import math
from typing import Any


def evaluation_table(report: dict[str, Any]) -> list[str]:
    """A few lines comparing the agents with the baselines and the oracles, in dollars."""
    rows = [("agents", report["agents"]),
            *([("agents, gated", report["gated"]["metrics"])] if "gated" in report else []),
            *report["baselines"].items(),
            *((f"{layer} oracle", m) for layer, m in report.get("oracles", {}).items())]
    period = report["period"]
    lines = [f"[evaluate] {report['split']} split, {period['first_bar']} to "
             f"{period['last_bar']} ({period['trading_days']} days), after costs, "
             f"up to {report['max_position']} contracts on ${report['initial_equity']:,.0f}:",
             f"{'':18}{'net P&L':>12}{'Sharpe':>8}{'max DD':>9}{'trades':>8}"]
    for name, m in rows:
        if name == "random" and m.get("sharpe_mean_over_seeds") is not None:
            m = {**m, "sharpe": m["sharpe_mean_over_seeds"]}
            name = "random*"
        ruined = " ruined" if m.get("ruined") else ""
        lines.append(f"{name:18}{m.get('net_pnl', math.nan):>12,.0f}"
                     f"{m.get('sharpe', math.nan):>8.2f}"
                     f"{100 * m.get('max_drawdown', math.nan):>8.2f}%"
                     f"{m.get('trades', 0):>8}{ruined}")
    lines.append("* random: Sharpe averaged over its seeds; the other columns are the first "
                 "seed's. Sharpe on daily dollar P&L over the fixed capital; max DD in % of "
                 "capital")
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
        lines.append(f"gated: through both gates (threshold {g['threshold']:g}, "
                     f"{g['mc_passes']} MC passes): gate 1 closed at {n['synergy_closed']:,}, "
                     f"gate 2 at {n['consensus_closed']:,} of {n['decisions']:,} decisions; "
                     f"{n['held_back']:,} trades held back")
    return lines
