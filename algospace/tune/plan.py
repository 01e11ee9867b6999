"""A phase read and checked before Ray starts: the command's options, ``--quick``, pipelines.

:func:`load_phase` reads a phase YAML once, applies ``--quick`` and ``--set``, validates it
and makes its paths absolute; :class:`Plan` carries the result (and the hand-off, or the
run to resume) through the rest of the run.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from algospace.config import (
    Experiment,
    ExperimentConfig,
    blame_key,
    experiment_from_raw,
    parse_set,
    read_yaml,
    resolve_path,
    set_key,
)
from algospace.errors import ConfigError
from algospace.training.builder import ModuleSource
from algospace.tune import storage

Log = Callable[[str], None]
SUMMARY = "summary.json"
EXPERIMENT_FILE = "algospace_experiment.json"
"""The validated experiment (YAML after overrides) kept in each experiment directory."""
PIPELINE_KEY = "pipeline"
DETECTOR_KEY = "env.regime_detector"
"""Set by the runner (from ``handoff.regime``), never by a phase file or ``--set``."""

QUICK: dict[str, Any] = {
    "stop.iterations": 2, "stop.env_steps": None, "stop.minutes": None,
    "training.train_batch_size": 400, "training.minibatch_size": 200,
    "training.num_epochs": 2, "checkpoint.every": 1, "checkpoint.keep": 2,
    "evaluation.random_seeds": 2, "evaluation.bootstrap": 200,
}
"""What ``--quick`` sets in every phase (a smoke run, not a result)."""
QUICK_SAMPLES = 2
"""``--quick`` runs at most this many samples of a random search."""
QUICK_DAYS = 20
"""``--quick`` shrinks the built-in market to this many trading days."""
QUICK_WALK_FORWARD: dict[str, Any] = {"folds": 3, "purge_bars": 300, "embargo_bars": 300}
"""What ``--quick`` sets in ``evaluation.walk_forward`` (at most 3 folds; gaps of 300 base
bars, not the full look-back, so that they fit a small market)."""
QUICK_WALK_FORWARD_DAYS = 40
"""``--quick`` shrinks the built-in market to this many days on a walk-forward run (3 folds
need room for the indicators' warm-up and every fold's blocks)."""
QUICK_RDE: dict[str, Any] = {"rde.max_epochs": 2, "rde.kl_warmup_epochs": 1,
                             "rde.batch_size": 32}


@dataclass(frozen=True)
class RunOptions:
    """The command line of ``experiments.run``."""

    file: str
    """YAML file (or a name inside tune_configs/)."""
    quick: bool = False
    """Shrink to a smoke run."""
    resume: bool = False
    """Continue the latest unfinished run of this experiment."""
    address: str | None = None
    """Ray cluster to attach to (else RAY_ADDRESS, else a local Ray)."""
    sets: tuple[str, ...] = ()
    """``key=value`` overrides."""
    name: str | None = None
    """Experiment name override."""
    wandb: bool = False
    """Turn W&B logging on."""
    dashboard_port: int | None = None
    """Exactly this port for a local Ray's dashboard (else a free one)."""


@dataclass
class Plan:
    """A validated phase, ready to run."""

    experiment: Experiment
    quick: bool
    sources: tuple[ModuleSource, ...] = ()
    handoff: list[dict[str, Any]] = field(default_factory=list)
    resume_dir: Path | None = None
    """The unfinished run this plan continues (``--resume``)."""
    regime: dict[str, Any] | None = None
    """The regime detector whose latents the phase reads (id, checkpoint, rde run
    directory; :mod:`algospace.tune.detector`), None where it reads none."""
    command: dict[str, Any] | None = None
    """The command line that started the run (:func:`algospace.tune.resume.command_record`),
    kept in its experiment file."""

    @property
    def config(self) -> ExperimentConfig:
        """The phase's validated configuration (search spaces at a sample value)."""
        return self.experiment.config

    @property
    def name(self) -> str:
        """The experiment name (``-quick`` added for a smoke run)."""
        return self.experiment.name + ("-quick" if self.quick else "")


def load_phase(file: str, opts: RunOptions, data: dict[str, Any] | None = None,
               inherit: dict[str, Any] | None = None,
               raw: dict[str, Any] | None = None) -> Experiment:
    """Read (once) and validate one phase file with the command line's overrides.

    ``data`` replaces the file's data section and ``inherit`` sets dotted keys (the regime
    detector trained for another phase's data takes that phase's ``output`` and dashboard
    settings, :func:`algospace.tune.driver.detector_inherits`);
    ``raw``: the file's mapping where the caller has read it already.
    """
    path = resolve_path(file)
    raw = read_yaml(path) if raw is None else raw
    overrides: dict[str, Any] = quick_overrides(raw) if opts.quick else {}
    if data is not None:
        overrides["data"] = copy.deepcopy(data)
    overrides.update(inherit or {})
    overrides.update(parse_set(list(opts.sets)))
    if opts.name:
        overrides["name"] = opts.name
    if opts.wandb:
        overrides["logging.wandb.enabled"] = True
    if _raw_value(raw, DETECTOR_KEY) is not None or DETECTOR_KEY in overrides:
        raise ConfigError(f"{path}: {DETECTOR_KEY}: not set here — the runner sets it from "
                          "handoff.regime (latest, an rde run directory or a detector "
                          "checkpoint)")
    experiment = _experiment(path, raw, overrides, opts.sets)
    # Trials run in their own working directories (and maybe on other nodes): make the
    # data store and the results root absolute paths.
    cfg = experiment.config
    overrides["data.cache_dir"] = str(cfg.data.cache_path())
    overrides["output.dir"] = str(Path(cfg.output.dir).expanduser().resolve())
    if cfg.output.storage is not None and not storage.is_uri(cfg.output.storage):
        overrides["output.storage"] = str(Path(cfg.output.storage).expanduser().resolve())
    return _experiment(path, raw, overrides, opts.sets)


