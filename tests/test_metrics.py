"""Backtest metrics and baselines: golden numbers worked out by hand.

Dollar-true convention: daily P&L over the FIXED capital base (initial equity),
never the compounding equity. Trading days: a session runs 18:00–17:00, so
trading_day(t) is the date of t + 6 h — a bar opening at 2024-01-01 18:00 belongs
to 2024-01-02, one at 2024-01-02 17:59 still to 2024-01-02. ES: $50/point, tick
0.25, $2.50 commission and 1 tick ($12.50) slippage per contract per side.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from algospace.data.contracts import get_contract
from algospace.evaluation.baselines import baseline_equity, baseline_targets, run_baselines
from algospace.evaluation.metrics import (
    ANNUALISATION,
    Metrics,
    compute_metrics,
    daily_pnl,
    daily_returns,
    positions_from_fills,
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
EQUITY = pd.Series([100_500.0, 99_800.0, 101_000.0, 100_000.0, 99_000.0, 100_500.0, 101_000.0],
                   index=TIMES)


def test_three_day_curve_golden() -> None:
    """Daily P&L and returns on the capital, annual figures, Sharpe, Sortino, drawdown, PSR."""
    pnl = daily_pnl(EQUITY, initial_equity=E0)
    assert list(pnl.index) == list(pd.DatetimeIndex(["2024-01-02", "2024-01-03", "2024-01-04"]))
    # Day closes 101000, 99000, 101000 from 100000: +1000, -2000, +2000 dollars.
    np.testing.assert_allclose(pnl.to_numpy(), [1000.0, -2000.0, 2000.0], rtol=0, atol=1e-9)
    r = daily_returns(EQUITY, initial_equity=E0)
    np.testing.assert_allclose(r.to_numpy(), [0.01, -0.02, 0.02], rtol=1e-12)
    m = compute_metrics(EQUITY, initial_equity=E0)
    assert m.days == 3
    assert m.net_pnl == pytest.approx(1000.0, abs=1e-9)
    assert m.total_return == pytest.approx(0.01, abs=1e-12)  # 1000 / 100000
    # mean r = 1/300; annual return = 252/300 = 0.84 (arithmetic, no compounding)
    assert m.annual_return == pytest.approx(0.84, abs=1e-12)
    # deviations (2, -7, 5)/300 -> var = 78/90000/2 = 39/90000, std = sqrt(39)/300
    assert m.annual_volatility == pytest.approx(math.sqrt(39) / 300 * math.sqrt(252), abs=1e-12)
    # Sharpe = (1/300) / (sqrt(39)/300) * sqrt(252) = sqrt(252/39) ≈ 2.541956
    assert m.sharpe == pytest.approx(math.sqrt(252 / 39), abs=1e-12)
    # downside dev = sqrt((0 + 0.02^2 + 0) / 3) = 0.02/sqrt(3);
    # Sortino = (1/300) / (0.02/sqrt(3)) * sqrt(252) = sqrt(3)/6 * sqrt(252) = sqrt(21)
    assert m.sortino == pytest.approx(math.sqrt(21), abs=1e-12)
    # Per-bar peaks 100500, 101000; trough 99000 -> -2000 dollars = -0.02 of the capital
    assert m.max_drawdown_usd == pytest.approx(-2000.0, abs=1e-9)
    assert m.max_drawdown == pytest.approx(-0.02, abs=1e-12)
    assert m.calmar == pytest.approx(42.0, abs=1e-10)  # 0.84 / 0.02
    # PSR: per-day SR = 1/sqrt(39); biased moments of the deviations (2, -7, 5)/300:
    # m2 = (4 + 49 + 25)/3 = 26, m3 = (8 - 343 + 125)/3 = -70, m4 = (16 + 2401 + 625)/3 =
    # 1014 (in units of 1/300^k) -> skew = -70 / 26^1.5, kurtosis = 1014 / 26² = 1.5.
    sr, skew = 1 / math.sqrt(39), -70 / 26 ** 1.5
    psr = NormalDist().cdf(sr * math.sqrt(2) / math.sqrt(1 - skew * sr + 0.5 / 4 * sr ** 2))
    assert m.probabilistic_sharpe == pytest.approx(psr, abs=1e-12)
    assert not m.ruined and m.ruin_time is None
    # Nothing about positions or trades was given.
    assert (m.trades, m.win_rate, m.profit_factor) == (0, 0.0, 0.0)
    assert math.isnan(m.turnover) and math.isnan(m.exposure)


def test_initial_equity_defaults_to_first_bar_and_numpy_input() -> None:
    """Default capital = equity.iloc[0]; a numpy array needs index=."""
    r = daily_returns(EQUITY)
    assert r.iloc[0] == pytest.approx(500 / 100_500, rel=1e-12)  # (101000 - 100500) / 100500
    assert r.iloc[1] == pytest.approx(-2000 / 100_500, rel=1e-12)  # capital, not 101000
    m = compute_metrics(EQUITY.to_numpy(), index=TIMES)
    assert m.total_return == pytest.approx(500 / 100_500, rel=1e-12)
    assert m == compute_metrics(EQUITY)


def test_max_drawdown_sees_intraday_trough() -> None:
    """Trough inside day 1 (95950 from a 101000 peak) is deeper than any daily close."""
    times = pd.DatetimeIndex(["2024-01-02 09:30", "2024-01-02 11:00", "2024-01-02 16:00",
                              "2024-01-03 16:00"])
    eq = pd.Series([101_000.0, 95_950.0, 101_000.0, 100_990.0], index=times)
    m = compute_metrics(eq, initial_equity=E0)
    assert m.max_drawdown_usd == pytest.approx(-5050.0, abs=1e-9)  # 95950 - 101000
    assert m.max_drawdown == pytest.approx(-0.0505, abs=1e-12)  # of the 100000 capital
    # Daily P&L +1000, -10 -> mean r = 0.00495, × 252 = 1.2474; Calmar divides by 0.0505.
    assert m.annual_return == pytest.approx(1.2474, abs=1e-12)
    assert m.calmar == pytest.approx(1.2474 / 0.0505, rel=1e-12)


def test_fixed_capital_not_compounding_equity() -> None:
    """The same +1000 dollar day is the same return whether the account is up or down."""
    times = pd.bdate_range("2024-01-02", periods=4) + pd.Timedelta(hours=10)
    eq = pd.Series([150_000.0, 151_000.0, 51_000.0, 52_000.0], index=times)
    np.testing.assert_allclose(daily_returns(eq, initial_equity=E0).to_numpy(),
                               [0.5, 0.01, -1.0, 0.01], rtol=1e-12)


def test_losing_curve_below_zero_has_negative_sharpe() -> None:
    """100k -> 50k -> -10k -> -30k -> -60k: the compounding ratio gave Sharpe +3.3."""
    times = pd.bdate_range("2024-01-02", periods=5) + pd.Timedelta(hours=10)
    eq = pd.Series([100_000.0, 50_000.0, -10_000.0, -30_000.0, -60_000.0], index=times)
    closes = np.concatenate([[E0], eq.to_numpy()])
    old = closes[1:] / closes[:-1] - 1  # 0, -0.5, -1.2, +2, +1: the old convention
    assert old.mean() / old.std(ddof=1) * math.sqrt(252) == pytest.approx(3.2753, abs=1e-4)
    m = compute_metrics(eq, initial_equity=E0)
    # daily P&L 0, -50k, -60k, -20k, -30k: mean -32k, so every ratio is negative.
    assert m.sharpe < 0 and m.sortino < 0 and m.annual_return < 0
    assert m.net_pnl == -160_000.0 and m.total_return == pytest.approx(-1.6, abs=1e-12)
    assert m.max_drawdown_usd == -160_000.0 and m.max_drawdown == pytest.approx(-1.6)
    assert m.bar_sharpe < 0 and m.probabilistic_sharpe < 0.5


def test_ratios_do_not_change_when_every_pnl_is_scaled() -> None:
    """Five times the contracts, same capital: Sharpe, Sortino, win rate, PF unchanged."""
    rng = np.random.default_rng(11)
    times = pd.date_range("2024-01-02 09:30", periods=400, freq="2h")
    pnl = rng.normal(30.0, 900.0, len(times))
    trades = _trades(list(rng.normal(20.0, 300.0, 25)))
    one = compute_metrics(pd.Series(E0 + np.cumsum(pnl), index=times), initial_equity=E0,
                          trades=trades)
    five = compute_metrics(pd.Series(E0 + 5 * np.cumsum(pnl), index=times), initial_equity=E0,
                           trades=trades.assign(pnl_net=5 * trades["pnl_net"]))
    assert one.sharpe != 0 and 0 < one.win_rate < 1 and 0 < one.profit_factor < math.inf
    for name in ("sharpe", "sortino", "win_rate", "profit_factor", "bar_sharpe",
                 "bar_sortino", "probabilistic_sharpe"):
        assert getattr(five, name) == pytest.approx(getattr(one, name), abs=1e-9), name
    assert five.net_pnl == pytest.approx(5 * one.net_pnl, rel=1e-12)
    assert five.max_drawdown == pytest.approx(5 * one.max_drawdown, rel=1e-12)


@pytest.mark.parametrize("seed", range(20))
def test_sharpe_sign_is_net_pnl_sign(seed: int) -> None:
    """Any curve, even one far below zero: sign(Sharpe) == sign(net P&L)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(24, 200))  # 3 h bars: at least 3 trading days
    times = pd.date_range("2024-01-02 09:30", periods=n, freq="3h")
    pnl = rng.normal(rng.normal(0, 500), rng.uniform(100, 40_000), n)
    m = compute_metrics(pd.Series(E0 + np.cumsum(pnl), index=times), initial_equity=E0)
    assert len(np.unique(daily_pnl(pd.Series(E0 + np.cumsum(pnl), index=times),
                                   initial_equity=E0))) > 1
    assert np.sign(m.sharpe) == np.sign(m.net_pnl) != 0
    assert np.sign(m.sortino) == np.sign(m.net_pnl)
    assert np.sign(m.annual_return) == np.sign(m.net_pnl)


