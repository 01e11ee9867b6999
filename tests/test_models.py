"""Tests of the actor (dropout-off policy + MC-dropout statistics) and the central critic."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.env.multi_agent_env import MultiAgentEnv
from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner

from algospace.models.actor import MC_STATS, ActorModule
from algospace.models.consistent_dropout import DROPOUT_MASK
from algospace.models.critic import (
    MC_FEATURES_KEY,
    VALUES_NORM,
    CentralCritic,
    critic_loss,
)
from algospace.models.network import Layer, actor_layers
from envs.core.layout import STRATEGIC_VOTE

LOCAL_DIM, STATE_DIM, MC_DIM, B = 20, 112, 15, 6
OBS_SPACE = gym.spaces.Dict(
    local=gym.spaces.Box(-np.inf, np.inf, (LOCAL_DIM,), np.float32),
    state=gym.spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float32),
)
DISCRETE = gym.spaces.Discrete(7)
MULTI = gym.spaces.MultiDiscrete([6, 6, 5])
SPACES = pytest.mark.parametrize("space", [DISCRETE, MULTI], ids=["discrete", "multidiscrete"])


def _actor(space: gym.Space[Any], **model_config: Any) -> Any:
    """An ActorModule built through RLModuleSpec."""
    model_config.setdefault("train_dropout", True)  # the tests of the mask path (off by default)
    if isinstance(space, gym.spaces.Discrete) and "votes" not in model_config:
        model_config["votes"] = STRATEGIC_VOTE
    return RLModuleSpec(module_class=ActorModule, observation_space=OBS_SPACE,
                        action_space=space, model_config=model_config).build()


def _critic(**model_config: Any) -> Any:
    """A learner-only CentralCritic built through RLModuleSpec."""
    return RLModuleSpec(module_class=CentralCritic, learner_only=True, observation_space=OBS_SPACE,
                        action_space=DISCRETE, model_config=model_config).build()


def _obs(rows: int = B, seed: int = 0, mc: bool = False) -> dict[str, Any]:
    """A random batch with Dict observations (and MC features if asked)."""
    g = torch.Generator().manual_seed(seed)
    batch: dict[str, Any] = {Columns.OBS: {"local": torch.randn(rows, LOCAL_DIM, generator=g),
                                           "state": torch.randn(rows, STATE_DIM, generator=g)}}
    if mc:
        batch[MC_FEATURES_KEY] = torch.rand(rows, MC_DIM, generator=g)
    return batch


def _with_masks(module: Any, batch: dict[str, Any]) -> dict[str, Any]:
    """``batch`` plus the dropout masks an exploration pass draws for it (what the learner's
    batch carries back from the sampled episodes)."""
    return {**batch, DROPOUT_MASK: module.forward_exploration(batch)[DROPOUT_MASK]}


def _cat(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Row-wise concatenation of two batches of the same structure."""
    out: dict[str, Any] = {Columns.OBS: {k: torch.cat([a[Columns.OBS][k], b[Columns.OBS][k]])
                                         for k in a[Columns.OBS]}}
    for key in a.keys() - {Columns.OBS}:
        out[key] = torch.cat([a[key], b[key]])
    return out


# --------------------------------------------------------------------- actor
@SPACES
def test_actor_outputs_logits_of_the_action_space(space: gym.Space[Any]) -> None:
    module = _actor(space)
    width = 7 if space is DISCRETE else 17
    batch = _obs()
    for out in (module.forward_inference(batch), module.forward_exploration(batch),
                module.forward_train(_with_masks(module, batch))):
        assert out[Columns.ACTION_DIST_INPUTS].shape == (B, width)
    assert set(module.forward_inference(batch)) == {Columns.ACTION_DIST_INPUTS}
    assert set(module.forward_train(_with_masks(module, batch))) == {Columns.ACTION_DIST_INPUTS}


@SPACES
def test_action_distributions_sample_valid_actions(space: gym.Space[Any]) -> None:
    module = _actor(space)
    logits = module.forward_exploration(_obs(64))[Columns.ACTION_DIST_INPUTS]
    for cls in (module.get_inference_action_dist_cls(), module.get_exploration_action_dist_cls(),
                module.get_train_action_dist_cls()):
        dist = cls.from_logits(logits)
        for actions in (dist.sample(), dist.to_deterministic().sample()):
            assert all(space.contains(a) for a in actions.numpy().astype(np.int64))
        assert dist.logp(dist.sample()).shape == (64,)


