"""What the decision engine answers at each bar: a :class:`Decision`, or a :class:`Reason`
why there is none; and :class:`Replay`, what a replay of many bars produced.

After every :meth:`~algospace.inference.engine.DecisionEngine.on_bar` the engine's
``last_reason`` says what happened at that bar: ``decided`` (with what the gates did), or
why no decision was due — one of :data:`REASONS`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from algospace.inference.gates import GateResult

REASONS: dict[str, str] = {
    "decided": "a decision was made (its gates say what they let through)",
    "warming_up": "the features are not defined yet: not enough history received",
    "not_a_decision_bar": "the agents decide at 30-minute closes; this bar closed none",
    "before_start": "the bar is before the engine's start: history only",
    "data_hole": "the features are undefined here (missing bars before this one)",
    "between_sessions": "a session ended early at a data hole; the next has not begun",
    "waiting_for_close": "a session starts only at a 30-minute close",
    "kill_switch": "the kill file exists: target 0 (flatten), the engine takes no more bars",
}
"""Every :attr:`Reason.code`, and what it means."""


@dataclass(frozen=True)
class Reason:
    """Why the engine decided, or did not, at the last bar it was given."""

    code: str
    """One of :data:`REASONS`."""
    text: str
    """The same for a person, with the figures of this bar (``str(reason)``)."""

    def __post_init__(self) -> None:
        if self.code not in REASONS:
            raise ValueError(f"unknown reason code {self.code!r} (known: {sorted(REASONS)})")

    @property
    def decided(self) -> bool:
        """True when the bar gave a decision."""
        return self.code == "decided"

    def __str__(self) -> str:
        return self.text


def decided_reason(gates: GateResult, target: int | None = None, limit: str = "") -> Reason:
    """The reason of a decision: what the two gates, then the risk limit ``limit`` (a code
    of :data:`algospace.market.limits.LIMIT_CODES`) did to the agents' target."""
    if limit:
        return Reason("decided", f"decided: target {target:+d}, limited by {limit} (the "
                                 f"gates let {gates.target:+d} through)")
    if not gates.held_back:
        return Reason("decided", f"decided: target {gates.target:+d}")
    closed = [name for name, is_open in (("gate 1 (synergy)", gates.synergy_open),
                                         ("gate 2 (consensus "
                                          f"{gates.consensus:.2f} < {gates.threshold:.2f})",
                                          gates.consensus_open)) if not is_open]
    by = " and ".join(closed) or "the gates"
    return Reason("decided", f"decided: target {gates.target:+d}; the agents wanted "
                             f"{gates.wanted:+d}, held back by {by}")


@dataclass(frozen=True)
class Decision:
    """The team's decision at one bar's close, for the next bar."""

    time: pd.Timestamp
    """Close time of the bar decided on."""
    clock: int
    """Clock step (5-minute row; 30-minute row on strategic_v0)."""
    session: int
    """Session (backtest tile) number, from 0."""
    strategic_decision: bool
    """True when the strategic agents decided at this bar."""
    position: int
    """Contracts held now (after this bar's fills)."""
    target: int
    """Target position for the next bar (after the gates and the risk limits)."""
    wanted: int
    """Target the agents asked for (before the gates)."""
    stop_distance: float
    """Stop distance in points for a position opened on the next bar (nan: none)."""
    target_distance: float
    """Profit-target distance in points (nan: none)."""
    close: float
    """This bar's close."""
    equity: float
    """Session account equity now, in dollars."""
    actions: dict[str, Any]
    """Each agent's action (the strategic agents' latched ones between their decisions)."""
    confidence: dict[str, float]
    """Probability of each agent's greedy action (mean over heads for ``risk``)."""
    mc: dict[str, float]
    """The 15 MC-dropout features (:data:`algospace.models.mc_dropout.MC_FEATURES`)."""
    gates: GateResult
    """Both gates and what they let through."""
    closed_at_session_end: int = 0
    """Contracts of the previous session closed at this bar's close (its last step)."""
    limit: str = ""
    """The risk limit that changed the target (:data:`algospace.market.limits.LIMIT_CODES`;
    ``""``: none)."""

    @property
    def order(self) -> int:
        """Contracts to buy (> 0) or sell (< 0) at the next bar's open."""
        return self.target - self.position

    @property
    def stop_price(self) -> float:
        """Indicative stop for the target's side, from this close (nan when flat)."""
        side = (self.target > 0) - (self.target < 0)
        return self.close - side * self.stop_distance if side else math.nan

    @property
    def target_price(self) -> float:
        """Indicative profit target for the target's side, from this close (nan when flat)."""
        side = (self.target > 0) - (self.target < 0)
        return self.close + side * self.target_distance if side else math.nan

    def row(self) -> dict[str, Any]:
        """One flat row of the decision log."""
        out: dict[str, Any] = {
            "time": self.time, "clock": self.clock, "session": self.session,
            "strategic_decision": self.strategic_decision, "position": self.position,
            "wanted": self.wanted, "target": self.target, "order": self.order,
            "stop_distance": self.stop_distance, "target_distance": self.target_distance,
            "stop_price": self.stop_price, "target_price": self.target_price,
            "close": self.close, "equity": self.equity,
            "closed_at_session_end": self.closed_at_session_end,
            "gate_synergy": self.gates.synergy_open, "gate_consensus": self.gates.consensus_open,
            "consensus": self.gates.consensus, "threshold": self.gates.threshold,
            "held_back": self.gates.held_back, "limit": self.limit,
        }
        for agent, action in sorted(self.actions.items()):
            out[f"action_{agent}"] = (" ".join(map(str, action)) if isinstance(action, list)
                                      else action)
            out[f"confidence_{agent}"] = self.confidence[agent]
        out.update({f"mc_{k}": v for k, v in self.mc.items()})
        return out


@dataclass(frozen=True)
class Replay:
    """What a replay of bars through the engine produced."""

    decisions: pd.DataFrame
    """One row per decision (:meth:`Decision.row`)."""
    equity: pd.Series
    """Equity after each executed bar, sessions chained (as the backtest's curve)."""
    positions: np.ndarray
    """Contracts held at the close of each executed bar (0 after a session-end close)."""
    trades: pd.DataFrame
    """Closed round trips (``Account.trades`` columns plus ``tile``, the session)."""
    gate_counts: dict[str, int]
    """How often each gate was closed, and how often the gates held a trade back."""
    sessions: int
    """Sessions started."""
    seconds_per_bar: float
    """Mean wall time per streamed bar (features and decision)."""
    decision_us: np.ndarray
    """Wall time of each decision step alone (the agents, their MC passes and the gates;
    not the feature update), in microseconds."""
