"""Ray Tune trainables of the phases: MAPPO/IPPO for the RL phases, the RDE for phase 0.

Each is a function trainable: Tune calls it once per trial with the trial's sampled
search-space values; it rebuilds the experiment config with them, trains, reports a row
of metrics per iteration (per epoch for the RDE) with ``tune.report`` and hands Tune a
checkpoint every ``checkpoint.every`` iterations and at the end. A restored trial
(``--resume``, or a restart after a failure) continues from its last checkpoint, with the
env runners' weights, connector state and random state of that checkpoint
(:mod:`algospace.training.rng`).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from algospace.config import Experiment, ExperimentConfig
from algospace.features.shipping import Shipped, local_tree, provide
from algospace.training.builder import ModuleSource, TrainConfig

VAL_PREFIX = "val_"
"""Prefix of the validation-backtest metrics in a result row."""


def train_config(cfg: ExperimentConfig, sources: tuple[ModuleSource, ...] = (),
                 out_dir: str = "results") -> TrainConfig:
    """The TrainConfig of an RL phase's experiment (``sources``: resolved hand-off).

    Its ``iterations`` (``stop.iterations``) and ``checkpoint_every``
    (``checkpoint.every``) are the budget and the checkpoint rhythm of a trial.
    """
    r = cfg.resources
    return TrainConfig(
        env=cfg.env_name, env_config=cfg.env, algorithm=cfg.training.algorithm,
        iterations=cfg.stop.iterations, ppo=cfg.training.ppo(), model=cfg.model,
        trainable=cfg.handoff.trainable, init_from=sources, checkpoint_every=cfg.checkpoint.every,
        seed=cfg.seed, num_env_runners=r.num_env_runners,
        num_envs_per_env_runner=r.num_envs_per_env_runner,
        num_cpus_per_env_runner=r.num_cpus_per_env_runner, sampler=r.sampler,
        custom_resources_per_env_runner=dict(r.env_runner_resources),
        num_gpus_per_learner=r.num_gpus_per_learner, num_learners=r.num_learners,
        restart_failed_env_runners=cfg.tune.restart_failed_env_runners, out_dir=out_dir)


def module_parts(source: ModuleSource) -> list[str]:
    """The parts (folders and files) of a checkpoint that loading ``source``'s modules reads:
    the module folders (they mark it as a checkpoint) and the safe weights."""
    from algospace.training.checkpoint import (
        MODULES_DIR,
        MODULES_FILE,
        WEIGHTS_FILE,
        checkpoint_modules,
    )

    modules = source.modules or tuple(checkpoint_modules(source.checkpoint))
    return ["/".join((*MODULES_DIR, m)) for m in modules] + [MODULES_FILE, WEIGHTS_FILE]


def local_sources(sources: tuple[ModuleSource, ...],
                  trees: dict[str, str]) -> tuple[ModuleSource, ...]:
    """The hand-off sources, each checkpoint copied from the driver if this node lacks it."""
    out = []
    for src in sources:
        name = trees.get(src.checkpoint)
        path = src.checkpoint if name is None else \
            local_tree(src.checkpoint, name, module_parts(src), Path(os.getcwd()))
        out.append(replace(src, checkpoint=path))
    return tuple(out)


def validation_metrics(algo: Any, tcfg: TrainConfig) -> dict[str, Any]:
    """Backtest the current actors (greedy) on the validation split: ``val_*`` figures.

    Besides the figures, ``val_daily_pnl`` holds the day-by-day dollar P&L as a JSON list:
    the run's model selection reads it back to count how many independent candidates it
    looked at (the Deflated Sharpe Ratio's trials).
    """
    from algospace.evaluation.backtest import backtest, greedy_policy
    from algospace.evaluation.metrics import daily_pnl
    from algospace.training.train import actor_modules

    env_cfg = replace(tcfg.env_config, split="val", random_start=False)
    bt = backtest(tcfg.env, env_cfg, greedy_policy(actor_modules(algo)), seed=tcfg.seed)
    m = bt.metrics
    row: dict[str, float] = {
        "sharpe": m.sharpe, "sortino": m.sortino, "total_return": m.total_return,
        "net_pnl": m.net_pnl, "max_drawdown": m.max_drawdown, "trades": float(m.trades),
        "win_rate": m.win_rate, "exposure": m.exposure, "costs": m.costs}
    for name in ("buy_and_hold", "rule"):
        if name in bt.baselines:
            row[f"{name}_sharpe"] = bt.baselines[name].sharpe
    for key in ("expected_capture", "capture_of_oracle", "expected_capture_of_joint_oracle"):
        if key in bt.capture:
            row[key] = bt.capture[key]
    out: dict[str, Any] = {VAL_PREFIX + k: float(v) for k, v in row.items()}
    pnl = daily_pnl(bt.equity, initial_equity=env_cfg.initial_equity).to_numpy()
    out[VAL_PREFIX + "daily_pnl"] = json.dumps([round(float(x), 2) for x in pnl])
    return out


def finite(row: dict[str, Any]) -> dict[str, Any]:
    """The row without NaN figures (a MAPPO run has no per-agent ``vf_loss``, say)."""
    return {k: v for k, v in row.items() if isinstance(v, str) or math.isfinite(v)}


def rl_trainable(config: dict[str, Any], *, experiment: Experiment,
                 sources: tuple[ModuleSource, ...], data: Shipped | None = None,
                 trees: dict[str, str] | None = None) -> None:
    """One trial of an RL phase (Tune function trainable).

    ``data``: the driver's prepared data (read instead of the CSV, here and in the env
    runners); ``trees``: the depot names of the hand-off checkpoints (copied here when this
    node does not see them).
    """
    from ray import tune

    from algospace.training.builder import build_ppo_config
    from algospace.training.checkpoint import run_info, write_safe_weights
    from algospace.training.rng import restore_rng, save_rng
    from algospace.training.train import load_modules, ramp_costs, summarise
    from algospace.tune.walkforward import trial_config

    provide(data)
    cfg = trial_config(experiment, config)  # on its walk-forward fold, if any
    sources = local_sources(sources, trees or {})
    tcfg = train_config(cfg, sources)
    algo = build_ppo_config(tcfg).build_algo()
    try:
        restored = tune.get_checkpoint()
        if restored is not None:
            with restored.as_directory() as path:
                algo.restore_from_path(path)
                restore_rng(algo, path)  # then it draws the numbers the run would have
            print(f"[trial] resumed from its checkpoint at iteration {algo.iteration}",
                  flush=True)
        elif sources:
            load_modules(algo, sources, log=lambda m: print(m, flush=True))
        stop = cfg.stop
        started = time.perf_counter()
        while True:
            t0 = time.perf_counter()
            weight = ramp_costs(algo, tcfg.ppo.cost_ramp_iterations)
            row = summarise(algo.train())
            if weight is not None:
                row["train/cost_weight"] = weight
            seconds = time.perf_counter() - t0
            i = int(algo.iteration)
            steps = row["env_steps"]
            done = i >= tcfg.iterations or (
                stop.env_steps is not None and math.isfinite(steps) and steps >= stop.env_steps
            ) or (stop.minutes is not None and time.perf_counter() - started
                  >= 60 * stop.minutes)
            row["iteration_seconds"] = seconds
            row["budget_iterations"] = float(tcfg.iterations)
            if not (done or i == 1 or i % tcfg.checkpoint_every == 0):  # 1: csv header
                tune.report(finite(row))
                continue
            if cfg.evaluation.validation:
                row.update(validation_metrics(algo, tcfg))
            # in the trial's working directory (in Ray's session folder), not loose in /tmp
            with tempfile.TemporaryDirectory(prefix=".ckpt-", dir=os.getcwd()) as tmp:
                algo.save_to_path(tmp)
                write_safe_weights(algo, tmp)
                save_rng(algo, tmp)
                info = run_info(tcfg, algo)
                info["trial_config"] = config
                (Path(tmp) / "algospace_run.json").write_text(
                    json.dumps(info, indent=2, default=str))
                tune.report(finite(row), checkpoint=tune.Checkpoint.from_directory(tmp))
            if done:
                break
    finally:
        algo.stop()


def rde_trainable(config: dict[str, Any], *, experiment: Experiment,
                  data: Shipped | None = None) -> None:
    """One trial of phase 0: train the regime detector (latents are stored by the driver)."""
    from ray import tune

    from algospace.features.pipeline import prepare, strategic_rows
    from algospace.regime.features import regime_features
    from algospace.regime.train import train_rde

    provide(data)
    cfg = experiment.resolved(config)
    prepared = prepare(cfg.data, log=lambda _: None)
    features = regime_features(prepared.strategic)
    rows = {name: strategic_rows(prepared.strategic_index, getattr(prepared.splits, name))
            for name in ("train", "val")}
    with tempfile.TemporaryDirectory(prefix="algospace-rde-") as tmp:
        out = Path(tmp) / "rde"
        result = train_rde(features, rows["train"], rows["val"], cfg.rde, out,
                           report=lambda m: tune.report({**m, "final": 0.0}),
                           log=lambda m: print(f"[rde] {m}", flush=True))
        tune.report({"epoch": float(result.epochs_run), "val_loss": result.best_val_loss,
                     "val_recon_mse": result.val_recon_mse,
                     "baseline_recon_mse": result.baseline_recon_mse,
                     "best_epoch": float(result.best_epoch), "final": 1.0},
                    checkpoint=tune.Checkpoint.from_directory(str(out)))
