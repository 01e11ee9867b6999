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

from algospace.config import STRATEGIC_AGENTS, TACTICAL_AGENTS
from algospace.inference.gates import GateConfig, GateResult, apply_gates
from algospace.inference.kernel import (
    McKernel,
    NetWeights,
    first_layer,
    greedy_action,
    head_logits,
    net_weights,
)
from algospace.models.mc_dropout import AGENT_STATS, MC_FEATURES, joint_features_np
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


class GatedTeam:
    """The team's decision at one clock step, through the two gates.

    ``mc_passes`` dropout passes per decision give the statistics gate 2 reads (0: none,
    gate 2 shut); their masks are seeded with ``(seed, clock step)``, so a replay of the
    same bars gives the same gates. Call :meth:`reset` when a session (backtest tile)
    starts: the strategic agents' latched actions and statistics belong to one session.
    """

    def __init__(self, actors: Mapping[str, Actor], *, mc_passes: int = 50,
                 gates: GateConfig | None = None, seed: int = 0) -> None:
        if mc_passes < 0:
            raise ValueError(f"mc_passes must be >= 0, got {mc_passes!r}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed!r}")
        self.actors = dict(actors)
        self.mc_passes = mc_passes
        self.gates = gates or GateConfig()
        self.seed = seed
        self.policy: TeamPolicy | None = None
        self.actions: dict[str, Any] = {}
        """Each agent's latest action (the strategic agents' latched between decisions)."""
        self.confidence: dict[str, float] = {}
        """Probability of each agent's latest greedy action."""
        self.stats: dict[str, np.ndarray] = {}
        """Each agent's latest MC statistics (:data:`AGENT_STATS`)."""

    def bind(self, env: Any) -> TeamPolicy:
        """The team policy for ``env``'s agents (built on the first call)."""
        if self.policy is None:
            widths = {a: int(env.observation_space(a)["local"].shape[0])
                      for a in env.possible_agents}
            self.policy = TeamPolicy(self.actors, widths, mc_passes=self.mc_passes)
        return self.policy

    def reset(self) -> None:
        """A new session: nothing latched."""
        self.actions, self.confidence, self.stats = {}, {}, {}

    def decide(self, env: Any, obs: Observations, clock: int, *, synergy_direction: float,
               initial_equity: float) -> GateResult:
        """Act at ``env``'s current step (clock step ``clock``) and gate the target.

        The env latches the actions (:meth:`envs.core.base.TradingEnv.decide`); the caller
        sends ``result.target`` to :meth:`~envs.core.base.TradingEnv.execute`.
        ``synergy_direction`` is the synergy detector's state at the step's close.
        """
        policy = self.bind(env)
        acting = [a for a in env.possible_agents
                  if a not in STRATEGIC_AGENTS or env.decision or not self.actions]
        actions, confidence, stats = policy.act(obs, acting, seed=(self.seed, clock))
        self.actions.update(actions)
        self.confidence.update(confidence)
        self.stats.update(stats)
        wanted = env.decide(self.actions)
        acct = env.account
        return apply_gates(wanted, acct.position, synergy_direction=synergy_direction,
                           stats=self.stats or _no_stats(env.possible_agents),
                           drawdown_pct=acct.drawdown * 100.0 / initial_equity,
                           cfg=self.gates)

    def mc_features(self) -> dict[str, float]:
        """The 15 MC features from the agents' latest statistics."""
        if not self.stats:
            return dict.fromkeys(MC_FEATURES, 0.0)

        def layer(agents: tuple[str, ...]) -> np.ndarray | None:
            rows = [self.stats[a] for a in agents if a in self.stats]
            return np.stack(rows)[None] if rows else None

        values = joint_features_np(layer(STRATEGIC_AGENTS), layer(TACTICAL_AGENTS),
                                   threshold=self.gates.threshold)[0]
        return {k: float(v) for k, v in zip(MC_FEATURES, values, strict=True)}


def gate_counts(results: Iterable[GateResult]) -> dict[str, int]:
    """How often each gate was closed, and how often the gates held a trade back."""
    counts = dict.fromkeys(("decisions", "synergy_closed", "consensus_closed", "held_back"), 0)
    for g in results:
        counts["decisions"] += 1
        counts["synergy_closed"] += not g.synergy_open
        counts["consensus_closed"] += not g.consensus_open
        counts["held_back"] += g.held_back
    return counts


def _no_stats(agents: Iterable[str]) -> dict[str, np.ndarray]:
    """Zero statistics (no MC passes): consensus 0, gate 2 shut."""
    return {a: np.zeros(len(AGENT_STATS)) for a in agents}
