"""The end of a run: the best checkpoint, pruning, the summary, and what the phase leaves.

The best checkpoint over every trial (by ``checkpoint.score``, or the RDE's validation
loss) is evaluated on the test split (an RL phase) or encodes the regime latents into the
data store (the RDE); ``summary.json`` records the trials, the choice and the figures.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from algospace.config import ExperimentConfig, resolved_dict
from algospace.errors import AlgoSpaceError
from algospace.evaluation.oracles import CAPTURE_KEYS
from algospace.files import write_json
from algospace.tune import storage
from algospace.tune.plan import SUMMARY, Log, Plan

SELECTION = "selection.json"
"""What model selection looked at (for the Deflated Sharpe Ratio), next to summary.json."""


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


def best_trial(results: Any, checkpoint: Any, spaces: Mapping[str, Any]) -> dict[str, Any]:
    """``{"trial": trial_<id>, "params": its searched values}`` of the trial whose directory
    holds ``checkpoint`` (empty when none does)."""
    for result in results:
        if result.path and str(checkpoint.path).startswith(str(result.path).rstrip("/") + "/"):
            config = result.config or {}
            return {"trial": Path(result.path).name,
                    "params": {k: config[k] for k in spaces if k in config}}
    return {}


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
    candidates, last_fold = results, None
    if cfg.evaluation.walk_forward is not None:
        from algospace.tune.walkforward import last_fold_results

        candidates, last_fold = last_fold_results(results)
    checkpoint, metrics, chosen_by = best_checkpoint(candidates, score, mode)
    if last_fold is not None:
        chosen_by = (f"fold {last_fold}'s (the last: trained on the most recent history) "
                     f"best by {chosen_by}; the folds are not competing trials")
    local = storage.local_checkpoint(checkpoint, exp_dir / "best_checkpoint")
    prune_checkpoints(results, cfg.checkpoint.keep if cfg.phase != "rde" else 1, score, mode,
                      log)
    best = {"checkpoint": local, "chosen_by": chosen_by,
            "metrics": {k: v for k, v in metrics.items()
                        if isinstance(v, int | float) and not isinstance(v, bool)},
            **best_trial(results, checkpoint, plan.experiment.spaces),
            "score": {"metric": score, "mode": mode, "value": metrics.get(score)}}
    if local != checkpoint.path:
        best["stored_at"] = checkpoint.path
    if cfg.evaluation.walk_forward is not None:  # folds are not competing trials
        log(f"[run] walk-forward: each fold's best checkpoint by {score} is backtested on "
            "its own test block")
    elif local != checkpoint.path:
        log(f"[run] best checkpoint ({chosen_by}): {checkpoint.path}, copied to {local}")
    else:
        log(f"[run] best checkpoint ({chosen_by}): {local}")
    summary: dict[str, Any] = {
        "name": plan.name, "phase": cfg.phase, "quick": plan.quick,
        "source": plan.experiment.source, "experiment_dir": str(exp_dir),
        "status": "running", "trials": trials, "failed_trials": failed,
        "best": best, "best_checkpoint": local,
        "wall_seconds": wall, "handoff": plan.handoff, "regime": plan.regime,
        "config": resolved_dict(cfg), "search_spaces": plan.experiment.spaces,
        "tensorboard": f"tensorboard --logdir {exp_dir}",
    }
    if cfg.phase == "rde":
        summary["rde"] = store_latents(cfg, local, log)
    else:
        summary["selection"] = selection_trials(results)
        write_json(exp_dir / SELECTION, summary["selection"], default=str)
        steps = [t["env_steps"] for t in trials if isinstance(t["env_steps"], int | float)]
        secs = [t["time_total_s"] for t in trials if isinstance(t["time_total_s"], int | float)]
        summary["throughput"] = {
            "env_steps": sum(steps), "train_seconds": sum(secs),
            "env_steps_per_s": sum(steps) / sum(secs) if secs and sum(secs) > 0 else None}
        if cfg.evaluation.walk_forward is not None:  # each fold on its own test block
            from algospace.tune.walkforward import evaluate_folds

            summary["walk_forward"] = evaluate_folds(plan, results, exp_dir, score, mode, log,
                                                      selection_trials)
        elif cfg.evaluation.final:
            summary["evaluation"] = final_evaluation(cfg, local, exp_dir, log)
    summary["status"] = "finished"
    summary["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    write_json(exp_dir / SUMMARY, summary, default=str)
    return summary


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
    """Write the best RDE's latents into the data store as its own table."""
    from algospace.features.pipeline import prepare
    from algospace.regime.latents import baseline_warning
    from algospace.regime.store import store_latents as write_latents

    prepared = prepare(cfg.data, log=lambda _: None)
    stored = write_latents(prepared, checkpoint, log=lambda m: log(f"[rde] {m}"))
    latents, recorded = stored.latents, stored.record
    finite = int(latents.notna().all(axis=1).sum())
    log(f"[rde] latents of detector {stored.detector}: table {stored.table} in "
        f"{prepared.path} ({finite:,} of {len(latents):,} bars)")
    warning = baseline_warning(recorded.get("val_recon_mse", math.nan),
                               recorded.get("baseline_recon_mse", math.nan))
    if warning:
        log(f"[rde] {warning}")
    return {"detector": stored.detector, "latent_table": stored.table,
            "store": str(prepared.path), "bars": len(latents),
            "bars_with_latent": finite, "val_recon_mse": recorded.get("val_recon_mse"),
            "baseline_recon_mse": recorded.get("baseline_recon_mse"),
            "beats_baseline": recorded.get("beats_baseline")}


def final_evaluation(cfg: ExperimentConfig, checkpoint: str, exp_dir: Path,
                     log: Log) -> dict[str, Any]:
    """Evaluate the best checkpoint on the test split; print the headline table."""
    from algospace.evaluation.gate_choice import GATE_GRID
    from algospace.evaluation.report import EvaluateConfig, evaluate
    from algospace.evaluation.table import evaluation_table
    from algospace.inference.gates import GateConfig

    e = cfg.evaluation

    report = evaluate(EvaluateConfig(checkpoint=checkpoint, split=e.split,
                                     out=str(exp_dir / f"evaluation-{e.split}"),
                                     random_seeds=e.random_seeds, bootstrap=e.bootstrap,
                                     seed=cfg.seed,
                                     gates=GateConfig(threshold=e.gate_threshold)
                                     if e.gates else None, mc_passes=e.mc_passes,
                                     gate_grid=GATE_GRID if e.choose_gate_threshold else None,
                                     selection=str(exp_dir / SELECTION)), log=log)
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
