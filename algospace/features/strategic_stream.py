"""The 30-minute features of the newest bars only, equal to the batch row for row.

:func:`algospace.features.build.strategic_features` computes every 30-minute bar; the live
stream needs only the bars closed since its last update. :func:`strategic_rows` gives those
rows with the batch's own functions and arithmetic, each on the bars that fix them:

* bounded look-backs on a tail — NW-RQK (kernel ``lookback`` + 2 bars: the estimate, its
  previous value for the slope and the crossing), LVN (its profile ``window``),
  ``volatility_30`` (31 bars), ``volume_skew`` (48 bars), the time of day (the bar itself);
* MMD with its chunk's prefix sums carried (:class:`MMDStream`: a new bar adds one row
  of pair kernels and re-sums the last ``dmax + 1`` rows, in the batch's order); without
  the carried sums, from the start of the 4096-bar chunk holding the first new bar (its
  sums run per chunk, :func:`algospace.features.mmd.mmd_squared`);
* MLMI's kNN vote for the new bars only, with its recurrences carried
  (:class:`algospace.features.mlmi_stream.MLMIStream`); without them, its inputs (RSI
  recurrences, crossovers, the labelled points) are computed over every bar.

Equal to the batch on every column at every tested cut point
(``tests/test_stream_incremental.py``).
"""

from __future__ import annotations

from typing import cast

import numpy as np

from algospace.features.basic import hour_cos, hour_sin
from algospace.features.build import STRATEGIC_FEATURES, FeatureConfig
from algospace.features.lvn import lvn_features
from algospace.features.mlmi import compute_mlmi
from algospace.features.mlmi_stream import MLMIStream
from algospace.features.mmd import (
    _CHUNK,
    DEFAULT_SCALES,
    chunk_mmd2,
    mmd_squared,
    pair_kernels,
    prefix_cols,
    prefix_rows,
    standardized_returns,
    volatility_30,
    volume_skew,
)
from algospace.features.nwrqk import compute_nwrqk

STRATEGIC_TABLE: tuple[str, ...] = (*STRATEGIC_FEATURES, "nwrqk_signal")
"""Columns of :func:`strategic_rows`: the strategic features, then the NW-RQK event."""
NWRQK_LOOKBACK = 100
"""``compute_nwrqk``'s kernel look-back (its default, as the builder uses it)."""
VOLATILITY_WINDOW = 30
"""``volatility_30``'s returns."""
SKEW_WINDOW = 48
"""``volume_skew``'s window (``mmd_features``' default)."""
_NS_PER_MIN = 60_000_000_000


def _tail(first: int, bars: int) -> int:
    """Start of a tail whose rows from ``first`` on see ``bars`` bars before them."""
    return max(0, first - bars)


def strategic_rows(open_ns: np.ndarray, ohlcv: np.ndarray, minutes: int, first: int,
                   cfg: FeatureConfig, mmd: MMDStream | None = None,
                   mlmi: MLMIStream | None = None) -> np.ndarray:
    """Rows ``first ..`` of the strategic feature table of the 30-minute bars with open
    times ``open_ns`` (int64 ns) and rows ``open, high, low, close, volume``; columns
    :data:`STRATEGIC_TABLE`, float64. ``mmd``, ``mlmi``: the MMD sums and MLMI recurrences
    carried from the last call (None: computed from the chunk's start / every bar)."""
    h, low, c, v = (np.ascontiguousarray(ohlcv[:, k], np.float64) for k in (1, 2, 3, 4))
    if mlmi is not None:
        cols = mlmi.rows(c, first)
    else:
        cols = {k: a[first:] for k, a in compute_mlmi(
            c, k=cfg.mlmi_k, threshold=cfg.mlmi_threshold, rows_from=first).items()}
    t = _tail(first, NWRQK_LOOKBACK + 2)
    nw = compute_nwrqk(c[t:], h=cfg.nwrqk_h, r=cfg.nwrqk_r)
    cols.update({k: a[first - t:] for k, a in nw.items()})
    t = _tail(first, cfg.lvn_window - 1)
    lvn = lvn_features(h[t:], low[t:], c[t:], v[t:], window=cfg.lvn_window)
    cols.update({k: a[first - t:] for k, a in lvn.items()})
    close_times = (np.asarray(open_ns[first:], np.int64) + minutes * _NS_PER_MIN
                   ).astype("datetime64[ns]")
    cols["hour_sin"], cols["hour_cos"] = hour_sin(close_times), hour_cos(close_times)
    raw = mmd.rows(c, first) if mmd is not None else mmd_squared(c, rows_from=first)[first:]
    cols.update({f"mmd_{j + 1}": np.tanh(raw[:, j]) for j in range(raw.shape[1])})
    t = _tail(first, VOLATILITY_WINDOW)
    cols["volatility_30"] = volatility_30(c[t:])[first - t:]
    t = _tail(first, SKEW_WINDOW - 1)
    cols["volume_skew"] = volume_skew(h[t:], low[t:], c[t:], v[t:], SKEW_WINDOW)[first - t:]
    return np.column_stack([cols[k] for k in STRATEGIC_TABLE]).reshape(-1, len(STRATEGIC_TABLE))


class _Prefix:
    """``R[rows, col]`` of :func:`algospace.features.mmd.chunk_mmd2` computed from the
    row prefix ``A`` only for the rows asked (each row's column sum is row-local)."""

    def __init__(self, a: np.ndarray) -> None:
        self.a = a

    def __getitem__(self, key: tuple[np.ndarray, int]) -> np.ndarray:
        rows, col = key
        return prefix_cols(self.a[np.asarray(rows)])[:, col]


