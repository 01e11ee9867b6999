"""The decision engine's live account: its sessions chained into one account, as the
backtest chains its tiles.

Each session trades the env's own :class:`~algospace.market.account.Account`, fresh and
flat at the session's start; :class:`LiveAccount` chains the sessions' per-bar P&L into
one equity curve starting at ``initial_equity`` and carries the backtest's **ruin stop**
(:mod:`algospace.evaluation.backtest`): the chained account's ruin level is
``(1 - ruin_fraction) × initial_equity``; each session's account holds the ruin stop at
the level that corresponds to it (its own ruin level, or the chained account's if higher),
and once the chained equity has reached the level every later session stays flat. With
the same bars the engine's equity, positions and trades are the backtest's, ruin included
(tested).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from algospace.market.account import Account

__all__ = ["LiveAccount"]


class LiveAccount:
    """Sessions chained into one account, with the backtest's ruin stop."""

    def __init__(self, initial_equity: float, ruin_fraction: float) -> None:
        self.initial_equity = float(initial_equity)
        self.ruin_level = (1.0 - ruin_fraction) * self.initial_equity
        """Equity (dollars) at which the chained account is flattened for good."""
        self.chained = self.initial_equity
        """Equity now: the initial equity plus every executed bar's P&L."""
        self.ruin_row: int | None = None
        """The executed bar (index into :attr:`rows`) on which the ruin stop fired."""
        self.session = -1
        """The session now running or last run (-1: none yet)."""
        self.rows: list[int] = []
        """Clock step of each executed bar."""
        self.pnl: list[float] = []
        """P&L of each executed bar (a session's last one net of its closing costs)."""
        self.held: list[int] = []
        """Contracts held at each executed bar's close (0 after a session-end close)."""
        self.trades: list[pd.DataFrame] = []
        """Closed round trips of each ended session."""
        self._before = 0.0

    @property
    def ruined(self) -> bool:
        """True once the chained equity reached the ruin level."""
        return self.ruin_row is not None

    def start(self, account: Account) -> None:
        """A session starts on ``account`` (just reset): set its ruin stop."""
        self.session += 1
        if self.ruin_row is None:  # the session's own ruin, or the chained account's, if higher
            account.ruin_level = max(self.ruin_level,
                                     self.ruin_level + self.initial_equity - self.chained)
        else:  # ruined: flat from here on
            account.ruined = True
        self._before = account.equity

    def executed(self, row: int, account: Account) -> None:
        """Book the bar at clock step ``row`` that ``account`` just traded."""
        self.rows.append(row)
        change = account.equity - self._before
        self.pnl.append(change)
        self.chained += change
        self._before = account.equity
        self.held.append(account.position)
        if self.ruin_row is None and account.ruined and self.chained <= self.ruin_level + 1e-6:
            self.ruin_row = len(self.pnl) - 1

    def end(self, account: Account, cost_per_contract: float) -> int:
        """The session ends: its position is closed at the last bar's close, the exit's
        costs charged; the contracts closed."""
        closing = abs(account.position)
        if closing:
            self.pnl[-1] -= closing * cost_per_contract
            self.chained -= closing * cost_per_contract
            self.held[-1] = 0
        trades = account.trades()
        if len(trades):
            self.trades.append(trades.assign(tile=self.session))
        return closing

    def equity(self, index: pd.DatetimeIndex) -> pd.Series:
        """The chained equity after each executed bar, on ``index`` (their open times)."""
        return pd.Series(self.initial_equity + np.cumsum(self.pnl), index=index, name="equity")

    def all_trades(self, running: Account | None) -> pd.DataFrame:
        """Every closed round trip, with those of the session still running on ``running``."""
        trades = list(self.trades)
        if running is not None and len(running.trades()):
            trades.append(running.trades().assign(tile=self.session))
        return pd.concat(trades, ignore_index=True) if trades else pd.DataFrame()
