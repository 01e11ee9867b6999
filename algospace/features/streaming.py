"""Feature updates at a cost independent of the history: tail windows and carried state.

The live decision engine (:mod:`algospace.inference.stream`) adds one bar at a time. A
feature whose row ``t`` depends on a bounded look-back of ``L`` bars is recomputed by its
**batch function** on the last ``L`` bars only (the ``*_TAIL`` look-backs below, each with
its reasoning); a feature with unbounded memory carries its state forward. Both equal the
batch features over the whole history (tested at many cut points in
``tests/test_stream_incremental.py``).

* :func:`tactical_tail` — the 5-minute features (FVG, momentum, volume ratio) are all
  bounded: an FVG gap lives at most ``fvg_max_age`` bars and its detection reads the
  ``body_window + 2`` bars up to its creation bar; eviction of a gap depends only on gaps
  created after it.
* :class:`SynergyStream` — the synergy detector's cooldown chain is unbounded (whether a
  candidate is accepted depends on the last accepted one, and so on back); the stream
  carries the last accepted detection and the per-step events, and finds candidates on the
  last ``synergy_window`` steps (a candidate at ``t`` reads the events of
  ``t-window+1 .. t`` only, see :func:`algospace.features.synergy.candidates`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from algospace.features import synergy
from algospace.features.fvg import fvg_warmup

FVG_BODY_WINDOW = 10
"""Bars in the FVG body filter's mean (``compute_fvg``'s default, used by the builders)."""
MOMENTUM_TAIL = 6
"""``momentum_5`` at ``t`` reads closes ``t-5 .. t``."""
VOLUME_RATIO_TAIL = 21
"""``volume_ratio`` (window 20) at ``t`` reads volumes ``t-20 .. t``."""


def fvg_tail(max_age: int, body_multiplier: float, body_window: int = FVG_BODY_WINDOW) -> int:
    """Bars up to and including ``t`` that fix every FVG output at ``t``.

    A gap that is active, or has its mitigation event, at ``t`` was created at
    ``g >= t - max_age + 1`` (it is dropped at age ``max_age``); detecting it reads bars
    ``g - fvg_warmup .. g`` (the body filter's window and the two bars before ``g``). Its
    eviction depends only on later gaps. One bar of margin.
    """
    return max_age + fvg_warmup(body_multiplier, body_window) + 1


def tactical_tail(fvg_max_age: int, fvg_body_multiplier: float) -> int:
    """Bars up to and including ``t`` that fix every tactical feature at ``t``."""
    return max(fvg_tail(fvg_max_age, fvg_body_multiplier), MOMENTUM_TAIL, VOLUME_RATIO_TAIL)


class Growing:
    """A numpy array that grows by appending rows (amortised doubling), viewed as ``[:n]``."""

    def __init__(self, width: int | None = None, dtype: type = np.float64) -> None:
        shape = (1024,) if width is None else (1024, width)
        self._data: np.ndarray = np.empty(shape, dtype=dtype)
        self.n = 0

    def reserve(self, total: int) -> None:
        """Make room for ``total`` rows."""
        if total > len(self._data):
            grown = np.empty((max(total, 2 * len(self._data)), *self._data.shape[1:]),
                             dtype=self._data.dtype)
            grown[:self.n] = self._data[:self.n]
            self._data = grown

    def append(self, row: object) -> None:
        """Append one row."""
        self.reserve(self.n + 1)
        self._data[self.n] = row
        self.n += 1

    def put(self, first: int, rows: np.ndarray) -> None:
        """Write ``rows`` from row ``first`` on (``first <= n``); the length becomes their end."""
        end = first + len(rows)
        self.reserve(end)
        self._data[first:end] = rows
        self.n = end

    @property
    def view(self) -> np.ndarray:
        """The rows so far (a view: valid until the next append)."""
        return self._data[:self.n]


class SynergyStream:
    """The synergy features of :func:`algospace.features.build.synergy_features`, step by step.

    Carries the per-step events of the three signals and the last accepted detection; each
    :meth:`advance` costs O(new steps + window), whatever the history.
    """

    def __init__(self, window: int, cooldown: int, max_age: int = synergy.MAX_AGE) -> None:
        self.window, self.cooldown, self.max_age = window, cooldown, max_age
        self._events = {s: Growing() for s in synergy.SIGNALS}
        self._last: tuple[int, float, int, float] | None = None  # step, direction, type, strength

    def advance(self, strategic: Any, mitigation: np.ndarray, index: np.ndarray,
                first: int) -> pd.DataFrame:
        """Synergy rows ``first .. len(index)-1`` (a frame; see :meth:`rows`)."""
        return pd.DataFrame(self.rows(strategic, mitigation, index, first))

    def rows(self, strategic: Any, mitigation: np.ndarray, index: np.ndarray,
             first: int) -> dict[str, np.ndarray]:
        """Synergy columns of steps ``first .. len(index)-1``, by name.

        ``strategic``: the strategic feature table of every 30-minute bar so far (a frame, or
        a mapping of its columns ``mlmi_value, mlmi_signal, nwrqk_slope, nwrqk_signal`` to
        arrays); ``mitigation``: ``fvg_mitigation`` of the new steps; ``index``: the
        strategic index of every step so far; ``first``: the steps already advanced through.
        Reads only the 30-minute rows first seen by the new steps (and the one before).
        """
        n = len(index)
        seen = int(index[first - 1]) if first > 0 else -1
        lo, hi = max(0, seen), (int(index[n - 1]) + 1 if n else 0)
        mlmi_sig = np.nan_to_num(np.asarray(strategic["mlmi_signal"], np.float64)[lo:hi])
        nw_sig = np.nan_to_num(np.asarray(strategic["nwrqk_signal"], np.float64)[lo:hi])
        # row ``lo``'s turn is never read when lo == seen >= 0; from row 0, no row before
        prev = np.concatenate([[0.0], mlmi_sig[:-1]])
        turns = np.where((mlmi_sig != 0) & (mlmi_sig != prev), mlmi_sig, 0.0)
        new = {"mlmi": _visible_events(turns, index, first, lo),
               "nwrqk": _visible_events(nw_sig, index, first, lo),
               "fvg": np.nan_to_num(np.asarray(mitigation, np.float64))}
        for name, rows in new.items():
            self._events[name].put(first, rows)
        c0 = max(0, first - self.window)
        tail = {name: arr.view[c0:n] for name, arr in self._events.items()}
        steps, dirs, types = synergy.candidates(tail, self.window)
        strength = _strength(strategic, index[first:])
        out = {name: np.zeros(n - first) for name in (*synergy.OUTPUT_NAMES, "synergy_event")}
        found = [(c0 + t, d, k) for t, d, k in zip(steps, dirs, types, strict=True)
                 if c0 + t >= first]
        found.sort(key=lambda f: f[0])  # stable: bullish first at a step, as the batch
        if self._last is not None:  # the state carried from before ``first``
            self._fill(out, first, first, n)
        for t, d, k in found:
            if self._last is not None and t - self._last[0] <= self.cooldown:
                continue
            self._last = (t, d, k, float(strength[t - first]))
            out["synergy_event"][t - first] = d
            self._fill(out, first, t, n)
        return out

    def state(self) -> dict[str, np.ndarray]:
        """The carried state as arrays (see :meth:`load_state`)."""
        out = {f"events_{name}": arr.view.copy() for name, arr in self._events.items()}
        out["last"] = np.array(self._last if self._last is not None else [], np.float64)
        return out

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Continue from :meth:`state`'s arrays."""
        for name, arr in self._events.items():
            arr.put(0, np.asarray(state[f"events_{name}"], np.float64))
        last = np.asarray(state["last"], np.float64)
        self._last = None if last.size == 0 else (int(last[0]), float(last[1]), int(last[2]),
                                                  float(last[3]))

    def _fill(self, out: dict[str, np.ndarray], first: int, start: int, n: int) -> None:
        """The state of the last detection on steps ``start ..`` (until it expires)."""
        assert self._last is not None
        t, d, k, strength = self._last
        stop = min(n, t + self.max_age)
        if stop <= start:
            return
        rows = slice(start - first, stop - first)
        for j in range(1, 5):
            out[f"synergy_type_{j}"][rows] = 1.0 if j == k else 0.0
        out["synergy_direction"][rows] = d
        out["synergy_strength"][rows] = strength
        out["synergy_bars_since"][rows] = np.arange(start - t, stop - t) / self.max_age


def _visible_events(events: np.ndarray, index: np.ndarray, first: int,
                    offset: int = 0) -> np.ndarray:
    """Events of 30-minute bars on steps ``first ..``: a bar's event fires at the first step
    that sees the bar; several bars first seen at one step: the latest with an event.
    ``events[j]`` belongs to 30-minute bar ``offset + j``."""
    out = np.zeros(len(index) - first)
    seen = int(index[first - 1]) if first > 0 else -1
    for i, now in enumerate(index[first:].tolist()):
        if now > seen:
            hits = np.flatnonzero(events[seen + 1 - offset:now + 1 - offset])
            if hits.size:
                out[i] = events[seen + 1 - offset + hits[-1]]
            seen = now
    return out


def _strength(strategic: Any, index: np.ndarray) -> np.ndarray:
    """``(|mlmi_value| + |nwrqk_slope| + 1) / 3`` of the visible 30-minute bar per step."""
    visible = np.maximum(index, 0)
    seen = index >= 0
    mlmi = np.where(seen, np.abs(np.asarray(strategic["mlmi_value"])[visible]), 0.0)
    slope = np.where(seen, np.abs(np.asarray(strategic["nwrqk_slope"])[visible]), 0.0)
    return (np.nan_to_num(mlmi) + np.nan_to_num(slope) + 1.0) / 3.0
