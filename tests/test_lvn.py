"""Tests of algospace.features.lvn: hand-made profiles, brute-force reference, causality."""

from __future__ import annotations

import math

import numpy as np
import pytest

from algospace.features import lvn
from algospace.features.causality import assert_causal
from algospace.features.lvn import (
    LVN_FEATURES,
    lvn_features,
    nearest_lvn,
    rolling_volume_profile,
)

Bars = dict[str, np.ndarray]


def random_bars(n: int, seed: int, scale: float = 1.0) -> Bars:
    """OHLC-consistent random bars (some with zero range or zero volume)."""
    rng = np.random.default_rng(seed)
    close = 100.0 * scale * np.exp(np.cumsum(rng.standard_t(4, n) * 0.003 * scale))
    open_ = close * np.exp(rng.normal(0, 0.002, n))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.004, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.004, n))
    flat = rng.random(n) < 0.03
    high[flat] = low[flat] = open_[flat] = close[flat]
    volume = rng.lognormal(6 + scale, 0.7, n)
    volume[rng.random(n) < 0.03] = 0.0
    return {"open": open_, "high": high, "low": low, "close": close, "volume": volume}


def brute_lvn(h: np.ndarray, lows: np.ndarray, c: np.ndarray, v: np.ndarray, window: int,
              bins: int, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plain-loop reference of the module's definition: (price, strength, profile)."""
    n = len(c)
    price, strength = np.full(n, np.nan), np.full(n, np.nan)
    profiles = np.full((n, bins), np.nan)
    for t in range(window - 1, n):
        js = range(t - window + 1, t + 1)
        lo, hi = min(lows[j] for j in js), max(h[j] for j in js)
        w = (hi - lo) / bins
        p = [0.0] * bins
        for j in js:
            if w == 0:
                break
            for k in range(bins):
                if h[j] == lows[j]:
                    p[k] += v[j] if k == min(int((lows[j] - lo) / w), bins - 1) else 0.0
                else:
                    overlap = min(h[j], lo + (k + 1) * w) - max(lows[j], lo + k * w)
                    p[k] += v[j] * max(0.0, overlap) / (h[j] - lows[j])
        profiles[t] = p
        s = [(p[max(k - 1, 0)] + 2 * p[k] + p[min(k + 1, bins - 1)]) / 4 for k in range(bins)]
        best: tuple[float, float] | None = None
        k = 0
        while k < bins:  # walk runs of (nearly) equal bins
            q = k
            while q + 1 < bins and abs(s[q + 1] - s[q]) <= 1e-9 * max(s):
                q += 1
            mid = (k + q) // 2
            if (k > 0 and q < bins - 1 and s[k - 1] > s[k] and s[q + 1] > s[q]
                    and s[mid] < threshold * sum(s) / bins):
                centre = lo + (mid + 0.5) * w
                if best is None or abs(c[t] - centre) < abs(c[t] - best[0]):
                    best = (centre, 1 - s[mid] / max(s))
            k = q + 1
        price[t], strength[t] = best if best else (np.nan, 0.0)
    return price, strength, profiles


def gap_bars() -> Bars:
    """Ten bars: five trade [100, 103], five trade [108, 111]; nothing in (103, 108)."""
    low = np.array([100.0] * 5 + [108.0] * 5)
    high = low + 3.0
    close = np.array([101.0] * 5 + [108.0] * 5)
    return {"open": close.copy(), "high": high, "low": low, "close": close,
            "volume": np.ones(10)}


def test_profile_spreads_volume_over_range() -> None:
    # window [100, 111] in 11 bins of width 1: each bar puts 1/3 into each of its 3 bins,
    # five bars per side -> 5/3 in bins 0-2 and 8-10, exactly 0 in the gap bins 3-7
    b = gap_bars()
    profile, lower, width = rolling_volume_profile(b["high"], b["low"], b["volume"], 10, 11)
    assert np.isnan(profile[:9]).all()
    np.testing.assert_allclose(profile[9], [5 / 3] * 3 + [0] * 5 + [5 / 3] * 3, atol=1e-12)
    assert (profile[9, 3:8] == 0).all()
    assert lower[9] == 100.0 and width[9] == 1.0


def test_gap_gives_lvn_at_its_centre() -> None:
    # smoothed [1,2,1]/4: s = 5/3, 5/3, 5/4, 5/12, 0, 0, 0, 5/12, 5/4, 5/3, 5/3; the run of
    # zeros is bins 4-6, so the LVN is bin 5 with centre 105.5; mean(s) = 20/33 and
    # 0 < 0.3 * 20/33. Strength 1 - 0 / (5/3) = 1. Close 108:
    # distance = exp(-100 * 2.5 / 108) = exp(-2.3148...) = 0.09880...
    b = gap_bars()
    price, strength = nearest_lvn(b["high"], b["low"], b["close"], b["volume"], 10, 11)
    assert price[9] == pytest.approx(105.5, abs=1e-12)
    assert strength[9] == 1.0
    f = lvn_features(b["high"], b["low"], b["close"], b["volume"], window=10, bins=11)
    assert f["lvn_distance"][9] == pytest.approx(math.exp(-250 / 108), rel=1e-12)
    assert f["lvn_strength"][9] == 1.0
    assert np.isnan(f["lvn_distance"][:9]).all() and np.isnan(f["lvn_strength"][:9]).all()


def ladder(per_bin: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Zero-range bars putting ``per_bin[k]`` volume into bin k of ``len(per_bin)`` unit bins.

    One bar per bin centre ``k + 0.5``, plus bars at 0 and at ``len(per_bin)`` (which set the
    window's range; the top edge belongs to the last bin) sharing the end bins' volume.
    """
    bins = len(per_bin)
    prices = np.array([0.0, *(k + 0.5 for k in range(bins)), float(bins)])
    volume = np.array([per_bin[0] / 2, per_bin[0] / 2, *per_bin[1:-1], per_bin[-1] / 2,
                       per_bin[-1] / 2])
    return prices, volume


def test_single_bin_dip_and_threshold() -> None:
    # Profile over [0, 11], 11 unit bins: 10 everywhere, 1 in bin 5 (price 5.5).
    # Smoothed: bin 4 = (10 + 20 + 1)/4 = 7.75, bin 5 = (10 + 2 + 10)/4 = 5.5, bin 6 = 7.75,
    # others 10; mean = (8*10 + 2*7.75 + 5.5)/11 = 101/11. 5.5 < 0.7 * 101/11 = 6.43 is an LVN
    # with strength 1 - 5.5/10 = 0.45; with threshold 0.3 (2.75) it is not.
    prices, volume = ladder([10.0] * 5 + [1.0] + [10.0] * 5)
    close = np.full(len(prices), 5.0)
    profile, _, _ = rolling_volume_profile(prices, prices, volume, window=13, bins=11)
    np.testing.assert_allclose(profile[12], [10.0] * 5 + [1.0] + [10.0] * 5, atol=1e-12)
    price, strength = nearest_lvn(prices, prices, close, volume, window=13, bins=11,
                                  threshold=0.7)
    assert price[12] == pytest.approx(5.5) and strength[12] == pytest.approx(0.45)
    f = lvn_features(prices, prices, close, volume, window=13, bins=11, threshold=0.3)
    assert f["lvn_distance"][12] == 0.0 and f["lvn_strength"][12] == 0.0


def test_nearest_of_two_lvns() -> None:
    # Empty bins 3 and 8 (centres 3.5 and 8.5) smooth to 5 between neighbours of 7.5; the mean
    # of the smoothed profile is 90/11, so threshold 0.7 (5.73) admits both. Close 7 -> 8.5;
    # close 5 -> 3.5 (distance 1.5 < 3.5).
    prices, volume = ladder([10.0] * 3 + [0.0] + [10.0] * 4 + [0.0] + [10.0] * 2)
    for close, expected in ((7.0, 8.5), (5.0, 3.5)):
        closes = np.full(len(prices), close)
        price, strength = nearest_lvn(prices, prices, closes, volume, window=13, bins=11,
                                      threshold=0.7)
        assert price[12] == pytest.approx(expected) and strength[12] == pytest.approx(0.5)


def test_flat_window_and_zero_volume_have_no_lvn() -> None:
    flat = np.full(20, 50.0)
    f = lvn_features(flat, flat, flat, np.ones(20), window=10, bins=5)
    assert (f["lvn_distance"][9:] == 0).all() and (f["lvn_strength"][9:] == 0).all()
    b = random_bars(30, 1)
    f = lvn_features(b["high"], b["low"], b["close"], np.zeros(30), window=10, bins=5)
    assert (f["lvn_distance"][9:] == 0).all() and (f["lvn_strength"][9:] == 0).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_brute_force(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lvn, "_CHUNK", 37)  # exercise chunk boundaries
    b = random_bars(300, seed)
    args = (b["high"], b["low"], b["close"], b["volume"])
    ref_price, ref_strength, ref_profile = brute_lvn(*args, window=100, bins=30, threshold=0.3)
    profile, _, _ = rolling_volume_profile(b["high"], b["low"], b["volume"])
    np.testing.assert_allclose(profile, ref_profile, rtol=1e-10, atol=1e-10 * np.nanmax(profile))
    price, strength = nearest_lvn(*args)
    assert 0.2 < np.mean(strength[99:] > 0) < 0.95  # LVNs are found, but not everywhere
    np.testing.assert_allclose(price, ref_price, rtol=1e-10, atol=0, equal_nan=True)
    np.testing.assert_allclose(strength, ref_strength, rtol=0, atol=1e-10, equal_nan=True)
    f = lvn_features(*args)
    expected = np.where(np.isnan(ref_price), 0.0, np.exp(-100 * np.abs(b["close"] - ref_price)
                                                         / b["close"]))
    expected[:99] = np.nan
    np.testing.assert_allclose(f["lvn_distance"], expected, rtol=0, atol=1e-10, equal_nan=True)


def test_output_ranges_and_names() -> None:
    b = random_bars(2000, 2)
    f = lvn_features(b["high"], b["low"], b["close"], b["volume"])
    assert tuple(f) == LVN_FEATURES
    for values in f.values():
        assert values.shape == (2000,) and np.isnan(values[:99]).all()
        assert ((values[99:] >= 0) & (values[99:] <= 1)).all()
    found = f["lvn_strength"][99:] > 0
    assert (f["lvn_distance"][99:][found] > 0).all() and (f["lvn_distance"][99:][~found] == 0).all()
    assert (f["lvn_strength"][99:][found] > 0.7).all()  # below 0.3 * mean <= 0.3 * max


def test_short_series_and_bad_input() -> None:
    b = random_bars(50, 3)
    f = lvn_features(b["high"], b["low"], b["close"], b["volume"])
    assert all(np.isnan(v).all() and len(v) == 50 for v in f.values())
    with pytest.raises(ValueError):
        lvn_features(b["high"], b["low"][:-1], b["close"], b["volume"])
    with pytest.raises(ValueError):
        lvn_features(b["high"], b["low"], b["close"], b["volume"], bins=2)
    with pytest.raises(ValueError):
        lvn_features(b["low"], b["high"], b["close"], b["volume"])  # high < low
    b["volume"][3] = np.nan
    with pytest.raises(ValueError):
        lvn_features(b["high"], b["low"], b["close"], b["volume"])


def test_no_look_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lvn, "_CHUNK", 64)

    def compute(b: Bars) -> dict[str, np.ndarray]:
        return lvn_features(b["high"], b["low"], b["close"], b["volume"])

    cuts = [50, 99, 100, 163, 250, 398]
    assert_causal(compute, random_bars(400, 4), cuts, np.random.default_rng(99))
