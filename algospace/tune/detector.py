"""Which regime detector's latents a phase reads (``handoff.regime``), resolved before Ray.

A phase with ``env.regime_latent: true`` reads the latents of exactly one detector; the
prepared data may hold several (one table per detector, :mod:`algospace.features.latents`).
``handoff.regime`` picks it:

* ``latest`` (default): the newest finished rde run (``--quick`` apart from full runs)
  under ``output.dir`` on the same prepared data; where there is none, the only detector
  the data holds (e.g. from ``algospace regime train``); where there is none either, the
  driver trains one first (rde.yaml). Two newest runs finished in the same second with
  different detectors, or several stored detectors and no run, are refused as ambiguous;
* the path of an rde run directory (its ``summary.json``) or of a detector checkpoint
  (``rde.pt``, ``rde.json``);
* a detector id the prepared data holds.

The chosen id goes into the phase's env config (``env.regime_detector``), so the env
runners, the checkpoints' ``algospace_run.json`` and a later ``evaluate`` or ``decide``
read the same table; where the data lacks it (a detector trained on other data, a store
that was cleared), the driver encodes the data with the detector's checkpoint first.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from algospace.config import experiment_from_raw, set_key
from algospace.errors import AlgoSpaceError, ConfigError
from algospace.tune.plan import DETECTOR_KEY, SUMMARY, Log, Plan

KEY = "handoff.regime"
"""The phase-file key naming the detector."""


@dataclass(frozen=True)
class Detector:
    """A regime detector a phase reads: its id, checkpoint and the rde run it came from."""

    id: str
    """12 hex digits (:func:`algospace.regime.store.detector_id`)."""
    checkpoint: str
    """Its checkpoint directory (``rde.pt``, ``rde.json``)."""
    run_dir: str | None = None
    """The rde run directory that trained it, where known."""

    def describe(self) -> dict[str, Any]:
        """For summary.json: ``{"id", "checkpoint", "rde_run"}``."""
        return {"id": self.id, "checkpoint": self.checkpoint, "rde_run": self.run_dir}


def reads_latents(plan: Plan) -> bool:
    """Whether ``plan``'s phase reads regime latents."""
    cfg = plan.config
    return cfg.phase != "rde" and bool(cfg.env.regime_latent)


def resolve_detector(plan: Plan, prepared: Any) -> Detector | None:
    """The detector ``handoff.regime`` names for ``plan`` on ``prepared`` (None: ``latest``
    found none, so one is to be trained); a :class:`ConfigError` for an ambiguous or bad
    choice."""
    from algospace.features.latents import is_detector_id, stored_detectors

    choice = plan.config.handoff.regime
    if choice == "latest":
        return _latest(plan, prepared)
    if is_detector_id(choice) and not Path(choice).exists():
        held = stored_detectors(prepared.meta, prepared.path)
        if choice not in held:
            raise ConfigError(f"{KEY}: the prepared data {prepared.path} holds no latents of "
                              f"detector {choice} (it holds "
                              f"{', '.join(sorted(held)) or 'none'}); give the detector's "
                              "rde run directory or checkpoint instead")
        return Detector(choice, str(held[choice].get("checkpoint")))
    return _from_path(choice)


def _latest(plan: Plan, prepared: Any) -> Detector | None:
    """``latest``: the newest finished rde run on this data, else the only stored detector."""
    from algospace.features.latents import plain_detectors, stored_detectors

    runs = rde_runs(plan.config.output.dir, plan.quick, prepared.key)
    if runs:
        newest = max(r["finished_at"] for r in runs)
        tied = {_run_detector(r).id: _run_detector(r) for r in runs
                if r["finished_at"] == newest}
        if len(tied) > 1:
            raise ConfigError(
                f"{KEY}: latest is ambiguous: rde runs finished at the same time ({newest}) "
                "with different detectors: " + "; ".join(
                    f"{d.id} ({d.run_dir})" for d in tied.values()) +
                f"; set {KEY} to one of these run directories")
        return next(iter(tied.values()))
    held = plain_detectors(stored_detectors(prepared.meta, prepared.path))
    if len(held) > 1:
        raise ConfigError(
            f"{KEY}: latest is ambiguous: no finished rde run on this data under "
            f"{plan.config.output.dir}, and the prepared data {prepared.path} holds the "
            "latents of several detectors: " + "; ".join(
                f"{d} ({r.get('checkpoint')})" for d, r in sorted(held.items())) +
            f"; set {KEY} to one of these checkpoints (or ids)")
    if held:
        [(ident, record)] = held.items()
        return Detector(ident, str(record.get("checkpoint")))
    return None


