"""``bench uncertainty``: is the MC-dropout consensus calibrated, and do the gates pay?

Trains ``strategic_v0`` with the default :class:`TrainConfig` on the built-in 250-day
market (``--iterations``, default :data:`ITERATIONS`; or takes ``--checkpoint``), then runs
the uncertainty study of :mod:`algospace.evaluation.uncertainty` on a **fresh long
market** of the same generator (``--eval-days``, another seed), split
:data:`SPLIT`: the first 10 % only standardises the features, the gates are chosen on the
next 25 % (validation, :mod:`algospace.evaluation.gate_choice`: gate 1 enforced or recorded
only × gate 2's threshold from :data:`~algospace.evaluation.gate_choice.GATE_GRID`, then
the regime and drawdown adjustments, by net dollar P&L) and the last 65 % is the test
split, where

- the ungated team's decisions are binned by MC consensus into deciles: hit rate of the
  consensus direction over the next 30 minutes with its standard error, mean net P&L of the
  trades opened, and the expected calibration error (ECE);
- the gated team (the chosen gates) is set beside the ungated one: trades, net P&L,
  P&L per trade, dollar Sharpe, share of wanted trades held back, each gate's closures.

Figures, ``calibration.png`` and ``figures.json`` go to ``--out`` (default
``results/bench/uncertainty``). ``--quick`` is a smoke run (2 training iterations on a
20-day market, a 60-day evaluation market, 8 MC passes): its figures are not results.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from algospace.errors import ConfigError
from algospace.evaluation.gate_choice import GATE_GRID, setting_label
from algospace.evaluation.plots import calibration_plot
from algospace.evaluation.uncertainty import uncertainty_study
from algospace.files import write_text
from algospace.inference.gates import GateConfig
from algospace.training.checkpoint import load_actors, load_train_config
from experiments.learn import EVAL_SEED, LEARN_DAYS, evaluation_env, learn_config

ITERATIONS = 25
"""Training iterations when no ``--checkpoint`` is given (a small budget)."""
SPLIT = (0.1, 0.25, 0.65)
"""Split of the fresh evaluation market: normalisation, validation (the threshold), test."""
MC_PASSES = 50
"""MC-dropout passes per decision (the live decision's)."""
QUICK = {"iterations": 2, "days": 20, "eval_days": 60, "mc_passes": 8}
"""``--quick``: the smoke run's sizes."""


def run(*, checkpoint: str | None = None, iterations: int = ITERATIONS, eval_days: int = 1000,
        seed: int = 0, signal: float = 1.0, quick: bool = False,
        train_dropout: bool = False, out: str = "results/bench/uncertainty"
        ) -> dict[str, Any]:
    """Train (or load ``checkpoint``), study the consensus and the gates out of sample
    (``train_dropout``: train with dropout active, ``model.train_dropout``)."""
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    mc_passes = QUICK["mc_passes"] if quick else MC_PASSES
    if quick:
        eval_days = min(eval_days, QUICK["eval_days"])
    train_seconds = math.nan
    if checkpoint is not None and train_dropout:
        raise ConfigError("--train-dropout sets how the actors train, and --checkpoint "
                          "trains nothing: give one of them (the checkpoint's own setting "
                          "is reported as train_dropout)")
    if checkpoint is None:
        from algospace.training.train import train

        iters = QUICK["iterations"] if quick else iterations
        cfg = learn_config(days=QUICK["days"] if quick else LEARN_DAYS, seed=seed,
                           iterations=iters, out=out_dir / "train", signal=signal)
        if train_dropout:
            cfg = replace(cfg, model=replace(cfg.model, train_dropout=True))
        began = time.perf_counter()
        checkpoint = train(cfg).checkpoint
        train_seconds = time.perf_counter() - began
    train_cfg = load_train_config(checkpoint)
    eval_cfg = evaluation_env(train_cfg.env_config, days=eval_days, seed=EVAL_SEED + seed)
    eval_cfg = replace(eval_cfg, data=replace(eval_cfg.data, split=SPLIT))
    began = time.perf_counter()
    study = uncertainty_study(train_cfg.env, eval_cfg, load_actors(checkpoint),
                              gates=GateConfig(), mc_passes=mc_passes, seed=seed,
                              grid=GATE_GRID)
    u = study.summary
    cal, side = u["calibration"], u["side_by_side"]
    figures: dict[str, Any] = {
        "env": train_cfg.env, "checkpoint": str(checkpoint), "quick": quick,
        "train_dropout": train_cfg.model.train_dropout,
        "eval_market": eval_cfg.data.synthetic.describe(),
        "eval_split": ",".join(f"{f:g}" for f in SPLIT), "mc_passes": mc_passes,
        "train_seconds": train_seconds,
        "study_seconds": time.perf_counter() - began,
        "ece": cal["ece"], "calibration_decisions": cal["decisions"],
        "hit_rate_horizon_minutes": cal["horizon_minutes"],
        "consensus_hit_rate_by_decile": [b["hit_rate"] for b in cal["bins"]],
        "consensus_hit_rate_se_by_decile": [b["hit_rate_se"] for b in cal["bins"]],
        "mean_consensus_by_decile": [b["mean_consensus"] for b in cal["bins"]],
        "decisions_by_decile": [b["decisions"] for b in cal["bins"]],
        "trades_by_decile": [b["trades_opened"] for b in cal["bins"]],
        "mean_trade_pnl_usd_by_decile": [b["mean_trade_pnl"] for b in cal["bins"]],
        "top_minus_bottom_hit_rate": cal["top_minus_bottom_hit_rate"],
        "top_minus_bottom_se": cal["top_minus_bottom_se"],
        "gate_threshold": u["gate_threshold"],
        "gate_grid": ",".join(f"{t:g}" for t in u["grid"]),
        "gate1_required": u["gates"]["synergy_gate"],
        "gate_regime_adjustment": u["gates"]["regime_adjustment"],
        "gate_drawdown_adjustment": u["gates"]["drawdown_adjustment"],
        "validation_net_pnl_by_setting": {setting_label(v): v["net_pnl"]
                                          for v in u["validation"]},
        "gated_trades": side["gated_trades"], "ungated_trades": side["ungated_trades"],
        "gated_net_pnl_usd": side["gated_net_pnl_usd"],
        "ungated_net_pnl_usd": side["ungated_net_pnl_usd"],
        "gated_pnl_per_trade_usd": side["gated_pnl_per_trade_usd"],
        "ungated_pnl_per_trade_usd": side["ungated_pnl_per_trade_usd"],
        "gated_sharpe": side["gated_sharpe"], "ungated_sharpe": side["ungated_sharpe"],
        "trades_let_through": side["trades_let_through"],
        "share_of_wanted_trades_held_back": side["share_of_wanted_trades_held_back"],
        "gate1_synergy_closed": side["gated_synergy_closed"],
        "gate2_consensus_closed": side["gated_consensus_closed"],
        "gated_decisions": side["gated_decisions"],
    }
    calibration_plot(cal, out_dir / "calibration.png")
    figures["plot"] = str(out_dir / "calibration.png")
    write_text(out_dir / "figures.json", json.dumps({**figures, "uncertainty": u}, indent=2,
                                                    default=str))
    return figures
