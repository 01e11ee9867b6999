"""The two layers together earn more than either alone (the small version of ``bench team``).

The strategic agents learn on ``strategic_v0`` and the tactical agents on
``tactical_v0``, each with the default hyperparameters, on a market whose two planted
components are :data:`SIGNAL` times their calibrated strength (at the calibrated
strength no learner of prices finds them with this much data: README, "Does the team
learn?", ``bench probes``). Their actors, put together unchanged in ``joint_v0`` (the
curriculum's handoff, without its coordination and joint phases), must capture more of
the joint oracle's expected P&L on a fresh market than the strategic team alone and the
tactical team alone, and each layer must have learned something of its own. What this
checks is the combination: the joint target adds the two layers' positions
(``envs/joint``, the card), so a team of two layers that each learned their component
approaches the joint oracle from both sides. Whether joint training adds to that is
``bench team``'s question (README).

Measured (128 fresh days, 5 min on 2 cores shared with two other jobs): expected capture
of the joint oracle strategic 0.200, tactical 0.046, the two together 0.408; net P&L
$416,909, $101,268 and $866,225.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from algospace.config import DataConfig, EnvConfig
from algospace.data.synthetic import SyntheticConfig
from algospace.evaluation.backtest import backtest, greedy_policy
from algospace.training.builder import TrainConfig
from algospace.training.checkpoint import load_actors
from algospace.training.train import train
from experiments.learn import evaluation_env

SIGNAL = 12.0
"""Strength of the planted components, in multiples of the calibrated market's."""
ITERATIONS = 20
"""Training iterations of each layer (4,000 env steps each)."""
LAYER_BAR = 0.02
"""Expected capture of the joint oracle each layer alone must reach (learned something)."""


@pytest.mark.slow
def test_the_two_layers_together_beat_each_layer_alone(tmp_path: Path,
                                                        ray_session: Any) -> None:
    data = DataConfig(synthetic=SyntheticConfig(days=120, seed=11, signal=SIGNAL),
                      cache_dir=str(tmp_path / "cache"))
    env_config = EnvConfig(data=data)
    actors = {}
    for layer in ("strategic", "tactical"):
        cfg = TrainConfig(env=f"{layer}_v0", env_config=env_config,  # type: ignore[arg-type]
                          iterations=ITERATIONS, num_env_runners=0,
                          out_dir=str(tmp_path / layer), checkpoint_every=0)
        actors[layer] = load_actors(train(cfg, log=lambda _: None).checkpoint)
    fresh = evaluation_env(env_config, days=150, seed=1011)
    runs = {"strategic": backtest("strategic_v0", fresh, greedy_policy(actors["strategic"])),
            "tactical": backtest("tactical_v0", fresh, greedy_policy(actors["tactical"])),
            "joint": backtest("joint_v0", fresh,
                              greedy_policy({**actors["strategic"], **actors["tactical"]}))}
    capture = {team: bt.capture["expected_capture_of_joint_oracle"]
               for team, bt in runs.items()}
    figures = {"capture": capture, "net_pnl": {t: bt.metrics.net_pnl for t, bt in runs.items()},
               "days": runs["joint"].metrics.days}
    assert runs["joint"].metrics.days >= 100, figures
    assert capture["strategic"] >= LAYER_BAR and capture["tactical"] >= LAYER_BAR, figures
    assert capture["joint"] > max(capture["strategic"], capture["tactical"]), figures
