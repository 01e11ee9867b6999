"""Chronological train / validation / test splits and train-only normalisation.

Splits are contiguous ranges of base bars in time order (default 70/15/15).
Each boundary is moved forward to the first bar of a strategic bucket so no
strategic bar straddles two splits. Normalisation statistics (mean and
standard deviation per column) are fitted on the training range only and
applied unchanged to validation and test.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from algospace.errors import ConfigError, DataError

SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class Splits:
    """Half-open row ranges ``[start, stop)`` of each split over the base bars."""

    train: tuple[int, int]
    val: tuple[int, int]
    test: tuple[int, int]

    def range(self, name: str) -> tuple[int, int]:
        """The ``(start, stop)`` rows of split ``name``."""
        if name not in SPLIT_NAMES:
            raise ConfigError(f"unknown split {name!r}; choose one of {', '.join(SPLIT_NAMES)}")
        start, stop = getattr(self, name)
        return (start, stop)

    def as_dict(self) -> dict[str, list[int]]:
        """JSON-friendly form."""
        return {name: list(self.range(name)) for name in SPLIT_NAMES}


def check_fractions(fractions: tuple[float, float, float]) -> None:
    """Fractions must be three positive numbers summing to 1."""
    if len(fractions) != 3 or any(not f > 0 for f in fractions):
        raise ConfigError(f"data.split must be three positive fractions, got {list(fractions)}")
    if abs(sum(fractions) - 1.0) > 1e-6:
        raise ConfigError(f"data.split fractions must sum to 1, got {list(fractions)} "
                          f"(sum {sum(fractions):g})")


def chronological_split(
    open_time: pd.DatetimeIndex,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    snap_minutes: int = 30,
) -> Splits:
    """Split bars in time order, boundaries snapped to strategic-bucket starts."""
    check_fractions(fractions)
    n = len(open_time)
    bucket = open_time.floor(f"{snap_minutes}min").asi8
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    cuts = []
    for edge in np.cumsum(fractions)[:2]:
        k = np.searchsorted(starts, round(edge * n))
        cuts.append(int(starts[k]) if k < starts.size else n)
    a, b = cuts
    if not 0 < a < b < n:
        raise DataError(
            f"{n} bars are too few to split {list(fractions)}: every split needs bars",
            fix="use a longer file or a larger synthetic market (data.synthetic.days)",
        )
    return Splits(train=(0, a), val=(a, b), test=(b, n))


@dataclass(frozen=True)
class Normalizer:
    """Per-column mean and standard deviation fitted on the training split."""

    columns: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, frame: pd.DataFrame, train: tuple[int, int]) -> Normalizer:
        """Fit on rows ``train`` of ``frame`` only (NaN warm-up rows ignored)."""
        rows = frame.iloc[train[0]:train[1]].to_numpy(dtype=np.float64)
        with warnings.catch_warnings():  # a column still in warm-up over all of train
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(rows, axis=0)
            std = np.nanstd(rows, axis=0)
        std = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0)
        return cls(tuple(frame.columns), np.nan_to_num(mean), std)

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Standardise ``frame``'s columns with the fitted statistics."""
        values = (frame[list(self.columns)].to_numpy(np.float64) - self.mean) / self.std
        return pd.DataFrame(values.astype(np.float32), index=frame.index, columns=self.columns)

    def select(self, names: tuple[str, ...]) -> Normalizer:
        """The statistics of columns ``names`` only."""
        idx = [self.columns.index(n) for n in names]
        return Normalizer(tuple(names), self.mean[idx], self.std[idx])

    def to_dict(self) -> dict[str, dict[str, float]]:
        """JSON-friendly form: column → {mean, std}."""
        return {c: {"mean": float(m), "std": float(s)}
                for c, m, s in zip(self.columns, self.mean, self.std, strict=True)}

    @classmethod
    def from_dict(cls, stats: dict[str, dict[str, float]]) -> Normalizer:
        """Inverse of :meth:`to_dict`."""
        cols = tuple(stats)
        return cls(cols, np.array([stats[c]["mean"] for c in cols]),
                   np.array([stats[c]["std"] for c in cols]))


def strategic_rows(index: np.ndarray, rows: tuple[int, int]) -> tuple[int, int]:
    """Strategic bars that closed within base rows ``rows`` (a split on the 30-minute clock)."""
    visible = index[rows[0]:rows[1]]
    visible = visible[visible >= 0]
    if visible.size == 0:
        return (0, 0)
    return (int(visible.min()), int(visible.max()) + 1)
