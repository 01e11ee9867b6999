"""Where the regime latents live in a prepared-data entry: one table per detector.

Every regime detector that encodes an entry writes its own table,
``regime_latent-<detector id>``, and records itself in the entry's ``meta.json`` under
``regime_detectors`` (its checkpoint and validation figures), so two detectors trained on
the same data never overwrite each other. The detector id is a short hash of the weights
and input normalisation that produce the latents (:func:`algospace.regime.store.detector_id`).
A phase names the detector it reads (``env.regime_detector``, set from ``handoff.regime``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from algospace.errors import DataError

LATENT_PREFIX = "regime_latent"
"""Table names of the regime latents start with this (``regime_latent-<id>``)."""
DETECTORS_KEY = "regime_detectors"
"""Key of ``meta.json`` mapping each detector id to its record."""
FOLD_RECORD = "walk_forward_fold"
"""Key, in a detector's record, of the walk-forward fold whose training bars it was fitted
on (absent: not fitted per fold; :mod:`algospace.tune.fold_detectors`)."""
ID_LENGTH = 12
"""Hex digits of a detector id."""
_ID = re.compile(rf"[0-9a-f]{{{ID_LENGTH}}}")


def latent_table(detector: str) -> str:
    """The table holding detector ``detector``'s latents."""
    return f"{LATENT_PREFIX}-{detector}"


def is_detector_id(text: str) -> bool:
    """Whether ``text`` has the form of a detector id (12 lowercase hex digits)."""
    return bool(_ID.fullmatch(text))


def stored_detectors(meta: Mapping[str, Any], path: str | Path | None = None
                     ) -> dict[str, dict[str, Any]]:
    """The detectors whose latents an entry holds (id → record), from its ``meta.json``.

    With ``path`` (the entry's folder), only those whose table file is there.
    """
    records = dict(meta.get(DETECTORS_KEY) or {})
    if path is not None:
        records = {d: r for d, r in records.items()
                   if (Path(path) / f"{latent_table(d)}.parquet").is_file()}
    return records


def plain_detectors(held: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Of ``held`` (id → record), the detectors not fitted for one walk-forward fold: only
    those may be chosen by default, as a fold's detector is read by its own fold only."""
    return {d: r for d, r in held.items() if not r.get(FOLD_RECORD)}


def pick_detector(meta: Mapping[str, Any], path: str | Path,
                  detector: str | None) -> tuple[str, dict[str, Any]]:
    """The detector whose latents to read (id and record): ``detector``, or where that is
    None the only one the entry holds; a :class:`DataError` when it is not there (or none,
    or several, are)."""
    held = stored_detectors(meta, path)
    if detector is not None:
        if detector not in held:
            raise DataError(
                f"the prepared data has no latents of regime detector {detector} (it holds "
                f"{', '.join(sorted(held)) or 'none'})", path=str(path),
                fix="run the phase through `python -m experiments.run` (it encodes them from "
                    "the detector's checkpoint), or run rde.yaml again on this data")
        return detector, held[detector]
    per_fold = len(held) - len(plain_detectors(held))
    held = plain_detectors(held)
    if len(held) == 1:
        return next(iter(held.items()))
    if not held:
        raise DataError("regime_latent is on but the prepared data holds no regime latents" +
                        (f" (only those of {per_fold} walk-forward folds' own detectors)"
                         if per_fold else ""),
                        path=str(path),
                        fix="run rde.yaml (or `algospace regime train`) with the same data "
                            "settings first, or set regime_latent: false")
    raise DataError(f"the prepared data holds the latents of several regime detectors "
                    f"({', '.join(sorted(held))}) and none is named", path=str(path),
                    fix="name one (env.regime_detector; in a phase file, handoff.regime)")
