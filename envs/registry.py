"""The one registry of AlgoSpace's envs: names, classes, agents, and how to build one.

Every other place (the RLlib adapter, the backtest, the training builder, the
experiment schema, the run, the benchmarks) asks this module; none keeps its own
table of env names.
"""

from __future__ import annotations

from typing import Any

from algospace.config import STRATEGIC_AGENTS, TACTICAL_AGENTS
from algospace.errors import ConfigError
from envs.core.base import TradingEnv
from envs.joint import JointEnv
from envs.single import SingleEnv
from envs.strategic import StrategicEnv
from envs.tactical import TacticalEnv

__all__ = ["ENVS", "ENV_NAMES", "agents_of", "env_class", "make_parallel_env"]

ENVS: dict[str, type[TradingEnv]] = {"strategic_v0": StrategicEnv, "tactical_v0": TacticalEnv,
                                     "joint_v0": JointEnv, "single_v0": SingleEnv}
"""Registered name → PettingZoo ParallelEnv class."""

ENV_NAMES: tuple[str, ...] = tuple(ENVS)
"""Names under which the envs are registered (with RLlib too: envs.rllib.register_envs)."""


def env_class(name: str) -> type[TradingEnv]:
    """The ParallelEnv class registered as ``name``."""
    if name not in ENVS:
        raise ConfigError(f"unknown env {name!r}; choose one of {', '.join(ENV_NAMES)}")
    return ENVS[name]


def agents_of(name: str) -> tuple[str, ...]:
    """The agents of env ``name``, strategic ones first, in the env's own order (single_v0:
    its one ``trader``)."""
    cls = env_class(name)
    if issubclass(cls, SingleEnv):
        return cls.AGENTS
    strategic = STRATEGIC_AGENTS if cls.STRATEGIC else ()
    return (*strategic, *(TACTICAL_AGENTS if cls.TACTICAL else ()))


def make_parallel_env(name: str, config: Any = None, **kwargs: Any) -> TradingEnv:
    """A new PettingZoo ParallelEnv ``name`` (``config``: an EnvConfig, a mapping or None)."""
    return env_class(name)(config, **kwargs)
