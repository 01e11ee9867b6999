"""The shared critic's rows, each computed once: the actors' rows that share an env step
share the critic's input.

In MAPPO every actor module adds the critic's loss on its own rows
(:class:`~algospace.training.mappo.MAPPOTorchLearner`). The critic's input at a row — the
112-d global state and the 15 MC features — depends only on the episode and the env step
(the env's 5-minute ``row``): every agent that observes at that step sees the same
global state, and the MC features join every agent's latest statistics at or before the
row whoever the row belongs to (:func:`algospace.training.mappo._features`). In
``joint_v0`` four tactical modules act at every step and four strategic ones at every
sixth: a batch of about 20,700 actor rows holds about 4,400 distinct critic inputs.

:class:`~algospace.training.mappo.RowColumns` gives every row a key, :data:`ROW_KEY`
(the episode's place in the learner's list times 2^32, plus the row), and
:func:`shared_values` runs the critic once per distinct key among the rows of all modules
in a batch or minibatch, then hands each module its rows' values (gathered, so each
duplicate passes its gradient back to the one computation, which sums them: the loss and
its gradients are those of one critic call per module, to float rounding; tested).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

ROW_KEY = "critic_row_key"
"""Batch column (int64): the episode's index in the learner's episodes times 2^32 plus the
env's 5-minute row. Rows with the same key have the same critic input."""
_STRIDE = 1 << 32


def row_keys(episode_index: int, rows: np.ndarray) -> np.ndarray:
    """:data:`ROW_KEY` of an agent episode's rows (``rows``: the env's row at each)."""
    if rows.size and not (int(rows.min()) >= 0 and int(rows.max()) < _STRIDE):
        raise ValueError("env rows must lie in [0, 2**32)")
    return np.asarray(rows, np.int64) + np.int64(episode_index) * _STRIDE


def shared_values(critic: Any, batch: Mapping[str, Any],
                  modules: list[str]) -> dict[str, torch.Tensor]:
    """The critic's normalised output for every row of each of ``modules`` in ``batch``
    (``{module_id: [B_m]}``), from one critic call over the distinct :data:`ROW_KEY`\\ s
    of all their rows. Empty when a module's batch lacks the key."""
    if not modules or any(ROW_KEY not in batch[m] for m in modules):
        return {}
    inputs = [critic.critic_input(batch[m]) for m in modules]
    keys = torch.cat([torch.as_tensor(batch[m][ROW_KEY]).to(inputs[0].device)
                      for m in modules])
    unique, inverse = torch.unique(keys, return_inverse=True)
    positions = torch.arange(keys.shape[0], device=keys.device)
    first = torch.full((unique.shape[0],), keys.shape[0], dtype=positions.dtype,
                       device=keys.device).scatter_reduce(0, inverse, positions, reduce="amin")
    values = critic.net(torch.cat(inputs).index_select(0, first)).squeeze(-1)
    return dict(zip(modules, values.index_select(0, inverse).split(
        [x.shape[0] for x in inputs]), strict=True))
