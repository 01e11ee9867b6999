"""Tests for the MC-dropout uncertainty features (algospace.models.mc_dropout)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from algospace.models.mc_dropout import (
    AGENT_STATS,
    MC_FEATURES,
    agent_stats,
    agent_stats_multi,
    joint_features,
    joint_features_np,
    mc_probs,
)

LN2 = math.log(2.0)


def _random_probs(n: int, b: int, a: int, seed: int = 0) -> torch.Tensor:
    """Random [n, b, a] probability tables (double precision)."""
    gen = torch.Generator().manual_seed(seed)
    logits = 3.0 * torch.randn(n, b, a, generator=gen, dtype=torch.float64)
    return torch.softmax(logits, dim=-1)


def _random_stats(b: int, agents: int, seed: int) -> torch.Tensor:
    """Per-agent stats [b, agents, 6] computed from random probability tables."""
    votes = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0], dtype=torch.float64)
    cols = [agent_stats(_random_probs(8, b, 5, seed + k), votes) for k in range(agents)]
    return torch.stack(cols, dim=1)


def test_names() -> None:
    assert len(AGENT_STATS) == 6
    assert len(MC_FEATURES) == 15
    assert len(set(MC_FEATURES)) == 15


def test_bald_hand_example() -> None:
    # Passes [0.9, 0.1] and [0.1, 0.9]: mean [0.5, 0.5].
    # predictive H = ln 2 = 0.693147...
    # expected H = H(0.9, 0.1) = 0.9*0.1053605 + 0.1*2.3025851 = 0.325083...
    # MI = 0.693147 - 0.325083 = 0.368064...
    # top_prob = 0.5; argmax of mean = action 0 (tie -> lowest); agreement = 1/2.
    # votes [-1, +1]: direction = 0.5*(-1) + 0.5*(+1) = 0.
    probs = torch.tensor([[[0.9, 0.1]], [[0.1, 0.9]]], dtype=torch.float64)
    s = agent_stats(probs, torch.tensor([-1.0, 1.0]))
    assert s.shape == (1, 6)
    expected_h = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))
    assert expected_h == pytest.approx(0.325083, abs=1e-6)
    assert s[0, 0].item() == pytest.approx(0.5)
    assert s[0, 1].item() == pytest.approx(0.693147, abs=1e-6)
    assert s[0, 2].item() == pytest.approx(0.325083, abs=1e-6)
    assert s[0, 3].item() == pytest.approx(0.368064, abs=1e-6)
    assert s[0, 4].item() == pytest.approx(0.5)
    assert s[0, 5].item() == pytest.approx(0.0)


def test_bald_zero_probabilities_and_votes() -> None:
    # Passes one-hot [1,0,0] and [0,1,0]: mean [0.5, 0.5, 0].
    # predictive H = ln 2 (0 log 0 = 0); expected H = 0; MI = ln 2.
    # argmax mean = 0; pass argmaxes 0, 1 -> agreement 0.5.
    # votes [-1, 0, 1]: direction = 0.5*(-1) + 0.5*0 + 0*1 = -0.5.
    probs = torch.tensor([[[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]]], dtype=torch.float64)
    s = agent_stats(probs, torch.tensor([-1.0, 0.0, 1.0]))
    assert torch.isfinite(s).all()
    assert s[0].tolist() == pytest.approx([0.5, LN2, 0.0, LN2, 0.5, -0.5], abs=1e-12)


def test_identical_passes_zero_mi() -> None:
    # Three identical passes [0.2, 0.3, 0.5]: MI = 0, agreement = 1, top = 0.5,
    # H = -(0.2 ln 0.2 + 0.3 ln 0.3 + 0.5 ln 0.5) = 1.029653...
    row = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    probs = row.expand(3, 1, 3)
    s = agent_stats(probs)
    assert s[0, 0].item() == pytest.approx(0.5)
    assert s[0, 1].item() == pytest.approx(1.029653, abs=1e-6)
    assert s[0, 2].item() == pytest.approx(1.029653, abs=1e-6)
    assert s[0, 3].item() == pytest.approx(0.0, abs=1e-12)
    assert s[0, 4].item() == 1.0
    assert s[0, 5].item() == 0.0


def test_decomposition_on_random_tables() -> None:
    probs = _random_probs(16, 64, 5, seed=1)
    s = agent_stats(probs)
    assert torch.allclose(s[:, 1], s[:, 2] + s[:, 3], atol=1e-6)


def test_single_pass() -> None:
    s = agent_stats(_random_probs(1, 32, 4, seed=2))
    assert torch.all(s[:, 3] == 0.0)
    assert torch.all(s[:, 4] == 1.0)
    assert torch.allclose(s[:, 1], s[:, 2])


def test_agent_stats_ranges() -> None:
    a = 5
    votes = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0], dtype=torch.float64)
    s = agent_stats(_random_probs(10, 256, a, seed=3), votes)
    eps = 1e-9
    assert torch.all(s[:, 0] >= 1.0 / a - eps) and torch.all(s[:, 0] <= 1.0 + eps)
    for col in (1, 2):
        assert torch.all(s[:, col] >= -eps) and torch.all(s[:, col] <= math.log(a) + eps)
    assert torch.all(s[:, 3] >= 0.0)
    assert torch.all((s[:, 4] >= 0.0) & (s[:, 4] <= 1.0))
    assert torch.all((s[:, 5] >= -1.0) & (s[:, 5] <= 1.0))


def test_top_prob_is_mean_of_argmax_probability() -> None:
    probs = _random_probs(6, 20, 4, seed=4)
    mean = probs.mean(0)
    idx = mean.argmax(-1)
    per_pass = probs.gather(-1, idx.expand(6, 20).unsqueeze(-1)).squeeze(-1).mean(0)
    assert torch.allclose(agent_stats(probs)[:, 0], per_pass)


def test_agent_stats_validation() -> None:
    with pytest.raises(ValueError):
        agent_stats(torch.ones(3, 4))
    with pytest.raises(ValueError):
        agent_stats(_random_probs(2, 3, 4), torch.zeros(3))
    with pytest.raises(ValueError):
        agent_stats(_random_probs(2, 3, 2), torch.tensor([-2.0, 1.0]))


def test_agent_stats_multi() -> None:
    heads = [_random_probs(4, 8, 3, seed=5), _random_probs(4, 8, 5, seed=6)]
    s = agent_stats_multi(heads)
    expected = (agent_stats(heads[0]) + agent_stats(heads[1])) / 2.0
    assert s.shape == (8, 6)
    assert torch.allclose(s[:, :5], expected[:, :5])
    assert torch.all(s[:, 5] == 0.0)
    with pytest.raises(ValueError):
        agent_stats_multi([])
    with pytest.raises(ValueError):
        agent_stats_multi([_random_probs(4, 8, 3), _random_probs(3, 8, 3)])


def test_joint_features_hand_example() -> None:
    # Columns: top, pred_H, exp_H, MI, agreement, direction.
    strategic = torch.tensor(
        [[[0.8, 0.5, 0.4, 0.1, 1.0, 0.6], [0.6, 0.7, 0.5, 0.2, 0.5, 0.2]]], dtype=torch.float64
    )
    tactical = torch.tensor(
        [[[0.9, 0.3, 0.2, 0.1, 1.0, -0.4], [0.4, 0.9, 0.8, 0.1, 0.25, 0.0]]], dtype=torch.float64
    )
    out = joint_features(strategic, tactical, threshold=0.65)
    expected = [
        # strategic means: (0.8+0.6)/2, (0.5+0.7)/2, (0.4+0.5)/2, (0.1+0.2)/2, (1+0.5)/2
        0.7, 0.6, 0.45, 0.15, 0.75,
        # tactical means: (0.9+0.4)/2, (0.3+0.9)/2, (0.2+0.8)/2, (0.1+0.1)/2, (1+0.25)/2
        0.65, 0.6, 0.5, 0.1, 0.625,
        # consensus_direction = (0.6 + 0.2 - 0.4 + 0.0)/4 = 0.1
        0.1,
        # consensus_strength = |0.1| * (1 + 0.5 + 1 + 0.25)/4 = 0.1 * 0.6875
        0.06875,
        # confident_share: tops 0.8, 0.6, 0.9, 0.4 vs 0.65 -> 2 of 4
        0.5,
        # layer_disagreement = |0.4 - (-0.2)| / 2
        0.3,
        # gate_open: mean top (0.8+0.6+0.9+0.4)/4 = 0.675 >= 0.65
        1.0,
    ]  # fmt: skip
    assert out.shape == (1, 15)
    assert out[0].tolist() == pytest.approx(expected, abs=1e-12)
    # A higher threshold closes the gate: 0.675 < 0.7; confident share: 0.8, 0.9 -> 0.5.
    closed = joint_features(strategic, tactical, threshold=0.7)
    assert closed[0, 14].item() == 0.0
    assert closed[0, 12].item() == pytest.approx(0.5)


def _check_joint_ranges(out: torch.Tensor) -> None:
    """Assert every joint feature lies in its documented range."""
    eps = 1e-9
    for base in (0, 5):
        assert torch.all(out[:, base] <= 1.0 + eps) and torch.all(out[:, base] >= 0.0)
        for col in (1, 2, 3):
            assert torch.all(out[:, base + col] >= -eps)
            assert torch.all(out[:, base + col] <= math.log(5) + eps)
        assert torch.all((out[:, base + 4] >= 0.0) & (out[:, base + 4] <= 1.0))
    assert torch.all((out[:, 10] >= -1.0) & (out[:, 10] <= 1.0))
    for col in (11, 12, 13):
        assert torch.all((out[:, col] >= 0.0) & (out[:, col] <= 1.0))
    assert set(out[:, 14].tolist()) <= {0.0, 1.0}


def test_joint_features_ranges() -> None:
    strategic, tactical = _random_stats(128, 2, seed=10), _random_stats(128, 3, seed=20)
    for thr in (0.3, 0.65, 0.9):
        _check_joint_ranges(joint_features(strategic, tactical, threshold=thr))
    _check_joint_ranges(joint_features(None, tactical))
    _check_joint_ranges(joint_features(strategic, None))


def test_joint_features_absent_layer() -> None:
    strategic, tactical = _random_stats(16, 2, seed=30), _random_stats(16, 3, seed=40)
    no_strat = joint_features(None, tactical)
    assert torch.all(no_strat[:, :5] == 0.0)
    assert torch.all(no_strat[:, 13] == 0.0)
    assert torch.allclose(no_strat[:, 5:10], tactical[:, :, :5].mean(1))
    assert torch.allclose(no_strat[:, 10], tactical[:, :, 5].mean(1))
    no_tact = joint_features(strategic, None)
    assert torch.all(no_tact[:, 5:10] == 0.0)
    assert torch.all(no_tact[:, 13] == 0.0)
    assert torch.allclose(no_tact[:, :5], strategic[:, :, :5].mean(1))


def test_joint_features_validation() -> None:
    with pytest.raises(ValueError):
        joint_features(None, None)
    with pytest.raises(ValueError):
        joint_features(torch.zeros(4, 2, 5), None)
    with pytest.raises(ValueError):
        joint_features(torch.zeros(4, 2, 6), torch.zeros(3, 2, 6))
    with pytest.raises(ValueError):
        joint_features(torch.zeros(4, 2, 6), None, threshold=1.5)


def test_row_independence() -> None:
    probs = _random_probs(8, 10, 4, seed=50)
    other = probs.clone()
    other[:, 1:] = _random_probs(8, 9, 4, seed=51)
    votes = torch.tensor([-1.0, 0.0, 0.5, 1.0])
    assert torch.equal(agent_stats(probs, votes)[0], agent_stats(other, votes)[0])
    strategic, tactical = _random_stats(10, 2, seed=60), _random_stats(10, 3, seed=70)
    strat2, tact2 = strategic.clone(), tactical.clone()
    strat2[1:] = _random_stats(9, 2, seed=80)
    tact2[1:] = _random_stats(9, 3, seed=90)
    row0 = joint_features(strategic, tactical)[0]
    assert torch.equal(row0, joint_features(strat2, tact2)[0])
    assert torch.equal(row0, joint_features(strategic[:1], tactical[:1])[0])


def test_joint_features_np() -> None:
    strategic, tactical = _random_stats(6, 2, seed=100), _random_stats(6, 3, seed=110)
    out = joint_features_np(strategic.numpy(), tactical.numpy())
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (6, 15)
    ref = joint_features(strategic.float(), tactical.float()).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-6)
    assert np.all(joint_features_np(None, tactical.numpy())[:, :5] == 0.0)


class _CountingFn:
    """Callable wrapper that counts calls and records the input batch sizes."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module
        self.calls = 0
        self.sizes: list[int] = []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.sizes.append(x.shape[0])
        return self.module(x)


