"""MLMI: hand-checked pieces, label timing (no use before completion), kNN vs a plain loop."""

from __future__ import annotations

import numpy as np
import pytest

from algospace.features import mlmi
from algospace.features.causality import assert_causal, random_ohlcv
from algospace.features.mlmi import (
    DIST_EPS,
    OUTPUT_NAMES,
    compute_mlmi,
    crossover_bars,
    knn_vote,
    mlmi_warmup,
    rsi_wilder,
    training_points,
    wma,
)


def _features(close: np.ndarray) -> np.ndarray:
    """(rsi_slow, rsi_fast) per bar, as compute_mlmi builds them with defaults."""
    return np.column_stack((wma(rsi_wilder(close, 20), 20), wma(rsi_wilder(close, 5), 20)))


def _reference_vote(
    query: np.ndarray, points: np.ndarray, labels: np.ndarray, usable: np.ndarray, k: int, m: int
) -> np.ndarray:
    """The module-doc definition as a plain per-bar loop (sort, ties: most recent first)."""
    out = np.full(len(query), np.nan)
    for t, q in enumerate(query):
        hi = int(usable[t])
        idx = np.arange(max(0, hi - m), hi)
        if np.isnan(q).any() or idx.size == 0:
            continue
        d2 = (q[0] - points[idx, 0]) ** 2 + (q[1] - points[idx, 1]) ** 2
        order = np.lexsort((-idx, d2))[:k]
        w = 1.0 / (np.sqrt(d2[order]) + DIST_EPS)
        out[t] = np.sum(w * labels[idx[order]]) / np.sum(w)
    return out


def test_wma_by_hand() -> None:
    # WMA_3 of [1, 2, 3, 4]: (1*1 + 2*2 + 3*3) / 6 = 14/6, then (1*2 + 2*3 + 3*4) / 6 = 20/6
    np.testing.assert_allclose(wma(np.array([1.0, 2, 3, 4]), 3), [np.nan, np.nan, 14 / 6, 20 / 6])


def test_rsi_wilder_by_hand() -> None:
    # period 2, closes 10 11 13 12 12: moves +1 +2 -1 0
    #   bar 2: G = (1 + 2) / 2 = 1.5, L = 0           -> RSI 100
    #   bar 3: G = 1.5 + (0 - 1.5) / 2 = 0.75, L = 0 + (1 - 0) / 2 = 0.5 -> 100 * 0.75 / 1.25 = 60
    #   bar 4: G = 0.375, L = 0.25                      -> 60
    np.testing.assert_allclose(
        rsi_wilder(np.array([10.0, 11, 13, 12, 12]), 2), [np.nan, np.nan, 100, 60, 60]
    )
    assert rsi_wilder(np.full(10, 5.0), 3)[3:].tolist() == [50.0] * 7  # no moves: 50


@pytest.mark.parametrize("period", [2, 5, 20])
def test_rsi_wilder_matches_a_plain_loop(period: int) -> None:
    close = random_ohlcv(3000, np.random.default_rng(period))["close"]
    move = np.diff(close)
    gain, loss = np.maximum(move, 0), np.maximum(-move, 0)
    g, lo = gain[:period].mean(), loss[:period].mean()
    expected = np.full(len(close), np.nan)
    expected[period] = 100 * g / (g + lo)
    for t in range(period + 1, len(close)):
        g = (g * (period - 1) + gain[t - 1]) / period
        lo = (lo * (period - 1) + loss[t - 1]) / period
        expected[t] = 100 * g / (g + lo)
    np.testing.assert_allclose(rsi_wilder(close, period), expected, rtol=1e-12, atol=1e-12)


def _steps(levels: list[tuple[int, float]], n: int) -> np.ndarray:
    """Piecewise-constant closes: level v from bar b on, for each (b, v)."""
    close = np.empty(n)
    for b, v in levels:
        close[b:] = v
    return close


