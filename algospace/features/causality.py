"""Look-ahead checks for indicators, reusable by every indicator's tests.

An indicator is *causal* when its value at bar ``t`` depends on bars ``0..t``
only. :func:`assert_causal` checks this empirically and exactly: it computes
the indicator on a bar series, then, for each chosen ``t``, replaces every bar
after ``t`` with different random (but OHLC-consistent) bars, recomputes, and
requires every output at indices ``<= t`` to be bit-for-bit unchanged (NaN
equal to NaN). Any use of a later bar — a centred window, a label that peeks at
``close[t + 1]``, a normalisation fitted on the whole series — shows up as a
changed value.

:func:`random_ohlcv` makes the random-walk bars used both as test input and as
the replacement future.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

OHLCV: tuple[str, ...] = ("open", "high", "low", "close", "volume")
"""Bar keys that :func:`assert_causal` rewrites after ``t``; other keys are left as they are."""

Outputs = Mapping[str, np.ndarray] | np.ndarray | Sequence[np.ndarray]


def random_ohlcv(
    n: int, rng: np.random.Generator, *, start: float = 100.0, sigma: float = 0.002
) -> dict[str, np.ndarray]:
    """Random-walk OHLCV bars: log-normal closes, open near the last close, high/low enclosing."""
    close = start * np.exp(np.cumsum(rng.normal(0.0, sigma, n)))
    prev = np.concatenate(([start], close[:-1]))
    open_ = prev * np.exp(rng.normal(0.0, sigma / 4.0, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, sigma / 2.0, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, sigma / 2.0, n)))
    volume = np.round(rng.lognormal(7.0, 0.5, n))
    return {"open": open_, "high": high, "low": low, "close": close, "volume": volume}


def _as_named(outputs: Outputs) -> dict[str, np.ndarray]:
    """Outputs as a name -> array dict (a bare array is named ``"0"``, a sequence by position)."""
    if isinstance(outputs, Mapping):
        return {str(k): np.asarray(v) for k, v in outputs.items()}
    if isinstance(outputs, np.ndarray):
        return {"0": outputs}
    return {str(i): np.asarray(v) for i, v in enumerate(outputs)}


def _future_bars(
    bars: Mapping[str, np.ndarray], t: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """A copy of ``bars`` whose bars after ``t`` are replaced by a fresh, wilder random walk."""
    close = np.asarray(bars["close"], dtype=np.float64)
    log_ret = np.diff(np.log(close[: t + 1]))
    sigma = 3.0 * float(np.std(log_ret)) if log_ret.size > 1 else 0.0
    sigma = sigma if sigma > 0.0 else 0.01
    fresh = random_ohlcv(len(close) - t - 1, rng, start=float(close[t]), sigma=sigma)
    out = {k: np.array(v, copy=True) for k, v in bars.items()}
    for key in OHLCV:
        if key in out:
            out[key][t + 1 :] = fresh[key]
    return out


def assert_causal(
    fn: Callable[[dict[str, np.ndarray]], Outputs],
    bars_dict: Mapping[str, np.ndarray],
    t_values: Iterable[int],
    rng: np.random.Generator,
) -> None:
    """Assert that ``fn``'s outputs at indices ``<= t`` ignore every bar after ``t``.

    ``fn`` takes a dict of bar arrays (keys as in ``bars_dict``, e.g. ``open``,
    ``high``, ``low``, ``close``, ``volume``, all of one length ``n``) and
    returns a dict of arrays, one array, or a sequence of arrays, each with
    ``n`` rows. ``fn`` is first run on (a copy of) ``bars_dict``; then, for
    each ``t`` in ``t_values`` (``0 <= t < n - 1``), the OHLCV keys present are
    overwritten after ``t`` by a new random walk starting at ``close[t]``
    (volatility 3x the series', so fills, crossovers and turns differ), ``fn``
    is run again, and rows ``0..t`` of every output must be identical: exact
    equality, NaN equal to NaN. Raises ``AssertionError`` naming the output,
    ``t`` and the first changed index.
    """
    base = _as_named(fn({k: np.array(v, copy=True) for k, v in bars_dict.items()}))
    n = len(np.asarray(bars_dict["close"]))
    for name, arr in base.items():
        assert arr.shape[:1] == (n,), f"output {name!r} has {arr.shape[:1]} rows, bars have {n}"
    for t in t_values:
        if not 0 <= t < n - 1:
            raise ValueError(f"t={t} must satisfy 0 <= t < n - 1 = {n - 1}")
        other = _as_named(fn(_future_bars(bars_dict, int(t), rng)))
        assert other.keys() == base.keys(), f"output names changed: {sorted(other)}"
        for name, arr in base.items():
            _assert_prefix_equal(name, t, arr, other[name])


def _assert_prefix_equal(name: str, t: int, expected: np.ndarray, actual: Any) -> None:
    """Rows ``0..t`` of two arrays must be identical (NaN == NaN)."""
    a, b = expected[: t + 1], np.asarray(actual)[: t + 1]
    assert a.shape == b.shape, f"output {name!r} changed shape: {a.shape} -> {b.shape}"
    if np.array_equal(a, b, equal_nan=np.issubdtype(a.dtype, np.inexact)):
        return
    same = (a == b) | (np.isnan(a) & np.isnan(b)) if np.issubdtype(a.dtype, np.inexact) else a == b
    rows = np.flatnonzero(~same.reshape(len(a), -1).all(axis=1))
    i = int(rows[0]) if rows.size else -1
    raise AssertionError(
        f"look-ahead in output {name!r}: changing bars after t={t} changed row {i} "
        f"({a[i]!r} -> {b[i]!r}); {rows.size} of rows 0..{t} differ"
    )
