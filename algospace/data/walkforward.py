"""Walk-forward folds with purge and embargo, and per-fold train-only normalisation.

Layout (``n`` base bars, ``K`` folds, ``T = test_fraction · n``, ``V = val_fraction · n``,
purge ``p``, embargo ``e``)::

    fold k:   train ........ | p | val (V) | p | test_k (T)
    test_0 | test_1 | ... | test_{K-1}      (the last K·T bars, in time order)

The ``K`` test blocks tile the last ``K · T`` bars, each later than the one before. Fold
``k``'s validation block ends ``p`` bars before its test block, and its training ends ``p``
bars before its validation block. Every cut is moved to a strategic-bucket start (block
starts forward, block ends back, so gaps only grow and no strategic bar straddles two
blocks). Fold ``k + 1``'s validation block may overlap fold ``k``'s test block: a fold's
blocks are kept apart from each other, not from other folds'. Training starts at bar 0
(``anchored``) or is a window of ``train_fraction · n`` bars ending at the same place
(``rolling``; default length: the first fold's training).

**Purge.** The ``p`` bars between train and val, and between val and test, are in no block.
With ``p`` = the longest feature look-back + one episode (:func:`default_purge_bars`) no
validation (test) observation's look-back window reads a bar its fold trained (validated)
on, and no episode, drawn wholly inside one block, can reach the next block.
MLMI's kNN memory (its 2000 latest completed crossovers) reaches back further than any
purge by design; it never reads a bar after ``t`` (see :mod:`algospace.features.mlmi`).

**Embargo.** A later fold trains on earlier folds' test blocks (anchored: all of them;
rolling: those in its window). The ``e`` bars right after each earlier test block are taken
out of every later fold's training (López de Prado, *Advances in Financial Machine
Learning*, ch. 7.4.2): with ``e`` = the longest look-back (:func:`default_embargo_bars`)
these are the bars whose observations are built from that test block. A fold's own test
score needs only the purge — its training always ends before its test block starts.

**Design.** A fold's training is therefore a tuple of disjoint ranges (:class:`Fold`):
the holes are the embargoes. An episode must lie inside one range. :meth:`Fold.train_mask`
marks the training bars; :meth:`Fold.splits` gives a :class:`Splits` where the training
is one range (the first fold, rolling folds whose window holds no embargo, ``e = 0``).
A trial given ``fold=k`` takes ``walk_forward_folds(...)[k]`` (:func:`walk_forward_fold`)
and normalises with :func:`fold_normalisation`, fitted on that fold's training bars only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

from algospace.data.splits import Normalizer, Splits, strategic_rows
from algospace.errors import ConfigError, DataError

Mode = Literal["anchored", "rolling"]
MODES: tuple[str, ...] = ("anchored", "rolling")
KEY = "evaluation.walk_forward"
"""The config key the messages name."""

NWRQK_LOOKBACK = 100
"""Strategic bars before ``t`` in the NW-RQK kernel (``compute_nwrqk``'s ``lookback``)."""
MMD_LOOKBACK = 192 + 48 + 48 + 192 - 1
"""Strategic bars before ``t`` that ``mmd_3`` reads: normaliser window 192 and lag 48, then
its recent 48 and reference 192 bars (:mod:`algospace.features.mmd`)."""
FVG_BODY_BARS = 12
"""Bars before an FVG's detection bar that its body filter reads (10-bar mean, 2 candles)."""
VOLUME_RATIO_BARS = 20
"""Bars before ``t`` in the tactical volume ratio."""

NORMALISED: tuple[tuple[str, bool], ...] = (
    ("returns_base", False), ("returns_strategic", True),
    ("features_tactical", False), ("features_strategic", True))
"""The prepared tables normalised per fold, and whether a table is on the strategic clock."""


class FeatureWindows(Protocol):
    """The windows of :class:`algospace.features.build.FeatureConfig` the look-back uses."""

    @property
    def strategic_window(self) -> int: ...
    @property
    def tactical_window(self) -> int: ...
    @property
    def lvn_window(self) -> int: ...
    @property
    def fvg_max_age(self) -> int: ...


def lookback_bars(features: FeatureWindows, bar_minutes: int, strategic_minutes: int) -> int:
    """The longest look-back of one observation, in base bars.

    Strategic: the matrix's ``strategic_window`` rows, the oldest reading its longest feature
    window (MMD, NW-RQK or the LVN profile) further back, plus the bucket in progress.
    Tactical: ``tactical_window`` rows, the oldest reading an FVG up to ``fvg_max_age`` bars
    old and its body filter, or the volume ratio's 20 bars.
    """
    if bar_minutes < 1 or strategic_minutes % bar_minutes:
        raise ConfigError(f"strategic_minutes ({strategic_minutes}) must be a whole multiple of "
                          f"the bar size ({bar_minutes} min)")
    ratio = strategic_minutes // bar_minutes
    strategic = features.strategic_window + max(MMD_LOOKBACK, NWRQK_LOOKBACK, features.lvn_window)
    tactical = features.tactical_window - 1 + max(features.fvg_max_age + FVG_BODY_BARS,
                                                  VOLUME_RATIO_BARS)
    return max(strategic * ratio, tactical)


def episode_bars(episode_steps: int, strategic_clock: bool, bar_minutes: int,
                 strategic_minutes: int) -> int:
    """One episode's length in base bars (``episode_steps`` strategic or base steps)."""
    return episode_steps * (strategic_minutes // bar_minutes if strategic_clock else 1)


def default_purge_bars(features: FeatureWindows, bar_minutes: int, strategic_minutes: int,
                       episode: int) -> int:
    """``purge_bars: auto``: the longest look-back plus one episode (``episode`` base bars)."""
    return lookback_bars(features, bar_minutes, strategic_minutes) + episode


def default_embargo_bars(features: FeatureWindows, bar_minutes: int,
                         strategic_minutes: int) -> int:
    """``embargo_bars: auto``: the longest look-back (bars whose observations read the block)."""
    return lookback_bars(features, bar_minutes, strategic_minutes)


def resolve_gaps(purge: int | str, embargo: int | str, features: FeatureWindows,
                 bar_minutes: int, strategic_minutes: int, episode: int) -> tuple[int, int]:
    """``(purge, embargo)`` in base bars, ``auto`` replaced by its default."""
    p = default_purge_bars(features, bar_minutes, strategic_minutes, episode) \
        if purge == "auto" else int(purge)
    e = default_embargo_bars(features, bar_minutes, strategic_minutes) \
        if embargo == "auto" else int(embargo)
    return p, e


def check_layout(folds: int, mode: str, val_fraction: float, test_fraction: float,
                 train_fraction: float | None) -> None:
    """Config-level checks of a layout (the bar counts are checked with the data)."""
    if folds < 2:
        raise ConfigError(f"{KEY}.folds must be >= 2, got {folds} (null switches walk-forward "
                          "off; data.split is the single split)")
    if mode not in MODES:
        raise ConfigError(f"{KEY}.mode must be one of {', '.join(MODES)}, got {mode!r}")
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction),
                        ("train_fraction", train_fraction)):
        if value is not None and not 0 < value < 1:
            raise ConfigError(f"{KEY}.{name} must lie in (0, 1), got {value!r}")
    if train_fraction is not None and mode != "rolling":
        raise ConfigError(f"{KEY}.train_fraction applies to mode: rolling only (anchored "
                          "training starts at the first bar); remove it or set mode: rolling")
    used = folds * test_fraction + val_fraction
    if used >= 1 - 1e-9:
        raise ConfigError(f"{KEY}: {folds} folds × test_fraction {test_fraction:g} + "
                          f"val_fraction {val_fraction:g} = {used:g} leaves no bars to train "
                          "the first fold; lower folds, test_fraction or val_fraction")