class MMDStream:
    """MMD² of :func:`algospace.features.mmd.mmd_squared` (default settings) one new bar at
    a time, carrying the prefix sums of the current 4096-bar chunk: a new bar appends one
    row of pair kernels by later point and re-sums the last ``dmax + 1`` rows by earlier
    point (whose pairs the bar completes), in the batch's order — O(dmax²) per bar."""

    def __init__(self) -> None:
        self.scales = DEFAULT_SCALES
        self.k, self.lag, self.bandwidth = 192, 48, 1.0
        self.total = max(m + n for m, n in self.scales)
        self.dmax = self.total - 1
        self.warm = self.k + self.lag - 1
        self.first = self.warm + min(m + n for m, n in self.scales)
        self.chunk = -1  # start row of the chunk held (-1: none)
        self.seg_start = 0
        self.n_rows = 0  # bars seen
        self.z = np.empty(0)  # z of the segment's bars
        self._later = np.zeros((1, self.total))  # row prefixes by later point (room to grow)
        self._earlier = np.zeros((1, self.total))  # ... by earlier point

    @property
    def later(self) -> np.ndarray:
        return self._later[:len(self.z) + 1]

    @property
    def earlier(self) -> np.ndarray:
        return self._earlier[:len(self.z) + 1]

    def rows(self, close: np.ndarray, first: int) -> np.ndarray:
        """MMD² of bars ``first .. len(close)-1`` (one column per scale, NaN in warm-up)."""
        n = len(close)
        if first != self.n_rows or n - first != 1:  # bulk, or not where the state stands
            out = mmd_squared(close, rows_from=first)[first:]
            self._hold(close, n)
            return out
        out = np.full((1, len(self.scales)), np.nan)
        t = n - 1
        if t >= self.first:
            chunk = self.first + (t - self.first) // _CHUNK * _CHUNK
            if chunk != self.chunk:
                self._start(close, chunk, t)
            self._append(close, t)
            r = np.array([t - self.seg_start])
            for j, (m, ref) in enumerate(self.scales):
                if t >= self.warm + m + ref:
                    # _Prefix gives the ``R[rows, col]`` lookups chunk_mmd2 makes, row-locally
                    later, earlier = (cast(np.ndarray, _Prefix(a))
                                      for a in (self.later, self.earlier))
                    mmd2 = chunk_mmd2(later, earlier, r, m, ref)
                    out[0, j] = np.maximum(mmd2, 0.0)[0]
        self.n_rows = n
        return out

    def _z(self, close: np.ndarray, lo: int, hi: int) -> np.ndarray:
        """z of bars ``lo .. hi-1`` (exact: computed from ``k + lag`` bars before ``lo``)."""
        z0 = max(lo - self.k - self.lag, 0)
        return standardized_returns(close[z0:hi], self.k, self.lag)[lo - z0:]

    def _start(self, close: np.ndarray, chunk: int, stop: int) -> None:
        """Hold ``chunk``'s sums over its segment's bars before ``stop``."""
        self.chunk, self.seg_start = chunk, max(chunk - self.total + 1, 0)
        self.z = self._z(close, self.seg_start, stop)
        later, earlier = pair_kernels(self.z, self.dmax, self.bandwidth)
        self._later, self._earlier = (self._room(prefix_rows(k)) for k in (later, earlier))

    def _room(self, prefix: np.ndarray) -> np.ndarray:
        """``prefix`` in an array with room for the rest of the chunk's rows."""
        out = np.zeros((max(len(prefix), _CHUNK + self.total + 1), self.total))
        out[:len(prefix)] = prefix
        return out

    def _append(self, close: np.ndarray, t: int) -> None:
        """Add bar ``t`` (the next one) to the held segment's sums.

        Its kernel row by later point reads the ``dmax`` bars before it; the rows by earlier
        point of the last ``dmax + 1`` bars gain a pair each, so their prefixes are summed
        again from the last row that cannot change.
        """
        p = len(self.z)  # the new bar's row in the segment
        self.z = np.concatenate([self.z, self._z(close, t, t + 1)])
        j0 = max(p - self.dmax, 0)
        later, earlier = pair_kernels(self.z[j0:], self.dmax, self.bandwidth)
        self._later[p + 1] = prefix_rows(later[-1:], self._later[p])[1]
        self._earlier[j0 + 1:p + 2] = prefix_rows(earlier, self._earlier[j0])[1:]

    def _hold(self, close: np.ndarray, n: int) -> None:
        """Hold the sums of the chunk of bar ``n-1`` over its bars so far."""
        self.n_rows = n
        if n - 1 < self.first:
            self.chunk = -1
            return
        chunk = self.first + (n - 1 - self.first) // _CHUNK * _CHUNK
        self._start(close, chunk, n)

    def state(self) -> dict[str, np.ndarray]:
        """The carried sums as arrays (see :meth:`load_state`)."""
        return {"mmd_z": self.z, "mmd_later": self.later, "mmd_earlier": self.earlier,
                "mmd_at": np.array([self.chunk, self.seg_start, self.n_rows], np.int64)}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Continue from :meth:`state`'s arrays."""
        self.z = np.array(state["mmd_z"], np.float64)
        self._later, self._earlier = (self._room(np.asarray(state[k], np.float64))
                                      for k in ("mmd_later", "mmd_earlier"))
        self.chunk, self.seg_start, self.n_rows = (int(v) for v in state["mmd_at"])
