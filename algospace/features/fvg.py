"""Fair Value Gap (FVG): the one definition used everywhere in AlgoSpace.

Bars ``t = 0..n-1`` with open ``o``, high ``H``, low ``L``, close ``c``;
``body[t] = |c[t] - o[t]|``.

Detection (at the close of bar ``t``, from bars ``t-2, t-1, t``):

* bullish gap if ``L[t] > H[t-2]``; zone ``[lo, hi] = [H[t-2], L[t]]``;
* bearish gap if ``H[t] < L[t-2]``; zone ``[lo, hi] = [H[t], L[t-2]]``;
* body filter (both sides): the middle candle must be large,
  ``body[t-1] > body_multiplier * mean(body[t-11 .. t-2])`` (the mean body of
  the ``body_window = 10`` bars before it). ``body_multiplier = 0`` disables
  the filter entirely (then gaps can appear from ``t = 2``).

A bar can hold at most one gap (both sides at once is impossible).

Lifecycle. A gap created at bar ``g`` is *active* at bar ``s`` (after bar
``s``'s update) from ``s = g`` until the first of:

* full fill: a later bar reaches its far edge — bullish ``L[s] <= lo``,
  bearish ``H[s] >= hi`` — the gap is inactive from that bar on;
* expiry: at age ``s - g = max_age`` (default 50) it is dropped, so it is
  active at ages ``0 .. max_age-1``;
* eviction: only the ``max_gaps`` (default 10) most recent gaps of each side
  are tracked; the ``k``-th gap of a side is dropped at the bar where the
  ``(k + max_gaps)``-th gap of that side is created.

The update at bar ``s`` runs in this order: (1) expiry, (2) fills and entries
by bar ``s``'s range, (3) detection of a new gap at ``s`` and eviction.

Mitigation. A bar ``s > g`` *enters* a bullish gap when ``L[s] < hi``, a
bearish one when ``H[s] > lo`` (touching the edge exactly is not entering).
Each gap emits at most one mitigation event: at the first bar that enters it
while it is still tracked (not expired, not evicted before that bar), and only
if that same bar does not fully fill it (entering and filling in one bar is a
fill, not a mitigation). ``fvg_mitigation[s] = (+1 if some bullish gap has its
event at s) + (-1 if some bearish gap has its event at s)``, so simultaneous
bullish and bearish events cancel to 0.

Outputs (float64 arrays of length ``n``, from :func:`compute_fvg`):

* ``fvg_bullish_active`` / ``fvg_bearish_active``: 1.0 if any gap of that
  side is active after bar ``s``'s update, else 0.0.
* ``fvg_nearest_level``: for the active gap (either side) whose midpoint
  ``(lo + hi) / 2`` is nearest to ``c[s]``, ``d = 100 * (mid - c[s]) / c[s]``
  (positive when the gap is above the close), clipped to [-2, 2] and divided
  by 2, so in [-1, 1]; 0 if no gap is active. Equal distances: the older gap.
* ``fvg_age``: ``(s - g) / max_age`` for the most recently created active gap,
  in [0, 1); 0 if none (``fvg_*_active`` tells "none" from "age 0").
* ``fvg_mitigation``: in {-1, 0, +1}, as above.

Warm-up: all outputs are finite from bar 0 (0 = "no gap seen"); a gap can
first be detected at bar :func:`fvg_warmup` (``body_window + 1`` with the
filter, 2 without), so rows before it carry no information.

Cost: vectorised over gaps (each gap looks at most ``max_age`` bars ahead for
its fill and entry) and over (gap, bar) pairs of active lifetimes; no per-bar
Python loop. O(n * body_window + gaps * max_age).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

OUTPUT_NAMES: tuple[str, ...] = (
    "fvg_bullish_active",
    "fvg_bearish_active",
    "fvg_nearest_level",
    "fvg_age",
    "fvg_mitigation",
)
"""Names of the arrays :func:`compute_fvg` returns, in feature-matrix order."""

NEAREST_CLIP_PCT = 2.0
"""``fvg_nearest_level`` clips the % distance to ±this, then divides by it."""


@dataclass(frozen=True)
class _Gaps:
    """The gaps of one side: creation bar, zone, end of activity, mitigation bar (-1 if none)."""

    start: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    end: np.ndarray
    mitigation: np.ndarray


def fvg_warmup(body_multiplier: float = 1.5, body_window: int = 10) -> int:
    """First bar index at which a gap can be detected."""
    return body_window + 1 if body_multiplier > 0 else 2


def _large_middle(
    open_: np.ndarray, close: np.ndarray, body_multiplier: float, body_window: int
) -> np.ndarray:
    """Boolean per detection bar ``t = 2..n-1``: does middle candle ``t-1`` pass the body filter?"""
    n = len(close)
    if body_multiplier <= 0:
        return np.ones(max(n - 2, 0), dtype=bool)
    body = np.abs(close - open_)
    ok = np.zeros(max(n - 2, 0), dtype=bool)
    if n - 1 > body_window:  # middle bars m = body_window .. n-2
        prev_mean = sliding_window_view(body[: n - 2], body_window).mean(axis=1)
        m = np.arange(body_window, n - 1)
        ok[m - 1] = body[m] > body_multiplier * prev_mean
    return ok


def _first_true(mask: np.ndarray, none: int) -> np.ndarray:
    """Per row, the first column index where ``mask`` is True, or ``none``."""
    if mask.shape[1] == 0:
        return np.full(mask.shape[0], none, dtype=np.int64)
    first = np.argmax(mask, axis=1)
    return np.where(mask[np.arange(mask.shape[0]), first], first, none)


def _side(
    start: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    far: np.ndarray,
    bullish: bool,
    max_age: int,
    max_gaps: int,
) -> _Gaps:
    """Lifetimes and mitigation bars of one side's gaps; ``far`` is low (bullish) or high."""
    n = len(far)
    pad = np.full(max_age, np.inf if bullish else -np.inf)
    ahead = sliding_window_view(np.concatenate((far, pad)), max_age)[start][:, 1:]
    if bullish:
        fill = _first_true(ahead <= lo[:, None], max_age - 1) + 1
        enter = _first_true(ahead < hi[:, None], max_age - 1) + 1
    else:
        fill = _first_true(ahead >= hi[:, None], max_age - 1) + 1
        enter = _first_true(ahead > lo[:, None], max_age - 1) + 1
    evict = np.full(len(start), n, dtype=np.int64)
    evict[: max(len(start) - max_gaps, 0)] = start[max_gaps:]
    end = np.minimum(np.minimum(start + fill, evict), n)
    mit_bar = start + enter
    has_mit = (enter < fill) & (mit_bar <= evict) & (mit_bar < n)
    return _Gaps(start, lo, hi, end, np.where(has_mit, mit_bar, -1))


