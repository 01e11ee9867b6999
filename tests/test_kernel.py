"""The NumPy decision kernel: greedy logits and MC-dropout statistics of several agents at once.

The statistics are checked against the per-agent torch computation of
:mod:`algospace.models.mc_dropout` under the very masks the kernel drew, on a
team whose networks differ in width, depth, dropout, action space and votes
(so padding and blocks are exercised); and against training's own estimator
(:func:`~algospace.models.actor.actor_mc_stats`, torch's masks) as the passes grow.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.nn import functional as F

from algospace.inference.kernel import McKernel, greedy_action, greedy_logits, net_weights
from algospace.models.actor import ActorModule, actor_mc_stats
from algospace.models.mc_dropout import AGENT_STATS, agent_stats, agent_stats_multi
from algospace.models.sampling_draws import drop_threshold, effective_dropout

TEAM: dict[str, dict[str, Any]] = {
    # width, action space, hidden, dropout, votes
    "voter": {"width": 12, "space": gym.spaces.Discrete(5), "hidden": (32, 16),
              "dropout": 0.1, "votes": (-1.0, -0.5, 0.0, 0.5, 1.0)},
    "narrow": {"width": 7, "space": gym.spaces.Discrete(7), "hidden": (24, 8),
               "dropout": 0.3, "votes": (-1.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.0)},
    "risk": {"width": 12, "space": gym.spaces.MultiDiscrete([6, 6, 5]), "hidden": (32, 16),
             "dropout": 0.1, "votes": None},
    "deep": {"width": 5, "space": gym.spaces.Discrete(3), "hidden": (8, 8, 8),
             "dropout": 0.2, "votes": (-1.0, 0.0, 1.0)},
    "shallow": {"width": 9, "space": gym.spaces.Discrete(4), "hidden": (16,),
                "dropout": 0.05, "votes": None},
}
PASSES = 50


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread(one_torch_thread: None) -> None:
    """Every test here on one torch thread (see the conftest fixture)."""


def _actor(width: int, space: gym.Space[Any], hidden: tuple[int, ...], dropout: float,
           votes: tuple[float, ...] | None, seed: int = 0) -> ActorModule:
    torch.manual_seed(seed)
    obs = gym.spaces.Dict({"local": gym.spaces.Box(-np.inf, np.inf, (width,), np.float32)})
    return ActorModule(observation_space=obs, action_space=space,
                       model_config={"hidden": hidden, "dropout": dropout, "votes": votes})


@pytest.fixture(scope="module")
def team() -> dict[str, ActorModule]:
    return {name: _actor(**spec, seed=i) for i, (name, spec) in enumerate(TEAM.items())}


def _observations(team: dict[str, ActorModule], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(2.0 * rng.standard_normal(TEAM[name]["width"])).astype(np.float32)
            for name in team]


def _reference(actor: ActorModule, x: np.ndarray, masks: list[np.ndarray]) -> np.ndarray:
    """The six statistics by the per-agent torch code, under the kernel's masks."""
    scale = 1.0 / (1.0 - effective_dropout(actor.cfg.dropout))
    with torch.no_grad():
        h = torch.as_tensor(x)[None].expand(masks[0].shape[0], -1)
        for layer, keep in zip(actor.layers, masks, strict=True):
            h = F.relu(layer(h)) * torch.as_tensor(keep, dtype=torch.float32) * scale
        logits = actor.head(h)  # [passes, sum(input_lens)]
        heads = [torch.softmax(part, dim=-1)[:, None, :]
                 for part in torch.split(logits, list(actor.input_lens), dim=-1)]
        if actor.is_multi_discrete:
            stats = agent_stats_multi(heads)
        else:
            stats = agent_stats(heads[0], actor.votes)
    return stats[0].numpy()


# ------------------------------------------------------------------ greedy
def test_greedy_logits_are_the_actors_dropout_off_logits(team: dict[str, ActorModule]) -> None:
    for seed in range(5):
        for (name, actor), x in zip(team.items(), _observations(team, seed), strict=True):
            net = net_weights(actor)
            ours = greedy_logits(net, x)
            with torch.no_grad():
                theirs = actor.logits(torch.as_tensor(x)[None])[0]
            np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-5, err_msg=name)
            action, confidence = greedy_action(net, ours)
            heads = torch.split(theirs, list(actor.input_lens))
            best = [int(torch.argmax(h)) for h in heads]
            np.testing.assert_array_equal(np.atleast_1d(action), best)
            assert isinstance(action, np.ndarray) == actor.is_multi_discrete
            probs = [float(torch.softmax(h, -1)[b]) for h, b in zip(heads, best, strict=True)]
            assert confidence == pytest.approx(np.mean(probs), abs=1e-6)


def test_greedy_action_takes_the_first_of_tied_maxima() -> None:
    net = net_weights(_actor(3, gym.spaces.Discrete(4), (4,), 0.1, None))
    action, confidence = greedy_action(net, np.array([0.5, 2.0, 2.0, -1.0], np.float32))
    assert action == 1
    e = np.exp(np.array([0.5, 2.0, 2.0, -1.0]))
    assert confidence == pytest.approx(e[1] / e.sum(), rel=1e-6)


