"""Tests of algospace.features.mmd: hand-made series, brute-force reference, causality."""

from __future__ import annotations

import math

import numpy as np
import pytest

from algospace.features import mmd
from algospace.features.causality import assert_causal
from algospace.features.mmd import (
    DEFAULT_SCALES,
    MMD_FEATURES,
    mmd_features,
    mmd_scores,
    mmd_squared,
    standardized_returns,
    volatility_30,
    volume_skew,
)

Bars = dict[str, np.ndarray]


def random_bars(n: int, seed: int, scale: float = 1.0) -> Bars:
    """OHLC-consistent random bars with fat-tailed returns (some zero volume)."""
    rng = np.random.default_rng(seed)
    close = 100.0 * scale * np.exp(np.cumsum(rng.standard_t(4, n) * 0.003 * scale))
    open_ = close * np.exp(rng.normal(0, 0.002, n))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.004, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.004, n))
    volume = rng.lognormal(6 + scale, 0.7, n)
    volume[rng.random(n) < 0.03] = 0.0
    return {"open": open_, "high": high, "low": low, "close": close, "volume": volume}


def brute_mmd2(close: np.ndarray, scales: list[tuple[int, int]], norm_window: int,
               norm_lag: int, bandwidth: float = 1.0) -> np.ndarray:
    """Plain-loop reference: standardise each return, then full kernel matrices per bar."""
    n = len(close)
    r = np.full(n, np.nan)
    r[1:] = np.log(close[1:] / close[:-1])
    z = np.full(n, np.nan)
    for t in range(norm_window + norm_lag, n):
        s = np.std(r[t - norm_lag - norm_window + 1:t - norm_lag + 1], ddof=1)
        z[t] = r[t] / s if s > 1e-12 else 0.0

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.exp(-((a[:, None] - b[None, :]) ** 2) / (2 * bandwidth**2)).mean())

    out = np.full((n, len(scales)), np.nan)
    for j, (m, q) in enumerate(scales):
        for t in range(norm_window + norm_lag + m + q - 1, n):
            x, y = z[t - m + 1:t + 1], z[t - m - q + 1:t - m + 1]
            out[t, j] = max(k(x, x) + k(y, y) - 2 * k(x, y), 0.0)
    return out


def alternating_close(n: int, a: float = 0.01) -> np.ndarray:
    """Closes whose log returns alternate +a, -a."""
    return 100.0 * np.exp(a * (np.arange(n) % 2))


def test_alternating_returns_hand_made() -> None:
    # r alternates +a, -a, so any 2-return std (ddof=1) is |2a| / sqrt(2) = sqrt(2)·a and
    # z = ±1/sqrt(2). Scale (1, 1): X = {z_t}, Y = {z_t-1} of opposite sign, (x - y)² = 2,
    # MMD² = 1 + 1 - 2·exp(-1) = 1.26424. Scale (2, 2): X and Y are both {+, -}: MMD² = 0.
    # Warm-up: z from t = K + L = 3; scale (m, n) from t = K + L + m + n - 1 = 4 and 6.
    close = alternating_close(20)
    z = standardized_returns(close, norm_window=2, norm_lag=1)
    assert np.isnan(z[:3]).all()
    np.testing.assert_allclose(np.abs(z[3:]), 1 / math.sqrt(2), rtol=1e-12)
    raw = mmd_squared(close, [(1, 1), (2, 2)], norm_window=2, norm_lag=1)
    assert np.isnan(raw[:4, 0]).all() and np.isnan(raw[:6, 1]).all()
    np.testing.assert_allclose(raw[4:, 0], 2 - 2 / math.e, rtol=1e-12)
    np.testing.assert_allclose(raw[6:, 1], 0.0, atol=1e-12)
    scores = mmd_scores(close, [(1, 1), (2, 2)], norm_window=2, norm_lag=1)
    np.testing.assert_allclose(scores["mmd_1"][4:], math.tanh(2 - 2 / math.e), rtol=1e-12)


