"""IPPO actor: the MAPPO actor plus its own critic over the agent's local observation.

The comparison baseline for the centralized critic: each agent learns a value
function from what it sees itself (``obs["local"]``), with RLlib's standard PPO
learner and GAE. The policy part is exactly :class:`ActorModule`, consistent dropout
included (its training forward recomputes the logits under the stored masks); the value
MLP has no dropout.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import pairwise
from typing import Any

import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis.value_function_api import ValueFunctionAPI
from ray.rllib.core.rl_module.rl_module import RLModule
from ray.rllib.utils.annotations import override
from torch import nn

from algospace.models.actor import ActorModule, _local_dim


class IPPOActorModule(ActorModule, ValueFunctionAPI):
    """An actor with a local value head (independent PPO)."""

    value_layers: nn.ModuleList
    value_head: nn.Linear

    @override(RLModule)
    def setup(self) -> None:
        """The actor, plus a separate MLP of the same widths for the value."""
        super().setup()
        widths = (_local_dim(self.observation_space), *self.cfg.hidden)
        self.value_layers = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(widths))
        self.value_head = nn.Linear(widths[-1], 1)

    @override(ValueFunctionAPI)
    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> torch.Tensor:
        """Value of each row from the agent's local observation."""
        x = self._local(batch)
        for layer in self.value_layers:
            x = torch.relu(layer(x))
        return self.value_head(x).squeeze(-1)

    @override(ActorModule)
    def _forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        out = super()._forward_train(batch, **kwargs)
        out[Columns.EMBEDDINGS] = None
        return out


VALUE_NET_PREFIXES = ("value_layers.", "value_head.")
"""State-dict prefixes of an IPPO actor's own value network."""


def with_own_value_net(own: Mapping[str, torch.Tensor],
                       actor: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor],
                                                                     list[str]]:
    """An IPPO module's state from a MAPPO actor's weights (``actor``) and its own.

    A MAPPO actor has no value network (the shared critic values its rows), so an IPPO
    module that starts from it -- the MAPPO-vs-IPPO ablation of ``bench team`` starts the
    joint phase from the same actors either way -- keeps the value network it has (``own``:
    freshly initialised) and takes every other weight from ``actor``. Returns that state and
    the keys kept from ``own`` (none when ``actor`` already holds a value network). Raises
    ``ValueError`` when the two differ in anything but the value network.
    """
    kept = sorted(k for k in own if k not in actor)
    foreign = sorted(k for k in actor if k not in own)
    if foreign or any(not k.startswith(VALUE_NET_PREFIXES) for k in kept):
        raise ValueError(f"not an actor of this IPPO module: unexpected {foreign or 'none'}, "
                         f"missing {[k for k in kept if not k.startswith(VALUE_NET_PREFIXES)]}")
    return {**{k: own[k] for k in kept}, **actor}, kept
