"""Does the MC-dropout consensus know when the team is right, and do the gates pay?

:func:`uncertainty_study` runs, on the evaluated split, with the same agents:

1. **the ungated team, recorded**: the team's gated decision code with the gates recording
   only (``GateConfig.enforce=False``: the target is always the agents' own, so the trades
   are those of the plain greedy run) — the consensus and its direction at every decision,
   binned into the calibration table of :mod:`algospace.evaluation.calibration`, with the
   trades opened after each decision;
2. **the gates chosen on the validation split** (:mod:`algospace.evaluation.gate_choice`:
   gate 1 enforced or recorded only, gate 2's threshold from the grid, then the regime and
   drawdown adjustments; net P&L as the criterion), when the evaluated split is ``test``
   and a grid is given; otherwise the configured gates, and the report says which;
3. **the gated team** on the evaluated split with those gates, set beside the ungated
   one (:func:`~algospace.evaluation.gate_choice.gated_vs_ungated`).

The hit horizon is the env's layer's: 30 minutes on the strategic layer (``strategic_v0``),
5 minutes where the tactical agents decide every 5-minute bar (``tactical_v0``,
``joint_v0``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from algospace.config import EnvConfig
from algospace.evaluation.backtest import Backtest, backtest, decision_base_rows, env_layer
from algospace.evaluation.calibration import calibration, decision_moves, trades_by_decision
from algospace.evaluation.gate_choice import gated_vs_ungated, search_gates, setting
from algospace.evaluation.metrics import to_dict
from algospace.inference.gates import GateConfig
from envs.registry import env_class

__all__ = ["HORIZON_BARS", "Study", "consensus_calibration", "uncertainty_study"]

HORIZON_BARS = {"strategic": 6, "tactical": 1, "joint": 1}
"""5-minute bars after a decision's close whose move decides a hit, per env layer."""
CRITERION = ("highest validation net dollar P&L; ties: the configured gates (gate 1, then "
             "the threshold nearest the configured one, then the lower, then the adjustments)")
"""How the gates are chosen (stated in the report)."""

Log = Callable[[str], None]


@dataclass(frozen=True)
class Study:
    """What :func:`uncertainty_study` found."""

    gated: Backtest
    """The gated team on the evaluated split, at :attr:`threshold`."""
    ungated: Backtest
    """The ungated team (gates recorded, not enforced) on the same split."""
    threshold: float
    """Gate 2's threshold of the gated run."""
    gates: GateConfig
    """The gate settings of the gated run (chosen on validation, or as configured)."""
    summary: dict[str, Any]
    """The figures for the report (``report.json``'s ``uncertainty``)."""


def consensus_calibration(env_name: str, env_cfg: EnvConfig, recorded: Backtest
                          ) -> dict[str, Any]:
    """The calibration table of a backtest whose gates were recorded at every step."""
    if not recorded.gate_results:
        raise ValueError("consensus_calibration needs a backtest of a GatedTeam (its gates "
                         "record the consensus at every decision)")
    env = env_class(env_name)(env_cfg)
    close = np.asarray(env.market.arrays["base_ohlc"], dtype=np.float64)[:, 3]
    layer = env_layer(env)
    horizon = HORIZON_BARS[layer]
    steps = np.asarray(recorded.steps, dtype=np.int64)
    move = decision_moves(close, decision_base_rows(env, steps), horizon)
    trades = recorded.trades
    opened, pnl = trades_by_decision(steps, trades["entry_t"].to_numpy(),
                                     trades["pnl_net"].to_numpy())
    table = calibration([g.consensus for g in recorded.gate_results],
                        [g.consensus_direction for g in recorded.gate_results], move,
                        opened=opened, opened_pnl=pnl)
    return {**table, "horizon_minutes": 5 * horizon, "layer": layer,
            "trades_outside_bins": int(len(trades) - sum(b["trades_opened"]
                                                         for b in table["bins"]))}


def _team(actors: Mapping[str, Any], gates: GateConfig, mc_passes: int, seed: int) -> Any:
    from algospace.inference.policy import GatedTeam

    return GatedTeam(actors, mc_passes=mc_passes, gates=gates, seed=seed)


def uncertainty_study(env_name: str, env_cfg: EnvConfig, actors: Mapping[str, Any], *,
                      gates: GateConfig, mc_passes: int = 50, gate_seed: int = 0,
                      seed: int = 0, grid: tuple[float, ...] | None = None,
                      progress: Log | None = None, log: Log = print) -> Study:
    """Calibration, the threshold chosen on validation, gated vs ungated (module docstring).

    ``env_cfg``: the evaluated split (``random_start=False``); ``gates``: gate settings,
    the defaults of the choice (and the settings used when nothing is chosen: ``grid``
    None, or a split other than ``test``).
    """
    def run(cfg: EnvConfig, g: GateConfig) -> Backtest:
        return backtest(env_name, cfg, _team(actors, g, mc_passes, gate_seed), seed=seed,
                        progress=progress)

    ungated = run(env_cfg, replace(gates, enforce=False))
    table = consensus_calibration(env_name, env_cfg, ungated)
    log(f"[uncertainty] consensus calibration on {env_cfg.split}: ECE {table['ece']:.3f} "
        f"over {table['decisions']:,} decisions with a direction")
    validation: list[dict[str, Any]] = []
    chosen, chosen_on = gates, "fixed (not chosen)"
    if grid and env_cfg.split == "test":
        val_cfg = replace(env_cfg, split="val")
        chosen, validation = search_gates(lambda g: to_dict(run(val_cfg, g).metrics), gates,
                                          grid)
        chosen_on = "val"
        log(f"[uncertainty] gates chosen on the validation split ({len(validation)} "
            f"settings tried): gate 1 {'on' if chosen.synergy_gate else 'recorded only'}, "
            f"gate 2 threshold {chosen.threshold:g} (grid {', '.join(f'{t:g}' for t in grid)}"
            f"), regime +{chosen.regime_adjustment:g}, drawdown "
            f"+{chosen.drawdown_adjustment:g}/%")
    elif grid:
        log(f"[uncertainty] the {env_cfg.split} split is evaluated: the gates keep their "
            f"settings (threshold {gates.threshold:g}; they are chosen on validation only "
            f"for a test report)")
    threshold = chosen.threshold
    gated = run(env_cfg, chosen)
    assert gated.gate_counts is not None
    counts = {**gated.gate_counts,
              "wanted_new_exposure": sum(g.grows for g in gated.gate_results)}
    side = gated_vs_ungated(to_dict(ungated.metrics), to_dict(gated.metrics), counts)
    summary = {"calibration": table, "gate_threshold": threshold,
               "gates": setting(chosen), "default_gates": setting(gates),
               "threshold_chosen_on": chosen_on, "default_threshold": gates.threshold,
               "grid": list(grid or ()), "criterion": CRITERION, "validation": validation,
               "split": env_cfg.split, "mc_passes": mc_passes, "side_by_side": side}
    return Study(gated, ungated, threshold, chosen, summary)