# Integer step closes (so every WMA is exact and equal WMAs give d == 0 exactly):
#   100 until bar 44, 110 from 45, 105 from 70, 115 from 95, 108 from 120.
# WMA_5 - WMA_20 is 0 on every flat stretch (>= 20 bars after a step) and takes the
# sign of each step at the step bar itself, e.g. bar 45: WMA_5 = (5*110 + 10*100)/15
# = 103.33 > WMA_20 = (20*110 + 190*100)/210 = 100.95. So crossovers at 45, 70, 95, 120;
# features exist from bar 39 (= mlmi_warmup()), so all four make points:
#   point 45: label sign(c[70] - c[45]) = sign(105 - 110) = -1, complete at bar 70
#   point 70: label sign(c[95] - c[70]) = sign(115 - 105) = +1, complete at bar 95
#   point 95: label sign(c[120] - c[95]) = sign(108 - 115) = -1, complete at bar 120
STEPS = _steps([(0, 100.0), (45, 110.0), (70, 105.0), (95, 115.0), (120, 108.0)], 140)


def test_crossovers_and_points_of_the_step_series() -> None:
    assert mlmi_warmup() == 39
    bars = crossover_bars(wma(STEPS, 5), wma(STEPS, 20))
    np.testing.assert_array_equal(bars, [45, 70, 95, 120])
    start, label, end = training_points(STEPS, bars)
    np.testing.assert_array_equal(start, [45, 70, 95])
    np.testing.assert_array_equal(label, [-1, 1, -1])
    np.testing.assert_array_equal(end, [70, 95, 120])


def test_label_is_not_used_before_its_move_has_completed() -> None:
    value = compute_mlmi(STEPS)["mlmi_value"]
    assert np.isnan(value[:70]).all()  # no label complete before bar 70
    # Bars 70..94: point 70 exists, but its label needs c[95]. Only point 45 (label -1)
    # may vote, so the value is exactly -1. Using point 70's +1 early would lift it.
    np.testing.assert_array_equal(value[70:95], -1.0)
    # From bar 95 point 70 (+1) votes too: strictly between -1 and +1, as the weights say.
    q = _features(STEPS)
    for t in (95, 110):
        w45, w70 = (1 / (np.hypot(*(q[t] - q[b])) + DIST_EPS) for b in (45, 70))
        assert value[t] == pytest.approx((w70 - w45) / (w45 + w70), rel=1e-12)
        assert -1 < value[t] < 1
    signal = compute_mlmi(STEPS)["mlmi_signal"]
    np.testing.assert_array_equal(signal[70:95], -1.0)


def test_fixed_horizon_labels_complete_after_h_bars() -> None:
    # 100 until bar 44, then 110, 111, 112, ... : one crossover (bar 45), WMA_5 stays above.
    close = np.concatenate((np.full(45, 100.0), 110.0 + np.arange(15)))
    out = compute_mlmi(close, label_horizon=3)["mlmi_value"]
    assert np.isnan(out[:48]).all()  # label sign(c[48] - c[45]) = +1 is known at bar 48
    np.testing.assert_array_equal(out[48:], 1.0)
    assert np.isnan(compute_mlmi(close)["mlmi_value"]).all()  # no next crossover: no label