# --------------------------------------------------------------- MC statistics
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_stats_equal_the_torch_computation_under_the_same_masks(
        team: dict[str, ActorModule], seed: int) -> None:
    kernel = McKernel([net_weights(a) for a in team.values()], PASSES)
    assert len(kernel.blocks) == 3  # depths 2, 3 and 1
    xs = _observations(team, seed)
    ours = kernel.stats(xs, seed)
    masks = kernel.keep_masks(seed)
    for i, (name, actor) in enumerate(team.items()):
        assert [m.shape for m in masks[i]] == [(PASSES, h) for h in TEAM[name]["hidden"]]
        np.testing.assert_allclose(ours[i], _reference(actor, xs[i], masks[i]), atol=2e-5,
                                   err_msg=f"{name}: {AGENT_STATS}")
    assert ours[2, AGENT_STATS.index("direction")] == 0.0  # MultiDiscrete: no direction
    assert ours[4, AGENT_STATS.index("direction")] == 0.0  # no votes


def test_stats_converge_to_trainings_estimator(team: dict[str, ActorModule]) -> None:
    passes = 4000
    kernel = McKernel([net_weights(a) for a in team.values()], passes)
    xs = _observations(team, 3)
    ours = kernel.stats(xs, 11)
    for i, actor in enumerate(team.values()):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(5)
            theirs = actor_mc_stats(actor, torch.as_tensor(xs[i])[None], passes)[0].numpy()
        # standard errors at 4000 passes are below 0.008; agreement is the noisiest
        np.testing.assert_allclose(ours[i][:4], theirs[:4], atol=0.02)
        assert abs(ours[i][4] - theirs[4]) < 0.05
        assert abs(ours[i][5] - theirs[5]) < 0.02


def test_masks_drop_at_the_effective_rate(team: dict[str, ActorModule]) -> None:
    assert effective_dropout(0.1) == 6554 / 65536
    for p in (0.0, 0.05, 0.1, 0.3, 0.5, 0.9):
        assert abs(effective_dropout(p) - p) <= 2 ** -17
    assert drop_threshold(0.0) == 0
    with pytest.raises(ValueError, match="dropout"):
        drop_threshold(1.0)
    kernel = McKernel([net_weights(a) for a in team.values()], PASSES)
    for i, name in enumerate(team):
        kept = np.concatenate([np.concatenate([m.ravel() for m in kernel.keep_masks(s)[i]])
                               for s in range(200)])
        p = effective_dropout(TEAM[name]["dropout"])
        sigma = np.sqrt(p * (1 - p) / kept.size)
        assert abs((1.0 - kept.mean()) - p) < 5 * sigma, name


def test_without_dropout_every_pass_is_the_greedy_one() -> None:
    actors = [_actor(6, gym.spaces.Discrete(5), (16, 16), 0.0, (-1.0, -0.5, 0.0, 0.5, 1.0)),
              _actor(6, gym.spaces.MultiDiscrete([3, 4]), (16, 16), 0.0, None, seed=1)]
    nets = [net_weights(a) for a in actors]
    kernel = McKernel(nets, PASSES)
    xs = [np.linspace(-1, 1, 6, dtype=np.float32), np.linspace(2, -1, 6, dtype=np.float32)]
    stats = kernel.stats(xs, 0)
    col = {name: j for j, name in enumerate(AGENT_STATS)}
    np.testing.assert_allclose(stats[:, col["mutual_information"]], 0.0, atol=1e-6)
    np.testing.assert_allclose(stats[:, col["predictive_entropy"]],
                               stats[:, col["expected_entropy"]], atol=1e-6)
    np.testing.assert_array_equal(stats[:, col["agreement"]], 1.0)
    for i, net in enumerate(nets):
        _, confidence = greedy_action(net, greedy_logits(net, xs[i]))
        assert stats[i, col["top_prob"]] == pytest.approx(confidence, abs=1e-6)


def test_the_seed_alone_decides_the_masks(team: dict[str, ActorModule]) -> None:
    kernel = McKernel([net_weights(a) for a in team.values()], PASSES)
    xs = _observations(team, 0)
    torch.manual_seed(1)
    first = kernel.stats(xs, (3, 17))
    torch.manual_seed(2)  # torch's generator plays no part
    np.testing.assert_array_equal(kernel.stats(xs, (3, 17)), first)
    assert not np.array_equal(kernel.stats(xs, (3, 18)), first)
    again = McKernel([net_weights(a) for a in team.values()], PASSES)
    np.testing.assert_array_equal(again.stats(xs, (3, 17)), first)


def test_bad_observations_are_refused(team: dict[str, ActorModule]) -> None:
    kernel = McKernel([net_weights(a) for a in team.values()], PASSES)
    xs = _observations(team, 0)
    with pytest.raises(ValueError, match="expected 5 observations"):
        kernel.stats(xs[:4], 0)
    xs[1] = np.zeros(8, np.float32)
    with pytest.raises(ValueError, match=r"observation 1 has shape \(8,\), the network reads"):
        kernel.stats(xs, 0)
    with pytest.raises(ValueError, match="passes"):
        McKernel([net_weights(team["voter"])], 0)