def test_identical_windows_give_zero_at_default_scales() -> None:
    # Returns repeat a, 2a, -a, -2a. Every window length (12..192) is a multiple of 4, so
    # the normalising std is constant and X and Y hold the same values: MMD² = 0.
    r = np.tile([0.001, 0.002, -0.001, -0.002], 200)
    close = 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(r)]))
    raw = mmd_squared(close)
    for j, (m, n) in enumerate(DEFAULT_SCALES):
        first = 192 + 48 + m + n - 1
        assert np.isnan(raw[:first, j]).all()
        np.testing.assert_allclose(raw[first:, j], 0.0, atol=1e-12)


@pytest.mark.parametrize("shift", ["volatility", "mean"])
def test_shifted_windows_exceed_same_distribution(shift: str) -> None:
    # 1500 calm returns, then volatility x4 or a drift of 2 sigma per bar. Once a scale's
    # recent window lies wholly after the change, its MMD beats every calm-period value.
    rng = np.random.default_rng(1)
    r = rng.normal(0, 0.002, 1800)
    if shift == "volatility":
        r[1500:] *= 4
    else:
        r[1500:] += 0.004
    scores = mmd_scores(100 * np.exp(np.cumsum(r)))
    for (name, values), (m, _) in zip(scores.items(), DEFAULT_SCALES, strict=True):
        calm = values[500:1500]
        assert values[1500 + m - 1] > calm.max(), name
        assert values[1500 + m - 1] > 5 * np.median(calm), name


def test_scale_invariant() -> None:
    # Doubling every log return doubles each normalising std: z and all MMDs are unchanged.
    close = random_bars(700, 1)["close"]
    a, b = mmd_squared(close), mmd_squared(close**2 / 100.0)
    np.testing.assert_allclose(a, b, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize(
    ("scales", "norm_window", "norm_lag", "chunk"),
    [
        (list(DEFAULT_SCALES), 192, 48, 4096),
        (list(DEFAULT_SCALES), 192, 48, 50),
        ([(5, 10), (8, 20), (3, 30), (1, 1), (7, 2)], 20, 0, 33),
    ],
)
def test_matches_brute_force(scales: list[tuple[int, int]], norm_window: int, norm_lag: int,
                             chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mmd, "_CHUNK", chunk)
    close = random_bars(700, 2)["close"]
    expected = brute_mmd2(close, scales, norm_window, norm_lag, bandwidth=0.8)
    got = mmd_squared(close, scales, norm_window, norm_lag, bandwidth=0.8)
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10, equal_nan=True)


def test_volatility_30_hand_made_and_reference() -> None:
    # Alternating ±a returns: 15 of each in any 30, mean 0, sum of squares 30a²,
    # sample std = a·sqrt(30/29); times 100 -> percent.
    out = volatility_30(alternating_close(40, a=0.01))
    assert np.isnan(out[:30]).all()
    np.testing.assert_allclose(out[30:], 100 * 0.01 * math.sqrt(30 / 29), rtol=1e-12)
    close = random_bars(300, 3)["close"]
    r = np.log(close[1:] / close[:-1])
    expected = [100 * np.std(r[t - 30:t], ddof=1) for t in range(30, 300)]
    np.testing.assert_allclose(volatility_30(close)[30:], expected, rtol=1e-10)


