"""Ray and Tune for one phase: start (or attach to) Ray, build the trainable and the Tuner,
run it (or restore an unfinished run) and hand the results to :mod:`algospace.tune.results`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from algospace.config import ExperimentConfig, tune_space
from algospace.errors import ConfigError, operational
from algospace.tune import cluster, storage
from algospace.tune.fold_detectors import KEY, detector_ids, fits_per_fold
from algospace.tune.plan import EXPERIMENT_FILE, Log, Plan
from algospace.tune.results import finish
from algospace.tune.resume import tune_dir
from algospace.tune.walkforward import fold_space, searched_keys


def start_ray(plan: Plan, address: str | None, log: Log,
              dashboard_port: int | None = None) -> None:
    """Start a local Ray (on 127.0.0.1, dashboard too, unless configured) or attach to a
    cluster (``auto``: the Ray of another run on this machine) and check that it can run
    this phase. ``dashboard_port``: exactly this port for a local Ray (``--dashboard-port``).

    Ray failing to start or to answer is an :class:`~algospace.errors.OperationalError`,
    its traceback logged under ``<output.dir>/<name>/errors/``.
    """
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # our progress table replaces Tune's
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    cfg = plan.config
    loaded = sys.modules.get("ray")
    with operational(errors_dir(plan)):
        if loaded is None or not loaded.is_initialized():
            if address:  # before Ray is imported: it may turn on token authentication
                address = cluster.resolve(address, log)
            import ray  # noqa: F401  (Ray's settings are read now)

            if address:
                ctx = cluster.attach(cfg, address, log)
            else:
                ctx = cluster.start_local(cfg, log, name=plan.name,
                                          dashboard_port=dashboard_port)
            url = getattr(ctx, "dashboard_url", None)
            if url:
                log(f"[ray] dashboard: http://{url}" + (" (the cluster's)" if address else ""))
            elif address:
                log("[ray] the cluster has no dashboard (or it did not say where)")
    if address:
        try:
            cluster.check_attached(cfg, log)
        except ConfigError as err:
            raise ConfigError(f"{plan.experiment.source}: {err}") from None


def errors_dir(plan: Plan) -> Path:
    """Where a run's operational failures are logged before its folder exists."""
    return Path(plan.config.output.dir).expanduser().resolve() / plan.name / "errors"


def trainable(plan: Plan) -> Any:
    """The Tune trainable of a plan, with its resources."""
    from ray import tune

    from algospace.features.pipeline import prepare
    from algospace.features.shipping import serve, serve_tree
    from algospace.tune.trainables import module_parts, rde_trainable, rl_trainable, train_config

    data = serve(prepare(plan.config.data, log=lambda _: None), plan.config.data)
    if plan.config.phase == "rde":
        return tune.with_resources(tune.with_parameters(rde_trainable,
                                                        experiment=plan.experiment, data=data),
                                   {"cpu": 1})
    from ray.rllib.algorithms.ppo import PPO

    from algospace.training.builder import build_ppo_config

    ppo = build_ppo_config(train_config(probe_config(plan), plan.sources))
    trees = {src.checkpoint: serve_tree(src.checkpoint, module_parts(src))
             for src in plan.sources}
    fn = tune.with_parameters(rl_trainable, experiment=plan.experiment, sources=plan.sources,
                              data=data, trees=trees)
    return tune.with_resources(fn, PPO.default_resource_request(ppo))


def probe_config(plan: Plan) -> ExperimentConfig:
    """The config whose env tells RLlib the spaces and resources: the phase's, or on a
    walk-forward run reading regime latents its first fold's (an env there must name its
    fold's own detector)."""
    from algospace.tune.walkforward import FOLD_KEY, trial_config

    if not fits_per_fold(plan):
        return plan.config
    return trial_config(plan.experiment, {FOLD_KEY: 0, KEY: detector_ids(plan.regime)})


def score_of(cfg: ExperimentConfig) -> tuple[str, str]:
    """The metric (and mode) ranking checkpoints."""
    if cfg.phase == "rde":
        return "val_loss", "min"
    return cfg.checkpoint.score, cfg.checkpoint.mode


def callbacks(plan: Plan, log: Log, exp_dir: Path) -> list[Any]:
    """Progress rows, and W&B when enabled."""
    from algospace.tune.progress import InterruptWatch, ProgressTable

    out: list[Any] = [InterruptWatch()]
    if plan.config.logging.progress:
        out.append(ProgressTable(plan.config, log, searched=searched_keys(
            plan.config, list(plan.experiment.spaces))))
    if plan.config.logging.wandb.enabled:
        from algospace.tune.wandb_logging import wandb_callback

        out.append(wandb_callback(plan, exp_dir, log))
    return out


