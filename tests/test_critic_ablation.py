"""The critic ablations of ``bench team``: the MC features zeroed, and IPPO from MAPPO actors.

``model.critic_mc_features: false`` keeps the critic's 127 inputs but sets the 15 MC slots
to 0 -- checked on the module, through the YAML and the builder, and on a real learner
batch; an IPPO module takes a MAPPO actor's weights with its own value network kept.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from algospace.config import STATE_DIM, DataConfig, EnvConfig, ModelSettings, PPOSettings
from algospace.models.critic import MC_FEATURES_KEY
from algospace.models.ippo_actor import with_own_value_net
from algospace.training.builder import TrainConfig, build_ppo_config
from tests.test_models import _critic, _obs


def _with_mc(batch: dict[str, Any], mc: torch.Tensor) -> dict[str, Any]:
    return {**batch, MC_FEATURES_KEY: mc}


@pytest.mark.parametrize("reads", [True, False])
def test_the_critic_reads_the_mc_features_only_when_told(reads: bool) -> None:
    torch.manual_seed(0)
    critic = _critic(mc_features=reads)
    batch = _obs(rows=16)
    a = critic.compute_values(_with_mc(batch, torch.rand(16, 15)))
    b = critic.compute_values(_with_mc(batch, torch.rand(16, 15) + 1.0))
    assert critic.net[0].in_features == STATE_DIM + 15  # the same network either way
    assert torch.equal(a, b) != reads
    if not reads:
        zero = critic.compute_values(_with_mc(batch, torch.zeros(16, 15)))
        assert torch.equal(a, zero)


def test_the_setting_reaches_the_critic_from_yaml() -> None:
    from algospace import load_experiment
    from algospace.config.loader import parse_set
    from algospace.tune.trainables import train_config

    default = load_experiment("joint.yaml").config
    assert default.model.critic_mc_features is True
    cfg = load_experiment("joint.yaml", parse_set(["model.critic_mc_features=false"])).config
    assert cfg.model.critic_mc_features is False
    assert train_config(cfg).model.critic_mc_features is False


def test_the_builder_hands_the_setting_to_the_critic(env_data: DataConfig,
                                                     tmp_path: Path) -> None:
    for reads in (True, False):
        cfg = TrainConfig(env="strategic_v0", env_config=EnvConfig(data=env_data),
                          model=ModelSettings(critic_mc_features=reads), out_dir=str(tmp_path))
        spec = build_ppo_config(cfg).rl_module_spec.rl_module_specs["critic"]
        assert spec.model_config["mc_features"] is reads
        assert spec.build().cfg.mc_features is reads


@pytest.mark.ray
@pytest.mark.parametrize("reads", [True, False])
def test_mc_slots_of_the_critics_input_in_a_learner_batch(reads: bool, env_data: DataConfig,
                                                          tmp_path: Path,
                                                          ray_session: Any) -> None:
    """One training iteration: the learner's batches carry MC features either way (the
    actors still make their MC passes); the critic's first layer sees them only when told."""
    cfg = TrainConfig(env="strategic_v0", env_config=EnvConfig(data=env_data, episode_steps=24),
                      iterations=1, num_env_runners=0, num_envs_per_env_runner=1,
                      ppo=PPOSettings(train_batch_size=150, minibatch_size=75, num_epochs=1),
                      model=ModelSettings(critic_mc_features=reads), out_dir=str(tmp_path))
    algo = build_ppo_config(cfg).build_algo()
    seen: dict[str, list[float]] = {"batch": [], "input": []}

    def watch(learner: Any) -> None:
        critic = learner.module["critic"]
        plain = critic.critic_input

        def critic_input(batch: Any) -> torch.Tensor:
            seen["batch"].append(float(torch.as_tensor(batch[MC_FEATURES_KEY]).abs().max()))
            return plain(batch)

        critic.critic_input = critic_input
        critic.net[0].register_forward_pre_hook(
            lambda _, args: seen["input"].append(float(args[0][:, STATE_DIM:].abs().max())))

    try:
        algo.learner_group.foreach_learner(watch)  # num_learners 0: the local learner
        algo.train()
    finally:
        algo.stop()
    assert seen["batch"] and seen["input"]
    assert min(seen["batch"]) > 0.0  # the learner computed real MC features
    if reads:
        assert min(seen["input"]) > 0.0
    else:
        assert max(seen["input"]) == 0.0