@dataclass(frozen=True)
class Fold:
    """One walk-forward fold: half-open ``[start, stop)`` rows of the base bars."""

    index: int
    """Position of the fold (0 = earliest test block)."""
    train: tuple[tuple[int, int], ...]
    """Disjoint training ranges in time order (holes: earlier test blocks' embargoes)."""
    val: tuple[int, int]
    test: tuple[int, int]
    purge: int
    """Bars left out between train and val and between val and test."""
    embargo: int
    """Bars after each earlier test block left out of this fold's training."""

    @property
    def train_bars(self) -> int:
        """Number of training bars."""
        return sum(b - a for a, b in self.train)

    def train_mask(self, n: int) -> np.ndarray:
        """Boolean per base bar: is it a training bar of this fold."""
        mask = np.zeros(n, dtype=bool)
        for a, b in self.train:
            mask[a:b] = True
        return mask

    def splits(self) -> Splits:
        """The fold as :class:`Splits`; only where its training is one range."""
        if len(self.train) != 1:
            raise ConfigError(
                f"walk-forward fold {self.index} trains on {len(self.train)} ranges "
                f"{[list(r) for r in self.train]} (embargo holes); use Fold.train_mask, or "
                f"set {KEY}.embargo_bars: 0")
        return Splits(train=self.train[0], val=self.val, test=self.test)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"fold": self.index, "train": [list(r) for r in self.train],
                "val": list(self.val), "test": list(self.test), "purge": self.purge,
                "embargo": self.embargo}


