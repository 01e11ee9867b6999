"""The random state a checkpoint carries for --resume: plain JSON numbers that put every
generator back exactly (nothing of a checkpoint is unpickled)."""

from __future__ import annotations

import json
import random

import numpy as np
import torch

from algospace.training.rng import rng_state, set_rng_state


def _draws() -> tuple[float, float, float, float]:
    return (random.random(), float(np.random.rand()), float(np.random.randn()),
            float(torch.rand(1)))


def test_state_through_json_repeats_the_draws() -> None:
    np.random.randn()  # a cached Gaussian is part of numpy's legacy state
    saved = json.dumps(rng_state())
    first = _draws()
    assert _draws() != first
    set_rng_state(json.loads(saved))
    assert _draws() == first
