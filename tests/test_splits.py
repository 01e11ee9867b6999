"""Chronological splits and train-only normalisation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from algospace.data.splits import Normalizer, chronological_split
from algospace.errors import ConfigError, DataError


def test_boundaries_are_chronological_and_snapped() -> None:
    times = pd.date_range("2024-01-02 00:00", periods=1000, freq="5min")
    splits = chronological_split(times, (0.7, 0.15, 0.15), snap_minutes=30)
    # 700 is not a bucket start (700 % 6 = 4): the boundary moves forward to 702.
    assert splits.train == (0, 702)
    # 850 % 6 = 4: moves to 852.
    assert splits.val == (702, 852)
    assert splits.test == (852, 1000)
    for a in (splits.val[0], splits.test[0]):
        assert times[a].minute % 30 == 0
        assert times[a - 1] < times[a]


def test_boundaries_respect_session_gaps() -> None:
    day1 = pd.date_range("2024-01-02 09:30", periods=50, freq="5min")
    day2 = pd.date_range("2024-01-03 09:35", periods=50, freq="5min")
    times = day1.append(day2)
    splits = chronological_split(times, (0.5, 0.25, 0.25), snap_minutes=30)
    # Row 50 (09:35 on day 2) is the first bar of day 2's 09:30 bucket: a valid boundary.
    assert splits.val[0] == 50
    # 0.52 -> row 52 (09:45) is inside that bucket; the next one starts at 10:00 = row 55.
    assert chronological_split(times, (0.52, 0.24, 0.24), snap_minutes=30).val[0] == 55


@pytest.mark.parametrize("fractions", [(0.7, 0.2, 0.2), (0.8, 0.2, 0.0), (1.0, -0.5, 0.5)])
def test_bad_fractions(fractions: tuple[float, float, float]) -> None:
    times = pd.date_range("2024-01-02", periods=100, freq="5min")
    with pytest.raises(ConfigError, match=r"data\.split"):
        chronological_split(times, fractions)


def test_too_few_bars() -> None:
    times = pd.date_range("2024-01-02", periods=8, freq="5min")
    with pytest.raises(DataError, match="too few to split"):
        chronological_split(times)


def test_normaliser_uses_training_rows_only() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, np.nan, 1000.0, -1000.0], "y": [5.0] * 6})
    norm = Normalizer.fit(frame, (0, 4))
    assert norm.mean[0] == pytest.approx(2.0)
    assert norm.std[0] == pytest.approx(np.std([1.0, 2.0, 3.0]))
    assert norm.std[1] == 1.0  # constant column: no division by zero
    out = norm.transform(frame)
    assert out.dtypes.eq(np.float32).all()
    assert out["x"].iloc[4] == pytest.approx((1000 - 2) / np.std([1.0, 2.0, 3.0]), rel=1e-6)
    # Changing test rows leaves the statistics unchanged.
    changed = frame.copy()
    changed.iloc[4:] = 1e9
    again = Normalizer.fit(changed, (0, 4))
    np.testing.assert_array_equal(again.mean, norm.mean)
    np.testing.assert_array_equal(again.std, norm.std)
    assert Normalizer.from_dict(norm.to_dict()).to_dict() == norm.to_dict()
