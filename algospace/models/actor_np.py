"""Actors' exploration forward in NumPy: what the vectorised sampler computes per step.

:class:`NumpyActors` reads the weights of one or more
:class:`~algospace.models.actor.ActorModule`\\ s (views of their parameters, taken once
per ``sample()`` call: the weights do not change while a sampler steps) and computes what
each module's ``_forward_exploration`` returns — the logits (under the row's
consistent-dropout mask with ``train_dropout``), the sampled actions and their
log-probabilities, the six MC-dropout statistics, the packed masks — from the same random
draws (:meth:`ActorModule.draw_exploration` and :meth:`ActorModule.draw_mc`, each
module's own generators, in the same order), in NumPy float32. The sampler asks for the
MC statistics of all of a ``sample()``'s forwards at its end (:meth:`NumpyActors.mc_stats_of`,
the same masks drawn in bulk). The outputs are already what RLlib's module-to-env pipeline
makes of the torch outputs (float32, int32 actions).

Actors of one :func:`signature` (hidden widths, action heads, dropout, passes) are
computed as one stack: their first layers one by one (their inputs differ in width),
everything after as batched products over ``[actors, rows, ...]``. In ``joint_v0`` the
three tactical voters form one stack and the four strategic agents another.

Why: the sampler needs about five module forwards per vector step of ``joint_v0`` on a
few dozen rows each, and at that size a torch forward is mostly dispatch (about 30
operations of 5–20 µs); NumPy runs the same arithmetic with less overhead per operation,
and a stack pays that overhead once for several actors. The values equal the torch
forward's to float32 rounding (the matrix products may sum in another order), and the
actions are the same but where a row's uniform lies within rounding of a cumulative
probability (tests/test_actor_np.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np
from ray.rllib.core.columns import Columns

from algospace.models.actor import MC_STATS, ActorModule
from algospace.models.consistent_dropout import DROPOUT_MASK
from algospace.models.mc_dropout import N_AGENT_STATS
from algospace.models.sampling_draws import inverse_cdf, keep_scale

FIRST_LAYER = "first_layer"
"""Key of an actor's first hidden layer activations ``[B, width]`` in what
:meth:`NumpyActors.explore` returns without MC statistics: the input of
:meth:`NumpyActors.mc_stats_of` (not a module output: the sampler does not record it)."""
MC_BLOCK_ROWS = 128
"""Rows per block when :meth:`NumpyActors.mc_stats_of` computes many forwards' statistics."""
_ZERO = np.float32(0.0)
_PAD = np.float32(-1e30)


def _array(tensor: Any) -> np.ndarray:
    """A parameter as a float32 NumPy array (a view on CPU)."""
    out: np.ndarray = tensor.detach().cpu().numpy()
    return out


def signature(module: ActorModule) -> tuple[Any, ...]:
    """What actors must share to be computed as one stack: hidden widths, action heads,
    dropout, MC passes and whether they train with dropout (not the input width: the
    first layer runs per actor)."""
    cfg = module.cfg
    return (tuple(cfg.hidden), tuple(module.input_lens), bool(module.is_multi_discrete),
            float(cfg.dropout), int(cfg.mc_passes), bool(module.trains_with_dropout))


