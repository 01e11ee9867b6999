"""The critic's value-normalisation statistics survive a checkpoint in full precision.

RLlib's ``TorchRLModule.set_state`` casts float64 to float32: the float64 running mean and
variance came back rounded, and a resumed run drifted from the uninterrupted one from its
first resumed iteration on (seen in the 9th digit of ``critic/value_norm_mean``).
"""

from __future__ import annotations

import numpy as np
import torch
from ray.rllib.utils.numpy import convert_to_numpy

from algospace.models.critic import VALUE_NORM_BUFFERS
from tests.test_models import _critic


def _trained_stats() -> object:
    critic = _critic()
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        critic.update_value_norm(torch.randn(997, generator=gen, dtype=torch.float64) * 3 + 0.1)
    return critic


def test_value_norm_statistics_restore_exactly_from_a_checkpoint_state() -> None:
    critic = _trained_stats()
    mean = float(critic.value_mean)
    assert float(np.float32(mean)) != mean  # not representable in float32: rounding would show
    for state in (critic.get_state(), convert_to_numpy(critic.get_state())):  # live, pickled
        restored = _critic()
        restored.set_state(state)
        for name in VALUE_NORM_BUFFERS:
            got, want = getattr(restored, name), getattr(critic, name)
            assert got.dtype == torch.float64
            assert got.item() == want.item(), name
        for name, value in critic.state_dict().items():
            assert torch.equal(restored.state_dict()[name], value), name