def test_volume_skew_hand_made() -> None:
    # Flat bars (high = low = close = p). Window 3, prices 10, 10, 13:
    # equal volumes: mu = 11, deviations -1, -1, 2, m2 = 6/3 = 2, m3 = (-1 - 1 + 8)/3 = 2,
    #   skew = 2 / 2**1.5 = 0.70711 -> /3 = 0.23570
    # volumes 1, 1, 2: w = .25, .25, .5, mu = 11.5, deviations -1.5, -1.5, 1.5,
    #   m3 = .25·(-3.375)·2 + .5·3.375 = 0 -> skew 0
    # volumes 1, 1, 0 on prices 10, 13, 10 -> only 10 and 13 weigh: symmetric -> 0
    p = np.array([10.0, 10.0, 13.0])
    out = volume_skew(p, p, p, np.ones(3), window=3)
    assert np.isnan(out[:2]).all()
    assert out[2] == pytest.approx(2 / 2**1.5 / 3, rel=1e-12)
    weighted = volume_skew(p, p, p, np.array([1.0, 1.0, 2.0]), window=3)
    assert weighted[2] == pytest.approx(0, abs=1e-12)
    q = np.array([10.0, 13.0, 10.0])
    partial = volume_skew(q, q, q, np.array([1.0, 1.0, 0.0]), window=3)
    assert partial[2] == pytest.approx(0, abs=1e-12)
    # one huge outlier: skew = (n-2)/sqrt(n-1) for n equal weights -> 9 / 3.16 = 2.85 < 3
    x = np.array([10.0] * 10 + [20.0])
    assert volume_skew(x, x, x, np.ones(11), window=11)[10] == pytest.approx(9 / math.sqrt(10) / 3)


def test_volume_skew_matches_loop() -> None:
    b = random_bars(300, 4)
    got = volume_skew(b["high"], b["low"], b["close"], b["volume"])
    tp = (b["high"] + b["low"] + b["close"]) / 3
    for t in range(47, 300):
        p, v = tp[t - 47:t + 1], b["volume"][t - 47:t + 1]
        w = v / v.sum()
        mu = float(np.sum(w * p))
        skew = np.sum(w * (p - mu) ** 3) / np.sum(w * (p - mu) ** 2) ** 1.5
        assert abs(got[t] - np.clip(skew, -3, 3) / 3) < 1e-10


def test_flat_prices() -> None:
    flat = np.full(600, 50.0)
    out = mmd_features(flat, flat, flat, np.ones(600))
    for name, values in out.items():
        assert np.isfinite(values[479:]).all(), name
        assert (values[479:] == 0).all(), name


def test_output_ranges_names_and_warm_up() -> None:
    b = random_bars(2000, 5)
    out = mmd_features(b["high"], b["low"], b["close"], b["volume"])
    assert tuple(out) == MMD_FEATURES
    warm = {"mmd_1": 299, "mmd_2": 359, "mmd_3": 479, "volatility_30": 30, "volume_skew": 47}
    for name, values in out.items():
        assert values.shape == (2000,)
        assert np.isnan(values[: warm[name]]).all() and np.isfinite(values[warm[name]:]).all()
    for name in ("mmd_1", "mmd_2", "mmd_3"):
        assert ((out[name][479:] >= 0) & (out[name][479:] < 1)).all()
    assert ((out["volume_skew"][47:] >= -1) & (out["volume_skew"][47:] <= 1)).all()
    assert 0.05 < np.median(out["volatility_30"][30:]) < 2  # percent per bar, O(1)


def test_short_series_and_bad_input() -> None:
    b = random_bars(40, 6)
    out = mmd_features(b["high"], b["low"], b["close"], b["volume"])
    assert all(len(v) == 40 for v in out.values()) and np.isnan(out["mmd_1"]).all()
    with pytest.raises(ValueError):
        mmd_squared(b["close"], [(0, 5)])
    with pytest.raises(ValueError):
        volume_skew(b["high"], b["low"][:-1], b["close"], b["volume"])


def test_no_look_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mmd, "_CHUNK", 64)

    def compute(b: Bars) -> dict[str, np.ndarray]:
        return mmd_features(b["high"], b["low"], b["close"], b["volume"])

    cuts = [100, 298, 299, 478, 479, 600, 798]
    assert_causal(compute, random_bars(800, 7), cuts, np.random.default_rng(99))