@SPACES
def test_exploration_mc_stats_are_finite_and_in_their_ranges(space: gym.Space[Any]) -> None:
    stats = _actor(space, dropout=0.3).forward_exploration(_obs(32))[MC_STATS]
    assert stats.shape == (32, 6) and stats.dtype == torch.float32
    assert bool(torch.isfinite(stats).all())
    n_max = 7 if space is DISCRETE else 6
    top, pred, exp, mi, agree, direction = stats.unbind(-1)
    assert bool(((top >= 1 / n_max - 1e-6) & (top <= 1)).all())
    for entropy in (pred, exp):
        assert bool(((entropy >= 0) & (entropy <= math.log(n_max) + 1e-6)).all())
    assert bool((mi >= 0).all()) and bool(((agree >= 0) & (agree <= 1)).all())
    assert bool((direction.abs() <= 1).all())
    if space is MULTI:
        assert bool((direction == 0).all())


@pytest.mark.parametrize("train_dropout", [True, False])
def test_greedy_policy_is_dropout_free_and_deterministic_in_train_mode(
        train_dropout: bool) -> None:
    """Greedy inference is the dropout-off network (weight scaling) whether or not the actor
    trains with dropout; without train_dropout, sampling and training use it too."""
    module = _actor(DISCRETE, dropout=0.5, train_dropout=train_dropout)
    module.train()
    batch = _obs()
    first = module.forward_inference(batch)[Columns.ACTION_DIST_INPUTS]
    second = module.forward_inference(batch)[Columns.ACTION_DIST_INPUTS]
    assert torch.equal(first, second)
    assert module.training  # forward_inference restores the mode
    with torch.no_grad():
        torch.testing.assert_close(module.logits(batch[Columns.OBS]["local"]), first)
    if train_dropout:
        return
    torch.testing.assert_close(module.forward_train(batch)[Columns.ACTION_DIST_INPUTS], first)
    explore = module.forward_exploration(batch)[Columns.ACTION_DIST_INPUTS]
    torch.testing.assert_close(explore, first)


def test_mc_passes_run_with_dropout_even_in_eval_mode() -> None:
    module = _actor(DISCRETE, dropout=0.5, mc_passes=16)
    module.eval()
    stats = module.forward_exploration(_obs(16))[MC_STATS]
    assert bool((stats[:, 3] > 0).any())  # passes differ: mutual information > 0


def test_single_pass_has_zero_mutual_information() -> None:
    stats = _actor(DISCRETE, dropout=0.5, mc_passes=1).forward_exploration(_obs())[MC_STATS]
    assert bool((stats[:, 3] == 0).all())
    assert bool((stats[:, 4] == 1).all())


@SPACES
def test_zero_passes_give_zero_stats(space: gym.Space[Any]) -> None:
    stats = _actor(space, mc_passes=0).forward_exploration(_obs())[MC_STATS]
    assert torch.equal(stats, torch.zeros(B, 6))


@pytest.mark.parametrize("vote", [1.0, -1.0])
def test_direction_uses_the_votes(vote: float) -> None:
    stats = _actor(DISCRETE, votes=(vote,) * 7).forward_exploration(_obs())[MC_STATS]
    torch.testing.assert_close(stats[:, 5], torch.full((B,), vote))


