"""The actor network's layers: the one definition its torch, NumPy and TorchScript copies follow.

No torch or Ray import, so the NumPy decision kernel reads it cheaply.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["HEAD", "HIDDEN", "Layer", "actor_layers"]

HIDDEN = "layers"
"""Attribute (and state-dict prefix, ``layers.<i>``) of the hidden layers."""
HEAD = "head"
"""Attribute (and state-dict prefix) of the logits head."""


@dataclass(frozen=True)
class Layer:
    """One linear layer of the actor network, in forward order (see :func:`actor_layers`)."""

    name: str
    """State-dict prefix: the weights are ``<name>.weight`` ``[out, in]`` and ``<name>.bias``."""
    hidden: bool
    """A hidden layer (``Linear -> ReLU -> dropout``); False for the head (linear only)."""


def actor_layers(state: Mapping[str, Any]) -> tuple[Layer, ...]:
    """The layers of an actor network, in forward order, read from its ``state_dict``.

    The one definition of the network every copy of it follows (:class:`ActorModule`,
    the NumPy kernel :func:`algospace.inference.kernel.net_weights`, the TorchScript
    export :class:`algospace.inference.export.DropoutMLP`): ``layers.0 .. layers.<n-1>``,
    each ``Linear -> ReLU -> dropout``, then the linear ``head``. Raises ``ValueError``
    when ``state`` has no hidden layer or no head.
    """
    depth = 0
    while f"{HIDDEN}.{depth}.weight" in state:
        depth += 1
    if depth == 0 or f"{HEAD}.weight" not in state:
        raise ValueError(f"an actor network needs {HIDDEN}.<i> and {HEAD} weights; found "
                         f"{sorted(state)}")
    return (*(Layer(f"{HIDDEN}.{i}", True) for i in range(depth)), Layer(HEAD, False))
