"""One regime detector per walk-forward fold, fitted on that fold's training bars only.

A walk-forward phase with ``env.regime_latent: true`` cannot read one detector trained on
``data.split``'s train split: that split overlaps later folds' test blocks. Before Ray
starts, :func:`fit_fold_detectors` fits fold ``k``'s detector with the settings the ``rde``
phase would use (``rde.yaml`` with the same ``--quick``, its ``rde`` section) on the
30-minute bars that closed within fold ``k``'s training ranges (the normaliser too; every
training window lies wholly inside one range, so it reads no bar of an embargo hole, of
the validation or test block, or after them), early-stopped on fold ``k``'s validation
block. It encodes every 30-minute bar causally (the latent of a bar comes from the window
ending at that bar) into the detector's own table ``regime_latent-<id>``, whose record in
the prepared data names the fold (:data:`FOLD_RECORD`); an env on fold ``k`` refuses a
detector fitted on any other fold (:func:`envs.core.data.check_fold_detector`).

The trials learn their fold's detector from the Tune param space (:data:`KEY`: fold →
detector id, the same for every trial), so a resumed run keeps them; the checkpoints live
in ``<output.dir>/<name>/fold-detectors/<settings hash>/fold<k>`` and a run with the same
data, layout and settings reuses them (training is deterministic on CPU, so a refit would
give the same weights).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from algospace.errors import AlgoSpaceError, ConfigError
from algospace.features.latents import FOLD_RECORD
from algospace.tune.plan import Log, Plan, RunOptions

KEY = "fold_detectors"
"""Trial config key: ``{str(fold): detector id}`` of a walk-forward run reading latents."""
FOLDER = "fold-detectors"
"""Folder of the per-fold detector checkpoints inside ``<output.dir>/<name>/``."""


def fits_per_fold(plan: Plan) -> bool:
    """Whether ``plan`` reads regime latents on walk-forward folds (one detector per fold)."""
    cfg = plan.config
    return cfg.phase != "rde" and bool(cfg.env.regime_latent) \
        and cfg.evaluation.walk_forward is not None


def rde_settings(plan: Plan, opts: RunOptions) -> Any:
    """The ``rde`` section the ``rde`` phase would use for ``plan`` (rde.yaml, ``--quick``)."""
    from algospace.tune.plan import load_phase
    from algospace.tune.prepare import RDE_FILE

    rde = load_phase(RDE_FILE, replace(opts, file=RDE_FILE, resume=False, sets=(), name=None),
                     data=plan.experiment.raw.get("data"),
                     inherit={"output.dir": plan.config.output.dir})
    return rde.config.rde


def strategic_ranges(prepared: Any, fold: Any) -> tuple[tuple[tuple[int, int], ...],
                                                        tuple[int, int]]:
    """``(training ranges, validation range)`` of ``fold`` on the 30-minute clock: the
    strategic bars that closed within each of its base-bar ranges."""
    from algospace.data.splits import strategic_rows

    index = prepared.strategic_index
    train = tuple(r for r in (strategic_rows(index, part) for part in fold.train)
                  if r[1] > r[0])
    return train, strategic_rows(index, fold.val)


def fit_fold_detector(prepared: Any, fold: Any, cfg: Any, out_dir: Path,
                      log: Log) -> dict[str, Any]:
    """Fit (or reuse, where ``out_dir`` holds one) ``fold``'s detector; store its latents.

    Returns its record for the walk-forward report: id, checkpoint, the rows it was fitted
    on, its validation figures, the seconds the fit took and whether an earlier run's
    checkpoint was reused (then no fit: 0 s)."""
    from algospace.features.latents import stored_detectors
    from algospace.regime.features import regime_features
    from algospace.regime.store import detector_id, store_latents
    from algospace.regime.train import CHECKPOINT_META, load_rde, train_rde

    train, val = strategic_ranges(prepared, fold)
    seconds, reused = 0.0, True
    try:
        load_rde(out_dir)
        log(f"[rde] fold {fold.index}: reusing its detector {out_dir}")
    except AlgoSpaceError:
        reused = False
        started = time.perf_counter()
        train_rde(regime_features(prepared.strategic), train, val, cfg, out_dir,
                  log=lambda m: log(f"[rde] fold {fold.index}: {m}"))
        seconds = time.perf_counter() - started
    ident = detector_id(out_dir)
    fitted = {"fold": fold.index, "train": [list(r) for r in fold.train],
              "strategic_train": [list(r) for r in train], "strategic_val": list(val)}
    held = stored_detectors(prepared.meta, prepared.path)
    if held.get(ident, {}).get(FOLD_RECORD) != fitted:
        store_latents(prepared, out_dir, log=lambda m: log(f"[rde] fold {fold.index}: {m}"),
                      extra={FOLD_RECORD: fitted})
    metrics = json.loads((out_dir / CHECKPOINT_META).read_text()).get("metrics", {})
    return {"id": ident, "checkpoint": str(out_dir), "fitted_on": fitted,
            "best_epoch": metrics.get("best_epoch"),
            "val_recon_mse": metrics.get("val_recon_mse"),
            "baseline_recon_mse": metrics.get("baseline_recon_mse"),
            "fit_seconds": round(seconds, 1), "reused": reused}


def fit_fold_detectors(plan: Plan, opts: RunOptions, prepared: Any, log: Log) -> Any:
    """Fit every fold's detector of ``plan`` (see the module); set ``plan.regime`` to them
    and return the prepared data read again (it now holds their tables)."""
    from algospace.features.pipeline import prepare
    from algospace.regime.latents import beats_baseline
    from envs.core.data import env_fold

    cfg = plan.config
    wf = cfg.evaluation.walk_forward
    assert wf is not None
    rde = rde_settings(plan, opts)
    folds = [env_fold(prepared, replace(cfg.env, fold=k, regime_latent=False))  # its layout
             for k in range(wf.folds)]
    digest = hashlib.sha256(json.dumps(
        {"data": prepared.key, "folds": [f.as_dict() for f in folds if f is not None],
         "rde": dataclasses.asdict(rde)}, sort_keys=True, default=str).encode()).hexdigest()
    root = Path(cfg.output.dir) / plan.name / FOLDER / digest[:12]
    log(f"[run] regime latents per walk-forward fold: fitting {wf.folds} detectors, each on "
        f"its fold's training bars only ({root})")
    started = time.perf_counter()
    records: dict[str, Any] = {}
    for fold in folds:
        assert fold is not None
        r = fit_fold_detector(prepared, fold, rde, root / f"fold{fold.index}", log)
        records[str(fold.index)] = r
        weak = isinstance(r["val_recon_mse"], float) and isinstance(
            r["baseline_recon_mse"], float) and not beats_baseline(r["val_recon_mse"],
                                                                   r["baseline_recon_mse"])
        log(f"[run] fold {fold.index}: regime detector {r['id']} (validation MSE "
            f"{_figure(r['val_recon_mse'])} vs baseline {_figure(r['baseline_recon_mse'])}"
            + ("; it does not beat that baseline: its latents carry no more than it)"
               if weak else ")"))
    log(f"[run] {wf.folds} fold detectors ready in {time.perf_counter() - started:.0f} s")
    plan.regime = {"per_fold": records}
    return prepare(cfg.data, log=lambda _: None)  # its meta now names the fold detectors


def detector_ids(regime: dict[str, Any] | None) -> dict[str, str]:
    """``{str(fold): detector id}`` of a plan's per-fold detectors (empty: none)."""
    return {k: r["id"] for k, r in ((regime or {}).get("per_fold") or {}).items()}


def fold_detector(config: dict[str, Any], fold: int) -> str:
    """The detector id the trial of ``fold`` reads (its config's :data:`KEY`)."""
    ident = (config.get(KEY) or {}).get(str(fold))
    if ident is None:
        raise ConfigError(f"walk-forward fold {fold} reads regime latents but the run names "
                          "no detector fitted on it; start the run again (it fits one per fold)")
    return str(ident)


def _figure(value: Any) -> str:
    """A validation figure, or ``n/a``."""
    return f"{value:.4f}" if isinstance(value, int | float) else "n/a"