@SPACES
def test_actor_rows_are_independent(space: gym.Space[Any]) -> None:
    module = _actor(space, dropout=0.3)
    a, b = _obs(seed=1), _obs(seed=2)
    b[Columns.OBS]["local"][0] = a[Columns.OBS]["local"][0]
    outs = []
    for batch in (a, b):
        module.seed_sampling(0)  # same dropout masks for the same batch size
        outs.append(module.forward_exploration(batch))
    for key in (Columns.ACTION_DIST_INPUTS, MC_STATS):
        torch.testing.assert_close(outs[0][key][0], outs[1][key][0], rtol=0, atol=1e-6)
    small = {Columns.OBS: {k: v[:1] for k, v in a[Columns.OBS].items()},
             DROPOUT_MASK: outs[0][DROPOUT_MASK][:1]}
    torch.testing.assert_close(module.forward_train(small)[Columns.ACTION_DIST_INPUTS][0],
                               outs[0][Columns.ACTION_DIST_INPUTS][0], rtol=0, atol=1e-6)
    torch.testing.assert_close(module.forward_inference(small)[Columns.ACTION_DIST_INPUTS][0],
                               module.forward_inference(a)[Columns.ACTION_DIST_INPUTS][0],
                               rtol=0, atol=1e-6)


def test_actor_reads_only_the_local_observation() -> None:
    module = _actor(DISCRETE)
    a, b = _obs(seed=1), _obs(seed=2)
    b[Columns.OBS]["local"] = a[Columns.OBS]["local"]
    a[DROPOUT_MASK] = b[DROPOUT_MASK] = module.forward_exploration(a)[DROPOUT_MASK]
    for batch_out in (module.forward_inference, module.forward_train):
        assert torch.equal(batch_out(a)[Columns.ACTION_DIST_INPUTS],
                           batch_out(b)[Columns.ACTION_DIST_INPUTS])


@SPACES
def test_mc_passes_are_one_batched_forward(space: gym.Space[Any]) -> None:
    module = _actor(space, mc_passes=8)
    sizes: dict[int, list[int]] = {0: [], 1: []}
    for i in sizes:
        module.layers[i].register_forward_hook(
            lambda _m, inp, _o, i=i: sizes[i].append(inp[0].shape[0]))
    module.forward_exploration(_obs())
    # the first layer's product once, shared by the policy pass and the MC passes; after
    # it the policy pass and ONE pass for all 8 MC passes
    assert sizes == {0: [B], 1: [B, 8 * B]}


@pytest.mark.parametrize(("space", "config", "match"), [
    (DISCRETE, {"votes": (0.0,) * 5}, "votes has 5 entries"),
    (MULTI, {"votes": (0.0,) * 17}, "only supported for Discrete"),
    (DISCRETE, {"votes": (2.0,) * 7}, r"\[-1, 1\]"),
    (DISCRETE, {"dropout": 1.0}, "dropout"),
    (DISCRETE, {"mc_passes": -1}, "mc_passes"),
    (gym.spaces.Box(-1, 1, (2,)), {"votes": None}, "Discrete and MultiDiscrete"),
])
def test_actor_rejects_bad_configs(space: gym.Space[Any], config: dict[str, Any],
                                   match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _actor(space, **config)


def test_actor_layers_list_the_network_in_forward_order() -> None:
    """The one definition of the network names exactly the actor's weights, in order."""
    state = _actor(DISCRETE, hidden=(8, 4, 3)).state_dict()
    layers = actor_layers(state)
    assert layers == (Layer("layers.0", True), Layer("layers.1", True),
                      Layer("layers.2", True), Layer("head", False))
    assert {f"{layer.name}.{p}" for layer in layers for p in ("weight", "bias")} == set(state)
    with pytest.raises(ValueError, match="head"):
        actor_layers({k: v for k, v in state.items() if not k.startswith("head")})


def test_actor_needs_dict_observations() -> None:
    with pytest.raises(ValueError, match="'local'"):
        RLModuleSpec(module_class=ActorModule, observation_space=OBS_SPACE["state"],
                     action_space=DISCRETE).build()
    with pytest.raises(KeyError, match="'local'"):
        _actor(DISCRETE).forward_inference({Columns.OBS: torch.zeros(B, LOCAL_DIM)})


def test_mc_stats_reach_episode_extra_model_outputs() -> None:
    """RLlib stores the custom exploration output per agent and timestep in the episodes."""
    specs = {"voter": RLModuleSpec(module_class=ActorModule,
                                   model_config={"mc_passes": 4, "train_dropout": True}),
             "risk": RLModuleSpec(module_class=ActorModule,
                                  model_config={"train_dropout": True}),
             "critic": RLModuleSpec(module_class=CentralCritic, learner_only=True,
                                    observation_space=OBS_SPACE, action_space=DISCRETE)}
    config = (PPOConfig().environment(_TinyEnv).env_runners(num_env_runners=0)
              .multi_agent(policies={"voter", "risk"},
                           policy_mapping_fn=lambda aid, *a, **k: aid)
              .rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs=specs)))
    runner = MultiAgentEnvRunner(config=config)
    try:
        assert set(runner.module.keys()) == {"voter", "risk"}  # critic is learner-only
        episode = runner.sample(num_episodes=1, explore=True)[0]
        for agent in ("voter", "risk"):
            rows = episode.agent_episodes[agent]
            stats = np.asarray(rows.get_extra_model_outputs(MC_STATS))
            assert stats.shape == (len(rows), 6) == (_TinyEnv.STEPS, 6)
            assert np.isfinite(stats).all() and (stats[:, 0] > 0).all()
            masks = np.asarray(rows.get_extra_model_outputs(DROPOUT_MASK))
            assert masks.shape == (len(rows), 16) and masks.dtype == np.uint8  # 64 + 64 bits
        greedy = runner.sample(num_episodes=1, explore=False)[0]
        assert MC_STATS not in greedy.agent_episodes["voter"].extra_model_outputs
        assert DROPOUT_MASK not in greedy.agent_episodes["voter"].extra_model_outputs
    finally:
        runner.stop()


