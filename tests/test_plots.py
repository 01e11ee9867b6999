"""The report's equity plot reads a finer curve at the coarse bars' closes."""

import numpy as np
import pandas as pd

from algospace.evaluation.plots import at_bar_closes


def test_a_five_minute_curve_is_read_at_the_close_of_each_thirty_minute_bar() -> None:
    """Bars are indexed by open time and a value is the equity after its bar: the
    30-minute bar opening 06:00 closes at 06:30 with the 5-minute bar opening 06:25
    (value 5), not with the one opening 06:00 (value 0, what a plain forward fill on the
    open times read)."""
    fine = pd.Series(np.arange(12.0), index=pd.date_range("2020-01-06 06:00", periods=12,
                                                         freq="5min"))
    coarse = pd.DatetimeIndex(["2020-01-06 06:00", "2020-01-06 06:30"])
    np.testing.assert_array_equal(at_bar_closes(fine, coarse), [5.0, 11.0])


def test_curves_on_the_same_bars_are_read_as_they_are() -> None:
    index = pd.date_range("2020-01-06 06:00", periods=4, freq="30min")
    curve = pd.Series([1.0, 2.0, 3.0, 4.0], index=index)
    np.testing.assert_array_equal(at_bar_closes(curve, index), [1.0, 2.0, 3.0, 4.0])
    one = pd.DatetimeIndex(["2020-01-06 06:30"])
    np.testing.assert_array_equal(at_bar_closes(curve, one), [2.0])
