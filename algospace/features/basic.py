"""Basic causal bar features: returns, momentum, volume ratio, time of day.

All functions take 1-D arrays of one bar series (float64 prices/volumes, or
``datetime64`` bar **close** times) and return float64 arrays of the same
length. The value at bar ``t`` uses bars ``<= t`` only; warm-up bars are NaN.

Definitions (``c`` = close, ``v`` = volume, ``t`` = bar index):

``log_return(c)``
    ``r[t] = ln(c[t] / c[t-1])``. Warm-up: bar 0 is NaN.

``momentum_5(c)`` (AlgoSpace's ``price_momentum_5``)
    ``p = 100 * (c[t] / c[t-5] - 1)`` (percent change over 5 bars), then
    ``clip(clip(p, -10, 10) / 5, -1, 1)``. So the feature is ``p / 5`` and
    saturates at ±1 for moves of ±5 % or more; the ±10 clip is kept for
    fidelity and is inactive. Warm-up: bars 0..4 are NaN.

``volume_ratio(v, window=20)``
    ``ratio = v[t] / mean(v[t-window .. t-1])`` (the mean of the previous
    ``window`` bars, bar ``t`` excluded), then ``tanh(log1p(ratio - 1))``
    (= ``tanh(ln ratio)``), in [-1, 1]; 0 when volume equals its recent mean.
    Zero guards: ``v[t] = 0`` with a positive mean gives -1; a zero mean gives
    +1 if ``v[t] > 0`` and 0 if ``v[t] = 0``. Warm-up: bars 0..window-1 are NaN.

``hour_sin(times)``, ``hour_cos(times)``
    ``sin / cos(2π · (hour + minute / 60) / 24)`` of the bar close time, read
    as wall-clock time (seconds ignored: the time is floored to the minute).
    00:00 → (0, 1), 06:00 → (1, 0), 12:00 → (0, -1), 18:00 → (-1, 0).
    No warm-up; ``NaT`` gives NaN.

``rolling_std(x, window, ddof=1)``
    Standard deviation of ``x[t-window+1 .. t]`` (two-pass, exact per
    window). Warm-up: bars 0..window-2 are NaN (and any window containing NaN
    is NaN).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

FloatArray = np.ndarray
"""Alias used in signatures: a 1-D float64 numpy array."""

_CHUNK = 16_384
"""Rows per chunk for windowed reductions (bounds temporary memory)."""


def as_series(x: object, name: str = "x") -> FloatArray:
    """Return ``x`` as a 1-D float64 array, or raise ``ValueError``."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr


def check_same_length(**arrays: FloatArray) -> int:
    """Return the common length of the arrays, or raise ``ValueError``."""
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"input arrays differ in length: {lengths}")
    return next(iter(lengths.values()), 0)


def rolling_std(x: FloatArray, window: int, ddof: int = 1) -> FloatArray:
    """Trailing standard deviation over ``window`` values (NaN during warm-up)."""
    x = as_series(x)
    if window <= ddof:
        raise ValueError(f"window must exceed ddof={ddof}, got {window}")
    out = np.full(len(x), np.nan)
    if len(x) < window:
        return out
    view = sliding_window_view(x, window)
    for start in range(0, len(view), _CHUNK):
        block = view[start:start + _CHUNK]
        centred = block - block.mean(axis=1, keepdims=True)
        var = np.einsum("ij,ij->i", centred, centred) / (window - ddof)
        out[window - 1 + start:window - 1 + start + len(block)] = np.sqrt(var)
    return out


def log_return(close: FloatArray) -> FloatArray:
    """One-bar log return ``ln(c[t] / c[t-1])``; bar 0 is NaN."""
    close = as_series(close, "close")
    out = np.full(len(close), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        out[1:] = np.log(close[1:] / close[:-1])
    return out


def momentum_5(close: FloatArray) -> FloatArray:
    """5-bar percent change, clipped to ±10 %, divided by 5, clipped to [-1, 1]."""
    close = as_series(close, "close")
    out = np.full(len(close), np.nan)
    pct = 100.0 * (close[5:] / close[:-5] - 1.0)
    out[5:] = np.clip(np.clip(pct, -10.0, 10.0) / 5.0, -1.0, 1.0)
    return out


def volume_ratio(volume: FloatArray, window: int = 20) -> FloatArray:
    """``tanh(log1p(v[t] / mean(previous window volumes) - 1))`` in [-1, 1]."""
    volume = as_series(volume, "volume")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    out = np.full(len(volume), np.nan)
    if len(volume) <= window:
        return out
    prev_mean = sliding_window_view(volume[:-1], window).mean(axis=1)
    current = volume[window:]
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.tanh(np.log1p(current / prev_mean - 1.0))
    value = np.where(prev_mean > 0, value, np.where(current > 0, 1.0, 0.0))
    out[window:] = value
    return out


def _minute_of_day(close_times: object) -> FloatArray:
    """Minutes since midnight (floored) of each time; NaN for NaT."""
    times = np.asarray(close_times)
    if times.ndim != 1 or not np.issubdtype(times.dtype, np.datetime64):
        raise ValueError(f"close_times must be a 1-D datetime64 array, got {times.dtype}")
    ns = times.astype("datetime64[ns]").astype(np.int64)
    minutes = (ns // 60_000_000_000) % 1440
    return np.where(np.isnat(times), np.nan, minutes.astype(np.float64))


def hour_sin(close_times: object) -> FloatArray:
    """``sin(2π (hour + minute/60) / 24)`` of each bar close time."""
    return np.sin(2.0 * np.pi * _minute_of_day(close_times) / 1440.0)


def hour_cos(close_times: object) -> FloatArray:
    """``cos(2π (hour + minute/60) / 24)`` of each bar close time."""
    return np.cos(2.0 * np.pi * _minute_of_day(close_times) / 1440.0)
