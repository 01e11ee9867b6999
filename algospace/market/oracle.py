"""Oracles of the synthetic market: the best position path for a known drift, and its figures.

One rule makes every oracle. Given a drift series ``d_t`` (expected price
change of bar ``t`` in points per contract), a cost ``c`` per contract per
side (points) and a position limit ``M``, :func:`optimal_positions` returns
the path ``pos_t`` in ``{-M, ..., M}`` (contracts held during bar ``t``,
entered at its open) that maximises

    sum_t pos_t * d_t  -  c * sum_t |pos_t - pos_{t-1}|

with ``pos = 0`` before the first bar and a close after the last bar (paying
``c * |pos_last|``). With ``day`` given, every trading day is its own such
problem: the oracle starts each day flat and closes at the day's last bar
(the way the envs' one-session episodes trade; it never carries a position
through the session break, so the opening gap never enters its P&L). The
objective is linear in the positions with L1 costs, so an optimum lies in
``{-M, 0, M}``: the dynamic programme runs over those three states, vectorised
over days (tested against a brute force over every position path).
With zero drift it holds nothing (zero P&L, zero Sharpe).

**Foresight is not an oracle, only a bound.** Run on the whole drift series,
the DP decides bar ``t`` knowing the drifts of later bars, and those are
functions of bar ``t``'s own noise (``g_{k+1}`` is built from block ``k``'s
return, ``h_{t+1}`` from bar ``t``'s move): its realised P&L exploits noise
(strategic, seed 0: realised Sharpe ~15 against ~5 expected). Its expected
net P&L is still an upper bound on any causal strategy's (pathwise, no
strategy's ``sum pos d - costs`` beats the maximum): :func:`foresight_bounds`.

**Causal oracles** (:func:`causal_positions`): the same DP at every bar, on what
is known at that bar's open (:func:`algospace.market.forecast.drift_forecasts`:
the bar's own drift and the conditional expectation of the next ``H`` bars'),
from the position held; the bar keeps the first step (receding horizon). Its
positions never depend on the noise of the bars they are held over, so its
realised P&L is an unbiased draw of its expected P&L (tested). With perfect
forecasts it equals the DP (tested).

The market's three oracles (:func:`market_oracles`) differ only in the drift
they know: **strategic** (the 30-minute component), **tactical** (the
5-minute component) and **joint** (both). Their figures are always evaluated
with both planted drifts, whichever oracle chose the path:

- expected P&L per bar ``e_t = pos_t * (d^s_t + d^t_t) * point_value - cost_usd * traded_t``
  (``traded_t`` = contracts traded at bar ``t``'s open, plus the day's closing trade
  on its last bar), noise variance ``v_t = pos_t^2 * (sigma_points_t * point_value)^2``;
- per trading day ``E_d = sum e_t``, ``V_d = sum v_t``; the **expected net daily
  dollar Sharpe** is ``mean_d(E_d) / sqrt(mean_d(V_d) + var_d(E_d)) * sqrt(252)``
  (population variance), the expected net P&L ``sum_d E_d``;
- realised: ``pos_t * (close_t - open_t) * point_value`` minus the same costs,
  summed per day, Sharpe = mean / std (ddof 1) of the daily dollar P&L x sqrt(252).

These functions take any position path, so the backtest can score any strategy
against the planted drifts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from algospace.config.env import LEVERAGE_CAP
from algospace.data.contracts import ContractSpec, get_contract
from algospace.data.synthetic import TRADING_DAYS_PER_YEAR, SyntheticMarket
from algospace.errors import ConfigError
from algospace.market.forecast import drift_forecasts
from algospace.market.sizing import position_limit

ORACLE_NAMES = ("strategic", "tactical", "joint")
"""The market's oracles, by the planted drift each one sees."""
DEFAULT_CAPITAL = 100_000.0
"""Account capital (USD) of the default oracle account."""
DEFAULT_CONTRACT = "MES"
"""Contract of the default oracle account."""


