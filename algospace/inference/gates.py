"""The two-gate decision: a new position is sent only when both gates are open.

**Gate 1 — synergy.** The deterministic synergy detector
(:mod:`algospace.features.synergy`: MLMI, NW-RQK and FVG agreeing within 10
five-minute steps) has an active synergy, and its direction is the direction
of the new exposure.

**Gate 2 — MC-dropout consensus.** Over the agents that act (their per-agent
statistics from ``N`` dropout passes, :data:`algospace.models.mc_dropout.AGENT_STATS`),
the consensus is the mean ``top_prob`` — the ``gate_open`` feature of the
critic's 15 MC features — and its direction the mean ``direction``. The gate
is open when the consensus reaches the threshold and the consensus direction
is the direction of the new exposure. The threshold is raised

* by ``regime_adjustment`` when the ``regime`` agent's own direction opposes
  the new exposure (the regime view disagrees), and
* by ``drawdown_adjustment`` per percent of drawdown from the account's
  equity peak (risk),

and capped at ``max_threshold``.

**Gate 1 may be recorded only** (``synergy_gate=False``): gate 2 then decides alone. A
test report chooses this, like gate 2's threshold, on the validation split
(:mod:`algospace.evaluation.gate_choice`); the default keeps both gates.

**What the gates hold back.** Only new exposure: opening a position, adding
to one, or the new side of a reversal. Reducing or closing a position (and
the stops and targets of the account) is never held back. When a gate is
closed a wanted increase becomes "keep the current position", and a wanted
reversal becomes "close". Every decision records both gates, whatever the
order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from algospace.config import CONSENSUS_THRESHOLD
from algospace.errors import ConfigError
from algospace.models.mc_dropout import AGENT_STATS

_TOP = AGENT_STATS.index("top_prob")
_DIR = AGENT_STATS.index("direction")


@dataclass(frozen=True)
class GateConfig:
    """Two-gate settings (the ``gates`` section of ``algospace decide``)."""

    enforce: bool = True
    """Hold back new exposure unless both gates are open; False: record the gates only."""
    synergy_gate: bool = True
    """Gate 1 holds back new exposure; False: gate 1 is recorded only, gate 2 decides."""
    threshold: float = CONSENSUS_THRESHOLD
    """Gate 2: the agents' mean top-action probability must reach this."""
    regime_adjustment: float = 0.05
    """Added to the threshold when the regime agent's direction opposes the trade."""
    drawdown_adjustment: float = 0.01
    """Added to the threshold per percent of drawdown from the equity peak."""
    max_threshold: float = 0.95
    """Cap of the adjusted threshold."""

    def __post_init__(self) -> None:
        for name in ("threshold", "max_threshold"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"gates.{name} must lie in [0, 1], got {value!r}")
        for name in ("regime_adjustment", "drawdown_adjustment"):
            if getattr(self, name) < 0:
                raise ConfigError(f"gates.{name} must be >= 0, got {getattr(self, name)!r}")
        if self.max_threshold < self.threshold:
            raise ConfigError(f"gates.max_threshold ({self.max_threshold}) is below "
                              f"gates.threshold ({self.threshold})")


@dataclass(frozen=True)
class GateResult:
    """Both gates at one decision, and the target they let through."""

    synergy_open: bool
    """Gate 1: a synergy is active (in either direction)."""
    consensus_open: bool
    """Gate 2: the consensus reaches the adjusted threshold."""
    consensus: float
    """Mean top-action probability of the acting agents."""
    consensus_direction: float
    """Mean direction of the acting agents, in [-1, 1]."""
    threshold: float
    """The adjusted threshold gate 2 used."""
    wanted: int
    """The agents' target position (contracts)."""
    target: int
    """The target sent: ``wanted``, or what the closed gates leave of it."""
    grows: bool = False
    """The agents wanted new exposure (open, add, or the new side of a reversal): the only
    wish the gates can hold back."""

    @property
    def held_back(self) -> bool:
        """True when the gates changed the target."""
        return self.target != self.wanted


def _sign(x: float) -> int:
    return int((x > 0) - (x < 0))


def apply_gates(wanted: int, position: int, *, synergy_direction: float,
                stats: Mapping[str, np.ndarray], drawdown_pct: float,
                cfg: GateConfig) -> GateResult:
    """Open/closed gates and the target they allow (see the module docstring).

    ``stats`` maps each acting agent to its six MC statistics; ``drawdown_pct`` is the
    drawdown from the equity peak in percent of the initial equity.
    """
    if not stats:
        raise ValueError("apply_gates needs the MC statistics of at least one agent")
    table = np.stack([np.asarray(v, dtype=np.float64) for v in stats.values()])
    if table.ndim != 2 or table.shape[1] != len(AGENT_STATS):
        raise ValueError(f"each agent needs {len(AGENT_STATS)} statistics, got {table.shape}")
    consensus = float(table[:, _TOP].mean())
    direction = float(np.clip(table[:, _DIR].mean(), -1.0, 1.0))
    side = _sign(wanted) if wanted != position else 0
    threshold = cfg.threshold + cfg.drawdown_adjustment * max(0.0, drawdown_pct)
    regime = stats.get("regime")
    if regime is not None and side and _sign(float(regime[_DIR])) == -side:
        threshold += cfg.regime_adjustment
    threshold = min(threshold, cfg.max_threshold)
    synergy_open = _sign(synergy_direction) != 0
    consensus_open = consensus >= threshold
    target = wanted
    grows = wanted != 0 and (_sign(wanted) != _sign(position) or abs(wanted) > abs(position))
    if cfg.enforce and grows:
        gate1 = synergy_open and _sign(synergy_direction) == _sign(wanted)
        agree = ((gate1 or not cfg.synergy_gate) and consensus_open
                 and _sign(direction) == _sign(wanted))
        if not agree:
            target = position if _sign(position) == _sign(wanted) else 0
    return GateResult(synergy_open, consensus_open, consensus, direction, threshold, wanted,
                      target, grows)
