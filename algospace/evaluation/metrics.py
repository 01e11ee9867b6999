"""Backtest performance metrics and cost-charged baselines on the same bars.

Conventions (empyrical / quantstats, stated once in :data:`ANNUALISATION`):

- **Input.** A per-bar equity curve in dollars (after each bar's close), indexed
  by bar **open** time, plus ``initial_equity`` (the equity before the first
  bar; default: the first value of the curve).
- **Daily returns.** Bars are grouped by trading day with
  :func:`algospace.data.synthetic.trading_day` (a session runs 18:00–17:00, so a
  bar opening at or after 18:00 belongs to the next calendar day).
  ``r_d = E_d / E_{d-1} - 1`` where ``E_d`` is the last equity of day ``d`` and
  ``E_0 = initial_equity``. Returns assume the equity stays positive.
- **Annualisation.** 252 trading days per year, volatility-type figures scale
  by ``sqrt(252)``; the risk-free rate is 0.

  - ``annual_return = (1 + total_return) ** (252 / days) - 1`` (CAGR; ``-1`` if
    the account lost everything).
  - ``annual_volatility = std(r, ddof=1) * sqrt(252)``.
  - ``sharpe = mean(r) / std(r, ddof=1) * sqrt(252)``.
  - ``sortino = mean(r) / sqrt(mean(min(r, 0) ** 2)) * sqrt(252)`` (downside
    deviation over *all* days, as in empyrical).

- **Undefined values.** Fewer than 2 days, or a (numerically) constant return
  series: ``annual_volatility``, ``sharpe`` and ``sortino`` are 0.0. No losing
  day: ``sortino`` is ``inf`` if ``mean(r) > 0`` else 0.0. ``calmar`` is 0.0
  when there was no drawdown. ``profit_factor`` is ``inf`` with wins and no
  losses and 0.0 without trades. ``turnover`` / ``exposure`` are ``nan`` when
  neither positions nor a contract count were given (not measured).
- **Bar level.** ``bar_sharpe`` / ``bar_sortino`` use per-bar returns
  ``E_t / E_{t-1} - 1`` (``E_0`` = initial equity) scaled by
  ``sqrt(bars_per_year)``, where ``bars_per_year`` = bars per trading day in
  the period × 252 (reported with the figures).
- **Drawdown** is measured on the per-bar curve (intraday troughs count), with
  ``initial_equity`` as the first peak: ``min(E_t / max_{s<=t} E_s - 1)``.
- **Trades** are closed round trips (:meth:`Account.trades`); a position still
  open at the end is in the equity but not in the trade statistics.

Baselines (:func:`run_baselines`) go through :func:`algospace.market.simulate`
so they pay the same commission and slippage as the agents.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from algospace.data.contracts import ContractSpec
from algospace.data.synthetic import TRADING_DAYS_PER_YEAR, trading_day
from algospace.errors import ConfigError
from algospace.market.account import simulate

__all__ = [
    "ANNUALISATION",
    "BASELINES",
    "Metrics",
    "baseline_equity",
    "baseline_targets",
    "compute_metrics",
    "daily_returns",
    "positions_from_fills",
    "run_baselines",
    "to_dict",
]

ANNUALISATION = (f"daily returns per trading day (18:00–17:00 session), {TRADING_DAYS_PER_YEAR} "
                 f"days a year: returns compound to the power 252/days, volatility, Sharpe "
                 f"and Sortino scale by sqrt({TRADING_DAYS_PER_YEAR}); bar-level Sharpe and "
                 f"Sortino use per-bar returns scaled by sqrt(bars_per_year), bars_per_year = "
                 f"bars per trading day in the period × {TRADING_DAYS_PER_YEAR}; risk-free "
                 f"rate 0")
"""How every annualised figure in :class:`Metrics` is computed."""
BASELINES: tuple[str, ...] = ("flat", "buy_and_hold", "random", "rule")
"""Names accepted by :func:`baseline_targets`."""
_ROOT_YEAR = math.sqrt(TRADING_DAYS_PER_YEAR)


@dataclass(frozen=True)
class Metrics:
    """Performance of one equity curve (see the module docstring for the conventions)."""

    total_return: float
    """equity_end / initial_equity - 1 (fraction, not annualised)."""
    annual_return: float
    """CAGR over trading days: (1 + total_return) ** (252 / days) - 1 (fraction per year)."""
    annual_volatility: float
    """std(daily returns, ddof=1) * sqrt(252) (fraction per year); 0.0 when undefined."""
    sharpe: float
    """mean(daily) / std(daily, ddof=1) * sqrt(252), risk-free 0; 0.0 when undefined."""
    sortino: float
    """mean(daily) / sqrt(mean(min(daily, 0)^2)) * sqrt(252); inf/0.0 rules in module doc."""
    max_drawdown: float
    """Most negative equity / running peak - 1 on the per-bar curve (fraction, <= 0)."""
    calmar: float
    """annual_return / |max_drawdown| (per year); 0.0 when max_drawdown == 0."""
    trades: int
    """Number of closed round trips."""
    win_rate: float
    """Share of closed trades with pnl_net > 0 (fraction); 0.0 without trades. Counted per
    round trip, so flat periods never enter it."""
    profit_factor: float
    """Sum of winning pnl_net / |sum of losing pnl_net|; inf if no losses, 0.0 if no trades."""
    turnover: float
    """Contracts traded (both sides counted) per trading day; nan when not measured."""
    exposure: float
    """Share of bars ending with a non-zero position (fraction); nan without positions."""
    days: int
    """Trading days in the period (not annualised)."""
    net_pnl: float
    """equity_end - initial_equity, in dollars, net of commissions and slippage."""
    bar_sharpe: float = 0.0
    """mean(bar returns) / std(bar returns, ddof=1) * sqrt(bars_per_year); 0.0 if undefined."""
    bar_sortino: float = 0.0
    """Sortino ratio of the bar returns, annualised with sqrt(bars_per_year)."""
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


def _bad(message: str) -> ConfigError:
    """A ConfigError (a ValueError) with ``message``."""
    return ConfigError(message)


def _check_index(index: pd.Index, what: str) -> pd.DatetimeIndex:
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
    return pd.Series(values, index=_check_index(equity.index, "equity"), name="equity")


def _initial(equity: pd.Series, initial_equity: float | None) -> float:
    """initial_equity, or the first equity value; must be finite and > 0."""
    value = float(equity.iloc[0]) if initial_equity is None else float(initial_equity)
    if not (math.isfinite(value) and value > 0):
        raise _bad(f"initial_equity: must be a finite number > 0 (dollars), found {value!r}; "
                   "pass the account's starting equity, e.g. initial_equity=100_000.0")
    return value


def daily_returns(equity: pd.Series, *, initial_equity: float | None = None,
                  index: pd.Index | None = None) -> pd.Series:
    """Per trading day: last equity of the day / last equity of the day before - 1."""
    eq = _as_equity(equity, index)
    start = _initial(eq, initial_equity)
    days = pd.DatetimeIndex(trading_day(pd.DatetimeIndex(eq.index)), name="trading_day")
    last = eq.groupby(days, sort=True).last()
    values = last.to_numpy()
    before = np.concatenate([[start], values[:-1]])
    return pd.Series(values / before - 1.0, index=last.index, name="return")


def _is_constant(r: np.ndarray) -> bool:
    """True for fewer than 2 values or a numerically constant series (std ~ 0)."""
    return len(r) < 2 or float(np.std(r, ddof=1)) <= 1e-12 * float(np.mean(np.abs(r)))


def _sharpe(r: np.ndarray) -> float:
    """Annualised Sharpe ratio of daily returns (risk-free 0); 0.0 when undefined."""
    if _is_constant(r):
        return 0.0
    return float(np.mean(r) / np.std(r, ddof=1) * _ROOT_YEAR)


def _sortino(r: np.ndarray) -> float:
    """Annualised Sortino ratio with empyrical's downside deviation (target 0)."""
    if _is_constant(r):
        return 0.0
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    mean = float(np.mean(r))
    if downside == 0.0:
        return math.inf if mean > 0 else 0.0
    return mean / downside * _ROOT_YEAR