def _segments(n: int, day: np.ndarray | None) -> np.ndarray:
    """Start index of each run of equal ``day`` labels (``[0]`` without days)."""
    if day is None or n == 0:
        return np.zeros(min(n, 1), dtype=np.int64)
    labels = np.asarray(day)
    if labels.shape != (n,):
        raise ConfigError(f"day must hold one label per bar ({n}); found shape {labels.shape}. "
                          "Fix: pass the trading-day number of every bar.")
    return np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])


def _check_inputs(drift: np.ndarray, cost_points: float, limit: int) -> None:
    """Raise ConfigError for a bad drift series, cost or limit."""
    if drift.ndim != 1 or not np.all(np.isfinite(drift)):
        raise ConfigError("drift_points must be a 1-D array of finite numbers; found "
                          f"shape {drift.shape}. Fix: pass one expected drift per bar.")
    if not (math.isfinite(cost_points) and cost_points >= 0):
        raise ConfigError(f"cost_points must be a finite number >= 0; found {cost_points!r}. "
                          "Fix: give the cost per contract per side in points (e.g. 0.374).")
    if isinstance(limit, bool) or not isinstance(limit, int | np.integer) or limit < 0:
        raise ConfigError(f"limit must be a whole number of contracts >= 0; found {limit!r}. "
                          "Fix: use position_limit(capital, price, point_value).")


