"""Tests of the built-in synthetic futures market."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from algospace.data.bars import COLUMNS, Bars
from algospace.data.synthetic import (
    RANGE,
    REGIME_NAMES,
    SESSION_MINUTES,
    STRATEGIC_ON,
    TACTICAL_ON,
    TRADING_DAYS_PER_YEAR,
    TREND,
    VOLATILE,
    SyntheticConfig,
    SyntheticMarket,
    generate,
    to_csv,
    trading_day,
)
from algospace.errors import ConfigError
from algospace.market.oracle import joint_over_best_single, market_oracles

SIX_HOURS = pd.Timedelta(hours=6)


@pytest.fixture(scope="module")
def market() -> SyntheticMarket:
    """A small market with a stronger planted signal."""
    return generate(SyntheticConfig(seed=3, days=15, signal=2.0))


@pytest.fixture(scope="module")
def long_market() -> SyntheticMarket:
    """Sixty days, enough for every regime to occur."""
    return generate(SyntheticConfig(seed=0, days=60))


@pytest.fixture(scope="module")
def year_market() -> SyntheticMarket:
    """Two years of the default market, for correlations over many blocks."""
    return generate(SyntheticConfig(seed=1, days=500))


def _session_keys(bars: Bars) -> np.ndarray:
    """Trading day of each bar, recomputed from the timestamps."""
    return (bars.open_time + SIX_HOURS).normalize().to_numpy()


def _blocks_by_loop(bars: Bars, signal_minutes: int) -> list[list[int]]:
    """Bar indices of each strategic block, found with a plain loop over timestamps."""
    blocks: list[list[int]] = []
    last_key = None
    for i, stamp in enumerate(bars.open_time):
        since_open = (stamp - pd.Timedelta(hours=18)) - (stamp - pd.Timedelta(hours=18)).normalize()
        key = ((stamp + SIX_HOURS).date(), int(since_open.total_seconds() // 60) // signal_minutes)
        if key != last_key:
            blocks.append([])
            last_key = key
        blocks[-1].append(i)
    return blocks


def _clip(x: float) -> float:
    return min(1.0, max(-1.0, x))


def _scores_by_loop(market: SyntheticMarket) -> tuple[np.ndarray, np.ndarray]:
    """g and h of every bar recomputed in plain Python from earlier bars only.

    g_k: the block's same-session predecessors (up to 3) — their standardized returns;
    h_t: the earlier bars of t's own block (up to 3) — z * volume surprise.
    """
    bars = market.bars
    opens, closes = bars.column("open"), bars.column("close")
    sigma, surprise = market.sigma, market.volume_surprise
    blocks = _blocks_by_loop(bars, market.config.block_minutes)
    g, h = np.zeros(len(opens)), np.zeros(len(opens))
    for k, block in enumerate(blocks):
        day = (bars.open_time[block[0]] + SIX_HOURS).date()
        earlier = [b for b in blocks[max(0, k - 3):k]
                   if (bars.open_time[b[0]] + SIX_HOURS).date() == day]
        z_blocks = [math.log(closes[b[-1]] / opens[b[0]]) / math.sqrt(sum(sigma[b] ** 2))
                    for b in earlier]
        g[block] = _clip(sum(z_blocks) / math.sqrt(3))
        for i, t in enumerate(block):
            prev = block[max(0, i - 3):i]
            products = [math.log(closes[r] / opens[r]) / sigma[r] * surprise[r] for r in prev]
            h[t] = _clip(sum(products) / math.sqrt(3))
    return g, h


def test_same_seed_gives_identical_bars_and_byte_identical_csv(tmp_path: Path) -> None:
    config = SyntheticConfig(seed=7, days=10)
    a, b = generate(config), generate(config)
    pd.testing.assert_frame_equal(a.bars.frame, b.bars.frame)
    np.testing.assert_array_equal(a.drift_tactical, b.drift_tactical)
    first = to_csv(a, tmp_path / "a.csv").read_bytes()
    second = to_csv(b, tmp_path / "b.csv").read_bytes()
    other = to_csv(generate(SyntheticConfig(seed=8, days=10)), tmp_path / "c.csv").read_bytes()
    assert first == second
    assert first != other
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.csv", "c.csv"]


def test_defaults() -> None:
    config = SyntheticConfig()
    assert config.days == 250 and config.signal == 1.0 and config.regimes is True
    assert 0 < config.strategic_strength < 0.2 and 0 < config.tactical_strength < 0.2
    assert config.strategic_loading == config.strategic_strength
    assert SyntheticConfig(signal=2.0).tactical_loading == 2.0 * config.tactical_strength
    assert SyntheticConfig(regimes=False).strategic_loading == 0.0
    assert TRADING_DAYS_PER_YEAR == 252 and SESSION_MINUTES == 1380
    assert REGIME_NAMES == ("trend", "range", "volatile")


def test_csv_format(tmp_path: Path, market: SyntheticMarket) -> None:
    text = to_csv(market, tmp_path / "m.csv").read_bytes().decode("ascii")
    assert "\r" not in text and text.endswith("\n")
    lines = text.splitlines()
    assert lines[0] == "Timestamp,Open,High,Low,Close,Volume"
    assert len(lines) == len(market.bars) + 1
    row = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:00(,\d+\.\d\d){4},\d+$")
    assert all(row.match(line) for line in lines[1:])
    assert lines[1].startswith("2020-01-05 18:00:00,")
    back = pd.read_csv(tmp_path / "m.csv", index_col=0, parse_dates=True)
    np.testing.assert_array_equal(back["Close"].to_numpy(), market.bars.column("close"))
    np.testing.assert_array_equal(back["Volume"].to_numpy(), market.bars.column("volume"))


def test_csv_decimals_follow_tick_and_bars_input(tmp_path: Path) -> None:
    fine = generate(SyntheticConfig(days=2, tick_size=0.005, start_price=50.0))
    assert re.search(r",\d+\.\d{3},", (to_csv(fine, tmp_path / "f.csv")).read_text())
    coarse = generate(SyntheticConfig(days=2))
    from_bars = to_csv(coarse.bars, tmp_path / "sub" / "bars.csv").read_bytes()
    assert from_bars == to_csv(coarse, tmp_path / "m.csv").read_bytes()


def test_frame_layout_and_source(market: SyntheticMarket) -> None:
    frame = market.bars.frame
    assert list(frame.columns) == list(COLUMNS)
    assert all(frame[c].dtype == np.float64 for c in COLUMNS)
    assert frame.index.name == "open_time" and frame.index.tz is None
    assert frame.index.is_monotonic_increasing and frame.index.is_unique
    assert market.bars.bar_minutes == 5
    assert market.bars.source == "synthetic(seed=3, days=15, bar_minutes=5, signal=2.0)"
    assert market.regimes.dtype == np.int8
    arrays = (market.regimes, market.sigma, market.strategic_score, market.tactical_score,
              market.volume_surprise, market.drift_strategic, market.drift_tactical)
    assert all(len(a) == len(frame) and not a.flags.writeable for a in arrays)
    truth = market.truth()
    assert list(truth.columns) == ["regime", "drift_strategic", "drift_tactical", "sigma_points"]
    assert truth.index.equals(frame.index)
    np.testing.assert_array_equal(market.day, np.repeat(np.arange(15), 276))


def test_ohlc_consistent_positive_on_tick_grid(market: SyntheticMarket) -> None:
    o, h, lo, c, v = (market.bars.column(name) for name in COLUMNS)
    assert np.all(lo <= np.minimum(o, c)) and np.all(np.maximum(o, c) <= h)
    assert np.all(lo > 0)
    for prices in (o, h, lo, c):
        ticks = prices / 0.25
        np.testing.assert_array_equal(ticks, np.round(ticks))
    assert np.all(v >= 1) and np.all(v == np.round(v))
    assert np.mean(h > np.maximum(o, c)) > 0.3


def test_sessions_and_weekends(market: SyntheticMarket) -> None:
    times = market.bars.open_time
    minutes = times.hour * 60 + times.minute
    assert not np.any(times.hour == 17)
    assert not np.any((times.day_of_week == 4) & (times.hour >= 17))
    assert not np.any(times.day_of_week == 5)
    assert not np.any((times.day_of_week == 6) & (times.hour < 18))
    assert np.all(minutes % 5 == 0) and np.all(times.second == 0)
    counts = pd.Series(1, index=_session_keys(market.bars)).groupby(level=0).size()
    assert len(counts) == 15 and set(counts) == {276}
    assert set(pd.DatetimeIndex(counts.index).day_of_week) == {0, 1, 2, 3, 4}
    first = times[np.r_[True, np.diff(_session_keys(market.bars)) > np.timedelta64(0)]]
    assert set(zip(first.hour, first.minute, strict=True)) == {(18, 0)}
    assert times[0] == pd.Timestamp("2020-01-05 18:00")
    assert times[-1] == pd.Timestamp("2020-01-24 16:55")


def test_open_equals_previous_close_inside_sessions_and_gaps_between(
    long_market: SyntheticMarket,
) -> None:
    frame = long_market.bars.frame
    new_session = np.r_[True, np.diff(_session_keys(long_market.bars)) > np.timedelta64(0)]
    o, c = frame["open"].to_numpy(), frame["close"].to_numpy()
    inside = ~new_session[1:]
    np.testing.assert_array_equal(o[1:][inside], c[:-1][inside])
    gaps = o[1:][~inside] - c[:-1][~inside]
    assert np.mean(gaps != 0) > 0.5
    assert np.max(np.abs(gaps)) < 0.05 * c[0]


def test_start_on_weekend_moves_to_monday() -> None:
    bars = generate(SyntheticConfig(days=1, start="2020-01-04")).bars
    assert bars.open_time[0] == pd.Timestamp("2020-01-05 18:00")
    assert len(bars) == 276


@pytest.mark.parametrize(
    ("bar_minutes", "signal_minutes", "per_day"),
    [(1, 30, 1380), (15, 30, 92), (30, 30, 46), (60, 60, 23), (5, 5, 276), (5, 45, 276)],
)
def test_bar_size_variants(bar_minutes: int, signal_minutes: int, per_day: int) -> None:
    config = SyntheticConfig(seed=1, days=3, bar_minutes=bar_minutes,
                             signal_minutes=signal_minutes, signal=2.0)
    market = generate(config)
    bars = market.bars
    assert len(bars) == 3 * per_day and bars.bar_minutes == bar_minutes
    assert np.all((bars.open_time.hour * 60 + bars.open_time.minute) % bar_minutes == 0)
    steps = np.diff(bars.open_time.to_numpy())
    assert steps.min() == np.timedelta64(bar_minutes, "m")
    g, h = _scores_by_loop(market)
    np.testing.assert_allclose(market.strategic_score, g, rtol=0, atol=1e-12)
    np.testing.assert_allclose(market.tactical_score, h, rtol=0, atol=1e-12)
    if bar_minutes == signal_minutes:  # one bar per block: no earlier bar, no tactical part
        assert not np.any(market.drift_tactical)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"bar_minutes": 7}, r"bar_minutes must be one of 1, 5, 15, 30, 60; got 7"),
        ({"bar_minutes": 60, "signal_minutes": 30},
         r"signal_minutes must be a multiple of bar_minutes \(60\)"),
        ({"signal_minutes": 7}, r"signal_minutes .* got 7"),
        ({"signal_minutes": 720}, r"between 5 and 690; got 720"),
        ({"days": 0}, r"days must be an integer >= 1; got 0"),
        ({"days": 2.5}, r"days must be"),
        ({"seed": -1}, r"seed must be an integer >= 0; got -1"),
        ({"seed": True}, r"seed must be"),
        ({"start_price": 0.0}, r"start_price must be a finite number > 0"),
        ({"start_price": 0.1}, r"start_price must be at least one tick"),
        ({"tick_size": -0.25}, r"tick_size must be a finite number > 0"),
        ({"annual_vol": 0.0}, r"annual_vol must be a finite number > 0"),
        ({"annual_vol": 18.0}, r"annual_vol must be at most 5.0"),
        ({"signal": -0.1}, r"signal must be a finite number >= 0"),
        ({"signal": float("nan")}, r"signal must be a finite number >= 0"),
        ({"signal": float("inf")}, r"signal must be a finite number >= 0"),
        ({"strategic_strength": -0.01}, r"strategic_strength must be a finite number between "
                                         r"0 and 1.0 .* got -0.01"),
        ({"tactical_strength": 1.5}, r"tactical_strength must be .* got 1.5\. Fix: use"),
        ({"tactical_strength": float("nan")}, r"tactical_strength must be"),
        ({"regimes": "yes"}, r"regimes must be true or false; got 'yes'"),
        ({"base_volume": 0}, r"base_volume must be a finite number > 0"),
        ({"start": "not a date"}, r"start must be a date string"),
        ({"start": "2020-01-06 09:30"}, r"no time of day"),
    ],
)
def test_invalid_config_raises(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        SyntheticConfig(**kwargs)  # type: ignore[arg-type]


def test_regimes_occur_and_volatile_is_wilder(long_market: SyntheticMarket) -> None:
    regimes = long_market.regimes
    assert set(np.unique(regimes)) == {TREND, RANGE, VOLATILE}
    runs = np.diff(np.flatnonzero(np.r_[True, regimes[1:] != regimes[:-1], True]))
    assert np.mean(runs) > 100
    log_ret = np.log(long_market.bars.column("close") / long_market.bars.column("open"))
    vol = {r: np.std(log_ret[regimes == r]) for r in (TREND, RANGE, VOLATILE)}
    assert vol[VOLATILE] > 2.0 * vol[RANGE]
    assert vol[VOLATILE] > 1.5 * vol[TREND]


def test_intraday_volatility_and_volume_shape(long_market: SyntheticMarket) -> None:
    frame = long_market.bars.frame
    move = np.abs(np.log(frame["close"] / frame["open"]))
    hour = frame.index.hour + frame.index.minute / 60
    cash_open = (hour >= 9.5) & (hour < 10.0)
    overnight = (hour >= 0.0) & (hour < 6.0)
    cash_close = (hour >= 15.5) & (hour < 16.0)
    midday = (hour >= 12.0) & (hour < 13.0)
    assert move[cash_open].mean() > 2.0 * move[overnight].mean()
    assert move[cash_close].mean() > 1.2 * move[midday].mean()
    volume = frame["volume"]
    assert volume[cash_open].mean() > 2.0 * volume[overnight].mean()
    z = move / move.groupby(frame.index.time).transform("median")
    assert volume[z > 2].mean() > volume[z < 0.5].mean()


def test_drifts_are_causal_and_recomputable(market: SyntheticMarket) -> None:
    """g and h from earlier bars only (a plain loop), and drift = loading x sigma x score."""
    g, h = _scores_by_loop(market)
    np.testing.assert_allclose(market.strategic_score, g, rtol=0, atol=1e-12)
    np.testing.assert_allclose(market.tactical_score, h, rtol=0, atol=1e-12)
    config, opens = market.config, market.bars.column("open")
    on_s, on_t = STRATEGIC_ON[market.regimes], TACTICAL_ON[market.regimes]
    np.testing.assert_allclose(market.drift_strategic,
                               config.strategic_loading * on_s * market.sigma * g * opens,
                               rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(market.drift_tactical,
                               config.tactical_loading * on_t * market.sigma * h * opens,
                               rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(market.sigma_points, market.sigma * opens)
    assert np.mean(g != 0) > 0.9 and np.mean(h != 0) > 0.7
    first_of_block = np.arange(len(h)) % 6 == 0
    assert not np.any(h[first_of_block])
    first_of_session = np.arange(len(g)) % 276 < 6
    assert not np.any(g[first_of_session])


def test_regime_gating(long_market: SyntheticMarket) -> None:
    regimes = long_market.regimes
    strategic, tactical = long_market.drift_strategic, long_market.drift_tactical
    assert np.all(tactical[regimes == TREND] == 0.0)
    assert np.all(strategic[regimes == VOLATILE] == 0.0)
    for regime in (TREND, RANGE):
        assert np.mean(strategic[regimes == regime] != 0) > 0.8
    for regime in (RANGE, VOLATILE):
        assert np.mean(tactical[regimes == regime] != 0) > 0.6


def test_no_regimes_means_one_regime_and_no_drift() -> None:
    plain = generate(SyntheticConfig(seed=2, days=20, regimes=False, signal=3.0))
    assert set(np.unique(plain.regimes)) == {0}
    assert not np.any(plain.drift_strategic) and not np.any(plain.drift_tactical)
    base = 0.18 / math.sqrt(252 * 276)
    shape_rms = math.sqrt(np.mean((plain.sigma / base) ** 2))
    assert shape_rms == pytest.approx(1.0)  # volatility x1, the intraday shape only
    assert plain.bars.source.endswith("signal=3.0, regimes=False)")


def test_signal_zero_has_no_drift_but_same_noise() -> None:
    planted = generate(SyntheticConfig(seed=4, days=5))
    none = generate(SyntheticConfig(seed=4, days=5, signal=0.0))
    assert not np.any(none.drift_strategic) and not np.any(none.drift_tactical)
    np.testing.assert_array_equal(none.regimes, planted.regimes)
    np.testing.assert_array_equal(none.volume_surprise, planted.volume_surprise)
    assert np.any(planted.drift_strategic) and np.any(planted.drift_tactical)


def _block_table(market: SyntheticMarket) -> pd.DataFrame:
    """Per 30-minute block: standardized return, summed drifts over sigma, log volume."""
    frame, n = market.bars.frame, len(market.regimes)
    start = np.arange(0, n, 6)
    sd = np.sqrt(np.add.reduceat(market.sigma**2, start))
    z = np.log(frame["close"].to_numpy()[start + 5] / frame["open"].to_numpy()[start]) / sd
    table = pd.DataFrame({
        "z": z,
        "strategic": np.add.reduceat(market.drift_strategic / market.sigma_points, start) / sd,
        "tactical": np.add.reduceat(market.drift_tactical / market.sigma_points, start) / sd,
        "log_volume": np.log(np.add.reduceat(frame["volume"].to_numpy(), start)),
        "slot": np.arange(len(start)) % 46,
    })
    table["volume_surprise"] = table["log_volume"] - table.groupby("slot")["log_volume"] \
        .transform("mean")
    return table


def test_tactical_is_invisible_to_30_minute_bars(year_market: SyntheticMarket) -> None:
    table = _block_table(year_market)
    same_session = table["slot"].to_numpy()[1:] > 0
    now, before = table.iloc[1:][same_session], table.iloc[:-1][same_session]
    assert abs(np.corrcoef(now["tactical"], before["z"])[0, 1]) < 0.05
    # return x volume of the block before: 0.047 if the tactical window reached back into it
    surprise = before["z"].to_numpy() * before["volume_surprise"].to_numpy()
    assert abs(np.corrcoef(now["tactical"], surprise)[0, 1]) < 0.03
    assert np.corrcoef(now["strategic"], before["z"])[0, 1] > 0.3
    for lag in (2, 3):
        keep = table["slot"].to_numpy()[lag:] >= lag
        later, earlier = table.iloc[lag:][keep], table.iloc[:-lag][keep]
        assert np.corrcoef(later["strategic"], earlier["z"])[0, 1] > 0.3
        assert abs(np.corrcoef(later["tactical"], earlier["z"])[0, 1]) < 0.05


def test_components_are_small_per_bar(year_market: SyntheticMarket) -> None:
    """Realistic strengths: each component explains well under 1 % of a bar's variance."""
    move = year_market.bars.column("close") - year_market.bars.column("open")
    total = np.mean((move / year_market.sigma_points) ** 2)
    for drift in (year_market.drift_strategic, year_market.drift_tactical):
        r2 = np.mean((drift / year_market.sigma_points) ** 2) / total
        assert 0.0002 < r2 < 0.01


