"""The trading calendar every layer counts days by: sessions 18:00–17:00, 252 days a year.

A bar belongs to the trading day of its session: the session that opens at
18:00 on one calendar day trades into the next, whose date it carries. The
synthetic market generates bars on this calendar; the metrics count daily
P&L and annualise on it.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["TRADING_DAYS_PER_YEAR", "trading_day", "trading_day_of"]

SESSION_SHIFT = pd.Timedelta(hours=6)
"""Added to a bar's open time, it lands on its trading day's date (sessions open at 18:00)."""
TRADING_DAYS_PER_YEAR = 252
"""Annualisation factor for daily Sharpe ratios (applied as its square root)."""


def trading_day(open_time: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Trading day of each bar: the date of ``open_time + 6 h`` (sessions open at 18:00)."""
    return (open_time + SESSION_SHIFT).normalize()


def trading_day_of(open_time: pd.Timestamp) -> pd.Timestamp:
    """:func:`trading_day` of one bar (a scalar, without building an index)."""
    return (pd.Timestamp(open_time) + SESSION_SHIFT).normalize()
