"""Episode windows: which start positions fit inside a split, random or tiled.

A *position* is an index on the env's clock: a 5-minute row for tactical_v0
and joint_v0, a 30-minute row for strategic_v0. An episode of ``L`` steps
visits positions ``s, s+1, …, s+L``; every one of them must be usable (all
observation windows complete) and its 5-minute row inside the split.
"""

from __future__ import annotations

import numpy as np

from algospace.errors import DataError


def valid_starts(usable: np.ndarray, length: int, allowed_start: np.ndarray | None = None
                 ) -> np.ndarray:
    """Positions ``s`` with ``usable[s..s+length]`` all true (and ``allowed_start[s]``)."""
    n = len(usable)
    if n < length + 1:
        return np.empty(0, dtype=np.int64)
    bad = np.r_[0, np.cumsum(~usable)]
    starts = np.arange(n - length)
    ok = bad[starts + length + 1] - bad[starts] == 0
    if allowed_start is not None:
        ok &= allowed_start[: n - length]
    return starts[ok]


def tile(starts: np.ndarray, length: int) -> np.ndarray:
    """Consecutive non-overlapping episodes covering the valid starts in order."""
    out: list[int] = []
    nxt = -1
    for s in starts.tolist():
        if s >= nxt:
            out.append(s)
            nxt = s + length
    return np.asarray(out, dtype=np.int64)


def check_enough(starts: np.ndarray, split: str, length: int, usable_count: int) -> None:
    """Raise a clear error when no episode of ``length`` steps fits in the split."""
    if starts.size == 0:
        raise DataError(
            f"split {split!r} has no window of {length + 1} consecutive usable steps "
            f"({usable_count} usable in all)",
            fix="lower episode_steps, or use more data (indicator warm-up needs about two "
                "weeks of bars before the first usable step)")