def _detect(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    body_multiplier: float,
    body_window: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Creation bars of bullish and bearish gaps."""
    big = _large_middle(open_, close, body_multiplier, body_window)
    bull = np.flatnonzero((low[2:] > high[:-2]) & big) + 2
    bear = np.flatnonzero((high[2:] < low[:-2]) & big) + 2
    return bull, bear


def _active_count(gaps: _Gaps, n: int) -> np.ndarray:
    """Number of active gaps after each bar's update."""
    delta = np.bincount(gaps.start, minlength=n + 1) - np.bincount(gaps.end, minlength=n + 1)
    return np.cumsum(delta[:n])


def _nearest_and_age(
    gaps: list[_Gaps], close: np.ndarray, max_age: int
) -> tuple[np.ndarray, np.ndarray]:
    """``fvg_nearest_level`` and ``fvg_age`` from every (gap, active bar) pair."""
    n = len(close)
    start = np.concatenate([g.start for g in gaps])
    end = np.concatenate([g.end for g in gaps])
    mid = np.concatenate([(g.lo + g.hi) / 2.0 for g in gaps])
    life = end - start
    gap_of = np.repeat(np.arange(len(start)), life)
    bar = start[gap_of] + np.arange(len(gap_of)) - np.repeat(np.cumsum(life) - life, life)
    dist = 100.0 * (mid[gap_of] - close[bar]) / close[bar]
    order = np.lexsort((start[gap_of], np.abs(dist), bar))  # per bar: nearest, then oldest
    first = order[np.r_[True, bar[order][1:] != bar[order][:-1]]] if order.size else order
    nearest = np.zeros(n)
    nearest[bar[first]] = np.clip(dist[first], -NEAREST_CLIP_PCT, NEAREST_CLIP_PCT)
    latest = np.full(n, -1, dtype=np.int64)
    np.maximum.at(latest, bar, start[gap_of])
    age = np.where(latest >= 0, (np.arange(n) - latest) / max_age, 0.0)
    return nearest / NEAREST_CLIP_PCT, age


def compute_fvg(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    *,
    body_multiplier: float = 1.5,
    body_window: int = 10,
    max_age: int = 50,
    max_gaps: int = 10,
) -> dict[str, np.ndarray]:
    """FVG features (see module doc) as a dict keyed by :data:`OUTPUT_NAMES`."""
    if body_multiplier < 0 or body_window < 1 or max_age < 1 or max_gaps < 1:
        raise ValueError(
            f"need body_multiplier >= 0, body_window >= 1, max_age >= 1, max_gaps >= 1; got "
            f"{body_multiplier=}, {body_window=}, {max_age=}, {max_gaps=}"
        )
    o, h, lw, c = (np.asarray(a, dtype=np.float64) for a in (open_, high, low, close))
    n = len(c)
    bull_at, bear_at = _detect(o, h, lw, c, body_multiplier, body_window)
    bull = _side(bull_at, h[bull_at - 2], lw[bull_at], lw, True, max_age, max_gaps)
    bear = _side(bear_at, h[bear_at], lw[bear_at - 2], h, False, max_age, max_gaps)
    nearest, age = _nearest_and_age([bull, bear], c, max_age)
    mitigation = np.zeros(n)
    for g, sign in ((bull, 1.0), (bear, -1.0)):
        hits = g.mitigation[g.mitigation >= 0]
        mitigation += sign * (np.bincount(hits, minlength=n)[:n] > 0)
    return {
        "fvg_bullish_active": (_active_count(bull, n) > 0).astype(np.float64),
        "fvg_bearish_active": (_active_count(bear, n) > 0).astype(np.float64),
        "fvg_nearest_level": nearest,
        "fvg_age": age,
        "fvg_mitigation": mitigation,
    }
