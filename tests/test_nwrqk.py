"""NW-RQK: weights and estimates by hand, vectorised vs plain loop, outputs, no look-ahead."""

from __future__ import annotations

import numpy as np
import pytest

from algospace.features.causality import assert_causal, random_ohlcv
from algospace.features.nwrqk import (
    OUTPUT_NAMES,
    compute_nwrqk,
    kernel_estimate,
    nwrqk_warmup,
    rq_weights,
)


def _reference_estimate(
    close: np.ndarray, h: float, r: float, x0: int, lookback: int
) -> np.ndarray:
    """Textbook Nadaraya-Watson sum, one bar at a time."""
    out = np.full(len(close), np.nan)
    for t in range(x0, len(close)):
        num = den = 0.0
        for i in range(min(t, lookback) + 1):
            w = (1.0 + i * i / (2.0 * r * h * h)) ** (-r)
            num += w * close[t - i]
            den += w
        out[t] = num / den
    return out


def test_weights_by_hand() -> None:
    # h = 8, r = 8: w(i) = (1 + i^2 / 1024) ** -8; w(8) = (1 + 1/16) ** -8 = (16/17) ** 8
    w = rq_weights(8.0, 8.0, 100)
    assert w[0] == 1.0 and w[8] == pytest.approx((16 / 17) ** 8, rel=1e-15)
    assert np.all(np.diff(w) < 0) and w[100] < 6e-9


def test_estimate_by_hand() -> None:
    # h = 1, r = 1, lookback 2: w = 1 / (1 + i^2 / 2) = 1, 2/3, 1/3 (sum 2)
    #   t=2: (12 + 2/3 * 11 + 1/3 * 10) / 2 = 34/3
    #   t=3: (14 + 2/3 * 12 + 1/3 * 11) / 2 = 77/6
    #   t=4: (13 + 2/3 * 14 + 1/3 * 12) / 2 = 79/6
    #   x0 = 1, t=1 (window cut at bar 0): (11 + 2/3 * 10) / (5/3) = 53/5
    close = np.array([10.0, 11, 12, 14, 13])
    est = kernel_estimate(close, h=1.0, r=1.0, x0=1, lookback=2)
    np.testing.assert_allclose(est, [np.nan, 53 / 5, 34 / 3, 77 / 6, 79 / 6], rtol=1e-15)


@pytest.mark.parametrize(("h", "x0", "lookback"), [(8.0, 25, 100), (6.0, 25, 100), (3.0, 5, 150)])
def test_vectorised_matches_plain_loop(h: float, x0: int, lookback: int) -> None:
    close = random_ohlcv(1500, np.random.default_rng(int(h)))["close"]
    got = kernel_estimate(close, h, 8.0, x0, lookback)
    np.testing.assert_allclose(got, _reference_estimate(close, h, 8.0, x0, lookback), rtol=1e-12)
    assert np.isnan(got[:x0]).all() and np.isfinite(got[x0:]).all()


def test_outputs_by_hand_on_flat_then_jump() -> None:
    # Flat at 100: the estimates equal the close exactly -> value 0, slope 0, no signal.
    # Bar 60 jumps to 120. With S = sum of w(0..60) ~ 11.03 the estimate becomes
    # 120 - 20 * (S - 1) / S = 100 + 20 / S ~ 101.8 -> close is ~15 % above it: value
    # clips to +1; the estimate rose by 20 / S ~ 1.8 points ~ 1.5 % of price, far above
    # slope_scale 0.1 % -> slope clips to +1.
    close = np.r_[np.full(60, 100.0), np.full(40, 120.0)]
    out = compute_nwrqk(close)
    w = nwrqk_warmup()
    assert w == 26
    assert np.isnan(out["nwrqk_value"][:25]).all() and out["nwrqk_value"][25] == 0.0
    for name in OUTPUT_NAMES:
        assert np.isnan(out[name][:25]).all()
        np.testing.assert_array_equal(out[name][w:60], 0.0)
    assert out["nwrqk_value"][60] == 1.0 and out["nwrqk_slope"][60] == 1.0
    est = kernel_estimate(close, 8.0)
    assert est[60] == pytest.approx(100 + 20 / rq_weights(8.0, 8.0, 60).sum(), rel=1e-14)


def test_signal_marks_the_turn_of_a_v_once() -> None:
    # A straight fall, then a straight rise. In the fall the faster estimate (h - lag)
    # lags less, so it stays below the slow one; after the turn it crosses above once.
    close = np.r_[np.linspace(120.0, 100.0, 80), np.linspace(100.5, 130.0, 60)]
    out = compute_nwrqk(close)
    sig = out["nwrqk_signal"]
    ups = np.flatnonzero(sig == 1)
    assert len(ups) == 1 and not (sig == -1).any()
    t = int(ups[0])
    fast, slow = kernel_estimate(close, 6.0), kernel_estimate(close, 8.0)
    assert 80 <= t < 100 and fast[t] > slow[t] and fast[t - 1] <= slow[t - 1]
    assert (out["nwrqk_slope"][30:79] < 0).all() and (out["nwrqk_value"][30:79] < 0).all()


def test_no_look_ahead_and_helper_catches_a_centred_kernel() -> None:
    rng = np.random.default_rng(9)
    bars = random_ohlcv(400, rng)
    ts = [0, 24, 25, 26, 130, 300, 398]
    assert_causal(lambda b: compute_nwrqk(b["close"]), bars, ts, rng)
    assert_causal(lambda b: compute_nwrqk(b["close"], lookback=150, x0=5), bars, ts, rng)

    def centred(b: dict[str, np.ndarray]) -> np.ndarray:
        return np.convolve(b["close"], np.ones(5) / 5, mode="same")

    with pytest.raises(AssertionError, match="look-ahead"):
        assert_causal(centred, bars, [200], rng)


def test_ranges_on_a_random_walk() -> None:
    close = random_ohlcv(20_000, np.random.default_rng(4), sigma=0.01)["close"]
    out = compute_nwrqk(close)
    assert tuple(out) == OUTPUT_NAMES
    w = nwrqk_warmup()
    for name, arr in out.items():
        assert np.isfinite(arr[w:]).all() and np.abs(arr[w:]).max() <= 1.0, name
    assert set(np.unique(out["nwrqk_signal"][w:])) == {-1.0, 0.0, 1.0}


def test_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="lag"):
        compute_nwrqk(np.ones(50), lag=8)
    with pytest.raises(ValueError, match="h > 0"):
        rq_weights(0.0, 8.0, 10)