def test_matches_empyrical_on_the_daily_returns() -> None:
    """Reference library golden: empyrical on our daily_returns gives our ratios."""
    empyrical = pytest.importorskip("empyrical")
    rng = np.random.default_rng(7)
    times = pd.date_range("2023-01-02 09:30", periods=900, freq="4h")
    eq = pd.Series(E0 + np.cumsum(rng.normal(40.0, 1_500.0, len(times))), index=times)
    r = daily_returns(eq, initial_equity=E0)
    m = compute_metrics(eq, initial_equity=E0)
    assert m.days == len(r) > 100
    assert m.sharpe == pytest.approx(empyrical.sharpe_ratio(r, period="daily"), abs=1e-9)
    assert m.sortino == pytest.approx(empyrical.sortino_ratio(r, period="daily"), abs=1e-9)
    vol = empyrical.annual_volatility(r, period="daily")
    assert m.annual_volatility == pytest.approx(vol, abs=1e-9)
    # empyrical.annual_return compounds (CAGR of the returns as if reinvested); a
    # fixed-contract futures account does not reinvest, so ours is the arithmetic mean.
    assert m.annual_return == pytest.approx(float(r.mean()) * 252, abs=1e-12)


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
    assert math.isnan(m.probabilistic_sharpe) and math.isnan(one_day.probabilistic_sharpe)
    two_days = compute_metrics(pd.Series([E0 + 10, E0 - 5], index=times[:2]),
                               initial_equity=E0)
    assert two_days.sharpe != 0.0 and math.isnan(two_days.probabilistic_sharpe)  # < 3 days


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
    eq = pd.Series(E0 * (1 + np.cumsum(r)), index=times)  # r = dollar P&L / capital
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
    with pytest.raises(ValueError, match="initial_equity"):
        daily_pnl(EQUITY, initial_equity=-1.0)
    with pytest.raises(ValueError, match="no timestamps"):
        daily_pnl(np.ones(3))


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
    r = np.diff(np.concatenate([[E0], EQUITY.to_numpy()])) / E0  # bar P&L / capital
    mean, sd = r.mean(), r.std(ddof=1)
    assert m.bar_sharpe == pytest.approx(mean / sd * math.sqrt(588.0), rel=1e-10)
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    assert m.bar_sortino == pytest.approx(mean / downside * math.sqrt(588.0), rel=1e-10)
    np.testing.assert_allclose(r * E0, [500, -700, 1200, -1000, -1000, 1500, 500], atol=1e-9)
    # Running peaks: 100500 after bar 0, 101000 after bar 2. Below the peak: bar 1
    # (99800 < 100500), and bars 3-5 (100000, 99000, 100500 < 101000; bar 6 is back at
    # 101000): the longest run is 3 bars, on trading days 2024-01-03 and 2024-01-04.
    assert m.max_drawdown_bars == 3 and m.max_drawdown_days == 2
    assert m.avg_trade == pytest.approx(200.0)  # (300 - 100 + 400) / 3
    assert m.costs == 123.5
    assert math.isnan(compute_metrics(EQUITY, initial_equity=E0).costs)