class NumpyActors:
    """The exploration forward of ``k >= 1`` actors of one :func:`signature`, stacked."""

    def __init__(self, modules: Sequence[ActorModule]) -> None:
        self.modules = list(modules)
        first = self.modules[0]
        if any(signature(m) != signature(first) for m in self.modules):
            raise ValueError("NumpyActors stacks actors of one signature only")
        self.first = [(_array(m.layers[0].weight).T, _array(m.layers[0].bias))
                      for m in self.modules]
        self.first_bias = _stacked([b for _, b in self.first])[:, None, :]
        p = first.cfg.dropout
        scale = np.float32(keep_scale(p)) if p > 0 else np.float32(1.0)
        # the layers after the first, then the head: (W [k, in, out], W * scale, b [k, 1,
        # out]); under masks a layer's input scale is folded into its weights (float32,
        # as the torch forward rounds x * mask * scale; tested to 1e-5)
        self.layers = []
        for i in range(1, len(first.layers) + 1):
            parts = [m.layers[i] if i < len(m.layers) else m.head for m in self.modules]
            # C order: a stacked product of non-contiguous slices skips BLAS (10x slower)
            w = np.ascontiguousarray(np.stack([_array(part.weight).T for part in parts]))
            b = np.stack([_array(part.bias) for part in parts])[:, None, :]
            self.layers.append((w, np.ascontiguousarray(w * scale, dtype=np.float32), b))
        self.lens = tuple(first.input_lens)
        self.starts = np.cumsum((0, *self.lens))
        self.units = [slice(int(a), int(b))
                      for a, b in pairwise(np.cumsum((0, *first.cfg.hidden)))]
        self.multi = bool(first.is_multi_discrete)
        self.last = np.array(self.lens) - 1  # each head's last action
        self.votes: np.ndarray | None = None  # [k, A, 1]; a stack member without: zeros
        if not self.multi and any(m.votes is not None for m in self.modules):
            self.votes = np.stack([np.zeros(self.lens[0], np.float32) if m.votes is None
                                   else m.votes.detach().cpu().numpy().astype(np.float32)
                                   for m in self.modules])[:, :, None]

    def _heads(self, logits: np.ndarray) -> np.ndarray:
        """Logits ``[..., sum(A)]`` as ``[..., heads, max(A)]``, a shorter head padded with
        -1e30 (probability exactly 0: it changes no statistic, and is never drawn)."""
        if len(self.lens) == 1:
            return logits[..., None, :]
        out = np.full((*logits.shape[:-1], len(self.lens), max(self.lens)), _PAD, np.float32)
        for j, (a, b) in enumerate(pairwise(self.starts)):
            out[..., j, :b - a] = logits[..., a:b]
        return out

    def _rest(self, h: np.ndarray, keep: np.ndarray | None, *,
              masked: bool = False) -> np.ndarray:
        """The logits ``[k, rows, sum(A)]`` from the first hidden layer's activation ``h``
        ``[k, rows, width]`` (masks: ``keep``, bool ``[k, rows, bits]``; ``masked``: ``h``
        is already under its mask)."""
        if keep is not None and not masked:
            h = np.multiply(h, keep[..., self.units[0]], dtype=np.float32)
        for i, (w, scaled, b) in enumerate(self.layers):
            h = np.matmul(h, scaled if keep is not None else w)
            h += b
            if i + 1 < len(self.layers):
                np.maximum(h, _ZERO, out=h)
                if keep is not None:
                    h *= keep[..., self.units[i + 1]]
        return h

    def explore(self, locals_: Sequence[np.ndarray], *,
                mc: bool = True) -> list[dict[str, np.ndarray]]:
        """Each actor's exploration outputs for its rows ``locals_[i] [B, width_i]`` (the
        same ``B`` for all), in the actors' order. ``mc`` False: no MC statistics (and no
        MC masks drawn) but the first hidden layer's activations (:data:`FIRST_LAYER`),
        from which :meth:`mc_stats_of` computes them later, under the same masks."""
        xs = [np.asarray(x, dtype=np.float32) for x in locals_]
        rows = xs[0].shape[0]
        draws = [m.draw_exploration(rows) for m in self.modules]
        first = self._first(xs)
        train_keep = None if draws[0].train_keep is None else \
            _stacked([d.train_keep for d in draws if d.train_keep is not None])
        logits = self._rest(first, train_keep)
        # each head's action by inverse CDF (float64), as ActorModule.sample
        z = self._heads(logits).astype(np.float64)  # [k, B, heads, A]
        z -= z.max(axis=-1, keepdims=True)
        e = np.exp(z)
        total = e.sum(axis=-1)
        uniforms = _stacked([d.uniforms for d in draws])  # [k, B, heads]
        actions = inverse_cdf(e / total[..., None], uniforms, self.last)
        flat = z.reshape(-1, z.shape[-1])
        picked = flat[np.arange(flat.shape[0]), actions.ravel()].reshape(actions.shape)
        logp = (picked - np.log(total)).sum(axis=-1)
        stats = self.mc_stats(first, [m.draw_mc(rows) for m in self.modules]) if mc else None
        acts = (actions if self.multi else actions[..., 0]).astype(np.int32)
        logp32 = logp.astype(np.float32)
        out = []
        for i, d in enumerate(draws):
            one = {Columns.ACTION_DIST_INPUTS: logits[i], Columns.ACTIONS: acts[i],
                   Columns.ACTION_LOGP: logp32[i]}
            if stats is not None:
                one[MC_STATS] = stats[i]
            else:
                one[FIRST_LAYER] = first[i]
            if d.train_keep is not None:
                one[DROPOUT_MASK] = np.packbits(d.train_keep, axis=-1)
            out.append(one)
        return out

    def _first(self, xs: Sequence[np.ndarray]) -> np.ndarray:
        """The first hidden layer's activations ``[k, B, width]`` of each actor's rows
        (float32 ``xs``; written in place: no stacking of k small arrays)."""
        out = np.empty((len(xs), xs[0].shape[0], self.first_bias.shape[-1]), np.float32)
        for i, (x, (w, _)) in enumerate(zip(xs, self.first, strict=True)):
            np.matmul(x, w, out=out[i])
        out += self.first_bias
        np.maximum(out, _ZERO, out=out)
        return out

    def mc_stats_of(self, forwards: Sequence[Sequence[np.ndarray]],
                    block: int = MC_BLOCK_ROWS) -> list[np.ndarray]:
        """Each actor's ``[R, 6]`` MC statistics of the rows of many exploration forwards
        (``forwards[t][i]``: the first hidden layer activations, :data:`FIRST_LAYER`, of
        actor ``i``'s rows of forward ``t``, all its ``R`` rows in forward order), under
        the masks its MC generator gives the forwards one after the other: what
        :meth:`explore` with ``mc`` would have returned forward by forward (the passes
        start from the forward's own first layer). Computed over blocks of about ``block``
        rows."""
        k = len(self.modules)
        if not forwards:
            return [np.zeros((0, N_AGENT_STATS), np.float32) for _ in range(k)]
        parts: list[list[np.ndarray]] = [[] for _ in range(k)]
        start = 0
        while start < len(forwards):
            stop, rows = start, 0
            while stop < len(forwards) and (rows < block or stop == start):
                rows += len(forwards[stop][0])
                stop += 1
            group = forwards[start:stop]
            sizes = [len(f[0]) for f in group]
            first = _stacked([np.concatenate([f[i] for f in group]) for i in range(k)])
            keeps = [m.draw_mc_blocks(sizes).reshape(-1, m.mask_bits)
                     if m.cfg.mc_passes > 0 else None for m in self.modules]
            stats = self.mc_stats(first, keeps)
            for i in range(k):
                parts[i].append(stats[i])
            start = stop
        return [np.concatenate(p) for p in parts]

    def mc_stats(self, first: np.ndarray, keeps: Sequence[np.ndarray | None]) -> np.ndarray:
        """The ``[k, B, 6]`` statistics of :func:`~algospace.models.mc_dropout.agent_stats`
        over the passes under the masks ``keeps[i]`` (``[passes * B, bits]``, pass-major;
        None: no passes, zeros), from the first hidden layer ``[k, B, width]``."""
        k, rows = first.shape[:2]
        if keeps[0] is None:
            return np.zeros((k, rows, N_AGENT_STATS), np.float32)
        keep = _stacked([m for m in keeps if m is not None])
        passes = keep.shape[1] // max(rows, 1)
        # every pass's first layer under its mask, without tiling the layer first
        h = np.multiply(first[:, None], keep.reshape(k, passes, rows, -1)[..., self.units[0]],
                        dtype=np.float32).reshape(k, passes * rows, -1)
        logits = self._rest(h, keep, masked=True)
        heads = len(self.lens)
        padded = self._heads(logits).reshape(k, passes, rows, heads, -1)
        if heads > 1:  # every head of every actor as one more stack member
            padded = padded.transpose(0, 3, 1, 2, 4).reshape(k * heads, passes, rows, -1)
        else:
            padded = padded[..., 0, :]
        out = _stats(padded, self.votes)
        if heads > 1:
            out = out.reshape(k, heads, rows, N_AGENT_STATS).mean(axis=1)
            out[..., 5] = 0.0  # a MultiDiscrete agent has no direction
        result: np.ndarray = out.astype(np.float32)
        return result