def test_an_ippo_module_takes_a_mappo_actor_and_keeps_its_value_net() -> None:
    actor = {"layers.0.weight": torch.ones(2, 2), "head.bias": torch.ones(2)}
    own = {"layers.0.weight": torch.zeros(2, 2), "head.bias": torch.zeros(2),
           "value_layers.0.weight": torch.full((2, 2), 3.0), "value_head.bias": torch.ones(1)}
    state, kept = with_own_value_net(own, actor)
    assert kept == ["value_head.bias", "value_layers.0.weight"]
    assert set(state) == set(own)
    assert torch.equal(state["layers.0.weight"], actor["layers.0.weight"])
    assert torch.equal(state["value_layers.0.weight"], own["value_layers.0.weight"])
    assert with_own_value_net(own, own)[1] == []  # an IPPO actor: nothing kept
    with pytest.raises(ValueError, match="missing"):
        with_own_value_net(own, {"layers.0.weight": torch.ones(2, 2)})
    with pytest.raises(ValueError, match="unexpected"):
        with_own_value_net(own, {**actor, "other": torch.ones(1)})


@pytest.mark.ray
def test_ippo_run_starts_from_mappo_actors(env_data: DataConfig, tmp_path: Path,
                                           ray_session: Any) -> None:
    """init_from a MAPPO checkpoint into IPPO: the actors' weights arrive exactly (they
    used to be refused: the MAPPO actor has no value network)."""
    from algospace.training.builder import ModuleSource
    from algospace.training.checkpoint import module_states, read_states
    from algospace.training.train import load_modules, train

    base = TrainConfig(env="strategic_v0", env_config=EnvConfig(data=env_data, episode_steps=24),
                       iterations=1, num_env_runners=0, num_envs_per_env_runner=1,
                       ppo=PPOSettings(train_batch_size=150, minibatch_size=75, num_epochs=1),
                       out_dir=str(tmp_path))
    mappo = train(base, log=lambda _: None).checkpoint
    saved = read_states(mappo)
    ippo = TrainConfig(**{**base.__dict__, "algorithm": "ippo"})
    algo = build_ppo_config(ippo).build_algo()
    try:
        before = module_states(algo, ["mlmi"])["mlmi"]
        lines: list[str] = []
        loaded = load_modules(algo, (ModuleSource(mappo),), lines.append)
        after = module_states(algo, ["mlmi"])["mlmi"]
    finally:
        algo.stop()
    assert sorted(loaded) == ["mlmi", "nwrqk", "portfolio", "regime"]
    assert any("value network keeps its fresh initialisation" in line for line in lines)
    for key, value in saved["mlmi"].items():
        assert torch.equal(after[key], value), key
    for key in after:
        if key.startswith(("value_layers.", "value_head.")):
            assert torch.equal(after[key], before[key]), key


def test_last_critic_ev_reads_the_shared_or_the_mean_per_module_figure(tmp_path: Path) -> None:
    from experiments.team_ablation import last_critic_ev

    with (tmp_path / "progress.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["training_iteration", "critic/explained_variance",
                    "agents/mlmi/explained_variance", "agents/fvg/explained_variance"])
        w.writerow([1, 0.1, 0.0, 0.2])
        w.writerow([2, 0.3, 0.2, ""])
        w.writerow([3, 0.5, 0.4, 0.6])
    summary = {"trials": [{"path": str(tmp_path)}]}
    assert last_critic_ev(summary, per_module=False) == 0.5
    assert last_critic_ev(summary, per_module=True) == pytest.approx(0.5)
    assert math.isnan(last_critic_ev({"trials": []}, per_module=False))