# --- ruin ----------------------------------------------------------------------------------

def _falling(n: int = 120) -> pd.DataFrame:
    """A market that falls 2 points every 30-minute bar, over several trading days."""
    open_ = 4000.0 - 2.0 * np.arange(n)
    close = open_ - 2.0
    return pd.DataFrame({"open": open_, "high": open_ + 0.5, "low": close - 0.5,
                         "close": close}, index=pd.date_range("2024-01-02 09:30", periods=n,
                                                              freq="30min"))


def test_buy_and_hold_is_stopped_at_ruin() -> None:
    """20 ES contracts long lose ~2000 dollars a bar; the ruin stop sells them where equity
    after the exit's costs is exactly 50k, inside the bar (the bars open at the last close)."""
    bars, size, level = _falling(), 20, 50_000.0
    ohlc = [bars[c].to_numpy() for c in ("open", "high", "low", "close")]
    targets = baseline_targets("buy_and_hold", len(bars), size=size)
    raw, _ = simulate(ES, targets, *ohlc, max_position=size)
    stopped, acct = simulate(ES, targets, *ohlc, max_position=size, ruin_level=level)
    i = acct.ruin_t
    assert acct.ruined and 10 < i < len(bars) - 10 and raw[-1] < level
    assert raw[i] < level < raw[i - 1]  # the close-based curve crosses it on that bar
    np.testing.assert_array_equal(stopped[:i], raw[:i])
    assert stopped[i:] == pytest.approx(level, abs=1e-6)
    assert stopped.min() >= level - 1e-6
    equity, m = baseline_equity("buy_and_hold", bars, ES, size=size, ruin_level=level)
    np.testing.assert_allclose(equity.to_numpy(), stopped, atol=1e-9)
    assert m.ruined and m.ruin_time == str(bars.index[i])
    assert m.net_pnl == pytest.approx(level - E0, abs=1e-6)
    assert m.exposure == pytest.approx(i / len(bars))
    assert m.turnover * m.days == pytest.approx(2 * size)  # bought once, sold at ruin
    assert m.costs == pytest.approx(2 * size * 15.0)  # 2.50 + 12.50 a contract a side
    free = baseline_equity("buy_and_hold", bars, ES, size=size)[1]
    assert not free.ruined and free.net_pnl < m.net_pnl and free.ruin_time is None


