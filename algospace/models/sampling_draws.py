"""The random numbers of an actor's exploration step, drawn from its own NumPy generator.

Every :class:`~algospace.models.actor.ActorModule` samples from a generator of its own
(a NumPy ``PCG64``, seeded at construction; :mod:`algospace.training.rng` carries its
state in a checkpoint). One exploration forward over ``B`` rows draws, in this order:

1. with ``train_dropout`` on, the dropout masks of the logits: ``[B, sum(hidden)]``;
2. one uniform in ``[0, 1)`` per row and action head: ``[B, heads]`` (float64);
3. the masks of the ``mc_passes`` MC-dropout passes: ``[passes * B, sum(hidden)]``,
   pass-major (rows ``i*B .. (i+1)*B - 1`` are pass ``i``).

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

from dataclasses import dataclass

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
    """The random numbers of one exploration forward (module docstring)."""

    train_keep: np.ndarray | None
    """``[B, sum(hidden)]`` bool: the logits' dropout masks (``train_dropout`` only)."""
    uniforms: np.ndarray
    """``[B, heads]`` float64 in ``[0, 1)``: one per row and action head."""
    mc_keep: np.ndarray | None
    """``[passes * B, sum(hidden)]`` bool, pass-major; None with no MC passes."""


def draw_exploration(rng: np.random.Generator, rows: int, *, bits: int, p: float,
                     heads: int, passes: int, train_dropout: bool) -> Draws:
    """The draws of one exploration forward over ``rows`` rows, in their fixed order."""
    train_keep = draw_keep_bits(rng, rows, bits, p) if train_dropout else None
    uniforms = rng.random((rows, heads))
    mc_keep = draw_keep_bits(rng, passes * rows, bits, p) if passes > 0 else None
    return Draws(train_keep=train_keep, uniforms=uniforms, mc_keep=mc_keep)


def inverse_cdf(probs: np.ndarray, uniforms: np.ndarray,
                last: np.ndarray | int | None = None) -> np.ndarray:
    """Actions ``[...]`` (int64) drawn from ``probs [..., A]`` (float64) by the uniforms
    ``[...]``: the number of cumulative probabilities below each uniform, at most ``last``
    (default ``A - 1``; an array broadcast over ``[...]`` for heads padded to one width)."""
    below = np.cumsum(probs, axis=-1) < uniforms[..., None]
    top = probs.shape[-1] - 1 if last is None else last
    actions: np.ndarray = np.minimum(below.sum(axis=-1), top)
    return actions
