"""Low-volume nodes (LVN) of a rolling volume profile.

Definition, at every bar ``t`` (all bars ``<= t``, nothing later):

1. **Profile.** Take the trailing ``window`` bars ``t-window+1 .. t``
   (default 100). Their price range ``[L, H]`` = ``[min low, max high]`` is
   cut into ``bins`` equal bins (default 30), bin ``k`` covering
   ``[L + k·w, L + (k+1)·w]`` with ``w = (H - L) / bins`` and centre
   ``L + (k + 1/2)·w``. Each bar's volume is spread **uniformly over its
   [low, high] range**, so bin ``k`` receives
   ``volume · overlap([low, high], bin k) / (high - low)``; a bar with
   ``high == low`` puts all its volume into the bin holding that price (the
   top edge ``H`` belongs to the last bin).
2. **Smoothing.** ``s = [1, 2, 1] / 4`` convolution of the profile, edge
   bins replicated (``s_0 = (3 p_0 + p_1) / 4``, likewise at the top).
3. **LVNs.** A *valley* is a run of equal values ``s_p = … = s_q`` with
   ``0 < p <= q < bins-1`` and higher neighbours ``s_{p-1} > s_p`` and
   ``s_{q+1} > s_q``, where neighbouring bins count as equal when they
   differ by at most ``1e-9 · max(s)`` (bins covered by the same bars are
   equal in exact arithmetic; the tolerance keeps float rounding from
   inventing dips). Its LVN is the middle bin ``(p + q) // 2``
   (a single bin when ``p == q``; an empty gap of several bins gives its
   centre). Edge bins are never LVNs (a thin tail is not a node). A valley
   counts only if ``s_k < threshold · mean(s)`` (default ``threshold = 0.3``;
   the mean over all ``bins`` bins, following AlgoSpace's "volume below a
   fraction of the profile's average").
4. **Nearest LVN.** The LVN whose bin centre is nearest to ``close[t]``
   (ties: the lower price).

Outputs (float64, same length as the inputs):

- ``lvn_distance = exp(-100 · |close - lvn_price| / close)``, i.e.
  ``exp(-distance in percent)``, in (0, 1]; 0 when there is no LVN.
- ``lvn_strength = 1 - s_lvn / max(s)`` in [0, 1] for the nearest LVN; 0 when
  there is none. With the mean-based threshold every LVN has strength above
  ``1 - threshold``; 1 means an empty bin.

Warm-up: bars ``0 .. window-2`` are NaN. A window with ``H == L`` or zero
total volume has no LVN (outputs 0).

Implementation: bars are processed in chunks of rows; within a chunk each
bar's contribution is split into its two end bins plus a run of full interior
bins, added with ``np.bincount`` and a cumulative sum over bins (a
difference array), so the cost is O(n · window), not O(n · window · bins).
Bins no bar overlaps are exactly 0.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from algospace.features.basic import FloatArray, as_series, check_same_length

LVN_FEATURES: tuple[str, ...] = ("lvn_distance", "lvn_strength")
"""Names of the columns :func:`lvn_features` returns, in matrix order."""

_EQUAL_TOL = 1e-9
"""Smoothed bins closer than this times the profile's maximum count as equal."""

_CHUNK = 1024
"""Bars per chunk; bounds temporaries to a few ``chunk × window`` arrays."""


