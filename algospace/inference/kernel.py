"""The team's networks in NumPy at decision time: greedy logits and MC-dropout statistics.

**Greedy logits.** :func:`greedy_logits` runs an actor's dropout-off network
(``Linear -> ReLU`` per hidden layer, then the head) on one observation from
its :class:`NetWeights`. The batch backtest
(:func:`algospace.evaluation.backtest.greedy_policy`) and the decision engine
both act through it, so their actions are computed by the same code on the
same numbers; it is also about four times faster than a torch forward at
batch size one (no per-operation dispatch).

**MC-dropout statistics.** At a bar's close the decision engine needs, for every acting
agent, the six statistics of :data:`algospace.models.mc_dropout.AGENT_STATS` from ``N``
dropout passes (50 by default). :func:`algospace.models.actor.actor_mc_stats`
computes them per agent in torch, which is what training uses; at batch size
one it spends its time in per-operation overhead and in drawing the masks
(``F.dropout`` draws one Bernoulli per unit: about 150 µs for the 25,600
masks of four agents). :class:`McKernel` computes the same statistics for a
group of agents together:

* **First layer once.** Dropout acts on hidden activations, never on the input,
  so the first hidden layer ``h1 = relu(W1 x + b1)`` is the same in every pass
  and in the greedy forward (:func:`first_layer`); it is computed once per agent
  and the passes start from it.
* **Stacked passes.** The deeper layers and the heads of all agents run as one
  batched ``matmul`` over ``[agents, passes, width]``, the agents' weights
  zero-padded to common widths (a padded unit is 0 and adds 0; a padded logit is
  ``-1e30`` and gets probability 0). The statistics of every action head of
  every agent are computed at once; a MultiDiscrete agent averages its heads
  (direction 0), as :func:`~algospace.models.mc_dropout.agent_stats_multi`.
  Agents whose networks differ in depth form separate blocks.
* **Cheap masks.** The masks come from 16 random bits per unit drawn from a
  PCG64 generator seeded per call: a unit is kept when its bits are ``>= t``
  with ``t = round(p * 2**16)``, so the drop probability is ``t / 2**16`` (``p``
  rounded to a multiple of 2^-16: 0.1 becomes 0.1000061), and kept units are
  scaled by ``1 / (1 - t / 2**16)`` (folded into the next layer's weights) so
  every pass stays unbiased, as in ``F.dropout`` (the masks training samples under,
  :mod:`algospace.models.sampling_draws`). The same seed gives the same masks, so a
  replay repeats its statistics exactly.

The statistics equal those of the per-agent torch computation under the same
masks within float32 rounding, and converge to training's estimator as the
passes grow (both tested, ``tests/test_mc_kernel.py``). The kernel reads the
weights of eager :class:`~algospace.models.actor.ActorModule` actors and of
exported ones (:mod:`algospace.inference.export`) alike: the same weights give
the same statistics bit for bit, and the same greedy logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from algospace.models.mc_dropout import N_AGENT_STATS
from algospace.models.network import actor_layers
from algospace.models.sampling_draws import drop_threshold, effective_dropout

_PAD_LOGIT = np.float32(-1e30)
"""Logit of a padded action: exp underflows to exactly 0, and 0 * (-1e30) is 0."""

Seed = int | Sequence[int]


@dataclass(frozen=True)
class NetWeights:
    """The float32 weights of one actor's dropout MLP, as NumPy arrays."""

    hidden: tuple[tuple[np.ndarray, np.ndarray], ...]
    """``(W [out, in], b [out])`` per hidden layer (``Linear -> ReLU -> dropout``)."""
    head: tuple[np.ndarray, np.ndarray]
    """``(W [sum(input_lens), in], b)`` of the logits head."""
    dropout: float
    input_lens: tuple[int, ...]
    multi_discrete: bool
    """A MultiDiscrete action space (the action is an array of head actions)."""
    votes: np.ndarray | None
    """Directional vote per action (Discrete only), or None."""

    @property
    def width(self) -> int:
        """Width of the local observation the network reads."""
        return int(self.hidden[0][0].shape[1])


def net_weights(actor: Any) -> NetWeights:
    """The weights of an :class:`~algospace.models.actor.ActorModule` or exported actor.

    Both keep their network as :func:`algospace.models.network.actor_layers` lists it (the
    exported one inside its TorchScript ``module``); the dropout is ``actor.cfg.dropout``
    or ``actor.dropout``.
    """
    module = getattr(actor, "module", actor)
    state = {k: v.detach().to("cpu").float().numpy().copy()
             for k, v in module.state_dict().items()}
    try:
        layers = actor_layers(state)
    except ValueError as err:
        raise ValueError(f"{type(actor).__name__}: {err}") from None
    weights = [(state[f"{layer.name}.weight"], state[f"{layer.name}.bias"]) for layer in layers]
    hidden = tuple(w for w, layer in zip(weights, layers, strict=True) if layer.hidden)
    cfg = getattr(actor, "cfg", None)
    p = float(cfg.dropout if cfg is not None else actor.dropout)
    votes = getattr(actor, "votes", None)
    return NetWeights(hidden=hidden, head=weights[-1],
                      dropout=p, input_lens=tuple(int(n) for n in actor.input_lens),
                      multi_discrete=bool(actor.is_multi_discrete),
                      votes=None if votes is None or bool(actor.is_multi_discrete)
                      else np.asarray(votes.tolist() if hasattr(votes, "tolist") else votes,
                                      dtype=np.float32))


