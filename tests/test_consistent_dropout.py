"""Consistent dropout: the actors train with dropout active and PPO's ratio stays exact.

The fast tests build the actor directly; the last one runs RLlib's env runner and the
project's learner (no Ray) and reads the ratio at the first minibatch of an update.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from algospace.config import DataConfig, EnvConfig, ModelSettings, PPOSettings
from algospace.models.actor import ActorModule
from algospace.models.consistent_dropout import (
    DROPOUT_MASK,
    draw_keep,
    pack_bits,
    packed_width,
    unpack_bits,
)
from algospace.models.ids import CRITIC_ID

LOCAL_DIM, ROWS = 20, 512
OBS_SPACE = gym.spaces.Dict(
    local=gym.spaces.Box(-np.inf, np.inf, (LOCAL_DIM,), np.float32),
    state=gym.spaces.Box(-np.inf, np.inf, (4,), np.float32),
)
DISCRETE = gym.spaces.Discrete(7)
MULTI = gym.spaces.MultiDiscrete([6, 6, 5])
SPACES = pytest.mark.parametrize("space", [DISCRETE, MULTI], ids=["discrete", "multidiscrete"])


def _actor(space: gym.Space[Any], **model_config: Any) -> Any:
    """An actor trained with dropout unless ``train_dropout`` says otherwise (off by default)."""
    model_config.setdefault("train_dropout", True)
    return RLModuleSpec(module_class=ActorModule, observation_space=OBS_SPACE,
                        action_space=space, model_config=model_config).build()


def _obs(rows: int = ROWS, seed: int = 0) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    return {Columns.OBS: {"local": torch.randn(rows, LOCAL_DIM, generator=g),
                          "state": torch.randn(rows, 4, generator=g)}}


def _sampled(module: Any, rows: int = ROWS) -> dict[str, Any]:
    """What the learner's batch holds for sampled rows: the observations and the
    exploration outputs stored with each step."""
    batch = _obs(rows)
    out = module.forward_exploration(batch)
    return {**batch, **{k: out[k] for k in (Columns.ACTIONS, Columns.ACTION_LOGP,
                                            Columns.ACTION_DIST_INPUTS, DROPOUT_MASK)}}


def _ratio(module: Any, batch: dict[str, Any]) -> torch.Tensor:
    """exp(logp_new - logp_old) of the stored actions, from the training forward."""
    logits = module.forward_train(batch)[Columns.ACTION_DIST_INPUTS]
    dist = module.get_train_action_dist_cls().from_logits(logits)
    return (dist.logp(batch[Columns.ACTIONS]) - batch[Columns.ACTION_LOGP]).exp()


# --------------------------------------------------------------- (a) dropout is active
@SPACES
def test_training_forward_runs_under_the_stored_masks(space: gym.Space[Any]) -> None:
    module = _actor(space, dropout=0.3)
    batch = _sampled(module)
    other = module.forward_exploration(_obs())[DROPOUT_MASK]  # later draws: other masks
    assert not torch.equal(other, batch[DROPOUT_MASK])
    first = module.forward_train(batch)[Columns.ACTION_DIST_INPUTS]
    again = module.forward_train(batch)[Columns.ACTION_DIST_INPUTS]
    second = module.forward_train({**batch, DROPOUT_MASK: other})[Columns.ACTION_DIST_INPUTS]
    greedy = module.forward_inference(batch)[Columns.ACTION_DIST_INPUTS]
    assert torch.equal(first, again)  # the stored mask, not a fresh draw
    differs = (first - second).abs().amax(dim=-1) > 1e-4
    assert float(differs.float().mean()) > 0.9  # rows whose masks differ differ
    assert float(((first - greedy).abs().amax(dim=-1) > 1e-4).float().mean()) > 0.9
    # the sampled logits are the training logits under the same mask
    torch.testing.assert_close(first, batch[Columns.ACTION_DIST_INPUTS], rtol=0, atol=1e-6)
    assert first.requires_grad


def test_a_dropped_unit_gets_no_gradient() -> None:
    module = _actor(DISCRETE, dropout=0.5, hidden=(8,))
    batch = _obs(1)
    keep = torch.ones(1, 8, dtype=torch.bool)
    keep[0, 3] = False
    batch[DROPOUT_MASK] = pack_bits(keep)
    with torch.no_grad():  # every unit active for this input (no ReLU-dead unit by chance)
        module.layers[0].weight.zero_()
        module.layers[0].bias.fill_(1.0)
    module.forward_train(batch)[Columns.ACTION_DIST_INPUTS].sum().backward()
    grad = module.layers[0].weight.grad
    assert grad is not None
    assert bool((grad[3] == 0).all()) and bool((grad[[0, 1, 2, 4]] != 0).any())


# ------------------------------------------------- (b) ratio 1 under the stored masks
@SPACES
def test_ratio_is_one_under_the_stored_masks(space: gym.Space[Any]) -> None:
    module = _actor(space, dropout=0.3)
    batch = _sampled(module)
    ratio = _ratio(module, batch).detach()
    assert ratio.shape == (ROWS,)
    assert float((ratio - 1).abs().max()) <= 1e-5
    # and the KL PPO computes against the stored distribution inputs is 0
    cls = module.get_train_action_dist_cls()
    prev = cls.from_logits(batch[Columns.ACTION_DIST_INPUTS])
    curr = cls.from_logits(module.forward_train(batch)[Columns.ACTION_DIST_INPUTS])
    assert float(prev.kl(curr).abs().max()) <= 1e-6


# ------------------------------------------------------ (c) redrawn masks: no ratio 1
@SPACES
def test_redrawn_masks_do_not_give_ratio_one(space: gym.Space[Any]) -> None:
    module = _actor(space, dropout=0.3)
    batch = _sampled(module)
    redrawn = pack_bits(draw_keep(ROWS, module.cfg.hidden, module.cfg.dropout,
                                  torch.Generator().manual_seed(99)))
    ratio = _ratio(module, {**batch, DROPOUT_MASK: redrawn}).detach()
    off = (ratio - 1).abs()
    assert float(off.max()) > 0.05 and float((off > 1e-3).float().mean()) > 0.5


# ------------------------------------------------------ (d) the bits and their rate
@pytest.mark.parametrize("bits", [1, 7, 8, 11, 128])
def test_mask_bits_round_trip_as_numpys_packbits(bits: int) -> None:
    keep = torch.rand(33, bits, generator=torch.Generator().manual_seed(bits)) >= 0.5
    packed = pack_bits(keep)
    assert packed.dtype == torch.uint8 and packed.shape == (33, packed_width(bits))
    np.testing.assert_array_equal(packed.numpy(), np.packbits(keep.numpy(), axis=-1))
    assert torch.equal(unpack_bits(packed, bits), keep)
    assert torch.equal(unpack_bits(torch.as_tensor(np.packbits(keep.numpy(), axis=-1)), bits),
                       keep)


@pytest.mark.parametrize("p", [0.1, 0.3])
def test_drawn_masks_drop_a_share_p_of_the_units(p: float) -> None:
    module = _actor(MULTI, dropout=p, hidden=(64, 32))
    masks = module.forward_exploration(_obs(4096))[DROPOUT_MASK]
    assert masks.dtype == torch.uint8 and masks.shape == (4096, 12)  # 96 bits
    keep = unpack_bits(masks, 96)
    n = keep.numel()
    dropped = 1.0 - float(keep.float().mean())
    assert abs(dropped - p) <= 5 * math.sqrt(p * (1 - p) / n), dropped
    # each layer's units are dropped at the rate too, independently of the unit
    per_unit = 1.0 - keep.float().mean(dim=0)
    assert float((per_unit - p).abs().max()) <= 6 * math.sqrt(p * (1 - p) / 4096)


def test_masks_come_from_the_modules_own_generator() -> None:
    module = _actor(DISCRETE, dropout=0.3)
    batch = _obs(64)
    module.seed_sampling(7)
    torch.manual_seed(0)
    first = module.forward_exploration(batch)
    module.seed_sampling(7)
    torch.manual_seed(1)
    second = module.forward_exploration(batch)
    for key in (DROPOUT_MASK, Columns.ACTIONS, Columns.ACTION_DIST_INPUTS):
        assert torch.equal(first[key], second[key]), key


def test_unpack_rejects_masks_of_the_wrong_shape_or_type() -> None:
    with pytest.raises(ValueError, match="2 bytes per row"):
        unpack_bits(torch.zeros(3, 3, dtype=torch.uint8), 11)
    with pytest.raises(ValueError, match="uint8"):
        unpack_bits(torch.zeros(3, 2), 11)


# --------------------------------------------------------------------- the switch
def test_without_train_dropout_no_mask_is_stored_and_training_is_dropout_off() -> None:
    for config in ({"dropout": 0.3, "train_dropout": False}, {"dropout": 0.0}):
        module = _actor(DISCRETE, **config)
        batch = _obs(32)
        out = module.forward_exploration(batch)
        assert DROPOUT_MASK not in out
        greedy = module.forward_inference(batch)[Columns.ACTION_DIST_INPUTS]
        torch.testing.assert_close(out[Columns.ACTION_DIST_INPUTS], greedy)
        torch.testing.assert_close(module.forward_train(batch)[Columns.ACTION_DIST_INPUTS],
                                   greedy)


def test_training_with_dropout_needs_the_stored_masks() -> None:
    module = _actor(DISCRETE, dropout=0.3)
    with pytest.raises(KeyError, match=r"dropout_mask.*model\.train_dropout=false"):
        module.forward_train(_obs(4))
    with pytest.raises(ValueError, match="train_dropout must be true or false"):
        _actor(DISCRETE, train_dropout="false")


def test_the_model_setting_reaches_every_actor(env_data: DataConfig) -> None:
    from algospace.training.builder import TrainConfig, _module_specs, rllib_env_config
    from envs.rllib import make_env

    for flag in (True, False):
        cfg = TrainConfig(env="joint_v0", env_config=EnvConfig(data=env_data),
                          model=ModelSettings(train_dropout=flag))
        specs = _module_specs(cfg, make_env("joint_v0", rllib_env_config(cfg)))
        actors = [s for mid, s in specs.items() if mid != CRITIC_ID]
        assert len(actors) == 8 and all(s.model_config["train_dropout"] is flag
                                        for s in actors)
    assert ModelSettings().train_dropout is False  # off by default (README: why)


# ------------------------------------------- the learner's first minibatch (no Ray)
@pytest.mark.train
@pytest.mark.parametrize(("algorithm", "sampler"),
                         [("mappo", "stock"), ("ippo", "stock"), ("mappo", "vector")])
def test_learner_ratio_is_one_at_the_first_minibatch(
        algorithm: Literal["mappo", "ippo"], sampler: str, env_data: DataConfig,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Episodes sampled by RLlib's env runner (or the vectorised sampler, whose NumPy
    forward computes the stored log-probabilities) go through the project's learner
    pipeline (columns, GAE, per-module minibatches, shuffled); at the first minibatch of
    the update the ratio of every training row is 1, while the same rows under redrawn
    masks are not."""
    from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner

    from algospace.training.builder import TrainConfig, build_ppo_config
    from algospace.training.mappo import RowPPOLearner
    from algospace.training.sampler import VectorEnvRunner

    cfg = TrainConfig(env="joint_v0", env_config=EnvConfig(data=env_data, episode_steps=72),
                      algorithm=algorithm, iterations=1, num_env_runners=0,
                      num_envs_per_env_runner=1,
                      ppo=PPOSettings(train_batch_size=150, minibatch_size=75, num_epochs=2),
                      model=ModelSettings(train_dropout=True), out_dir=str(tmp_path))
    config = build_ppo_config(cfg)
    runner = (VectorEnvRunner if sampler == "vector" else MultiAgentEnvRunner)(config=config)
    try:
        episodes = runner.sample(num_episodes=2, explore=True)
        learner = config.build_learner_group(env=runner.env)._learner
        sampled_with = list(runner.module.keys())
        for mid in sampled_with:  # the weights the actions were sampled with
            learner.module[mid].load_state_dict(runner.module[mid].state_dict())
    finally:
        runner.stop()
    first: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    original = RowPPOLearner.compute_loss_for_module

    def spy(self: Any, *, module_id: str, config: Any, batch: dict[str, Any],
            fwd_out: dict[str, Any]) -> Any:
        if module_id not in first:
            module = self.module[module_id].unwrapped()
            real = batch[Columns.LOSS_MASK].bool()  # not the appended bootstrap rows
            with torch.no_grad():
                ratio = _ratio(module, batch)[real]
                local = batch[Columns.OBS]["local"]
                keep = draw_keep(len(local), module.cfg.hidden, module.cfg.dropout,
                                 torch.Generator().manual_seed(1))
                redrawn = _ratio(module, {**batch, DROPOUT_MASK: pack_bits(keep)})[real]
            first[module_id] = (ratio, redrawn)
        return original(self, module_id=module_id, config=config, batch=batch,
                        fwd_out=fwd_out)

    monkeypatch.setattr(RowPPOLearner, "compute_loss_for_module", spy)
    learner.update(episodes=episodes, num_epochs=2, minibatch_size=75,
                   shuffle_batch_per_epoch=True)
    assert set(first) == set(sampled_with) - {CRITIC_ID} and len(first) == 8
    for module_id, (ratio, redrawn) in first.items():
        assert len(ratio) > 0
        assert float((ratio - 1).abs().max()) <= 1e-5, module_id
        assert float((redrawn - 1).abs().max()) > 1e-3, module_id
