"""Walk-forward runs: one Tune trial per fold, then one stitched out-of-sample record.

A phase with ``evaluation.walk_forward`` set gets a grid over the fold index (trial config
key ``fold``) in its Tune search space, so every fold is an ordinary trial: it shows in the
progress table with a ``fold`` column, runs in parallel where resources allow and resumes
like any other. A trial trains on its fold's training ranges and scores its checkpoints on
its fold's validation block (``EnvConfig.fold``). When the trials are done,
:func:`evaluate_folds` backtests each fold's best checkpoint on that fold's test block and
writes ``<run>/walkforward/`` (:mod:`algospace.evaluation.walkforward_report`). With
``env.regime_latent: true`` each fold's trial reads its own fold's regime detector (trial
config key ``fold_detectors``, :mod:`algospace.tune.fold_detectors`), named per fold in
the record.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from algospace.config import Experiment, ExperimentConfig
from algospace.tune.plan import Log, Plan

FOLD_KEY = "fold"
"""Trial config key of the walk-forward fold index."""
OUT_DIR = "walkforward"
"""Folder of the stitched record inside a run's folder."""


def fold_space(cfg: ExperimentConfig, detectors: Mapping[str, str] | None = None
               ) -> dict[str, Any]:
    """The Tune param-space entries of the folds (empty without walk-forward): the fold
    grid and, where the agents read regime latents, each fold's detector id
    (``detectors``, :mod:`algospace.tune.fold_detectors`; the same in every trial)."""
    from ray import tune

    from algospace.tune.fold_detectors import KEY

    wf = cfg.evaluation.walk_forward
    if wf is None or cfg.phase == "rde":
        return {}
    space: dict[str, Any] = {FOLD_KEY: tune.grid_search(list(range(wf.folds)))}
    if cfg.env.regime_latent:
        space[KEY] = {str(k): detectors[str(k)] for k in range(wf.folds)} \
            if detectors and all(str(k) in detectors for k in range(wf.folds)) else {}
    return space


def searched_keys(cfg: ExperimentConfig, spaces: list[str]) -> list[str]:
    """The progress table's searched columns: ``fold`` first on a walk-forward run."""
    return ([FOLD_KEY] if cfg.evaluation.walk_forward is not None else []) + spaces


def trial_config(experiment: Experiment, config: dict[str, Any]) -> ExperimentConfig:
    """One trial's config: the searched values set, and its env on the trial's fold
    (reading that fold's own regime detector where it reads latents)."""
    from algospace.tune.fold_detectors import KEY, fold_detector

    values = {k: v for k, v in config.items() if k not in (FOLD_KEY, KEY)}
    cfg = experiment.resolved(values)
    if FOLD_KEY in config and cfg.evaluation.walk_forward is not None:
        fold = int(config[FOLD_KEY])
        detector = fold_detector(config, fold) if cfg.env.regime_latent else None
        cfg = replace(cfg, env=replace(cfg.env, fold=fold, regime_detector=detector))
    return cfg


def last_fold_results(results: Any) -> tuple[list[Any], int | None]:
    """The finished trials of the last fold that has one, and that fold's index.

    A walk-forward run's folds are not competing trials (each is validated on its own
    block), so no "best over every trial" exists; the checkpoint a later phase loads or a
    user deploys is the last fold's best: trained on the most, and most recent, history.
    ``(every trial, None)`` when no trial carries a fold (not a walk-forward run).
    """
    folds = [(int(r.config[FOLD_KEY]), r) for r in results
             if r.error is None and FOLD_KEY in (r.config or {})]
    if not folds:
        return list(results), None
    last = max(f for f, _ in folds)
    return [r for f, r in folds if f == last], last


def _best_of_trial(result: Any, score: str, mode: str) -> Any:
    """The trial's best checkpoint by ``score`` (its latest where none scored)."""
    scored = [(float(m[score]), c) for c, m in result.best_checkpoints or []
              if isinstance(m.get(score), int | float) and math.isfinite(m[score])]
    if scored:
        pick = max(scored, key=lambda t: t[0]) if mode == "max" else \
            min(scored, key=lambda t: t[0])
        return pick[1]
    return result.checkpoint


