"""``--resume``: the run directories of an experiment, and the unfinished one to continue."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from algospace.errors import ConfigError
from algospace.training.builder import ModuleSource
from algospace.tune import storage
from algospace.tune.plan import DETECTOR_KEY, EXPERIMENT_FILE, SUMMARY, Log, Plan


def tune_dir(exp_dir: Path) -> str:
    """Where Tune keeps the run of ``exp_dir``: the folder itself, or in ``output.storage``."""
    saved = json.loads((exp_dir / EXPERIMENT_FILE).read_text())
    return str(saved.get("tune_dir") or exp_dir)


def runs(root: Path) -> list[Path]:
    """Experiment directories under ``root``, newest first."""
    return sorted((p for p in root.glob("*") if (p / EXPERIMENT_FILE).is_file()), reverse=True)


def finished(run: Path) -> bool:
    """Whether the experiment directory ``run`` holds a finished summary."""
    summary = run / SUMMARY
    return summary.is_file() and json.loads(summary.read_text()).get("status") == "finished"


def unfinished_run(root: Path) -> Path:
    """The newest experiment directory under ``root`` without a finished summary."""
    found = runs(root)
    for run in found:
        if not finished(run):
            if not storage.exists(storage.join(tune_dir(run), "tuner.pkl")):
                raise ConfigError(f"--resume: {run} stopped before Tune saved its state (no "
                                  f"tuner.pkl in {tune_dir(run)}), so there is nothing to "
                                  "continue; start a new run without --resume")
            return run
    raise ConfigError(f"--resume: no unfinished run under {root} (runs found: {len(found)}); "
                      "start a new one without --resume")


def resumed_plan(plan: Plan, log: Log) -> Plan:
    """The plan of the unfinished run to continue, with the settings it started with."""
    from algospace.config import experiment_from_raw

    exp_dir = unfinished_run(Path(plan.config.output.dir) / plan.name)
    saved = json.loads((exp_dir / EXPERIMENT_FILE).read_text())
    started = copy.deepcopy(saved["raw"])  # less what the runner set (the detector id)
    (started.get("env") or {}).pop(DETECTOR_KEY.split(".")[1], None)
    if started != plan.experiment.raw:
        log(f"[run] note: {plan.experiment.source} changed since {exp_dir.name} started; "
            "it resumes with the settings it started with")
    experiment = experiment_from_raw(saved["raw"], saved["source"])
    sources = tuple(ModuleSource(h["checkpoint"], tuple(h["modules"]))
                    for h in saved.get("handoff", []))
    return Plan(experiment, bool(saved.get("quick")), sources, saved.get("handoff", []),
                exp_dir, saved.get("regime"))