def _max_drawdown(values: np.ndarray, start: float) -> float:
    """Most negative equity / running peak - 1, the running peak starting at ``start``."""
    peak = np.maximum.accumulate(np.concatenate([[start], values]))[1:]
    return min(float(np.min(values / peak - 1.0)), 0.0)


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
    wins = float(pnl[pnl > 0].sum())
    losses = -float(pnl[pnl < 0].sum())
    rate = float(np.mean(pnl > 0))
    if losses > 0:
        return len(pnl), rate, wins / losses
    return len(pnl), rate, (math.inf if wins > 0 else 0.0)


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


def _underwater(values: np.ndarray, start: float, days: np.ndarray) -> tuple[int, int]:
    """(bars, trading days) of the longest stretch below the running peak."""
    peak = np.maximum.accumulate(np.concatenate([[start], values]))[1:]
    below = values < peak
    best = (0, 0)
    run_start = -1
    for i, flag in enumerate(np.append(below, False)):
        if flag and run_start < 0:
            run_start = i
        elif not flag and run_start >= 0:
            length = i - run_start
            if length > best[0]:
                best = (length, len(np.unique(days[run_start:i])))
            run_start = -1
    return best


def _bar_ratios(values: np.ndarray, start: float, bars_per_year: float) -> tuple[float, float]:
    """(Sharpe, Sortino) of the per-bar returns, annualised with sqrt(bars_per_year)."""
    before = np.concatenate([[start], values[:-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.diff(np.concatenate([[start], values])) / before
    r = r[before > 0]  # returns are undefined once the equity is gone
    if not math.isfinite(bars_per_year):
        return 0.0, 0.0
    scale = math.sqrt(bars_per_year)
    sharpe = _sharpe(r) / _ROOT_YEAR * scale
    sortino = _sortino(r) / _ROOT_YEAR * scale if math.isfinite(_sortino(r)) else _sortino(r)
    return sharpe, sortino


def compute_metrics(equity: pd.Series | np.ndarray, *, positions: np.ndarray | None = None,
                    trades: pd.DataFrame | None = None, turnover_contracts: float | None = None,
                    initial_equity: float | None = None, index: pd.Index | None = None,
                    costs: float | None = None) -> Metrics:
    """Metrics of a per-bar equity curve (indexed by bar open time, or an array plus index).

    ``turnover_contracts`` (e.g. ``account.turnover``) overrides the turnover derived
    from ``positions``, which misses a bracket exit on the bar a position was opened.
    """
    eq = _as_equity(equity, index)
    start = _initial(eq, initial_equity)
    r = daily_returns(eq, initial_equity=start).to_numpy()
    days = len(r)
    values = eq.to_numpy()
    total = float(values[-1]) / start - 1.0
    cagr = (1.0 + total) ** (TRADING_DAYS_PER_YEAR / days) - 1.0 if total > -1.0 else -1.0
    mdd = _max_drawdown(values, start)
    n_trades, win_rate, factor = _trade_stats(trades)
    turnover, exposure = _position_stats(positions, turnover_contracts, len(values), days)
    bars_per_year = len(values) / days * TRADING_DAYS_PER_YEAR if days else math.nan
    bar_sharpe, bar_sortino = _bar_ratios(values, start, bars_per_year)
    day_of_bar = trading_day(pd.DatetimeIndex(eq.index)).to_numpy()
    dd_bars, dd_days = _underwater(values, start, day_of_bar)
    avg_trade = float(trades["pnl_net"].mean()) if trades is not None and n_trades else 0.0
    return Metrics(
        total_return=total, annual_return=cagr,
        annual_volatility=0.0 if _is_constant(r) else float(np.std(r, ddof=1)) * _ROOT_YEAR,
        sharpe=_sharpe(r), sortino=_sortino(r), max_drawdown=mdd,
        calmar=cagr / abs(mdd) if mdd < 0 else 0.0,
        trades=n_trades, win_rate=win_rate, profit_factor=factor, turnover=turnover,
        exposure=exposure, days=days, net_pnl=float(values[-1]) - start,
        bar_sharpe=bar_sharpe, bar_sortino=bar_sortino, bars_per_year=bars_per_year,
        max_drawdown_bars=dd_bars, max_drawdown_days=dd_days, avg_trade=avg_trade,
        costs=math.nan if costs is None else float(costs),
    )


def to_dict(m: Metrics) -> dict[str, float]:
    """The metrics as a flat {name: value} dict (field order; ints stay ints)."""
    return {f.name: getattr(m, f.name) for f in dataclasses.fields(m)}


def _check_size(size: object) -> int:
    """``size`` as an int >= 1 (contracts)."""
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
        raise _bad(f"size: must be an integer >= 1 (contracts), found {size!r}; "
                   "pass e.g. size=1")
    return int(size)


def _rule_targets(signal: np.ndarray | None, n_bars: int, size: int) -> np.ndarray:
    """sign(signal[i - 1]) * size for bar i (flat on bar 0 and where the signal is NaN)."""
    if signal is None:
        raise _bad("baseline 'rule': needs a signal, found signal=None; pass one value per "
                   "bar, e.g. the synergy direction")
    sig = np.asarray(signal, dtype=np.float64)
    if sig.shape != (n_bars,):
        raise _bad(f"baseline 'rule': signal needs one value per bar ({n_bars}), found shape "
                   f"{sig.shape}; pass an array as long as the bars")
    out = np.zeros(n_bars, dtype=np.int64)
    out[1:] = np.sign(np.nan_to_num(sig[:-1], nan=0.0)).astype(np.int64) * size
    return out


def baseline_targets(name: str, n_bars: int, *, size: int = 1, seed: int = 0,
                     signal: np.ndarray | None = None) -> np.ndarray:
    """Target position (contracts) for each bar of baseline ``name`` (see :data:`BASELINES`).

    ``flat``: 0. ``buy_and_hold``: +size from bar 0, never exits. ``random``: an
    independent uniform draw from {-size, 0, +size} every bar from
    ``np.random.default_rng(seed)`` (so it re-trades often and pays costs).
    ``rule``: ``sign(signal[i - 1]) * size`` for bar i, flat on bar 0 (no look-ahead).
    """
    size = _check_size(size)
    if isinstance(n_bars, bool) or not isinstance(n_bars, int | np.integer) or n_bars < 0:
        raise _bad(f"n_bars: must be an integer >= 0, found {n_bars!r}; pass len(bars)")
    if name == "flat":
        return np.zeros(n_bars, dtype=np.int64)
    if name == "buy_and_hold":
        return np.full(n_bars, size, dtype=np.int64)
    if name == "random":
        choices = np.array([-size, 0, size], dtype=np.int64)
        return np.random.default_rng(seed).choice(choices, size=n_bars)
    if name == "rule":
        return _rule_targets(signal, int(n_bars), size)
    raise _bad(f"baseline: unknown name {name!r}; use one of {', '.join(BASELINES)}")


def positions_from_fills(fills: pd.DataFrame, n_bars: int) -> np.ndarray:
    """Position at each bar's close from an :meth:`Account.fills` log (fills stamped t=bar)."""
    delta = np.zeros(n_bars, dtype=np.int64)
    t = fills["t"].to_numpy(dtype=np.int64)
    if len(t) and (t.min() < 0 or t.max() >= n_bars):
        raise _bad(f"fills: bar index t must be in [0, {n_bars}), found [{t.min()}, {t.max()}]; "
                   "pass fills from simulate() over the same bars")
    np.add.at(delta, t, fills["qty"].to_numpy(dtype=np.int64))
    return np.cumsum(delta)


def _ohlc(bars: pd.DataFrame) -> list[np.ndarray]:
    """open, high, low, close of validated bars as float64 arrays."""
    missing = [c for c in ("open", "high", "low", "close") if c not in bars.columns]
    if missing:
        raise _bad(f"bars: missing columns {missing}, found {list(bars.columns)}; pass a "
                   "frame with open/high/low/close (e.g. Bars.frame)")
    if len(bars) == 0:
        raise _bad("bars: found an empty frame; pass at least one bar")
    _check_index(bars.index, "bars")
    cols = [bars[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low", "close")]
    if not all(np.isfinite(c).all() for c in cols):
        raise _bad("bars: found NaN/inf prices; clean or drop those bars first")
    return cols


def baseline_equity(name: str, bars: pd.DataFrame, contract: ContractSpec, *, size: int = 1,
                    seed: int = 0, rule_signal: np.ndarray | None = None,
                    initial_equity: float = 100_000.0) -> tuple[pd.Series, Metrics]:
    """Equity curve and metrics of baseline ``name`` on ``bars`` (through :func:`simulate`)."""
    o, h, l, c = _ohlc(bars)  # noqa: E741
    size = _check_size(size)
    targets = baseline_targets(name, len(o), size=size, seed=seed, signal=rule_signal)
    values, acct = simulate(contract, targets, o, h, l, c, max_position=size,
                            initial_equity=initial_equity)
    equity = pd.Series(values, index=bars.index, name="equity")
    metrics = compute_metrics(
        equity, trades=acct.trades(), positions=positions_from_fills(acct.fills(), len(o)),
        turnover_contracts=float(acct.turnover), initial_equity=initial_equity,
        costs=acct.commissions + acct.slippage_cost)
    return equity, metrics


def run_baselines(bars: pd.DataFrame, contract: ContractSpec, *, size: int = 1, seed: int = 0,
                  rule_signal: np.ndarray | None = None,
                  initial_equity: float = 100_000.0) -> dict[str, Metrics]:
    """Metrics of flat, buy_and_hold, random (and rule, if ``rule_signal``) on ``bars``.

    Each runs through :func:`simulate` with ``max_position=size``, so commissions and
    slippage are charged exactly as for the agents.
    """
    names = [n for n in BASELINES if n != "rule" or rule_signal is not None]
    return {name: baseline_equity(name, bars, contract, size=size, seed=seed,
                                  rule_signal=rule_signal, initial_equity=initial_equity)[1]
            for name in names}
