"""The team's actors at decision time: greedy actions, confidence and MC-dropout statistics.

:class:`TeamPolicy` takes one actor per module id — RLlib
:class:`~algospace.models.actor.ActorModule` objects loaded from a checkpoint,
or their exported TorchScript form (:mod:`algospace.inference.export`) — and
runs their weights in NumPy (:mod:`algospace.inference.kernel`). The greedy
action of every head is the argmax of the dropout-off logits, computed by the
same function as in the batch backtest's
:func:`algospace.evaluation.backtest.greedy_policy`; ``confidence`` is that
action's probability under the same logits (the mean over heads). With
``mc_passes > 0`` the acting agents also get their six MC-dropout statistics
from ``mc_passes`` stochastic passes, all agents together in one
:class:`~algospace.inference.kernel.McKernel` whose masks are seeded per call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import numpy as np
import torch

from algospace.inference.kernel import (
    McKernel,
    NetWeights,
    first_layer,
    greedy_action,
    head_logits,
    net_weights,
)
from envs.rllib import LAYER_GROUPS, LayerSharing, module_of

Observations = Mapping[str, Mapping[str, np.ndarray]]


class Actor(Protocol):
    """What the decision side needs of an actor."""

    input_lens: tuple[int, ...]
    is_multi_discrete: bool
    votes: torch.Tensor | None

    def logits(self, local: torch.Tensor, *, dropout: bool = False) -> torch.Tensor: ...


class TeamPolicy:
    """Greedy actions (and MC statistics) of the agents of one env."""

    def __init__(self, actors: Mapping[str, Actor], widths: Mapping[str, int], *,
                 mc_passes: int = 0) -> None:
        self.actors = dict(actors)
        self.sharing = "layer" if any(m in actors for m in LAYER_GROUPS if m != "risk") \
            else "agent"
        self.padder = LayerSharing(widths) if self.sharing == "layer" else None
        self.mc_passes = mc_passes
        self.nets: dict[str, NetWeights] = {m: net_weights(a) for m, a in self.actors.items()}
        self._kernels: dict[tuple[str, ...], McKernel] = {}
        missing = [a for a in widths if module_of(a, self.sharing) not in self.actors]
        if missing:
            raise KeyError(f"no actor for agent(s) {', '.join(missing)}; the checkpoint holds "
                           f"{', '.join(sorted(self.actors))}")

    def local(self, agent: str, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """The agent's ``local`` observation as its actor reads it (padded when shared)."""
        local = np.asarray(obs["local"], dtype=np.float32)
        if self.padder is not None and agent in self.padder.extra:
            local = np.concatenate((local, self.padder.extra[agent]))
        return local

    def kernel(self, agents: tuple[str, ...]) -> McKernel:
        """The MC kernel of ``agents`` (built once per set of acting agents)."""
        kernel = self._kernels.get(agents)
        if kernel is None:
            nets = [self.nets[module_of(a, self.sharing)] for a in agents]
            kernel = self._kernels[agents] = McKernel(nets, self.mc_passes)
        return kernel

    def act(self, obs: Observations, agents: Iterable[str], *, seed: int | tuple[int, ...] = 0
            ) -> tuple[dict[str, Any], dict[str, float], dict[str, np.ndarray]]:
        """Greedy actions, their probabilities and (with MC passes) the statistics of ``agents``.

        ``seed`` seeds the dropout masks of the MC passes (same seed, same statistics).
        """
        actions: dict[str, Any] = {}
        confidence: dict[str, float] = {}
        agents = tuple(agents)
        first = []
        for agent in agents:
            net = self.nets[module_of(agent, self.sharing)]
            h1 = first_layer(net, self.local(agent, obs[agent]))
            first.append(h1)
            actions[agent], confidence[agent] = greedy_action(net, head_logits(net, h1))
        stats: dict[str, np.ndarray] = {}
        if self.mc_passes and agents:
            values = self.kernel(agents).stats_from_first(first, seed)
            stats = dict(zip(agents, values, strict=True))
        return actions, confidence, stats
