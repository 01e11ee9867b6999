"""Regime features: Maximum Mean Discrepancy (MMD) of returns, volatility, volume skew.

Built for 30-minute bars (where the 30m matrix and the regime detector use
them) but valid on any bar size. ``c`` = close, ``r[t] = ln(c[t] / c[t-1])``.
Every value at bar ``t`` uses bars ``<= t`` only.

**Standardised returns.** ``z[t] = r[t] / s[t - L]`` with ``s[i]`` the
sample std (ddof=1) of ``r[i-K+1 .. i]``, ``K = norm_window`` (default 192)
and lag ``L = norm_lag`` (default 48): each return is measured in units of
the volatility of the ``K`` returns that ended ``L`` bars before it. With
the defaults (= the largest scale's reference and recent lengths) the newest
return of ``mmd_3`` is scaled by exactly its reference window's std. One
kernel bandwidth then suits quiet and wild markets alike, while a volatility
shift inside the last ``L`` bars is measured against the old volatility at
full contrast (an unlagged normaliser would already include the new regime
and halve the effect). Where ``s <= 1e-12`` (flat or constant-growth prices)
``z = 0``.

**MMD.** For a scale ``(m, n)`` = (``recent``, ``reference``), at bar ``t``
let ``X = z[t-m+1 .. t]`` (the most recent ``m``) and ``Y = z[t-m-n+1 .. t-m]``
(the ``n`` just before them). With the Gaussian kernel
``k(a, b) = exp(-(a - b)² / (2 h²))``, ``h = bandwidth`` (default 1.0, in
units of the normalising std ``s``), the biased (V-statistic) estimate is

    MMD² = mean_{X×X} k + mean_{Y×Y} k - 2 · mean_{X×Y} k,    in [0, 2].

Note: the bandwidth is fixed in units of the lagged trailing std ``s``
rather than set per window (median heuristic of the pooled sample, or the
reference window's std applied to every point). That makes every pair's
kernel value independent of the window it falls in, so all windows are
summed exactly from per-lag cumulative sums in O(n · (m+n)) instead of
O(n · (m+n)²); see ``chunk_mmd2``. The sums run in chunks of 4096 bars
whose boundaries depend only on the bar index, so a value never depends on
later bars, not even in its rounding.

``mmd_i = tanh(MMD²)`` for the default scales ``(12, 48)``, ``(24, 96)``,
``(48, 192)``, in [0, 0.965). Same-distribution windows give small positive
values (the biased estimate is about ``(1/m + 1/n)·(1 - E k)``, larger for
short windows); the regime detector's normalisation absorbs that offset.

**volatility_30** = 100 · sample std (ddof=1) of the last 30 log returns
``r[t-29 .. t]``: the per-bar volatility in percent, not annualised (about
0.1–0.5 for index futures on 30-minute bars).

**volume_skew**: over the last ``window`` bars (default 48) with typical
prices ``p = (high + low + close) / 3`` and weights ``w = volume / Σ volume``
(equal weights if the window's volume is 0): ``μ = Σ w p``,
``m_k = Σ w (p - μ)^k``, ``skew = m_3 / m_2^1.5`` (weighted population
skewness, no small-sample correction), 0 when the prices are flat
(``sqrt(m_2) <= 1e-10 · |μ|``); output ``clip(skew, -3, 3) / 3`` in [-1, 1].

Warm-up (NaN): ``mmd_i`` for ``t < K + L + m + n - 1`` (defaults: bars
0..298, 0..358 and 0..478); ``volatility_30`` for ``t < 30``;
``volume_skew`` for ``t < window - 1`` (default 0..46).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from algospace.features.basic import (
    FloatArray,
    as_series,
    check_same_length,
    log_return,
    rolling_std,
)

DEFAULT_SCALES: tuple[tuple[int, int], ...] = ((12, 48), (24, 96), (48, 192))
"""(recent, reference) window lengths, in bars, of ``mmd_1``, ``mmd_2``, ``mmd_3``."""

MMD_FEATURES: tuple[str, ...] = ("mmd_1", "mmd_2", "mmd_3", "volatility_30", "volume_skew")
"""Names of the columns :func:`mmd_features` returns, in matrix order."""

NORM_WINDOW = 192
"""Default ``norm_window``: returns scaled by the std of this many returns."""
NORM_LAG = 48
"""Default ``norm_lag``: that std ends this many bars before the return it scales."""

_FLAT_STD = 1e-12
_CHUNK = 4096


def standardized_returns(
    close: FloatArray, norm_window: int = NORM_WINDOW, norm_lag: int = NORM_LAG
) -> FloatArray:
    """``r[t] / std(r[t-L-K+1 .. t-L])`` (K = norm_window, L = norm_lag); NaN for ``t < K + L``."""
    if norm_window < 2 or norm_lag < 0:
        raise ValueError(f"need norm_window >= 2 and norm_lag >= 0: {norm_window}, {norm_lag}")
    r = log_return(close)
    s = rolling_std(r, norm_window)
    lagged = np.full(len(s), np.nan)
    lagged[norm_lag:] = s[: max(len(s) - norm_lag, 0)]
    s = lagged
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(s > _FLAT_STD, r / s, 0.0)
    z[np.isnan(s)] = np.nan
    return z


def _cumulative(kern: FloatArray) -> FloatArray:
    """``R[i, e] = Σ_{i' < i} Σ_{d < e} kern[i', d]`` (NaN counts as 0)."""
    return prefix_cols(prefix_rows(kern))


def prefix_rows(kern: FloatArray, top: FloatArray | None = None) -> FloatArray:
    """``A[i, d] = Σ_{i' < i} kern[i', d]`` (rows + 1; NaN counts as 0), summed row after row
    from ``top`` (zeros by default): the first step of :func:`_cumulative`."""
    rows, cols = kern.shape
    out = np.zeros((rows + 1, cols))
    if top is not None:
        out[0] = top
    np.cumsum(np.concatenate([out[:1], np.nan_to_num(kern, nan=0.0)]), axis=0, out=out)
    return out


def prefix_cols(a: FloatArray) -> FloatArray:
    """``R[i, e] = Σ_{d < e} a[i, d]`` (columns + 1), each row on its own: the second step."""
    out = np.zeros((a.shape[0], a.shape[1] + 1))
    np.cumsum(a, axis=1, out=out[:, 1:])
    return out


def pair_kernels(segment: FloatArray, dmax: int, bandwidth: float) -> tuple[FloatArray, FloatArray]:
    """``k(seg[i], seg[i-d])`` by later point (row i) and ``k(seg[j+d], seg[j])`` by earlier
    point (row j), ``d = 0..dmax``; NaN where the other point lies outside the segment."""
    pad = np.full(dmax, np.nan)
    win = sliding_window_view(np.concatenate([pad, segment, pad]), dmax + 1)
    scale = -0.5 / (bandwidth * bandwidth)
    later = win[: len(segment)]  # row i: seg[i-dmax .. i]; column d -> seg[i-d]
    by_later = np.exp(scale * (later[:, -1:] - later[:, ::-1]) ** 2)
    earlier = win[dmax:]  # row j: seg[j .. j+dmax]; column d -> seg[j+d]
    by_earlier = np.exp(scale * (earlier - earlier[:, :1]) ** 2)
    return by_later, by_earlier


def _pair_sums(segment: FloatArray, dmax: int, bandwidth: float) -> tuple[FloatArray, FloatArray]:
    """Double prefix sums of ``k(seg[i], seg[i-d])``, rows by later (i) and earlier (i-d) point."""
    by_later, by_earlier = pair_kernels(segment, dmax, bandwidth)
    return _cumulative(by_later), _cumulative(by_earlier)


def _lags(cum: FloatArray, rows: FloatArray, first: int, stop: int) -> FloatArray:
    """Per row, the sum over lags ``first .. stop-1`` of the pair prefix at ``rows``."""
    return cum[rows, stop] - cum[rows, first]


def chunk_mmd2(later: FloatArray, earlier: FloatArray, rows: FloatArray, m: int,
                n: int) -> FloatArray:
    """Biased MMD² of (recent m, reference n) windows ending at segment index ``rows``.

    A pair (i, i-d) lies in a window range ``[r+a, r+b]`` of its later point i
    iff the prefix difference over i is taken; bounds that move with d (``a``
    or ``b`` = const + d) become constant bounds on the earlier point i-d.
    """
    top, x0, y0, big = rows + 1, rows - m + 1, rows - m - n + 1, m + n
    sxx = _lags(later, top, 1, m) - _lags(earlier, x0, 1, m)
    syy = _lags(later, x0, 1, n) - _lags(earlier, y0, 1, n)
    sxy = (_lags(earlier, x0, 1, m + 1) + _lags(later, top, m + 1, big)
           - _lags(later, x0, 1, n + 1) - _lags(earlier, y0, n + 1, big))
    return (m + 2.0 * sxx) / m**2 + (n + 2.0 * syy) / n**2 - 2.0 * sxy / (m * n)


def mmd_squared(
    close: FloatArray,
    scales: Sequence[tuple[int, int]] = DEFAULT_SCALES,
    norm_window: int = NORM_WINDOW,
    norm_lag: int = NORM_LAG,
    bandwidth: float = 1.0,
    rows_from: int = 0,
) -> FloatArray:
    """Raw biased MMD², shape ``(n_bars, len(scales))``; NaN in each scale's warm-up.

    ``rows_from``: bars ``rows_from ..`` only (earlier rows NaN), the same values bit for bit
    at a cost bounded by one chunk: the sums start at the chunk holding ``rows_from``, and
    ``z`` is computed from the ``norm_window + norm_lag`` bars before that chunk's segment.
    """
    if any(m < 1 or n < 1 for m, n in scales) or bandwidth <= 0:
        raise ValueError(f"scales need positive lengths and bandwidth > 0: {scales}, {bandwidth}")
    close = as_series(close, "close")
    total = max(m + n for m, n in scales)
    out = np.full((len(close), len(scales)), np.nan)
    warm = norm_window + norm_lag - 1  # last bar with an undefined z
    first = warm + min(m + n for m, n in scales)
    chunk0 = first + max(rows_from - first, 0) // _CHUNK * _CHUNK
    z0 = max(chunk0 - total + 1 - norm_window - norm_lag, 0)  # z exact from z0 + K + L on
    z = np.full(len(close), np.nan)
    z[z0:] = standardized_returns(close[z0:], norm_window, norm_lag)
    for start in range(chunk0, len(z), _CHUNK):
        stop = min(start + _CHUNK, len(z))
        seg_start = max(start - total + 1, 0)
        later, earlier = _pair_sums(z[seg_start:stop], total - 1, bandwidth)
        rows = np.arange(max(start, rows_from), stop) - seg_start
        for j, (m, n) in enumerate(scales):
            valid = rows[rows + seg_start >= warm + m + n]
            mmd2 = chunk_mmd2(later, earlier, valid, m, n)
            out[valid + seg_start, j] = np.maximum(mmd2, 0.0)
    return out


def mmd_scores(
    close: FloatArray,
    scales: Sequence[tuple[int, int]] = DEFAULT_SCALES,
    norm_window: int = NORM_WINDOW,
    norm_lag: int = NORM_LAG,
    bandwidth: float = 1.0,
) -> dict[str, FloatArray]:
    """``{"mmd_1": tanh(MMD²), ...}``, one entry per scale."""
    raw = mmd_squared(close, scales, norm_window, norm_lag, bandwidth)
    return {f"mmd_{j + 1}": np.tanh(raw[:, j]) for j in range(len(scales))}


def volatility_30(close: FloatArray, window: int = 30) -> FloatArray:
    """100 × sample std of the last ``window`` log returns; NaN for ``t < window``."""
    return 100.0 * rolling_std(log_return(close), window)


def _weighted_skew(prices: FloatArray, volumes: FloatArray) -> FloatArray:
    """Volume-weighted population skewness of each row; 0 for flat rows."""
    total = volumes.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(total > 0, volumes / total, 1.0 / prices.shape[1])
    mu = (w * prices).sum(axis=1, keepdims=True)
    dev = prices - mu
    m2 = (w * dev * dev).sum(axis=1)
    m3 = (w * dev * dev * dev).sum(axis=1)
    flat = np.sqrt(m2) <= 1e-10 * np.abs(mu[:, 0])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(flat, 0.0, m3 / np.where(flat, 1.0, m2) ** 1.5)


def volume_skew(
    high: FloatArray, low: FloatArray, close: FloatArray, volume: FloatArray, window: int = 48
) -> FloatArray:
    """Volume-weighted skewness of typical price over ``window`` bars, clipped to ±3, /3."""
    high, low = as_series(high, "high"), as_series(low, "low")
    close, volume = as_series(close, "close"), as_series(volume, "volume")
    n = check_same_length(high=high, low=low, close=close, volume=volume)
    if window < 2:
        raise ValueError(f"window must be >= 2, got {window}")
    out = np.full(n, np.nan)
    if n < window:
        return out
    prices = sliding_window_view((high + low + close) / 3.0, window)
    volumes = sliding_window_view(volume, window)
    for s in range(0, len(prices), _CHUNK):
        skew = _weighted_skew(prices[s:s + _CHUNK], volumes[s:s + _CHUNK])
        out[window - 1 + s:window - 1 + s + len(skew)] = np.clip(skew, -3.0, 3.0) / 3.0
    return out


def mmd_features(
    high: FloatArray,
    low: FloatArray,
    close: FloatArray,
    volume: FloatArray,
    scales: Sequence[tuple[int, int]] = DEFAULT_SCALES,
    norm_window: int = NORM_WINDOW,
    norm_lag: int = NORM_LAG,
    bandwidth: float = 1.0,
    skew_window: int = 48,
) -> dict[str, FloatArray]:
    """All regime features: ``mmd_1..k``, ``volatility_30``, ``volume_skew``."""
    out = mmd_scores(close, scales, norm_window, norm_lag, bandwidth)
    out["volatility_30"] = volatility_30(close)
    out["volume_skew"] = volume_skew(high, low, close, volume, skew_window)
    return out
