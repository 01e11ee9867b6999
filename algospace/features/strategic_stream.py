"""The 30-minute features of the newest bars only, equal to the batch row for row.

:func:`algospace.features.build.strategic_features` computes every 30-minute bar; the live
stream needs only the bars closed since its last update. :func:`strategic_rows` gives those
rows with the batch's own functions and arithmetic, each on the bars that fix them:

* bounded look-backs on a tail — NW-RQK (kernel ``lookback`` + 2 bars: the estimate, its
  previous value for the slope and the crossing), LVN (its profile ``window``),
  ``volatility_30`` (31 bars), ``volume_skew`` (48 bars), the time of day (the bar itself);
* MMD from the start of the 4096-bar chunk holding the first new bar (its sums run per
  chunk, :func:`algospace.features.mmd.mmd_squared`): bounded, at most one chunk;
* MLMI's kNN vote for the new bars only; its inputs (RSI recurrences, crossovers, the
  labelled points) are still computed over every bar, in linear numpy time.

Equal to the batch on every column at every tested cut point
(``tests/test_stream_incremental.py``).
"""

from __future__ import annotations

import numpy as np

from algospace.features.basic import hour_cos, hour_sin
from algospace.features.build import STRATEGIC_FEATURES, FeatureConfig
from algospace.features.lvn import lvn_features
from algospace.features.mlmi import compute_mlmi
from algospace.features.mmd import mmd_squared, volatility_30, volume_skew
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
                   cfg: FeatureConfig) -> np.ndarray:
    """Rows ``first ..`` of the strategic feature table of the 30-minute bars with open
    times ``open_ns`` (int64 ns) and rows ``open, high, low, close, volume``; columns
    :data:`STRATEGIC_TABLE`, float64."""
    h, low, c, v = (np.ascontiguousarray(ohlcv[:, k], np.float64) for k in (1, 2, 3, 4))
    cols = {k: a[first:] for k, a in compute_mlmi(c, k=cfg.mlmi_k, threshold=cfg.mlmi_threshold,
                                                  rows_from=first).items()}
    t = _tail(first, NWRQK_LOOKBACK + 2)
    nw = compute_nwrqk(c[t:], h=cfg.nwrqk_h, r=cfg.nwrqk_r)
    cols.update({k: a[first - t:] for k, a in nw.items()})
    t = _tail(first, cfg.lvn_window - 1)
    lvn = lvn_features(h[t:], low[t:], c[t:], v[t:], window=cfg.lvn_window)
    cols.update({k: a[first - t:] for k, a in lvn.items()})
    close_times = (np.asarray(open_ns[first:], np.int64) + minutes * _NS_PER_MIN
                   ).astype("datetime64[ns]")
    cols["hour_sin"], cols["hour_cos"] = hour_sin(close_times), hour_cos(close_times)
    raw = mmd_squared(c, rows_from=first)[first:]
    cols.update({f"mmd_{j + 1}": np.tanh(raw[:, j]) for j in range(raw.shape[1])})
    t = _tail(first, VOLATILITY_WINDOW)
    cols["volatility_30"] = volatility_30(c[t:])[first - t:]
    t = _tail(first, SKEW_WINDOW - 1)
    cols["volume_skew"] = volume_skew(h[t:], low[t:], c[t:], v[t:], SKEW_WINDOW)[first - t:]
    return np.column_stack([cols[k] for k in STRATEGIC_TABLE]).reshape(-1, len(STRATEGIC_TABLE))
