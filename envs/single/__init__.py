"""single_v0 — one agent trades the account of joint_v0: the non-MARL baseline.

Agent: ``trader``, alone. The market, the clock, the account, the costs, the
reward, the exit cost and ruin are joint_v0's (see :mod:`envs.joint`): one
step per 5-minute bar, episodes starting at a step where a 30-minute bar has
just closed, ``episode_steps`` default 276. Only the decision differs: one
policy chooses the target position, where joint_v0 combines eight agents'
actions into it. Trained with the same env-step budget and backtested
through the same account, its P&L is the yardstick of the eight-agent team.

Action: ``Discrete(5)`` — SHORT_FULL, SHORT_HALF, FLAT, LONG_HALF,
LONG_FULL (``envs.core.layout.SINGLE_ACTIONS``)::

    f        = -1, -0.5, 0, +0.5, +1                   (in the order above)
    target   = sign(f) * floor(|f| * max_position + 0.5)

the target joint_v0 gives for a conviction c = f, rounded by the same code.
No bracket: no stop, no take-profit; the position is held until the trader
changes it (or ruin).

Execution, reward, exit cost, ruin: as joint_v0 (the same account,
commission and slippage; ``r = (net equity change - exit cost on the last
step - drawdown_penalty * drawdown growth) / scale``). ``reward.shaping``
names the team's agents and is refused here.

Observation: ``{"local", "state"}``. ``local`` is the concatenation of the
eight joint_v0 agents' ``local`` observations at the same step, in sorted
agent order (entry, fvg, mlmi, momentum, nwrqk, portfolio, regime, risk;
``env.local_slices`` gives each one's slice, ``env.local_columns`` the
columns of each window): what the team sees together, each part with its
12-d context. In the context and the state, b and s both hold the trader's
latched fraction f (0 before its first action) and rho is 1; the state's
blocks of the team's one-hot actions and of the risk settings stay 0.
``state`` is the 112-d global state.

Info, episodes, arguments: as joint_v0 (``info["strategic_decision"]``
still marks 30-minute closes; the trader acts at every step).

Versions: v0 — first version.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

from algospace.config import EnvConfig, make_config
from algospace.errors import ConfigError
from envs.core.base import _action
from envs.core.data import MarketArrays
from envs.core.layout import SINGLE_AGENT, SINGLE_TARGET
from envs.joint import JointEnv


class SingleEnv(JointEnv):
    """joint_v0's market and account, traded by one agent over the team's observations."""

    metadata: ClassVar[dict[str, Any]] = {"name": "single_v0", "render_modes": [],
                                          "is_parallelizable": True}
    AGENTS: ClassVar[tuple[str, ...]] = (SINGLE_AGENT,)
    """The agents of this env (the registry reports these, not the layers' agents)."""

    local_slices: dict[str, slice]
    """Each team agent's slice of the trader's ``local`` observation."""

    def __init__(self, config: EnvConfig | Mapping[str, Any] | None = None, *,
                 market: MarketArrays | None = None, **kwargs: Any) -> None:
        config = make_config(config, **kwargs)
        if config.reward.shaping:
            raise ConfigError("reward.shaping: single_v0 has one agent, 'trader'; the "
                              "shaping weights name the team's agents (remove them)")
        super().__init__(config, market=market)
        self.possible_agents = list(self.AGENTS)

    def _spaces(self) -> None:
        """The trader's spaces: the team's local observations side by side, Discrete(5)."""
        super()._spaces()
        widths = [int(self._obs_spaces[a]["local"].shape[0]) for a in self._team]
        ends = np.cumsum(widths).tolist()
        self.local_slices = {a: slice(end - w, end)
                             for a, w, end in zip(self._team, widths, ends, strict=True)}
        local = spaces.Box(-np.inf, np.inf, (ends[-1],), np.float32)
        self._obs_spaces = {SINGLE_AGENT: spaces.Dict({"local": local,
                                                       "state": self.state_space})}
        self._act_spaces = {SINGLE_AGENT: spaces.Discrete(len(SINGLE_TARGET))}

    def decide(self, actions: Mapping[str, Any]) -> int:
        """Latch the trader's fraction as the team's agreed conviction; the target."""
        if not self.agents:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        self._bias = self._signal = SINGLE_TARGET[_action(actions, SINGLE_AGENT)]
        return self._target()

    def _core(self) -> int:
        """No strategic part of its own (as the vectorised env): a block ends as joint_v0's
        does without one."""
        return 0

    def _sizing(self) -> tuple[float, float]:
        """The trader's fraction of the whole position limit."""
        return self._bias, float(self.max_position)

    def stop_and_target(self) -> tuple[float, float]:
        """No bracket: the trader's positions carry no stop and no target."""
        return math.nan, math.nan

    def _fill_dynamic(self) -> None:
        """The team's blocks, with the risk budget always full (joint_v0 starts at 0.5)."""
        self._budget = 1.0
        super()._fill_dynamic()

    def _observe(self) -> dict[str, dict[str, np.ndarray]]:
        """The trader's ``{local, state}``: the team's locals concatenated, the state."""
        team = super()._observe()
        local = np.concatenate([team[a]["local"] for a in self._team])
        return {SINGLE_AGENT: {"local": local, "state": self._state}}


def parallel_env(config: Any = None, **kwargs: Any) -> SingleEnv:
    """A single_v0 ParallelEnv (keywords: fields of ``EnvConfig``)."""
    return SingleEnv(config, **kwargs)
