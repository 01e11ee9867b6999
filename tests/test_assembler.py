"""Matrix assemblers: fixed shapes, views, warm-up excluded."""

from __future__ import annotations

import numpy as np
import pytest

from algospace.errors import DataError
from algospace.features.assembler import FeatureMatrices, MatrixAssembler


def test_windows_are_full_views_and_warmup_is_invalid() -> None:
    values = np.arange(40, dtype=np.float32).reshape(10, 4)
    values[1, 2] = np.nan
    asm = MatrixAssembler(values, 3)
    # Rows 0-1 lack 3 rows; rows 1-3 include the NaN row 1.
    assert asm.valid.tolist() == [False] * 4 + [True] * 6
    window = asm.at(6)
    assert window.shape == (3, 4) and asm.shape == (3, 4)
    np.testing.assert_array_equal(window, values[4:7])
    assert np.shares_memory(window, asm.values)
    with pytest.raises(IndexError, match="no complete window"):
        asm.at(3)


def test_pair_on_the_5_minute_clock() -> None:
    strategic = MatrixAssembler(np.arange(20, dtype=np.float32).reshape(10, 2), 2)
    tactical = MatrixAssembler(np.ones((12, 3), dtype=np.float32), 4)
    index = np.array([-1, -1, 0, 0, 1, 1, 1, 2, 2, 3, 3, 3])
    pair = FeatureMatrices(strategic, tactical, index)
    # Strategic valid from row 1 (index >= 1, step 4); tactical from step 3.
    assert pair.usable.tolist() == [False] * 4 + [True] * 8
    assert pair.first_usable() == 4
    np.testing.assert_array_equal(pair.strategic_at(8), strategic.values[1:3])
    with pytest.raises(DataError, match="lengths differ"):
        FeatureMatrices(strategic, tactical, index[:-1])
    empty = FeatureMatrices(strategic, MatrixAssembler(np.ones((12, 3), np.float32), 20), index)
    with pytest.raises(DataError, match="no 5-minute step has complete feature windows"):
        empty.first_usable()
