"""The regime detector's inputs: causal per-bar features of 30-minute bars.

:func:`regime_features` computes one row per strategic (30-minute) bar with
the columns of :data:`REGIME_FEATURES`; the value at bar ``t`` uses bars
``<= t`` only, and warm-up rows are NaN. With ``c`` = close, ``h`` = high,
``l`` = low:

``mmd_1``, ``mmd_2``, ``mmd_3``, ``volatility_30``, ``volume_skew``
    The regime features of :mod:`algospace.features.mmd` (distribution shift
    of standardised returns at three scales, 30-bar volatility in percent,
    volume-weighted skew of typical price). ``mmd_3`` has the longest
    warm-up: bars 0..478 are NaN with the default scales.
``log_return``
    ``ln(c[t] / c[t-1])``: direction and size of the bar's move (bar 0 NaN).
``range_rel``
    The bar's log range relative to the usual range at that time of day:
    ``ln(max(ln(h[t] / l[t]), 1e-5))`` minus the mean of the same quantity over
    the previous ``season_days`` (default 10) bars with the same clock slot
    (the same 30 minutes of the day, i.e. the same slot of earlier sessions).
    Intraday volatility follows a strong clock pattern (quiet overnight, busy
    after the 09:30 open); removing it leaves the regime's volatility
    multiplier (e.g. about ln 0.7 in a quiet range, ln 2.25 when volatile).
    The 1e-5 floor (0.1 basis point) only guards one-price bars.
``volume_rel``
    ``ln(1 + v[t])`` minus its mean over the previous ``season_days`` bars of
    the same clock slot: volume relative to its time-of-day norm.

``range_rel`` and ``volume_rel`` are NaN until their slot has
``season_days`` earlier bars (about ``season_days`` sessions, 460 bars at
the default), which is shorter than ``mmd_3``'s warm-up. The norm is the sum of
those ``season_days`` values, oldest first, divided by ``season_days``
(:func:`relative_to_season`): a function of the window alone, so a row computed on
its own (:class:`RegimeRows`) equals the batch row bit for bit. (A running rolling
sum, as ``pandas.rolling().mean()`` keeps, rounds differently with the history
before the window: up to about 1e-15 apart.)

**Look-back.** Row ``t`` reads bars ``t - REGIME_LOOKBACK .. t`` for its MMD
columns (:data:`REGIME_LOOKBACK`, ``mmd_3``'s) and, for ``range_rel`` and
``volume_rel``, the ``season_days`` earlier bars of its own clock slot — a count
of same-slot bars, so its span in bars depends on the calendar (holidays, a slot
traded only on some days), not on a fixed number. :class:`RegimeRows` therefore
finds them through each bar's previous same-slot bar (kept as bars arrive), and
takes the MMD columns from the caller (the live stream carries MMD's sums: their
rounding depends on the 4096-bar chunk the bar falls in, so a tail recomputed
alone would not be bit-equal).

The regime detector sees a window of these rows, so within-window shape
(vol clustering, drift runs) is visible even though each column is a
per-bar value. :func:`bar_labels` maps per-base-bar labels (e.g. the
synthetic market's hidden regimes) to strategic bars for evaluation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from algospace.data.bars import Bars
from algospace.features.basic import log_return
from algospace.features.mmd import (
    DEFAULT_SCALES,
    MMD_FEATURES,
    NORM_LAG,
    NORM_WINDOW,
    mmd_features,
)
from algospace.features.streaming import Growing

REGIME_FEATURES: tuple[str, ...] = (*MMD_FEATURES, "log_return", "range_rel", "volume_rel")
"""Column order of :func:`regime_features`: ``mmd_1..3, volatility_30, volume_skew,
log_return, range_rel, volume_rel`` (see the module docstring for definitions)."""

SEASON_DAYS = 10
"""Default number of earlier same-slot bars that define the time-of-day norm."""
RANGE_FLOOR = 1e-5
"""Floor of ``ln(high / low)`` before its logarithm is taken."""
REGIME_LOOKBACK = NORM_WINDOW + NORM_LAG + max(m + n for m, n in DEFAULT_SCALES) - 1
"""Bars before bar ``t`` that its longest look-back counted in bars reads: ``mmd_3``'s
(479 = its 240-bar windows, each return scaled by the std of 192 returns ending 48 bars
earlier, and the close before the first return). Its warm-up: rows ``0 .. 478`` are NaN."""
_MMD_COLUMNS = len(MMD_FEATURES)
_MINUTES_PER_DAY = 1440
_NS_PER_MIN = 60_000_000_000


def clock_slot(bars: Bars) -> np.ndarray:
    """Index of each bar's clock slot: minutes since midnight of its open // bar size."""
    times = bars.open_time
    return np.asarray((times.hour * 60 + times.minute) // bars.bar_minutes, dtype=np.int64)


def slot_of(open_ns: np.ndarray, bar_minutes: int) -> np.ndarray:
    """:func:`clock_slot` of tz-naive open times given as int64 nanoseconds."""
    minutes = np.asarray(open_ns, np.int64) // _NS_PER_MIN % _MINUTES_PER_DAY
    return minutes // bar_minutes


def previous_same_slot(slot: np.ndarray) -> np.ndarray:
    """Per row, the row of the latest earlier row with the same slot (-1: none)."""
    slot = np.asarray(slot, np.int64)
    order = np.argsort(slot, kind="stable")
    prev = np.full(len(slot), -1, np.int64)
    same = slot[order[1:]] == slot[order[:-1]]
    prev[order[1:][same]] = order[:-1][same]
    return prev


def season_rows(prev: np.ndarray, rows: np.ndarray, days: int) -> np.ndarray:
    """``(days, len(rows))``: the rows of the ``days`` earlier same-slot rows of each of
    ``rows``, oldest first, following ``prev`` (:func:`previous_same_slot`); -1 where
    there are fewer."""
    out = np.empty((days, len(rows)), np.int64)
    at = np.asarray(rows, np.int64)
    for k in range(days - 1, -1, -1):
        at = np.where(at >= 0, prev[np.maximum(at, 0)], -1)
        out[k] = at
    return out


def _relative(values: np.ndarray, earlier: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """``values`` minus the mean of ``earlier`` (days x rows, oldest first) summed in that
    order; NaN where one of them is missing."""
    earlier = np.where(missing, np.nan, earlier)
    total = earlier[0].copy()
    for k in range(1, len(earlier)):
        total += earlier[k]
    return values - total / len(earlier)


def relative_to_season(values: np.ndarray, slot: np.ndarray, days: int) -> np.ndarray:
    """``values[t]`` minus the mean of the previous ``days`` values with the same slot
    (NaN until the slot has that many; see the module docstring for the summation)."""
    values = np.asarray(values, dtype=np.float64)
    chain = season_rows(previous_same_slot(slot), np.arange(len(values)), days)
    return _relative(values, values[chain], chain < 0)


def _log_range(high: np.ndarray, low: np.ndarray) -> np.ndarray:
    """``ln(max(ln(high / low), RANGE_FLOOR))``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(np.maximum(np.log(high / low), RANGE_FLOOR))


def regime_features(bars_30m: Bars, season_days: int = SEASON_DAYS) -> pd.DataFrame:
    """Causal regime features of every strategic bar; columns :data:`REGIME_FEATURES`."""
    if season_days < 1:
        raise ValueError(f"season_days must be >= 1, got {season_days}")
    high, low = bars_30m.column("high"), bars_30m.column("low")
    close, volume = bars_30m.column("close"), bars_30m.column("volume")
    columns = mmd_features(high, low, close, volume)
    columns["log_return"] = log_return(close)
    slot = clock_slot(bars_30m)
    columns["range_rel"] = relative_to_season(_log_range(high, low), slot, season_days)
    columns["volume_rel"] = relative_to_season(np.log1p(volume), slot, season_days)
    frame = pd.DataFrame({name: columns[name] for name in REGIME_FEATURES},
                         index=bars_30m.frame.index)
    return frame.astype(np.float64)


class RegimeRows:
    """Rows of :func:`regime_features` for the newest bars only, equal to the batch rows
    bit for bit, at a cost independent of the history (see the module docstring's
    look-back): the MMD columns come from the caller, ``log_return`` reads the bar before,
    and ``range_rel`` / ``volume_rel`` the ``season_days`` earlier same-slot bars, found
    through each bar's previous same-slot bar. That link is kept for every bar seen
    (a new bar costs one lookup; the first call, e.g. after a restore, links the history
    in bulk)."""

    def __init__(self, bar_minutes: int, season_days: int = SEASON_DAYS) -> None:
        if season_days < 1:
            raise ValueError(f"season_days must be >= 1, got {season_days}")
        self.bar_minutes = int(bar_minutes)
        self.season_days = season_days
        self._prev = Growing(dtype=np.int64)
        self._last = np.full(_MINUTES_PER_DAY // self.bar_minutes + 1, -1, np.int64)
        """Latest row of each slot among the rows linked so far (-1: none)."""

    def _link(self, open_ns: np.ndarray) -> np.ndarray:
        """:func:`previous_same_slot` of every bar, extended to the new ones."""
        done, n = self._prev.n, len(open_ns)
        if n > done:
            slot = slot_of(open_ns[done:], self.bar_minutes)
            prev = previous_same_slot(slot)
            prev = np.where(prev >= 0, prev + done, self._last[slot])
            self._prev.put(done, prev)
            self._last[slot] = np.arange(done, n)  # later rows of a slot overwrite earlier
        return self._prev.view

    def rows(self, open_ns: np.ndarray, ohlcv: np.ndarray, mmd: np.ndarray,
             first: int) -> np.ndarray:
        """Rows ``first ..`` (float64, columns :data:`REGIME_FEATURES`) of the regime
        features of the bars with open times ``open_ns`` (int64 ns, in order) and rows
        ``open, high, low, close, volume``; ``mmd``: rows ``first ..`` of their
        :data:`~algospace.features.mmd.MMD_FEATURES` (as :func:`mmd_features` gives them)."""
        n = len(open_ns)
        if not 0 <= first <= n or len(ohlcv) != n or mmd.shape != (n - first, _MMD_COLUMNS):
            raise ValueError(f"rows {first}.. of {n} bars ({len(ohlcv)} OHLCV rows) need "
                             f"{n - first} x {_MMD_COLUMNS} MMD values, got {mmd.shape}")
        if n < self._prev.n:
            raise ValueError(f"{n} bars, but {self._prev.n} were seen before: bars only "
                             "arrive, in order")
        prev = self._link(np.asarray(open_ns, np.int64))
        rows = np.arange(first, n)
        chain = season_rows(prev, rows, self.season_days)
        missing, at = chain < 0, np.maximum(chain, 0)
        high, low, close, volume = (ohlcv[:, k] for k in (1, 2, 3, 4))
        r0 = max(first - 1, 0)
        out = np.empty((n - first, len(REGIME_FEATURES)))
        out[:, :_MMD_COLUMNS] = mmd
        out[:, _MMD_COLUMNS] = log_return(close[r0:])[first - r0:]
        out[:, _MMD_COLUMNS + 1] = _relative(_log_range(high[rows], low[rows]),
                                             _log_range(high[at], low[at]), missing)
        out[:, _MMD_COLUMNS + 2] = _relative(np.log1p(volume[rows]), np.log1p(volume[at]),
                                             missing)
        return out


def bar_labels(base: Bars, labels: np.ndarray, strategic: Bars) -> np.ndarray:
    """Label of each strategic bar = label of the last base bar in its bucket (-1: none)."""
    values = np.asarray(labels)
    if len(values) != len(base):
        raise ValueError(f"labels has {len(values)} entries, base bars {len(base)}")
    bucket = base.open_time.floor(f"{strategic.bar_minutes}min")
    last = pd.Series(values, index=base.open_time).groupby(bucket).last()
    return last.reindex(strategic.open_time).fillna(-1).to_numpy().astype(np.int64)
