"""Tests of algospace.features.basic: hand-made bars, brute-force references, causality."""

from __future__ import annotations

import numpy as np
import pytest

from algospace.features.basic import (
    hour_cos,
    hour_sin,
    log_return,
    momentum_5,
    rolling_std,
    volume_ratio,
)
from algospace.features.causality import assert_causal

Bars = dict[str, np.ndarray]


def random_bars(n: int, seed: int, scale: float = 1.0) -> Bars:
    """OHLC-consistent random bars with 5-minute close times."""
    rng = np.random.default_rng(seed)
    close = 100.0 * scale * np.exp(np.cumsum(rng.normal(0, 0.003 * scale, n)))
    open_ = close * np.exp(rng.normal(0, 0.002, n))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.004, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.004, n))
    volume = rng.lognormal(6 + scale, 0.7, n)
    volume[rng.random(n) < 0.05] = 0.0
    minutes = np.cumsum(rng.choice([5, 5, 5, 65], n)).astype("timedelta64[m]")
    times = np.datetime64("2021-03-01T00:05") + minutes
    return {"open": open_, "high": high, "low": low, "close": close, "volume": volume,
            "times": times}


def all_basic(bars: Bars) -> dict[str, np.ndarray]:
    """Every basic feature of one bar series."""
    return {
        "log_return": log_return(bars["close"]),
        "momentum_5": momentum_5(bars["close"]),
        "volume_ratio": volume_ratio(bars["volume"]),
        "hour_sin": hour_sin(bars["times"]),
        "hour_cos": hour_cos(bars["times"]),
        "std": rolling_std(bars["close"], 7),
    }


def test_log_return_hand_made() -> None:
    # ln(110/100) = 0.0953102, ln(99/110) = ln(0.9) = -0.1053605
    out = log_return(np.array([100.0, 110.0, 99.0]))
    assert np.isnan(out[0])
    np.testing.assert_allclose(out[1:], [np.log(1.1), np.log(0.9)], rtol=1e-15)


def test_momentum_5_hand_made() -> None:
    # bar 5 vs bar 0: 100 -> 102 is +2 % -> 2 / 5 = 0.4
    # bar 6 vs bar 1: 100 -> 107 is +7 % -> 1.4, clipped to 1
    # bar 7 vs bar 2: 100 -> 88 is -12 % -> clipped to -10 % -> -2 -> clipped to -1
    # bar 8 vs bar 3: 100 -> 99 is -1 % -> -0.2
    close = np.array([100, 100, 100, 100, 100, 102, 107, 88, 99], dtype=float)
    out = momentum_5(close)
    assert np.isnan(out[:5]).all()
    np.testing.assert_allclose(out[5:], [0.4, 1.0, -1.0, -0.2], atol=1e-12)


def test_volume_ratio_hand_made() -> None:
    # window 3. t=3: mean(1, 2, 3) = 2, ratio 2 -> tanh(ln 2) = (4 - 1) / (4 + 1) = 0.6
    # t=4: volume 0 with mean(2, 3, 4) = 3 -> ratio 0 -> -1
    # t=5: 3 vs mean(3, 4, 0) = 7/3 -> tanh(ln(9/7)) = (81 - 49) / (81 + 49)
    out = volume_ratio(np.array([1, 2, 3, 4, 0, 3], dtype=float), window=3)
    assert np.isnan(out[:3]).all()
    np.testing.assert_allclose(out[3:], [0.6, -1.0, 32 / 130], atol=1e-12)


def test_volume_ratio_zero_mean_guard() -> None:
    # t=3: previous mean 0 and volume 5 -> +1; t=6: previous (5, 0, 0) mean 5/3, volume 0 -> -1;
    # t=7: previous (0, 0, 0) and volume 0 -> 0
    out = volume_ratio(np.array([0, 0, 0, 5, 0, 0, 0, 0], dtype=float), window=3)
    assert out[3] == 1.0 and out[6] == -1.0 and out[7] == 0.0
    assert np.isfinite(out[3:]).all()


def test_volume_ratio_matches_loop() -> None:
    volume = random_bars(300, 1)["volume"]
    out = volume_ratio(volume, window=20)
    for t in range(300):
        if t < 20:
            assert np.isnan(out[t])
            continue
        mean = sum(volume[t - 20:t]) / 20
        expected = np.tanh(np.log(volume[t] / mean)) if volume[t] > 0 else -1.0
        assert abs(out[t] - expected) < 1e-10


def test_rolling_std_matches_loop() -> None:
    x = random_bars(300, 2)["close"]
    out = rolling_std(x, 30)
    assert np.isnan(out[:29]).all()
    expected = [np.std(x[t - 29:t + 1], ddof=1) for t in range(29, 300)]
    np.testing.assert_allclose(out[29:], expected, rtol=1e-10, atol=0)


@pytest.mark.parametrize("unit", ["m", "s", "ns"])
def test_hour_encoding_hand_made(unit: str) -> None:
    # 00:00 -> angle 0; 06:00 -> π/2; 12:00 -> π; 18:00 -> 3π/2; 03:30 -> 2π·3.5/24 = 7π/24
    times = np.array(["2020-01-01T00:00", "2020-01-01T06:00", "2020-01-01T12:00",
                      "1969-12-31T18:00", "2020-06-30T03:30", "NaT"], dtype=f"datetime64[{unit}]")
    s, c = hour_sin(times), hour_cos(times)
    np.testing.assert_allclose(s[:5], [0, 1, 0, -1, np.sin(7 * np.pi / 24)], atol=1e-12)
    np.testing.assert_allclose(c[:5], [1, 0, -1, 0, np.cos(7 * np.pi / 24)], atol=1e-12)
    assert np.isnan(s[5]) and np.isnan(c[5])


def test_hour_encoding_floors_seconds() -> None:
    times = np.array(["2020-01-01T06:00:59"], dtype="datetime64[s]")
    assert hour_sin(times)[0] == 1.0


def test_output_ranges() -> None:
    bars = random_bars(3000, 3)
    bars["close"][1000] *= 1.3  # a +30 % jump saturates momentum
    for name, values in all_basic(bars).items():
        finite = values[np.isfinite(values)]
        assert len(finite) > 2900, name
        if name in {"momentum_5", "volume_ratio", "hour_sin", "hour_cos"}:
            assert finite.min() >= -1.0 and finite.max() <= 1.0, name
    assert momentum_5(bars["close"])[1000] == 1.0


def test_lengths_and_warm_up() -> None:
    out = all_basic(random_bars(50, 4))
    assert all(v.shape == (50,) and v.dtype == np.float64 for v in out.values())
    assert np.isnan(out["volume_ratio"][:20]).all() and np.isfinite(out["volume_ratio"][20:]).all()
    assert np.isnan(out["momentum_5"][:5]).all() and np.isfinite(out["momentum_5"][5:]).all()
    assert np.isnan(log_return(np.array([1.0]))).all()
    assert np.isnan(volume_ratio(np.ones(5), window=20)).all()


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError):
        log_return(np.ones((3, 2)))
    with pytest.raises(ValueError):
        hour_sin(np.array([1.0, 2.0]))
    with pytest.raises(ValueError):
        volume_ratio(np.ones(10), window=0)


def test_no_look_ahead() -> None:
    bars = random_bars(200, 5)
    assert_causal(all_basic, bars, [0, 4, 19, 20, 57, 150, 198], np.random.default_rng(99))
