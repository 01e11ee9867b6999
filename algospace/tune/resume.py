"""``--resume``: the run directories of an experiment, and the unfinished one to continue."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from algospace.errors import ConfigError
from algospace.training.builder import ModuleSource
from algospace.tune import storage
from algospace.tune.plan import EXPERIMENT_FILE, SUMMARY, Log, Plan, RunOptions

COMMAND_KEY = "command"
"""The key of :data:`EXPERIMENT_FILE` that holds the command line that started the run
(:func:`command_record`)."""


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


def command_record(opts: RunOptions, source: str) -> dict[str, Any]:
    """What the experiment file keeps of the command that started a run: the phase file and
    its mapping as read then, ``--quick``, ``--name`` and each ``--set``."""
    from algospace.config import read_yaml

    return {"file": opts.file, "yaml": read_yaml(Path(source)), "quick": opts.quick,
            "name": opts.name, "sets": list(opts.sets)}


def resume_command(opts: RunOptions, prog: str = "python -m experiments.run") -> str:
    """The command that continues the run ``opts`` started (or continued): the same file,
    ``--quick``, ``--name``, ``--address`` and every ``--set``, plus ``--resume``."""
    args = [opts.file] + (["--quick"] if opts.quick else [])
    if opts.name:
        args += ["--name", opts.name]
    if opts.address:
        args += ["--address", opts.address]
    for item in opts.sets:
        args += ["--set", item]
    return " ".join([prog, *(shlex.quote(a) for a in args), "--resume"])


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """A mapping as ``dotted.key → value`` (the values that are not mappings)."""
    if not isinstance(value, dict) or not value:
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, item in value.items():
        out.update(_flat(item, f"{prefix}.{key}" if prefix else str(key)))
    return out


def differences(started: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """``key: <then> -> <now>`` for each dotted key whose value differs (``unset`` where a
    side lacks it), sorted."""
    a, b = _flat(started), _flat(now)
    unset = "unset"
    return [f"{k}: {a.get(k, unset)!r} -> {b.get(k, unset)!r}".replace(f"'{unset}'", unset)
            for k in sorted(set(a) | set(b)) if a.get(k, unset) != b.get(k, unset)]


def _notes(saved: dict[str, Any], sets: tuple[str, ...], run: str) -> list[str]:
    """What differs between the command now and the one that started the run: the phase
    file's content, and (only where ``--set`` is given now) the ``--set`` items."""
    from algospace.config import parse_set, read_yaml

    started = saved.get(COMMAND_KEY)
    if not started:  # a run from before the command was kept: nothing to compare with
        return []
    notes = []
    source = Path(saved["source"])
    if source.is_file():
        now = json.loads(json.dumps(read_yaml(source), default=str))  # as it was kept
        changed = differences(started["yaml"], now)
        if changed:
            notes.append(f"{source} changed since {run} started ({'; '.join(changed)})")
    if sets:
        changed = differences(parse_set(started["sets"]), parse_set(list(sets)))
        if changed:
            notes.append(f"the --set items differ from those {run} started with "
                         f"({'; '.join(changed)})")
    return notes


def resumed_plan(plan: Plan, log: Log, sets: tuple[str, ...] = ()) -> Plan:
    """The plan of the unfinished run to continue, with the settings it started with (its
    stored experiment, :data:`EXPERIMENT_FILE`); ``sets``: the ``--set`` items given now,
    compared with the run's."""
    from algospace.config import experiment_from_raw

    exp_dir = unfinished_run(Path(plan.config.output.dir) / plan.name)
    saved = json.loads((exp_dir / EXPERIMENT_FILE).read_text())
    for note in _notes(saved, sets, exp_dir.name):
        log(f"[run] note: {note}; it resumes with the settings it started with")
    experiment = experiment_from_raw(saved["raw"], saved["source"])
    sources = tuple(ModuleSource(h["checkpoint"], tuple(h["modules"]))
                    for h in saved.get("handoff", []))
    return Plan(experiment, bool(saved.get("quick")), sources, saved.get("handoff", []),
                exp_dir, saved.get("regime"), saved.get(COMMAND_KEY))