def first_layer(net: NetWeights, x: np.ndarray) -> np.ndarray:
    """``relu(W1 x + b1)`` of one float32 observation ``x`` (the same in every pass)."""
    w, b = net.hidden[0]
    out: np.ndarray = np.maximum(w @ x + b, np.float32(0.0))
    return out


def head_logits(net: NetWeights, h1: np.ndarray) -> np.ndarray:
    """The dropout-off logits ``[sum(input_lens)]`` from the first hidden layer's output."""
    h = h1
    for w, b in net.hidden[1:]:
        h = np.maximum(w @ h + b, np.float32(0.0))
    w, b = net.head
    out: np.ndarray = w @ h + b
    return out


def greedy_logits(net: NetWeights, x: np.ndarray) -> np.ndarray:
    """The dropout-off logits of one observation: ``ActorModule.logits`` in NumPy."""
    return head_logits(net, first_layer(net, np.asarray(x, dtype=np.float32)))


def greedy_action(net: NetWeights, logits: np.ndarray) -> tuple[int | np.ndarray, float]:
    """The greedy action (the first most likely action of every head) and its confidence
    (the mean over heads of that action's probability)."""
    best: list[int] = []
    confidence = 0.0
    start = 0
    for size in net.input_lens:
        head = logits[start:start + size]
        start += size
        b = int(head.argmax())  # the first maximum, as torch.argmax
        best.append(b)
        confidence += 1.0 / float(np.exp(head - head[b]).sum())  # exp(0) = 1 on top
    action = np.asarray(best, dtype=np.int64) if net.multi_discrete else best[0]
    return action, confidence / len(best)


class _Block:
    """Agents whose networks have the same depth, stacked and padded."""

    def __init__(self, nets: Sequence[NetWeights], passes: int) -> None:
        self.nets = list(nets)
        self.passes = passes
        k = len(nets)
        depth = len(nets[0].hidden)
        widths = [max(n.hidden[j][0].shape[0] for n in nets) for j in range(depth)]
        self.widths = widths
        self.thresholds = np.array([drop_threshold(n.dropout) for n in nets],
                                   np.uint16).reshape(k, 1, 1)
        scale = np.array([1.0 / (1.0 - effective_dropout(n.dropout)) for n in nets],
                         np.float64)
        self.deep: list[tuple[np.ndarray, np.ndarray]] = []
        for j in range(1, depth):
            w = np.zeros((k, widths[j - 1], widths[j]), np.float32)
            b = np.zeros((k, 1, widths[j]), np.float32)
            for i, n in enumerate(nets):
                wj, bj = n.hidden[j]
                w[i, :wj.shape[1], :wj.shape[0]] = (wj.T * scale[i]).astype(np.float32)
                b[i, 0, :bj.shape[0]] = bj
            self.deep.append((w, b))
        self.out = max(sum(n.input_lens) for n in nets) + 1  # at least one padded logit
        hw = np.zeros((k, widths[-1], self.out), np.float32)
        hb = np.full((k, 1, self.out), _PAD_LOGIT, np.float32)
        units: list[tuple[int, int, int]] = []  # (agent, first logit, actions)
        for i, n in enumerate(nets):
            w, b = n.head
            hw[i, :w.shape[1], :w.shape[0]] = (w.T * scale[i]).astype(np.float32)
            hb[i, 0, :b.shape[0]] = b
            offset = 0
            for size in n.input_lens:
                units.append((i, offset, size))
                offset += size
        self.head = (hw, hb)
        self.actions = max(size for _, _, size in units)
        pad = self.out - 1
        self.columns = np.array([i * self.out + (off + a if a < size else pad)
                                 for i, off, size in units for a in range(self.actions)],
                                np.int64)
        self.votes = np.zeros((len(units), self.actions), np.float32)
        self.average = np.zeros((k, len(units)), np.float32)
        heads = np.array([len(n.input_lens) for n in nets], np.float32)
        for u, (i, _, size) in enumerate(units):
            votes = nets[i].votes
            if votes is not None:
                self.votes[u, :size] = votes
            self.average[i, u] = 1.0 / heads[i]
        self.rows = np.arange(len(units))
        self.mask_sizes = [k * passes * w for w in widths]

    @property
    def n_bits(self) -> int:
        """Mask entries one call draws."""
        return sum(self.mask_sizes)

    def keep(self, bits: np.ndarray) -> list[np.ndarray]:
        """Boolean keep masks ``[agents, passes, width]`` per hidden layer from 16-bit draws."""
        out, start = [], 0
        k = len(self.nets)
        for size, width in zip(self.mask_sizes, self.widths, strict=True):
            chunk = bits[start:start + size].reshape(k, self.passes, width)
            out.append(chunk >= self.thresholds)
            start += size
        return out

    def stats(self, first: Sequence[np.ndarray], bits: np.ndarray) -> np.ndarray:
        """Per-agent statistics ``[agents, 6]`` (float32) from the first-layer outputs."""
        k = len(self.nets)
        keep = self.keep(bits)
        h1 = np.zeros((k, 1, self.widths[0]), np.float32)
        for i, h in enumerate(first):
            h1[i, 0, :h.shape[0]] = h
        h = h1 * keep[0]
        for (w, b), mask in zip(self.deep, keep[1:], strict=True):
            h = np.matmul(h, w)
            h += b
            np.maximum(h, 0.0, out=h)
            h *= mask
        logits = np.matmul(h, self.head[0])
        logits += self.head[1]  # [agents, passes, out]
        units = logits.transpose(1, 0, 2).reshape(self.passes, k * self.out)[:, self.columns]
        units = units.reshape(self.passes, len(self.rows), self.actions)  # [passes, heads, A]
        z = units - units.max(axis=-1, keepdims=True)
        e = np.exp(z)
        total = e.sum(axis=-1, keepdims=True)
        probs = e / total
        inv = np.float32(1.0 / self.passes)
        mean = probs.sum(axis=0) * inv  # [heads, A]
        top = mean.argmax(axis=-1)
        top_prob = mean[self.rows, top]
        log_mean = np.log(mean, out=np.zeros_like(mean), where=mean > 0)
        predictive = -(mean * log_mean).sum(axis=-1)
        # H[p] = log(total) - sum_a p_a z_a for p = softmax(z)
        expected = (np.log(total[..., 0]) - (probs * z).sum(axis=-1)).sum(axis=0) * inv
        mutual = np.maximum(predictive - expected, 0.0)
        agreement = np.count_nonzero(probs.argmax(axis=-1) == top, axis=0) * inv
        direction = np.clip((mean * self.votes).sum(axis=-1), -1.0, 1.0)
        heads = np.stack([top_prob, predictive, expected, mutual, agreement, direction],
                         axis=-1).astype(np.float32)
        return self.average @ heads


