"""N copies of one trading env stepped as one batch (the vectorised env path).

:class:`VectorEnv` steps ``n`` copies of ``strategic_v0``, ``tactical_v0``, ``joint_v0``
or ``single_v0`` together: the accounts (:class:`envs.core.vector_account.AccountBatch`),
the latched signals, the target positions and the observations are arrays over the
copies, so a step costs a fixed number of numpy calls whatever ``n`` is. Each copy is
exactly the env :func:`envs.registry.make_parallel_env` builds: for the same reset seeds
and actions, copy ``i``'s observations, rewards, terminations, truncations and info
equal those of an independent ``TradingEnv`` bit for bit (tests/test_vector_env.py),
episode boundaries, random starts and tiles included.

API (arrays have the copies on axis 0)::

    venv = VectorEnv("joint_v0", 16, data=...)
    obs, info, acting = venv.reset(seed=[0, 1, ...])   # or seed=0: copy i gets 0 + i
    step = venv.step({agent: actions})                 # (n,) ints; risk: (n, 3)
    step.obs[agent]["local"], step.obs[agent]["state"] # (n, dim) float32
    step.rewards[agent], step.terminated[agent], step.truncated[agent]   # (n,)
    step.info["row"], step.info["clock"], ...          # (n,) per copy
    step.acting[agent]                                 # (n,) bool: acts at the next step
    obs, info, acting = venv.reset_done()              # restart the finished copies

A finished copy keeps its final observation in ``step.obs`` until :meth:`reset_done`
restarts it (without reseeding, as ``env.reset()`` would) and returns every copy's
observation, the restarted ones' first ones included. ``acting[agent]`` says which
copies need that agent's action at the next step: in ``joint_v0`` a strategic agent
acts only where a 30-minute bar has just closed (its action is ignored elsewhere, any
valid value will do); every other agent acts at every step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from algospace.config import STRATEGIC_AGENTS
from envs.core.base import _RISK_OFF, _STRAT_OFF, _TACT_OFF, TradingEnv, _seeded
from envs.core.costs import checked_weight, scaled_contract
from envs.core.layout import (
    RISK_CONTRACTS,
    RISK_REWARD,
    RISK_STEP,
    RISK_STOP_ATR,
    SINGLE_AGENT,
    SINGLE_TARGET,
    STRATEGIC_VOTE,
    TACTICAL_VOTE,
    TACTICAL_VOTERS,
)
from envs.core.vector_account import AccountBatch
from envs.core.vector_obs import Index, Observer
from envs.registry import env_class
from envs.single import SingleEnv

Batch = dict[str, np.ndarray]
_VOTE_S, _VOTE_T = np.asarray(STRATEGIC_VOTE), np.asarray(TACTICAL_VOTE)
_RISK_STEP, _SINGLE = np.asarray(RISK_STEP), np.asarray(SINGLE_TARGET)
_CONTRACTS, _STOP_ATR = np.asarray(RISK_CONTRACTS), np.asarray(RISK_STOP_ATR)
_REWARD_RISK = np.asarray(RISK_REWARD)


class VectorStep(NamedTuple):
    """One batched step: per-agent arrays over the copies (see the module docstring)."""

    obs: dict[str, Batch]
    """agent → ``{"local": (n, d), "state": (n, 112)}`` float32."""
    rewards: Batch
    """agent → (n,) float64 rewards."""
    terminated: Batch
    """agent → (n,) bool: the copy's episode ended on ruin."""
    truncated: Batch
    """agent → (n,) bool: the copy's episode reached its last step."""
    info: Batch
    """``equity``, ``position``, ``row``, ``clock``, ``strategic_decision``, ``exit_cost``:
    (n,) arrays, one value per copy (the scalar env's info, shared by its agents)."""
    acting: Batch
    """agent → (n,) bool: the copies that need this agent's action at the next step."""


