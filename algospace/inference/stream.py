"""Bars in, one at a time; the env's arrays out, computed from the past only.

:class:`MarketStream` is the decision engine's market data. It takes 5-minute
bars in time order, forms the 30-minute bars the moment they close, and
recomputes the features, returns, synergy state and regime latents with the
**same functions** the batch pipeline uses, on the bars received so far —
nothing later exists when row ``t`` is computed. The env arrays are then
derived by :func:`envs.core.derive.derive_rows`, the one function the batch
env arrays come from (:func:`envs.core.data.derive_arrays`), with the
train-split normalisation of the data the agents were trained on.

30-minute bars follow :mod:`algospace.data.resample` exactly: a clock-aligned
bucket closes with the bar whose close time reaches the bucket's end, or —
when the bucket was cut short (session close, missing bars) — with the first
bar of a later bucket, which is the moment ``align_index`` makes it visible in
the batch pipeline. A bucket still open when the bars end is never used.

Cost: bars and every computed table are kept in growing numpy arrays, and a
5-minute bar touches none of them through pandas. The 5-minute features are
recomputed by their batch arithmetic on the last few bars only (their look-back
is bounded, :func:`algospace.features.streaming.tactical_tail`), the synergy
state is carried forward (:class:`algospace.features.streaming.SynergyStream`)
and the env rows are derived on a bounded tail, so a 5-minute bar costs the
same whatever the history. A 30-minute close computes the 30-minute features
of the new 30-minute bar only (:mod:`algospace.features.strategic_stream`:
bounded tails, MMD's sums and MLMI's recurrences carried, MLMI's vote for
that bar), and the regime encoder (when the stream has one) reads the regime
features of its window only (:class:`algospace.regime.features.RegimeRows`: the
30-minute table's MMD columns, the seasonal norms through each bar's previous
same-slot bar) — equal to the batch ``regime_latent`` inputs bit for bit.
:meth:`MarketStream.extend` loads history in bulk without computing anything
per bar; on a 30-minute clock the decision engine updates only at 30-minute
closes (nothing reads the arrays in between). ``save_stream`` / ``restore_stream`` of
:mod:`algospace.inference.stream_state` carry the whole state across a restart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from algospace.config import STRATEGIC_AGENTS, EnvConfig
from algospace.data.bars import COLUMNS, Bars
from algospace.data.contracts import ContractSpec
from algospace.data.splits import Normalizer, Splits
from algospace.errors import DataError
from algospace.features.build import (
    STRATEGIC_FEATURES,
    SYNERGY_FEATURES,
    TACTICAL_FEATURES,
    FeatureConfig,
    tactical_columns,
)
from algospace.features.mlmi_stream import MLMIStream
from algospace.features.mmd import MMD_FEATURES
from algospace.features.strategic_stream import STRATEGIC_TABLE, MMDStream, strategic_rows
from algospace.features.streaming import Growing, SynergyStream, tactical_tail
from algospace.regime.features import RegimeRows
from envs.core.data import MarketArrays
from envs.core.derive import Standardiser, derive_rows
from envs.core.layout import LATENT_DIM, SHORT_MEAN_BARS
from envs.registry import env_class

_NS_PER_MIN = 60_000_000_000
_STRATEGIC_TABLES = ("features_strategic", "returns_strategic")
_SYNERGY_COLUMNS = (*SYNERGY_FEATURES, "synergy_event")
_SYNERGY_INPUTS = ("mlmi_value", "mlmi_signal", "nwrqk_slope", "nwrqk_signal")
"""The strategic columns the synergy detector reads."""
_MMD_COLUMNS = [STRATEGIC_TABLE.index(c) for c in MMD_FEATURES]
"""The regime features the 30-minute table already holds (the same function computes both)."""
_STRATEGIC_ARRAYS = ("strategic_ohlc", "close_step", "latent",
                     *(f"s_{agent}" for agent in STRATEGIC_AGENTS))


@dataclass(frozen=True)
class RegimeEncoder:
    """The regime detector as the stream uses it: μ of the window ending at a 30-minute bar."""

    model: Any
    """A :class:`algospace.regime.model.RegimeDetector` in eval mode."""
    normaliser: Normalizer
    """Its input normalisation (fitted on its training split)."""
    window: int
    """30-minute bars per input window."""
    source: str = ""
    """The RDE checkpoint directory it was loaded from ("" when built in code)."""

    @classmethod
    def load(cls, checkpoint: str | Path) -> RegimeEncoder:
        """The encoder of an RDE checkpoint directory (weights loaded with weights_only)."""
        from algospace.regime.train import load_rde

        model, cfg, normaliser, _ = load_rde(checkpoint)
        return cls(model, normaliser, cfg.window, str(Path(checkpoint).resolve()))

    def encode_rows(self, features: np.ndarray, first: int) -> np.ndarray:
        """μ (float32) of the windows ending at rows ``first ..`` of ``features``: consecutive
        rows of :func:`~algospace.regime.features.regime_features` (columns
        ``REGIME_FEATURES``) that start ``window - 1`` rows before ``first``, or at bar 0.
        NaN where a window is incomplete (as in the batch ``regime_latent`` table)."""
        from algospace.regime.features import REGIME_FEATURES
        from algospace.regime.latents import ENCODE_BATCH, gather_windows, window_ends

        table = pd.DataFrame(features, columns=list(REGIME_FEATURES))
        values = torch.from_numpy(self.normaliser.transform(table).to_numpy(np.float32).copy())
        out = np.full((len(features) - first, LATENT_DIM), np.nan, np.float32)
        ends = window_ends(values.numpy(), self.window, (first, len(features)))
        with torch.no_grad():
            for i in range(0, len(ends), ENCODE_BATCH):  # a warm-up: encode_all's batches
                chunk = ends[i:i + ENCODE_BATCH]
                x = gather_windows(values, torch.from_numpy(chunk), self.window)
                out[chunk - first] = self.model.encode(x).numpy()
        return out


class MarketStream:
    """5-minute bars in time order → the env arrays over every bar received so far.

    ``meta`` is the prepared-data metadata of the data the agents were trained on: its
    feature settings, contract, bar sizes and train-split normalisation are used as they
    are (a live stream is never normalised on itself).
    """

    def __init__(self, meta: Mapping[str, Any], *, atr_bars: int,
                 regime: RegimeEncoder | None = None, splits: Splits | None = None,
                 contract: ContractSpec | None = None) -> None:
        self.meta = meta
        self.features = FeatureConfig(**meta["features"])
        self.contract = contract or ContractSpec(**meta["contract"])
        self.bar_minutes = int(meta["bar_minutes"])
        self.strategic_minutes = int(meta["strategic_minutes"])
        self.atr_bars = atr_bars
        self.regime = regime
        self._bar_ns = self.bar_minutes * _NS_PER_MIN
        self._strat_ns = self.strategic_minutes * _NS_PER_MIN
        self._times = Growing(dtype=np.int64)
        self._values = Growing(len(COLUMNS))
        self._index = Growing(dtype=np.int64)
        self._strat_times = Growing(dtype=np.int64)
        self._strat_values = Growing(len(COLUMNS))
        self._bucket: int | None = None
        self._bucket_first = 0
        self._tactical = Growing(len(TACTICAL_FEATURES))
        self._synergy_rows = Growing(len(_SYNERGY_COLUMNS))
        self._synergy = SynergyStream(self.features.synergy_window,
                                      self.features.synergy_cooldown)
        self._latents = Growing(LATENT_DIM, np.float32)
        self._norms = Standardiser.of(meta)
        self._strat_table = Growing(len(STRATEGIC_TABLE))  # 30-minute features, see strategic_rows
        self._strat_returns = Growing()  # 30-minute log returns
        self._mmd = MMDStream()  # the MMD sums of the current chunk
        self._mlmi = MLMIStream(self.features.mlmi_k, self.features.mlmi_threshold)
        self._regime_rows = RegimeRows(self.strategic_minutes)  # the encoder's input rows
        self._splits = splits
        self.market: MarketArrays | None = None
        self._buffers: dict[str, np.ndarray] = {}
        self._rows_done = (0, 0)

    # -------------------------------------------------------------- bars in
    def __len__(self) -> int:
        return self._times.n

    @property
    def n_strategic(self) -> int:
        """30-minute bars closed so far."""
        return self._strat_times.n

    def add(self, open_time: Any, open_: float, high: float, low: float, close: float,
            volume: float) -> bool:
        """Append one 5-minute bar (no features yet); True if a 30-minute bar closed with it."""
        t = pd.Timestamp(open_time)
        if t.tzinfo is not None:
            raise DataError(f"bar at {t}: timestamps must be tz-naive exchange wall clock, as "
                            "in the training data")
        ns = int(t.value)
        values = (float(open_), float(high), float(low), float(close), float(volume))
        self._check_bar(t, ns, values)
        closed_before = self.n_strategic
        bucket = ns - ns % self._strat_ns
        if self._bucket is not None and bucket != self._bucket:
            self._close_bucket()  # cut short: visible once a later bucket has begun
        row = len(self)
        self._times.append(ns)
        self._values.append(values)
        if self._bucket is None:
            self._bucket, self._bucket_first = bucket, row
        if self._bucket + self._strat_ns <= ns + self._bar_ns:
            self._close_bucket()
        self._index.append(self.n_strategic - 1)
        return self.n_strategic > closed_before

    def extend(self, bars: Bars | pd.DataFrame) -> None:
        """Append many bars: the loader's :class:`~algospace.data.bars.Bars` or its frame
        (see :func:`bar_frame`)."""
        frame = bar_frame(bars)
        cols = frame[list(COLUMNS)].to_numpy(np.float64)
        for when, row in zip(frame.index, cols, strict=True):
            self.add(when, *row)

    @property
    def next_close(self) -> pd.Timestamp | None:
        """When the 30-minute bar now forming closes (None: no bar of it received yet)."""
        if self._bucket is None:
            return None
        return pd.Timestamp(self._bucket + self._strat_ns)

    def _check_bar(self, t: pd.Timestamp, ns: int, values: tuple[float, ...]) -> None:
        """Reject a bar out of order, off the bar grid, or with impossible prices."""
        last = int(self._times.view[-1]) if len(self) else None
        if last is not None and ns <= last:
            raise DataError(f"bar at {t} is not after the previous bar "
                            f"({pd.Timestamp(last)}); feed bars in time order, once")
        if ns % self._bar_ns:
            raise DataError(f"bar at {t} is not on the {self.bar_minutes}-minute grid the "
                            "agents were trained on")
        o, h, low, c, v = values
        if not all(np.isfinite(values)) or min(o, h, low, c) <= 0 or v < 0:
            raise DataError(f"bar at {t} has non-finite or non-positive values {values}")
        if not low <= min(o, c) <= max(o, c) <= h:
            raise DataError(f"bar at {t}: high/low do not enclose open/close {values}")

    def _close_bucket(self) -> None:
        """Turn the open bucket into a closed 30-minute bar (resample's aggregation)."""
        assert self._bucket is not None
        rows = self._values.view[self._bucket_first:].tolist()
        bar = (rows[0][0], max(r[1] for r in rows), min(r[2] for r in rows), rows[-1][3],
               float(sum(r[4] for r in rows)))
        self._strat_times.append(self._bucket)
        self._strat_values.append(bar)
        self._bucket = None

    def open_time(self, row: int, *, strategic: bool = False) -> pd.Timestamp:
        """Open time of 5-minute bar ``row`` (or of 30-minute bar ``row``)."""
        return pd.Timestamp(int((self._strat_times if strategic else self._times).view[row]))

    # ---------------------------------------------------------- arrays out
    def bars(self) -> Bars:
        """The 5-minute bars received so far."""
        return self._bars_from(0)

    def strategic_bars(self) -> Bars:
        """The 30-minute bars closed so far."""
        return self._bars_from(0, strategic=True)

    def _bars_from(self, first: int, *, strategic: bool = False) -> Bars:
        """The bars from row ``first`` on (5-minute, or 30-minute closed ones)."""
        if strategic:
            return _bars(self._strat_times.view[first:], self._strat_values.view[first:],
                         self.strategic_minutes)
        return _bars(self._times.view[first:], self._values.view[first:], self.bar_minutes)

    def update(self) -> MarketArrays:
        """The env arrays over every bar received (call after :meth:`add`); computes only the
        rows added since the last update (see the module docstring for the cost)."""
        if not self.n_strategic:
            raise DataError("no 30-minute bar has closed yet; feed more history first "
                            f"(the features need about two weeks of {self.bar_minutes}-minute "
                            "bars)")
        cfg = self.features
        if self._strat_table.n != self.n_strategic:
            self._strategic_rows()
        index = self._index.view
        first = self._rows_done[0]
        t0 = max(0, first - tactical_tail(cfg.fvg_max_age, cfg.fvg_body_multiplier))
        tact = tactical_columns(self._values.view[t0:], cfg)[first - t0:]
        self._tactical.put(first, tact)
        mitigation = tact[:, TACTICAL_FEATURES.index("fvg_mitigation")]
        table = self._strat_table.view
        syn = self._synergy.rows({c: table[:, STRATEGIC_TABLE.index(c)] for c in _SYNERGY_INPUTS},
                                 mitigation, index, first)
        self._synergy_rows.put(first, np.column_stack([syn[c] for c in _SYNERGY_COLUMNS]))
        self._derive_new_rows(index)
        return self._bind()

    def _bind(self) -> MarketArrays:
        """:attr:`market` over the derived rows."""
        n, cfg = self._rows_done[0], self.features
        splits = self._splits or Splits((0, n), (n, n), (n, n))
        self.market = MarketArrays(f"stream/{n}", self.contract, splits,
                                   cfg.strategic_window, cfg.tactical_window,
                                   {name: buffer[:self._rows_done[1] if name in _STRATEGIC_ARRAYS
                                                 else n] for name, buffer in self._buffers.items()},
                                   float(self.meta["reference_price"]))
        return self.market

    def _strategic_rows(self) -> None:
        """The 30-minute features, log returns and latents of the 30-minute bars closed since
        the last update (:func:`algospace.features.strategic_stream.strategic_rows`)."""
        done, closes = self._strat_table.n, self._strat_values.view[:, 3]
        self._strat_table.put(done, strategic_rows(self._strat_times.view, self._strat_values.view,
                                                   self.strategic_minutes, done, self.features,
                                                   self._mmd, self._mlmi))
        self._strat_returns.put(done, _log_returns(closes[max(0, done - 1):])[min(done, 1):])
        if self.regime is not None and self._latents.n < self.n_strategic:
            first = self._latents.n
            r0 = max(0, first - self.regime.window + 1)  # the first new window's first row
            features = self._regime_rows.rows(self._strat_times.view, self._strat_values.view,
                                              self._strat_table.view[r0:, _MMD_COLUMNS], r0)
            self._latents.put(first, self.regime.encode_rows(features, first - r0))

    def _derive_new_rows(self, index: np.ndarray) -> None:
        """Derive the env rows added since the last update into the kept buffers.

        Every derived row is a function of a bounded window of earlier rows (rolling means,
        ATR, the observation windows), so :func:`envs.core.derive.derive_rows` runs on a tail
        of the tables just long enough for those windows, and its new rows are appended to
        the ones kept from earlier updates (which, being causal, never change).
        """
        n, s = len(self), self.n_strategic
        new_base, new_strat = self._rows_done
        cfg = self.features
        b0 = max(0, new_base - (max(cfg.tactical_window, SHORT_MEAN_BARS, self.atr_bars) + 2))
        s0 = max(0, int(index[b0]) - cfg.strategic_window - 1)
        r0 = max(0, b0 - 1)  # the first row's log return reads the bar before it
        synergy = self._synergy_rows.view[b0:].astype(np.float32)  # as the float32 store
        latent = (self._latents.view[s0:] if self.regime is not None
                  else np.zeros((s - s0, LATENT_DIM), np.float32))
        derived = derive_rows(
            strategic=self._strat_table.view[s0:, :len(STRATEGIC_FEATURES)].astype(np.float32),
            returns_strategic=self._strat_returns.view[s0:],
            tactical=self._tactical.view[b0:].astype(np.float32),
            returns_base=_log_returns(self._values.view[r0:, 3])[b0 - r0:],
            synergy=synergy[:, :len(SYNERGY_FEATURES)], base_ohlc=self._values.view[b0:, :4],
            strategic_ohlc=self._strat_values.view[s0:, :4], strategic_index=index[b0:] - s0,
            latent=latent, norms=self._norms, features=cfg, atr_bars=self.atr_bars)
        derived["synergy_direction"] = synergy[:, _SYNERGY_COLUMNS.index("synergy_direction")
                                               ].astype(np.float64)
        derived["strategic_index"] = index[b0:].copy()
        steps = derived["close_step"]
        derived["close_step"] = np.where(steps >= 0, steps + b0, -1)
        for name, rows in derived.items():
            on_strategic = name in _STRATEGIC_ARRAYS
            first, offset, total = (new_strat, s0, s) if on_strategic else (new_base, b0, n)
            buffer = self._buffers.get(name)
            if buffer is None or len(buffer) < total:
                grown = np.empty((max(total, 2 * (0 if buffer is None else len(buffer))),
                                  *rows.shape[1:]), dtype=rows.dtype)
                if buffer is not None:
                    grown[:first] = buffer[:first]
                buffer = self._buffers[name] = grown
            buffer[first:total] = rows[first - offset:]
        self._rows_done = (n, s)


def _log_returns(close: np.ndarray) -> np.ndarray:
    """``log_return`` of :func:`algospace.features.pipeline.bar_returns` (row 0 NaN)."""
    return np.concatenate([[np.nan], np.diff(np.log(close))])


def bar_frame(bars: Any) -> pd.DataFrame:
    """The frame of ``bars`` as :func:`algospace.data.loader.load_bars` gives them: a
    :class:`~algospace.data.bars.Bars` or its ``frame`` (a DatetimeIndex of open times,
    columns ``open, high, low, close, volume``); :class:`DataError` for anything else."""
    fix = ("load the bars with algospace.data.loader.load_bars(path) and pass it or its "
           ".frame (open-time index; columns open, high, low, close, volume)")
    if isinstance(bars, Bars):
        return bars.frame
    if not isinstance(bars, pd.DataFrame):
        raise DataError(f"bars must be a Bars or a DataFrame, got {type(bars).__name__}",
                        fix=fix)
    if not isinstance(bars.index, pd.DatetimeIndex):
        raise DataError(f"the bars' index must be their open times (a DatetimeIndex), got "
                        f"{type(bars.index).__name__} with columns {list(bars.columns)}",
                        fix=fix)
    missing = [c for c in COLUMNS if c not in bars.columns]
    if missing:
        raise DataError(f"the bars lack column(s) {missing}; they have {list(bars.columns)}",
                        fix=fix)
    return bars


def bar_values(open_time: Any, bar: tuple[Any, ...]) -> tuple[float, ...]:
    """``open, high, low, close, volume`` of a decision engine's ``on_bar`` call: five
    numbers, or one row of the loader's frame (a Series or mapping with those keys)."""
    if len(bar) == 1 and isinstance(bar[0], pd.Series | Mapping):
        row = bar[0]
        missing = [c for c in COLUMNS if c not in row]
        if missing:
            raise DataError(f"bar at {open_time} lacks {missing}; a row of the loader's frame "
                            "has open, high, low, close, volume")
        return tuple(float(row[c]) for c in COLUMNS)
    if len(bar) != len(COLUMNS):
        raise DataError(f"on_bar takes (open_time, open, high, low, close, volume) or "
                        f"(open_time, row of the loader's frame); got {len(bar)} values "
                        f"after the time at {open_time}")
    return tuple(float(v) for v in bar)


def _bars(times: np.ndarray, values: np.ndarray, minutes: int) -> Bars:
    """A Bars table from open times (ns) and OHLCV rows (copied: the stream's arrays grow)."""
    index = pd.DatetimeIndex(times.astype("datetime64[ns]"), name="open_time")
    frame = pd.DataFrame(values.copy(), index=index, columns=list(COLUMNS))
    return Bars(frame=frame, bar_minutes=minutes, source="stream")


class _StreamEnv:
    """Mix-in for an env class bound to a stream's arrays: no precomputed episodes."""

    def _episode_starts(self, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty

    def _pick_start(self, options: Mapping[str, Any]) -> int:
        return int(options["start"])


def stream_env(env_name: str, cfg: EnvConfig, market: MarketArrays) -> Any:
    """An env of ``env_name``'s class reading a stream's arrays (:attr:`MarketStream.market`),
    with no precomputed episodes: the decision engine starts each session itself."""
    base = env_class(env_name)
    cls = type(f"Stream{base.__name__}", (_StreamEnv, base), {})
    return cls(cfg, market=market)
