"""Matrix assemblers: fixed-shape feature windows sliced without copying.

:class:`MatrixAssembler` wraps one float32 feature table (rows × features) and
hands out the window of the ``window`` rows ending at a row as a numpy view —
always the full shape, never a shorter matrix. A row is *valid* when its
whole window is finite (warm-up rows are excluded, not padded).

:class:`FeatureMatrices` pairs the 30-minute and 5-minute assemblers on the
5-minute clock: at base step ``t`` the strategic matrix is the window ending at
the latest 30-minute bar closed by ``t`` (``strategic_index[t]``), so it
advances only when a 30-minute bar closes; the tactical matrix is the window
ending at ``t``. A step is usable when both windows are valid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from algospace.errors import DataError


def complete_rows(values: np.ndarray, window: int) -> np.ndarray:
    """Per row of a 2-d table, whether it and the ``window - 1`` rows before it are all
    finite (a complete window ends there)."""
    n = len(values)
    valid = np.zeros(n, bool)
    if n >= window:
        bad = np.concatenate([[0], np.cumsum(~np.isfinite(values).all(axis=1))])
        valid[window - 1:] = bad[window:] == bad[:n - window + 1]
    return valid


class MatrixAssembler:
    """Windows of ``window`` rows over a (rows × features) float32 table."""

    def __init__(self, values: np.ndarray, window: int) -> None:
        values = np.ascontiguousarray(values, dtype=np.float32)
        if values.ndim != 2 or window < 1:
            raise ValueError(f"need a 2-d table and window >= 1, got {values.shape}, {window}")
        self.values = values
        self.window = window
        self.valid = complete_rows(values, window)
        self._windows = (sliding_window_view(values, (window, values.shape[1]))[:, 0]
                         if len(values) >= window else np.empty((0, window, values.shape[1]),
                                                                np.float32))

    @property
    def shape(self) -> tuple[int, int]:
        """(window, features) of every matrix handed out."""
        return (self.window, self.values.shape[1])

    def at(self, row: int) -> np.ndarray:
        """The window ending at ``row`` (a read-only view); ``row`` must be valid."""
        if not (0 <= row < len(self.values)) or not self.valid[row]:
            raise IndexError(f"row {row} has no complete window of {self.window} finite rows")
        return self._windows[row - self.window + 1]


@dataclass(frozen=True)
class FeatureMatrices:
    """Both assemblers on the 5-minute clock."""

    strategic: MatrixAssembler
    tactical: MatrixAssembler
    strategic_index: np.ndarray
    """Per 5-minute step, the latest closed 30-minute row (-1: none)."""

    def __post_init__(self) -> None:
        if len(self.strategic_index) != len(self.tactical.values):
            raise DataError("alignment and tactical table lengths differ; prepare the data again")

    @property
    def usable(self) -> np.ndarray:
        """Per 5-minute step: both windows complete and finite."""
        idx = self.strategic_index
        strategic_ok = np.zeros(len(idx), dtype=bool)
        seen = idx >= 0
        strategic_ok[seen] = self.strategic.valid[idx[seen]]
        return strategic_ok & self.tactical.valid

    def first_usable(self) -> int:
        """The first usable 5-minute step."""
        steps = np.flatnonzero(self.usable)
        if steps.size == 0:
            raise DataError("no 5-minute step has complete feature windows",
                            fix="use more data (the 30-minute window alone needs ~2 weeks "
                                "of bars after indicator warm-up)")
        return int(steps[0])

    def strategic_at(self, step: int) -> np.ndarray:
        """The 30-minute matrix visible at 5-minute step ``step``."""
        return self.strategic.at(int(self.strategic_index[step]))

    def tactical_at(self, step: int) -> np.ndarray:
        """The 5-minute matrix at step ``step``."""
        return self.tactical.at(step)