def _chunk_profile(
    low_w: FloatArray, high_w: FloatArray, vol_w: FloatArray, bins: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Profiles (rows × bins), lower edge and bin width for windows given row-wise."""
    rows = len(low_w)
    lower = low_w.min(axis=1)
    width = (high_w.max(axis=1) - lower) / bins
    safe = np.where(width > 0, width, 1.0)[:, None]
    a = (low_w - lower[:, None]) / safe  # bar's low, in bin units
    b = (high_w - lower[:, None]) / safe
    kl = np.minimum(a.astype(np.int64), bins - 1)
    kh = np.minimum(b.astype(np.int64), bins - 1)
    single = kl == kh
    with np.errstate(divide="ignore", invalid="ignore"):
        dens = np.where(single, 0.0, vol_w / (b - a))  # volume per bin unit
    base = (np.arange(rows, dtype=np.int64) * bins)[:, None]
    size = rows * bins
    w_low = np.where(single, vol_w, dens * (kl + 1 - a))
    direct = np.bincount((base + kl).ravel(), w_low.ravel(), size)
    direct += np.bincount((base + kh).ravel(), (dens * (b - kh)).ravel(), size)
    start = (base + np.minimum(kl + 1, bins - 1)).ravel()
    stop = (base + kh).ravel()
    inner = np.bincount(start, dens.ravel(), size) - np.bincount(stop, dens.ravel(), size)
    active = np.bincount(start, ~single.ravel(), size) - np.bincount(stop, ~single.ravel(), size)
    inner = np.cumsum(inner.reshape(rows, bins), axis=1)
    covered = np.cumsum(active.reshape(rows, bins), axis=1) > 0
    profile = direct.reshape(rows, bins) + np.where(covered, inner, 0.0)
    profile[width <= 0] = 0.0
    return profile, lower, width


def _windows(*arrays: FloatArray, window: int) -> list[FloatArray]:
    """Row-wise trailing windows (``n - window + 1`` rows) of each array."""
    return [sliding_window_view(x, window) for x in arrays]


def rolling_volume_profile(
    high: FloatArray, low: FloatArray, volume: FloatArray, window: int = 100, bins: int = 30
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per-bar volume profile (n × bins), its lower price edge and bin width; NaN in warm-up."""
    high, low, volume = as_series(high, "high"), as_series(low, "low"), as_series(volume, "volume")
    n = check_same_length(high=high, low=low, volume=volume)
    _check_params(window, bins)
    _check_inputs(high, low, volume)
    profile = np.full((n, bins), np.nan)
    lower = np.full(n, np.nan)
    width = np.full(n, np.nan)
    if n < window:
        return profile, lower, width
    low_v, high_v, vol_v = _windows(low, high, volume, window=window)
    for s in range(0, len(low_v), _CHUNK):
        rows = slice(window - 1 + s, window - 1 + s + len(low_v[s:s + _CHUNK]))
        profile[rows], lower[rows], width[rows] = _chunk_profile(
            low_v[s:s + _CHUNK], high_v[s:s + _CHUNK], vol_v[s:s + _CHUNK], bins
        )
    return profile, lower, width


def smooth_profile(profile: FloatArray) -> FloatArray:
    """``[1, 2, 1] / 4`` smoothing along the last axis, edge bins replicated."""
    padded = np.concatenate([profile[..., :1], profile, profile[..., -1:]], axis=-1)
    return 0.25 * padded[..., :-2] + 0.5 * padded[..., 1:-1] + 0.25 * padded[..., 2:]


def lvn_mask(smoothed: FloatArray, threshold: float = 0.3) -> FloatArray:
    """Boolean (rows × bins): bin is the LVN of a valley below ``threshold · mean``."""
    rows, bins = smoothed.shape
    k = np.arange(bins)
    tol = _EQUAL_TOL * smoothed.max(axis=1, keepdims=True)
    differs = np.abs(smoothed[:, 1:] - smoothed[:, :-1]) > tol
    starts = np.ones((rows, bins), dtype=bool)
    starts[:, 1:] = differs
    ends = np.ones((rows, bins), dtype=bool)
    ends[:, :-1] = differs
    p = np.maximum.accumulate(np.where(starts, k, 0), axis=1)
    q = np.minimum.accumulate(np.where(ends, k, bins - 1)[:, ::-1], axis=1)[:, ::-1]
    at = np.take_along_axis
    left = at(smoothed, np.maximum(p - 1, 0), axis=1) > at(smoothed, p, axis=1)
    right = at(smoothed, np.minimum(q + 1, bins - 1), axis=1) > at(smoothed, q, axis=1)
    valley = (p > 0) & (q < bins - 1) & left & right
    low_enough = smoothed < threshold * smoothed.mean(axis=1, keepdims=True)
    return valley & (k == (p + q) // 2) & low_enough


def _nearest(
    smoothed: FloatArray, lower: FloatArray, width: FloatArray, close: FloatArray, threshold: float
) -> tuple[FloatArray, FloatArray]:
    """Price and strength of the LVN nearest to close, per row (NaN / 0 if none)."""
    bins = smoothed.shape[1]
    centres = lower[:, None] + (np.arange(bins) + 0.5) * width[:, None]
    mask = lvn_mask(smoothed, threshold)
    dist = np.where(mask, np.abs(close[:, None] - centres), np.inf)
    best = np.argmin(dist, axis=1)[:, None]
    found = np.isfinite(np.take_along_axis(dist, best, axis=1)[:, 0])
    peak = smoothed.max(axis=1)
    level = np.take_along_axis(smoothed, best, axis=1)[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        strength = np.where(found, 1.0 - level / peak, 0.0)
    price = np.where(found, np.take_along_axis(centres, best, axis=1)[:, 0], np.nan)
    return price, np.clip(strength, 0.0, 1.0)


def nearest_lvn(
    high: FloatArray,
    low: FloatArray,
    close: FloatArray,
    volume: FloatArray,
    window: int = 100,
    bins: int = 30,
    threshold: float = 0.3,
) -> tuple[FloatArray, FloatArray]:
    """Nearest LVN price (NaN if none or warm-up) and its strength (0 if none, NaN warm-up)."""
    high, low = as_series(high, "high"), as_series(low, "low")
    close, volume = as_series(close, "close"), as_series(volume, "volume")
    n = check_same_length(high=high, low=low, close=close, volume=volume)
    _check_params(window, bins)
    _check_inputs(high, low, volume)
    price = np.full(n, np.nan)
    strength = np.full(n, np.nan)
    if n < window:
        return price, strength
    low_v, high_v, vol_v = _windows(low, high, volume, window=window)
    for s in range(0, len(low_v), _CHUNK):
        part = slice(s, s + _CHUNK)
        profile, lower, width = _chunk_profile(low_v[part], high_v[part], vol_v[part], bins)
        rows = slice(window - 1 + s, window - 1 + s + len(profile))
        price[rows], strength[rows] = _nearest(
            smooth_profile(profile), lower, width, close[rows], threshold
        )
    return price, strength


def lvn_features(
    high: FloatArray,
    low: FloatArray,
    close: FloatArray,
    volume: FloatArray,
    window: int = 100,
    bins: int = 30,
    threshold: float = 0.3,
) -> dict[str, FloatArray]:
    """``{"lvn_distance", "lvn_strength"}`` per bar; NaN for the first ``window-1`` bars."""
    close = as_series(close, "close")
    price, strength = nearest_lvn(high, low, close, volume, window, bins, threshold)
    with np.errstate(invalid="ignore"):
        distance = np.exp(-100.0 * np.abs(close - price) / close)
    distance = np.where(np.isnan(price) & ~np.isnan(strength), 0.0, distance)
    return {"lvn_distance": distance, "lvn_strength": strength}


def _check_inputs(high: FloatArray, low: FloatArray, volume: FloatArray) -> None:
    """Raise ``ValueError`` for non-finite values, ``high < low`` or negative volume."""
    if not (np.isfinite(high).all() and np.isfinite(low).all() and np.isfinite(volume).all()):
        raise ValueError("high, low and volume must be finite (no NaN or inf)")
    if (high < low).any() or (volume < 0).any():
        raise ValueError("need high >= low and volume >= 0 on every bar")


def _check_params(window: int, bins: int) -> None:
    """Raise ``ValueError`` for a window or bin count that cannot work."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if bins < 3:
        raise ValueError(f"bins must be >= 3 (edge bins are never LVNs), got {bins}")
