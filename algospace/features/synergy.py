"""Synergy detector: gate 1 of the two-gate decision, as causal features.

Three signals, each an *event* with a direction ``d`` in {-1, +1} at a
5-minute step (all on the 5-minute clock; the two 30-minute signals fire at
the first 5-minute step at which their 30-minute bar has closed):

- MLMI: the 30-minute ``mlmi_signal`` state turns to ``d`` (from anything else);
- NW-RQK: a 30-minute ``nwrqk_signal`` crossover event of direction ``d``;
- FVG: a 5-minute ``fvg_mitigation`` event of direction ``d`` (price enters a
  bullish gap: +1; a bearish gap: -1).

A synergy of direction ``d`` is detected at step ``t`` when one of the three
fires ``d`` at ``t`` and the other two fired ``d`` within the last ``window``
steps (default 10: steps ``t-9 .. t``), and no synergy was detected in the
``cooldown`` (default 5) steps before ``t``. Its type is the order in which
the three last fired (ties at one step are ordered MLMI, NW-RQK, FVG), from
the one table :data:`SYNERGY_TYPES`; orders starting with FVG are not a
synergy (the strategic layer must lead).

Outputs per 5-minute step (float64), a state that persists after detection
for ``max_age`` steps (default 60) and then clears:

- ``synergy_type_1..4``: one-hot of the last synergy's type;
- ``synergy_direction``: its direction, -1/+1 (0: none);
- ``synergy_strength``: ``(|mlmi_value| + |nwrqk_slope| + 1) / 3`` at detection, in [1/3, 1];
- ``synergy_bars_since``: steps since detection / ``max_age``, in [0, 1); 0 if none;
- ``synergy_event``: ``d`` at the detection step, else 0 (for baselines and gate 1).
"""

from __future__ import annotations

import numpy as np

SYNERGY_TYPES: dict[tuple[str, str, str], int] = {
    ("mlmi", "nwrqk", "fvg"): 1,
    ("mlmi", "fvg", "nwrqk"): 2,
    ("nwrqk", "fvg", "mlmi"): 3,
    ("nwrqk", "mlmi", "fvg"): 4,
}
"""Firing order → synergy type (the numbering of the original detector's code)."""

SIGNALS: tuple[str, ...] = ("mlmi", "nwrqk", "fvg")
"""Signal names in tie-break order."""

OUTPUT_NAMES: tuple[str, ...] = (
    "synergy_type_1", "synergy_type_2", "synergy_type_3", "synergy_type_4",
    "synergy_direction", "synergy_strength", "synergy_bars_since",
)
"""The 7 synergy-state features of the global state, in order."""


def strategic_events(signal_30m: np.ndarray, strategic_index: np.ndarray,
                     as_state: bool) -> np.ndarray:
    """Map a 30-minute signal to directional events on 5-minute steps (0: none).

    ``as_state``: the signal is a state and fires when it turns to a new
    direction; otherwise each nonzero value is an event.
    """
    sig = np.nan_to_num(np.asarray(signal_30m, dtype=np.float64))
    if as_state:
        prev = np.r_[0.0, sig[:-1]]
        sig = np.where((sig != 0) & (sig != prev), sig, 0.0)
    bars = np.flatnonzero(sig)
    steps = np.searchsorted(strategic_index, bars, side="left")
    keep = steps < len(strategic_index)
    out = np.zeros(len(strategic_index))
    out[steps[keep]] = sig[bars[keep]]
    return out


def _last_event(events: np.ndarray, direction: float) -> np.ndarray:
    """For each step, the latest step <= t with an event of ``direction`` (-10**9: none)."""
    n = len(events)
    idx = np.where(events == direction, np.arange(n), -(10**9))
    return np.maximum.accumulate(idx) if n else idx


MAX_AGE = 60
"""Steps a detected synergy's state persists."""


def detect(
    events: dict[str, np.ndarray],
    strength: np.ndarray,
    *,
    window: int = 10,
    cooldown: int = 5,
    max_age: int = MAX_AGE,
) -> dict[str, np.ndarray]:
    """Synergy features from per-step events of ``mlmi``, ``nwrqk`` and ``fvg``."""
    n = len(events["fvg"])
    found_step, found_dir, found_type = candidates(events, window)
    return _state(n, found_step, found_dir, found_type, strength, cooldown, max_age)


def candidates(events: dict[str, np.ndarray], window: int
               ) -> tuple[list[int], list[float], list[int]]:
    """Steps, directions and types of the synergies the events form, before the cooldown
    (bullish ones first, each direction in step order). A candidate at step ``t`` depends on
    the events of steps ``t-window+1 .. t`` only."""
    n = len(events["fvg"])
    found_step: list[int] = []
    found_dir: list[float] = []
    found_type: list[int] = []
    for direction in (1.0, -1.0):
        last = np.stack([_last_event(events[s], direction) for s in SIGNALS])  # (3, n)
        steps = np.arange(n)
        fires_now = (last == steps).any(axis=0)
        recent = (steps - last.min(axis=0)) < window
        for t in np.flatnonzero(fires_now & recent):
            order = tuple(SIGNALS[k] for k in np.lexsort((np.arange(3), last[:, t])))
            kind = SYNERGY_TYPES.get(order)
            if kind is not None:
                found_step.append(int(t))
                found_dir.append(direction)
                found_type.append(kind)
    return found_step, found_dir, found_type


def _state(n: int, steps: list[int], dirs: list[float], types: list[int],
           strength: np.ndarray, cooldown: int, max_age: int) -> dict[str, np.ndarray]:
    """Apply the cooldown in time order and expand detections into the persistent state."""
    out = {name: np.zeros(n) for name in (*OUTPUT_NAMES, "synergy_event")}
    last = -(10**9)
    for i in np.argsort(np.array(steps, dtype=np.int64), kind="stable"):
        t = steps[i]
        if t - last <= cooldown:
            continue
        last = t
        stop = min(n, t + max_age)
        out[f"synergy_type_{types[i]}"][t:stop] = 1.0
        for name in ("synergy_type_1", "synergy_type_2", "synergy_type_3", "synergy_type_4"):
            if name != f"synergy_type_{types[i]}":
                out[name][t:stop] = 0.0
        out["synergy_direction"][t:stop] = dirs[i]
        out["synergy_strength"][t:stop] = strength[t]
        out["synergy_bars_since"][t:stop] = np.arange(stop - t) / max_age
        out["synergy_event"][t] = dirs[i]
    return out
