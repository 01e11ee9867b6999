"""Resampling against hand-computed bars, and causal alignment of 30m onto 5m."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from algospace.data.bars import COLUMNS, Bars
from algospace.data.resample import align_index, check_agreement, check_factor, resample
from algospace.errors import ConfigError, DataError


def make_bars(stamps: list[str] | pd.DatetimeIndex, bar_minutes: int = 5) -> Bars:
    """Bars with open=100+i, high=open+2, low=open-1, close=open+1, volume=10*(i+1)."""
    index = pd.DatetimeIndex(pd.to_datetime(stamps), name="open_time")
    i = np.arange(len(index), dtype=float)
    frame = pd.DataFrame(
        {"open": 100 + i, "high": 102 + i, "low": 99 + i, "close": 101 + i, "volume": 10 * (i + 1)},
        index=index,
    )[list(COLUMNS)]
    return Bars(frame, bar_minutes, "test")


def test_hand_computed_bucket_across_a_session_break() -> None:
    # 16:30..16:55 fills one bucket; the session closes at 17:00 and reopens at 18:00;
    # 18:00..18:25 fills the next. The 18:30 bucket has a single bar and is the last,
    # incomplete bucket of the data, so it is dropped.
    stamps = [f"2024-01-02 16:{m:02d}" for m in range(30, 60, 5)]
    stamps += [f"2024-01-02 18:{m:02d}" for m in range(0, 35, 5)]
    out = resample(make_bars(stamps), 30).frame
    assert list(out.index) == [pd.Timestamp("2024-01-02 16:30"), pd.Timestamp("2024-01-02 18:00")]
    # bucket 1 = rows 0..5: open 100, high max(102..107)=107, low 99, close 106, vol 10+..+60=210
    np.testing.assert_array_equal(out.iloc[0].to_numpy(), [100, 107, 99, 106, 210])
    # bucket 2 = rows 6..11: open 106, high 113, low 105, close 112, vol 70+..+120=570
    np.testing.assert_array_equal(out.iloc[1].to_numpy(), [106, 113, 105, 112, 570])


def test_bucket_with_missing_bars_is_kept_and_clock_aligned() -> None:
    stamps = ["2024-01-02 09:30", "2024-01-02 09:45", "2024-01-02 09:55", "2024-01-02 10:00",
              "2024-01-02 10:05", "2024-01-02 10:10", "2024-01-02 10:15", "2024-01-02 10:20",
              "2024-01-02 10:25"]
    out = resample(make_bars(stamps), 30).frame
    assert list(out.index) == pd.to_datetime(["2024-01-02 09:30", "2024-01-02 10:00"]).tolist()
    np.testing.assert_array_equal(out.iloc[0].to_numpy(), [100, 104, 99, 103, 60])


def test_other_factors() -> None:
    stamps = pd.date_range("2024-01-02 09:00", periods=8, freq="15min")
    out = resample(make_bars(stamps, 15), 60).frame
    assert len(out) == 2
    np.testing.assert_array_equal(out["volume"].to_numpy(), [100, 260])


def test_factor_must_be_a_whole_multiple() -> None:
    assert check_factor(5, 30) == 6
    with pytest.raises(ConfigError, match="not a whole multiple"):
        check_factor(7, 30)
    with pytest.raises(ConfigError, match="not a whole multiple"):
        check_factor(60, 30)
    with pytest.raises(ConfigError, match="must divide a day"):
        check_factor(1, 7)


def test_too_little_data_for_one_bar() -> None:
    with pytest.raises(DataError, match="not enough data for one complete 30-min bar"):
        resample(make_bars(["2024-01-02 09:30", "2024-01-02 09:35"]), 30)


def test_alignment_waits_for_the_close() -> None:
    stamps = pd.date_range("2024-01-02 09:30", periods=18, freq="5min")
    base = make_bars(stamps)
    strategic = resample(base, 30)
    index = align_index(base, strategic)
    # 5m bar 09:55 closes at 10:00 = close of the 09:30 bucket: first visible there.
    expected = np.array([-1] * 5 + [0] * 6 + [1] * 6 + [2])
    np.testing.assert_array_equal(index, expected)
    strategic_close = strategic.close_time.asi8
    base_close = base.close_time.asi8
    seen = index >= 0
    assert np.all(strategic_close[index[seen]] <= base_close[seen])


def test_alignment_has_no_look_ahead() -> None:
    rng = np.random.default_rng(0)
    stamps = pd.date_range("2024-01-02 09:30", periods=200, freq="5min")
    base = make_bars(stamps)
    strategic = resample(base, 30)
    index = align_index(base, strategic)
    values = strategic.frame.to_numpy()[np.maximum(index, 0)]
    for t in rng.integers(10, 190, size=8):
        changed = base.frame.copy()
        noise = rng.uniform(0.5, 2.0, size=(len(changed) - t - 1, 1))
        changed.iloc[t + 1:] = changed.iloc[t + 1:].to_numpy() * noise
        changed["high"] = changed[["open", "high", "low", "close"]].max(axis=1)
        changed["low"] = changed[["open", "high", "low", "close"]].min(axis=1)
        base2 = Bars(changed, 5, "test")
        strategic2 = resample(base2, 30)
        index2 = align_index(base2, strategic2)
        values2 = strategic2.frame.to_numpy()[np.maximum(index2, 0)]
        np.testing.assert_array_equal(index2[: t + 1], index[: t + 1])
        np.testing.assert_array_equal(values2[: t + 1], values[: t + 1])


def test_alignment_for_close_stamped_files_is_the_same() -> None:
    stamps = pd.date_range("2024-01-02 09:35", periods=12, freq="5min")
    close_stamped = make_bars(stamps - pd.Timedelta(minutes=5))
    index = align_index(close_stamped, resample(close_stamped, 30))
    np.testing.assert_array_equal(index, [-1] * 5 + [0] * 6 + [1])


def test_agreement_check() -> None:
    stamps = pd.date_range("2024-01-02 09:30", periods=60, freq="5min")
    base = make_bars(stamps)
    resampled = resample(base, 30)
    check_agreement(resampled, resampled, 0.25)
    shifted = Bars(resampled.frame.shift(1).dropna(), 30, "thirty.csv")
    with pytest.raises(DataError, match=r"thirty.csv.*disagree.*same timestamp convention"):
        check_agreement(resampled, shifted, 0.25)
    elsewhere = Bars(resampled.frame.set_axis(resampled.frame.index + pd.Timedelta(days=30)),
                     30, "thirty.csv")
    with pytest.raises(DataError, match="have a matching bar"):
        check_agreement(resampled, elsewhere, 0.25)
