"""Tests of the oracles: the DP, the causal receding-horizon version and their figures."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pandas as pd
import pytest

from algospace.data.bars import Bars
from algospace.data.contracts import get_contract
from algospace.data.synthetic import SyntheticConfig, SyntheticMarket, generate
from algospace.errors import ConfigError
from algospace.market.forecast import drift_forecasts, horizon
from algospace.market.oracle import (
    ORACLE_NAMES,
    OracleAccount,
    causal_positions,
    daily_sharpe,
    default_account,
    expected_bar_pnl,
    expected_pnl,
    expected_sharpe,
    figures,
    foresight_bounds,
    market_oracles,
    optimal_positions,
    oracle_paths,
    oracle_truth,
    realised_daily_pnl,
    traded_contracts,
)


@pytest.fixture(scope="module")
def market() -> SyntheticMarket:
    """Twenty days of the default market."""
    return generate(SyntheticConfig(seed=5, days=20))


def _objective(path: np.ndarray | tuple[int, ...], drift: np.ndarray, cost: float) -> float:
    """sum pos * drift - cost * (every change, from flat at the start to flat at the end)."""
    pos = np.asarray(path, dtype=np.float64)
    changes = np.abs(np.diff(np.r_[0.0, pos, 0.0])).sum()
    return float(pos @ drift - cost * changes)


def _brute_force(drift: np.ndarray, cost: float, limit: int) -> float:
    """Best objective over every path in {-limit..limit}^T."""
    options = range(-limit, limit + 1)
    return max(_objective(p, drift, cost) for p in itertools.product(options, repeat=len(drift)))


@pytest.mark.parametrize("case", range(40))
def test_dp_equals_brute_force(case: int) -> None:
    rng = np.random.default_rng(case)
    length, limit = int(rng.integers(1, 6)), int(rng.integers(0, 3))
    drift = rng.normal(0.0, 1.0, length) * rng.choice([0.1, 1.0])
    cost = float(rng.choice([0.0, rng.uniform(0.0, 1.0)]))
    path = optimal_positions(drift, cost, limit)
    assert path.dtype == np.int64 and path.shape == (length,)
    assert set(np.abs(path).tolist()) <= {0, limit}
    assert _objective(path, drift, cost) == pytest.approx(_brute_force(drift, cost, limit),
                                                           abs=1e-9)


@pytest.mark.parametrize("case", range(10))
def test_dp_per_day_equals_brute_force_per_day(case: int) -> None:
    rng = np.random.default_rng(100 + case)
    lengths = rng.integers(1, 5, size=3)
    day = np.repeat([7, 8, 9], lengths)
    drift = rng.normal(0.0, 1.0, len(day))
    cost, limit = float(rng.uniform(0.0, 0.8)), 2
    path = optimal_positions(drift, cost, limit, day)
    starts = np.r_[0, np.cumsum(lengths)]
    for a, b in itertools.pairwise(starts):
        best = _brute_force(drift[a:b], cost, limit)
        assert _objective(path[a:b], drift[a:b], cost) == pytest.approx(best, abs=1e-9)


def test_dp_holds_nothing_without_drift_and_scales_with_limit() -> None:
    assert not np.any(optimal_positions(np.zeros(50), 0.0, 5))
    assert not np.any(optimal_positions(np.zeros(50), 0.3, 5))
    drift = np.random.default_rng(1).normal(0.0, 0.5, 200)
    one = optimal_positions(drift, 0.3, 1, np.arange(200) // 50)
    np.testing.assert_array_equal(optimal_positions(drift, 0.3, 7, np.arange(200) // 50), 7 * one)
    assert not np.any(optimal_positions(drift, 0.3, 0))


def _perfect_forecasts(drift: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Row t: the true drifts of bars t .. the end of t's day (zero after)."""
    n = len(drift)
    table = np.zeros((n, n))
    for t in range(n):
        rest = drift[t:][day[t:] == day[t]]
        table[t, :len(rest)] = rest
    return table


@pytest.mark.parametrize("case", range(10))
def test_causal_with_perfect_forecasts_matches_the_dp(case: int) -> None:
    rng = np.random.default_rng(200 + case)
    day = np.repeat([0, 1], rng.integers(2, 12, size=2))
    drift = rng.normal(0.0, 1.0, len(day))
    cost = float(rng.uniform(0.0, 1.0))
    causal = causal_positions(_perfect_forecasts(drift, day), cost, 3, day)
    best = optimal_positions(drift, cost, 3, day)
    assert _objective(causal, drift, cost) == pytest.approx(_objective(best, drift, cost),
                                                            abs=1e-9)


