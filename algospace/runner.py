"""``python -m experiments.run FILE.yaml`` (also ``algospace run``): one phase, or a pipeline.

Order of work: read and validate the YAML (schema, search spaces, resources, hand-off) and
prepare the data — all before Ray starts; then start (or attach to) Ray, run the Tune
experiment with a progress row per iteration, pick the best checkpoint, evaluate it on the
test split, and write ``summary.json``. Results of one run go to
``<output.dir>/<name>/<timestamp>/`` (see the README, "Outputs").

Input errors print one ``error: …`` line and exit with status 2; Ctrl-C stops the trials
with their checkpoints intact (``--resume`` continues) and exits with status 130.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from algospace import cluster, storage
from algospace.config import (
    Experiment,
    ExperimentConfig,
    LoadSource,
    load_experiment,
    parse_set,
    read_yaml,
    resolve_path,
    resolved_dict,
    tune_space,
)
from algospace.errors import AlgoSpaceError, ConfigError
from algospace.evaluation.oracles import CAPTURE_KEYS
from algospace.training.builder import ModuleSource

Log = Callable[[str], None]
SUMMARY = "summary.json"
EXPERIMENT_FILE = "algospace_experiment.json"
"""The validated experiment (YAML after overrides) kept in each experiment directory."""
PIPELINE_KEY = "pipeline"

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


@dataclass
class Plan:
    """A validated phase, ready to run."""

    experiment: Experiment
    quick: bool
    sources: tuple[ModuleSource, ...] = ()
    handoff: list[dict[str, Any]] = field(default_factory=list)
    resume_dir: Path | None = None
    """The unfinished run this plan continues (``--resume``)."""

    @property
    def config(self) -> ExperimentConfig:
        return self.experiment.config

    @property
    def name(self) -> str:
        return self.experiment.name + ("-quick" if self.quick else "")


# ------------------------------------------------------------------ validation
def load_phase(file: str, opts: RunOptions) -> Experiment:
    """Read and validate one phase file with the command line's overrides."""
    overrides: dict[str, Any] = {}
    if opts.quick:
        raw = read_yaml(resolve_path(file))
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
        data = raw.get("data") or {}
        if isinstance(data, dict) and data.get("source", "synthetic") == "synthetic":
            synthetic = data.get("synthetic") or {}
            if isinstance(synthetic, dict):  # else the schema check below says what is wrong
                days = synthetic.get("days", QUICK_DAYS)
                overrides["data.synthetic.days"] = min(int(days), QUICK_DAYS) \
                    if isinstance(days, int) else QUICK_DAYS
    overrides.update(parse_set(list(opts.sets)))
    if opts.name:
        overrides["name"] = opts.name
    if opts.wandb:
        overrides["logging.wandb.enabled"] = True
    experiment = load_experiment(file, overrides)
    # Trials run in their own working directories (and maybe on other nodes): make the
    # data store and the results root absolute paths.
    cfg = experiment.config
    overrides["data.cache_dir"] = str(Path(cfg.data.cache_dir).expanduser().resolve())
    overrides["output.dir"] = str(Path(cfg.output.dir).expanduser().resolve())
    if cfg.output.storage is not None and not storage.is_uri(cfg.output.storage):
        overrides["output.storage"] = str(Path(cfg.output.storage).expanduser().resolve())
    return load_experiment(file, overrides)


