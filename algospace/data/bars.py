"""The validated bar table every later stage reads.

A :class:`Bars` holds one instrument's OHLCV bars in a pandas DataFrame whose
index is the bar's **open** time (tz-naive, exchange wall clock as in the
file) and whose columns are ``open, high, low, close, volume`` (float64).
Whatever convention the source file used (timestamps marking bar open or bar
close), it is converted to open times on load; the close time of a bar — the
moment its values become known — is ``open_time + bar``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
"""Canonical column order of a bar table."""


@dataclass(frozen=True)
class Bars:
    """Validated OHLCV bars with their detected bar size."""

    frame: pd.DataFrame
    """Index ``open_time`` (DatetimeIndex, strictly increasing); columns :data:`COLUMNS`."""
    bar_minutes: int
    """Bar size in minutes, detected from the most common timestamp spacing."""
    source: str = ""
    """Where the bars came from (file path or synthetic-market description)."""

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def bar(self) -> pd.Timedelta:
        """The bar size as a Timedelta."""
        return pd.Timedelta(minutes=self.bar_minutes)

    @property
    def open_time(self) -> pd.DatetimeIndex:
        """Bar open times."""
        return pd.DatetimeIndex(self.frame.index)

    @property
    def close_time(self) -> pd.DatetimeIndex:
        """Bar close times: when each bar's values become known."""
        return self.open_time + self.bar

    def column(self, name: str) -> np.ndarray:
        """One column as a float64 numpy array."""
        return self.frame[name].to_numpy(dtype=np.float64)