class _Snap:
    """Moves row numbers onto strategic-bucket starts (or ``n``)."""

    def __init__(self, open_time: pd.DatetimeIndex, snap_minutes: int) -> None:
        bucket = open_time.floor(f"{snap_minutes}min").asi8
        self.n = len(open_time)
        starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
        self.starts = np.r_[starts, self.n]

    def up(self, row: int) -> int:
        """The first bucket start at or after ``row``."""
        k = np.searchsorted(self.starts, min(max(row, 0), self.n), side="left")
        return int(self.starts[k])

    def down(self, row: int) -> int:
        """The last bucket start at or before ``row``."""
        k = np.searchsorted(self.starts, min(max(row, 0), self.n), side="right") - 1
        return int(self.starts[max(k, 0)])


def _subtract(lo: int, hi: int, holes: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """``[lo, hi)`` without the ``holes`` (sorted, disjoint), empty pieces dropped."""
    out, start = [], lo
    for a, b in holes:
        if a >= hi or b <= start:
            continue
        if a > start:
            out.append((start, a))
        start = max(start, b)
    if start < hi:
        out.append((start, hi))
    return tuple(out)


def walk_forward_folds(
    open_time: pd.DatetimeIndex,
    folds: int = 4,
    mode: Mode = "anchored",
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    train_fraction: float | None = None,
    purge_bars: int = 0,
    embargo_bars: int = 0,
    snap_minutes: int = 30,
) -> list[Fold]:
    """The ``folds`` walk-forward folds over bars opening at ``open_time`` (see the module).

    ``purge_bars`` and ``embargo_bars`` are base bars (:func:`resolve_gaps` turns ``auto``
    into numbers). Raises :class:`DataError` naming the bar counts when a block would be empty.
    """
    check_layout(folds, mode, val_fraction, test_fraction, train_fraction)
    if purge_bars < 0 or embargo_bars < 0:
        raise ConfigError(f"{KEY}: purge_bars and embargo_bars must be >= 0, got "
                          f"{purge_bars} and {embargo_bars}")
    snap = _Snap(open_time, snap_minutes)
    n = snap.n
    test_len, val_len = round(test_fraction * n), round(val_fraction * n)
    starts = [snap.up(n - (folds - k) * test_len) for k in range(folds)]
    stops = [*starts[1:], n]
    window = None if train_fraction is None else round(train_fraction * n)
    out = []
    for k in range(folds):
        val_stop = snap.down(starts[k] - purge_bars)
        val_start = snap.up(val_stop - val_len)
        train_stop = snap.down(val_start - purge_bars)
        if window is None and mode == "rolling":
            window = train_stop  # every rolling window as long as the first fold's training
        train_start = 0 if mode == "anchored" else snap.up(train_stop - int(window or 0))
        holes = [(s, snap.up(s + embargo_bars)) for s in stops[:k] if embargo_bars > 0]
        fold = Fold(k, _subtract(train_start, train_stop, holes), (val_start, val_stop),
                    (starts[k], stops[k]), purge_bars, embargo_bars)
        _check_fold(fold, n, folds)
        out.append(fold)
    return out


def _check_fold(fold: Fold, n: int, folds: int) -> None:
    """Every block of ``fold`` needs bars; else say how many there are and what to change."""
    val, test = fold.val[1] - fold.val[0], fold.test[1] - fold.test[0]
    if fold.train_bars > 0 and val > 0 and test > 0:
        return
    raise DataError(
        f"{n} bars are too few for {folds} walk-forward folds: fold {fold.index} gets "
        f"{fold.train_bars} train, {max(val, 0)} val and {max(test, 0)} test bars after "
        f"purging {fold.purge} bars before val and before test (embargo {fold.embargo})",
        fix=f"lower {KEY}.folds, test_fraction, val_fraction or purge_bars, or use more "
            "data (a longer file, or a larger data.synthetic.days)")


def walk_forward_fold(open_time: pd.DatetimeIndex, fold: int, **layout: Any) -> Fold:
    """Fold number ``fold`` of :func:`walk_forward_folds` (``layout``: its keyword arguments);
    what a trial given ``fold=k`` trains, validates and tests on."""
    folds = walk_forward_folds(open_time, **layout)
    if not 0 <= fold < len(folds):
        raise ConfigError(f"fold {fold} does not exist: {KEY} has {len(folds)} folds "
                          f"(0 to {len(folds) - 1})")
    return folds[fold]


def strategic_train_rows(strategic_index: np.ndarray, fold: Fold) -> np.ndarray:
    """Strategic rows whose bar closed within one of ``fold``'s training ranges."""
    rows: set[int] = set()
    for part in fold.train:
        a, b = strategic_rows(strategic_index, part)
        rows.update(range(a, b))
    return np.array(sorted(rows), dtype=np.int64)


def fit_rows(frame: pd.DataFrame, rows: np.ndarray) -> Normalizer:
    """A :class:`Normalizer` fitted on ``rows`` of ``frame`` only."""
    return Normalizer.fit(frame.iloc[rows], (0, len(rows)))


def fold_normalisation(tables: Mapping[str, pd.DataFrame], strategic_index: np.ndarray,
                       fold: Fold) -> dict[str, Normalizer]:
    """Per table of :data:`NORMALISED`, statistics fitted on ``fold``'s training bars only
    (strategic tables: the strategic bars that closed within them), as the prepared data's
    ``normalisation`` is fitted on ``data.split``'s train split."""
    base_rows = np.flatnonzero(fold.train_mask(len(strategic_index)))
    strategic_rows = strategic_train_rows(np.asarray(strategic_index), fold)
    return {name: fit_rows(tables[name], strategic_rows if strategic else base_rows)
            for name, strategic in NORMALISED}


def fold_meta(meta: Mapping[str, Any], fold: Fold, norms: Mapping[str, Normalizer],
              close: np.ndarray) -> dict[str, Any]:
    """The prepared data's ``meta`` for ``fold``: its normalisation, the training bars'
    highest close as reference price, and the fold's ranges. The env arrays of the fold
    are derived from it (``envs.core.data.derive_arrays(tables, fold_meta(...), ...)``)."""
    train = fold.train_mask(len(close))
    return {**meta, "normalisation": {name: n.to_dict() for name, n in norms.items()},
            "normalisation_fitted_on": f"walk-forward fold {fold.index} train",
            "reference_price": float(np.max(np.asarray(close)[train])),
            "walk_forward_fold": fold.as_dict()}