def _leaky_mlmi(bars: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The prior art's bug: a crossover bar's point, labelled with c[t+1], votes at bar t."""
    close = bars["close"]
    q = _features(close)
    cross = crossover_bars(wma(close, 5), wma(close, 20))
    cross = cross[~np.isnan(q[cross]).any(axis=1) & (cross + 1 < len(close))]
    label = np.sign(close[cross + 1] - close[cross])
    usable = np.searchsorted(cross, np.arange(len(close)), side="right")
    return {"mlmi_value": knn_vote(q, q[cross], label, usable, k=200)}


def test_no_look_ahead_and_the_prior_bug_is_caught() -> None:
    rng = np.random.default_rng(7)
    bars = random_ohlcv(500, rng)
    ts = [30, 60, 120, 250, 400, 498]
    assert_causal(lambda b: compute_mlmi(b["close"]), bars, ts, rng)
    assert_causal(lambda b: compute_mlmi(b["close"], k=5, max_points=12), bars, ts, rng)
    assert_causal(lambda b: compute_mlmi(b["close"], label_horizon=4), bars, ts, rng)
    q = _features(bars["close"])
    cross = crossover_bars(wma(bars["close"], 5), wma(bars["close"], 20))
    late = [int(t) for t in cross if not np.isnan(q[t]).any()][3:6]
    with pytest.raises(AssertionError, match="look-ahead"):
        assert_causal(_leaky_mlmi, bars, late, rng)


@pytest.mark.parametrize(("k", "max_points"), [(50, 220), (10, 40), (1, 3), (300, 250)])
def test_knn_matches_a_plain_loop(k: int, max_points: int) -> None:
    close = random_ohlcv(3000, np.random.default_rng(k))["close"]
    q = _features(close)
    cross = crossover_bars(wma(close, 5), wma(close, 20))
    start, label, end = training_points(close, cross[~np.isnan(q[cross]).any(axis=1)])
    usable = np.searchsorted(end, np.arange(len(close)), side="right")
    got = knn_vote(q, q[start], label, usable, k=k, max_points=max_points)
    expected = _reference_vote(q, q[start], label, usable, k, max_points)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_knn_ties_prefer_recent_points_and_prefilter_fallbacks_are_exact() -> None:
    # Points and queries on a small integer grid: many exactly equal distances, and
    # clustered points that defeat the subsample threshold.
    rng = np.random.default_rng(3)
    points = rng.integers(0, 4, (900, 2)).astype(np.float64)
    labels = rng.choice([-1.0, 0.0, 1.0], 900)
    query = rng.integers(0, 6, (1200, 2)).astype(np.float64)
    usable = np.minimum(np.arange(1200), 900)
    for k, m in ((5, 300), (60, 500), (1, 900)):
        got = knn_vote(query, points, labels, usable, k=k, max_points=m)
        np.testing.assert_allclose(
            got, _reference_vote(query, points, labels, usable, k, m), rtol=0, atol=1e-12
        )
    # two points at the same spot, k = 1: the later one decides
    same = knn_vote(np.array([[1.0, 1.0]]), np.ones((2, 2)), np.array([1.0, -1.0]), [2], k=1)
    assert same[0] == -1.0


def test_knn_when_the_subsample_threshold_is_too_tight() -> None:
    # Every 7th point (the prefilter's subsample) sits close to the query, the others
    # far: the subsample's radius holds ~13 points, fewer than k = 50, so the chunk
    # falls back to all points. The answer must still be the exact one.
    rng = np.random.default_rng(4)
    near = np.arange(700) % 7 == 0
    points = np.where(near[:, None], 1.0, 10.0) * rng.normal(size=(700, 2)) + 50.0
    labels = np.where(near, 1.0, -1.0)
    query = np.full((100, 2), 50.0)
    usable = np.full(100, 700)
    got = knn_vote(query, points, labels, usable, k=50, max_points=700)
    np.testing.assert_allclose(
        got, _reference_vote(query, points, labels, usable, 50, 700), rtol=0, atol=1e-12
    )


def test_min_points_and_nan_queries() -> None:
    pts, lab = np.array([[1.0, 1.0], [2.0, 2.0]]), np.array([1.0, -1.0])
    q = np.array([[1.0, 1.0], [np.nan, 1.0], [1.0, 1.0], [1.0, 1.0]])
    out = knn_vote(q, pts, lab, np.array([0, 2, 1, 2]), k=5, min_points=2)
    assert np.isnan(out[:3]).all() and -1 < out[3] < 1


def test_outputs_on_a_random_walk() -> None:
    close = random_ohlcv(20_000, np.random.default_rng(1))["close"]
    out = compute_mlmi(close)
    assert tuple(out) == OUTPUT_NAMES
    value, signal = out["mlmi_value"], out["mlmi_signal"]
    first = int(np.flatnonzero(~np.isnan(value))[0])
    assert first > mlmi_warmup()
    assert np.isfinite(value[first:]).all() and np.isnan(value[:first]).all()
    assert np.abs(value[first:]).max() <= 1.0
    assert set(np.unique(signal[first:])) <= {-1.0, 0.0, 1.0}
    strong = np.abs(value[first:]) > 0.5
    np.testing.assert_array_equal(signal[first:][strong], np.sign(value[first:][strong]))
    assert (signal[first:][~strong] == 0).all()


def test_linear_recurrence_blocks_join_exactly() -> None:
    u = np.random.default_rng(0).normal(size=1000)
    expected = np.empty_like(u)
    acc = 0.0
    for i, x in enumerate(u):
        acc = 0.9 * acc + x
        expected[i] = acc
    np.testing.assert_allclose(mlmi._linear_recurrence(u, 0.9), expected, rtol=1e-12, atol=1e-12)