def _stacked(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """``np.stack(arrays)`` of arrays of one shape and dtype, without its Python checks (a
    few microseconds less per call, and the sampler makes thousands)."""
    return np.concatenate([a[None] for a in arrays])


def _stats(logits: np.ndarray, votes: np.ndarray | None) -> np.ndarray:
    """:func:`~algospace.models.mc_dropout.agent_stats` of the softmax of the passes'
    ``logits [k, N, B, A]`` (votes ``[k, A, 1]``), in NumPy: ``[k, B, 6]``. ``top_prob``
    is the largest mean probability (the argmax's, as torch gathers it). The entropy of
    a pass is ``log(total) - sum_a p_a z_a`` (``z`` the shifted logits, ``total`` the sum
    of their exponentials): no log of a probability, and 0 log 0 never arises."""
    passes, width = logits.shape[1], logits.shape[-1]
    inv = np.float32(1.0 / passes)
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    ones = np.ones(width, np.float32)
    total = e @ ones
    probs = e / total[..., None]
    mean = probs.sum(axis=1) * inv  # [k, B, A]
    top = mean.argmax(axis=-1)
    top_prob = mean.max(axis=-1)
    logs = np.log(mean, out=np.zeros_like(mean), where=mean > 0)
    predictive = -((mean * logs) @ ones)
    expected = (np.log(total) - (probs * z) @ ones).sum(axis=1) * inv
    mutual = np.maximum(predictive - expected, _ZERO)
    agreement = np.count_nonzero(probs.argmax(axis=-1) == top[:, None, :], axis=1) * inv
    direction = np.zeros_like(top_prob) if votes is None \
        else np.clip(np.matmul(mean, votes)[..., 0], -1.0, 1.0)
    return np.stack([top_prob, predictive, expected, mutual, agreement, direction], axis=-1)
