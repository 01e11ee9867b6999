"""The regime detector's latents: train it on prepared data and store what it encodes.

:func:`store_latents` encodes every 30-minute bar with a trained RDE and writes the
latent μ into the prepared-data store as table ``regime_latent`` (NaN before the first
full window), with the detector's figures in the store's metadata; later phases read that
table and never update the RDE.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from algospace.config import RDEConfig
from algospace.features.pipeline import LATENT_TABLE, Prepared, strategic_rows
from algospace.regime.features import regime_features
from algospace.regime.latents import beats_baseline, encode_all
from algospace.regime.train import RDEResult, load_rde, train_rde


def train_and_store(prepared: Prepared, cfg: RDEConfig, out_dir: str | Path,
                    log: Any = print) -> tuple[RDEResult, pd.DataFrame]:
    """Train the RDE on ``prepared`` and write its latents into the store."""
    features = regime_features(prepared.strategic)
    train = strategic_rows(prepared.strategic_index, prepared.splits.train)
    val = strategic_rows(prepared.strategic_index, prepared.splits.val)
    result = train_rde(features, train, val, cfg, out_dir, log=log)
    return result, store_latents(prepared, result.checkpoint_dir, log=log)


def store_latents(prepared: Prepared, checkpoint: str | Path, log: Any = print) -> pd.DataFrame:
    """Encode every 30-minute bar with the RDE at ``checkpoint``; write table
    ``regime_latent`` into the store (μ per bar, NaN before the first full window)."""
    model, cfg, normaliser, _ = load_rde(checkpoint)
    features = regime_features(prepared.strategic)
    start = time.perf_counter()
    mu = encode_all(model, normaliser, features, cfg.window)
    log(f"encoded {len(mu):,} 30-minute bars in {time.perf_counter() - start:.1f} s")
    latents = pd.DataFrame(mu, index=prepared.strategic.frame.index,
                           columns=[f"regime_{i}" for i in range(mu.shape[1])])
    meta = json.loads((Path(checkpoint) / "rde.json").read_text()).get("metrics", {})
    prepared.store.add_table(prepared.key, LATENT_TABLE, latents, {
        "regime": {"checkpoint": str(Path(checkpoint).resolve()),
                   "best_epoch": meta.get("best_epoch"),
                   "val_recon_mse": meta.get("val_recon_mse"),
                   "baseline_recon_mse": meta.get("baseline_recon_mse"),
                   "beats_baseline": _beats(meta),
                   "latent_rows_finite": int(np.isfinite(mu).all(axis=1).sum())}})
    return latents


def _beats(metrics: dict[str, Any]) -> bool | None:
    """Whether the stored detector beat its baseline (None when the figures are missing)."""
    recon, baseline = metrics.get("val_recon_mse"), metrics.get("baseline_recon_mse")
    if recon is None or baseline is None:
        return None
    return beats_baseline(float(recon), float(baseline))
