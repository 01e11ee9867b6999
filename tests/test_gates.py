"""The two-gate decision on hand-made probability tables (worked out by hand below)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from algospace.errors import ConfigError
from algospace.inference.gates import GateConfig, apply_gates
from algospace.models.mc_dropout import agent_stats
from envs.core.layout import STRATEGIC_VOTE, TACTICAL_VOTE


def _stats(passes: list[list[float]], votes: tuple[float, ...]) -> np.ndarray:
    """The six MC statistics of one agent from its pass probabilities [N, A]."""
    probs = torch.tensor(passes, dtype=torch.float64)[:, None, :]
    return agent_stats(probs, torch.tensor(votes, dtype=torch.float64))[0].numpy()


# Tactical actions: HOLD, BUY_SMALL, BUY_LARGE, SELL_SMALL, SELL_LARGE (votes 0, .5, 1, -.5, -1)
SURE_BUY = [[0.0, 0.1, 0.9, 0.0, 0.0], [0.0, 0.1, 0.9, 0.0, 0.0]]
"""Both passes: BUY_LARGE with 0.9 -> top_prob 0.9, direction 0.1*0.5 + 0.9*1 = 0.95."""
UNSURE = [[0.4, 0.3, 0.3, 0.0, 0.0], [0.2, 0.5, 0.3, 0.0, 0.0]]
"""Mean (0.3, 0.4, 0.3, 0, 0): top_prob 0.4, direction 0.4*0.5 + 0.3 = 0.5."""
SURE_SELL = [[0.0, 0.0, 0.0, 0.2, 0.8], [0.0, 0.0, 0.0, 0.2, 0.8]]
"""top_prob 0.8, direction -0.1 - 0.8 = -0.9."""


def test_hand_made_tables_give_the_hand_worked_statistics() -> None:
    s = _stats(UNSURE, TACTICAL_VOTE)
    assert s[0] == pytest.approx(0.4)
    assert s[5] == pytest.approx(0.5)
    assert s[4] == pytest.approx(0.5)  # pass 1's argmax HOLD, pass 2's BUY_SMALL = a*
    assert _stats(SURE_BUY, TACTICAL_VOTE)[5] == pytest.approx(0.95)


def _team(*tables: list[list[float]]) -> dict[str, np.ndarray]:
    names = ("fvg", "momentum", "entry")
    return {n: _stats(t, TACTICAL_VOTE) for n, t in zip(names, tables, strict=False)}


def test_both_gates_open_lets_a_new_long_through() -> None:
    stats = _team(SURE_BUY, SURE_BUY, UNSURE)  # consensus (0.9 + 0.9 + 0.4) / 3 = 0.7333
    res = apply_gates(3, 0, synergy_direction=1.0, stats=stats, drawdown_pct=0.0,
                      cfg=GateConfig())
    assert res.consensus == pytest.approx(2.2 / 3)
    assert res.consensus_direction == pytest.approx((0.95 + 0.95 + 0.5) / 3)
    assert res.synergy_open and res.consensus_open
    assert res.threshold == pytest.approx(0.65)
    assert res.target == 3 and not res.held_back


def test_no_synergy_holds_back_a_new_position() -> None:
    stats = _team(SURE_BUY, SURE_BUY, UNSURE)
    res = apply_gates(3, 0, synergy_direction=0.0, stats=stats, drawdown_pct=0.0,
                      cfg=GateConfig())
    assert not res.synergy_open and res.consensus_open
    assert res.target == 0 and res.held_back and res.wanted == 3


def test_synergy_in_the_other_direction_holds_back() -> None:
    res = apply_gates(3, 0, synergy_direction=-1.0, stats=_team(SURE_BUY, SURE_BUY),
                      drawdown_pct=0.0, cfg=GateConfig())
    assert res.synergy_open
    assert res.target == 0


def test_gate_one_recorded_only_lets_gate_two_decide() -> None:
    """``synergy_gate=False``: no synergy (or one against the trade) no longer holds back;
    gate 2 still does, and gate 1 is still recorded."""
    alone = GateConfig(synergy_gate=False)
    for synergy in (0.0, -1.0):
        res = apply_gates(3, 0, synergy_direction=synergy, stats=_team(SURE_BUY, SURE_BUY),
                          drawdown_pct=0.0, cfg=alone)
        assert res.synergy_open == (synergy != 0.0)
        assert res.target == 3 and not res.held_back
    low = apply_gates(2, 0, synergy_direction=0.0, stats=_team(SURE_BUY, UNSURE, UNSURE),
                      drawdown_pct=0.0, cfg=alone)  # consensus 0.567 < 0.65
    assert low.target == 0 and low.held_back
    against = apply_gates(-2, 0, synergy_direction=-1.0, stats=_team(SURE_BUY, SURE_BUY),
                          drawdown_pct=0.0, cfg=alone)  # consensus direction long
    assert against.target == 0


def test_low_consensus_closes_gate_two() -> None:
    stats = _team(SURE_BUY, UNSURE, UNSURE)  # (0.9 + 0.4 + 0.4) / 3 = 0.5667 < 0.65
    res = apply_gates(2, 0, synergy_direction=1.0, stats=stats, drawdown_pct=0.0,
                      cfg=GateConfig())
    assert res.consensus == pytest.approx(1.7 / 3)
    assert not res.consensus_open and res.target == 0


def test_consensus_direction_must_agree_with_the_trade() -> None:
    # consensus (0.8 + 0.8 + 0.9) / 3 = 0.833 but its direction is (-0.9 - 0.9 + 0.95) / 3 < 0
    stats = _team(SURE_SELL, SURE_SELL, SURE_BUY)
    res = apply_gates(2, 0, synergy_direction=1.0, stats=stats, drawdown_pct=0.0,
                      cfg=GateConfig())
    assert res.consensus_open and res.consensus_direction < 0
    assert res.target == 0


def test_drawdown_raises_the_threshold() -> None:
    stats = _team(SURE_BUY, SURE_BUY, UNSURE)  # consensus 0.7333
    cfg = GateConfig(drawdown_adjustment=0.02)
    calm = apply_gates(1, 0, synergy_direction=1.0, stats=stats, drawdown_pct=4.0, cfg=cfg)
    assert calm.threshold == pytest.approx(0.73) and calm.target == 1  # 0.65 + 4 * 0.02
    hurt = apply_gates(1, 0, synergy_direction=1.0, stats=stats, drawdown_pct=5.0, cfg=cfg)
    assert hurt.threshold == pytest.approx(0.75) and hurt.target == 0


def test_threshold_is_capped() -> None:
    res = apply_gates(1, 0, synergy_direction=1.0, stats=_team(SURE_BUY), drawdown_pct=50.0,
                      cfg=GateConfig(max_threshold=0.8))
    assert res.threshold == pytest.approx(0.8) and res.target == 1  # 0.9 >= 0.8


def test_regime_agent_against_the_trade_raises_the_threshold() -> None:
    # Strategic actions: HOLD, BUY_C, BUY_A, SELL_C, SELL_A, REDUCE, INCREASE
    regime_sells = _stats([[0.0, 0.0, 0.0, 0.3, 0.7, 0.0, 0.0]] * 2, STRATEGIC_VOTE)
    regime_buys = _stats([[0.0, 0.3, 0.7, 0.0, 0.0, 0.0, 0.0]] * 2, STRATEGIC_VOTE)
    tactical = _team(SURE_BUY, UNSURE)  # 0.9, 0.4
    # consensus with regime: (0.9 + 0.4 + 0.7) / 3 = 0.6667; direction > 0 either way?
    against = apply_gates(1, 0, synergy_direction=1.0,
                          stats={**tactical, "regime": regime_sells}, drawdown_pct=0.0,
                          cfg=GateConfig(regime_adjustment=0.05))
    assert against.threshold == pytest.approx(0.70)
    assert not against.consensus_open and against.target == 0
    along = apply_gates(1, 0, synergy_direction=1.0, stats={**tactical, "regime": regime_buys},
                        drawdown_pct=0.0, cfg=GateConfig(regime_adjustment=0.05))
    assert along.threshold == pytest.approx(0.65)
    assert along.consensus_open and along.target == 1


@pytest.mark.parametrize(("wanted", "position", "expected"), [
    (1, 3, 1),    # reducing a long is never held back
    (0, 3, 0),    # closing neither
    (-2, 3, 0),   # a reversal becomes a close
    (5, 3, 3),    # adding becomes keeping
    (-4, -2, -2),  # adding to a short becomes keeping
    (3, 3, 3),    # keeping is keeping
])
def test_closed_gates_hold_back_only_new_exposure(wanted: int, position: int,
                                                  expected: int) -> None:
    res = apply_gates(wanted, position, synergy_direction=0.0, stats=_team(UNSURE),
                      drawdown_pct=0.0, cfg=GateConfig())
    assert res.target == expected


def test_gates_recorded_but_not_enforced() -> None:
    res = apply_gates(3, 0, synergy_direction=0.0, stats=_team(UNSURE), drawdown_pct=0.0,
                      cfg=GateConfig(enforce=False))
    assert not res.synergy_open and not res.consensus_open
    assert res.target == 3 and not res.held_back


@pytest.mark.parametrize("kwargs", [{"threshold": 1.5}, {"max_threshold": -0.1},
                                    {"regime_adjustment": -1.0},
                                    {"threshold": 0.8, "max_threshold": 0.7}])
def test_bad_gate_settings_are_config_errors(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match="gates"):
        GateConfig(**kwargs)


def test_no_statistics_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one agent"):
        apply_gates(1, 0, synergy_direction=1.0, stats={}, drawdown_pct=0.0, cfg=GateConfig())
