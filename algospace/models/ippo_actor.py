"""IPPO actor: the MAPPO actor plus its own critic over the agent's local observation.

The comparison baseline for the centralized critic: each agent learns a value
function from what it sees itself (``obs["local"]``), with RLlib's standard PPO
learner and GAE. The policy part is exactly :class:`ActorModule`, consistent dropout
included (its training forward recomputes the logits under the stored masks); the value
MLP has no dropout.
"""

from __future__ import annotations

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
