"""The environments as RLlib multi-agent envs, registered by name.

:class:`RLlibEnv` wraps one of our PettingZoo parallel envs. It fixes the two
known gaps of RLlib's ``ParallelPettingZooEnv``: ``possible_agents`` keeps the
env's sorted order (not ``set`` order) and every agent gets its own
observation and action space.

It is also the multi-timescale adapter for ``joint_v0``: a strategic agent
gets an observation — and so produces one training row — only at the steps
where it decides (a 30-minute bar has just closed) and at the end of the
episode. The reward delivered with that observation is the discounted sum
of the team rewards since its previous decision, ``Σ γ^i r_i`` over the ``k``
five-minute steps in between (``gamma`` in the ``env_config``, default 1), so
that with the learner's ``γ^k`` bootstrap the row's return is exactly the
5-minute return; nothing is lost or counted twice. Tactical agents get a row
every 5-minute step.

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

Parameter sharing per layer (``env_config["sharing"] = "layer"``; the default
``"agent"`` gives every agent its own module): the agents of a layer that have
the same action space share one module — ``strategic`` (mlmi, nwrqk,
portfolio, regime), ``tactical`` (entry, fvg, momentum) — and ``risk`` keeps
its own (so does single_v0's one ``trader``). Their ``local`` observations
have different widths, so the adapter pads each to the widest of its group
with zeros and appends a one-hot agent id (:class:`LayerSharing`); the
shared module tells the agents apart by it.

``register_envs()`` registers ``strategic_v0``, ``tactical_v0``, ``joint_v0``
and ``single_v0`` with Ray Tune; their ``env_config`` is any mapping accepted by
:class:`algospace.config.EnvConfig`, plus the optional ``sharing`` and
``gamma`` keys. The names and classes come from :mod:`envs.registry`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from ray.rllib.env.multi_agent_env import MultiAgentEnv
from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv
from ray.tune.registry import register_env

from algospace.config import STRATEGIC_AGENTS
from envs.core.base import TradingEnv
from envs.core.costs import sampling_cost_weight, set_env_cost_weight
from envs.core.layout import SINGLE_AGENT, TACTICAL_VOTERS
from envs.registry import ENV_NAMES, env_class, make_parallel_env

SHARING: tuple[str, ...] = ("agent", "layer")
"""Parameter sharing modes: one module per agent, or one per layer (see the docstring)."""
LAYER_GROUPS: dict[str, tuple[str, ...]] = {"strategic": STRATEGIC_AGENTS,
                                            "tactical": TACTICAL_VOTERS, "risk": ("risk",)}
"""Module id → the agents that share it under ``sharing="layer"``."""


def module_of(agent: str, sharing: str = "agent") -> str:
    """The module id that acts for ``agent`` (single_v0's trader: its own, either way)."""
    if sharing == "agent" or agent == SINGLE_AGENT:
        return agent
    for module_id, agents in LAYER_GROUPS.items():
        if agent in agents:
            return module_id
    raise KeyError(f"unknown agent {agent!r}")


def agent_module(agent_id: str, *args: Any, **kwargs: Any) -> str:
    """Policy mapping of ``sharing="agent"``: each agent has its own module."""
    return agent_id


def layer_module(agent_id: str, *args: Any, **kwargs: Any) -> str:
    """Policy mapping of ``sharing="layer"``."""
    return module_of(agent_id, "layer")


class LayerSharing:
    """Pads the ``local`` observations of the agents that share a module (zeros + one-hot id).

    ``widths`` are the agents' own ``local`` widths; an agent alone in its group (``risk``,
    or any agent whose group-mates are not in the env) is left as it is.
    """

    def __init__(self, widths: Mapping[str, int]) -> None:
        self.padded: dict[str, int] = {}
        self.extra: dict[str, np.ndarray] = {}
        for group in LAYER_GROUPS.values():
            members = [a for a in group if a in widths]
            if len(members) < 2:
                continue
            widest = max(widths[a] for a in members)
            for i, agent in enumerate(members):
                tail = np.zeros(widest - widths[agent] + len(members), np.float32)
                tail[widest - widths[agent] + i] = 1.0
                self.extra[agent] = tail
                self.padded[agent] = widest + len(members)

    @classmethod
    def for_spaces(cls, spaces: Mapping[str, gym.spaces.Dict]) -> LayerSharing:
        """Sharing for agents with these Dict observation spaces."""
        return cls({a: int(sp["local"].shape[0]) for a, sp in spaces.items()})

    def space(self, agent: str, space: gym.spaces.Dict) -> gym.spaces.Dict:
        """The agent's observation space after padding."""
        if agent not in self.padded:
            return space
        local = gym.spaces.Box(-np.inf, np.inf, (self.padded[agent],), np.float32)
        return gym.spaces.Dict({"local": local, "state": space["state"]})

    def pad(self, obs: dict[str, Any]) -> dict[str, Any]:
        """The observations with every shared agent's ``local`` padded (in place)."""
        for agent, o in obs.items():
            tail = self.extra.get(agent)
            if tail is not None:
                obs[agent] = {"local": np.concatenate((o["local"], tail)), "state": o["state"]}
        return obs


class RLlibEnv(ParallelPettingZooEnv):
    """A registered AlgoSpace env as an RLlib ``MultiAgentEnv``."""

    def __init__(self, env: TradingEnv, sharing: str = "agent", gamma: float = 1.0) -> None:
        MultiAgentEnv.__init__(self)  # not the parent's: it resets and loses agent order
        if sharing not in SHARING:
            raise ValueError(f"sharing must be one of {', '.join(SHARING)}, got {sharing!r}")
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {gamma!r}")
        self.gamma = float(gamma)
        self.par_env = env
        self.possible_agents = list(env.possible_agents)
        self.agents = list(self.possible_agents)
        self.observation_spaces = {a: env.observation_space(a) for a in self.possible_agents}
        self.sharing = LayerSharing.for_spaces(self.observation_spaces) \
            if sharing == "layer" else None
        if self.sharing is not None:
            self.observation_spaces = {a: self.sharing.space(a, sp)
                                       for a, sp in self.observation_spaces.items()}
        self.action_spaces = {a: env.action_space(a) for a in self.possible_agents}
        self.observation_space = gym.spaces.Dict(self.observation_spaces)
        self.action_space = gym.spaces.Dict(self.action_spaces)
        multi_clock = env.STRATEGIC and not env.STRATEGIC_CLOCK
        self._slow = tuple(a for a in self.possible_agents if multi_clock
                           and a in STRATEGIC_AGENTS)
        self._pending: dict[str, float] = {}
        self._weight = 1.0  # gamma ** (steps since the strategic agents' last decision)
        self._last_seed: int | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Reset the env (seeded once, see the module docstring); every agent observes."""
        if seed is not None:
            if seed == self._last_seed:
                seed = None
            else:
                self._last_seed = seed
        set_env_cost_weight(self.par_env, sampling_cost_weight())  # 1.0 unless a ramp runs
        obs, infos = self.par_env.reset(seed=seed, options=options)
        self._pending = dict.fromkeys(self._slow, 0.0)
        self._weight = 1.0
        self.agents = list(self.par_env.agents)
        if self.sharing is not None:
            obs = self.sharing.pad(obs)
        return obs, infos

    def get_rng_state(self) -> dict[str, Any]:
        """The random state episodes draw from (``--resume`` carries it in a checkpoint)."""
        return {"last_seed": self._last_seed,
                "np_random": self.par_env.np_random.bit_generator.state}

    def set_rng_state(self, state: dict[str, Any]) -> None:
        """Put back what :meth:`get_rng_state` returned."""
        self._last_seed = state["last_seed"]
        self.par_env.np_random.bit_generator.state = state["np_random"]

    def step(self, action_dict: dict[str, Any]) -> tuple[dict[str, Any], ...]:
        """Step the env; strategic agents observe only at their decisions and at the end."""
        env = self.par_env
        obs, rew, term, trunc, info = env.step(action_dict)
        done = not env.agents
        if self._slow:
            pending, weight = self._pending, self._weight
            keep = done or env.decision
            self._weight = 1.0 if keep else weight * self.gamma
            for agent in self._slow:
                pending[agent] += weight * rew[agent]
                if keep:
                    rew[agent] = pending[agent]
                    pending[agent] = 0.0
                else:
                    for d in (obs, rew, term, trunc, info):
                        del d[agent]
        if self.sharing is not None:
            obs = self.sharing.pad(obs)
        terminated = done and any(term.values())
        term["__all__"] = terminated
        trunc["__all__"] = done and not terminated
        self.agents = list(env.agents)
        return obs, rew, term, trunc, info


def make_env(name: str, env_config: Mapping[str, Any] | None = None) -> RLlibEnv:
    """Build the registered env ``name`` from an ``env_config`` mapping (+ ``sharing``, and
    the driver's prepared data under ``prepared_data``: see algospace.features.shipping)."""
    from algospace.features.shipping import ENV_KEY, Shipped, provide

    env_class(name)  # an unknown name fails before any data is touched
    config = dict(env_config or {})
    sharing = str(config.pop("sharing", "agent"))
    gamma = float(config.pop("gamma", 1.0))
    shipped = config.pop(ENV_KEY, None)
    if shipped is not None:
        provide(Shipped.from_dict(shipped))
    return RLlibEnv(make_parallel_env(name, config), sharing=sharing, gamma=gamma)


def creator(name: str) -> Callable[[Mapping[str, Any]], RLlibEnv]:
    """The env creator registered under ``name``."""
    def create(env_config: Mapping[str, Any]) -> RLlibEnv:
        return make_env(name, env_config)

    return create


def register_envs() -> None:
    """Register every AlgoSpace env with Ray Tune under its name (idempotent)."""
    for name in ENV_NAMES:
        register_env(name, creator(name))
