"""The data a phase reads, built (or found) before Ray starts, and the regime latents in it.

A phase with ``env.regime_latent: true`` reads one regime detector's latents from the
prepared data (``handoff.regime``, :mod:`algospace.tune.detector`); where there is no
detector yet, the driver trains one first (:func:`algospace.tune.driver.run`), so one
command runs on a fresh clone.
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


def data_notes(plan: Plan, prepared: Any, log: Log) -> None:
    """Say what the run should know about its data: the contract, a weak regime detector."""
    from algospace.features.latents import DETECTORS_KEY
    from algospace.market.sizing import contract_of

    cfg = plan.config
    if cfg.phase == "rde":
        return
    note = contract_of(prepared.meta, cfg.env)[1]
    if note:
        log(f"[run] {note}")
    regime: dict[str, Any] = {}
    if cfg.env.regime_latent and cfg.env.regime_detector is not None:
        regime = (prepared.meta.get(DETECTORS_KEY) or {}).get(cfg.env.regime_detector) or {}
    if regime.get("beats_baseline") is False:
        log(f"[run] note: the regime latents come from a detector that does not beat its "
            f"trivial baseline (validation MSE {regime.get('val_recon_mse', math.nan):.4f} "
            f"vs {regime.get('baseline_recon_mse', math.nan):.4f}: window means, or the "
            "window's first principal components): they carry no more than that baseline")
