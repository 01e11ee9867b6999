"""A phase, or a pipeline of phases, from the YAML file to ``summary.json``.

Order of work: read and validate the YAML (schema, search spaces, resources, hand-off) and
prepare the data — all before Ray starts; a phase that reads regime latents picks their
detector (``handoff.regime``), and where there is none yet has one trained first (the
``rde.yaml`` phase on the same data). Then start (or attach to) Ray, run the Tune
experiment with a progress row per iteration, pick the best checkpoint, evaluate it on the
test split, and write ``summary.json``. Results of one run go to
``<output.dir>/<name>/<timestamp>/`` (see the README, "Outputs").
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from algospace.config import Experiment, read_yaml, resolve_path
from algospace.errors import ConfigError
from algospace.tune import cluster
from algospace.tune.console import quiet_ray_console
from algospace.tune.detector import needs_detector, use_detector
from algospace.tune.fold_detectors import fit_fold_detectors, fits_per_fold
from algospace.tune.handoff import resolve_handoff
from algospace.tune.plan import (
    SUMMARY,
    Log,
    Plan,
    RunOptions,
    check_resources,
    load_phase,
    pipeline_files,
)
from algospace.tune.prepare import RDE_FILE, data_notes, prepare_data
from algospace.tune.resume import command_record, finished, resumed_plan, runs
from algospace.tune.searched import best_config_line
from algospace.tune.tuner import run_phase, start_ray
from algospace.tune.walkforward import stitched_line
from algospace.tune.wandb_logging import summary_note


def plan_phase(experiment: Experiment, opts: RunOptions, log: Log,
               resume: bool = False) -> Plan:
    """Check a loaded phase, resolve its hand-off (or find the run to resume); no Ray yet."""
    plan = Plan(experiment, opts.quick, command=command_record(opts, experiment.source))
    if resume:  # nothing to resume: say so before Ray starts
        return resumed_plan(plan, log, opts.sets)
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
    quiet_ray_console()
    raw = read_yaml(resolve_path(opts.file))  # each file is read once
    files = pipeline_files(opts.file, raw)
    if files is None:
        files = [opts.file]
    elif opts.name:
        raise ConfigError("--name applies to one phase, not a pipeline")
    attached = cluster.address(opts.address) is not None
    experiments = []
    for file in files:  # every phase's schema and resources are checked before the first runs
        experiment = load_phase(file, opts, raw=raw if file == opts.file else None)
        try:
            check_resources(experiment.config, attached)
        except ConfigError as err:
            raise ConfigError(f"{experiment.source}: {err}") from None
        experiments.append(experiment)
    summaries = []
    started = time.time()
    fresh = not opts.resume  # once a phase starts afresh, the later ones do too
    for n, (file, experiment) in enumerate(zip(files, experiments, strict=True), 1):
        if len(files) > 1:
            log(f"[pipeline] phase {n}/{len(files)}: {file}")
        resume = not fresh
        if resume and len(files) > 1:  # a pipeline resumes where it stopped
            phase = Plan(experiment, opts.quick)
            found = runs(Path(phase.config.output.dir) / phase.name)
            if found and finished(found[0]):
                log(f"[pipeline] already finished: {found[0]}")
                summaries.append(json.loads((found[0] / SUMMARY).read_text()))
                continue
            resume = bool(found)
        fresh = fresh or not resume
        plan = plan_phase(experiment, opts, log, resume)
        prepared = prepare_data(plan, log)
        if fits_per_fold(plan):  # walk-forward: each fold's own detector, on its train bars
            prepared = fit_fold_detectors(plan, opts, prepared, log)
        else:
            if needs_detector(plan, prepared):
                train_regime_detector(plan, opts, log)
                prepared = prepare_data(plan, log)
            prepared = use_detector(plan, prepared, log)
        data_notes(plan, prepared, log)
        start_ray(plan, cluster.address(opts.address), log, opts.dashboard_port)
        summaries.append(run_phase(plan, log))
    if len(files) > 1:
        log(f"[pipeline] {len(files)} phases finished in {time.time() - started:.0f} s")
    closing_lines(summaries, log)
    return summaries


def closing_lines(summaries: list[dict[str, Any]], log: Log) -> None:
    """The end of a run: each phase's best trial (its searched values and the metric that
    chose it) — or, for a walk-forward phase, its stitched out-of-sample figures — and W&B
    folder, then where the last summary and report are."""
    for summary in summaries:
        first = stitched_line(summary) if "walk_forward" in summary else \
            best_config_line(summary)
        for line in (first, summary_note(summary)):
            if line:
                log(line)
    last = summaries[-1]
    log(f"[run] summary: {Path(last['experiment_dir']) / SUMMARY}")
    if "evaluation" in last:
        log(f"[run] report:  {last['evaluation']['report_html']}")
    elif "walk_forward" in last:
        log(f"[run] report:  {last['walk_forward']['report']}")


def run_experiment(file: str, *, quick: bool = False, sets: Sequence[str] = (),
                   name: str | None = None, address: str | None = None, resume: bool = False,
                   wandb: bool = False, log: Log = print) -> list[dict[str, Any]]:
    """``python -m experiments.run FILE`` from Python: the same options as keywords
    (``sets``: ``key=value`` overrides); returns each phase's summary."""
    return run(RunOptions(file, quick=quick, resume=resume, address=address,
                          sets=tuple(sets), name=name, wandb=wandb), log)


def train_regime_detector(plan: Plan, opts: RunOptions, log: Log) -> dict[str, Any]:
    """Run the ``rde.yaml`` phase on ``plan``'s data section (and ``--quick``), so that the
    prepared data holds the regime latents ``plan`` reads; returns its summary."""
    log(f"[run] no regime latents for this data yet: training the regime detector first "
        f"({RDE_FILE})")
    cfg = plan.config
    rde = load_phase(RDE_FILE, replace(opts, file=RDE_FILE, resume=False, sets=(), name=None),
                     data=plan.experiment.raw.get("data"), inherit=detector_inherits(cfg))
    rde_plan = plan_phase(rde, opts, log)
    prepare_data(rde_plan, log)
    start_ray(rde_plan, cluster.address(opts.address), log, opts.dashboard_port)
    return run_phase(rde_plan, log)


def detector_inherits(cfg: Any) -> dict[str, Any]:
    """What the regime detector trained for a phase takes from that phase's settings (its
    ``--set`` overrides included): where results go and the local Ray's dashboard."""
    dashboard = cfg.logging.dashboard
    inherit: dict[str, Any] = {"output.dir": cfg.output.dir,
                               "logging.dashboard.enabled": dashboard.enabled,
                               "logging.dashboard.host": dashboard.host,
                               "logging.dashboard.port": dashboard.port}
    if cfg.output.storage is not None:
        inherit["output.storage"] = cfg.output.storage
    return inherit
