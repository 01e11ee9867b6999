"""MLMI: Machine-Learning Momentum Index — a causal weighted-kNN vote on smoothed RSIs.

Definition (bars ``t = 0..n-1``, ``c`` = close):

* ``WMA_p(x)[t] = sum_{i=0}^{p-1} (p - i) * x[t-i] / (p (p + 1) / 2)`` (linear
  weights, newest heaviest); NaN until ``p`` values exist.
* ``RSI_p`` with Wilder's smoothing: ``G``/``L`` start at bar ``p`` as the
  plain mean of the first ``p`` gains/losses of ``c[t] - c[t-1]``, then
  ``G[t] = G[t-1] + (gain[t] - G[t-1]) / p`` (same for ``L``);
  ``RSI = 100 * G / (G + L)`` (50 when ``G = L = 0``). NaN before bar ``p``.
* Features: ``rsi_slow = WMA_20(RSI_20)``, ``rsi_fast = WMA_20(RSI_5)``.
* Crossover bars: ``d = WMA_5(c) - WMA_20(c)``; bar ``t`` is a crossover when
  ``d[t] > 0 >= d[t-1]`` or ``d[t] < 0 <= d[t-1]``. Crossovers before the
  features exist are ignored.
* Training points (as in the original indicator, one per crossover bar
  ``b_j``): feature ``(rsi_slow[b_j], rsi_fast[b_j])``, label
  ``sign(c[e_j] - c[b_j])`` in {-1, 0, +1}, where the label's end bar ``e_j``
  is the next crossover ``b_{j+1}`` (default) or ``b_j + label_horizon``.
  **A point is usable at bar t only once its label is complete: e_j <= t.**
  (The original adds a point labelled with ``c[t+1]`` and predicts at the same
  bar: look-ahead. Here nothing after ``t`` is used.)
* Memory: at bar ``t`` the usable points are the ``max_points`` (default
  2000) most recently completed ones.
* Vote at bar ``t``: among the usable points, the ``k`` (default 200) nearest
  to ``q = (rsi_slow[t], rsi_fast[t])`` in Euclidean distance ``d`` (all of
  them if fewer than ``k``; at equal distance the more recent point wins), with
  weights ``w = 1 / (d + 1e-6)``::

      mlmi_value[t] = sum(w * label) / sum(w)        in [-1, 1]

  NaN while fewer than ``max(min_points, 1)`` points are usable.
* ``mlmi_signal[t] = sign(mlmi_value[t])`` if ``|mlmi_value[t]| > threshold``
  (default 0.5, the "MLMI deviation" of the prior synergy detector), else 0;
  NaN where the value is NaN. It is a state, not a one-bar event.

Parameters of :func:`compute_mlmi` (defaults in brackets): ``ma_fast`` [5],
``ma_slow`` [20], ``rsi_fast`` [5], ``rsi_slow`` [20], ``rsi_smooth`` [20],
``k`` [200], ``max_points`` [2000], ``min_points`` [1], ``label_horizon``
[None = next crossover], ``threshold`` [0.5]. Input is one close series; the
prior art fed it 30-minute Heiken-Ashi closes, which is the caller's choice.

Warm-up: the features exist from bar :func:`mlmi_warmup` (``max(rsi
periods) + rsi_smooth - 1 = 39`` with defaults); the value additionally waits
for the first completed label (two eligible crossovers, or one plus
``label_horizon`` bars), which depends on the data.

Cost: RSI smoothing is a linear recurrence solved in blocks of 64 bars
(vectorised inside a block, a short loop over blocks). The kNN is exact and
runs over chunks of 64 bars: one matrix product gives approximate squared
distances to all (at most ``max_points``) usable points; a radius taken from
every 7th point keeps ~1.45 k candidates per bar (rows where it proves too
tight take every point); candidate distances are recomputed exactly and the k
nearest chosen by a partition. Work is O(n * max_points) but with a small
constant (about 4 s for 350,000 bars at the defaults on a 2-core laptop; far
less on 30-minute data). The k chosen points are summed in point order at a
fixed width, so a value is bit-for-bit a function of bars ``<= t`` alone.
"""

from __future__ import annotations

import numpy as np

OUTPUT_NAMES: tuple[str, ...] = ("mlmi_value", "mlmi_signal")
"""Names of the arrays :func:`compute_mlmi` returns, in feature-matrix order."""

DIST_EPS = 1e-6
"""Added to the distance in the kNN weight ``1 / (d + DIST_EPS)``."""

_BLOCK = 64  # block length of the vectorised linear recurrence
_CHUNK = 64  # bars per kNN chunk
_HUGE = 1e300  # "every point" as a finite squared radius
_SUBSAMPLE = 7  # prefilter threshold from every 7th point (odd: up and down crossovers alike)