class _TinyEnv(MultiAgentEnv):
    """A 2-agent RLlib env with the envs' Dict observations and action spaces."""

    STEPS = 4

    def __init__(self, config: Any = None) -> None:
        super().__init__()
        self.possible_agents = ["risk", "voter"]
        self.agents = list(self.possible_agents)
        self.observation_spaces = dict.fromkeys(self.agents, OBS_SPACE)
        self.action_spaces = {"risk": MULTI, "voter": DISCRETE}
        self.t = 0

    def _obs(self) -> dict[str, Any]:
        return {a: OBS_SPACE.sample() for a in self.agents}

    def reset(self, *, seed: int | None = None, options: Any = None) -> Any:
        self.t = 0
        return self._obs(), {}

    def step(self, action_dict: dict[str, Any]) -> Any:
        self.t += 1
        done = self.t >= self.STEPS
        return (self._obs(), dict.fromkeys(self.agents, 0.0), {"__all__": done},
                {"__all__": False}, {})


# -------------------------------------------------------------------- critic
def test_critic_values_have_one_scalar_per_row() -> None:
    critic = _critic(hidden=(32,))
    batch = _obs(mc=True)
    values = critic.compute_values(batch)
    assert values.shape == (B,)
    out = critic.forward_train(batch)
    assert set(out) == {VALUES_NORM} and out[VALUES_NORM].shape == (B,)
    torch.testing.assert_close(values, critic.denormalise(critic.normalised_values(batch)))


def test_critic_rows_are_independent() -> None:
    critic = _critic()
    a = _obs(mc=True, seed=1)
    row0 = critic.compute_values(a)[0]
    other = _obs(mc=True, seed=2)
    for key in ("local", "state"):
        other[Columns.OBS][key][0] = a[Columns.OBS][key][0]
    other[MC_FEATURES_KEY][0] = a[MC_FEATURES_KEY][0]
    bigger = _cat(a, _obs(rows=17, mc=True, seed=3))
    single = {Columns.OBS: {k: v[:1] for k, v in a[Columns.OBS].items()},
              MC_FEATURES_KEY: a[MC_FEATURES_KEY][:1]}
    for batch in (other, bigger, single):
        torch.testing.assert_close(critic.compute_values(batch)[0], row0, rtol=0, atol=1e-6)


def test_critic_needs_mc_features() -> None:
    with pytest.raises(KeyError, match=MC_FEATURES_KEY):
        _critic().compute_values(_obs())


def test_critic_checks_input_widths() -> None:
    critic = _critic()
    batch = _obs(mc=True)
    batch[Columns.OBS]["state"] = torch.zeros(B, 100)
    with pytest.raises(ValueError, match=r"width 100 but state_dim is 112"):
        critic.compute_values(batch)
    batch = _obs(mc=True)
    batch[MC_FEATURES_KEY] = torch.zeros(B, 14)
    with pytest.raises(ValueError, match=r"width 14 but mc_dim is 15"):
        critic.compute_values(batch)
    with pytest.raises(ValueError, match=r"112 dims but state_dim is 100"):
        _critic(state_dim=100)