class VectorEnv:
    """``n`` copies of the registered env ``name`` stepped as one batch."""

    def __init__(self, name: str, n: int, config: Any = None, **kwargs: Any) -> None:
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise ValueError(f"VectorEnv: n (the number of env copies) must be an integer "
                             f">= 1, got {n!r}; pass e.g. n=16")
        env: TradingEnv = env_class(name)(config, **kwargs)
        self.name, self.n, self.env = name, int(n), env
        self.config = env.config
        self.possible_agents: list[str] = list(env.possible_agents)
        self._single = isinstance(env, SingleEnv)
        self._strategic, self._tactical = env.STRATEGIC, env.TACTICAL
        self._clock = env.STRATEGIC_CLOCK
        self._max = int(env.max_position)
        self._scale, self._ruin = env._scale, env._ruin
        self._cost = float(env.market.contract.cost_per_side)
        self._pv = float(env.market.contract.point_value)
        self._ohlc, self._atr = env._ohlc, env._atr
        self._sindex, self._close_step, self._is_close = (env._sindex, env._close_step,
                                                          env._is_close)
        self._starts, self._tiles = env._starts, env._tiles
        arrays = {k: np.asarray(v).view(np.ndarray) for k, v in env.market.arrays.items()}
        self._observer = Observer(env._views, arrays, self._ohlc, self._max,
                                  self.config.initial_equity)
        self.account = AccountBatch(env.market.contract, self.n, max_position=self._max,
                                    initial_equity=self.config.initial_equity)
        self._highs = {a: _high(env.action_space(a)) for a in self.possible_agents}
        self._flat_high = np.concatenate([np.broadcast_to(h, (self.n, *h.shape)).reshape(-1)
                                          for h in self._highs.values()]).astype(np.uint64)
        self._all = np.arange(self.n)
        self._rngs = [_seeded(None)[0] for _ in range(self.n)]
        self._tile_next = [0] * self.n
        self._init_state()

    def _init_state(self) -> None:
        """Per-copy episode state, all copies finished (reset() starts them)."""
        n = self.n
        self._pos = np.zeros(n, np.int64)
        self._end = np.zeros(n, np.int64)
        self._brow = np.zeros(n, np.int64)
        self._srow = np.zeros(n, np.int64)
        self._decision = np.zeros(n, bool)
        self._bias, self._signal, self._budget = np.zeros(n), np.zeros(n), np.zeros(n)
        self._risk_n = np.zeros(n, np.int64)
        self._risk_stop, self._risk_rr = np.full(n, np.nan), np.full(n, np.nan)
        self._blocked = np.zeros(n, np.int64)
        self._dyn = np.zeros((n, self.env._dyn.shape[0]), np.float32)
        self._ctx = np.zeros((n, self.env._ctx.shape[0]), np.float32)
        self._votes = {a: np.zeros(n) for a in (*STRATEGIC_AGENTS, *TACTICAL_VOTERS)}
        self._done = np.ones(n, bool)
        self._obs: dict[str, Batch] = {}

    # ----------------------------------------------------------------- spaces
    def observation_space(self, agent: str) -> Any:
        """One copy's observation space of ``agent`` (the scalar env's)."""
        return self.env.observation_space(agent)

    def action_space(self, agent: str) -> Any:
        """One copy's action space of ``agent`` (the scalar env's)."""
        return self.env.action_space(agent)

    @property
    def done(self) -> np.ndarray:
        """(n,) bool: the copies whose episode has ended (reset_done() restarts them)."""
        return self._done.copy()

    def rng_state(self, i: int) -> dict[str, Any]:
        """Copy ``i``'s random state (its start generator and tile position)."""
        return {"np_random": self._rngs[i].bit_generator.state,
                "tile_next": self._tile_next[i]}

    def set_rng_state(self, i: int, state: dict[str, Any]) -> None:
        """Put back what :meth:`rng_state` returned for copy ``i``."""
        self._rngs[i].bit_generator.state = state["np_random"]
        self._tile_next[i] = int(state.get("tile_next", 0))

    def set_cost_weight(self, weight: float) -> None:
        """Charge ``weight`` × the contract's commission and slippage in every copy from now
        on, exit costs included (as :func:`envs.core.costs.set_env_cost_weight`; the vector
        sampler calls it before each reset)."""
        contract = scaled_contract(self.env.market.contract, checked_weight(weight))
        self.account.set_costs(contract)
        self._cost = float(contract.cost_per_side)

    # --------------------------------------------------------------- episodes
    def reset(self, seed: int | Sequence[int] | None = None
              ) -> tuple[dict[str, Batch], Batch, Batch]:
        """Start an episode in every copy; observations, info and acting masks.

        ``seed``: None (no reseeding), one int (copy ``i`` gets ``seed + i``) or one seed
        per copy; a copy seeded ``s`` starts where ``env.reset(seed=s)`` would.
        """
        if seed is not None:
            seeds = self._seeds(seed)
            for i, s in enumerate(seeds):
                self._rngs[i] = _seeded(s)[0]
                self._tile_next[i] = 0
        self._done[:] = True
        return self.reset_done()

    def _seeds(self, seed: int | Sequence[int]) -> list[int]:
        """One seed per copy from ``seed`` (see :meth:`reset`)."""
        if isinstance(seed, int | np.integer) and not isinstance(seed, bool):
            return [int(seed) + i for i in range(self.n)]
        seeds = [int(s) for s in seed]  # type: ignore[union-attr]
        if len(seeds) != self.n:
            raise ValueError(f"VectorEnv.reset: got {len(seeds)} seeds for {self.n} copies; "
                             "pass one seed per copy, one int, or None")
        return seeds

    def reset_done(self) -> tuple[dict[str, Batch], Batch, Batch]:
        """Restart the finished copies (no reseeding); every copy's observation, info and
        acting mask, the restarted copies' first ones included."""
        idx = np.flatnonzero(self._done)
        if idx.size:
            starts = np.array([self._pick_start(int(i)) for i in idx], np.int64)
            self._start(idx, starts)
            self._locate(idx)
            fresh = self._observe(idx)
            if len(idx) == self.n:
                self._obs = fresh
            else:
                self._obs = {a: {k: v.copy() for k, v in parts.items()}
                             for a, parts in self._obs.items()}
                for agent, parts in fresh.items():
                    for key, values in parts.items():
                        self._obs[agent][key][idx] = values
            self._done[idx] = False
        obs = {a: dict(parts) for a, parts in self._obs.items()}
        return obs, self._info(np.zeros(self.n)), self._acting()

    def _pick_start(self, i: int) -> int:
        """Copy ``i``'s next start: as TradingEnv._pick_start with no options."""
        random_start = self.config.random_start
        if random_start is None:
            random_start = self.config.split == "train"
        if random_start:
            return int(self._starts[self._rngs[i].integers(len(self._starts))])
        start = int(self._tiles[self._tile_next[i] % len(self._tiles)])
        self._tile_next[i] += 1
        return start

    def _start(self, idx: np.ndarray, starts: np.ndarray) -> None:
        """The reset state of copies ``idx`` (as TradingEnv.reset)."""
        self._pos[idx] = starts
        self._end[idx] = starts + self.env.episode_steps
        self.account.reset(idx)
        self._bias[idx] = 0.0
        self._signal[idx] = 0.0
        self._budget[idx] = 0.5 if self._strategic else 1.0
        self._risk_n[idx] = 0
        self._risk_stop[idx] = np.nan
        self._risk_rr[idx] = np.nan
        self._blocked[idx] = 0
        self._dyn[idx] = 0.0
        for votes in self._votes.values():
            votes[idx] = 0.0

    def _locate(self, idx: Index) -> None:
        """The 5-minute row, 30-minute row and decision flag of the copies' positions."""
        pos = self._pos[idx]
        if self._clock:
            self._srow[idx] = pos
            self._brow[idx] = self._close_step[pos]
            self._decision[idx] = True
        else:
            self._brow[idx] = pos
            self._srow[idx] = self._sindex[pos]
            self._decision[idx] = self._is_close[pos] if self._strategic else False

    # ------------------------------------------------------------------- step
    def step(self, actions: Mapping[str, Any]) -> VectorStep:
        """Apply every copy's actions, advance one bar, and return the batch."""
        return self.execute(self.decide(actions))

    def decide(self, actions: Mapping[str, Any]) -> np.ndarray:
        """Latch every copy's actions; the (n,) target positions (contracts)."""
        if self._done.any():
            raise RuntimeError(f"VectorEnv.step: copies {np.flatnonzero(self._done).tolist()} "
                               "have finished their episode; call reset_done() first")
        actions = self._checked(actions)
        if self._single:
            fraction = _SINGLE[actions[SINGLE_AGENT]]
            self._bias = self._signal = fraction
            return self._target()
        if self._strategic and self._decision.any():
            self._apply_strategic(actions)
        if self._tactical:
            self._apply_tactical(actions)
        return self._target()

    def _checked(self, actions: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Every agent's actions as integer arrays, checked against the spaces at once."""
        out = {}
        for agent, high in self._highs.items():
            if agent not in actions:
                raise KeyError(f"no actions for agent {agent!r}; pass an array of one action "
                               f"per copy ({self.n}) for every agent")
            a = np.asarray(actions[agent])
            if a.shape != (self.n, *high.shape) or a.dtype.kind not in "iu":
                raise ValueError(f"actions[{agent!r}] must be integers of shape "
                                 f"{(self.n, *high.shape)}, got {a.dtype} {a.shape}")
            out[agent] = a
        flat = np.concatenate([a.reshape(-1) for a in out.values()])
        if (flat.astype(np.uint64) >= self._flat_high).any():  # negatives wrap to huge
            for agent, a in out.items():
                if a.min() < 0 or (a >= self._highs[agent]).any():
                    raise ValueError(f"actions[{agent!r}] out of range: every value must "
                                     f"be in [0, {self._highs[agent].tolist()}) per column")
        return out

    def _mean_vote(self, actions: Mapping[str, Any], agents: tuple[str, ...],
                   table: np.ndarray, offset: int, rows: np.ndarray | None) -> np.ndarray:
        """Mean vote of ``agents`` for copies ``rows`` (None: all); their one-hot actions
        into the state."""
        width = len(table)
        at = self._all if rows is None else rows
        if rows is None:
            self._dyn[:, offset:offset + width * len(agents)] = 0.0
        else:
            self._dyn[rows, offset:offset + width * len(agents)] = 0.0
        total = np.zeros(len(at))
        for i, agent in enumerate(agents):
            a = actions[agent]
            if rows is None:
                vote = self._votes[agent] = table[a]
            else:
                a = a[rows]
                vote = table[a]
                self._votes[agent][rows] = vote
            self._dyn[at, offset + i * width + a] = 1.0
            total = total + vote
        return total / len(agents)

    def _apply_strategic(self, actions: Mapping[str, Any]) -> None:
        """Latch bias and risk budget in the copies that decide at this bar."""
        rows = None if self._clock else np.flatnonzero(self._decision)
        at = self._all if rows is None else rows
        self._bias[at] = self._mean_vote(actions, STRATEGIC_AGENTS, _VOTE_S, _STRAT_OFF, rows)
        step = _RISK_STEP[actions["portfolio"][at]]
        self._budget[at] = np.minimum(1.0, np.maximum(0.0, self._budget[at] + step))

    def _apply_tactical(self, actions: Mapping[str, Any]) -> None:
        """Set the tactical signal and the risk agent's size, stop and reward:risk."""
        self._signal = self._mean_vote(actions, TACTICAL_VOTERS, _VOTE_T, _TACT_OFF, None)
        risk = actions["risk"]
        self._risk_n = _CONTRACTS[risk[:, 0]]
        self._risk_stop = _STOP_ATR[risk[:, 1]]
        self._risk_rr = _REWARD_RISK[risk[:, 2]]
        dyn = self._dyn
        dyn[:, _RISK_OFF] = self._risk_n / 5.0
        dyn[:, _RISK_OFF + 1] = self._risk_stop / 3.0
        dyn[:, _RISK_OFF + 2] = self._risk_rr / 5.0

    def _target(self) -> np.ndarray:
        """Target positions from the latched signals (as TradingEnv._target)."""
        size: float | np.ndarray
        if self._single:
            conviction, size = self._bias, float(self._max)
        elif self._strategic and self._tactical:
            both = self._bias * self._budget + self._signal * (self._risk_n / RISK_CONTRACTS[-1])
            conviction, size = np.clip(both, -1.0, 1.0), float(self._max)
        elif self._strategic:
            conviction, size = self._bias, self._budget * self._max
        else:
            conviction, size = self._signal, self._risk_n * self._max / RISK_CONTRACTS[-1]
        direction = np.sign(conviction).astype(np.int64)
        target = direction * np.floor(np.abs(conviction) * size + 0.5).astype(np.int64)
        if not self._blocked.any():
            return target
        # still pointing where the bracket exit was, with no strategic part of its own
        same = (direction == self._blocked) & (self._core() == 0)
        self._blocked = np.where(same, self._blocked, 0)
        return np.where(same, 0, target)

    def _core(self) -> np.ndarray:
        """Contracts of the strategic layer's own part (joint_v0; 0 elsewhere)."""
        if not (self._strategic and self._tactical) or self._single:
            return np.zeros(self.n)
        return np.floor(np.abs(self._bias * self._budget) * self._max + 0.5)

    def execute(self, target: np.ndarray) -> VectorStep:
        """Trade into ``target`` over the next bar and advance every copy."""
        pnl, dd_growth, price_change = self._advance(np.asarray(target, np.int64))
        self._pos = self._pos + 1
        self._locate(slice(None))
        terminated = self.account.equity < self._ruin
        ended = terminated | (self._pos >= self._end)
        exit_cost = np.where(ended, np.abs(self.account.position) * self._cost, 0.0)
        penalty = self.config.reward.drawdown_penalty
        team = (pnl - exit_cost - penalty * dd_growth) / self._scale
        self._obs = self._observe(slice(None))
        agents = self.possible_agents
        rewards = dict.fromkeys(agents, team)
        if self.config.reward.shaping:
            self._shape(rewards, dd_growth, price_change)
        truncated = ended & ~terminated
        self._done = ended
        return VectorStep({a: dict(parts) for a, parts in self._obs.items()}, rewards,
                          dict.fromkeys(agents, terminated), dict.fromkeys(agents, truncated),
                          self._info(exit_cost), self._acting())

    def _advance(self, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Trade every copy into ``target``; P&L, drawdown growth, price change."""
        acct = self.account
        bar = self._ohlc[self._pos + 1]
        prev_close = self._ohlc[self._pos, 3]
        if self._tactical and not self._single:
            stop_d = np.where(self._core() > 0, np.nan, self._risk_stop * self._atr[self._brow])
            target_d = stop_d * self._risk_rr
        else:
            stop_d = target_d = np.full(self.n, np.nan)
        dd_before = acct.drawdown
        c = bar[:, 3]
        pnl = acct.step(target, bar[:, 0], bar[:, 1], bar[:, 2], c, stop_d, target_d)
        exited = acct.last_exit_direction
        self._blocked = np.where(exited != 0, exited, self._blocked)
        growth = acct.drawdown - dd_before
        return pnl, np.where(growth > 0.0, growth, 0.0), c - prev_close

    def _shape(self, rewards: Batch, dd_growth: np.ndarray, price_change: np.ndarray) -> None:
        """The optional per-agent shaping terms (as TradingEnv._shape)."""
        full_size = self._pv * self._max / self._scale
        for agent, weight in self.config.reward.shaping.items():
            if agent not in rewards:
                continue
            if agent in self._votes and agent != "portfolio":
                rewards[agent] = (rewards[agent]
                                  + weight * self._votes[agent] * price_change * full_size)
            else:
                rewards[agent] = rewards[agent] - weight * dd_growth / self._scale

    # ------------------------------------------------------------ observation
    def _observe(self, idx: Index) -> dict[str, Batch]:
        """Every agent's ``{local, state}`` for the copies ``idx``."""
        pos, brow, srow = self._pos[idx], self._brow[idx], self._srow[idx]
        if self._single:
            self._budget[idx] = 1.0
        signals = (self._bias[idx], self._signal[idx], self._budget[idx])
        values = self._observer.dynamic(self.account, idx, pos, brow, signals)
        locals_, state = self._observer.observe(self._dyn, self._ctx, values,
                                                self._decision[idx], brow, srow, idx,
                                                joined=self._single)
        if self._single:  # the team's locals side by side, in sorted agent order
            return {SINGLE_AGENT: {"local": locals_[""], "state": state}}
        return {a: {"local": locals_[a], "state": state} for a in self.possible_agents}

    def _info(self, exit_cost: np.ndarray) -> Batch:
        """Per-copy info (copies: later steps and resets do not change it)."""
        return {"equity": self.account.equity.copy(), "position": self.account.position.copy(),
                "row": self._brow.copy(), "clock": self._pos.copy(),
                "strategic_decision": self._decision.copy(), "exit_cost": exit_cost}

    def _acting(self) -> Batch:
        """agent → the copies that need its action at the next step."""
        everyone = np.ones(self.n, bool)
        strategic_only = self._strategic and not self._clock and not self._single
        return {a: (self._decision.copy() if strategic_only and a in STRATEGIC_AGENTS
                    else everyone) for a in self.possible_agents}


def _high(space: Any) -> np.ndarray:
    """The exclusive upper bound of a Discrete (scalar) or MultiDiscrete (per column) space."""
    nvec = getattr(space, "nvec", None)
    return np.asarray(nvec if nvec is not None else space.n)
