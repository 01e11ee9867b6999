"""Risk limits a live user needs, applied to a target position before it goes out.

:class:`RiskLimits` holds the user's limits; :class:`RiskGuard` applies them, decision by
decision, to the target the team (and its gates) chose. The decision engine
(:class:`algospace.inference.engine.DecisionEngine`) and the backtest
(:func:`algospace.evaluation.backtest.backtest`) run the same guard with the same inputs,
so with the same limits they hold the same positions (tested).

- **Maximum position** (``max_position``, contracts): the target is clipped to
  ``[-max_position, max_position]``.
- **Maximum daily loss** (``max_daily_loss``, dollars): the day's loss is the equity at
  the decision (sessions chained, open position marked at this bar's close) below the
  equity at the last decision of the previous trading day (the initial equity on the first
  day). Once it reaches the limit, every target is 0 (flatten, open nothing) until the
  next trading day (:func:`algospace.data.calendar.trading_day`: days begin at 18:00).
  The limit acts at decisions, on closed bars: the flattening order fills at the next
  bar's open, so a day can lose more than the limit by that bar's move (or a gap).
- **Kill switch** (``kill_file``): while that file exists the engine sends target 0 and
  stops deciding (:meth:`RiskGuard.killed`). A backtest has no file to watch; it ignores it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from algospace.errors import ConfigError

__all__ = ["LIMIT_CODES", "RiskGuard", "RiskLimits"]

LIMIT_CODES: dict[str, str] = {
    "": "no limit changed the target",
    "max_position": "the target was clipped to the maximum position",
    "max_daily_loss": "the day's loss reached the maximum: flat until the next trading day",
    "kill_switch": "the kill file exists: flatten and stop",
    "ruin": "the account's ruin stop has fired: it stays flat (the engine's live account)",
}
"""What a decision's ``limit`` field says."""


@dataclass(frozen=True)
class RiskLimits:
    """A live user's risk limits (None: no such limit)."""

    max_daily_loss: float | None = None
    """Dollars a trading day may lose before the strategy is flat for the rest of it."""
    max_position: int | None = None
    """Most contracts held, long or short."""
    kill_file: str | None = None
    """A file whose presence flattens and stops the engine."""

    def __post_init__(self) -> None:
        loss = self.max_daily_loss
        if loss is not None and (isinstance(loss, bool) or not isinstance(loss, int | float)
                                 or not math.isfinite(loss) or loss <= 0):
            raise ConfigError(f"max_daily_loss must be a dollar amount > 0, got {loss!r}; "
                              "pass e.g. --max-daily-loss 2000")
        size = self.max_position
        if size is not None and (isinstance(size, bool) or not isinstance(size, int)
                                 or size < 1):
            raise ConfigError(f"max_position must be a whole number of contracts >= 1, got "
                              f"{size!r}; pass e.g. --max-position 2")
        if self.kill_file is not None and not str(self.kill_file).strip():
            raise ConfigError("kill_file is empty; pass the path of the file whose presence "
                              "stops the engine, e.g. --kill-file /tmp/algospace.stop")

    @property
    def any(self) -> bool:
        """True when at least one limit is set."""
        return any(v is not None for v in (self.max_daily_loss, self.max_position,
                                           self.kill_file))

    def describe(self) -> str:
        """The limits in words (``none`` when none is set)."""
        parts = []
        if self.max_position is not None:
            parts.append(f"max position {self.max_position}")
        if self.max_daily_loss is not None:
            parts.append(f"max daily loss ${self.max_daily_loss:,.0f}")
        if self.kill_file is not None:
            parts.append(f"kill file {self.kill_file}")
        return ", ".join(parts) or "none"


class RiskGuard:
    """Applies :class:`RiskLimits` to each decision's target (see the module docstring)."""

    def __init__(self, limits: RiskLimits | None, initial_equity: float) -> None:
        self.limits = limits or RiskLimits()
        self._day: pd.Timestamp | None = None
        self._day_start = float(initial_equity)
        self._last = float(initial_equity)
        self._halted: pd.Timestamp | None = None

    @property
    def day_pnl(self) -> float:
        """The current trading day's P&L at the last decision (dollars)."""
        return self._last - self._day_start

    def apply(self, target: int, *, day: pd.Timestamp, equity: float) -> tuple[int, str]:
        """The target allowed at a decision of trading day ``day`` with chained ``equity``,
        and the code of the limit that changed it (``""``: none; see :data:`LIMIT_CODES`)."""
        if day != self._day:
            self._day, self._day_start = day, self._last
        self._last = float(equity)
        limits = self.limits
        if self.killed():
            return 0, "kill_switch"
        if limits.max_daily_loss is not None and \
                self._day_start - self._last >= limits.max_daily_loss:
            self._halted = day
        if self._halted == day:
            return 0, "max_daily_loss"
        cap = limits.max_position
        if cap is not None and abs(target) > cap:
            return (cap if target > 0 else -cap), "max_position"
        return int(target), ""

    def killed(self) -> bool:
        """True while the kill file exists."""
        path = self.limits.kill_file
        return path is not None and Path(path).expanduser().exists()