def test_value_norm_tracks_target_statistics() -> None:
    critic = _critic()
    g = torch.Generator().manual_seed(0)
    targets = 50.0 + 10.0 * torch.randn(20_000, generator=g)
    critic.update_value_norm(targets[:5_000])
    critic.update_value_norm(targets[5_000:])  # parallel formula: same as all at once
    assert float(critic.value_count) == 20_000
    assert float(critic.value_mean) == pytest.approx(float(targets.double().mean()), abs=1e-9)
    assert float(critic.value_var) == pytest.approx(float(targets.double().var(unbiased=False)),
                                                    rel=1e-9)
    norm = critic.normalise(targets)
    assert float(norm.mean()) == pytest.approx(0.0, abs=1e-4)
    assert float(norm.std(unbiased=False)) == pytest.approx(1.0, abs=1e-4)
    torch.testing.assert_close(critic.denormalise(norm), targets)
    state = critic.state_dict()
    assert {"value_mean", "value_var", "value_count"} <= set(state)
    assert not any(name.startswith("value_") for name, _ in critic.named_parameters())
    fresh = _critic()
    fresh.set_state(critic.get_state())
    assert float(fresh.value_mean) == pytest.approx(float(critic.value_mean))
    torch.testing.assert_close(fresh.compute_values(_obs(mc=True)),
                               critic.compute_values(_obs(mc=True)))


def test_value_norm_off_is_identity() -> None:
    critic = _critic(value_norm=False)
    x = torch.tensor([3.0, -7.0, 120.0])
    critic.update_value_norm(x)
    assert torch.equal(critic.normalise(x), x) and torch.equal(critic.denormalise(x), x)
    batch = _obs(mc=True)
    torch.testing.assert_close(critic.compute_values(batch), critic.normalised_values(batch))


def test_value_norm_rejects_non_finite_targets() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        _critic().update_value_norm(torch.tensor([1.0, float("nan")]))


def test_critic_loss_with_clipping_by_hand() -> None:
    pred, old, target = torch.tensor([2.0]), torch.tensor([1.0]), torch.tensor([3.0])
    # Unclipped (3 - 2)^2 = 1.0; clipped pred 1 + 0.2 = 1.2 -> (3 - 1.2)^2 = 3.24; max 3.24.
    torch.testing.assert_close(critic_loss(pred, old, target, clip=0.2, huber_delta=None),
                               torch.tensor([3.24]))
    torch.testing.assert_close(critic_loss(pred, old, target, clip=None, huber_delta=None),
                               torch.tensor([1.0]))
    # Clipping cannot lower the loss: pred 2.9 moves towards the target, clipped 1.2 does not.
    torch.testing.assert_close(
        critic_loss(torch.tensor([2.9]), old, target, clip=0.2, huber_delta=None),
        torch.tensor([3.24]))


def test_critic_loss_huber_by_hand() -> None:
    pred, old, target = torch.tensor([2.0, 0.0]), torch.tensor([1.0, 0.0]), torch.tensor([3.0, 4.0])
    # Row 0: |e| = 1 <= 1 -> 0.5 * 1^2 = 0.5 unclipped; clipped e = 1.8 -> 1 * (1.8 - 0.5) = 1.3.
    # Row 1: |e| = 4 -> 1 * (4 - 0.5) = 3.5 (pred == old, clipping changes nothing).
    torch.testing.assert_close(critic_loss(pred, old, target, clip=0.2, huber_delta=1.0),
                               torch.tensor([1.3, 3.5]))
    torch.testing.assert_close(critic_loss(pred, old, target, clip=None, huber_delta=1.0),
                               torch.tensor([0.5, 3.5]))
    # Quadratic zone with delta 2: e = 1.5 -> 0.5 * 2.25 = 1.125.
    torch.testing.assert_close(
        critic_loss(torch.tensor([1.5]), torch.tensor([1.5]), torch.tensor([3.0]), clip=None,
                    huber_delta=2.0), torch.tensor([1.125]))


