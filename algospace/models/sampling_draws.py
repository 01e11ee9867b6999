"""The random numbers of an actor's exploration step, drawn from its own NumPy generators.

Every :class:`~algospace.models.actor.ActorModule` samples from two generators of its own
(NumPy ``PCG64`` generators from one seed fixed at construction: the sampling stream,
and that generator jumped far ahead, ``PCG64.jumped()``, for the MC-dropout masks;
:mod:`algospace.training.rng` carries both states in a checkpoint). One exploration
forward over ``B`` rows draws, in this order, from the sampling stream:

1. with ``train_dropout`` on, the dropout masks of the logits: ``[B, sum(hidden)]``;
2. one uniform in ``[0, 1)`` per row and action head: ``[B, heads]`` (float64);

and from the MC stream the masks of the ``mc_passes`` MC-dropout passes: ``[passes * B,
sum(hidden)]``, pass-major (rows ``i*B .. (i+1)*B - 1`` are pass ``i``).

The MC masks have a stream of their own because nothing the step returns to the env
depends on them: the vectorised sampler (:mod:`algospace.training.sampler`) draws the
actions step by step and computes the MC statistics of all the steps of a ``sample()``
call at its end, in bulk (:func:`draw_mc_blocks` draws the masks of many forwards at
once, exactly as the forwards one by one would have drawn them), while RLlib's runner
calls the module's torch forward once per step; both give every row the same masks.

**Masks from 16 random bits per unit.** A hidden unit is kept when its 16 bits (four per
64-bit word of the generator, :meth:`numpy.random.BitGenerator.random_raw`) are ``>= t``
with ``t = round(p * 2**16)`` (:func:`drop_threshold`): the drop probability is ``t /
2**16`` (:func:`effective_dropout`; 0.1 becomes 0.1000061), and a kept unit is scaled by
``1 / (1 - t / 2**16)`` (:func:`keep_scale`), so every pass stays unbiased. Drawing
16 bits costs about a third of drawing a float per unit, and the masks are most of the
numbers a step draws (8 passes × 128 units per row). The decision engine's NumPy kernel
(:mod:`algospace.inference.kernel`) draws its masks the same way.

**Actions by inverse CDF.** A head's action is the number of its cumulative
probabilities (float64, from the softmax of its logits) below the row's uniform,
clipped to the last action — a draw from the head's categorical distribution
(tests/test_actor_np.py checks the frequencies). Both the module's torch forward
and the sampler's NumPy forward (:mod:`algospace.models.actor_np`) turn the same draws
into actions this way, so they sample the same actions from the same weights, up to the
last bits of float32 arithmetic (a uniform within about 1e-7 of a cumulative
probability could fall on the other side).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

MASK_BITS = 16
"""Random bits per dropout-mask entry."""
MASK_LEVELS = 1 << MASK_BITS


def drop_threshold(p: float) -> int:
    """The mask threshold ``t``: a unit is dropped when its 16 random bits are ``< t``."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout must lie in [0, 1), got {p}")
    return min(round(p * MASK_LEVELS), MASK_LEVELS - 1)


def effective_dropout(p: float) -> float:
    """The drop probability the 16-bit masks really use for ``p`` (a multiple of 2^-16)."""
    return drop_threshold(p) / MASK_LEVELS


def keep_scale(p: float) -> float:
    """The factor of a kept unit under the 16-bit masks of dropout ``p``: ``1 / (1 - t /
    2**16)`` (inverted dropout, unbiased for the drop probability the masks use)."""
    return 1.0 / (1.0 - effective_dropout(p))