def evaluate_folds(plan: Plan, results: Any, exp_dir: Path, score: str, mode: str,
                   log: Log, selection: Callable[[list[Any]], dict[str, Any]]
                   ) -> dict[str, Any]:
    """Backtest each fold's best checkpoint on its test block; write and print the record.

    With several trials per fold (a search), the fold's best checkpoint over its trials
    is taken, and every one of its validation candidates counts in the DSR
    (``selection``: what a fold's trials' model selection looked at,
    :func:`algospace.tune.results.selection_trials`).
    """
    from algospace.data.walkforward import KEY
    from algospace.evaluation.backtest import backtest, greedy_policy
    from algospace.evaluation.walkforward_report import (
        fold_record,
        walk_forward_report,
        walk_forward_table,
        write_walk_forward,
    )
    from algospace.features.pipeline import prepare
    from algospace.training.checkpoint import load_actors
    from algospace.tune import storage
    from envs.core.data import env_fold

    by_fold: dict[int, list[Any]] = {}
    for result in results:
        fold = (result.config or {}).get(FOLD_KEY)
        if result.error is None and fold is not None:
            by_fold.setdefault(int(fold), []).append(result)
    records = []
    prepared = prepare(plan.config.data, log=lambda _: None)
    for fold, trials in sorted(by_fold.items()):
        picks = [(r, _best_of_trial(r, score, mode)) for r in trials]
        picks = [(r, c) for r, c in picks if c is not None]
        if not picks:
            log(f"[walk-forward] fold {fold}: no checkpoint; left out")
            continue
        result, checkpoint = picks[0] if len(picks) == 1 else _best_pick(picks, score, mode)
        local = storage.local_checkpoint(checkpoint, exp_dir / f"best_checkpoint-fold{fold}")
        cfg = trial_config(plan.experiment, result.config)
        env_cfg = replace(cfg.env, split="test", random_start=False)
        bt = backtest(cfg.env_name, env_cfg, greedy_policy(load_actors(local)), seed=cfg.seed)
        blocks = env_fold(prepared, env_cfg)
        assert blocks is not None
        log(f"[walk-forward] fold {fold}: test block {bt.equity.index[0]} to "
            f"{bt.equity.index[-1]}, net P&L {bt.metrics.net_pnl:,.0f}")
        records.append(fold_record(fold, blocks.as_dict(), local, bt,
                                   selection(trials), env_cfg.initial_equity,
                                   seed=cfg.seed))
    missing = sorted(set(range(plan.config.evaluation.walk_forward.folds)) - set(by_fold)) \
        if plan.config.evaluation.walk_forward is not None else []
    report = walk_forward_report(records, plan.config.env.initial_equity)
    report["missing_folds"] = missing
    per_fold = (plan.regime or {}).get("per_fold") or {}
    for entry in report["folds"]:  # which detector each fold's agents read
        if str(entry["fold"]) in per_fold:
            entry["regime_detector"] = per_fold[str(entry["fold"])]
    report["layout"] = KEY
    out = write_walk_forward(exp_dir / OUT_DIR, report, records)
    for line in walk_forward_table(report):
        log(line)
    if missing:
        log(f"[walk-forward] folds {missing} have no finished trial: the stitched record "
            "leaves their test blocks out")
    return summary_entry(report, out)


def summary_entry(report: Mapping[str, Any], out: Path) -> dict[str, Any]:
    """``summary.json``'s ``walk_forward``: where the record is, and its stitched figures."""
    costs = report.get("cost_sensitivity") or {}
    return {"out": str(out), "report": str(out / "report.json"),
            "folds": [f["fold"] for f in report["folds"]],
            "period": [report["folds"][0]["period"][0], report["folds"][-1]["period"][1]],
            "stitched": report["stitched"], "best_baseline": report["best_baseline"],
            "break_even_multiple": costs.get("break_even_multiple"),
            "break_even_note": costs.get("break_even_note"),
            "missing_folds": report.get("missing_folds", [])}


def stitched_line(summary: Mapping[str, Any]) -> str | None:
    """``[run] walk-forward …``: the end-of-run line of a walk-forward phase — its folds'
    stitched out-of-sample figures (its folds are not competing trials, so no "best
    trial" is named); None for a phase without walk-forward."""
    wf = summary.get("walk_forward")
    if not wf:
        return None
    a = wf["stitched"]["agents"]
    best = wf.get("best_baseline")
    parts = [f"net P&L {a['net_pnl']:,.0f}", f"Sharpe {a['sharpe']:.2f}",
             f"max DD {a['max_drawdown']:.1%}", f"{int(a['trades'])} trades",
             f"PSR {a['probabilistic_sharpe']:.3f}", f"DSR {a['deflated_sharpe']:.3f}"]
    if best:
        parts.append(f"{best} {wf['stitched']['baselines'][best]['net_pnl']:,.0f}")
    for key, name in (("capture_of_oracle", "capture"), ("expected_capture", "expected capture")):
        if isinstance(a.get(key), float) and math.isfinite(a[key]):
            parts.append(f"{name} {a[key]:.1%}")
    if wf.get("break_even_note"):
        parts.append(f"break-even: {wf['break_even_note']}")
    folds = wf.get("folds") or []
    return (f"[run] walk-forward of {summary.get('name', '?')}: {len(folds)} test blocks "
            f"stitched ({wf['period'][0]} to {wf['period'][1]}): " + ", ".join(parts))


def _best_pick(picks: list[tuple[Any, Any]], score: str, mode: str) -> tuple[Any, Any]:
    """Of several trials of one fold, the one whose best checkpoint scored best."""
    def value(pair: tuple[Any, Any]) -> float:
        for c, m in pair[0].best_checkpoints or []:
            if c.path == pair[1].path and isinstance(m.get(score), int | float):
                return float(m[score]) if mode == "max" else -float(m[score])
        return -math.inf

    return max(picks, key=value)