def test_mc_probs_deterministic() -> None:
    torch.manual_seed(0)
    net = torch.nn.Linear(7, 3)
    fn = _CountingFn(net)
    x = torch.randn(5, 7)
    out = mc_probs(fn, x, 4)
    assert out.shape == (4, 5, 3)
    assert fn.calls == 1 and fn.sizes == [20]
    single = torch.softmax(net(x), dim=-1)
    for i in range(4):
        assert torch.allclose(out[i], single, atol=1e-6)
    assert torch.allclose(out.sum(-1), torch.ones(4, 5), atol=1e-6)


def test_mc_probs_dropout_passes_differ() -> None:
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Dropout(p=0.5), torch.nn.Linear(16, 4))
    net.train()
    fn = _CountingFn(net)
    out = mc_probs(fn, torch.randn(3, 16), 8)
    assert fn.calls == 1 and fn.sizes == [24]
    assert out.shape == (8, 3, 4)
    assert not torch.allclose(out[0], out[1])
    s = agent_stats(out)
    assert torch.all(s[:, 3] > 0.0)


def test_mc_probs_validation() -> None:
    fn = _CountingFn(torch.nn.Linear(2, 3))
    with pytest.raises(ValueError):
        mc_probs(fn, torch.zeros(2, 2), 0)
    with pytest.raises(ValueError):
        mc_probs(lambda t: torch.zeros(t.shape[0] + 1, 3), torch.zeros(2, 2), 3)
