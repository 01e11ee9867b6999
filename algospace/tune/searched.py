"""A sweep's searched hyperparameters in a few characters: column names and values of the
progress table, and the best trial's line at the end of a run."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any


def short_names(keys: Sequence[str]) -> list[str]:
    """Column names of dotted search-space keys: the last part (``training.lr`` -> ``lr``),
    or as many trailing parts as tell two keys apart."""
    parts = [key.split(".") for key in keys]
    names = [p[-1] for p in parts]
    for n in range(2, max((len(p) for p in parts), default=1) + 1):
        if len(set(names)) == len(names):
            break
        names = [".".join(p[-n:]) for p in parts]
    return names


def compact(value: Any) -> str:
    """A search-space value in a few characters (``0.0003``, ``1e-05``, ``0.01``, ``5``)."""
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def best_config_line(summary: Mapping[str, Any]) -> str | None:
    """``[run] best trial …``: the trial of a summary's best checkpoint, the metric it was
    chosen by, and its searched values as ``--set`` would take them (None when the summary
    names no trial)."""
    best = summary.get("best") or {}
    trial = best.get("trial")
    if not trial:
        return None
    params = best.get("params") or {}
    values = " ".join(f"{key}={f'{v:.6g}' if isinstance(v, float) else v}"
                      for key, v in params.items())
    score = best.get("score") or {}
    value = score.get("value")
    by = best.get("chosen_by", "?")
    if isinstance(value, int | float) and math.isfinite(value):
        by = f"{by} = {value:.4g}"
    return (f"[run] best trial of {summary.get('name', '?')}: {trial}, by {by}"
            + (f"; {values}" if values else " (no search space)"))
