"""Backtest metrics and baselines: golden numbers worked out by hand.

Trading days: a session runs 18:00–17:00, so trading_day(t) is the date of
t + 6 h — a bar opening at 2024-01-01 18:00 belongs to 2024-01-02, one at
2024-01-02 17:59 still to 2024-01-02. ES: $50/point, tick 0.25, $2.50
commission and 1 tick ($12.50) slippage per contract per side.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from algospace.data.contracts import get_contract
from algospace.evaluation.metrics import (
    ANNUALISATION,
    Metrics,
    baseline_targets,
    compute_metrics,
    daily_returns,
    positions_from_fills,
    run_baselines,
    to_dict,
)
from algospace.market import simulate

ES = get_contract("ES")
E0 = 100_000.0

# Three trading days; the 18:00 / 18:30 bars open the next day's session.
TIMES = pd.DatetimeIndex([
    "2024-01-01 18:00", "2024-01-02 09:30", "2024-01-02 16:00",  # day 2024-01-02
    "2024-01-02 18:30", "2024-01-03 10:00",                      # day 2024-01-03
    "2024-01-04 09:30", "2024-01-04 16:59",                      # day 2024-01-04
])
EQUITY = pd.Series([100_500.0, 99_800.0, 101_000.0, 100_000.0, 98_980.0, 100_500.0, 100_959.6],
                   index=TIMES)


def test_three_day_curve_golden() -> None:
    """Daily returns, total/annual return, volatility, Sharpe, Sortino, drawdown, Calmar."""
    r = daily_returns(EQUITY, initial_equity=E0)
    assert list(r.index) == list(pd.DatetimeIndex(["2024-01-02", "2024-01-03", "2024-01-04"]))
    # 101000/100000 - 1 = 0.01; 98980/101000 - 1 = -0.02; 100959.6/98980 - 1 = 0.02
    np.testing.assert_allclose(r.to_numpy(), [0.01, -0.02, 0.02], rtol=1e-12)
    m = compute_metrics(EQUITY, initial_equity=E0)
    assert m.days == 3
    assert m.total_return == pytest.approx(0.009596, rel=1e-12)  # 100959.6 / 100000 - 1
    assert m.net_pnl == pytest.approx(959.6, rel=1e-12)
    # CAGR: 1.009596 ** (252 / 3) - 1 = 1.009596 ** 84 - 1 ≈ 1.2304895
    assert m.annual_return == pytest.approx(1.009596 ** 84 - 1, rel=1e-10)
    assert m.annual_return == pytest.approx(1.2304895, rel=1e-6)
    # mean = 1/300; deviations (2, -7, 5)/300 -> var = 78/90000/2 = 39/90000,
    # std = sqrt(39)/300; vol = sqrt(39)/300 * sqrt(252) ≈ 0.330454
    assert m.annual_volatility == pytest.approx(math.sqrt(39) / 300 * math.sqrt(252), rel=1e-10)
    # Sharpe = (1/300) / (sqrt(39)/300) * sqrt(252) = sqrt(252/39) ≈ 2.541956
    assert m.sharpe == pytest.approx(math.sqrt(252 / 39), rel=1e-10)
    # downside dev = sqrt((0 + 0.02^2 + 0) / 3) = 0.02/sqrt(3);
    # Sortino = (1/300) / (0.02/sqrt(3)) * sqrt(252) = sqrt(3)/6 * sqrt(252) = sqrt(21) ≈ 4.5826
    assert m.sortino == pytest.approx(math.sqrt(21), rel=1e-10)
    # Per-bar peaks 100500, 101000; trough 98980 -> 98980/101000 - 1 = -0.02
    assert m.max_drawdown == pytest.approx(-0.02, rel=1e-12)
    assert m.calmar == pytest.approx((1.009596 ** 84 - 1) / 0.02, rel=1e-10)
    # Nothing about positions or trades was given.
    assert (m.trades, m.win_rate, m.profit_factor) == (0, 0.0, 0.0)
    assert math.isnan(m.turnover) and math.isnan(m.exposure)


def test_initial_equity_defaults_to_first_bar_and_numpy_input() -> None:
    """Default start = equity.iloc[0]; a numpy array needs index=."""
    r = daily_returns(EQUITY)
    assert r.iloc[0] == pytest.approx(101_000 / 100_500 - 1, rel=1e-12)
    m = compute_metrics(EQUITY.to_numpy(), index=TIMES)
    assert m.total_return == pytest.approx(100_959.6 / 100_500 - 1, rel=1e-12)
    assert m == compute_metrics(EQUITY)


def test_max_drawdown_sees_intraday_trough() -> None:
    """Trough inside day 1 (95950 from a 101000 peak) is deeper than any daily close."""
    times = pd.DatetimeIndex(["2024-01-02 09:30", "2024-01-02 11:00", "2024-01-02 16:00",
                              "2024-01-03 16:00"])
    eq = pd.Series([101_000.0, 95_950.0, 101_000.0, 100_990.0], index=times)
    m = compute_metrics(eq, initial_equity=E0)
    assert m.max_drawdown == pytest.approx(-0.05, rel=1e-12)  # 95950 / 101000 - 1
    # On daily closes (101000, 100990) the drawdown would only be -10/101000.
    assert m.max_drawdown < 100_990 / 101_000 - 1
    # CAGR over 2 days: 1.0099 ** 126 - 1; Calmar divides by 0.05.
    assert m.calmar == pytest.approx((1.0099 ** 126 - 1) / 0.05, rel=1e-10)


def _trades(pnl: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"pnl_net": pnl})


def test_trade_statistics() -> None:
    """Win rate counts pnl_net > 0 only; profit factor = wins / |losses|."""
    eq = EQUITY
    # wins 100 + 30 = 130, losses 50 + 25 = 75 -> 130/75; 2 of 5 trades win (0 is no win).
    m = compute_metrics(eq, trades=_trades([100.0, -50.0, 30.0, -25.0, 0.0]))
    assert (m.trades, m.win_rate) == (5, 0.4)
    assert m.profit_factor == pytest.approx(130 / 75, rel=1e-12)
    m = compute_metrics(eq, trades=_trades([10.0, 0.0, 5.0]))  # no losses
    assert (m.trades, m.profit_factor) == (3, math.inf)
    assert m.win_rate == pytest.approx(2 / 3)
    m = compute_metrics(eq, trades=_trades([-5.0]))  # only a loss
    assert (m.trades, m.win_rate, m.profit_factor) == (1, 0.0, 0.0)
    m = compute_metrics(eq, trades=_trades([]))  # no trades
    assert (m.trades, m.win_rate, m.profit_factor) == (0, 0.0, 0.0)


def test_exposure_and_turnover() -> None:
    """Exposure = share of bars in a position; turnover = contracts traded per trading day."""
    times = pd.date_range("2024-01-02 09:30", periods=3, freq="h").append(
        pd.date_range("2024-01-03 09:30", periods=3, freq="h"))
    eq = pd.Series(E0, index=times)
    pos = np.array([0, 1, 1, -2, 0, 0])
    m = compute_metrics(eq, positions=pos)
    assert m.exposure == pytest.approx(3 / 6)
    # |1-0| + |1-1| + |-2-1| + |0+2| + 0 = 6 contracts over 2 days
    assert (m.days, m.turnover) == (2, 3.0)
    m = compute_metrics(eq, positions=pos, turnover_contracts=10)  # account count wins
    assert m.turnover == 5.0


def test_constant_equity_is_all_zero() -> None:
    """Undefined ratios are 0.0: no volatility, no drawdown."""
    times = pd.DatetimeIndex(["2024-01-02 10:00", "2024-01-03 10:00", "2024-01-04 10:00"])
    m = compute_metrics(pd.Series(E0, index=times), initial_equity=E0)
    assert (m.total_return, m.annual_return, m.annual_volatility) == (0.0, 0.0, 0.0)
    assert (m.sharpe, m.sortino, m.max_drawdown, m.calmar) == (0.0, 0.0, 0.0, 0.0)
    same_day = pd.DatetimeIndex(["2024-01-02 10:00", "2024-01-02 15:00"])
    one_day = compute_metrics(pd.Series([E0, E0 + 10], index=same_day))
    assert one_day.days == 1 and one_day.sharpe == 0.0  # std of one day undefined


def test_sortino_without_losing_days_is_inf() -> None:
    """Rising every day: downside deviation 0 -> Sortino inf (mean > 0)."""
    times = pd.DatetimeIndex(["2024-01-02 10:00", "2024-01-03 10:00", "2024-01-04 10:00"])
    m = compute_metrics(pd.Series([101_000.0, 103_000.0, 104_000.0], index=times),
                        initial_equity=E0)
    assert m.sortino == math.inf and m.sharpe > 0 and m.max_drawdown == 0.0 and m.calmar == 0.0


def test_sharpe_matches_numpy_on_random_returns() -> None:
    """One bar per day: Sharpe equals mean/std(ddof=1)*sqrt(252) of the drawn returns."""
    rng = np.random.default_rng(3)
    r = rng.normal(0.0005, 0.01, 300)
    times = pd.bdate_range("2023-01-02", periods=300) + pd.Timedelta(hours=10)
    eq = pd.Series(E0 * np.cumprod(1 + r), index=times)
    m = compute_metrics(eq, initial_equity=E0)
    assert m.days == 300
    assert m.sharpe == pytest.approx(np.mean(r) / np.std(r, ddof=1) * np.sqrt(252), abs=1e-12)
    down = np.sqrt(np.mean(np.minimum(r, 0) ** 2))
    assert m.sortino == pytest.approx(np.mean(r) / down * np.sqrt(252), abs=1e-12)


def test_to_dict_and_annualisation_note() -> None:
    m = compute_metrics(EQUITY)
    d = to_dict(m)
    assert list(d) == [f for f in Metrics.__dataclass_fields__]
    assert d["sharpe"] == m.sharpe and "252" in ANNUALISATION


# --- baselines ---------------------------------------------------------------------------

TINY = pd.DataFrame({"open": [4000.0, 4002.0, 4005.0], "high": [4003.0, 4006.0, 4010.0],
                     "low": [3999.0, 4001.0, 4004.0], "close": [4002.0, 4005.0, 4009.0]},
                    index=pd.date_range("2024-01-02 09:30", periods=3, freq="5min"))


def _walk(n: int = 300, seed: int = 1) -> pd.DataFrame:
    """A random-walk bar frame, 5-minute bars over several sessions."""
    rng = np.random.default_rng(seed)
    close = 4000 + np.cumsum(rng.normal(0, 1.0, n)).round(2)
    open_ = np.concatenate([[4000.0], close[:-1]])
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) + 0.5,
                         "low": np.minimum(open_, close) - 0.5, "close": close},
                        index=pd.date_range("2024-01-02 09:30", periods=n, freq="30min"))


def test_flat_and_buy_and_hold_golden() -> None:
    """Flat earns nothing; buy-and-hold = (4009 - 4000 - 0.25) * 50 - 2.50 = 435."""
    res = run_baselines(TINY, ES)
    assert set(res) == {"flat", "buy_and_hold", "random"}
    flat = res["flat"]
    assert (flat.net_pnl, flat.trades, flat.turnover, flat.exposure) == (0.0, 0, 0.0, 0.0)
    assert (flat.sharpe, flat.max_drawdown) == (0.0, 0.0)
    bh = res["buy_and_hold"]
    assert bh.net_pnl == pytest.approx(435.0, abs=1e-9)
    # Still open at the end: no closed trade; one contract bought on the one day.
    assert (bh.trades, bh.exposure, bh.turnover, bh.days) == (0, 1.0, 1.0, 1)
    assert bh.total_return == pytest.approx(435.0 / E0, rel=1e-12)


def test_random_uses_seed_and_pays_costs() -> None:
    """Same seed, same result; the cost difference is turnover * (2.50 + 12.50)."""
    bars = _walk()
    a = run_baselines(bars, ES, seed=5)["random"]
    assert a == run_baselines(bars, ES, seed=5)["random"]
    assert a != run_baselines(bars, ES, seed=6)["random"]
    free = get_contract("ES", commission=0.0, slippage_ticks=0.0)
    b = run_baselines(bars, free, seed=5)["random"]
    contracts = a.turnover * a.days
    assert contracts > 50 and a.trades > 10
    assert b.net_pnl - a.net_pnl == pytest.approx(contracts * 15.0, rel=1e-9)
    t1 = baseline_targets("random", 100, seed=5, size=2)
    assert set(np.unique(t1)) <= {-2, 0, 2}
    np.testing.assert_array_equal(t1, baseline_targets("random", 100, seed=5, size=2))


def test_rule_uses_only_previous_signal() -> None:
    """target[i] = sign(signal[i-1]) * size; changing signal[i] leaves target[i] alone."""
    sig = np.array([0.3, -2.0, 0.0, np.nan, 5.0])
    t = baseline_targets("rule", 5, size=2, signal=sig)
    np.testing.assert_array_equal(t, [0, 2, -2, 0, 0])  # NaN -> flat
    changed = sig.copy()
    changed[2] = -9.0
    t2 = baseline_targets("rule", 5, size=2, signal=changed)
    assert t2[2] == t[2] and t2[3] == -2
    res = run_baselines(TINY, ES, rule_signal=np.array([1.0, 1.0, -1.0]))
    # Long from bar 1 at 4002.25, held to close 4009: (4009 - 4002.25) * 50 - 2.50 = 335
    assert res["rule"].net_pnl == pytest.approx(335.0, abs=1e-9)


def test_positions_from_fills_and_turnover_with_bracket_exits() -> None:
    """Entry and stop exit on the same bar: flat at every close, yet 2 contracts a bar traded."""
    eq, acct = simulate(ES, [1, 1, 1], TINY["open"], TINY["high"], TINY["low"], TINY["close"],
                        stop_distance=1.0)
    # Each bar: buy at open + 0.25, stop 1 point below = open - 0.75; every low is
    # open - 1, so the stop fills inside the bar and the close is flat.
    pos = positions_from_fills(acct.fills(), 3)
    np.testing.assert_array_equal(pos, [0, 0, 0])
    assert acct.turnover == 6
    series = pd.Series(eq, index=TINY.index)
    assert compute_metrics(series, positions=pos).turnover == 0.0  # positions miss them
    m = compute_metrics(series, positions=pos, turnover_contracts=acct.turnover)
    assert (m.turnover, m.trades, m.exposure) == (6.0, 0, 0.0)
    m = compute_metrics(series, trades=acct.trades(), initial_equity=E0)
    # Per trade: buy at o + 0.25, stop sell at (o - 0.75) - 0.25 slippage = o - 1:
    # -1.25 * 50 - 2 * 2.50 = -67.50; three losers -> -202.50.
    assert (m.trades, m.win_rate, m.profit_factor) == (3, 0.0, 0.0)
    assert m.net_pnl == pytest.approx(-202.5, abs=1e-9)


# --- validation ----------------------------------------------------------------------------

def test_equity_validation_errors() -> None:
    with pytest.raises(ValueError, match="empty curve"):
        compute_metrics(pd.Series([], dtype=float, index=pd.DatetimeIndex([])))
    with pytest.raises(ValueError, match="NaN/inf values"):
        compute_metrics(EQUITY.where(EQUITY.index != TIMES[2]))
    with pytest.raises(ValueError, match="strictly increasing"):
        compute_metrics(EQUITY.iloc[::-1])
    with pytest.raises(ValueError, match="strictly increasing"):
        compute_metrics(pd.Series([1.0, 2.0], index=TIMES[[0, 0]]))
    with pytest.raises(ValueError, match="DatetimeIndex"):
        compute_metrics(pd.Series([1.0, 2.0]))
    with pytest.raises(ValueError, match="no timestamps"):
        compute_metrics(np.ones(3))
    with pytest.raises(ValueError, match="one value per index entry"):
        compute_metrics(np.ones(3), index=TIMES)
    with pytest.raises(ValueError, match="initial_equity"):
        compute_metrics(EQUITY, initial_equity=0.0)


def test_argument_validation_errors() -> None:
    with pytest.raises(ValueError, match="positions: need one value per bar"):
        compute_metrics(EQUITY, positions=np.zeros(3))
    with pytest.raises(ValueError, match="positions: found NaN"):
        compute_metrics(EQUITY, positions=np.full(len(EQUITY), np.nan))
    with pytest.raises(ValueError, match="turnover_contracts"):
        compute_metrics(EQUITY, turnover_contracts=-1)
    with pytest.raises(ValueError, match="'pnl_net' column"):
        compute_metrics(EQUITY, trades=pd.DataFrame({"pnl": [1.0]}))
    with pytest.raises(ValueError, match="unknown name 'hodl'"):
        baseline_targets("hodl", 3)
    with pytest.raises(ValueError, match="needs a signal"):
        baseline_targets("rule", 3)
    with pytest.raises(ValueError, match="signal needs one value per bar"):
        baseline_targets("rule", 3, signal=np.ones(4))
    with pytest.raises(ValueError, match="size: must be an integer >= 1"):
        baseline_targets("flat", 3, size=0)
    with pytest.raises(ValueError, match="missing columns"):
        run_baselines(TINY.drop(columns="low"), ES)
    with pytest.raises(ValueError, match="bars: index must be strictly increasing"):
        run_baselines(TINY.iloc[::-1], ES)
    with pytest.raises(ValueError, match="signal needs one value per bar"):
        run_baselines(TINY, ES, rule_signal=np.ones(2))


def test_bar_level_ratios_drawdown_duration_and_trade_averages_golden() -> None:
    """Bar returns, bars per year, the longest drawdown, average trade and costs."""
    trades = pd.DataFrame({"pnl_net": [300.0, -100.0, 400.0]})
    m = compute_metrics(EQUITY, initial_equity=E0, trades=trades, costs=123.5)
    # 7 bars over 3 trading days: 7/3 bars a day, × 252 = 588 bars a year.
    assert m.bars_per_year == pytest.approx(588.0)
    values = EQUITY.to_numpy()
    before = np.concatenate([[E0], values[:-1]])
    r = values / before - 1.0
    mean, sd = r.mean(), r.std(ddof=1)
    assert m.bar_sharpe == pytest.approx(mean / sd * math.sqrt(588.0), rel=1e-10)
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    assert m.bar_sortino == pytest.approx(mean / downside * math.sqrt(588.0), rel=1e-10)
    # Running peaks: 100500 after bar 0, 101000 after bar 2. Below the peak: bar 1
    # (99800 < 100500), and bars 3-6 (100000, 98980, 100500, 100959.6 < 101000): the
    # longest run is 4 bars, on trading days 2024-01-03 and 2024-01-04.
    assert m.max_drawdown_bars == 4 and m.max_drawdown_days == 2
    assert m.avg_trade == pytest.approx(200.0)  # (300 - 100 + 400) / 3
    assert m.costs == 123.5
    assert math.isnan(compute_metrics(EQUITY, initial_equity=E0).costs)
