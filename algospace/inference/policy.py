"""The team's actors at decision time: greedy actions, confidence and MC-dropout statistics.

:class:`TeamPolicy` holds one actor per module id — RLlib
:class:`~algospace.models.actor.ActorModule` objects loaded from a checkpoint,
or their exported TorchScript form (:mod:`algospace.inference.export`); both
answer ``logits(x, dropout=...)``. The greedy action of every head is the
argmax of the dropout-off logits, exactly as in the batch backtest's
:func:`algospace.evaluation.backtest.greedy_policy`; ``confidence`` is that
action's probability under the same logits. With ``mc_passes > 0`` each
acting agent also gets its six MC-dropout statistics from ``mc_passes``
stochastic passes run as one batched forward.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import numpy as np
import torch

from algospace.models.actor import actor_mc_stats
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

    def act(self, obs: Observations, agents: Iterable[str]
            ) -> tuple[dict[str, Any], dict[str, float], dict[str, np.ndarray]]:
        """Greedy actions, their probabilities and (with MC passes) the statistics of ``agents``."""
        actions: dict[str, Any] = {}
        confidence: dict[str, float] = {}
        stats: dict[str, np.ndarray] = {}
        with torch.no_grad():
            for agent in agents:
                actor = self.actors[module_of(agent, self.sharing)]
                x = torch.from_numpy(self.local(agent, obs[agent]))[None]
                heads = torch.split(actor.logits(x)[0], list(actor.input_lens))
                best = [int(torch.argmax(h)) for h in heads]
                probs = [float(torch.softmax(h, dim=-1)[b]) for h, b in zip(heads, best,
                                                                             strict=True)]
                actions[agent] = np.asarray(best, dtype=np.int64) if actor.is_multi_discrete \
                    else best[0]
                confidence[agent] = float(np.mean(probs))
                if self.mc_passes:
                    stats[agent] = actor_mc_stats(actor, x, self.mc_passes)[0].numpy()
        return actions, confidence, stats
