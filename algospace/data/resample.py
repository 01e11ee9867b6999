"""Resampling base bars into strategic bars, and aligning them back causally.

**Resampling.** Base bars (e.g. 5-minute) are grouped into clock-aligned
buckets of ``strategic_minutes`` (default 30: 09:30–10:00, 10:00–10:30, …) by
their open time. Because buckets follow the clock, a bucket never spans a
session break: bars before and after a gap land in different buckets. A
bucket cut short by a session close or missing bars is kept (it still
closed); the last bucket of the data is dropped when it is incomplete, since
it had not closed when the data ended. Aggregation: open = first open,
high = max, low = min, close = last close, volume = sum.

**Alignment.** A strategic bar is usable at a base step only once it has
closed: bar ``j`` (open ``s_j``, close ``s_j + strategic``) is visible at base
step ``t`` iff ``s_j + strategic <= close_time[t]``, the moment the base
step's decision is made. :func:`align_index` returns, for every base step,
the index of the latest visible strategic bar (``-1`` before the first).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from algospace.data.bars import COLUMNS, Bars
from algospace.errors import ConfigError, DataError


def check_factor(base_minutes: int, strategic_minutes: int) -> int:
    """Bars per strategic bar; raise if strategic is not a whole multiple of base."""
    if strategic_minutes < base_minutes or strategic_minutes % base_minutes:
        raise ConfigError(
            f"strategic bar size {strategic_minutes} min is not a whole multiple of the "
            f"data's {base_minutes}-min bars; set data.strategic_minutes to a multiple of "
            f"{base_minutes} (e.g. {max(30, base_minutes) // base_minutes * base_minutes})"
        )
    if 1440 % strategic_minutes:
        raise ConfigError(
            f"strategic bar size {strategic_minutes} min must divide a day (1440 min) so "
            "buckets stay clock-aligned"
        )
    return strategic_minutes // base_minutes


def resample(bars: Bars, strategic_minutes: int = 30) -> Bars:
    """Aggregate base bars into clock-aligned strategic bars (see module docstring)."""
    check_factor(bars.bar_minutes, strategic_minutes)
    frame = bars.frame
    bucket = frame.index.floor(f"{strategic_minutes}min")
    groups = frame.groupby(bucket, sort=True)
    out = pd.DataFrame(
        {
            "open": groups["open"].first(),
            "high": groups["high"].max(),
            "low": groups["low"].min(),
            "close": groups["close"].last(),
            "volume": groups["volume"].sum(),
        }
    )[list(COLUMNS)]
    out.index.name = "open_time"
    last_close = frame.index[-1] + bars.bar
    if len(out) and out.index[-1] + pd.Timedelta(minutes=strategic_minutes) > last_close:
        out = out.iloc[:-1]
    if out.empty:
        raise DataError(
            f"not enough data for one complete {strategic_minutes}-min bar",
            path=bars.source or None,
        )
    return Bars(frame=out, bar_minutes=strategic_minutes, source=bars.source)


def align_index(base: Bars, strategic: Bars) -> np.ndarray:
    """For each base step, the index of the latest strategic bar closed by then (-1: none)."""
    strategic_close = strategic.close_time.asi8
    base_close = base.close_time.asi8
    return np.searchsorted(strategic_close, base_close, side="right").astype(np.int64) - 1


def check_agreement(
    resampled: Bars, given: Bars, tick_size: float, *, max_mismatch: float = 0.01
) -> None:
    """Check a user's strategic file against bars resampled from their base file."""
    if given.bar_minutes != resampled.bar_minutes:
        raise DataError(
            f"the strategic file has {given.bar_minutes}-min bars, expected "
            f"{resampled.bar_minutes}-min", path=given.source or None,
            fix="set data.strategic_minutes to the file's bar size or drop the file",
        )
    common = resampled.frame.index.intersection(given.frame.index)
    if len(common) < 0.5 * min(len(resampled), len(given)):
        raise DataError(
            f"only {len(common)} of {len(given)} strategic bars have a matching bar resampled "
            "from the base file", path=given.source or None,
            fix="check that both files cover the same dates and use the same timestamp "
            "convention (data.timestamps: open|close)",
        )
    a = resampled.frame.loc[common, ["open", "high", "low", "close"]].to_numpy()
    b = given.frame.loc[common, ["open", "high", "low", "close"]].to_numpy()
    bad = np.flatnonzero((np.abs(a - b) > tick_size + 1e-9).any(axis=1))
    if bad.size > max_mismatch * len(common):
        i = int(bad[0])
        raise DataError(
            f"{bad.size} of {len(common)} strategic bars disagree with the base file "
            f"by more than one tick; first at {common[i]}: file OHLC {b[i].tolist()}, "
            f"resampled {a[i].tolist()}", path=given.source or None,
            fix="check that both files are the same instrument and use the same timestamp "
            "convention (a one-bar shift means one file stamps bar open, the other close)",
        )
