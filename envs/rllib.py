"""The environments as RLlib multi-agent envs, registered by name.

:class:`RLlibEnv` wraps one of our PettingZoo parallel envs. It fixes the two
known gaps of RLlib's ``ParallelPettingZooEnv``: ``possible_agents`` keeps the
env's sorted order (not ``set`` order) and every agent gets its own
observation and action space.

It is also the multi-timescale adapter for ``joint_v0``: a strategic agent
gets an observation — and so produces one training row — only at the steps
where it decides (a 30-minute bar has just closed) and at the end of the
episode. The reward delivered with that observation is the sum of the team
rewards since its previous decision, so nothing is lost or counted twice.
Tactical agents get a row every 5-minute step.

Seeding: the adapter ignores a seed equal to the one it last passed on.
RLlib 2.60's multi-agent env runner, with ``batch_mode="complete_episodes"``,
resets its envs with the same seeds (configured seed + env index) at the
start of every ``sample()`` call, and each call collects one episode per env;
honouring those seeds would replay the same few episodes (the same start
positions) for the whole run, and the agents would learn them by heart.
Seeding once per distinct seed keeps a run reproducible and its episodes
varied (RLlib's env check, which resets every env with seed 42 first, is
overridden by the runner's first seed). The PettingZoo envs themselves keep
Gymnasium's semantics (every ``reset(seed=...)`` reseeds).

``register_envs()`` registers ``strategic_v0``, ``tactical_v0`` and
``joint_v0`` with Ray Tune; their ``env_config`` is any mapping accepted by
:class:`envs.core.config.EnvConfig`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
from ray.rllib.env.multi_agent_env import MultiAgentEnv
from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv
from ray.tune.registry import register_env

from envs.core.base import TradingEnv
from envs.core.layout import STRATEGIC_AGENTS

ENV_NAMES: tuple[str, ...] = ("strategic_v0", "tactical_v0", "joint_v0")
"""Names under which the envs are registered."""


class RLlibEnv(ParallelPettingZooEnv):
    """A registered AlgoSpace env as an RLlib ``MultiAgentEnv``."""

    def __init__(self, env: TradingEnv) -> None:
        MultiAgentEnv.__init__(self)  # not the parent's: it resets and loses agent order
        self.par_env = env
        self.possible_agents = list(env.possible_agents)
        self.agents = list(self.possible_agents)
        self.observation_spaces = {a: env.observation_space(a) for a in self.possible_agents}
        self.action_spaces = {a: env.action_space(a) for a in self.possible_agents}
        self.observation_space = gym.spaces.Dict(self.observation_spaces)
        self.action_space = gym.spaces.Dict(self.action_spaces)
        multi_clock = env.STRATEGIC and not env.STRATEGIC_CLOCK
        self._slow = tuple(a for a in self.possible_agents if multi_clock
                           and a in STRATEGIC_AGENTS)
        self._pending: dict[str, float] = {}
        self._last_seed: int | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Reset the env (seeded once, see the module docstring); every agent observes."""
        if seed is not None:
            if seed == self._last_seed:
                seed = None
            else:
                self._last_seed = seed
        obs, infos = self.par_env.reset(seed=seed, options=options)
        self._pending = dict.fromkeys(self._slow, 0.0)
        self.agents = list(self.par_env.agents)
        return obs, infos

    def step(self, action_dict: dict[str, Any]) -> tuple[dict[str, Any], ...]:
        """Step the env; strategic agents observe only at their decisions and at the end."""
        env = self.par_env
        obs, rew, term, trunc, info = env.step(action_dict)
        done = not env.agents
        if self._slow:
            pending = self._pending
            keep = done or env.decision
            for agent in self._slow:
                pending[agent] += rew[agent]
                if keep:
                    rew[agent] = pending[agent]
                    pending[agent] = 0.0
                else:
                    for d in (obs, rew, term, trunc, info):
                        del d[agent]
        terminated = done and any(term.values())
        term["__all__"] = terminated
        trunc["__all__"] = done and not terminated
        self.agents = list(env.agents)
        return obs, rew, term, trunc, info


def make_env(name: str, env_config: Mapping[str, Any] | None = None) -> RLlibEnv:
    """Build the registered env ``name`` from an ``env_config`` mapping."""
    from envs import joint_v0, strategic_v0, tactical_v0

    modules = {"strategic_v0": strategic_v0, "tactical_v0": tactical_v0, "joint_v0": joint_v0}
    if name not in modules:
        raise ValueError(f"unknown env {name!r}; choose one of {', '.join(ENV_NAMES)}")
    return RLlibEnv(modules[name].parallel_env(dict(env_config or {})))


def creator(name: str) -> Callable[[Mapping[str, Any]], RLlibEnv]:
    """The env creator registered under ``name``."""
    def create(env_config: Mapping[str, Any]) -> RLlibEnv:
        return make_env(name, env_config)

    return create


def register_envs() -> None:
    """Register every AlgoSpace env with Ray Tune under its name (idempotent)."""
    for name in ENV_NAMES:
        register_env(name, creator(name))