def test_drift_is_what_the_bars_earn(year_market: SyntheticMarket) -> None:
    """Regressing bar moves on each planted drift gives a slope of about 1."""
    move = year_market.bars.column("close") - year_market.bars.column("open")
    weight = 1.0 / year_market.sigma_points
    for drift in (year_market.drift_strategic, year_market.drift_tactical):
        x, y = drift * weight, move * weight
        slope = float(np.dot(x, y) / np.dot(x, x))
        assert slope == pytest.approx(1.0, abs=0.35)


def test_trading_day() -> None:
    stamps = pd.DatetimeIndex(["2020-01-05 18:00", "2020-01-06 16:55", "2020-01-06 18:00"])
    assert list(trading_day(stamps).day) == [6, 6, 7]


def test_calibration_on_default_market() -> None:
    """Default market, 3 seeds: the joint oracle's expected net Sharpe in [3, 8] and its
    expected net P&L at least 1.3x the better single layer's."""
    for seed in range(3):
        oracles = market_oracles(generate(SyntheticConfig(seed=seed)))
        assert 3.0 <= oracles["joint"].expected_net_sharpe <= 8.0
        assert joint_over_best_single(oracles) >= 1.3
        assert oracles["strategic"].expected_net_pnl > 0 < oracles["tactical"].expected_net_pnl
