"""The regime detector's latents: train it on prepared data and store what it encodes.

:func:`store_latents` encodes every 30-minute bar with a trained RDE and writes the
latent μ into the prepared-data store as that detector's own table,
``regime_latent-<detector id>`` (NaN before the first full window), with the detector's
checkpoint and figures in the store's metadata under ``regime_detectors``
(:mod:`algospace.features.latents`); later phases read the table of the detector they
name and never update the RDE. :func:`detector_id` is that id: a short hash of what makes
the latents (weights, input normalisation, features, architecture).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from algospace.config import RDEConfig
from algospace.errors import DataError
from algospace.features.latents import DETECTORS_KEY, ID_LENGTH, latent_table, stored_detectors
from algospace.features.pipeline import Prepared, strategic_rows
from algospace.regime.features import regime_features
from algospace.regime.latents import beats_baseline, encode_all
from algospace.regime.train import (
    CHECKPOINT_META,
    CHECKPOINT_WEIGHTS,
    RDEResult,
    load_rde,
    train_rde,
)


@dataclass(frozen=True)
class StoredLatents:
    """What :func:`store_latents` wrote."""

    detector: str
    """The detector's id (:func:`detector_id`)."""
    table: str
    """The store table holding its latents."""
    latents: pd.DataFrame
    """μ per 30-minute bar (NaN before the first full window)."""
    record: dict[str, Any]
    """What the store's metadata records about the detector."""


def detector_id(checkpoint: str | Path) -> str:
    """The id of the detector at ``checkpoint``: 12 hex digits of the SHA-256 of its weights
    (each tensor's name, dtype, shape and bytes) and of the parts of ``rde.json`` that
    change what it encodes (config, features, normaliser; not its training figures).

    The same weights give the same id wherever the checkpoint is copied.
    """
    load_rde(checkpoint)  # a clear error for a missing or broken checkpoint
    root = Path(checkpoint)
    state = torch.load(root / CHECKPOINT_WEIGHTS, map_location="cpu", weights_only=True)
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    meta = json.loads((root / CHECKPOINT_META).read_text(encoding="utf-8"))
    digest.update(json.dumps({k: meta.get(k) for k in ("format", "config", "features",
                                                       "normalizer")},
                             sort_keys=True).encode())
    return digest.hexdigest()[:ID_LENGTH]


def train_and_store(prepared: Prepared, cfg: RDEConfig, out_dir: str | Path,
                    log: Any = print) -> tuple[RDEResult, StoredLatents]:
    """Train the RDE on ``prepared`` and write its latents into the store."""
    features = regime_features(prepared.strategic)
    train = strategic_rows(prepared.strategic_index, prepared.splits.train)
    val = strategic_rows(prepared.strategic_index, prepared.splits.val)
    result = train_rde(features, train, val, cfg, out_dir, log=log)
    return result, store_latents(prepared, result.checkpoint_dir, log=log)


def store_latents(prepared: Prepared, checkpoint: str | Path, log: Any = print,
                  extra: dict[str, Any] | None = None) -> StoredLatents:
    """Encode every 30-minute bar with the RDE at ``checkpoint``; write its table
    ``regime_latent-<id>`` into the store (μ per bar, NaN before the first full window)
    and its record into the store's metadata (``extra``: more fields of that record, e.g.
    the walk-forward fold it was fitted on). μ at a bar comes from the window ending at
    that bar, so it reads no later bar."""
    detector = detector_id(checkpoint)
    model, cfg, normaliser, _ = load_rde(checkpoint)
    features = regime_features(prepared.strategic)
    start = time.perf_counter()
    mu = encode_all(model, normaliser, features, cfg.window)
    log(f"encoded {len(mu):,} 30-minute bars in {time.perf_counter() - start:.1f} s")
    latents = pd.DataFrame(mu, index=prepared.strategic.frame.index,
                           columns=[f"regime_{i}" for i in range(mu.shape[1])])
    meta = json.loads((Path(checkpoint) / CHECKPOINT_META).read_text()).get("metrics", {})
    table = latent_table(detector)
    record = {"table": table, "checkpoint": str(Path(checkpoint).resolve()),
              "best_epoch": meta.get("best_epoch"),
              "val_recon_mse": meta.get("val_recon_mse"),
              "baseline_recon_mse": meta.get("baseline_recon_mse"),
              "beats_baseline": _beats(meta),
              "latent_rows_finite": int(np.isfinite(mu).all(axis=1).sum()),
              "written_at": time.strftime("%Y-%m-%dT%H:%M:%S"), **(extra or {})}
    prepared.store.add_table(prepared.key, table, latents, {DETECTORS_KEY: {detector: record}})
    return StoredLatents(detector, table, latents, record)


def encode_missing(prepared: Prepared, detector: str, checkpoint: str | Path,
                   log: Callable[[str], None] = print) -> tuple[Prepared, bool]:
    """``prepared`` holding detector ``detector``'s latents, and whether they were encoded now.

    Where its store lacks them, every 30-minute bar is encoded with the checkpoint at
    ``checkpoint`` (:func:`store_latents`; never a new detector), after checking that the
    checkpoint is that detector (its :func:`detector_id`); a :class:`DataError` otherwise.
    """
    if detector in stored_detectors(prepared.meta, prepared.path):
        return prepared, False
    found = detector_id(checkpoint)
    if found != detector:
        raise DataError(f"the regime-detector checkpoint {checkpoint} is detector {found}, not "
                        f"{detector} (its weights changed since)", path=str(checkpoint),
                        fix=f"put the checkpoint of detector {detector} back there")
    store_latents(prepared, checkpoint, log=log)
    meta = {**prepared.meta, DETECTORS_KEY: prepared.store.meta(prepared.key)[DETECTORS_KEY]}
    return replace(prepared, meta=meta), True


def _beats(metrics: dict[str, Any]) -> bool | None:
    """Whether the stored detector beat its baseline (None when the figures are missing)."""
    recon, baseline = metrics.get("val_recon_mse"), metrics.get("baseline_recon_mse")
    if recon is None or baseline is None:
        return None
    return beats_baseline(float(recon), float(baseline))
