"""The sampler's NumPy exploration forward and the draws it shares with the torch forward.

:class:`NumpyActor` must return what :meth:`ActorModule._forward_exploration` returns from
the same draws of the module's generator: the same actions and masks, the same floats to
float32 rounding, and leave the generator where the torch forward leaves it. The
inverse-CDF draw must sample each action with its probability.
"""

from __future__ import annotations

import json
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from algospace.models.actor import MC_STATS, ActorModule
from algospace.models.actor_np import FIRST_LAYER, NumpyActors
from algospace.models.consistent_dropout import DROPOUT_MASK
from algospace.models.sampling_draws import (
    draw_exploration,
    draw_mc_blocks,
    draw_mc_keep,
    effective_dropout,
    inverse_cdf,
    keep_scale,
)
from algospace.training.sampler_forward import plain_actor

OBS = gym.spaces.Dict(local=gym.spaces.Box(-np.inf, np.inf, (20,), np.float32),
                      state=gym.spaces.Box(-np.inf, np.inf, (4,), np.float32))
VOTES = [-1.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.0]
CASES = [(gym.spaces.Discrete(7), {"votes": VOTES}),
         (gym.spaces.MultiDiscrete([6, 6, 5]), {})]


def _states(actor: ActorModule) -> tuple[Any, Any]:
    """The states of an actor's sampling and MC generators."""
    return actor.sampling_rng().bit_generator.state, actor.mc_rng().bit_generator.state


def _actor(space: gym.Space[Any], **config: Any) -> ActorModule:
    module = RLModuleSpec(module_class=ActorModule, observation_space=OBS, action_space=space,
                          model_config=config).build()
    assert isinstance(module, ActorModule)
    return module


@pytest.mark.parametrize(("space", "extra"), CASES, ids=["discrete", "multidiscrete"])
@pytest.mark.parametrize("train_dropout", [False, True], ids=["plain", "train_dropout"])
@pytest.mark.parametrize("rows", [1, 16])
def test_numpy_forward_is_the_torch_forward(space: Any, extra: dict[str, Any],
                                            train_dropout: bool, rows: int) -> None:
    actor = _actor(space, train_dropout=train_dropout, dropout=0.2, **extra)
    x = torch.randn(rows, 20, generator=torch.Generator().manual_seed(rows)) * 3
    numpy_actor = NumpyActors([actor])
    for seed in range(5):
        actor.seed_sampling(seed)
        want = actor.forward_exploration({"obs": {"local": x}})
        after_torch = _states(actor)
        actor.seed_sampling(seed)
        got = numpy_actor.explore([x.numpy()])[0]
        assert _states(actor) == after_torch  # the same draws
        assert set(got) == set(want) == ({DROPOUT_MASK} if train_dropout else set()) | {
            Columns.ACTIONS, Columns.ACTION_DIST_INPUTS, Columns.ACTION_LOGP, MC_STATS}
        np.testing.assert_array_equal(got[Columns.ACTIONS], want[Columns.ACTIONS].numpy())
        assert got[Columns.ACTIONS].dtype == np.int32  # as RLlib's pipeline converts it
        if train_dropout:
            np.testing.assert_array_equal(got[DROPOUT_MASK], want[DROPOUT_MASK].numpy())
        for key in (Columns.ACTION_DIST_INPUTS, Columns.ACTION_LOGP, MC_STATS):
            assert got[key].dtype == np.float32 and got[key].shape == want[key].shape, key
            np.testing.assert_allclose(got[key], want[key].numpy(), rtol=1e-5, atol=1e-5,
                                       err_msg=key)
    stats = got[MC_STATS]
    assert np.all(stats[:, 3] >= 0) and np.all((stats[:, 4] > 0) & (stats[:, 4] <= 1))


def test_no_passes_and_no_dropout() -> None:
    """``mc_passes`` 0 gives zero statistics and draws no masks; dropout 0 keeps every unit
    (the passes agree, no mutual information)."""
    x = np.random.default_rng(0).normal(size=(8, 20)).astype(np.float32)
    actor = _actor(gym.spaces.Discrete(7), mc_passes=0)
    actor.seed_sampling(1)
    assert np.all(NumpyActors([actor]).explore([x])[0][MC_STATS] == 0)
    assert actor.draw_mc(8) is None
    first = NumpyActors([actor]).explore([x], mc=False)[0][FIRST_LAYER]
    assert NumpyActors([actor]).mc_stats_of([[first], [first[:3]]])[0].shape == (11, 6)
    assert np.all(NumpyActors([actor]).mc_stats_of([[first], [first[:3]]])[0] == 0)
    actor = _actor(gym.spaces.Discrete(7), dropout=0.0)
    stats = NumpyActors([actor]).explore([x])[0][MC_STATS]
    np.testing.assert_allclose(stats[:, 3], 0.0, atol=1e-6)
    np.testing.assert_array_equal(stats[:, 4], 1.0)


