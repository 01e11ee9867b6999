"""NW-RQK: causal Nadaraya–Watson regression of close with a rational-quadratic kernel.

Definition (bars indexed ``t = 0..n-1``; ``c`` = close):

* Kernel weight of the bar ``i`` bars back (``i = 0`` is bar ``t`` itself)::

      w_h(i) = (1 + i**2 / (2 * r * h**2)) ** (-r)

* Estimate, from bar ``t`` and the ``lookback`` bars before it only (causal;
  the window is truncated to ``i <= t`` near the start)::

      yhat_h[t] = sum_{i=0}^{m} w_h(i) * c[t-i] / sum_{i=0}^{m} w_h(i),  m = min(t, lookback)

  It is computed as ``c[t] + sum_i w_h(i) * (c[t-i] - c[t]) / sum_i w_h(i)``
  (the same value, but exactly ``c[t]`` on a flat stretch, so rounding can
  never make the two estimates below cross on flat prices).
  Two estimates: ``yhat1`` with bandwidth ``h`` and the faster ``yhat2`` with
  ``h - lag``. Both are NaN before bar ``x0`` ("start regression at bar x0").
* Outputs (float64, length ``n``):

  - ``nwrqk_value``  = clip(100 * (c[t] - yhat1[t]) / c[t], -5, 5) / 5, in [-1, 1]:
    % distance of close from the estimate, positive when close is above it.
  - ``nwrqk_slope``  = clip(100 * (yhat1[t] - yhat1[t-1]) / c[t] / slope_scale, -1, 1):
    the estimate's one-bar change in % of price, divided by ``slope_scale``
    (percent per bar). On a random walk with per-bar return std σ (in %), this
    change has std ≈ 0.25 σ, so the default 0.1 gives std ≈ 0.6 on 30-minute
    index futures (σ ≈ 0.25 %) and ≈ 0.25 on 5-minute bars (σ ≈ 0.1 %).
  - ``nwrqk_signal`` = +1 at a bar where ``yhat2`` crosses above ``yhat1``
    (``yhat2[t] > yhat1[t]`` and ``yhat2[t-1] <= yhat1[t-1]``), -1 where it
    crosses below (mirrored), else 0. It is an event, not a state.

Parameters (defaults as in the original indicator): ``h = 8``, ``r = 8``,
``x0 = 25``, ``lag = 2``; ``lookback = 100`` (weights beyond 100 bars are below
6e-9 of the newest bar's, so truncating there changes nothing visible).

Warm-up: ``nwrqk_value`` is NaN for ``t < x0``, slope and signal for
``t < x0 + 1``; :func:`nwrqk_warmup` returns ``x0 + 1``, the first index at
which all three are defined.

Cost: one vectorised pass per kernel lag, O(n * lookback) for each of the two
estimates (no per-bar Python loop).
"""

from __future__ import annotations

import numpy as np

OUTPUT_NAMES: tuple[str, ...] = ("nwrqk_value", "nwrqk_slope", "nwrqk_signal")
"""Names of the arrays :func:`compute_nwrqk` returns, in feature-matrix order."""

VALUE_CLIP_PCT = 5.0
"""``nwrqk_value`` clips the % distance to ±this, then divides by it."""


def rq_weights(h: float, r: float, lookback: int) -> np.ndarray:
    """Rational-quadratic kernel weights ``w_h(i)`` for ``i = 0..lookback``."""
    if h <= 0 or r <= 0 or lookback < 0:
        raise ValueError(f"need h > 0, r > 0, lookback >= 0; got h={h}, r={r}, {lookback=}")
    i = np.arange(lookback + 1, dtype=np.float64)
    return (1.0 + i * i / (2.0 * r * h * h)) ** (-r)


def kernel_estimate(
    close: np.ndarray, h: float, r: float = 8.0, x0: int = 25, lookback: int = 100
) -> np.ndarray:
    """Causal Nadaraya–Watson estimate ``yhat_h`` of ``close`` (NaN before bar ``x0``)."""
    c = np.asarray(close, dtype=np.float64)
    n = len(c)
    w = rq_weights(h, r, lookback)
    num = np.zeros(n)
    tmp = np.empty(n)
    for i in range(1, min(lookback, n - 1) + 1):  # bounded loop over kernel lags, not bars
        np.subtract(c[: n - i], c[i:], out=tmp[: n - i])  # c[t-i] - c[t]
        tmp[: n - i] *= w[i]
        num[i:] += tmp[: n - i]
    den = np.cumsum(w)[np.minimum(np.arange(n), lookback)]
    est = c + num / den
    est[: min(max(x0, 0), n)] = np.nan
    return est


def compute_nwrqk(
    close: np.ndarray,
    *,
    h: float = 8.0,
    r: float = 8.0,
    x0: int = 25,
    lag: int = 2,
    lookback: int = 100,
    slope_scale: float = 0.1,
) -> dict[str, np.ndarray]:
    """NW-RQK features ``nwrqk_value``, ``nwrqk_slope``, ``nwrqk_signal`` (see module doc)."""
    if not 0 < lag < h:
        raise ValueError(f"lag must satisfy 0 < lag < h; got {lag=}, {h=}")
    if slope_scale <= 0:
        raise ValueError(f"slope_scale must be > 0; got {slope_scale}")
    c = np.asarray(close, dtype=np.float64)
    yhat1 = kernel_estimate(c, h, r, x0, lookback)
    yhat2 = kernel_estimate(c, h - lag, r, x0, lookback)
    pct = 100.0 * (c - yhat1) / c
    value = np.clip(pct, -VALUE_CLIP_PCT, VALUE_CLIP_PCT) / VALUE_CLIP_PCT
    slope = np.full(len(c), np.nan)
    slope[1:] = np.clip(100.0 * np.diff(yhat1) / c[1:] / slope_scale, -1.0, 1.0)
    return {"nwrqk_value": value, "nwrqk_slope": slope, "nwrqk_signal": _cross_signal(yhat2, yhat1)}


def _cross_signal(fast: np.ndarray, slow: np.ndarray) -> np.ndarray:
    """+1 where ``fast`` crosses above ``slow``, -1 below, else 0; NaN until both known twice."""
    d = fast - slow
    sig = np.full(len(d), np.nan)
    if len(d) > 1:
        prev, cur = d[:-1], d[1:]
        up = (cur > 0) & (prev <= 0)
        down = (cur < 0) & (prev >= 0)
        sig[1:] = np.where(np.isnan(prev) | np.isnan(cur), np.nan, up.astype(float) - down)
    return sig


def nwrqk_warmup(x0: int = 25) -> int:
    """Index of the first bar at which all NW-RQK outputs are defined (``x0 + 1``)."""
    return x0 + 1
