"""Tests of the built-in synthetic futures market."""

from __future__ import annotations

import math
import re
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from algospace.data.bars import COLUMNS, Bars
from algospace.data.synthetic import (
    RANGE,
    TREND,
    VOLATILE,
    SyntheticConfig,
    SyntheticMarket,
    generate,
    to_csv,
)
from algospace.errors import ConfigError

SIX_HOURS = pd.Timedelta(hours=6)


@pytest.fixture(scope="module")
def market() -> SyntheticMarket:
    """A small market with a moderate planted signal."""
    return generate(SyntheticConfig(seed=3, days=15, signal=0.1))


@pytest.fixture(scope="module")
def long_market() -> SyntheticMarket:
    """Sixty days, enough for every regime to occur."""
    return generate(SyntheticConfig(seed=0, days=60))


def _session_keys(bars: Bars) -> np.ndarray:
    """Trading day of each bar, recomputed from the timestamps."""
    return (bars.open_time + SIX_HOURS).normalize().to_numpy()


def _blocks_by_loop(bars: Bars, signal_minutes: int) -> list[list[int]]:
    """Bar indices of each signal block, found with a plain loop over timestamps."""
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


def _directions_by_loop(bars: Bars, signal_minutes: int) -> tuple[list[list[int]], list[int]]:
    """Blocks and d_k recomputed from the bars: sign of the previous same-session block."""
    opens, closes = bars.column("open"), bars.column("close")
    blocks = _blocks_by_loop(bars, signal_minutes)
    directions = []
    for k, block in enumerate(blocks):
        previous = blocks[k - 1]
        same_day = k > 0 and (
            (bars.open_time[previous[0]] + SIX_HOURS).date()
            == (bars.open_time[block[0]] + SIX_HOURS).date()
        )
        if not same_day:
            directions.append(0)
            continue
        change = closes[previous[-1]] - opens[previous[0]]
        directions.append(1 if change > 0 else -1 if change < 0 else 0)
    return blocks, directions


def _oracle_sharpe_by_loop(bars: Bars, signal_minutes: int, cost: float) -> float:
    """The oracle's annualised daily Sharpe, recomputed block by block in plain Python."""
    opens, closes = bars.column("open"), bars.column("close")
    blocks, directions = _directions_by_loop(bars, signal_minutes)
    daily: dict[object, float] = {}
    held, held_day = 0, None
    for block, d in zip(blocks, directions, strict=True):
        day = (bars.open_time[block[0]] + SIX_HOURS).date()
        if day != held_day:
            if held_day is not None:
                daily[held_day] -= cost * abs(held)
            held, held_day = 0, day
            daily[day] = 0.0
        daily[day] -= cost * abs(d - held)
        daily[day] += d * (closes[block[-1]] - opens[block[0]])
        held = d
    daily[held_day] -= cost * abs(held)
    values = list(daily.values())
    return statistics.mean(values) / statistics.stdev(values) * math.sqrt(252)


def test_same_seed_gives_byte_identical_csv(tmp_path: Path) -> None:
    config = SyntheticConfig(seed=7, days=10)
    first = to_csv(generate(config), tmp_path / "a.csv").read_bytes()
    second = to_csv(generate(config), tmp_path / "b.csv").read_bytes()
    other = to_csv(generate(SyntheticConfig(seed=8, days=10)), tmp_path / "c.csv").read_bytes()
    assert first == second
    assert first != other
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.csv", "c.csv"]


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
    assert market.bars.source == "synthetic(seed=3, days=15, bar_minutes=5, signal=0.1)"
    assert market.regimes.dtype == np.int8 and market.signal_direction.dtype == np.int8
    assert len(market.regimes) == len(market.signal_direction) == len(frame)
    np.testing.assert_array_equal(market.oracle_positions(), market.signal_direction)


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
    config = SyntheticConfig(
        seed=1, days=3, bar_minutes=bar_minutes, signal_minutes=signal_minutes, signal=0.2
    )
    market = generate(config)
    bars = market.bars
    assert len(bars) == 3 * per_day and bars.bar_minutes == bar_minutes
    assert np.all((bars.open_time.hour * 60 + bars.open_time.minute) % bar_minutes == 0)
    steps = np.diff(bars.open_time.to_numpy())
    assert steps.min() == np.timedelta64(bar_minutes, "m")
    _, directions = _directions_by_loop(bars, signal_minutes)
    blocks = _blocks_by_loop(bars, signal_minutes)
    expected = np.concatenate([[d] * len(b) for b, d in zip(blocks, directions, strict=True)])
    np.testing.assert_array_equal(market.signal_direction, expected)


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
        ({"base_volume": 0}, r"base_volume must be a finite number > 0"),
        ({"start": "not a date"}, r"start must be a date string"),
        ({"start": "2020-01-06 09:30"}, r"no time of day"),
    ],
)
def test_invalid_config_raises(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        SyntheticConfig(**kwargs)  # type: ignore[arg-type]


def test_invalid_cost_raises() -> None:
    with pytest.raises(ConfigError, match=r"cost_points_per_side must be a finite number >= 0"):
        generate(SyntheticConfig(days=1), cost_points_per_side=-0.3)


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


def test_signal_direction_is_sign_of_previous_block(market: SyntheticMarket) -> None:
    blocks, directions = _directions_by_loop(market.bars, market.config.block_minutes)
    assert len(blocks) == 15 * 46
    for block, d in zip(blocks, directions, strict=True):
        assert set(market.signal_direction[block].tolist()) == {d}
    assert {-1, 0, 1} <= set(directions)


def test_oracle_matches_plain_loop(market: SyntheticMarket) -> None:
    minutes = market.config.block_minutes
    gross = _oracle_sharpe_by_loop(market.bars, minutes, 0.0)
    net = _oracle_sharpe_by_loop(market.bars, minutes, 0.30)
    assert market.oracle_sharpe_gross == pytest.approx(gross, abs=1e-9)
    assert market.oracle_sharpe_net == pytest.approx(net, abs=1e-9)
    assert market.cost_points_per_side == 0.30
    daily = market.oracle_daily_pnl(0.30)
    assert len(daily) == 15
    assert daily.mean() / daily.std() * math.sqrt(252) == pytest.approx(net, abs=1e-9)
    other = generate(market.config, cost_points_per_side=1.0)
    assert other.oracle_sharpe_net == pytest.approx(
        _oracle_sharpe_by_loop(market.bars, minutes, 1.0), abs=1e-9
    )
    free = generate(market.config, cost_points_per_side=0.0)
    assert free.oracle_sharpe_net == free.oracle_sharpe_gross


def test_planted_signal_is_strong_and_known() -> None:
    planted = generate(SyntheticConfig(seed=5, days=40, signal=0.3))
    plain = generate(SyntheticConfig(seed=5, days=40, signal=0.0))
    assert planted.oracle_sharpe_gross > 10.0
    assert planted.oracle_sharpe_gross > plain.oracle_sharpe_gross + 8.0
    assert planted.oracle_sharpe_net < planted.oracle_sharpe_gross
    assert abs(plain.oracle_sharpe_gross) < 4.0
    assert plain.oracle_sharpe_net < plain.oracle_sharpe_gross


def test_signal_block_defaults_to_bar_size_for_long_bars() -> None:
    assert SyntheticConfig(bar_minutes=60).block_minutes == 60
    assert SyntheticConfig(bar_minutes=5).block_minutes == 30