def draw_keep_bits(rng: np.random.Generator, rows: int, bits: int, p: float) -> np.ndarray:
    """Keep masks ``[rows, bits]`` (bool) from 16 random bits per entry (module docstring)."""
    n = rows * bits
    raw = rng.bit_generator.random_raw(-(-n // 4)).view(np.uint16)[:n]
    keep: np.ndarray = (raw >= drop_threshold(p)).reshape(rows, bits)
    return keep


@dataclass(frozen=True)
class Draws:
    """The sampling-stream numbers of one exploration forward (module docstring)."""

    train_keep: np.ndarray | None
    """``[B, sum(hidden)]`` bool: the logits' dropout masks (``train_dropout`` only)."""
    uniforms: np.ndarray
    """``[B, heads]`` float64 in ``[0, 1)``: one per row and action head."""


def draw_exploration(rng: np.random.Generator, rows: int, *, bits: int, p: float,
                     heads: int, train_dropout: bool) -> Draws:
    """The sampling-stream draws of one exploration forward over ``rows`` rows, in their
    fixed order."""
    train_keep = draw_keep_bits(rng, rows, bits, p) if train_dropout else None
    uniforms = rng.random((rows, heads))
    return Draws(train_keep=train_keep, uniforms=uniforms)


def draw_mc_keep(rng: np.random.Generator, rows: int, *, bits: int, p: float,
                 passes: int) -> np.ndarray | None:
    """The MC-stream masks of one exploration forward over ``rows`` rows: ``[passes * rows,
    bits]`` bool, pass-major; None with no passes (nothing drawn)."""
    return draw_keep_bits(rng, passes * rows, bits, p) if passes > 0 else None


def draw_mc_blocks(rng: np.random.Generator, sizes: Sequence[int], *, bits: int, p: float,
                   passes: int) -> np.ndarray:
    """The MC masks of consecutive forwards over ``sizes[t]`` rows each, as
    :func:`draw_mc_keep` draws them one forward after the other, arranged as ``[passes,
    sum(sizes), bits]`` (pass ``j`` of every forward's rows, in forward order).

    One draw of the generator when every forward uses whole 64-bit words (``passes *
    size * bits`` a multiple of 4, always so for 8 passes), else one per forward."""
    sizes = [int(size) for size in sizes]
    total = sum(sizes)
    if passes <= 0 or not total:
        return np.zeros((max(passes, 0), total, bits), bool)
    if all(passes * size * bits % 4 == 0 for size in sizes):
        flat = draw_keep_bits(rng, passes * total, bits, p)
    else:
        flat = np.concatenate([draw_keep_bits(rng, passes * size, bits, p)
                               for size in sizes])
    if len(sizes) == 1:
        return flat.reshape(passes, total, bits)
    blocks = np.split(flat, np.cumsum([passes * size for size in sizes])[:-1])
    return np.concatenate([b.reshape(passes, -1, bits) for b in blocks], axis=1)


def inverse_cdf(probs: np.ndarray, uniforms: np.ndarray,
                last: np.ndarray | int | None = None) -> np.ndarray:
    """Actions ``[...]`` (int64) drawn from ``probs [..., A]`` (float64) by the uniforms
    ``[...]``: the number of cumulative probabilities below each uniform, at most ``last``
    (default ``A - 1``; an array broadcast over ``[...]`` for heads padded to one width)."""
    below = np.cumsum(probs, axis=-1) < uniforms[..., None]
    top = probs.shape[-1] - 1 if last is None else last
    actions: np.ndarray = np.minimum(below.sum(axis=-1), top)
    return actions


class OwnGenerators:
    """An actor's own generators (module docstring) and its draws from them; the host
    class sets ``_sample_seed`` and has ``cfg`` (``dropout``, ``mc_passes``),
    ``mask_bits``, ``input_lens`` and ``trains_with_dropout``."""

    _sample_seed: int
    _sample_rng: np.random.Generator | None = None
    _mc_rng: np.random.Generator | None = None
    cfg: Any
    input_lens: tuple[int, ...]

    @property
    def mask_bits(self) -> int:
        """Bits of one row's dropout mask (the host's hidden units)."""
        raise NotImplementedError

    @property
    def trains_with_dropout(self) -> bool:
        """Whether the logits are drawn under dropout masks (the host says)."""
        raise NotImplementedError

    def seed_sampling(self, seed: int) -> None:
        """Restart this module's sampling and MC generators from ``seed``."""
        self._sample_seed = int(seed)
        self._sample_rng = self._mc_rng = None

    def sampling_rng(self) -> np.random.Generator:
        """This module's sampling generator (a NumPy PCG64, made on first use)."""
        if self._sample_rng is None:
            self._sample_rng = np.random.Generator(np.random.PCG64(self._sample_seed))
        return self._sample_rng

    def mc_rng(self) -> np.random.Generator:
        """This module's generator of MC-dropout masks: the sampling generator's seed,
        jumped far ahead (``PCG64.jumped``; made on first use)."""
        if self._mc_rng is None:
            self._mc_rng = np.random.Generator(np.random.PCG64(self._sample_seed).jumped())
        return self._mc_rng

    def draw_exploration(self, rows: int) -> Draws:
        """The sampling-stream numbers of one exploration forward over ``rows`` rows
        (:func:`~algospace.models.sampling_draws.draw_exploration`)."""
        return draw_exploration(self.sampling_rng(), rows, bits=self.mask_bits,
                                p=self.cfg.dropout, heads=len(self.input_lens),
                                train_dropout=self.trains_with_dropout)

    def draw_mc(self, rows: int) -> np.ndarray | None:
        """The MC-dropout masks of one exploration forward over ``rows`` rows, from the MC
        generator: ``[passes * rows, sum(hidden)]`` bool, pass-major (None: no passes)."""
        return draw_mc_keep(self.mc_rng(), rows, bits=self.mask_bits, p=self.cfg.dropout,
                            passes=self.cfg.mc_passes)

    def draw_mc_blocks(self, sizes: Sequence[int]) -> np.ndarray:
        """The masks :meth:`draw_mc` draws for forwards over ``sizes[t]`` rows one after
        the other, as ``[passes, sum(sizes), sum(hidden)]``
        (:func:`~algospace.models.sampling_draws.draw_mc_blocks`)."""
        return draw_mc_blocks(self.mc_rng(), sizes, bits=self.mask_bits, p=self.cfg.dropout,
                              passes=self.cfg.mc_passes)
