"""Consistent dropout: the dropout masks a sampled action was drawn under, kept as packed bits.

Consistent dropout (Hausknecht & Wagener, 2022, "Consistent Dropout for Policy Gradient
Reinforcement Learning") trains a stochastic-policy network with dropout active while
keeping PPO's importance ratio exact: every sampled action keeps the dropout mask its
logits were computed under, and the learner recomputes the log-probability (and entropy
and KL) of that action under the SAME mask. At the first minibatch of an iteration, before
any weight changes, the recomputed log-probability therefore equals the stored one and the
ratio is exactly 1; drawing fresh masks on the learner instead would make the ratio a
random number around 1 even with unchanged weights, and the clipped objective would be
clipping noise.

The mask of one row covers the hidden layers only (dropout never touches the input): one
keep-bit per hidden unit, ``sum(hidden)`` bits in forward order, stored as
``ceil(sum(hidden) / 8)`` ``uint8`` bytes exactly as ``np.packbits(keep, axis=-1)`` packs
them (big bit order, the last byte zero-padded). The bits themselves are stored, not a
seed: random streams differ across devices and batch shapes, so a seed would not give the
learner the mask the sampler used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

DROPOUT_MASK = "dropout_mask"
"""Key of the packed keep-bits ``[B, ceil(sum(hidden) / 8)]`` (uint8) in the exploration
output; RLlib stores it with the step (``extra_model_outputs``) and the learner's batch
carries it back to the training forward."""

_WEIGHTS = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)


def packed_width(bits: int) -> int:
    """Bytes that hold ``bits`` packed bits."""
    if bits < 0:
        raise ValueError(f"bits must be >= 0, got {bits}")
    return math.ceil(bits / 8)


def draw_keep(rows: int, hidden: Sequence[int], p: float, generator: torch.Generator,
              device: torch.device | str = "cpu") -> torch.Tensor:
    """Keep-bits ``[rows, sum(hidden)]`` (bool): each unit kept with probability ``1 - p``,
    drawn from ``generator`` (one uniform per unit, kept when it is ``>= p``)."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout p must lie in [0, 1), got {p}")
    u = torch.rand((rows, int(sum(hidden))), generator=generator, device=device)
    return u >= p


def pack_bits(keep: torch.Tensor) -> torch.Tensor:
    """``np.packbits(keep, axis=-1)`` in torch: ``[..., n]`` bool -> ``[..., ceil(n/8)]`` uint8."""
    n = keep.shape[-1]
    pad = packed_width(n) * 8 - n
    bits = keep.to(torch.uint8)
    if pad:
        bits = torch.cat([bits, bits.new_zeros((*bits.shape[:-1], pad))], dim=-1)
    bits = bits.reshape(*bits.shape[:-1], -1, 8)
    return (bits * _WEIGHTS.to(bits.device)).sum(dim=-1, dtype=torch.uint8)


def unpack_bits(packed: torch.Tensor, bits: int) -> torch.Tensor:
    """``np.unpackbits(packed, axis=-1, count=bits)`` as bool: ``[..., m]`` -> ``[..., bits]``.

    Raises ``ValueError`` when ``packed`` is not ``uint8`` or its width is not the
    ``ceil(bits / 8)`` bytes that hold ``bits`` bits.
    """
    packed = torch.as_tensor(packed)
    if packed.dtype != torch.uint8:
        raise ValueError(f"packed dropout masks must be uint8, got {packed.dtype}")
    if packed.ndim < 1 or packed.shape[-1] != packed_width(bits):
        raise ValueError(f"packed dropout masks of {bits} bits must have "
                         f"{packed_width(bits)} bytes per row, got shape {tuple(packed.shape)}")
    weights = _WEIGHTS.to(packed.device)
    unpacked = (packed.unsqueeze(-1) & weights) != 0
    return unpacked.reshape(*packed.shape[:-1], -1)[..., :bits]