def wma(x: np.ndarray, period: int) -> np.ndarray:
    """Linearly weighted moving average (weights ``1..period``, newest heaviest)."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    out = np.full(n, np.nan)
    if period < 1:
        raise ValueError(f"period must be >= 1; got {period}")
    if n < period:
        return out
    acc = period * x[period - 1 :]
    for i in range(1, period):  # bounded loop over window positions, not bars
        acc = acc + (period - i) * x[period - 1 - i : n - i]
    out[period - 1 :] = acc / (period * (period + 1) / 2.0)
    return out


def _linear_recurrence(u: np.ndarray, a: float) -> np.ndarray:
    """``y[0] = u[0]``, ``y[i] = a * y[i-1] + u[i]`` for ``0 <= a < 1``, vectorised in blocks."""
    n = len(u)
    if n == 0 or a == 0.0:
        return np.array(u, dtype=np.float64, copy=True)
    nb = -(-n // _BLOCK)
    padded = np.zeros(nb * _BLOCK)
    padded[:n] = u
    blocks = padded.reshape(nb, _BLOCK)
    j = np.arange(_BLOCK, dtype=np.float64)
    local = a**j * np.cumsum(blocks * a ** (-j), axis=1)  # recurrence inside each block from 0
    ends = local[:, -1].tolist()
    carry = 0.0
    for b in range(1, nb):  # loop over blocks (n / 64), carrying y across block ends
        carry = a**_BLOCK * carry + ends[b - 1]
        ends[b - 1] = carry
    if nb > 1:
        local[1:] += a ** (j + 1) * np.asarray(ends[:-1])[:, None]
    return local.reshape(-1)[:n]


def rsi_wilder(close: np.ndarray, period: int) -> np.ndarray:
    """RSI with Wilder's smoothing, ``100 * G / (G + L)``; NaN before bar ``period``."""
    c = np.asarray(close, dtype=np.float64)
    n = len(c)
    out = np.full(n, np.nan)
    if period < 1:
        raise ValueError(f"period must be >= 1; got {period}")
    if n <= period:
        return out
    diff = np.diff(c)
    avgs = []
    for move in (np.maximum(diff, 0.0), np.maximum(-diff, 0.0)):
        u = move[period - 1 :] / period  # bars period..n-1
        u[0] = move[:period].mean()
        avgs.append(_linear_recurrence(u, 1.0 - 1.0 / period))
    gain, loss = avgs
    total = gain + loss
    safe = np.where(total > 0, total, 1.0)
    out[period:] = np.where(total > 0, 100.0 * gain / safe, 50.0)
    return out


def crossover_bars(fast: np.ndarray, slow: np.ndarray) -> np.ndarray:
    """Indices ``t`` where ``fast - slow`` changes sign (``> 0 >=`` prior, or ``< 0 <=`` prior)."""
    d = np.asarray(fast, dtype=np.float64) - np.asarray(slow, dtype=np.float64)
    prev, cur = d[:-1], d[1:]
    return np.flatnonzero(((cur > 0) & (prev <= 0)) | ((cur < 0) & (prev >= 0))) + 1


