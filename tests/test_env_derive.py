"""The env arrays' rolling means (envs/core/derive.py): window-local, so a tail gives the
batch rows bit for bit, and equal to pandas' rolling mean up to rounding."""

from __future__ import annotations

import numpy as np
import pandas as pd

from algospace.features.assembler import MatrixAssembler, complete_rows
from envs.core.derive import average_true_range, window_mean


def test_window_mean_of_a_tail_equals_the_full_rows_bit_for_bit() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5_000, 3)) * 10.0 ** rng.integers(-3, 6, size=(5_000, 1))
    x[[100, 2_000], 1] = np.nan
    full = window_mean(x, 48)
    for start in (1, 47, 48, 999, 2_001, 4_900):
        np.testing.assert_array_equal(window_mean(x[start:], 48)[47:], full[start + 47:])


def test_window_mean_is_pandas_rolling_mean_up_to_rounding() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3_000, 2))
    x[500, 0] = np.nan
    expected = pd.DataFrame(x).rolling(12, min_periods=12).mean().to_numpy()
    got = window_mean(x, 12)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_average_true_range_reads_the_previous_close() -> None:
    ohlc = np.array([[10, 11, 9, 10], [10, 10.5, 10, 10.2], [13, 14, 12.5, 13.5]], float)
    atr = average_true_range(ohlc, 2)
    # true ranges: 2 (high - low: no previous close), 0.5, then |14 - 10.2| = 3.8 > 14 - 12.5
    assert np.isnan(atr[0])
    assert atr[1] == (2.0 + 0.5) / 2
    assert atr[2] == (0.5 + (14 - 10.2)) / 2


def test_complete_rows_equals_the_assembler_rule() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    x[[3, 150, 151], [0, 2, 3]] = np.nan
    got = complete_rows(x, 48)
    assert not got[:47].any() and not got[150:199].any() and got[199:].all()
    assert got[51:150].all() and not got[47:51].any()
    np.testing.assert_array_equal(MatrixAssembler(x, 48).valid, got)