def _padded(values: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``values`` per segment, zero-padded to the longest; and the valid mask."""
    lengths = np.diff(np.r_[starts, len(values)])
    width = int(lengths.max())
    mask = np.arange(width)[None, :] < lengths[:, None]
    table = np.zeros(mask.shape)
    table[mask] = values
    return table, mask


def _dp(drift: np.ndarray, cost: float) -> np.ndarray:
    """Best state index (0: flat, 1: long, 2: short) per bar, one row per segment."""
    states = np.array([0.0, 1.0, -1.0])
    switch = -cost * np.abs(states[:, None] - states[None, :])
    rows, width = drift.shape
    value = switch[:, 0][None, :] + states[None, :] * drift[:, :1]
    pointer = np.zeros((rows, width, 3), dtype=np.int64)
    for t in range(1, width):
        candidates = value[:, None, :] + switch[None, :, :]
        pointer[:, t] = np.argmax(candidates, axis=2)
        value = np.max(candidates, axis=2) + states[None, :] * drift[:, t:t + 1]
    state = np.argmax(value + switch[0][None, :], axis=1)
    path = np.empty((rows, width), dtype=np.int64)
    for t in range(width - 1, -1, -1):
        path[:, t] = state
        state = pointer[np.arange(rows), t, state]
    return path


def optimal_positions(drift_points: np.ndarray, cost_points: float, limit: int,
                      day: np.ndarray | None = None) -> np.ndarray:
    """The position path (int64, in [-limit, limit]) maximising drift earned minus costs."""
    drift = np.asarray(drift_points, dtype=np.float64)
    _check_inputs(drift, float(cost_points), limit)
    if len(drift) == 0 or limit == 0:
        return np.zeros(len(drift), dtype=np.int64)
    starts = _segments(len(drift), day)
    # per contract: the optimum for limit M is M times the optimum for one contract
    table, mask = _padded(drift, starts)
    states = _dp(table, float(cost_points))[mask]
    return np.array([0, 1, -1], dtype=np.int64)[states] * int(limit)


def _relax(value: np.ndarray, cost: float) -> np.ndarray:
    """Per state (flat, long, short): the best of ``value`` over the next state, less switching."""
    flat, long_, short = value[:, 0], value[:, 1], value[:, 2]
    return np.stack([np.maximum(flat, np.maximum(long_, short) - cost),
                     np.maximum(long_, np.maximum(flat - cost, short - 2 * cost)),
                     np.maximum(short, np.maximum(flat - cost, long_ - 2 * cost))], axis=1)


def _horizon_values(forecast: np.ndarray, cost: float) -> np.ndarray:
    """Per row and state: the best value of a path over the row's forecast, starting there."""
    states = np.array([0.0, 1.0, -1.0])
    value = np.broadcast_to(-cost * np.abs(states), (len(forecast), 3))  # close at the end
    for j in range(forecast.shape[1] - 1, -1, -1):
        if j < forecast.shape[1] - 1:
            value = _relax(value, cost)
        value = value + states[None, :] * forecast[:, j:j + 1]
    return value


def causal_positions(forecasts: np.ndarray, cost_points: float, limit: int,
                     day: np.ndarray | None = None) -> np.ndarray:
    """Receding horizon: each bar keeps the first step of the best path over its forecast.

    Row ``t`` of ``forecasts`` (n x H, points) is what is known at bar ``t``'s open about
    the drift of bars ``t .. t+H-1`` (column 0: bar ``t``'s own drift); the path starts
    from the position held and closes after the horizon or at the day's end.
    """
    table = np.asarray(forecasts, dtype=np.float64)
    if table.ndim != 2:
        raise ConfigError(f"forecasts must be a 2-D array (bars x horizon); found shape "
                          f"{table.shape}. Fix: pass one row of forecasts per bar.")
    _check_inputs(table[:, 0] if table.shape[1] else np.zeros(0), float(cost_points), limit)
    n = len(table)
    if n == 0 or limit == 0 or table.shape[1] == 0:
        return np.zeros(n, dtype=np.int64)
    starts = _segments(n, day)
    lengths = np.diff(np.r_[starts, n])
    left = np.repeat(starts + lengths, lengths) - np.arange(n)
    seen = np.where(np.arange(table.shape[1])[None, :] < left[:, None], table, 0.0)
    value = _horizon_values(seen, float(cost_points))
    states = np.array([0.0, 1.0, -1.0])
    switch = -float(cost_points) * np.abs(states[:, None] - states[None, :])
    held = np.zeros(len(starts), dtype=np.int64)
    out = np.zeros(n, dtype=np.int64)
    for i in range(int(lengths.max())):
        active = lengths > i
        rows = starts[active] + i
        held[active] = np.argmax(value[rows] + switch[held[active]], axis=1)
        out[rows] = held[active]
    return np.array([0, 1, -1], dtype=np.int64)[out] * int(limit)


def traded_contracts(positions: np.ndarray, day: np.ndarray | None = None) -> np.ndarray:
    """Contracts traded at each bar: |change| at its open, plus the day's close on its last bar."""
    pos = np.asarray(positions, dtype=np.float64)
    starts = _segments(len(pos), day)
    before = np.r_[0.0, pos[:-1]]
    before[starts] = 0.0
    last = np.r_[starts[1:] - 1, len(pos) - 1] if len(pos) else starts
    traded = np.abs(pos - before)
    traded[last] += np.abs(pos[last])
    return traded


def expected_bar_pnl(positions: np.ndarray, drift_points: np.ndarray, point_value: float,
                     cost_per_side_usd: float, day: np.ndarray | None = None) -> np.ndarray:
    """Expected net P&L (USD) of each bar: position x drift x point value minus costs."""
    pos = np.asarray(positions, dtype=np.float64)
    gross = pos * np.asarray(drift_points, dtype=np.float64) * point_value
    return gross - cost_per_side_usd * traded_contracts(pos, day)


def expected_pnl(positions: np.ndarray, drift_points: np.ndarray, point_value: float,
                 cost_per_side_usd: float, day: np.ndarray | None = None) -> float:
    """Expected net P&L (USD) of a position path: the sum of :func:`expected_bar_pnl`."""
    return float(expected_bar_pnl(positions, drift_points, point_value, cost_per_side_usd,
                                  day).sum())


def _by_day(values: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Sum of ``values`` per run of equal ``day`` labels."""
    if len(values) == 0:
        return np.zeros(0)
    return np.add.reduceat(values, _segments(len(values), day))


def expected_sharpe(positions: np.ndarray, drift_points: np.ndarray, sigma_points: np.ndarray,
                    day: np.ndarray, point_value: float, cost_per_side_usd: float) -> float:
    """Expected net daily dollar Sharpe, annualised: mean E_d / sqrt(mean V_d + var E_d)."""
    pos = np.asarray(positions, dtype=np.float64)
    bar_e = expected_bar_pnl(pos, drift_points, point_value, cost_per_side_usd, day)
    bar_v = (pos * np.asarray(sigma_points, dtype=np.float64) * point_value) ** 2
    e_day, v_day = _by_day(bar_e, day), _by_day(bar_v, day)
    if len(e_day) == 0:
        return 0.0
    spread = float(np.mean(v_day) + np.var(e_day))
    if not spread > 0.0:
        return 0.0
    return float(np.mean(e_day) / math.sqrt(spread) * math.sqrt(TRADING_DAYS_PER_YEAR))


def realised_daily_pnl(positions: np.ndarray, open_: np.ndarray, close: np.ndarray,
                       day: np.ndarray, point_value: float, cost_per_side_usd: float
                       ) -> np.ndarray:
    """Realised net P&L (USD) per day: position x (close - open) x point value minus costs."""
    pos = np.asarray(positions, dtype=np.float64)
    move = np.asarray(close, dtype=np.float64) - np.asarray(open_, dtype=np.float64)
    bar = pos * move * point_value - cost_per_side_usd * traded_contracts(pos, day)
    return _by_day(bar, day)


def daily_sharpe(daily: np.ndarray) -> float:
    """Mean over standard deviation (ddof 1) of daily P&L x sqrt(252); 0.0 when undefined."""
    values = np.asarray(daily, dtype=np.float64)
    if len(values) < 2:
        return 0.0
    std = float(np.std(values, ddof=1))
    if not std > 0.0:
        return 0.0
    return float(np.mean(values) / std * math.sqrt(TRADING_DAYS_PER_YEAR))


@dataclass(frozen=True)
class OracleAccount:
    """The account the oracles trade: contract, capital and position limit."""

    contract: ContractSpec
    """Contract traded (point value and cost per side)."""
    capital: float
    """Account capital in USD."""
    limit: int
    """Position limit in contracts."""

    @property
    def cost_points(self) -> float:
        """Cost per contract per side in points."""
        return self.contract.cost_per_side / self.contract.point_value


def default_account(market: SyntheticMarket, contract: ContractSpec | None = None,
                    capital: float = DEFAULT_CAPITAL, reference_price: float | None = None
                    ) -> OracleAccount:
    """MES, $100k, limit by the leverage cap at ``reference_price``.

    ``reference_price`` defaults to the highest close of the first 70 % of bars (the
    default training split).
    """
    spec = contract or get_contract(DEFAULT_CONTRACT)
    if reference_price is None:
        close = market.bars.column("close")
        reference_price = float(close[:max(1, round(0.7 * len(close)))].max())
    limit = position_limit(capital, reference_price, spec.point_value, LEVERAGE_CAP)
    return OracleAccount(spec, float(capital), limit)


@dataclass(frozen=True)
class OracleFigures:
    """Expected and realised figures of one position path over a set of trading days."""

    expected_net_sharpe: float
    """Expected net daily dollar Sharpe (annualised)."""
    expected_net_pnl: float
    """Expected net P&L in USD."""
    expected_gross_pnl: float
    """Expected P&L before costs in USD."""
    realised_net_sharpe: float
    """Realised net daily dollar Sharpe (annualised)."""
    realised_net_pnl: float
    """Realised net P&L in USD."""


def figures(market: SyntheticMarket, positions: np.ndarray, account: OracleAccount,
            rows: slice = slice(None)) -> OracleFigures:
    """Expected (both planted drifts) and realised figures of ``positions`` on bars ``rows``."""
    pos = np.asarray(positions)[rows]
    drift = (market.drift_strategic + market.drift_tactical)[rows]
    day = market.day[rows]
    pv, cost = account.contract.point_value, account.contract.cost_per_side
    frame = market.bars.frame.iloc[rows]
    daily = realised_daily_pnl(pos, frame["open"].to_numpy(), frame["close"].to_numpy(), day,
                               pv, cost)
    return OracleFigures(
        expected_net_sharpe=expected_sharpe(pos, drift, market.sigma_points[rows], day, pv, cost),
        expected_net_pnl=expected_pnl(pos, drift, pv, cost, day),
        expected_gross_pnl=expected_pnl(pos, drift, pv, 0.0, day),
        realised_net_sharpe=daily_sharpe(daily),
        realised_net_pnl=float(daily.sum()),
    )


def oracle_paths(market: SyntheticMarket, account: OracleAccount,
                 foresight: bool = False) -> dict[str, np.ndarray]:
    """Each oracle's position path (flat at every day's end): causal, or with foresight."""
    day = market.day
    if foresight:
        drifts = {"strategic": market.drift_strategic, "tactical": market.drift_tactical}
        drifts["joint"] = drifts["strategic"] + drifts["tactical"]
        return {name: optimal_positions(drifts[name], account.cost_points, account.limit, day)
                for name in ORACLE_NAMES}
    known = drift_forecasts(market)
    known["joint"] = known["strategic"] + known["tactical"]
    return {name: causal_positions(known[name], account.cost_points, account.limit, day)
            for name in ORACLE_NAMES}


def market_oracles(market: SyntheticMarket, account: OracleAccount | None = None
                   ) -> dict[str, OracleFigures]:
    """The three causal oracles' figures over the whole market (default account unless given)."""
    account = account or default_account(market)
    return {name: figures(market, path, account)
            for name, path in oracle_paths(market, account).items()}


def foresight_bounds(market: SyntheticMarket, account: OracleAccount | None = None
                     ) -> dict[str, float]:
    """Per oracle, the foresight path's expected net P&L: a bound no causal strategy beats."""
    account = account or default_account(market)
    drift = market.drift_strategic + market.drift_tactical
    pv, cost = account.contract.point_value, account.contract.cost_per_side
    return {name: expected_pnl(path, drift, pv, cost, market.day)
            for name, path in oracle_paths(market, account, foresight=True).items()}


def joint_over_best_single(oracles: dict[str, OracleFigures]) -> float:
    """Joint oracle's expected net P&L over the better single-layer oracle's (nan if <= 0)."""
    best = max(oracles["strategic"].expected_net_pnl, oracles["tactical"].expected_net_pnl)
    return oracles["joint"].expected_net_pnl / best if best > 0 else math.nan


def oracle_truth(market: SyntheticMarket, account: OracleAccount
                 ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The ``synthetic_truth`` table and the oracles' figures for the store's meta.

    The table is :meth:`SyntheticMarket.truth` plus ``oracle_strategic``,
    ``oracle_tactical`` and ``oracle_joint``: each causal oracle's position per contract of
    limit (-1, 0, +1; the optimum for limit M is M times it), for ``account``'s costs.
    """
    paths = oracle_paths(market, account)
    table = market.truth()
    unit = max(account.limit, 1)
    for name, path in paths.items():
        table[f"oracle_{name}"] = (path // unit).astype(np.int8)
    bounds = foresight_bounds(market, account)
    oracles = {}
    for name, path in paths.items():
        fig = figures(market, path, account)
        oracles[name] = {"expected_net_sharpe": fig.expected_net_sharpe,
                         "expected_net_pnl": fig.expected_net_pnl,
                         "expected_gross_pnl": fig.expected_gross_pnl,
                         "realised_net_sharpe": fig.realised_net_sharpe,
                         "realised_net_pnl": fig.realised_net_pnl,
                         "foresight_net_pnl_bound": bounds[name]}
    best = max(oracles["strategic"]["expected_net_pnl"], oracles["tactical"]["expected_net_pnl"])
    meta = {"oracles": oracles,
            "oracle_joint_over_best_single": oracles["joint"]["expected_net_pnl"] / best
            if best > 0 else None,
            "oracle_account": {"contract": account.contract.symbol, "capital": account.capital,
                               "position_limit": account.limit,
                               "cost_per_side_usd": account.contract.cost_per_side}}
    return table, meta