def _experiment(path: Path, raw: dict[str, Any], overrides: dict[str, Any],
                sets: tuple[str, ...] = ()) -> Experiment:
    """The experiment of a phase file's mapping ``raw`` with ``overrides`` set (checked); an
    error is blamed on the ``--set`` item (of ``sets``) whose key it is about, else on the
    file."""
    raw = copy.deepcopy(raw)
    try:
        for key, value in overrides.items():
            set_key(raw, key, value)
        return experiment_from_raw(raw, str(path))
    except ConfigError as err:
        raise blame_key(err, str(path), sets) from None


def quick_overrides(raw: dict[str, Any]) -> dict[str, Any]:
    """What ``--quick`` sets in the phase file ``raw`` (a search space stays a search)."""
    overrides: dict[str, Any] = {}
    quick = {**QUICK, **(QUICK_RDE if raw.get("phase") == "rde" else {})}
    # a key that holds a search space keeps it: the sweep stays a sweep
    overrides.update({k: v for k, v in quick.items()
                      if not isinstance(_raw_value(raw, k), dict)})
    tune_section = raw.get("tune") or {}
    if isinstance(tune_section, dict):
        samples = tune_section.get("num_samples", 1)
        overrides["tune.num_samples"] = min(samples, QUICK_SAMPLES) \
            if isinstance(samples, int) else samples
        scheduler = tune_section.get("scheduler")
        if isinstance(scheduler, dict) and scheduler.get("type") == "asha":
            overrides["tune.scheduler.grace_period"] = 1
    walk_forward = _raw_value(raw, "evaluation.walk_forward")
    if isinstance(walk_forward, dict):
        folds = walk_forward.get("folds", QUICK_WALK_FORWARD["folds"])
        overrides.update({f"evaluation.walk_forward.{k}": v
                          for k, v in QUICK_WALK_FORWARD.items() if k != "folds"})
        overrides["evaluation.walk_forward.folds"] = min(folds, QUICK_WALK_FORWARD["folds"]) \
            if isinstance(folds, int) else folds
    data = raw.get("data") or {}
    if isinstance(data, dict) and data.get("source", "synthetic") == "synthetic":
        synthetic = data.get("synthetic") or {}
        if isinstance(synthetic, dict):  # else the schema check says what is wrong
            most = QUICK_WALK_FORWARD_DAYS if walk_forward else QUICK_DAYS
            days = synthetic.get("days", most)
            overrides["data.synthetic.days"] = min(int(days), most) \
                if isinstance(days, int) else most
    return overrides


def _raw_value(raw: dict[str, Any], key: str) -> Any:
    """The value at dotted ``key`` of a YAML mapping (None where absent)."""
    node: Any = raw
    for part in key.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def pipeline_files(file: str, raw: dict[str, Any] | None = None) -> list[str] | None:
    """The phase files of a pipeline YAML (``pipeline: [rde.yaml, ...]``), else None.

    ``raw``: the file's mapping where the caller has read it already.
    """
    path = resolve_path(file)
    raw = read_yaml(path) if raw is None else raw
    if PIPELINE_KEY not in raw:
        return None
    extra = set(raw) - {PIPELINE_KEY}
    if extra:
        raise ConfigError(f"{path}: a pipeline file has only the key {PIPELINE_KEY!r}; "
                          f"unknown: {', '.join(sorted(extra))}")
    files = raw[PIPELINE_KEY]
    if not isinstance(files, list) or not files or not all(isinstance(f, str) for f in files):
        raise ConfigError(f"{path}: {PIPELINE_KEY}: expected a list of phase files")
    base = path.parent
    return [str(base / f) if (base / f).is_file() else f for f in files]


def check_resources(cfg: ExperimentConfig, attached: bool) -> None:
    """Resources this machine cannot give (checked before Ray starts; a cluster's are
    checked once attached, by :func:`algospace.tune.cluster.check_cluster`)."""
    r = cfg.resources
    if r.num_gpus_per_learner > 0 and not attached:
        import torch

        have = torch.cuda.device_count()
        if have < math.ceil(r.num_gpus_per_learner):
            raise ConfigError(
                f"resources.num_gpus_per_learner is {r.num_gpus_per_learner:g} but this machine "
                f"has {have} CUDA GPU(s) visible to torch; set it to 0 to learn on the CPU, or "
                "attach to a cluster with GPUs (--address)")
    if not attached:
        cpus = os.cpu_count() or 1
        need = r.cpus_per_trial() if cfg.phase != "rde" else 1
        if need > cpus:
            raise ConfigError(
                f"resources: one trial needs {need:g} CPUs ({r.cpus_described()}) but this "
                f"machine has {cpus}; lower resources.num_env_runners, or attach to a larger "
                "cluster (--address)")
