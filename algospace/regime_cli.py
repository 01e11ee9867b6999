"""Phase 0: train the regime detector on prepared data and store its latents.

``algospace regime train`` prepares (or finds) the data, computes the RDE's
30-minute input features, trains on the training split with early stopping on
the validation split, writes the checkpoint, and writes the latent μ of every
30-minute bar into the store as table ``regime_latent`` (NaN before the first
full window). Later phases read that table and never update the RDE.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from algospace.config import RDEConfig
from algospace.features.pipeline import LATENT_TABLE, Prepared, strategic_rows
from algospace.regime.features import regime_features
from algospace.regime.latents import baseline_warning, beats_baseline, encode_all
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


def add_parser(sub: Any) -> None:
    """Register ``algospace regime train``."""
    from algospace.cli import add_data_source_flags

    regime = sub.add_parser("regime", help="train the regime detector (phase 0)")
    regime_sub = regime.add_subparsers(dest="regime_command", required=True)
    train = regime_sub.add_parser("train", help="train the RDE and store its latents")
    add_data_source_flags(train)
    train.add_argument("--out", default=None,
                       help="checkpoint directory (default results/rde/<data key>)")
    train.add_argument("--epochs", type=int, default=None, help="maximum epochs")
    train.add_argument("--rde-seed", type=int, default=None, help="RDE seed (default 0)")


def run(args: argparse.Namespace) -> int:
    """Run ``algospace regime train``."""
    from algospace.data_cli import prepare_config
    from algospace.features.pipeline import prepare

    data_cfg = prepare_config(args)
    changes = {k: v for k, v in (("max_epochs", args.epochs), ("seed", args.rde_seed))
               if v is not None}
    cfg = dataclasses.replace(RDEConfig(), **changes)  # validated before any work
    prepared = prepare(data_cfg, log=lambda m: print(f"[data] {m}", flush=True))
    out = Path(args.out or Path("results") / "rde" / prepared.key)
    result, latents = train_and_store(prepared, cfg, out,
                                      log=lambda m: print(f"[rde] {m}", flush=True))
    print(f"checkpoint:  {result.checkpoint_dir} (best epoch {result.best_epoch} "
          f"of {result.epochs_run})")
    print(f"validation:  reconstruction MSE {result.val_recon_mse:.4f} vs "
          f"{result.baseline_recon_mse:.4f} for the trivial baseline")
    warning = baseline_warning(result.val_recon_mse, result.baseline_recon_mse)
    if warning:
        print(f"[rde] {warning}")
    print(f"latents:     table {LATENT_TABLE} in {prepared.path} "
          f"({int(latents.notna().all(axis=1).sum()):,} of {len(latents):,} bars)")
    return 0