def training_points(
    close: np.ndarray, bars: np.ndarray, label_horizon: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points made at crossover ``bars``: (kept bars, label, label end bar), completed ones only."""
    c = np.asarray(close, dtype=np.float64)
    bars = np.asarray(bars, dtype=np.int64)
    if label_horizon is None:
        start, end = bars[:-1], bars[1:]
    else:
        if label_horizon < 1:
            raise ValueError(f"label_horizon must be >= 1 or None; got {label_horizon}")
        start = bars[bars + label_horizon < len(c)]
        end = start + label_horizon
    return start, np.sign(c[end] - c[start]), end


def _approx_d2(
    query: np.ndarray,
    shift: np.ndarray | float,
    aug: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    step: int = 1,
    scratch: list[np.ndarray] | None = None,
) -> np.ndarray:
    """``|q - p|² - shift`` to every ``step``-th point of ``lo[0]..hi[-1]-1``; NaN if unusable.

    One matrix product with ``aug`` = (4, N) rows ``-2 px, -2 py, px² + py², 1``.
    Its rounding error is far below the margin :func:`knn_vote` adds; these
    values only choose candidates, whose distances are then computed exactly.
    """
    cols = np.arange(int(lo[0]), int(hi[-1]), step)
    rows, width = len(lo), len(cols)
    if scratch is None:
        g = np.empty((rows, width))
    else:  # one buffer reused across chunks (no fresh pages)
        if scratch[0].size < rows * width:
            scratch[0] = np.empty(rows * width)
        g = scratch[0][: rows * width].reshape(rows, width)
    norm = (query * query).sum(axis=1) - shift
    qa = np.column_stack((query, np.ones(rows), norm))
    np.dot(qa, aug[:, int(lo[0]) : int(hi[-1]) : step], out=g)
    e1 = int(np.searchsorted(cols, lo[-1]))  # only edge columns can be unusable
    e2 = width - int(np.searchsorted(cols, hi[0]))
    if e1 > 0:
        left = g[:, :e1]
        left[cols[None, :e1] < lo[:, None]] = np.nan
    if e2 > 0:
        right = g[:, width - e2 :]
        right[cols[None, width - e2 :] >= hi[:, None]] = np.nan
    return g


def _threshold(sub: np.ndarray, n_usable: np.ndarray, k: int) -> np.ndarray:
    """Per row, a squared radius likely to hold a bit more than k points (inf: take all).

    ``sub`` holds the squared distances to every ``_SUBSAMPLE``-th point.
    """
    j = -(-14 * k // (10 * _SUBSAMPLE)) + 2  # rank in the subsample: ~1.4 k / 7 + 2
    if j >= sub.shape[1]:
        return np.full(len(sub), np.inf)
    est = np.partition(sub.astype(np.float32), j, axis=1)[:, j].astype(np.float64)
    return np.where(np.isnan(est) | (n_usable <= k), np.inf, est)


def _slots(
    mask: np.ndarray, width: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Packing each row's True entries to the left: (flat source, row, flat target, width)."""
    flat = np.flatnonzero(mask)
    rows = flat // mask.shape[1]
    counts = np.bincount(rows, minlength=len(mask))
    size = max(int(counts.max(initial=0)), 1) if width is None else width
    start = np.cumsum(counts) - counts
    target = np.arange(len(flat)) + np.repeat(np.arange(len(mask)) * size - start, counts)
    return flat, rows, target, size


def _candidates(
    query: np.ndarray, px: np.ndarray, py: np.ndarray, mask: np.ndarray, u0: int
) -> tuple[np.ndarray, np.ndarray]:
    """Masked points packed per row in point order: exact d² and point index (NaN / -1)."""
    n_rows, width = mask.shape
    src, row, dst, size = _slots(mask)
    point = u0 + src - row * width
    dx = np.ascontiguousarray(query[:, 0])[row] - px[point]
    dy = np.ascontiguousarray(query[:, 1])[row] - py[point]
    dist2 = np.full(n_rows * size, np.nan)
    dist2[dst] = dx * dx + dy * dy
    index = np.full(n_rows * size, -1, dtype=np.int64)
    index[dst] = point
    return dist2.reshape(n_rows, size), index.reshape(n_rows, size)


def _nearest_exact(dist2: np.ndarray, k: int) -> np.ndarray:
    """Per row, mask of the k smallest non-NaN entries; on ties the rightmost (most recent) win."""
    tau = np.partition(dist2, k - 1, axis=1)[:, k - 1]
    tau[np.isnan(tau)] = np.inf  # fewer than k entries: take them all
    less = dist2 < tau[:, None]
    eq = dist2 == tau[:, None]
    from_right = np.cumsum(eq[:, ::-1], axis=1)[:, ::-1]
    need = k - np.count_nonzero(less, axis=1)
    return less | (eq & (from_right <= need[:, None]))


def _nearest(dist2: np.ndarray, k: int) -> np.ndarray:
    """:func:`_nearest_exact` via a float32 partition (rounding is monotone) where that is exact."""
    if dist2.shape[1] <= k:
        return ~np.isnan(dist2)
    d32 = dist2.astype(np.float32)
    t32 = np.partition(d32, k - 1, axis=1)[:, k - 1]
    t32[np.isnan(t32)] = np.inf
    sel = d32 <= t32[:, None]
    over = np.count_nonzero(sel, axis=1) > k  # equal float32 values at the k-th: settle in f64
    if over.any():
        sel[over] = _nearest_exact(dist2[over], k)
    return sel


def _vote(dist2: np.ndarray, index: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Weighted vote of each row's k nearest candidates."""
    n_rows = len(dist2)
    src, _, dst, _ = _slots(_nearest(dist2, k), k)  # the k nearest, in point order
    w_flat = np.zeros(n_rows * k)
    w_flat[dst] = 1.0 / (np.sqrt(dist2.ravel()[src]) + DIST_EPS)
    y_flat = np.zeros(n_rows * k)
    y_flat[dst] = labels[index.ravel()[src]]
    w, y = w_flat.reshape(n_rows, k), y_flat.reshape(n_rows, k)
    # fixed width k, point order: a row's sums depend on that row's k points only
    return (w * y).sum(axis=1) / w.sum(axis=1)


def _chunk_candidates(
    q: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    points: tuple[np.ndarray, np.ndarray, np.ndarray],
    k: int,
    margin: float,
    scratch: list[np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Candidates per row that surely include its k nearest usable points (and all ties).

    ``points`` is ``(px, py, aug)`` with ``aug`` as in :func:`_approx_d2`.
    """
    px, py, aug = points
    tau = _threshold(_approx_d2(q, 0.0, aug, lo, hi, _SUBSAMPLE), hi - lo, k)
    for attempt in range(3):  # estimate; if too tight (rare) 4x the area; then all
        shift = np.minimum(tau + margin, _HUGE)  # finite: no inf * 0 inside the product
        g = _approx_d2(q, shift, aug, lo, hi, scratch=scratch)
        dist2, index = _candidates(q, px, py, g <= 0.0, int(lo[0]))
        have = np.count_nonzero(dist2 <= tau[:, None], axis=1)
        short = have < np.minimum(k, hi - lo)  # the k-th nearest may lie outside: redo
        if not short.any():
            break
        tau[short] = 4.0 * tau[short] if attempt == 0 else np.inf
    return dist2, index


def knn_vote(
    query: np.ndarray,
    points: np.ndarray,
    labels: np.ndarray,
    usable: np.ndarray,
    *,
    k: int = 200,
    max_points: int = 2000,
    min_points: int = 1,
) -> np.ndarray:
    """Per bar, the weighted kNN vote of the last ``max_points`` of the first ``usable[t]`` points.

    ``query`` is (n, 2) (NaN rows give NaN), ``points`` (N, 2) and ``labels``
    (N,) in completion order, ``usable`` (n,) non-decreasing counts.
    """
    if k < 1 or max_points < 1:
        raise ValueError(f"need k >= 1 and max_points >= 1; got {k=}, {max_points=}")
    query = np.asarray(query, dtype=np.float64)
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    px, py = np.ascontiguousarray(points[:, 0]), np.ascontiguousarray(points[:, 1])
    aug = np.vstack((-2.0 * px, -2.0 * py, px * px + py * py, np.ones(len(px))))
    labels = np.asarray(labels, dtype=np.float64)
    hi = np.asarray(usable, dtype=np.int64)
    lo = np.maximum(hi - max_points, 0)
    out = np.full(len(query), np.nan)
    todo = np.flatnonzero(~np.isnan(query).any(axis=1) & (hi - lo >= max(min_points, 1)))
    if todo.size == 0:
        return out
    reach = np.nanmax(np.abs(query[todo])) + np.max(np.abs(points))
    # margin >> the matrix product's rounding; it only sizes candidate sets, never a value
    margin = 1e-9 * (1.0 + 2.0 * reach * reach)
    scratch, pts = [np.empty(0)], (px, py, aug)
    for s in range(0, len(todo), _CHUNK):  # chunks of bars; bounded work per bar
        rows = todo[s : s + _CHUNK]
        dist2, index = _chunk_candidates(query[rows], lo[rows], hi[rows], pts, k, margin, scratch)
        out[rows] = _vote(dist2, index, labels, k)
    return out


def mlmi_warmup(rsi_fast: int = 5, rsi_slow: int = 20, rsi_smooth: int = 20) -> int:
    """First bar at which both kNN features exist (the value may start later; see module doc)."""
    return max(rsi_fast, rsi_slow) + rsi_smooth - 1


def compute_mlmi(
    close: np.ndarray,
    *,
    ma_fast: int = 5,
    ma_slow: int = 20,
    rsi_fast: int = 5,
    rsi_slow: int = 20,
    rsi_smooth: int = 20,
    k: int = 200,
    max_points: int = 2000,
    min_points: int = 1,
    label_horizon: int | None = None,
    threshold: float = 0.5,
    rows_from: int = 0,
) -> dict[str, np.ndarray]:
    """MLMI features ``mlmi_value`` and ``mlmi_signal`` (see module doc).

    ``rows_from``: vote at bars ``rows_from ..`` only (earlier rows NaN) — the same values
    bit for bit (a vote depends on its own bar's query and points only), at the cost of
    the features and points over every bar (linear) plus the votes asked for.
    """
    c = np.asarray(close, dtype=np.float64)
    query = np.column_stack(
        (wma(rsi_wilder(c, rsi_slow), rsi_smooth), wma(rsi_wilder(c, rsi_fast), rsi_smooth))
    )
    cross = crossover_bars(wma(c, ma_fast), wma(c, ma_slow))
    cross = cross[~np.isnan(query[cross]).any(axis=1)]
    start, label, end = training_points(c, cross, label_horizon)
    usable = np.searchsorted(end, np.arange(len(c)), side="right")
    value = np.full(len(c), np.nan)
    value[rows_from:] = knn_vote(query[rows_from:], query[start], label, usable[rows_from:],
                                 k=k, max_points=max_points, min_points=min_points)
    signal = np.where(np.abs(value) > threshold, np.sign(value), 0.0)
    return {"mlmi_value": value, "mlmi_signal": np.where(np.isnan(value), np.nan, signal)}