def test_random_baseline_at_ruin_keeps_trades_closed_before_it() -> None:
    """Trades, turnover and costs stop at the ruin bar; run_baselines passes the level."""
    bars, size, level = _falling(300), 10, 80_000.0
    res = run_baselines(bars, ES, size=size, seed=2, ruin_level=level)
    m = res["random"]
    assert m.ruined and res["buy_and_hold"].ruined and not res["flat"].ruined
    i = int(bars.index.get_loc(pd.Timestamp(m.ruin_time)))
    targets = baseline_targets("random", len(bars), size=size, seed=2)
    _, acct = simulate(ES, targets, *(bars[c].to_numpy() for c in ("open", "high", "low",
                                                                   "close")),
                       max_position=size, ruin_level=level)
    fills, trades = acct.fills(), acct.trades()
    assert fills["t"].max() == i and fills.iloc[-1]["reason"] == "ruin"
    assert m.trades == len(trades) > 0 and (trades["exit_t"] <= i).all()
    assert m.turnover * m.days == pytest.approx(fills["qty"].abs().sum())
    assert m.costs == pytest.approx(15.0 * fills["qty"].abs().sum())


def test_compute_metrics_ruin_bar() -> None:
    m = compute_metrics(EQUITY, ruin_bar=4)
    assert m.ruined and m.ruin_time == str(TIMES[4])
    with pytest.raises(ValueError, match=r"ruin_bar: must be a bar index in \[0, 7\)"):
        compute_metrics(EQUITY, ruin_bar=7)
