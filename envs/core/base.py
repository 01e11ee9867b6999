"""The shared trading environment behind strategic_v0, tactical_v0, joint_v0 and single_v0.

Subclasses say which layers take part and on which clock the env steps (single_v0 also
replaces the team's decision by one agent's); the action mapping, account, reward and
observations live here so that the envs mean exactly the same thing. The cards (module
docstrings of the env packages) document the formulas; :mod:`envs.core.layout` names
every dimension.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from pettingzoo import ParallelEnv

from algospace.config import STRATEGIC_AGENTS, TACTICAL_AGENTS, EnvConfig, make_config
from algospace.market import Account
from algospace.market.sizing import position_limit
from envs.core.data import MarketArrays, load_market
from envs.core.episodes import check_enough, tile, valid_starts
from envs.core.layout import (
    AGENT_COLUMNS,
    CONTEXT,
    LATENT_DIM,
    RISK_CONTRACTS,
    RISK_REWARD,
    RISK_STEP,
    RISK_STOP_ATR,
    STRATEGIC_ACTIONS,
    STRATEGIC_VOTE,
    TACTICAL_ACTIONS,
    TACTICAL_VOTE,
    TACTICAL_VOTERS,
    market_state_dim,
)

N_ACCOUNT = 8
N_SIGNALS = 3
_STRAT_OFF = N_ACCOUNT + N_SIGNALS
_TACT_OFF = _STRAT_OFF + len(STRATEGIC_AGENTS) * len(STRATEGIC_ACTIONS)
_RISK_OFF = _TACT_OFF + len(TACTICAL_VOTERS) * len(TACTICAL_ACTIONS)
_DYN_DIM = _RISK_OFF + 3


class TradingEnv(ParallelEnv):
    """One futures account traded by the agents of the chosen layers."""

    metadata: ClassVar[dict[str, Any]] = {"name": "algospace_base", "render_modes": [],
                                          "is_parallelizable": True}
    STRATEGIC: ClassVar[bool] = True
    TACTICAL: ClassVar[bool] = True
    STRATEGIC_CLOCK: ClassVar[bool] = False
    """True: one step per 30-minute bar; False: one step per 5-minute bar."""
    DEFAULT_EPISODE_STEPS: ClassVar[int] = 276

    def __init__(self, config: EnvConfig | Mapping[str, Any] | None = None, *,
                 market: MarketArrays | None = None, **kwargs: Any) -> None:
        self.config = make_config(config, **kwargs)
        self.render_mode = None
        self._team = sorted((STRATEGIC_AGENTS if self.STRATEGIC else ()) + (
            TACTICAL_AGENTS if self.TACTICAL else ()))  # whose windows the env builds
        self.possible_agents: list[str] = list(self._team)
        self.agents: list[str] = []
        self.episode_steps = self.config.episode_steps or self.DEFAULT_EPISODE_STEPS
        self._bind(market if market is not None else load_market(self.config))
        self._spaces()
        self._account = Account(self.market.contract, max_position=self.max_position,
                                initial_equity=self.config.initial_equity)
        self._dyn = np.zeros(_DYN_DIM, np.float32)
        self._ctx = np.zeros(len(CONTEXT), np.float32)
        self._tile_next = 0
        self.np_random, _ = _seeded(None)
        self._state = np.zeros(self.config.state_dim, np.float32)

    # ----------------------------------------------------------------- set-up
    def _bind(self, market: MarketArrays) -> None:
        """Attach the shared arrays (plain ndarray views of the mapped files)."""
        self.market = market
        a = {k: np.asarray(v).view(np.ndarray) for k, v in market.arrays.items()}
        self._ohlc = a["strategic_ohlc"] if self.STRATEGIC_CLOCK else a["base_ohlc"]
        self._sindex = a["strategic_index"]
        self._close_step = a["close_step"]
        self._is_close = a["is_close"]
        self._atr = a["atr"]
        self._mstate = a["market_state"]
        self._latent = a["latent"]
        self._views = [(agent, a[("s_" if agent in STRATEGIC_AGENTS else "t_") + agent],
                        market.strategic_window if agent in STRATEGIC_AGENTS
                        else market.tactical_window, agent in STRATEGIC_AGENTS)
                       for agent in self._team]
        self._starts, self._tiles = self._episode_starts(a["usable"])
        self.max_position = self.config.max_position or position_limit(
            self.config.initial_equity, market.reference_price, market.contract.point_value,
            self.config.leverage_cap)

    def _episode_starts(self, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Valid episode starts in the split, and their deterministic tiling."""
        lo, hi, usable = self.market.split_rows(self.config.split, usable)
        if self.STRATEGIC_CLOCK:
            rows = self._close_step
            ok = (rows >= lo) & (rows < hi) & usable[np.maximum(rows, 0)] & (rows >= 0)
            allowed = None
        else:
            ok = np.zeros(len(usable), dtype=bool)
            ok[lo:hi] = usable[lo:hi]
            allowed = self._is_close if self.STRATEGIC else None
        starts = valid_starts(ok, self.episode_steps, allowed)
        check_enough(starts, self.config.split, self.episode_steps, int(ok.sum()))
        return starts, tile(starts, self.episode_steps)

    def _spaces(self) -> None:
        """Build the (cached, never rebuilt) spaces of every agent."""
        state = spaces.Box(-np.inf, np.inf, (self.config.state_dim,), np.float32)
        self.state_space = state
        self._obs_spaces: dict[str, spaces.Space[Any]] = {}
        self._act_spaces: dict[str, spaces.Space[Any]] = {}
        for agent, table, window, _ in self._views:
            extra = LATENT_DIM if agent == "regime" else 0
            dim = window * table.shape[1] + extra + len(CONTEXT)
            local = spaces.Box(-np.inf, np.inf, (dim,), np.float32)
            self._obs_spaces[agent] = spaces.Dict({"local": local, "state": state})
            self._act_spaces[agent] = action_space(agent)

    @property
    def local_columns(self) -> dict[str, tuple[str, ...]]:
        """Columns of each agent's local window (see layout.AGENT_COLUMNS)."""
        return {agent: AGENT_COLUMNS[agent] for agent in self._team}

    def observation_space(self, agent: str) -> spaces.Space[Any]:
        """The agent's observation space (the same object on every call)."""
        return self._obs_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space[Any]:
        """The agent's action space (the same object on every call)."""
        return self._act_spaces[agent]

    @property
    def account(self) -> Account:
        """The simulated account (positions, equity, fills, trades)."""
        return self._account

    @property
    def n_episodes(self) -> int:
        """Episodes in one deterministic pass over the split."""
        return len(self._tiles)

    # --------------------------------------------------------------- episodes
    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Start an episode: random start on train (unless configured), tiled otherwise.

        ``options={"start": p}`` starts at clock position ``p`` (must be a valid start).
        """
        if seed is not None:
            self.np_random, _ = _seeded(seed)
            self._tile_next = 0
        start = self._pick_start(options or {})
        self._pos, self._end = start, start + self.episode_steps
        self._account.reset()
        self._bias, self._signal = 0.0, 0.0
        self._budget = 0.5 if self.STRATEGIC else 1.0
        self._risk = (0, math.nan, math.nan)
        self._blocked = 0
        self._dyn[:] = 0.0
        self.agents = list(self.possible_agents)
        self._locate()
        obs = self._observe()
        info = self._info()
        return obs, dict.fromkeys(self.agents, info)

    def _pick_start(self, options: Mapping[str, Any]) -> int:
        """The clock position of the next episode's first observation."""
        if "start" in options:
            start = int(options["start"])
            if start not in set(self._starts.tolist()):
                raise ValueError(f"options['start']={start} is not a valid episode start in "
                                 f"split {self.config.split!r}; see env.valid_starts()")
            return start
        random_start = self.config.random_start
        if random_start is None:
            random_start = self.config.split == "train"
        if random_start:
            return int(self._starts[self.np_random.integers(len(self._starts))])
        start = int(self._tiles[self._tile_next % len(self._tiles)])
        self._tile_next += 1
        return start

    def valid_starts(self) -> np.ndarray:
        """Every valid episode start (clock positions) in the split."""
        return self._starts.copy()

    def _locate(self) -> None:
        """Derive the 5-minute row, the 30-minute row and the decision flag of ``_pos``."""
        if self.STRATEGIC_CLOCK:
            self._srow = self._pos
            self._brow = int(self._close_step[self._pos])
            self._decision = True
        else:
            self._brow = self._pos
            self._srow = int(self._sindex[self._pos])
            self._decision = self.STRATEGIC and bool(self._is_close[self._pos])

    # ------------------------------------------------------------------- step
    def step(self, actions: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, float],
                                                         dict[str, bool], dict[str, bool],
                                                         dict[str, Any]]:
        """Apply the agents' actions, advance one bar, and return the PettingZoo 5-tuple."""
        return self.execute(self.decide(actions))

    def decide(self, actions: Mapping[str, Any]) -> int:
        """Latch the agents' actions at the current bar; the target position (contracts).
        The first half of :meth:`step` (the decision engine calls the halves apart: the
        target is known at the bar's close, the next bar fills it)."""
        if not self.agents:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        if self.STRATEGIC and self._decision:
            self._apply_strategic(actions)
        if self.TACTICAL:
            self._apply_tactical(actions)
        return self._target()

    def execute(self, target: int) -> tuple[dict[str, Any], dict[str, float],
                                            dict[str, bool], dict[str, bool], dict[str, Any]]:
        """Trade into ``target`` over the next bar and advance: the second half of :meth:`step`."""
        pnl, dd_growth, price_change = self._advance(target)
        self._pos += 1
        self._locate()
        terminated = self._account.equity < self._ruin
        truncated = self._pos >= self._end
        exit_cost = self._exit_cost() if terminated or truncated else 0.0
        reward_cfg = self.config.reward
        team = (pnl - exit_cost - reward_cfg.drawdown_penalty * dd_growth) / self._scale
        obs = self._observe()
        agents = self.agents
        rewards = dict.fromkeys(agents, team)
        if reward_cfg.shaping:
            self._shape(rewards, dd_growth, price_change)
        terms = dict.fromkeys(agents, terminated)
        truncs = dict.fromkeys(agents, truncated and not terminated)
        infos = dict.fromkeys(agents, self._info(exit_cost))
        if terminated or truncated:
            self.agents = []
        return obs, rewards, terms, truncs, infos

    def _exit_cost(self) -> float:
        """Dollars to close the open position at the episode's end, as the backtest charges
        it at a tile's end (the account is not flattened; see the env cards)."""
        return abs(self._account.position) * self._account.contract.cost_per_side

    def stop_and_target(self) -> tuple[float, float]:
        """Stop and target distances (points) the latched risk settings give at this bar
        (none without a tactical layer or while the strategic layer holds its own part)."""
        if not self.TACTICAL or self._core():
            return math.nan, math.nan
        stop_d = self._risk[1] * float(self._atr[self._brow])
        return stop_d, stop_d * self._risk[2]

    def _apply_strategic(self, actions: Mapping[str, Any]) -> None:
        """Latch the strategic bias and risk budget; record the one-hot actions."""
        self._bias = self._votes(actions, STRATEGIC_AGENTS, STRATEGIC_VOTE, _STRAT_OFF)
        step = RISK_STEP[_action(actions, "portfolio")]
        self._budget = min(1.0, max(0.0, self._budget + step))

    def _votes(self, actions: Mapping[str, Any], agents: tuple[str, ...],
               votes: tuple[float, ...], offset: int) -> float:
        """Mean vote of ``agents``; their one-hot actions go into the state at ``offset``."""
        width = len(votes)
        block = self._dyn[offset:offset + width * len(agents)]
        block[:] = 0.0
        total = 0.0
        for i, agent in enumerate(agents):
            a = _action(actions, agent)
            block[i * width + a] = 1.0
            total += votes[a]
        return total / len(agents)

    def _apply_tactical(self, actions: Mapping[str, Any]) -> None:
        """Set the tactical signal and the risk agent's size, stop and reward:risk."""
        self._signal = self._votes(actions, TACTICAL_VOTERS, TACTICAL_VOTE, _TACT_OFF)
        if "risk" not in actions:
            raise KeyError("no action for agent 'risk'; every live agent must act this step")
        risk = actions["risk"]
        size, stop, rr = risk.tolist() if isinstance(risk, np.ndarray) else map(int, risk)
        self._risk = (RISK_CONTRACTS[size], RISK_STOP_ATR[stop], RISK_REWARD[rr])
        self._dyn[_RISK_OFF:] = (RISK_CONTRACTS[size] / 5.0, RISK_STOP_ATR[stop] / 3.0,
                                 RISK_REWARD[rr] / 5.0)

    def _target(self) -> int:
        """Target position from the latched signals (formula in the env cards)."""
        conviction, size = self._sizing()
        direction = (conviction > 0) - (conviction < 0)
        if self._blocked:
            if direction == self._blocked and not self._core():
                return 0
            self._blocked = 0
        return direction * math.floor(abs(conviction) * size + 0.5)

    def _core(self) -> int:
        """Contracts of the strategic part of a joint_v0 target (0 in the other envs)."""
        both = self.STRATEGIC and self.TACTICAL
        return math.floor(abs(self._bias * self._budget) * self.max_position + 0.5) if both else 0

    def _sizing(self) -> tuple[float, float]:
        """Conviction in [-1, 1] and size (contracts): the layers' positions add, clipped."""
        risk_frac = self._risk[0] / RISK_CONTRACTS[-1]
        if self.STRATEGIC and self.TACTICAL:
            both = self._bias * self._budget + self._signal * risk_frac
            return min(1.0, max(-1.0, both)), float(self.max_position)
        if self.STRATEGIC:
            return self._bias, self._budget * self.max_position
        return self._signal, risk_frac * self.max_position

    def _advance(self, target: int) -> tuple[float, float, float]:
        """Trade into ``target`` over the next bar; P&L, drawdown growth, price change."""
        acct = self._account
        nxt = self._pos + 1
        o, h, low, c = self._ohlc[nxt].tolist()
        prev_close = float(self._ohlc[self._pos, 3])
        stop_d, target_d = self.stop_and_target()
        dd_before = acct.drawdown
        pnl = acct.step(target, o, h, low, c, stop_distance=stop_d, target_distance=target_d,
                        t=nxt)
        if acct.last_exit:
            self._blocked = acct.last_exit_direction
        return pnl, max(0.0, acct.drawdown - dd_before), c - prev_close

    def _shape(self, rewards: dict[str, float], dd_growth: float, price_change: float) -> None:
        """Add the optional per-agent shaping terms (weights from reward.shaping)."""
        full_size = self.market.contract.point_value * self.max_position / self._scale
        votes = {a: STRATEGIC_VOTE[int(np.argmax(self._dyn[_STRAT_OFF + 7 * i:
                                                         _STRAT_OFF + 7 * i + 7]))]
                 for i, a in enumerate(STRATEGIC_AGENTS) if a != "portfolio"}
        votes.update({a: TACTICAL_VOTE[int(np.argmax(self._dyn[_TACT_OFF + 5 * i:
                                                             _TACT_OFF + 5 * i + 5]))]
                      for i, a in enumerate(TACTICAL_VOTERS)})
        for agent, weight in self.config.reward.shaping.items():
            if agent not in rewards:
                continue
            if agent in votes:
                rewards[agent] += weight * votes[agent] * price_change * full_size
            else:
                rewards[agent] -= weight * dd_growth / self._scale

    # ------------------------------------------------------------ observation
    def _observe(self) -> dict[str, dict[str, np.ndarray]]:
        """Every live agent's ``{local, state}`` at the current position."""
        self._fill_dynamic()
        state = np.concatenate((self._mstate[self._brow], self._dyn))
        self._state = state
        ctx = self._ctx
        srow, brow = self._srow, self._brow
        obs = {}
        for agent, table, window, strategic in self._views:
            row = srow if strategic else brow
            window_values = table[row - window + 1:row + 1].reshape(-1)
            if agent == "regime":
                local = np.concatenate((window_values, self._latent[srow], ctx))
            else:
                local = np.concatenate((window_values, ctx))
            obs[agent] = {"local": local, "state": state}
        return obs

    def _fill_dynamic(self) -> None:
        """Write the account and signal blocks of the state and the context."""
        acct = self._account
        pct = 100.0 / self.config.initial_equity
        atr = float(self._atr[self._brow])
        close = float(self._ohlc[self._pos, 3])
        stop, tgt = acct.stop_price, acct.target_price
        values = (
            acct.position / self.max_position, acct.unrealised * pct,
            acct.realised * pct, acct.drawdown * pct, acct.equity / self.config.initial_equity,
            acct.bars_in_trade / 100.0,
            abs(close - stop) / atr if stop == stop else 0.0,
            abs(tgt - close) / atr if tgt == tgt else 0.0,
            self._bias, self._signal, self._budget,
        )
        self._dyn[:_STRAT_OFF] = values
        self._ctx[:_STRAT_OFF] = values
        self._ctx[_STRAT_OFF] = 1.0 if self._decision else 0.0

    def _info(self, exit_cost: float = 0.0) -> dict[str, Any]:
        """Per-step info shared by every agent (``exit_cost``: see the env cards)."""
        acct = self._account
        return {"equity": acct.equity, "position": acct.position, "row": self._brow,
                "clock": self._pos, "strategic_decision": self._decision, "exit_cost": exit_cost}

    def state(self) -> np.ndarray:
        """The global state at the current position (see layout.state_names)."""
        return self._state

    @property
    def decision(self) -> bool:
        """True when the strategic layer decides at the current position."""
        return self._decision

    @property
    def _scale(self) -> float:
        """Dollars per unit of reward."""
        scale = self.config.reward.scale
        return self.market.contract.point_value * self.max_position if scale is None else scale

    @property
    def _ruin(self) -> float:
        """Equity below which the episode terminates."""
        return (1.0 - self.config.ruin_fraction) * self.config.initial_equity

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the config and episode state, not the shared arrays."""
        state = self.__dict__.copy()
        for key in ("market", "_ohlc", "_sindex", "_close_step", "_is_close", "_atr",
                    "_mstate", "_latent", "_views", "_starts", "_tiles"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Re-attach the shared arrays after unpickling."""
        self.__dict__.update(state)
        self._bind(load_market(self.config))


def action_space(agent: str) -> spaces.Space[Any]:
    """The action space of ``agent`` (see the tables in layout)."""
    if agent in STRATEGIC_AGENTS:
        return spaces.Discrete(len(STRATEGIC_ACTIONS))
    if agent == "risk":
        return spaces.MultiDiscrete([len(RISK_CONTRACTS), len(RISK_STOP_ATR), len(RISK_REWARD)])
    return spaces.Discrete(len(TACTICAL_ACTIONS))


def _action(actions: Mapping[str, Any], agent: str) -> int:
    """The integer action of ``agent``, with a clear error if it is missing."""
    try:
        return int(actions[agent])
    except KeyError:
        raise KeyError(f"no action for agent {agent!r}; every agent that decides at this "
                       "step must act") from None


def _seeded(seed: int | None) -> tuple[np.random.Generator, int]:
    """A numpy Generator seeded like gymnasium's ``np_random``."""
    return seeding.np_random(seed)


assert market_state_dim() + _DYN_DIM == 112