def test_critic_loss_validates_its_arguments() -> None:
    x = torch.zeros(3)
    with pytest.raises(ValueError, match="shapes differ"):
        critic_loss(x, x, torch.zeros(4), clip=None, huber_delta=None)
    with pytest.raises(ValueError, match="clip"):
        critic_loss(x, x, x, clip=0.0, huber_delta=None)
    with pytest.raises(ValueError, match="huber_delta"):
        critic_loss(x, x, x, clip=None, huber_delta=-1.0)


def test_one_optimizer_step_reduces_the_critic_loss() -> None:
    torch.manual_seed(0)
    critic = _critic(hidden=(32, 32))
    batch = _obs(rows=64, mc=True)
    targets = 50.0 + 10.0 * torch.randn(64)
    critic.update_value_norm(targets)
    target_norm = critic.normalise(targets)
    with torch.no_grad():
        old = critic.normalised_values(batch)
    optim = torch.optim.Adam(critic.parameters(), lr=1e-3)

    def loss() -> torch.Tensor:
        return critic_loss(critic.normalised_values(batch), old, target_norm, clip=0.2,
                           huber_delta=None).mean()

    before = loss()
    optim.zero_grad()
    before.backward()
    optim.step()
    with torch.no_grad():
        after = loss()
    assert float(after) < float(before.detach())


# ----------------------------------------------------------- sampling
@SPACES
def test_sampled_actions_follow_the_policy(space: gym.Space[Any]) -> None:
    """The module's own draws: each head's action frequencies within 5 sigma of its softmax
    (averaged over the rows' dropout masks), and the log-probability returned is the
    distribution's log-probability of the draw."""
    module = _actor(space)
    one = {Columns.OBS: {k: v[:1].repeat(20_000, 1) for k, v in _obs()[Columns.OBS].items()}}
    out = module.forward_exploration(one)
    actions = out[Columns.ACTIONS]
    assert actions.shape == ((20_000,) if space is DISCRETE else (20_000, 3))
    dist = module.get_exploration_action_dist_cls().from_logits(out[Columns.ACTION_DIST_INPUTS])
    torch.testing.assert_close(out[Columns.ACTION_LOGP], dist.logp(actions))
    heads = actions.reshape(20_000, -1).T
    # each row's logits are under its own dropout mask: the expected frequency of an action
    # is its probability averaged over the rows
    logits = torch.split(out[Columns.ACTION_DIST_INPUTS], list(module.input_lens), dim=-1)
    for head, head_logits in zip(heads, logits, strict=True):
        p = torch.softmax(head_logits, dim=-1).double().mean(dim=0)
        freq = torch.bincount(head, minlength=len(p)).double() / len(head)
        sigma = torch.sqrt(p * (1 - p) / len(head))
        assert bool(((freq - p).abs() <= 5 * sigma + 1e-9).all()), (freq, p)


def test_sampling_does_not_depend_on_the_global_generator_or_call_order() -> None:
    """RLlib calls the modules of a step in an order that changes between processes; each
    module draws from its own generator, so its actions and MC statistics do not."""
    torch.manual_seed(5)
    a, b = _actor(DISCRETE, dropout=0.3), _actor(MULTI, dropout=0.3)
    batch = _obs(rows=64)

    def run(order: tuple[Any, ...], global_seed: int) -> list[dict[str, Any]]:
        for m, seed in zip((a, b), (11, 12), strict=True):
            m.seed_sampling(seed)
        torch.manual_seed(global_seed)
        outs = {id(m): [m.forward_exploration(batch) for _ in range(3)] for m in order}
        return [outs[id(a)], outs[id(b)]]

    first, second = run((a, b), 0), run((b, a), 1)
    for x, y in zip(first, second, strict=True):
        for step_x, step_y in zip(x, y, strict=True):
            for key in (Columns.ACTIONS, MC_STATS):
                assert torch.equal(step_x[key], step_y[key]), key
    assert not torch.equal(first[0][0][Columns.ACTIONS], first[0][1][Columns.ACTIONS])
