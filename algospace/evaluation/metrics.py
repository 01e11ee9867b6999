"""Dollar-true backtest metrics and ruin stops.

A futures account trades fixed contracts, so its P&L does not scale with its equity:
dividing by the grown equity made the Sharpe fall as a strategy earned more, and
nonsense below zero (100k → 50k → −10k → −30k → −60k had Sharpe +3.3). So every ratio
is on daily **dollar P&L over a fixed capital base** ``C`` (``initial_equity``, default
the first equity). Input: per-bar equity after each close, indexed by bar open time;
days are trading days (:func:`~algospace.data.calendar.trading_day`, 18:00–17:00).

- ``pnl_d = E_d − E_{d−1}`` (``E_d`` the day's last equity, ``E_0 = C``), ``r_d =
  pnl_d / C``; 252 days a year, risk-free 0, no compounding (:data:`ANNUALISATION`):
  ``total_return = net_pnl / C``, ``annual_return = mean(r)·252``, ``annual_volatility
  = std(r, ddof=1)·sqrt(252)``, ``sharpe = mean(r) / std(r, ddof=1)·sqrt(252)`` (its
  sign is the net P&L's), ``sortino = mean(r) / sqrt(mean(min(r, 0)²))·sqrt(252)``
  (empyrical's downside deviation); ``bar_sharpe`` / ``bar_sortino`` the same on per-bar
  P&L / ``C`` with sqrt(bars_per_year); ``probabilistic_sharpe`` the PSR of ``r``
  (:mod:`algospace.evaluation.stats`) against a Sharpe of 0.
- Drawdown on the per-bar curve, peak from ``C``: ``max_drawdown_usd = min(E_t − peak_t)``,
  ``max_drawdown`` = that / ``C``; ``calmar = annual_return / |max_drawdown|``.
- Undefined: below 2 days or constant returns, volatility / Sharpe / Sortino are 0.0;
  the other rules (Sortino inf, PSR nan, ...) are on the :class:`Metrics` fields.
- Trades are closed round trips (:meth:`Account.trades`). Ruin is the account's own ruin
  stop (:class:`~algospace.market.account.Account`, ``ruin_level``): it liquidates where
  equity after the exit's costs meets the level and keeps the account flat after, so the
  agents, the baselines (:mod:`algospace.evaluation.baselines`) and the oracles stop alike
  and no curve goes below the level but by a gap through it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from algospace.data.calendar import TRADING_DAYS_PER_YEAR, trading_day
from algospace.errors import ConfigError
from algospace.evaluation.stats import probabilistic_sharpe_ratio
from algospace.market.account import Account

__all__ = [
    "ANNUALISATION",
    "Metrics",
    "Ruin",
    "account_at_ruin",
    "check_index",
    "compute_metrics",
    "daily_pnl",
    "daily_returns",
    "positions_from_fills",
    "to_dict",
]

ANNUALISATION = ("dollar-true: daily P&L per trading day (18:00–17:00 session) over a fixed "
                 "capital base (the initial equity), never the compounding equity; annual return "
                 f"= mean daily return × {TRADING_DAYS_PER_YEAR} (no compounding); volatility, "
                 f"Sharpe, Sortino × sqrt({TRADING_DAYS_PER_YEAR}); drawdown in dollars / capital;"
                 " bar-level ratios on per-bar P&L / capital × sqrt(bars_per_year), bars_per_year"
                 f" = bars per trading day × {TRADING_DAYS_PER_YEAR}; risk-free rate 0")
"""How every annualised figure in :class:`Metrics` is computed."""
_ROOT_YEAR = math.sqrt(TRADING_DAYS_PER_YEAR)


@dataclass(frozen=True)
class Metrics:
    """Performance of one equity curve (see the module docstring for the conventions)."""

    total_return: float
    """net_pnl / capital base (fraction, not annualised)."""
    annual_return: float
    """mean(daily returns) × 252 (fraction of the capital base per year, no compounding)."""
    annual_volatility: float
    """std(daily returns, ddof=1) × sqrt(252) (fraction per year); 0.0 when undefined."""
    sharpe: float
    """mean(daily) / std(daily, ddof=1) × sqrt(252), risk-free 0; 0.0 when undefined."""
    sortino: float
    """mean(daily) / sqrt(mean(min(daily, 0)²)) × sqrt(252); inf with no losing day, 0.0 if flat."""
    max_drawdown: float
    """Deepest dollar drop below the running peak (from the capital) / capital (<= 0)."""
    calmar: float
    """annual_return / |max_drawdown| (per year); 0.0 when max_drawdown == 0."""
    trades: int
    """Number of closed round trips."""
    win_rate: float
    """Share of closed trades with pnl_net > 0 (fraction); 0.0 without trades."""
    profit_factor: float
    """Sum of winning pnl_net / |sum of losing pnl_net|; inf if no losses, 0.0 if no trades."""
    turnover: float
    """Contracts traded (both sides counted) per trading day; nan when not measured."""
    exposure: float
    """Share of bars ending with a non-zero position (fraction); nan without positions."""
    days: int
    """Trading days in the period (not annualised)."""
    net_pnl: float
    """equity_end - capital base, in dollars, net of commissions and slippage."""
    bar_sharpe: float = 0.0
    """Sharpe of per-bar P&L / capital, annualised with sqrt(bars_per_year); 0.0 if undefined."""
    bar_sortino: float = 0.0
    """Sortino of per-bar P&L / capital, annualised with sqrt(bars_per_year)."""
    bars_per_year: float = math.nan
    """Bars per trading day in this curve (bars / days) × 252: the bar-level annualisation."""
    max_drawdown_bars: int = 0
    """Longest stretch of bars below the running equity peak (the drawdown's duration)."""
    max_drawdown_days: int = 0
    """Trading days touched by that longest stretch."""
    avg_trade: float = 0.0
    """Mean pnl_net per closed trade, in dollars; 0.0 without trades."""
    costs: float = math.nan
    """Commissions plus slippage paid, in dollars; nan when not given."""
    max_drawdown_usd: float = 0.0
    """Deepest drop below the running peak (starting at the capital), in dollars (<= 0)."""
    probabilistic_sharpe: float = math.nan
    """P(true daily Sharpe > 0) by Bailey & López de Prado's PSR; nan below 3 days."""
    ruined: bool = False
    """True when the account's ruin stop fired (see :class:`Ruin`)."""
    ruin_time: str | None = None
    """Open time of the ruin bar, None if never ruined."""


@dataclass(frozen=True)
class Ruin:
    """An account's equity curve with its positions and the bar its ruin stop fired on."""

    equity: np.ndarray
    """Per-bar equity after stopping at ruin (flat after the ruin bar)."""
    positions: np.ndarray
    """Per-bar position (0 from the ruin bar on)."""
    bar: int | None
    """Index of the ruin bar, None if never ruined."""


_bad = ConfigError
"""Errors say what was expected, what was found and how to fix it."""


def check_index(index: pd.Index, what: str) -> pd.DatetimeIndex:
    """The index as a DatetimeIndex; raises unless it is datetime and strictly increasing."""
    if not isinstance(index, pd.DatetimeIndex):
        raise _bad(f"{what}: index must be a DatetimeIndex of bar open times, found "
                   f"{type(index).__name__}; index it by the bars' index (bars.index)")
    if not (index.is_monotonic_increasing and index.is_unique):
        raise _bad(f"{what}: index must be strictly increasing, found it unsorted or with "
                   "duplicate timestamps; sort the bars and drop duplicates first")
    return index


def _as_equity(equity: pd.Series | np.ndarray, index: pd.Index | None) -> pd.Series:
    """Validated float64 equity Series with a strictly increasing DatetimeIndex."""
    if not isinstance(equity, pd.Series):
        values = np.asarray(equity, dtype=np.float64)
        if index is None:
            raise _bad("equity: a numpy array has no timestamps, found no index; pass "
                       "index=bars.index or a pandas Series indexed by bar open time")
        if values.ndim != 1 or len(values) != len(index):
            raise _bad(f"equity: must be 1-D with one value per index entry ({len(index)}), "
                       f"found shape {values.shape}; pass the per-bar equity curve")
        equity = pd.Series(values, index=index)
    if len(equity) == 0:
        raise _bad("equity: found an empty curve; pass at least one bar of equity")
    values = equity.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        raise _bad(f"equity: found {int(bad.sum())} NaN/inf values (first at position "
                   f"{int(np.argmax(bad))}); the curve must be finite at every bar")
    return pd.Series(values, index=check_index(equity.index, "equity"), name="equity")


def _initial(equity: pd.Series, initial_equity: float | None) -> float:
    """The capital base: initial_equity, or the first equity value; finite and > 0."""
    value = float(equity.iloc[0]) if initial_equity is None else float(initial_equity)
    if not (math.isfinite(value) and value > 0):
        raise _bad(f"initial_equity: must be a finite number > 0 (dollars), found {value!r}; "
                   "pass the account's starting equity, e.g. initial_equity=100_000.0")
    return value


def daily_pnl(equity: pd.Series | np.ndarray, *, initial_equity: float | None = None,
              index: pd.Index | None = None) -> pd.Series:
    """Dollar P&L per trading day: the day's last equity minus the previous day's last."""
    eq = _as_equity(equity, index)
    start = _initial(eq, initial_equity)
    days = pd.DatetimeIndex(trading_day(pd.DatetimeIndex(eq.index)), name="trading_day")
    last = eq.groupby(days, sort=True).last()
    pnl = np.diff(np.concatenate([[start], last.to_numpy()]))
    return pd.Series(pnl, index=last.index, name="pnl")


def daily_returns(equity: pd.Series | np.ndarray, *, initial_equity: float | None = None,
                  index: pd.Index | None = None) -> pd.Series:
    """Daily dollar P&L / the fixed capital base (initial_equity), per trading day."""
    eq = _as_equity(equity, index)
    start = _initial(eq, initial_equity)
    return (daily_pnl(eq, initial_equity=start) / start).rename("return")


def _is_constant(r: np.ndarray) -> bool:
    """True for fewer than 2 values or a numerically constant series (std ~ 0)."""
    return len(r) < 2 or float(np.std(r, ddof=1)) <= 1e-12 * float(np.mean(np.abs(r)))


def _ratios(r: np.ndarray, scale: float = _ROOT_YEAR) -> tuple[float, float]:
    """(Sharpe, Sortino) of ``r`` × ``scale`` (risk-free 0); the undefined-value rules."""
    if _is_constant(r):
        return 0.0, 0.0
    mean, downside = float(np.mean(r)), math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    sharpe = mean / float(np.std(r, ddof=1)) * scale
    if downside == 0.0:
        return sharpe, math.inf if mean > 0 else 0.0
    return sharpe, mean / downside * scale


def _trade_stats(trades: pd.DataFrame | None) -> tuple[int, float, float]:
    """(count, win rate, profit factor) of the closed trades."""
    if trades is None or len(trades) == 0:
        return 0, 0.0, 0.0
    if "pnl_net" not in trades.columns:
        raise _bad(f"trades: needs a 'pnl_net' column, found columns {list(trades.columns)}; "
                   "pass account.trades()")
    pnl = trades["pnl_net"].to_numpy(dtype=np.float64)
    if not np.isfinite(pnl).all():
        raise _bad("trades: found NaN/inf in 'pnl_net'; every closed trade needs its net P&L")
    wins, losses = float(pnl[pnl > 0].sum()), -float(pnl[pnl < 0].sum())
    factor = wins / losses if losses > 0 else (math.inf if wins > 0 else 0.0)
    return len(pnl), float(np.mean(pnl > 0)), factor


def _position_stats(positions: np.ndarray | None, turnover_contracts: float | None,
                    n_bars: int, days: int) -> tuple[float, float]:
    """(turnover in contracts per trading day, exposure) from positions / a contract count."""
    turnover = exposure = math.nan
    if positions is not None:
        pos = np.asarray(positions, dtype=np.float64)
        if pos.shape != (n_bars,):
            raise _bad(f"positions: need one value per bar ({n_bars}), found shape "
                       f"{pos.shape}; pass the position held at each bar's close")
        if not np.isfinite(pos).all():
            raise _bad("positions: found NaN/inf; pass 0 for flat bars")
        exposure = float(np.mean(pos != 0))
        turnover = float(np.abs(np.diff(pos, prepend=0.0)).sum()) / days
    if turnover_contracts is not None:
        count = float(turnover_contracts)
        if not (math.isfinite(count) and count >= 0):
            raise _bad(f"turnover_contracts: must be a finite number >= 0, found {count!r}; "
                       "pass account.turnover")
        turnover = count / days
    return turnover, exposure


def _drawdown(values: np.ndarray, start: float, days: np.ndarray) -> tuple[float, int, int]:
    """(dollar drawdown, bars, trading days of the longest stretch under the peak from start)."""
    gap = values - np.maximum.accumulate(np.append(start, values))[1:]
    edges = np.flatnonzero(np.diff(np.concatenate([[0], gap < 0, [0]]).astype(np.int8)))
    if len(edges) == 0:
        return 0.0, 0, 0
    starts, ends = edges[::2], edges[1::2]
    k = int(np.argmax(ends - starts))
    return float(gap.min()), int(ends[k] - starts[k]), len(np.unique(days[starts[k]:ends[k]]))


def _ruin_time(index: pd.Index, ruin_bar: int | None) -> str | None:
    """Open time of bar ``ruin_bar`` as a string (None when not ruined)."""
    if ruin_bar is not None and not 0 <= int(ruin_bar) < len(index):
        raise _bad(f"ruin_bar: must be a bar index in [0, {len(index)}), found {ruin_bar!r}; "
                   "pass Ruin.bar from account_at_ruin over the same curve")
    return None if ruin_bar is None else str(index[int(ruin_bar)])


def compute_metrics(equity: pd.Series | np.ndarray, *, positions: np.ndarray | None = None,
                    trades: pd.DataFrame | None = None, turnover_contracts: float | None = None,
                    initial_equity: float | None = None, index: pd.Index | None = None,
                    costs: float | None = None, ruin_bar: int | None = None) -> Metrics:
    """Dollar-true metrics of a per-bar equity curve (bar open time index, or array + index).

    ``turnover_contracts`` (``account.turnover``) overrides the turnover from ``positions``
    (which misses same-bar bracket exits); ``ruin_bar`` (:class:`Ruin`) marks a ruin.
    """
    eq = _as_equity(equity, index)
    start = _initial(eq, initial_equity)
    r = daily_returns(eq, initial_equity=start).to_numpy()
    days, values = len(r), eq.to_numpy()
    net, annual = float(values[-1]) - start, float(np.mean(r)) * TRADING_DAYS_PER_YEAR
    dd_usd, dd_bars, dd_days = _drawdown(values, start, trading_day(eq.index).to_numpy())
    mdd = dd_usd / start
    n_trades, win_rate, factor = _trade_stats(trades)
    turnover, exposure = _position_stats(positions, turnover_contracts, len(values), days)
    bars_per_year = len(values) / days * TRADING_DAYS_PER_YEAR
    bar_sharpe, bar_sortino = _ratios(np.diff(np.append(start, values)) / start,
                                      math.sqrt(bars_per_year))
    avg_trade = float(trades["pnl_net"].mean()) if trades is not None and n_trades else 0.0
    ruin_time, (sharpe, sortino) = _ruin_time(eq.index, ruin_bar), _ratios(r)
    return Metrics(
        total_return=net / start, annual_return=annual, sharpe=sharpe, sortino=sortino,
        annual_volatility=0.0 if _is_constant(r) else float(np.std(r, ddof=1)) * _ROOT_YEAR,
        max_drawdown=mdd, calmar=annual / abs(mdd) if mdd < 0 else 0.0, trades=n_trades,
        win_rate=win_rate, profit_factor=factor, turnover=turnover, exposure=exposure,
        days=days, net_pnl=net, bar_sharpe=bar_sharpe, bar_sortino=bar_sortino,
        bars_per_year=bars_per_year, max_drawdown_bars=dd_bars, max_drawdown_days=dd_days,
        avg_trade=avg_trade, costs=math.nan if costs is None else float(costs),
        max_drawdown_usd=dd_usd, probabilistic_sharpe=probabilistic_sharpe_ratio(r),
        ruined=ruin_time is not None, ruin_time=ruin_time)


def to_dict(m: Metrics) -> dict[str, float | str | None]:
    """The metrics as a flat {name: value} dict (field order; ints and bools stay so)."""
    return {f.name: getattr(m, f.name) for f in dataclasses.fields(m)}


def positions_from_fills(fills: pd.DataFrame, n_bars: int) -> np.ndarray:
    """Position at each bar's close from an :meth:`Account.fills` log (fills stamped t=bar)."""
    delta = np.zeros(n_bars, dtype=np.int64)
    t = fills["t"].to_numpy(dtype=np.int64)
    if len(t) and (t.min() < 0 or t.max() >= n_bars):
        raise _bad(f"fills: bar index t must be in [0, {n_bars}), found [{t.min()}, {t.max()}]; "
                   "pass fills from simulate() over the same bars")
    np.add.at(delta, t, fills["qty"].to_numpy(dtype=np.int64))
    return np.cumsum(delta)


def account_at_ruin(values: np.ndarray, acct: Account) -> tuple[Ruin, dict[str, Any]]:
    """The curve of a simulated account (stopped by its own ruin stop, if it has one) and
    its :func:`compute_metrics` keywords: trades, positions, ruin bar, turnover, costs."""
    pos = positions_from_fills(acct.fills(), len(values))
    ruin = Ruin(np.asarray(values, dtype=np.float64), pos, acct.ruin_t if acct.ruined else None)
    return ruin, {"trades": acct.trades(), "positions": pos, "ruin_bar": ruin.bar,
                  "turnover_contracts": float(acct.turnover),
                  "costs": acct.commissions + acct.slippage_cost}
