"""Minibatches in which every module sees each of its rows ``num_epochs`` times.

RLlib 2.60's ``MiniBatchCyclicIterator`` cuts the same number of rows
(``minibatch_size``) from every module's batch and keeps cycling until the module
with the most rows has done ``num_epochs`` passes. On ``joint_v0`` a strategic agent
has about one row per six 5-minute steps, so its actor (and the critic on its rows)
went over its rows about 30 times per iteration instead of 5, with rows repeated
inside one minibatch.

:class:`ModuleMinibatches` splits each epoch into the same number ``n`` of minibatches
for every module — ``n = ceil(largest module's rows / minibatch_size)``, no more than
the smallest module's rows — and cuts each module's (shuffled) rows into ``n`` near-equal
slices. So every module takes the same number of optimizer steps, each row of every
module is used exactly once per epoch, and the largest module's slices are about
``minibatch_size`` rows. The learners take it in through
:class:`algospace.ray_compat.OwnMinibatches`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import tree
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch


def minibatches_per_epoch(rows: dict[str, int], minibatch_size: int | None) -> int:
    """How many minibatches one epoch takes (see the module docstring)."""
    if not rows:
        return 0
    if min(rows.values()) < 1:
        empty = sorted(m for m, n in rows.items() if n < 1)
        raise ValueError(f"the train batch of module(s) {', '.join(empty)} is empty")
    largest = max(rows.values())
    n = 1 if not minibatch_size else math.ceil(largest / minibatch_size)
    return max(1, min(n, min(rows.values())))


class ModuleMinibatches:
    """Iterates a ``MultiAgentBatch`` in minibatches, ``num_epochs`` passes for every module.

    ``shuffle``: each module's rows are shuffled before every epoch, by numpy's global
    generator as RLlib's own iterator does (RLlib seeds it from the run's seed).
    ``num_total_minibatches`` (RLlib's setting for several learners, which must all take
    the same number of steps): exactly that many minibatches, the
    epochs split evenly among them.
    """

    def __init__(self, batch: MultiAgentBatch, *, num_epochs: int = 1,
                 minibatch_size: int | None = None, shuffle: bool = True,
                 num_total_minibatches: int = 0) -> None:
        self.batch = batch
        self.num_epochs = max(1, int(num_epochs))
        rows = {mid: len(b) for mid, b in batch.policy_batches.items()}
        self.per_epoch = minibatches_per_epoch(rows, minibatch_size)
        self.total = int(num_total_minibatches) or self.num_epochs * self.per_epoch
        if num_total_minibatches:
            self.per_epoch = max(1, min(math.ceil(self.total / self.num_epochs),
                                        min(rows.values(), default=1)))
        self.shuffle = shuffle

    def __iter__(self) -> Iterator[MultiAgentBatch]:
        produced = 0
        while produced < self.total:
            cuts = {}
            for mid, module_batch in self.batch.policy_batches.items():
                if self.shuffle:
                    shuffle_rows(module_batch)
                sizes = [len(part) for part in np.array_split(np.arange(len(module_batch)),
                                                              self.per_epoch)]
                cuts[mid] = np.concatenate(([0], np.cumsum(sizes)))
            for k in range(self.per_epoch):
                if produced == self.total:
                    return
                parts: dict[str, Any] = {
                    mid: module_batch[int(cuts[mid][k]):int(cuts[mid][k + 1])]
                    for mid, module_batch in self.batch.policy_batches.items()}
                yield MultiAgentBatch(parts, len(self.batch))
                produced += 1


def shuffle_rows(batch: SampleBatch) -> SampleBatch:
    """``batch.shuffle()`` to the bit — the same permutation from numpy's global generator,
    the same rows — with torch columns gathered by ``index_select`` (RLlib indexes them with
    a numpy array, about four times slower: a tenth of a second per joint_v0 iteration).
    ``infos``, where a batch has them, are shuffled with the rest (RLlib 2.60's shuffle
    computes them shuffled and then drops them, leaving them out of step)."""
    if batch.get(SampleBatch.SEQ_LENS) is not None:
        return batch.shuffle()
    permutation = np.random.permutation(batch.count)
    on: dict[torch.device, torch.Tensor] = {}

    def take(column: Any) -> Any:
        if not isinstance(column, torch.Tensor):
            return column[permutation]
        index = on.get(column.device)
        if index is None:
            index = on[column.device] = torch.from_numpy(permutation).to(column.device)
        return column.index_select(0, index)

    columns = dict(batch)
    infos = columns.pop(SampleBatch.INFOS, None)
    batch.update(tree.map_structure(take, columns))
    if infos is not None:
        batch[SampleBatch.INFOS] = [infos[i] for i in permutation]
    batch.intercepted_values = {}
    return batch