def _raw_value(raw: dict[str, Any], key: str) -> Any:
    """The value at dotted ``key`` of a YAML mapping (None where absent)."""
    node: Any = raw
    for part in key.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def pipeline_files(file: str) -> list[str] | None:
    """The phase files of a pipeline YAML (``pipeline: [rde.yaml, ...]``), else None."""
    path = resolve_path(file)
    raw = read_yaml(path)
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
    checked once attached, by :func:`algospace.cluster.check_cluster`)."""
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


def agent_modules(cfg: ExperimentConfig) -> list[str]:
    """Actor module ids of an RL phase (agent names, or the shared layer modules)."""
    from algospace.config import STRATEGIC_AGENTS, TACTICAL_AGENTS
    from envs.rllib import module_of

    agents = {"strategic_v0": STRATEGIC_AGENTS, "tactical_v0": TACTICAL_AGENTS,
              "joint_v0": (*STRATEGIC_AGENTS, *TACTICAL_AGENTS)}[cfg.env_name]
    return list(dict.fromkeys(module_of(a, cfg.model.sharing) for a in sorted(agents)))


def resolve_handoff(cfg: ExperimentConfig, quick: bool) -> tuple[tuple[ModuleSource, ...],
                                                                    list[dict[str, Any]]]:
    """Checkpoints of ``handoff.load`` (a phase's latest finished run, or a path), checked."""
    actors = agent_modules(cfg)
    ours = [*actors, "critic"] if cfg.training.algorithm == "mappo" else actors
    for name in cfg.handoff.trainable or ():
        if name not in actors:
            raise ConfigError(f"handoff.trainable: {name!r} is not an actor module of the "
                              f"{cfg.phase} phase ({cfg.env_name}); its modules are "
                              f"{', '.join(actors)}")
    sources: list[ModuleSource] = []
    described: list[dict[str, Any]] = []
    loaded: set[str] = set()
    for i, src in enumerate(cfg.handoff.load):
        where = f"handoff.load[{i}]"
        checkpoint, origin, present = _handoff_source(cfg, src, where, quick)
        wanted = list(src.modules) if src.modules is not None else \
            [m for m in ours if m in present]
        for module in wanted:
            if module not in ours:
                raise ConfigError(f"{where}.modules: {module!r} is not a module of the "
                                  f"{cfg.phase} phase (its modules: {', '.join(ours)})")
            if module not in present:
                raise ConfigError(f"{where}: checkpoint {checkpoint} has no module "
                                  f"{module!r} (it has {', '.join(present)})")
        if not wanted:
            raise ConfigError(f"{where}: checkpoint {checkpoint} has none of this phase's "
                              f"modules ({', '.join(ours)})")
        loaded.update(wanted)
        sources.append(ModuleSource(checkpoint, tuple(wanted)))
        described.append({"phase": src.phase, "checkpoint": checkpoint, "modules": wanted,
                          "experiment_dir": origin})
    if cfg.handoff.trainable is not None:
        frozen = [m for m in actors if m not in cfg.handoff.trainable]
        missing = [m for m in frozen if m not in loaded]
        if missing:
            raise ConfigError(
                f"handoff: {', '.join(missing)} would be frozen with untrained weights (not in "
                "handoff.trainable, not loaded by handoff.load); load them from an earlier "
                "phase or add them to handoff.trainable")
    return tuple(sources), described


def _handoff_source(cfg: ExperimentConfig, src: LoadSource, where: str,
                    quick: bool) -> tuple[str, str | None, list[str]]:
    """The checkpoint of one ``handoff.load`` entry, the run it came from, its modules."""
    from algospace.training.train import checkpoint_modules

    if src.phase is not None:
        run = latest_finished(cfg.output.dir, src.phase, quick)
        if run is None:
            kind = "quick (--quick) " if quick else ""
            raise ConfigError(
                f"{where}: no finished {kind}run of phase {src.phase!r} under "
                f"{Path(cfg.output.dir).resolve()}; run `python -m experiments.run "
                f"{src.phase}.yaml{' --quick' if quick else ''}` first, or give "
                "checkpoint: PATH")
        checkpoint, origin = run["best_checkpoint"], run["experiment_dir"]
    else:
        checkpoint, origin = str(Path(str(src.checkpoint)).expanduser().resolve()), None
    try:
        return checkpoint, origin, checkpoint_modules(checkpoint)
    except AlgoSpaceError as err:
        raise ConfigError(f"{where}: {err}") from None


def latest_finished(root: str, phase: str, quick: bool) -> dict[str, Any] | None:
    """The summary of the newest finished run of ``phase`` under ``root``."""
    best: dict[str, Any] | None = None
    for file in Path(root).glob(f"*/*/{SUMMARY}"):
        try:
            summary = json.loads(file.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if summary.get("phase") != phase or summary.get("status") != "finished" \
                or bool(summary.get("quick")) != quick or not summary.get("best_checkpoint"):
            continue
        if not Path(summary["best_checkpoint"]).is_dir():
            continue
        if best is None or summary.get("finished_at", "") > best.get("finished_at", ""):
            best = summary
    return best


def prepare_data(plan: Plan, log: Log) -> None:
    """Build (or find) the prepared data before Ray starts; check the RDE latents."""
    from algospace.features.pipeline import LATENT_TABLE, prepare
    from envs.core.data import stored_tables

    cfg = plan.config
    prepared = prepare(cfg.data, log=lambda m: log(f"[data] {m}"))
    if cfg.phase != "rde" and cfg.env.regime_latent \
            and LATENT_TABLE not in stored_tables(prepared):
        raise ConfigError(
            f"env.regime_latent is true but the prepared data {prepared.key} has no regime "
            f"latents yet; run `python -m experiments.run rde.yaml"
            f"{' --quick' if plan.quick else ''}` with the same data section first, or set "
            "env.regime_latent: false")
    from algospace.market.sizing import contract_of

    note = contract_of(prepared.meta, cfg.env)[1] if cfg.phase != "rde" else None
    if note:
        log(f"[run] {note}")
    regime = prepared.meta.get("regime") or {}
    if cfg.phase != "rde" and cfg.env.regime_latent and regime.get("beats_baseline") is False:
        log(f"[run] note: the regime latents come from a detector that does not beat its "
            f"trivial baseline (validation MSE {regime.get('val_recon_mse', math.nan):.4f} "
            f"vs {regime.get('baseline_recon_mse', math.nan):.4f}: window means, or the "
            "window's first principal components): they carry no more than that baseline")


# ------------------------------------------------------------------ running
def start_ray(plan: Plan, address: str | None, log: Log) -> None:
    """Start a local Ray (on 127.0.0.1, dashboard too, unless configured) or attach to a
    cluster and check that it can run this phase."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # our progress table replaces Tune's
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    import ray

    cfg = plan.config
    if not ray.is_initialized():
        ctx = cluster.attach(cfg, address, log) if address else cluster.start_local(cfg, log)
        url = getattr(ctx, "dashboard_url", None)
        if url:
            log(f"[ray] dashboard: http://{url}")
    if address:
        try:
            cluster.check_attached(cfg, log)
        except ConfigError as err:
            raise ConfigError(f"{plan.experiment.source}: {err}") from None


def _trainable(plan: Plan) -> Any:
    """The Tune trainable of a plan, with its resources."""
    from ray import tune

    from algospace.features.pipeline import prepare
    from algospace.features.shipping import serve, serve_tree
    from algospace.trainables import module_parts, rde_trainable, rl_trainable, train_config

    data = serve(prepare(plan.config.data, log=lambda _: None), plan.config.data)
    if plan.config.phase == "rde":
        return tune.with_resources(tune.with_parameters(rde_trainable,
                                                        experiment=plan.experiment, data=data),
                                   {"cpu": 1})
    from ray.rllib.algorithms.ppo import PPO

    from algospace.training.builder import build_ppo_config

    ppo = build_ppo_config(train_config(plan.config, plan.sources))
    trees = {src.checkpoint: serve_tree(src.checkpoint, module_parts(src))
             for src in plan.sources}
    fn = tune.with_parameters(rl_trainable, experiment=plan.experiment, sources=plan.sources,
                              data=data, trees=trees)
    return tune.with_resources(fn, PPO.default_resource_request(ppo))


def _score(cfg: ExperimentConfig) -> tuple[str, str]:
    """The metric (and mode) ranking checkpoints."""
    if cfg.phase == "rde":
        return "val_loss", "min"
    return cfg.checkpoint.score, cfg.checkpoint.mode


def _callbacks(plan: Plan, log: Log, exp_dir: Path) -> list[Any]:
    """Progress rows, and W&B when enabled."""
    from algospace.progress import InterruptWatch, ProgressTable

    callbacks: list[Any] = [InterruptWatch()]
    if plan.config.logging.progress:
        callbacks.append(ProgressTable(plan.config, log))
    w = plan.config.logging.wandb
    if w.enabled:
        callbacks.append(wandb_callback(plan, exp_dir))
    return callbacks


def wandb_callback(plan: Plan, exp_dir: Path) -> Any:
    """Ray's W&B logger callback: offline unless a key is set (or mode says otherwise); the
    key never goes into a runtime_env (:mod:`algospace.wandb_logging`).

    W&B writes its run directories to ``<exp_dir>/wandb/`` (``wandb sync`` them from there):
    by default they would land in Ray's driver staging directory under /tmp/ray, which Tune
    copies to the results before W&B has finished writing them.
    """
    try:
        import wandb  # noqa: F401
    except ImportError:
        raise ConfigError("logging.wandb.enabled is true but wandb is not installed; run "
                          ".venv/bin/pip install -e \".[wandb]\" or turn W&B off") from None
    from algospace.wandb_logging import WandbCallback

    cfg = plan.config
    w = cfg.logging.wandb
    mode = w.mode
    if mode == "auto":
        mode = "online" if os.environ.get("WANDB_API_KEY") else "offline"
    if mode == "online" and not os.environ.get("WANDB_API_KEY"):
        raise ConfigError("logging.wandb.mode is online but WANDB_API_KEY is not set; set it, "
                          "or use mode: offline and `wandb sync` later")
    if mode == "offline":
        os.environ["WANDB_MODE"] = "offline"
        os.environ.pop("WANDB_API_KEY", None)  # not needed offline
    tags = [cfg.phase, cfg.env_name if cfg.phase != "rde" else "rde", *w.tags]
    if plan.quick:
        tags.append("quick")
    return WandbCallback(project=w.project, group=w.group or cfg.phase, tags=tags, mode=mode,
                         log_config=True, dir=str(exp_dir))


def run_phase(plan: Plan, opts: RunOptions, log: Log) -> dict[str, Any]:
    """Run one validated phase through Tune; returns its summary."""
    from ray import tune

    cfg = plan.config
    root = Path(cfg.output.dir).expanduser().resolve() / plan.name
    trainable = _trainable(plan)
    score, mode = _score(cfg)
    started = time.time()
    if plan.resume_dir is not None:
        exp_dir = plan.resume_dir
        tune_path = tune_dir(exp_dir)
        log(f"[run] resuming {exp_dir}")
        tuner = tune.Tuner.restore(tune_path, trainable=trainable, resume_errored=True)
    else:
        exp_dir = root / time.strftime("%Y%m%d-%H%M%S")
        while exp_dir.exists():
            time.sleep(1)
            exp_dir = root / time.strftime("%Y%m%d-%H%M%S")
        exp_dir.mkdir(parents=True)
        tune_path = str(exp_dir) if cfg.output.storage is None else \
            storage.join(cfg.output.storage, plan.name, exp_dir.name)
        (exp_dir / EXPERIMENT_FILE).write_text(json.dumps(
            {"source": plan.experiment.source, "raw": plan.experiment.raw, "quick": plan.quick,
             "handoff": plan.handoff, "tune_dir": tune_path}, indent=2, default=str))
        tuner = _tuner(plan, trainable, exp_dir, tune_path, score, mode, log)
    log(f"[run] {cfg.phase} phase: results in {exp_dir}")
    if tune_path != str(exp_dir):
        log(f"[run] trials and checkpoints in {tune_path}")
    _resumable_tune_state()
    results = tuner.fit()
    if interrupted(results):  # Tune returns normally after Ctrl-C
        raise KeyboardInterrupt
    wall = time.time() - started
    return finish(plan, results, exp_dir, wall, score, mode, log)


def _resumable_tune_state() -> None:
    """Make Tune's saved experiment state follow the checkpoints, whole, for ``--resume``.

    Tune 2.60 saves the state at most every 10 s, or once a trial has checkpointed
    ``checkpoint.keep`` times; in between, the saved state names an older checkpoint, which
    Tune may already have deleted (``checkpoint.keep``): a driver killed then (SIGKILL, a
    lost node) resumes iterations behind, or not at all ("does not exist on storage"). Here
    it is saved after every trial checkpoint. And Tune copies the state into the experiment
    directory in place: a driver killed mid-copy leaves a truncated file, and Tune then
    silently restarts the experiment from scratch. Here each file is copied to a temporary
    name and renamed.
    """
    from ray.train._internal import storage as train_storage
    from ray.tune.execution.experiment_state import _ExperimentCheckpointManager as Manager

    original = Manager.on_trial_checkpoint
    if getattr(original, "algospace", False):
        return

    def on_trial_checkpoint(self: Any, trial: Any) -> None:
        original(self, trial)
        self._should_force_sync_up = True

    upload = train_storage._upload_to_fs_path

    def upload_whole_files(local_path: str, fs: Any, fs_path: str,
                           exclude: list[str] | None = None) -> None:
        import pyarrow.fs

        if exclude or not isinstance(fs, pyarrow.fs.LocalFileSystem) \
                or not os.path.isdir(local_path):
            return upload(local_path, fs, fs_path, exclude)
        for folder, _, files in os.walk(local_path):
            target = Path(fs_path) / os.path.relpath(folder, local_path)
            target.mkdir(parents=True, exist_ok=True)
            for name in files:
                if name.startswith(".") and "-tmp-" in name:  # Tune's own temporary file
                    continue
                tmp = target / f".{name}.algospace-sync"
                try:
                    shutil.copyfile(os.path.join(folder, name), tmp)
                except FileNotFoundError:  # replaced meanwhile (Tune writes via a temp name)
                    continue
                os.replace(tmp, target / name)
        return None

    on_trial_checkpoint.algospace = True  # type: ignore[attr-defined]
    Manager.on_trial_checkpoint = on_trial_checkpoint
    train_storage._upload_to_fs_path = upload_whole_files


def tune_dir(exp_dir: Path) -> str:
    """Where Tune keeps the run of ``exp_dir``: the folder itself, or in ``output.storage``."""
    saved = json.loads((exp_dir / EXPERIMENT_FILE).read_text())
    return str(saved.get("tune_dir") or exp_dir)


def _tuner(plan: Plan, trainable: Any, exp_dir: Path, tune_path: str, score: str, mode: str,
           log: Log) -> Any:
    from ray import tune

    cfg = plan.config
    scheduler = None
    s = cfg.tune.scheduler
    if s.type == "asha":
        from ray.tune.schedulers import ASHAScheduler

        scheduler = ASHAScheduler(metric=s.metric, mode=s.mode, time_attr="training_iteration",
                                  max_t=cfg.stop.iterations, grace_period=s.grace_period,
                                  reduction_factor=s.reduction_factor)
    stop = {"time_total_s": 60 * cfg.stop.minutes} if cfg.stop.minutes else None
    return tune.Tuner(
        trainable,
        param_space={k: tune_space(v) for k, v in plan.experiment.spaces.items()},
        tune_config=tune.TuneConfig(num_samples=cfg.tune.num_samples, scheduler=scheduler,
                                    max_concurrent_trials=cfg.resources.max_concurrent_trials,
                                    trial_dirname_creator=_trial_dirname),
        run_config=tune.RunConfig(
            name=exp_dir.name, storage_path=tune_path.rsplit("/", 1)[0], stop=stop, verbose=0,
            failure_config=tune.FailureConfig(max_failures=cfg.tune.max_failures),
            # Every checkpoint is kept while the run goes on and pruned to checkpoint.keep
            # when it ends (prune_checkpoints): Tune's own pruning can delete the checkpoint
            # its last saved state names, which a run killed then could not resume from.
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=None, checkpoint_score_attribute=score,
                checkpoint_score_order=mode),
            callbacks=_callbacks(plan, log, exp_dir)))


def interrupted(results: Any) -> bool:
    """Whether the run was stopped by Ctrl-C (Tune then returns normally, its trials
    marked TERMINATED like finished ones; :class:`InterruptWatch` saw the signal)."""
    from algospace.progress import INTERRUPTED

    return INTERRUPTED.is_set()


def _trial_dirname(trial: Any) -> str:
    """Short trial directory names (``trial_<id>``)."""
    return f"trial_{trial.trial_id}"


def _runs(root: Path) -> list[Path]:
    """Experiment directories under ``root``, newest first."""
    return sorted((p for p in root.glob("*") if (p / EXPERIMENT_FILE).is_file()), reverse=True)


def _finished(run: Path) -> bool:
    summary = run / SUMMARY
    return summary.is_file() and json.loads(summary.read_text()).get("status") == "finished"


def unfinished_run(root: Path) -> Path:
    """The newest experiment directory under ``root`` without a finished summary."""
    runs = _runs(root)
    for run in runs:
        if not _finished(run):
            if not storage.exists(storage.join(tune_dir(run), "tuner.pkl")):
                raise ConfigError(f"--resume: {run} stopped before Tune saved its state (no "
                                  f"tuner.pkl in {tune_dir(run)}), so there is nothing to "
                                  "continue; start a new run without --resume")
            return run
    raise ConfigError(f"--resume: no unfinished run under {root} (runs found: {len(runs)}); "
                      "start a new one without --resume")


def resumed_plan(plan: Plan, log: Log) -> Plan:
    """The plan of the unfinished run to continue, with the settings it started with."""
    from algospace.config import experiment_from_raw

    exp_dir = unfinished_run(Path(plan.config.output.dir) / plan.name)
    saved = json.loads((exp_dir / EXPERIMENT_FILE).read_text())
    if saved["raw"] != plan.experiment.raw:
        log(f"[run] note: {plan.experiment.source} changed since {exp_dir.name} started; "
            "it resumes with the settings it started with")
    experiment = experiment_from_raw(saved["raw"], saved["source"])
    sources = tuple(ModuleSource(h["checkpoint"], tuple(h["modules"]))
                    for h in saved.get("handoff", []))
    return Plan(experiment, bool(saved.get("quick")), sources, saved.get("handoff", []),
                exp_dir)


def best_checkpoint(results: Any, score: str, mode: str) -> tuple[Any, dict[str, Any], str]:
    """The best kept checkpoint over every trial by ``score`` (latest if none scored)."""
    scored: list[tuple[float, Any, dict[str, Any], str]] = []
    latest: list[tuple[Any, dict[str, Any], str]] = []
    for result in results:
        if result.error is not None:
            continue
        for checkpoint, metrics in result.best_checkpoints or []:
            value = metrics.get(score)
            if isinstance(value, int | float) and math.isfinite(value):
                scored.append((float(value), checkpoint, metrics, result.path))
        if result.checkpoint is not None:
            latest.append((result.checkpoint, result.metrics or {}, result.path))
    if scored:
        pick = max(scored, key=lambda t: t[0]) if mode == "max" else \
            min(scored, key=lambda t: t[0])
        return pick[1], pick[2], f"{score} ({mode})"
    if latest:
        return latest[0][0], latest[0][1], f"latest checkpoint ({score} was not reported)"
    raise AlgoSpaceError("no trial finished with a checkpoint; see the errors above and the "
                         "trial logs (error.txt) in the results directory")


def prune_checkpoints(results: Any, keep: int | None, score: str, mode: str,
                      log: Log) -> None:
    """Keep each trial's ``keep`` best checkpoints by ``score`` and its latest one."""
    if keep is None:
        return
    removed = 0
    for result in results:
        kept = result.best_checkpoints or []

        def rank(item: tuple[Any, dict[str, Any]]) -> float:
            value = item[1].get(score)
            if not (isinstance(value, int | float) and math.isfinite(value)):
                return -math.inf
            return float(value) if mode == "max" else -float(value)

        best = {c.path for c, _ in sorted(kept, key=rank, reverse=True)[:keep]}
        latest = result.checkpoint.path if result.checkpoint is not None else None
        for c, _ in kept:
            if c.path not in best and c.path != latest and storage.delete(c):
                removed += 1
    if removed:
        log(f"[run] kept the {keep} best checkpoints (by {score}) and the latest of each "
            f"trial; removed {removed}")


def finish(plan: Plan, results: Any, exp_dir: Path, wall: float, score: str, mode: str,
           log: Log) -> dict[str, Any]:
    """Pick the best checkpoint, evaluate it, write summary.json."""
    cfg = plan.config
    trials = []
    for result in results:
        m = result.metrics or {}
        trials.append({"path": result.path, "error": str(result.error) if result.error else None,
                       "params": result.config, "iterations": m.get("training_iteration"),
                       "env_steps": m.get("env_steps"), "time_total_s": m.get("time_total_s"),
                       "last": {k: v for k, v in m.items()
                                if isinstance(v, int | float) and not isinstance(v, bool)}})
    failed = sum(t["error"] is not None for t in trials)
    for t in trials:
        if t["error"]:
            log(f"[run] trial {Path(t['path']).name} failed: {t['error'].splitlines()[0]}")
    checkpoint, metrics, chosen_by = best_checkpoint(results, score, mode)
    local = storage.local_checkpoint(checkpoint, exp_dir / "best_checkpoint")
    prune_checkpoints(results, cfg.checkpoint.keep if cfg.phase != "rde" else 1, score, mode,
                      log)
    best = {"checkpoint": local, "chosen_by": chosen_by,
            "metrics": {k: v for k, v in metrics.items()
                        if isinstance(v, int | float) and not isinstance(v, bool)}}
    if local != checkpoint.path:
        best["stored_at"] = checkpoint.path
        log(f"[run] best checkpoint ({chosen_by}): {checkpoint.path}, copied to {local}")
    else:
        log(f"[run] best checkpoint ({chosen_by}): {local}")
    summary: dict[str, Any] = {
        "name": plan.name, "phase": cfg.phase, "quick": plan.quick,
        "source": plan.experiment.source, "experiment_dir": str(exp_dir),
        "status": "running", "trials": trials, "failed_trials": failed,
        "best": best, "best_checkpoint": local,
        "wall_seconds": wall, "handoff": plan.handoff,
        "config": resolved_dict(cfg), "search_spaces": plan.experiment.spaces,
        "tensorboard": f"tensorboard --logdir {exp_dir}",
    }
    if cfg.phase == "rde":
        summary["rde"] = store_latents(cfg, local, log)
    else:
        summary["selection"] = selection_trials(results)
        write_json(exp_dir / SELECTION, summary["selection"])
        steps = [t["env_steps"] for t in trials if isinstance(t["env_steps"], int | float)]
        secs = [t["time_total_s"] for t in trials if isinstance(t["time_total_s"], int | float)]
        summary["throughput"] = {
            "env_steps": sum(steps), "train_seconds": sum(secs),
            "env_steps_per_s": sum(steps) / sum(secs) if secs and sum(secs) > 0 else None}
        if cfg.evaluation.final:
            summary["evaluation"] = final_evaluation(cfg, local, exp_dir, log)
    summary["status"] = "finished"
    summary["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    write_json(exp_dir / SUMMARY, summary)
    return summary


SELECTION = "selection.json"
"""What model selection looked at (for the Deflated Sharpe Ratio), next to summary.json."""


def selection_trials(results: Any) -> dict[str, Any]:
    """The candidates model selection compared: every validation backtest of every trial.

    Their daily validation P&L (``val_daily_pnl``) gives the variance of their Sharpe
    ratios and an effective number of independent trials (a trial's successive
    checkpoints are highly correlated and count as far fewer than their number).
    """
    from algospace.evaluation.stats import effective_trials

    series: list[list[float]] = []
    for result in results:
        frame = getattr(result, "metrics_dataframe", None)
        if frame is None or "val_daily_pnl" not in frame.columns:
            continue
        for text in frame["val_daily_pnl"].dropna():
            values = json.loads(text) if isinstance(text, str) else None
            if values:
                series.append([float(v) for v in values])
    lengths = {len(v) for v in series}
    if not series or len(lengths) != 1:
        return {"candidates": len(series), "effective_trials": 1.0, "sharpe_variance": 0.0,
                "note": "no comparable validation series; the DSR counts one trial"}
    matrix = np.asarray(series)
    sd = matrix.std(axis=1, ddof=1)
    sharpe = np.divide(matrix.mean(axis=1), sd, out=np.zeros(len(sd)), where=sd > 0)
    return {"candidates": len(series), "effective_trials": float(effective_trials(matrix)),
            "sharpe_variance": float(np.var(sharpe, ddof=1)) if len(sharpe) > 1 else 0.0,
            "note": "per-day (non-annualised) validation Sharpe ratios of every checkpoint "
                    "evaluated in every trial"}


def store_latents(cfg: ExperimentConfig, checkpoint: str, log: Log) -> dict[str, Any]:
    """Copy the best RDE next to the summary and write its latents into the data store."""
    from algospace.features.pipeline import LATENT_TABLE, prepare
    from algospace.regime.latents import baseline_warning
    from algospace.regime_cli import store_latents as write_latents

    prepared = prepare(cfg.data, log=lambda _: None)
    latents = write_latents(prepared, checkpoint, log=lambda m: log(f"[rde] {m}"))
    finite = int(latents.notna().all(axis=1).sum())
    log(f"[rde] latents: table {LATENT_TABLE} in {prepared.path} ({finite:,} of "
        f"{len(latents):,} bars)")
    recorded = prepared.store.meta(prepared.key).get("regime", {})
    warning = baseline_warning(recorded.get("val_recon_mse", math.nan),
                               recorded.get("baseline_recon_mse", math.nan))
    if warning:
        log(f"[rde] {warning}")
    return {"latent_table": LATENT_TABLE, "store": str(prepared.path), "bars": len(latents),
            "bars_with_latent": finite, "val_recon_mse": recorded.get("val_recon_mse"),
            "baseline_recon_mse": recorded.get("baseline_recon_mse"),
            "beats_baseline": recorded.get("beats_baseline")}


def final_evaluation(cfg: ExperimentConfig, checkpoint: str, exp_dir: Path,
                     log: Log) -> dict[str, Any]:
    """Evaluate the best checkpoint on the test split; print the headline table."""
    from algospace.evaluation.report import EvaluateConfig, evaluate

    e = cfg.evaluation
    from algospace.inference.gates import GateConfig

    report = evaluate(EvaluateConfig(checkpoint=checkpoint, split=e.split,
                                     out=str(exp_dir / f"evaluation-{e.split}"),
                                     random_seeds=e.random_seeds, bootstrap=e.bootstrap,
                                     seed=cfg.seed,
                                     gates=GateConfig(threshold=e.gate_threshold)
                                     if e.gates else None, mc_passes=e.mc_passes,
                                     selection=str(exp_dir / SELECTION)), log=log)
    from algospace.evaluation.table import evaluation_table

    headline = evaluation_table(report)
    for line in headline:
        log(line)
    keys = ("sharpe", "sortino", "total_return", "max_drawdown", "trades", "net_pnl", "costs",
            "probabilistic_sharpe", "ruined", "sharpe_mean_over_seeds")
    return {"out": report["out"], "report_html": str(Path(report["out"]) / "report.html"),
            "split": report["split"], "period": report["period"],
            "agents": {k: report["agents"].get(k) for k in keys[:-1]},
            "baselines": {name: {k: m.get(k) for k in keys}
                          for name, m in report["baselines"].items()},
            "sharpe_difference_vs_best": report["sharpe_difference_vs_best"],
            "pnl_difference_vs_best": report["pnl_difference_vs_best"],
            **{k: report["agents"].get(k) for k in CAPTURE_KEYS if k in report["agents"]},
            "deflated_sharpe": report["agents"].get("deflated_sharpe"),
            "oracles": report.get("oracles", {}),
            **({"gated": {"agents": {k: report["gated"]["metrics"].get(k) for k in keys[:-1]},
                          "gate_counts": report["gated"]["gate_counts"],
                          "gates": report["gated"]["gates"]}}
               if "gated" in report else {})}


def write_json(path: Path, content: dict[str, Any]) -> None:
    """Write JSON atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(content, indent=2, default=str))
    tmp.replace(path)


# ------------------------------------------------------------------ entry point
def plan_phase(file: str, opts: RunOptions, log: Log, resume: bool = False) -> Plan:
    """Validate a phase, resolve its hand-off (or find the run to resume); no Ray yet."""
    experiment = load_phase(file, opts)
    plan = Plan(experiment, opts.quick)
    if resume:  # nothing to resume: say so before Ray starts
        return resumed_plan(plan, log)
    attached = cluster.address(opts.address) is not None
    try:
        check_resources(plan.config, attached)
        if plan.config.phase != "rde":
            plan.sources, plan.handoff = resolve_handoff(plan.config, opts.quick)
    except ConfigError as err:
        raise ConfigError(f"{experiment.source}: {err}") from None
    return plan


def run(opts: RunOptions, log: Log = print) -> list[dict[str, Any]]:
    """Run a phase file or a pipeline file; returns each phase's summary."""
    files = pipeline_files(opts.file)
    if files is None:
        files = [opts.file]
    elif opts.name:
        raise ConfigError("--name applies to one phase, not a pipeline")
    attached = cluster.address(opts.address) is not None
    for file in files:  # every phase's schema and resources are checked before the first runs
        experiment = load_phase(file, opts)
        try:
            check_resources(experiment.config, attached)
        except ConfigError as err:
            raise ConfigError(f"{experiment.source}: {err}") from None
    summaries = []
    started = time.time()
    fresh = not opts.resume  # once a phase starts afresh, the later ones do too
    for n, file in enumerate(files, 1):
        if len(files) > 1:
            log(f"[pipeline] phase {n}/{len(files)}: {file}")
        resume = not fresh
        if resume and len(files) > 1:  # a pipeline resumes where it stopped
            phase = Plan(load_phase(file, opts), opts.quick)
            root = Path(phase.config.output.dir) / phase.name
            runs = _runs(root)
            if runs and _finished(runs[0]):
                log(f"[pipeline] already finished: {runs[0]}")
                summaries.append(json.loads((runs[0] / SUMMARY).read_text()))
                continue
            resume = bool(runs)
        fresh = fresh or not resume
        plan = plan_phase(file, opts, log, resume)
        prepare_data(plan, log)
        start_ray(plan, cluster.address(opts.address), log)
        summaries.append(run_phase(plan, opts, log))
    if len(files) > 1:
        log(f"[pipeline] {len(files)} phases finished in {time.time() - started:.0f} s")
    last = summaries[-1]
    log(f"[run] summary: {Path(last['experiment_dir']) / SUMMARY}")
    if "evaluation" in last:
        log(f"[run] report:  {last['evaluation']['report_html']}")
    return summaries


def build_parser(prog: str = "python -m experiments.run") -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(prog=prog, description="Run a training phase (or a "
                                     "pipeline of phases) from a YAML file through Ray Tune.")
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by ``experiments.run`` and ``algospace run``."""
    parser.add_argument("file", help="YAML file, or a name in tune_configs/ "
                        "(strategic.yaml, pipeline.yaml, sweeps/strategic_lr_grid.yaml, ...)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 2 iterations on a 20-day market")
    parser.add_argument("--resume", action="store_true",
                        help="continue the latest unfinished run of this experiment")
    parser.add_argument("--address", default=None,
                        help="Ray cluster to attach to (default: RAY_ADDRESS, else local)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override a YAML key, e.g. --set training.lr=1e-4 (repeatable)")
    parser.add_argument("--name", default=None, help="experiment name (default: file stem)")
    parser.add_argument("--wandb", action="store_true", help="log to Weights & Biases")


def options(args: argparse.Namespace) -> RunOptions:
    """RunOptions from parsed arguments."""
    return RunOptions(file=args.file, quick=args.quick, resume=args.resume,
                      address=args.address, sets=tuple(args.sets), name=args.name,
                      wandb=args.wandb)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; input errors exit 2, Ctrl-C exits 130."""
    args = build_parser().parse_args(argv)
    return run_cli(options(args))


def run_cli(opts: RunOptions) -> int:
    """Run with error handling shared by both commands."""
    def log(message: str) -> None:
        print(message, flush=True)

    try:
        run(opts, log)
    except AlgoSpaceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: checkpoints are kept; continue with --resume", file=sys.stderr)
        return 130
    return 0