def rde_runs(root: str, quick: bool, key: str) -> list[dict[str, Any]]:
    """The summaries of the finished rde runs under ``root`` (quick or not) whose latents
    went into prepared data ``key`` and whose best checkpoint is still there."""
    out = []
    for file in sorted(Path(root).glob(f"*/*/{SUMMARY}")):
        try:
            summary = json.loads(file.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if summary.get("phase") != "rde" or summary.get("status") != "finished" \
                or bool(summary.get("quick")) != quick:
            continue
        store = (summary.get("rde") or {}).get("store")
        checkpoint = summary.get("best_checkpoint")
        if store and Path(store).name == key and checkpoint and Path(checkpoint).is_dir():
            out.append({**summary, "finished_at": str(summary.get("finished_at", ""))})
    return out


def _run_detector(summary: dict[str, Any]) -> Detector:
    """The detector an rde run's summary names."""
    ident = (summary.get("rde") or {}).get("detector") or _id(summary["best_checkpoint"])
    return Detector(ident, summary["best_checkpoint"], summary.get("experiment_dir"))


def _from_path(text: str) -> Detector:
    """The detector of an rde run directory or of a checkpoint directory."""
    path = Path(text).expanduser().resolve()
    if (path / SUMMARY).is_file():
        summary = json.loads((path / SUMMARY).read_text())
        if summary.get("phase") != "rde":
            raise ConfigError(f"{KEY}: {path} is a run of the {summary.get('phase')} phase, "
                              "not an rde run")
        checkpoint = summary.get("best_checkpoint")
        if summary.get("status") != "finished" or not checkpoint \
                or not Path(checkpoint).is_dir():
            raise ConfigError(f"{KEY}: the rde run {path} has not finished (or its best "
                              "checkpoint is gone); finish it (--resume) or name another")
        return _run_detector({**summary, "experiment_dir": str(path)})
    if (path / "rde.pt").is_file():
        run = path.parent / SUMMARY
        run_dir = None
        if run.is_file():
            summary = json.loads(run.read_text())
            if summary.get("best_checkpoint") == str(path):
                run_dir = str(path.parent)
        return Detector(_id(str(path)), str(path), run_dir)
    raise ConfigError(f"{KEY}: {text} is neither an rde run directory (with {SUMMARY}) nor a "
                      "regime-detector checkpoint (with rde.pt and rde.json); give one of "
                      "those, a detector id, or latest")


def _id(checkpoint: str) -> str:
    """The id of the detector at ``checkpoint`` (a broken one is a ConfigError)."""
    from algospace.regime.store import detector_id

    try:
        return detector_id(checkpoint)
    except AlgoSpaceError as err:
        raise ConfigError(f"{KEY}: {err}") from None


def needs_detector(plan: Plan, prepared: Any) -> bool:
    """Whether ``plan`` reads regime latents but no detector exists yet (train one first).

    Raises a :class:`ConfigError` (naming the phase file) for an ambiguous or bad
    ``handoff.regime``."""
    if not reads_latents(plan) or plan.config.env.regime_detector is not None:
        return False
    try:
        return resolve_detector(plan, prepared) is None
    except ConfigError as err:
        raise ConfigError(f"{plan.experiment.source}: {err}") from None


def use_detector(plan: Plan, prepared: Any, log: Log) -> Any:
    """Point ``plan`` at its detector: resolve it, encode the data with it if the store
    lacks its latents, set ``env.regime_detector`` and ``plan.regime``; returns the
    prepared data (read again after an encode)."""
    from algospace.features.latents import latent_table, stored_detectors

    if not reads_latents(plan):
        return prepared
    found = _chosen(plan, prepared)
    if found.id not in stored_detectors(prepared.meta, prepared.path):
        if not Path(found.checkpoint).is_dir():
            raise ConfigError(f"{plan.experiment.source}: the prepared data holds no latents "
                              f"of regime detector {found.id} ({latent_table(found.id)}) and "
                              f"its checkpoint {found.checkpoint} is gone; run rde.yaml again")
        from algospace.regime.store import encode_missing

        log(f"[run] encoding the data with regime detector {found.id} ({found.checkpoint})")
        prepared = encode_missing(prepared, found.id, found.checkpoint,
                                  log=lambda m: log(f"[rde] {m}"))[0]
    raw = copy.deepcopy(plan.experiment.raw)
    set_key(raw, DETECTOR_KEY, found.id)
    plan.experiment = experiment_from_raw(raw, plan.experiment.source)
    plan.regime = found.describe()
    origin = f", rde run {found.run_dir}" if found.run_dir else ""
    log(f"[run] regime latents: detector {found.id} ({found.checkpoint}{origin})")
    return prepared


def _chosen(plan: Plan, prepared: Any) -> Detector:
    """The detector of ``plan``: the one a resumed run started with, else the resolved one."""
    from algospace.features.latents import stored_detectors

    fixed = plan.config.env.regime_detector
    if fixed is not None:
        saved = plan.regime or {}
        record = stored_detectors(prepared.meta).get(fixed, {})
        return Detector(fixed, str(saved.get("checkpoint") or record.get("checkpoint")),
                        saved.get("rde_run"))
    try:
        found = resolve_detector(plan, prepared)
    except ConfigError as err:
        raise ConfigError(f"{plan.experiment.source}: {err}") from None
    if found is None:
        raise ConfigError(f"{plan.experiment.source}: no regime detector for this data; run "
                          "rde.yaml on the same data section first")
    return found