def test_draws_come_in_their_fixed_order() -> None:
    """The sampling stream: masks of the logits (train_dropout), then one uniform per row
    and head; the MC stream: the passes' masks, pass-major. The masks drop a share ``p``
    rounded to 2^-16."""
    rng = np.random.Generator(np.random.PCG64(3))
    d = draw_exploration(rng, 50, bits=128, p=0.3, heads=3, train_dropout=True)
    assert d.train_keep is not None and d.train_keep.shape == (50, 128)
    assert d.uniforms.shape == (50, 3)
    again = np.random.Generator(np.random.PCG64(3))
    raw = again.bit_generator.random_raw(1600).view(np.uint16)
    np.testing.assert_array_equal(d.train_keep.ravel(), raw >= round(0.3 * 2 ** 16))
    np.testing.assert_array_equal(d.uniforms, again.random((50, 3)))
    mc = np.random.Generator(np.random.PCG64(4))
    keep = draw_mc_keep(mc, 50, bits=128, p=0.3, passes=8)
    assert keep is not None and keep.shape == (400, 128)
    raw = np.random.Generator(np.random.PCG64(4)).bit_generator.random_raw(400 * 32)
    np.testing.assert_array_equal(keep.ravel(), raw.view(np.uint16) >= round(0.3 * 2 ** 16))
    dropped = 1.0 - keep.mean()
    assert abs(dropped - effective_dropout(0.3)) < 5 * np.sqrt(0.21 / keep.size)
    assert keep_scale(0.3) == pytest.approx(1 / (1 - effective_dropout(0.3)))


@pytest.mark.parametrize(("bits", "passes"), [(128, 8), (7, 3)], ids=["words", "odd"])
def test_mc_blocks_are_the_forwards_draws_one_after_the_other(bits: int, passes: int) -> None:
    """Many forwards' MC masks drawn at once equal each forward's own draw in turn (whole
    64-bit words per forward, or not: 3 passes of 7 bits over odd row counts), arranged
    pass-major over all the rows, and leave the generator where the forwards leave it."""
    sizes = [5, 1, 16, 3, 0, 9]
    one, blocks = (np.random.Generator(np.random.PCG64(21)) for _ in range(2))
    singles = [draw_mc_keep(one, n, bits=bits, p=0.25, passes=passes) for n in sizes]
    got = draw_mc_blocks(blocks, sizes, bits=bits, p=0.25, passes=passes)
    assert got.shape == (passes, sum(sizes), bits)
    want = np.concatenate([k.reshape(passes, n, bits)
                           for k, n in zip(singles, sizes, strict=True)
                           if k is not None], axis=1)
    np.testing.assert_array_equal(got, want)
    assert one.bit_generator.state == blocks.bit_generator.state


@pytest.mark.parametrize(("space", "extra"), CASES, ids=["discrete", "multidiscrete"])
@pytest.mark.parametrize("train_dropout", [False, True], ids=["plain", "train_dropout"])
def test_mc_statistics_later_are_those_of_each_forward(space: Any, extra: dict[str, Any],
                                                       train_dropout: bool) -> None:
    """The vectorised sampler's bulk MC statistics (:meth:`NumpyActors.mc_stats_of`, over
    blocks of rows smaller and larger than one forward) equal what each exploration forward
    computes in turn, and the forwards without them draw the same actions: the two streams
    are apart."""
    actors = [_actor(space, train_dropout=train_dropout, dropout=0.2, **extra)
              for _ in range(2)]
    sizes = [16, 16, 3, 16, 1, 16]
    xs = [[np.random.default_rng(10 * i + t).normal(size=(n, 20)).astype(np.float32) * 2
           for i in range(2)] for t, n in enumerate(sizes)]
    for block in (1, 20, 10_000):
        for i, actor in enumerate(actors):
            actor.seed_sampling(i)
        stack = NumpyActors(actors)
        want = [stack.explore(x) for x in xs]
        for i, actor in enumerate(actors):
            actor.seed_sampling(i)
        plain = [stack.explore(x, mc=False) for x in xs]
        got = stack.mc_stats_of([[p[i].pop(FIRST_LAYER) for i in range(2)] for p in plain],
                                block=block)
        for i in range(2):
            np.testing.assert_allclose(got[i], np.concatenate([w[i][MC_STATS] for w in want]),
                                       rtol=1e-6, atol=1e-6)
            for w, p in zip(want, plain, strict=True):
                assert MC_STATS not in p[i]
                np.testing.assert_array_equal(p[i][Columns.ACTIONS], w[i][Columns.ACTIONS])


