"""The consensus calibration table, ECE and the gates' choice, on hand-worked numbers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from algospace.evaluation.calibration import calibration, decision_moves, trades_by_decision
from algospace.evaluation.gate_choice import (
    DRAWDOWN_ADJUSTMENTS,
    REGIME_ADJUSTMENTS,
    choose_gates,
    gated_vs_ungated,
    search_gates,
)
from algospace.inference.gates import GateConfig


def _worked() -> dict[str, np.ndarray]:
    #            0    1    2    3    4    5    6    7    8     9    10   11
    consensus = [0.9, 0.1, 0.8, 0.2, 0.7, 0.3, 0.6, 0.4, 0.55, 0.45, 0.99, 0.98]
    direction = [1, 1, -1, 1, 1, -0.2, -1, 0.5, 1, 1, 0, 1]
    move = [1, -1, -2, 1, 3, 1, -1, -1, 0, 2, 5, np.nan]
    opened = [1, 0, 0, 2, 1, 0, 0, 0, 0, 0, 3, 0]
    opened_pnl = [100, 0, 0, -50, 30, 0, 0, 0, 0, 0, 999, 0]
    return {k: np.asarray(v, dtype=float) for k, v in
            {"consensus": consensus, "direction": direction, "move": move,
             "opened": opened, "opened_pnl": opened_pnl}.items()}


def test_bins_hit_rates_errors_trades_and_ece_by_hand() -> None:
    w = _worked()
    out = calibration(w["consensus"], w["direction"], w["move"],
                      opened=w["opened"].astype(int), opened_pnl=w["opened_pnl"], bins=2)
    # decision 10 has no direction, decision 11 no move: left out (with 10's trades)
    assert out["decisions"] == 10 and out["left_out"] == 2
    low, high = out["bins"]
    # low half: decisions 1, 3, 5, 7, 9 -> hits at 3 and 9 (5 is short into a rise,
    # 7 long into a fall, 1 long into a fall)
    assert low["decisions"] == 5 and low["hit_rate"] == pytest.approx(0.4)
    assert low["mean_consensus"] == pytest.approx(0.29)
    assert low["hit_rate_se"] == pytest.approx(math.sqrt(0.4 * 0.6 / 5))
    assert (low["consensus_low"], low["consensus_high"]) == (0.1, 0.45)
    assert low["trades_opened"] == 2 and low["mean_trade_pnl"] == pytest.approx(-25.0)
    # high half: 8 (a zero move: a miss), 6, 4, 2, 0 (hits)
    assert high["decisions"] == 5 and high["hit_rate"] == pytest.approx(0.8)
    assert high["mean_consensus"] == pytest.approx(0.71)
    assert high["hit_rate_se"] == pytest.approx(math.sqrt(0.8 * 0.2 / 5))
    assert high["trades_opened"] == 2 and high["mean_trade_pnl"] == pytest.approx(65.0)
    assert out["ece"] == pytest.approx(0.5 * 0.11 + 0.5 * 0.09)
    assert out["hit_rate"] == pytest.approx(0.6)
    assert out["top_minus_bottom_hit_rate"] == pytest.approx(0.4)
    assert out["top_minus_bottom_se"] == pytest.approx(math.hypot(math.sqrt(0.048),
                                                                  math.sqrt(0.032)))
    assert out["rises_beyond_se"] is False  # 0.4 < 2 × 0.283: within the noise


def test_deciles_keep_equal_counts_through_ties_and_empty_bins_are_nan() -> None:
    out = calibration(np.full(20, 0.5), np.ones(20), np.r_[np.ones(10), -np.ones(10)])
    assert [b["decisions"] for b in out["bins"]] == [2] * 10
    # ties are cut in time order: the first five bins hold the ten rises
    assert [b["hit_rate"] for b in out["bins"]] == [1.0] * 5 + [0.0] * 5
    assert out["ece"] == pytest.approx(0.5)
    few = calibration([0.6, 0.7, 0.8], [1, 1, -1], [1, -1, -1])
    assert sum(b["decisions"] for b in few["bins"]) == 3
    assert sum(math.isnan(b["hit_rate"]) for b in few["bins"]) == 7
    assert math.isnan(calibration([], [], [])["ece"])


def test_calibration_refuses_misaligned_input() -> None:
    with pytest.raises(ValueError, match="one value per decision"):
        calibration([0.5, 0.6], [1], [1, 1])
    with pytest.raises(ValueError, match="bins must be >= 2"):
        calibration([0.5], [1], [1], bins=1)


def test_moves_and_trades_belong_to_their_decisions() -> None:
    close = np.array([10.0, 11.0, 9.0, 12.0, 12.0])
    assert decision_moves(close, np.array([0, 1, 3]), 2).tolist()[:2] == [-1.0, 1.0]
    assert math.isnan(decision_moves(close, np.array([3]), 2)[0])
    with pytest.raises(ValueError, match="horizon"):
        decision_moves(close, np.array([0]), 0)
    # trades entered at steps 6, 6 and 9 belong to the decisions at 5 and 8
    count, total = trades_by_decision(np.array([5, 6, 8]), np.array([6, 6, 9, 40]),
                                      np.array([10.0, -4.0, 7.0, 1.0]))
    assert count.tolist() == [2, 0, 1] and total.tolist() == [6.0, 0.0, 7.0]


def _row(pnl: float, threshold: float, synergy: bool = True, regime: float = 0.05,
         drawdown: float = 0.01) -> dict[str, float | bool]:
    return {"synergy_gate": synergy, "threshold": threshold, "regime_adjustment": regime,
            "drawdown_adjustment": drawdown, "net_pnl": pnl}


def test_gates_are_the_validation_best_ties_to_the_default() -> None:
    default = GateConfig()
    rows = [_row(-300.0, 0.5), _row(120.0, 0.6), _row(80.0, 0.65), _row(120.0, 0.7),
            _row(0.0, 0.8), _row(0.0, 0.9)]
    assert choose_gates(rows, default=default)["threshold"] == 0.6  # nearer the default
    ties = [_row(0.0, 0.5), _row(0.0, 0.65), _row(0.0, 0.9), _row(0.0, 0.65, False)]
    pick = choose_gates(ties, default=default)
    assert (pick["threshold"], pick["synergy_gate"]) == (0.65, True)  # the configured gates
    assert choose_gates([_row(10.0, 0.5), _row(10.0, 0.9)], default=default)["threshold"] \
        == 0.5  # then the lower
    assert choose_gates([_row(10.0, 0.65, regime=0.1), _row(10.0, 0.65, regime=0.0),
                         _row(10.0, 0.65)], default=default)["regime_adjustment"] == 0.05
    best = choose_gates([_row(5.0, 0.65), _row(50.0, 0.4, False)], default=default)
    assert (best["synergy_gate"], best["threshold"]) == (False, 0.4)  # P&L first
    with pytest.raises(ValueError, match="no gate setting"):
        choose_gates([], default=default)
    with pytest.raises(ValueError, match=r"not finite at gate 1 on, threshold 0\.5"):
        choose_gates([_row(math.nan, 0.5)], default=default)


def test_the_search_tries_gate_one_both_ways_then_the_adjustments() -> None:
    """A hand-made validation P&L: best with gate 1 off at 0.4, then regime 0.1, then
    drawdown 0: the search must find each in its stage and try nothing twice."""
    seen: list[tuple[bool, float, float, float]] = []

    def pnl(g: GateConfig) -> dict[str, float]:
        seen.append((g.synergy_gate, g.threshold, g.regime_adjustment, g.drawdown_adjustment))
        value = (0.0 if g.synergy_gate else 100.0) - 100 * abs(g.threshold - 0.4) \
            + 10 * g.regime_adjustment - 100 * g.drawdown_adjustment
        return {"trades": 3, "net_pnl": value, "sharpe": 0.1}

    grid = (0.3, 0.4, 0.65)
    chosen, rows = search_gates(pnl, GateConfig(), grid)
    assert (chosen.synergy_gate, chosen.threshold, chosen.regime_adjustment,
            chosen.drawdown_adjustment) == (False, 0.4, 0.1, 0.0)
    assert chosen.max_threshold >= chosen.threshold
    assert len(seen) == len(set(seen)) == len(rows)
    assert len(rows) == 2 * len(grid) + len(REGIME_ADJUSTMENTS) - 1 \
        + len(DRAWDOWN_ADJUSTMENTS) - 1
    assert [r["stage"] for r in rows] == [1] * 6 + [2] * 2 + [3] * 2


def test_gated_vs_ungated_figures() -> None:
    ungated = {"trades": 40, "net_pnl": 400.0, "sharpe": 0.5}
    gated = {"trades": 10, "net_pnl": 300.0, "sharpe": 0.9}
    counts = {"decisions": 100, "synergy_closed": 70, "consensus_closed": 50,
              "held_back": 24, "wanted_new_exposure": 30}
    out = gated_vs_ungated(ungated, gated, counts)
    assert out["ungated_pnl_per_trade_usd"] == 10.0 and out["gated_pnl_per_trade_usd"] == 30.0
    assert out["trades_let_through"] == 0.25
    assert out["share_of_wanted_trades_held_back"] == pytest.approx(0.8)
    assert out["gated_synergy_closed"] == 70 and out["gated_consensus_closed"] == 50
    none = gated_vs_ungated({**ungated, "trades": 0}, {**gated, "trades": 0},
                            {**counts, "wanted_new_exposure": 0})
    assert math.isnan(none["gated_pnl_per_trade_usd"])
    assert math.isnan(none["trades_let_through"])
    assert math.isnan(none["share_of_wanted_trades_held_back"])


def test_the_grid_holds_the_default_so_validation_can_keep_it() -> None:
    from algospace.config import CONSENSUS_THRESHOLD
    from algospace.evaluation.gate_choice import GATE_GRID

    assert CONSENSUS_THRESHOLD in GATE_GRID and list(GATE_GRID) == sorted(GATE_GRID)


def test_a_bad_gate_grid_is_refused_with_its_value() -> None:
    from algospace.errors import ConfigError
    from algospace.evaluation.report import EvaluateConfig

    for bad in ((), (0.5, 1.5)):
        with pytest.raises(ConfigError, match="gate_grid must hold thresholds in"):
            EvaluateConfig("ck", gate_grid=bad)


def test_the_report_line_says_none_where_a_side_made_no_trade() -> None:
    from algospace.evaluation.table import per_trade

    assert per_trade(float("nan"), 0) == "none (0 trades)"
    assert per_trade(-68.1, 13) == "-$68.1 (13 trades)"
    assert per_trade(1234.56, 2) == "$1,234.6 (2 trades)"


def test_decide_finds_the_gates_a_test_report_of_its_checkpoint_chose(tmp_path: Path) -> None:
    """``chosen_for``: the newest test report of this very checkpoint whose gates were
    chosen on validation; reports of other checkpoints, of fixed gates or of another split
    do not count."""
    import json
    import os

    from algospace.cli.decide import chosen_for
    from algospace.evaluation.report import RUN_SUMMARY

    run = tmp_path / "run"
    ck = run / "trial_0" / "checkpoint_000003"
    ck.mkdir(parents=True)
    (run / RUN_SUMMARY).write_text("{}")
    assert chosen_for(ck) is None

    def report(folder: str, checkpoint: Path, on: str, threshold: float, mtime: int) -> None:
        gates = {"synergy_gate": False, "threshold": threshold, "regime_adjustment": 0.0,
                 "drawdown_adjustment": 0.02}
        path = run / folder / "report.json"
        path.parent.mkdir()
        path.write_text(json.dumps({"checkpoint": str(checkpoint), "uncertainty": {
            "threshold_chosen_on": on, "gates": gates}}))
        os.utime(path, (mtime, mtime))

    report("evaluation-test", run / "trial_0" / "checkpoint_000001", "val", 0.3, 100)
    report("evaluation-test-2", ck, "fixed (not chosen)", 0.4, 200)
    report("evaluation-val", ck, "val", 0.5, 300)
    assert chosen_for(ck) is None
    report("evaluation-test-3", ck, "val", 0.6, 400)
    report("evaluation-test-4", ck, "val", 0.7, 350)
    found = chosen_for(str(ck))
    assert found is not None
    gates, path = found
    assert path == run / "evaluation-test-3" / "report.json"
    assert gates == {"synergy_gate": False, "threshold": 0.6, "regime_adjustment": 0.0,
                     "drawdown_adjustment": 0.02}
