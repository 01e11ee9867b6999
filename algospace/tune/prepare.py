"""The data a phase reads, built (or found) before Ray starts, and the regime latents in it.

A phase with ``env.regime_latent: true`` reads the regime detector's latents from the
prepared data; where they are missing, the driver trains the detector first
(:func:`algospace.tune.driver.run`), so one command runs on a fresh clone.
"""

from __future__ import annotations

import math
from typing import Any

from algospace.tune.plan import Log, Plan

RDE_FILE = "rde.yaml"
"""The phase file that trains the regime detector (in tune_configs/)."""


def prepare_data(plan: Plan, log: Log) -> Any:
    """Build (or find) the prepared data of ``plan``; returns it (``Prepared``)."""
    from algospace.features.pipeline import prepare

    return prepare(plan.config.data, log=lambda m: log(f"[data] {m}"))


def needs_latents(plan: Plan, prepared: Any) -> bool:
    """Whether ``plan`` reads regime latents that ``prepared`` does not hold yet."""
    from algospace.features.pipeline import LATENT_TABLE
    from envs.core.data import stored_tables

    cfg = plan.config
    return cfg.phase != "rde" and bool(cfg.env.regime_latent) \
        and LATENT_TABLE not in stored_tables(prepared)


def data_notes(plan: Plan, prepared: Any, log: Log) -> None:
    """Say what the run should know about its data: the contract, a weak regime detector."""
    from algospace.market.sizing import contract_of

    cfg = plan.config
    if cfg.phase == "rde":
        return
    note = contract_of(prepared.meta, cfg.env)[1]
    if note:
        log(f"[run] {note}")
    regime = prepared.meta.get("regime") or {}
    if cfg.env.regime_latent and regime.get("beats_baseline") is False:
        log(f"[run] note: the regime latents come from a detector that does not beat its "
            f"trivial baseline (validation MSE {regime.get('val_recon_mse', math.nan):.4f} "
            f"vs {regime.get('baseline_recon_mse', math.nan):.4f}: window means, or the "
            "window's first principal components): they carry no more than that baseline")
