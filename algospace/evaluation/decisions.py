"""What a backtest decided at each executed bar, kept so the account can be re-run.

:class:`DecisionLog` is filled by :func:`algospace.evaluation.backtest.backtest` step by
step: the target position sent to the account for the bar, the bracket distances the
account was given with it, the tile the bar belongs to, and which layer moved the target.
:mod:`algospace.evaluation.costs` re-runs the account on these decisions at other costs;
:mod:`algospace.evaluation.attribution` splits the P&L by the layer that moved the target.

**Which layer moved the target.** Before each decision the latched inputs of the target
are read: the strategic layer's (bias and risk budget) and the tactical layer's (signal
and the risk agent's size). When the target differs from the tile's previous target, the
bar is credited to the layer whose inputs changed — ``strategic``, ``tactical``, or
``both layers`` when both changed on a strategic decision bar; ``other`` when neither did
(the block after a bracket exit or its release, or the gates holding exposure back).
On single_v0 the one agent (``trader``) moves it. A bar whose target did not change keeps
the label of the change that set it; a tile starts flat, labelled ``none``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["LAYER_LABELS", "DecisionLog", "Decisions"]

LAYER_LABELS: tuple[str, ...] = ("strategic", "tactical", "both layers", "trader", "other",
                                 "none")
"""Every label of :attr:`Decisions.moved_by`, in the order the report lists them."""


@dataclass(frozen=True)
class Decisions:
    """Per executed bar: the account's inputs and who moved the target."""

    targets: np.ndarray
    """The target position sent to the account for the bar (contracts, signed)."""
    stop_distance: np.ndarray
    """The bracket's stop distance given with it (points; nan: none)."""
    target_distance: np.ndarray
    """The bracket's target distance given with it (points; nan: none)."""
    tiles: np.ndarray
    """The episode tile of the bar (0, 1, …; consecutive bars of a tile are adjacent)."""
    moved_by: np.ndarray
    """The layer that moved the target to its value at this bar (:data:`LAYER_LABELS`)."""


@dataclass
class DecisionLog:
    """Collects :class:`Decisions` during a backtest (see the module docstring)."""

    single: bool = False
    """True on single_v0 (one agent: every move is the ``trader``'s)."""
    _rows: list[tuple[int, float, float, int, str]] = field(default_factory=list)
    _previous: int = 0
    _owner: str = "none"
    _tile: int = -1

    @staticmethod
    def latches(env: Any) -> tuple[tuple[float, float], tuple[float, float]]:
        """The strategic (bias, budget) and tactical (signal, size) inputs of the target."""
        return (float(env._bias), float(env._budget)), (float(env._signal),
                                                        float(env._risk[0]))

    def add(self, env: Any, tile: int, before: tuple[tuple[float, float], tuple[float, float]],
            target: int) -> None:
        """Record the bar about to be executed: call after the decision, before execute."""
        if tile != self._tile:
            self._tile, self._previous, self._owner = tile, 0, "none"
        if target != self._previous:
            after = self.latches(env)
            strategic, tactical = before[0] != after[0], before[1] != after[1]
            self._owner = ("trader" if self.single else "both layers" if strategic and tactical
                           else "strategic" if strategic else "tactical" if tactical
                           else "other")
            self._previous = target
        stop_d, take_d = env.stop_and_target()
        self._rows.append((int(target), float(stop_d), float(take_d), tile, self._owner))

    def decisions(self) -> Decisions:
        """The decisions recorded so far."""
        cols = list(zip(*self._rows, strict=True)) if self._rows else [()] * 5
        return Decisions(np.asarray(cols[0], dtype=np.int64),
                         np.asarray(cols[1], dtype=np.float64),
                         np.asarray(cols[2], dtype=np.float64),
                         np.asarray(cols[3], dtype=np.int64),
                         np.asarray(cols[4], dtype=object))