def run_phase(plan: Plan, log: Log) -> dict[str, Any]:
    """Run one validated phase through Tune; returns its summary.

    A full or read-only disk is an :class:`~algospace.errors.OperationalError`, logged in
    the run's folder (before it exists: under ``<output.dir>/<name>/errors/``).
    """
    from algospace.ray_compat import resumable_tune_state

    cfg = plan.config
    score, mode = score_of(cfg)
    started = time.time()
    with operational(errors_dir(plan)):
        exp_dir, tune_path, tuner = open_run(plan, score, mode, log)
    with operational(exp_dir):
        log(f"[run] {cfg.phase} phase: results in {exp_dir}")
        if tune_path != str(exp_dir):
            log(f"[run] trials and checkpoints in {tune_path}")
        with resumable_tune_state():
            results = tuner.fit()
        if interrupted():  # Tune returns normally after Ctrl-C
            raise KeyboardInterrupt
        wall = time.time() - started
        return finish(plan, results, exp_dir, wall, score, mode, log)


def open_run(plan: Plan, score: str, mode: str, log: Log) -> tuple[Path, str, Any]:
    """The run's folder, Tune's path and the Tuner: a new run, or the one to resume."""
    from ray import tune

    cfg = plan.config
    fn = trainable(plan)
    if plan.resume_dir is not None:
        log(f"[run] resuming {plan.resume_dir}")
        tune_path = tune_dir(plan.resume_dir)
        return plan.resume_dir, tune_path, tune.Tuner.restore(tune_path, trainable=fn,
                                                              resume_errored=True)
    exp_dir = new_run_dir(Path(cfg.output.dir).expanduser().resolve() / plan.name)
    tune_path = str(exp_dir) if cfg.output.storage is None else \
        storage.join(cfg.output.storage, plan.name, exp_dir.name)
    (exp_dir / EXPERIMENT_FILE).write_text(json.dumps(
        {"source": plan.experiment.source, "raw": plan.experiment.raw, "quick": plan.quick,
         "handoff": plan.handoff, "regime": plan.regime, "tune_dir": tune_path,
         "command": plan.command},
        indent=2, default=str))
    return exp_dir, tune_path, build_tuner(plan, fn, exp_dir, tune_path, score, mode, log)


def new_run_dir(root: Path) -> Path:
    """A new ``<root>/<timestamp>`` folder, created; two runs of one experiment started in
    the same second get different ones (the later waits for the next second)."""
    root.mkdir(parents=True, exist_ok=True)
    while True:
        exp_dir = root / time.strftime("%Y%m%d-%H%M%S")
        try:
            exp_dir.mkdir()
        except FileExistsError:
            time.sleep(0.2)
            continue
        return exp_dir


def build_tuner(plan: Plan, fn: Any, exp_dir: Path, tune_path: str, score: str, mode: str,
                log: Log) -> Any:
    """The Tuner of a new run of ``plan`` (its search space, scheduler, stop and storage)."""
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
        fn,
        param_space={**fold_space(cfg, detector_ids(plan.regime)),
                     **{k: tune_space(v) for k, v in plan.experiment.spaces.items()}},
        tune_config=tune.TuneConfig(num_samples=cfg.tune.num_samples, scheduler=scheduler,
                                    max_concurrent_trials=cfg.resources.max_concurrent_trials,
                                    trial_dirname_creator=trial_dirname),
        run_config=tune.RunConfig(
            name=exp_dir.name, storage_path=tune_path.rsplit("/", 1)[0], stop=stop, verbose=0,
            failure_config=tune.FailureConfig(max_failures=cfg.tune.max_failures),
            # Every checkpoint is kept while the run goes on and pruned to checkpoint.keep
            # when it ends (prune_checkpoints): Tune's own pruning can delete the checkpoint
            # its last saved state names, which a run killed then could not resume from.
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=None, checkpoint_score_attribute=score,
                checkpoint_score_order=mode),
            callbacks=callbacks(plan, log, exp_dir)))


def interrupted() -> bool:
    """Whether the run was stopped by Ctrl-C (Tune then returns normally, its trials
    marked TERMINATED like finished ones; the progress module's watch saw the signal)."""
    from algospace.tune.progress import INTERRUPTED

    return INTERRUPTED.is_set()


def trial_dirname(trial: Any) -> str:
    """Short trial directory names (``trial_<id>``)."""
    return f"trial_{trial.trial_id}"
