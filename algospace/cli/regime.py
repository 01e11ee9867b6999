"""``algospace regime train``: train the regime detector (phase 0) and store its latents.

Prepares (or finds) the data, computes the RDE's 30-minute input features, trains on the
training split with early stopping on the validation split, writes the checkpoint, and
writes the latent of every 30-minute bar into the store as the detector's own table,
``regime_latent-<detector id>`` (:mod:`algospace.regime.store`), and prints the id. Later
phases read the table of the detector they name (``handoff.regime``: the id, or the
checkpoint) and never update the RDE.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from algospace.cli.data import add_data_source_flags, prepare_config


def add_parser(sub: Any) -> None:
    """Register ``algospace regime train``."""
    regime = sub.add_parser("regime", help="train the regime detector (phase 0)")
    regime_sub = regime.add_subparsers(dest="regime_command", required=True)
    train = regime_sub.add_parser("train", help="train the RDE and store its latents")
    add_data_source_flags(train)
    train.add_argument("--out", default=None,
                       help="checkpoint directory (default results/rde/<data key>)")
    train.add_argument("--epochs", type=int, default=None, help="maximum epochs")
    train.add_argument("--rde-seed", type=int, default=None, help="RDE seed (default 0)")
    train.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``algospace regime train``."""
    from algospace.config import RDEConfig
    from algospace.features.pipeline import prepare
    from algospace.regime.latents import baseline_warning
    from algospace.regime.store import train_and_store

    data_cfg = prepare_config(args)
    changes = {k: v for k, v in (("max_epochs", args.epochs), ("seed", args.rde_seed))
               if v is not None}
    cfg = dataclasses.replace(RDEConfig(), **changes)  # validated before any work
    prepared = prepare(data_cfg, log=lambda m: print(f"[data] {m}", flush=True))
    out = Path(args.out or Path("results") / "rde" / prepared.key)
    result, stored = train_and_store(prepared, cfg, out,
                                     log=lambda m: print(f"[rde] {m}", flush=True))
    latents = stored.latents
    print(f"checkpoint:  {result.checkpoint_dir} (best epoch {result.best_epoch} "
          f"of {result.epochs_run})")
    print(f"validation:  reconstruction MSE {result.val_recon_mse:.4f} vs "
          f"{result.baseline_recon_mse:.4f} for the trivial baseline")
    warning = baseline_warning(result.val_recon_mse, result.baseline_recon_mse)
    if warning:
        print(f"[rde] {warning}")
    print(f"detector:    {stored.detector} (handoff.regime: {stored.detector} or the "
          "checkpoint picks it)")
    print(f"latents:     table {stored.table} in {prepared.path} "
          f"({int(latents.notna().all(axis=1).sum()):,} of {len(latents):,} bars)")
    return 0