def test_inverse_cdf_draws_each_action_with_its_probability() -> None:
    probs = np.array([0.5, 0.0, 0.2, 0.25, 0.05])
    n = 200_000
    u = np.random.default_rng(7).random(n)
    actions = inverse_cdf(np.broadcast_to(probs, (n, 5)), u)
    counts = np.bincount(actions, minlength=5)
    assert counts[1] == 0  # a zero-probability action is never drawn
    expected = probs * n
    live = probs > 0
    chi2 = float((((counts - expected) ** 2)[live] / expected[live]).sum())
    assert chi2 < 18.5  # 3 degrees of freedom: p = 0.0003
    # a uniform above the last cumulative probability (rounding) takes the last action
    assert inverse_cdf(np.array([[0.3, 0.3, 0.3999999]]), np.array([0.99999999]))[0] == 2


def test_the_sampler_computes_plain_actors_only() -> None:
    class Custom(ActorModule):
        def _forward_exploration(self, batch: dict[str, Any], **kwargs: Any) -> Any:
            return super()._forward_exploration(batch, **kwargs)

    spec = RLModuleSpec(module_class=Custom, observation_space=OBS,
                        action_space=gym.spaces.Discrete(3), model_config={})
    assert plain_actor(_actor(gym.spaces.Discrete(3)))
    assert not plain_actor(spec.build())
    assert not plain_actor(torch.nn.Linear(2, 2))


def test_generator_state_round_trips_through_json() -> None:
    actor = _actor(gym.spaces.Discrete(7))
    actor.seed_sampling(9)
    actor.draw_exploration(4)
    state = json.loads(json.dumps(actor.sampling_rng().bit_generator.state))
    first = actor.draw_exploration(4)
    actor.sampling_rng().bit_generator.state = state
    second = actor.draw_exploration(4)
    np.testing.assert_array_equal(first.uniforms, second.uniforms)


@pytest.mark.parametrize("train_dropout", [False, True], ids=["plain", "train_dropout"])
def test_a_stack_is_each_actor_on_its_own(train_dropout: bool) -> None:
    """Actors of one signature with inputs of different widths, computed as one stack: each
    one's outputs are its own torch forward's, and each draws from its own generator."""
    actors, xs = [], []
    for i, width in enumerate((20, 9, 33)):
        obs = gym.spaces.Dict(local=gym.spaces.Box(-np.inf, np.inf, (width,), np.float32),
                              state=gym.spaces.Box(-np.inf, np.inf, (4,), np.float32))
        config = {"train_dropout": train_dropout, "votes": VOTES} if i != 1 \
            else {"train_dropout": train_dropout}  # one without votes: direction 0
        actor = RLModuleSpec(module_class=ActorModule, observation_space=obs,
                             action_space=gym.spaces.Discrete(7), model_config=config).build()
        assert isinstance(actor, ActorModule)
        actors.append(actor)
        xs.append(np.random.default_rng(i).normal(size=(12, width)).astype(np.float32) * 2)
    with pytest.raises(ValueError, match="one signature"):
        NumpyActors([actors[0], _actor(gym.spaces.Discrete(5))])
    for i, actor in enumerate(actors):
        actor.seed_sampling(40 + i)
    got = NumpyActors(actors).explore(xs)
    for i, actor in enumerate(actors):
        actor.seed_sampling(40 + i)
        want = actor.forward_exploration({"obs": {"local": torch.from_numpy(xs[i])}})
        np.testing.assert_array_equal(got[i][Columns.ACTIONS], want[Columns.ACTIONS].numpy())
        for key in want:
            np.testing.assert_allclose(got[i][key], want[key].numpy(), rtol=1e-5, atol=1e-5,
                                       err_msg=f"{i} {key}")
    np.testing.assert_array_equal(got[1][MC_STATS][:, 5], 0.0)


def test_sampler_speed_profile_shares_are_of_the_sample_calls() -> None:
    """``experiments.sampler_speed --profile``: each part's cumulative time over the
    vectorised ``sample()`` calls' (cProfile's stats rows: file, line, function ->
    (calls, primitive calls, total, cumulative, callers))."""
    from types import SimpleNamespace

    from experiments.sampler_speed import PROFILED, _shares

    stats = SimpleNamespace(stats={
        ("/x/algospace/training/sampler.py", 140, "sample"): (3, 3, 0.1, 2.0, {}),
        ("/x/algospace/models/actor_np.py", 118, "explore"): (9, 9, 0.2, 1.0, {}),
        ("/x/envs/core/vector.py", 254, "step"): (9, 9, 0.1, 0.5, {}),
        ("/x/envs/core/vector.py", 12, "reset"): (1, 1, 0.1, 0.4, {}),
    })
    shares = _shares(stats)
    assert set(shares) == set(PROFILED)
    assert shares["forwards"] == 0.5 and shares["env step"] == 0.25
    assert shares["episodes"] == 0.0 and shares["random draws"] == 0.0