class McKernel:
    """MC-dropout statistics of a fixed list of agents (see the module docstring)."""

    def __init__(self, nets: Sequence[NetWeights], passes: int) -> None:
        if passes < 1:
            raise ValueError(f"passes must be >= 1, got {passes}")
        if not nets:
            raise ValueError("McKernel needs at least one network")
        self.nets = list(nets)
        self.passes = passes
        by_depth: dict[int, list[int]] = {}
        for i, n in enumerate(nets):
            by_depth.setdefault(len(n.hidden), []).append(i)
        self.blocks = [(idx, _Block([nets[i] for i in idx], passes))
                       for idx in by_depth.values()]
        self.n_bits = sum(block.n_bits for _, block in self.blocks)

    def draw(self, seed: Seed) -> np.ndarray:
        """The 16-bit mask draws of one call seeded with ``seed``."""
        words = -(-self.n_bits // 4)
        return np.random.PCG64(seed).random_raw(words).view(np.uint16)[:self.n_bits]

    def keep_masks(self, seed: Seed) -> list[list[np.ndarray]]:
        """Per agent (in order), its boolean keep mask ``[passes, width]`` per hidden layer."""
        bits = self.draw(seed)
        out: list[list[np.ndarray]] = [[] for _ in self.nets]
        start = 0
        for idx, block in self.blocks:
            masks = block.keep(bits[start:start + block.n_bits])
            for pos, i in enumerate(idx):
                out[i] = [m[pos, :, :n.shape[0]] for m, (n, _) in
                          zip(masks, self.nets[i].hidden, strict=True)]
            start += block.n_bits
        return out

    def stats(self, locals_: Sequence[np.ndarray], seed: Seed) -> np.ndarray:
        """Statistics ``[agents, 6]`` (float32) of one observation per agent."""
        if len(locals_) != len(self.nets):
            raise ValueError(f"expected {len(self.nets)} observations, got {len(locals_)}")
        first = []
        for i, (net, x) in enumerate(zip(self.nets, locals_, strict=True)):
            x = np.asarray(x, dtype=np.float32)
            if x.shape != (net.width,):
                raise ValueError(f"observation {i} has shape {x.shape}, the network reads "
                                 f"({net.width},)")
            first.append(first_layer(net, x))
        return self.stats_from_first(first, seed)

    def stats_from_first(self, first: Sequence[np.ndarray], seed: Seed) -> np.ndarray:
        """:meth:`stats` from each agent's :func:`first_layer` output (computed once)."""
        bits = self.draw(seed)
        out = np.empty((len(self.nets), N_AGENT_STATS), np.float32)
        start = 0
        for idx, block in self.blocks:
            out[idx] = block.stats([first[i] for i in idx], bits[start:start + block.n_bits])
            start += block.n_bits
        return out
