"""The shortcuts of the vectorised sampler's hot path compute what they replace.

The sampler (``resources.sampler: vector``) skips RLlib's distribution objects, its
per-call eval/train switch and its tree walk over the module output; each shortcut
must give exactly the values of the path it skips (tests/test_sampler.py checks whole
episodes against the stock runner).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.utils.numpy import convert_to_numpy

from algospace.models.actor import ActorModule
from algospace.training.sampler_forward import exploring, to_numpy

OBS = gym.spaces.Dict(local=gym.spaces.Box(-np.inf, np.inf, (12,), np.float32),
                      state=gym.spaces.Box(-np.inf, np.inf, (4,), np.float32))
SPACES = [gym.spaces.Discrete(7), gym.spaces.MultiDiscrete([6, 6, 5])]


def _actor(space: gym.Space[Any]) -> Any:
    return RLModuleSpec(module_class=ActorModule, observation_space=OBS, action_space=space,
                        model_config={}).build()


@pytest.mark.parametrize("space", SPACES, ids=["discrete", "multidiscrete"])
def test_actor_logp_is_the_rllib_distributions_logp_bit_for_bit(space: Any) -> None:
    actor = _actor(space)
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(64, sum(actor.input_lens), generator=g) * 4
    actions = actor.sample(logits, torch.rand(64, len(actor.input_lens), generator=g))
    want = actor._dist_cls().from_logits(logits).logp(actions)
    got = actor.logp(logits, actions)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert torch.equal(got, want)


def test_to_numpy_is_rllibs_convert_to_numpy() -> None:
    result = {"a": torch.arange(6).reshape(3, 2), "b": torch.randn(3, dtype=torch.float64),
              "c": torch.ones(3, 2, dtype=torch.uint8), "d": torch.tensor(2.5)}
    got, want = to_numpy(dict(result)), convert_to_numpy(result)
    assert set(got) == set(want)
    for key, value in want.items():
        assert type(got[key]) is type(value)
        if isinstance(value, np.ndarray):
            assert got[key].dtype == value.dtype
            np.testing.assert_array_equal(got[key], value)
        else:
            assert got[key] == value


def test_exploring_calls_the_forward_of_an_eval_module_and_restores_its_mode() -> None:
    actor = _actor(SPACES[0])
    actor.train()
    batch = {"obs": {"local": torch.randn(5, 12), "state": torch.randn(5, 4)}}
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # the thread count may change the matrix products' bits
        actor.seed_sampling(7)
        want = actor.forward_exploration(batch)
        actor.seed_sampling(7)
        torch.set_num_threads(2)
        with exploring({"x": actor}, ["x"]) as forward:
            assert not actor.training and not torch.is_grad_enabled()
            assert torch.get_num_threads() == 1
            got = forward["x"](batch)
        assert actor.training and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    assert set(got) == set(want)
    for key, value in want.items():
        assert torch.equal(got[key], value), key


@pytest.mark.parametrize("space", SPACES, ids=["discrete", "multidiscrete"])
@pytest.mark.parametrize("rows", [1, 3, 16])
def test_exploration_shares_the_first_layer_with_the_mc_passes(space: Any, rows: int) -> None:
    """The exploration forward computes the first hidden layer once for its logits and its
    MC passes: the logits are those of the plain forward bit for bit, the actions those
    drawn from them by the module's uniforms, the MC statistics those of passes over the
    tiled input under the drawn masks (to float32 rounding: the first layer's product may
    take another summation order on fewer rows)."""
    from algospace.models.mc_dropout import agent_stats, agent_stats_multi

    actor = _actor(space)
    x = torch.randn(rows, 12, generator=torch.Generator().manual_seed(rows))
    actor.seed_sampling(11)
    got = actor.forward_exploration({"obs": {"local": x}})
    actor.seed_sampling(11)
    draws = actor.draw_exploration(rows)
    mc_keep = actor.draw_mc(rows)
    passes = actor.cfg.mc_passes
    assert mc_keep is not None and mc_keep.shape == (passes * rows, 128)
    with torch.no_grad():
        logits = actor.logits(x)
        actions = actor.sample(logits, torch.from_numpy(draws.uniforms))
        tiled = actor.logits(x.repeat(passes, 1), keep=torch.from_numpy(mc_keep))
        probs = [torch.softmax(p, -1).reshape(passes, rows, -1)
                 for p in torch.split(tiled, list(actor.input_lens), -1)]
        stats = agent_stats_multi(probs) if actor.is_multi_discrete else \
            agent_stats(probs[0], actor.votes)
    assert torch.equal(got["action_dist_inputs"], logits)
    assert torch.equal(got["actions"], actions)
    torch.testing.assert_close(got["mc_stats"], stats, rtol=1e-5, atol=1e-6)
