"""Futures market execution: the account simulator the trading environments step through.

:class:`Account` fills target positions at the next bar's open with slippage and
commission, manages a stop/target bracket inside the bar and marks to market at
the close (see :mod:`algospace.market.account` for the exact rules);
:func:`simulate` runs it over arrays of bars.
"""

from algospace.market.account import FILL_COLUMNS, TRADE_COLUMNS, Account, simulate

__all__ = ["FILL_COLUMNS", "TRADE_COLUMNS", "Account", "simulate"]