def test_causal_positions_use_only_rows_up_to_now() -> None:
    rng = np.random.default_rng(3)
    table = rng.normal(0.0, 1.0, (60, 8))
    first = causal_positions(table, 0.4, 2, np.arange(60) // 30)
    changed = table.copy()
    changed[40:] = rng.normal(0.0, 1.0, (20, 8))
    second = causal_positions(changed, 0.4, 2, np.arange(60) // 30)
    np.testing.assert_array_equal(first[:40], second[:40])
    assert not np.array_equal(first[40:], second[40:])


def test_costs_expected_pnl_and_sharpe_by_hand() -> None:
    pos = np.array([1, 1, -2, 0, 2, 2])
    day = np.array([0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(traded_contracts(pos, day), [1, 0, 5, 0, 2, 2])
    np.testing.assert_array_equal(traded_contracts(pos), [1, 0, 3, 2, 2, 2])
    drift = np.array([0.5, 0.1, -0.2, 0.3, 0.0, 0.4])
    bar = expected_bar_pnl(pos, drift, 5.0, 1.0, day)
    np.testing.assert_allclose(bar, [1.5, 0.5, -3.0, 0.0, -2.0, 2.0])
    assert expected_pnl(pos, drift, 5.0, 1.0, day) == pytest.approx(-1.0)
    sigma = np.full(6, 2.0)
    e_day = np.array([-1.0, 0.0])
    v_day = np.array([(1 + 1 + 4) * 100.0, (4 + 4) * 100.0])
    want = e_day.mean() / math.sqrt(v_day.mean() + e_day.var()) * math.sqrt(252)
    assert expected_sharpe(pos, drift, sigma, day, 5.0, 1.0) == pytest.approx(want)
    assert expected_sharpe(np.zeros(6), drift, sigma, day, 5.0, 1.0) == 0.0


def test_realised_daily_pnl_and_sharpe() -> None:
    pos = np.array([1, 1, 0, -1])
    open_, close = np.array([10.0, 11.0, 9.0, 8.0]), np.array([11.0, 9.0, 8.0, 7.0])
    daily = realised_daily_pnl(pos, open_, close, np.array([0, 0, 1, 1]), 5.0, 1.0)
    np.testing.assert_allclose(daily, [5.0 - 10.0 - 2.0, 5.0 - 2.0])
    values = np.array([1.0, 2.0, 3.0])
    assert daily_sharpe(values) == pytest.approx(2.0 / 1.0 * math.sqrt(252))
    assert daily_sharpe(np.ones(5)) == 0.0 and daily_sharpe(np.array([3.0])) == 0.0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: optimal_positions(np.zeros(3), -0.1, 1), r"cost_points must be a finite number "
                                                          r">= 0; found -0.1"),
        (lambda: optimal_positions(np.zeros(3), 0.1, -1), r"limit must be a whole number"),
        (lambda: optimal_positions(np.zeros(3), 0.1, 1.5),  # type: ignore[arg-type]
         r"limit must be a whole number"),
        (lambda: optimal_positions(np.zeros((3, 2)), 0.1, 1), r"drift_points must be a 1-D"),
        (lambda: optimal_positions(np.array([np.nan]), 0.1, 1), r"drift_points must be"),
        (lambda: optimal_positions(np.zeros(3), 0.1, 1, np.zeros(2)), r"day must hold one label"),
        (lambda: causal_positions(np.zeros(3), 0.1, 1), r"forecasts must be a 2-D array"),
    ],
)
def test_bad_inputs_raise(call: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        call()  # type: ignore[operator]


def test_signal_zero_oracles_hold_nothing() -> None:
    market = generate(SyntheticConfig(seed=0, days=10, signal=0.0))
    for fig in market_oracles(market).values():
        assert fig.expected_gross_pnl == 0.0 and fig.expected_net_pnl == 0.0
        assert fig.expected_net_sharpe == 0.0 and fig.realised_net_pnl == 0.0
    assert all(v == 0.0 for v in foresight_bounds(market).values())


def test_forecasts_start_with_the_known_drift(market: SyntheticMarket) -> None:
    known = drift_forecasts(market)
    assert known["strategic"].shape == (len(market.regimes), horizon(market)) == (5520, 30)
    np.testing.assert_allclose(known["strategic"][:, 0], market.drift_strategic, atol=1e-12)
    np.testing.assert_allclose(known["tactical"][:, 0], market.drift_tactical, atol=1e-12)
    opens = market.bars.column("open")
    for j in range(1, 6):  # the rest of the current block's strategic drift is known
        t = np.flatnonzero((np.arange(len(opens)) % 6) + j < 6)
        np.testing.assert_allclose(known["strategic"][t, j] / opens[t],
                                   market.drift_strategic[t + j] / opens[t + j], atol=1e-12)
    assert not np.any(known["tactical"][:, 3:])  # beyond the lags: expected 0


def _future_changed(market: SyntheticMarket, t: int) -> SyntheticMarket:
    """The same market with prices, volume surprises and scores after bar t's open redrawn."""
    rng = np.random.default_rng(9)
    frame = market.bars.frame.copy()
    factor = np.exp(np.cumsum(rng.normal(0.0, 1e-3, len(frame) - t)))
    frame.iloc[t:, frame.columns.get_loc("close")] *= factor
    frame.iloc[t + 1:, frame.columns.get_loc("open")] *= factor[:-1]
    noisy = {name: getattr(market, name).copy() for name in
             ("volume_surprise", "strategic_score", "tactical_score")}
    noisy["volume_surprise"][t:] = rng.normal(size=len(frame) - t)
    noisy["strategic_score"][t + 1:] = rng.uniform(-1, 1, len(frame) - t - 1)
    noisy["tactical_score"][t + 1:] = rng.uniform(-1, 1, len(frame) - t - 1)
    bars = Bars(frame, market.bars.bar_minutes, market.bars.source)
    return dataclasses.replace(market, bars=bars, **noisy)


def test_causal_oracle_ignores_the_future(market: SyntheticMarket) -> None:
    t = 2000 + 3  # inside a block, inside a session
    other = _future_changed(market, t)
    first, second = drift_forecasts(market), drift_forecasts(other)
    for name in ("strategic", "tactical"):
        np.testing.assert_allclose(first[name][:t + 1], second[name][:t + 1], atol=1e-12)
        assert not np.allclose(first[name][t + 1:], second[name][t + 1:])
    account = default_account(market)
    paths, moved = oracle_paths(market, account), oracle_paths(other, account)
    for name in ORACLE_NAMES:
        np.testing.assert_array_equal(paths[name][:t + 1], moved[name][:t + 1])


def test_causal_oracle_is_unbiased_and_foresight_is_not() -> None:
    """Realised minus expected, standardized: ~0 for the causal paths; the foresight path
    earns from the noise its future drifts reveal (a bound, not a strategy)."""
    market = generate(SyntheticConfig(seed=0))
    account = default_account(market)
    move = market.bars.column("close") - market.bars.column("open")
    noise = (move - market.drift_strategic - market.drift_tactical) / market.sigma_points

    def t_stat(path: np.ndarray) -> float:
        x = np.sign(path) * noise
        return float(x.mean() / x.std() * math.sqrt(len(x)))

    for path in oracle_paths(market, account).values():
        assert abs(t_stat(path)) < 4.0
    assert t_stat(oracle_paths(market, account, foresight=True)["strategic"]) > 5.0
    bounds = foresight_bounds(market, account)
    for name, fig in market_oracles(market, account).items():
        assert 0 < fig.expected_net_pnl <= bounds[name]


def test_default_account(market: SyntheticMarket) -> None:
    account = default_account(market)
    close = market.bars.column("close")
    reference = close[:round(0.7 * len(close))].max()
    assert account.contract.symbol == "MES" and account.capital == 100_000.0
    assert account.limit == math.floor(2.0 * 100_000 / (reference * 5.0) + 1e-9)
    assert account.cost_points == pytest.approx(1.87 / 5.0)
    es = default_account(market, get_contract("ES"), reference_price=4000.0)
    assert es.limit == 1 and es.cost_points == pytest.approx(0.30)


def test_oracle_truth_table_and_meta(market: SyntheticMarket) -> None:
    account = OracleAccount(get_contract("MES"), 100_000.0, 9)
    table, meta = oracle_truth(market, account)
    assert list(table.columns) == ["regime", "drift_strategic", "drift_tactical",
                                   "sigma_points", "oracle_strategic", "oracle_tactical",
                                   "oracle_joint"]
    assert isinstance(table.index, pd.DatetimeIndex) and len(table) == len(market.regimes)
    paths = oracle_paths(market, account)
    for name in ORACLE_NAMES:
        assert set(np.unique(table[f"oracle_{name}"])) <= {-1, 0, 1}
        np.testing.assert_array_equal(table[f"oracle_{name}"].to_numpy() * 9, paths[name])
        fig = figures(market, paths[name], account)
        assert meta["oracles"][name]["expected_net_sharpe"] == fig.expected_net_sharpe
        assert meta["oracles"][name]["expected_net_pnl"] == fig.expected_net_pnl
    assert meta["oracle_account"] == {"contract": "MES", "capital": 100_000.0,
                                      "position_limit": 9, "cost_per_side_usd": 1.87}
    joint, best = (meta["oracles"]["joint"]["expected_net_pnl"],
                   max(meta["oracles"][k]["expected_net_pnl"] for k in ("strategic", "tactical")))
    assert meta["oracle_joint_over_best_single"] == pytest.approx(joint / best)


def test_bench_market_refuses_bad_settings(capsys: pytest.CaptureFixture[str]) -> None:
    from experiments.bench import main

    assert main(["market", "--days", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: days must be an integer >= 1") and "Traceback" not in err
    assert main(["learn", "--seeds", "a,b"]) == 2
    assert "--seeds 'a,b': give comma-separated integers" in capsys.readouterr().err
