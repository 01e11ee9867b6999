"""The decision engine: a trained team deciding on each new bar, as in the backtest.

:class:`DecisionEngine` is fed 5-minute bars one at a time
(:meth:`~DecisionEngine.on_bar`) and answers, at each bar's close, the team's
decision for the next bar: target position, the order to send, stop and
target distances, every agent's action and confidence, the 15 MC-dropout
features and both gates (:mod:`algospace.inference.gates`). It needs no Ray:
the actors' weights (read from the checkpoint's modules or their TorchScript
export) run in NumPy (:mod:`algospace.inference.kernel`).

**The same decision as the backtest.** The engine runs the env's own code
(:class:`envs.core.base.TradingEnv`) on arrays that hold only the bars received so far
(:class:`algospace.inference.stream.MarketStream`): ``decide`` gives the target at a bar's
close, ``execute`` fills it on the next bar. Sessions follow the backtest's tiles: a
session of ``episode_steps`` clock steps starts flat (a fresh account, the env's reset
risk budget) at the first tradeable step on or after ``start``; at its last step the
position is closed at that bar's close, exit costs charged, and the next session starts
at the first tradeable step from there. The sessions chain into one account with the
backtest's ruin stop (:class:`algospace.inference.live.LiveAccount`); the risk limits
(:mod:`algospace.market.limits`) act on each target before it goes out. With
``gates.enforce`` off, the same start and the same limits, the engine's positions, equity
and trades are those of :func:`algospace.evaluation.backtest.backtest` (tested).

**Where the two differ by design: holes in the data.** When a step's data is broken
(features undefined after missing bars, or a 30-minute bar that closed together with the
next one after an outage), the engine ends the session there, flat, and starts the next
one at the first good step after the session's planned end. The backtest instead picks
its tiles knowing where the data is complete, so it never starts a tile that would run
into a hole; from a hole on, its tiles and the engine's sessions fall at different bars.

**Bars in, and why no decision.** Bars come as :func:`algospace.data.loader.load_bars`
gives them; after each, :attr:`~DecisionEngine.last_reason` says why it decided or not.

**Determinism.** Actions are greedy (argmax of the dropout-off logits). The
MC passes of a decision draw their dropout masks from a generator seeded with
``(seed, clock step)`` (:class:`algospace.inference.mc.McKernel`; torch's global
generator is not touched), so a replay gives the same gates every time.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from algospace.config import EnvConfig
from algospace.data.bars import Bars
from algospace.data.calendar import trading_day_of
from algospace.errors import ConfigError
from algospace.inference.decision import Decision, Reason, Replay, decided_reason
from algospace.inference.gates import GateConfig
from algospace.inference.live import LiveAccount
from algospace.inference.policy import Actor, GatedTeam, TeamPolicy, gate_counts
from algospace.inference.stream import (
    MarketStream,
    RegimeEncoder,
    bar_frame,
    bar_values,
    stream_env,
)
from algospace.market.limits import RiskGuard, RiskLimits
from algospace.market.sizing import contract_of
from envs.core.data import MarketArrays
from envs.registry import env_class

__all__ = ["Decision", "DecisionEngine", "EngineConfig", "Reason", "Replay"]


@dataclass(frozen=True)
class EngineConfig:
    """Decision-time settings."""

    mc_passes: int = 50
    """Dropout passes per decision for the MC features and gate 2 (0: none, gate 2 shut)."""
    gates: GateConfig = field(default_factory=GateConfig)
    """Two-gate settings."""
    seed: int = 0
    """Seeds the MC passes' dropout masks (with the clock step); >= 0."""
    threads: int = 1
    """Torch CPU threads while deciding (set per bar, restored after). The networks are
    tiny: one thread is fastest, and a second thread made a 4-pass step 20 times slower on
    a busy 2-core machine."""
    limits: RiskLimits = field(default_factory=RiskLimits)
    """Maximum daily loss, maximum position and kill switch, applied to every target
    before it goes out (:mod:`algospace.market.limits`)."""

    def __post_init__(self) -> None:
        if self.mc_passes < 0:
            raise ConfigError(f"mc_passes must be >= 0, got {self.mc_passes!r}")
        if self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads!r}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed!r}")


class DecisionEngine:
    """Bars in, one decision per bar out (see the module docstring)."""

    def __init__(self, env_name: str, env_config: EnvConfig, actors: Mapping[str, Actor],
                 meta: Mapping[str, Any], *, regime: RegimeEncoder | None = None,
                 config: EngineConfig | None = None, start: Any = None) -> None:
        if env_config.regime_latent and regime is None:
            raise ConfigError("the agents read the regime latent (env.regime_latent) but no "
                              "regime detector was given")
        self.env_name = env_name
        self.env_config = replace(env_config, random_start=False)
        self.config = config or EngineConfig()
        self.actors = dict(actors)
        self.stream = MarketStream(meta, atr_bars=env_config.atr_bars,
                                   regime=regime if env_config.regime_latent else None,
                                   contract=contract_of(dict(meta), env_config)[0])
        self.start = start
        self.env: Any = None
        self._strategic_clock = bool(env_class(env_name).STRATEGIC_CLOCK)
        self.team = GatedTeam(self.actors, mc_passes=self.config.mc_passes,
                              gates=self.config.gates, seed=self.config.seed)
        self._in_session = False
        self._next_start = 0
        self._pending = 0
        self._obs: Any = None
        self._cost_per_contract = 0.0
        self.decisions: list[Decision] = []
        self.live = LiveAccount(env_config.initial_equity, env_config.ruin_fraction)
        """The sessions chained into one account, with the backtest's ruin stop."""
        self.guard = RiskGuard(self.config.limits, env_config.initial_equity)
        """The risk limits, applied to each target before it goes out."""
        self.stopped = False
        """True once the kill switch stopped the engine (it takes no more bars)."""
        self._streamed = 0
        self._stream_seconds = 0.0
        self._decision_ns: list[int] = []
        self._first_usable: int | None = None
        self.last_reason = Reason("warming_up", "warming up: no bar received yet")
        """Why the last :meth:`on_bar` gave a decision or none (see :data:`REASONS
        <algospace.inference.decision.REASONS>`)."""

    # ---------------------------------------------------------------- loading
    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, *, config: EngineConfig | None = None,
                        start: Any = None, exported: str | Path | None = None,
                        log: Any = None) -> DecisionEngine:
        """An engine for the actors of a training checkpoint (any phase's).

        The env, its settings and the data the agents were trained on come from the
        checkpoint's ``algospace_run.json``; the normalisation from that data's prepared
        entry; the regime detector (when the agents read its latent) from the checkpoint
        the prepared data records for the run's detector (``env.regime_detector``).
        ``exported``: a folder written by :func:`algospace.inference.export.export_actors`
        to run instead of the eager actors.
        """
        from algospace.inference.bundle import checkpoint_parts

        env, env_cfg, actors, meta, regime = checkpoint_parts(checkpoint, exported, log)
        return cls(env, env_cfg, actors, meta, regime=regime, config=config, start=start)

    @classmethod
    def from_export(cls, folder: str | Path, *, config: EngineConfig | None = None,
                    start: Any = None) -> DecisionEngine:
        """An engine for an export folder written by :meth:`export` (or ``algospace decide
        CHECKPOINT --export DIR``): no RLlib checkpoint, prepared data or Ray needed."""
        from algospace.inference.bundle import read_bundle

        b = read_bundle(folder)
        return cls(b.env, b.env_config, b.actors, b.meta, regime=b.regime, config=config,
                   start=start)

    def export(self, folder: str | Path, *, overwrite: bool = False) -> Path:
        """Write this engine's actors (TorchScript, checked) with everything else it needs
        (env, its settings, the data's normalisation, the regime detector) to ``folder``,
        for :meth:`from_export`."""
        from algospace.inference.bundle import write_bundle

        return write_bundle(folder, env=self.env_name, env_config=self.env_config,
                            meta=self.stream.meta, actors=self.actors,
                            regime=self.stream.regime, overwrite=overwrite)

    @property
    def start(self) -> pd.Timestamp | None:
        """First bar a session may start on (None: the first tradeable one); set it before
        the first :meth:`on_bar`. Earlier bars are history."""
        return self._start

    @start.setter
    def start(self, value: Any) -> None:
        self._start = None if value is None else pd.Timestamp(value)

    @property
    def policy(self) -> TeamPolicy | None:
        """The team policy (built on the first bar)."""
        return self.team.policy

    # ------------------------------------------------------------------ bars
    def warm_up(self, history: Bars | pd.DataFrame) -> None:
        """Load history in bulk (bars before ``start``): no features or decisions per bar.

        ``history``: bars as :func:`algospace.data.loader.load_bars` gives them, its
        :class:`~algospace.data.bars.Bars` or that ``frame`` (index: open times; columns
        ``open, high, low, close, volume``); anything else is a :class:`DataError`.
        """
        self.stream.extend(bar_frame(history))
        self.last_reason = self._warming() if len(self.stream) else self.last_reason

    def on_bar(self, open_time: Any, *bar: Any) -> Decision | None:
        """Take one 5-minute bar; the decision at its close, or None: :attr:`last_reason`
        says why.

        ``on_bar(open_time, open, high, low, close, volume)``, or ``on_bar(open_time, row)``
        with a row of the loader's frame (``for open_time, row in frame.iterrows()``).
        """
        values = bar_values(open_time, bar)
        if self.stopped or self.check_kill():
            return None
        began = time.perf_counter()
        threads = torch.get_num_threads()
        torch.set_num_threads(self.config.threads)
        try:
            decision = self._on_bar(open_time, *values)
        finally:
            torch.set_num_threads(threads)
        self._streamed += 1
        self._stream_seconds += time.perf_counter() - began
        return decision

    def _on_bar(self, open_time: Any, open_: float, high: float, low: float, close: float,
                volume: float) -> Decision | None:
        rows_before = self.stream.n_strategic
        closed = self.stream.add(open_time, open_, high, low, close, volume)
        if self.stream.n_strategic == 0:
            self.last_reason = self._warming()
            return None
        if self._strategic_clock and not closed and self.env is not None:
            # nothing reads the arrays between 30-minute closes: the next update, over every
            # bar received, derives this bar's rows too
            self.last_reason = self._warming() if self._warming_up() else Reason(
                "not_a_decision_bar", "not a decision bar: the agents decide at 30-minute "
                f"closes; the next is at {self.stream.next_close}")
            return None
        self._bind(self.stream.update())
        decision = None
        if self._strategic_clock:
            self.last_reason = self._warming()  # replaced by the clock steps' reasons
            for p in range(rows_before, self.stream.n_strategic) if closed else ():
                decision = self._clock_step(p)
        else:
            decision = self._clock_step(len(self.stream) - 1)
        return decision

    def check_kill(self) -> bool:
        """True (and the engine stopped, its target 0) when the kill file exists; call it
        between bars too, to stop without waiting for one."""
        if not self.stopped and self.guard.killed():
            self.stopped = True
            self._pending = 0
            self.last_reason = Reason("kill_switch", f"stopped: the kill file "
                                      f"{self.config.limits.kill_file} exists; target 0 "
                                      "(flatten), no more decisions")
        return self.stopped

    def run(self, bars: pd.DataFrame, progress: Any = None) -> Replay:
        """Replay ``bars`` (indexed by open time): warm up before ``start``, then stream."""
        if self.start is not None:
            self.warm_up(bars[bars.index < self.start])
            bars = bars[bars.index >= self.start]
        values = bars[["open", "high", "low", "close", "volume"]].to_numpy(np.float64)
        n = len(values)
        for i, (when, row) in enumerate(zip(bars.index, values, strict=True)):
            self.on_bar(when, *row)
            if self.stopped:
                break
            if progress is not None and (i + 1) % max(1, n // 10) == 0:
                progress(f"[decide] {i + 1:,}/{n:,} bars, {len(self.decisions):,} decisions, "
                         f"{self.seconds_per_bar * 1e3:.1f} ms/bar")
        return self.replay()

    @property
    def bars_streamed(self) -> int:
        """Bars taken by :meth:`on_bar` so far (not counting :meth:`warm_up`'s)."""
        return self._streamed

    @property
    def seconds_per_bar(self) -> float:
        """Mean wall time per streamed bar so far."""
        return self._stream_seconds / max(1, self._streamed)

    # ------------------------------------------------------------- internals
    def _bind(self, market: MarketArrays) -> None:
        """Point the env at the stream's latest arrays (made on the first bar)."""
        if self.env is None:
            self.env = stream_env(self.env_name, self.env_config, market)
            self.team.bind(self.env)
            self._cost_per_contract = float(market.contract.cost_per_side)
            return
        self.env._bind(market)

    def _base_row(self, p: int) -> int:
        """The 5-minute row of clock step ``p``."""
        return int(self.env._close_step[p]) if self.env.STRATEGIC_CLOCK else p

    def _usable(self, p: int) -> bool:
        """Whether clock step ``p`` has complete data (a 30-minute bar that closed together
        with a later one, after missing bars, is never observed on its own: not usable)."""
        row = self._base_row(p)
        return row >= 0 and bool(self.env.market["usable"][row])

    def _before_start(self, p: int) -> bool:
        """Whether clock step ``p``'s bar opened before ``start`` (history only)."""
        row = self._base_row(p)
        return row < 0 or (self.start is not None and self.stream.open_time(row) < self.start)

    def _tradeable(self, p: int) -> bool:
        """Whether a session may start at clock step ``p``."""
        if self._before_start(p) or p < self._next_start or not self._usable(p):
            return False
        return self.env.STRATEGIC_CLOCK or not self.env.STRATEGIC or \
            bool(self.env._is_close[p])

    def _clock_step(self, p: int) -> Decision | None:
        """Fill the pending target on the new bar, end/start sessions, decide at ``p``."""
        env = self.env
        closed = 0
        if self._in_session:
            self._obs, _, _, _, _ = env.execute(self._pending)
            self.live.executed(p, env.account)
            if env.agents and not self._usable(p):
                env.agents = []  # data broken mid-session: end it here (see the docstring)
            if not env.agents:
                closed = self._end_session()
        if not self._in_session and self._tradeable(p):
            self._obs, _ = env.reset(options={"start": p})
            self._in_session = True
            self.live.start(env.account)
            self._next_start = p + env.episode_steps
            self.team.reset()
        if not self._in_session:
            self.last_reason = self._why_not(p)
            return None
        return self._decide(p, closed)

    def _warming_up(self) -> bool:
        """True until the stream has a step with every feature defined."""
        if self._first_usable is None and self.env is not None:
            usable = np.flatnonzero(self.env.market["usable"])
            self._first_usable = int(usable[0]) if usable.size else None
        return self._first_usable is None

    def _warming(self) -> Reason:
        """The warming-up reason, with the history received so far."""
        n, s = len(self.stream), self.stream.n_strategic
        return Reason("warming_up", f"warming up: {n:,} bars ({s:,} of 30 minutes) received, "
                                    "the features are not all defined yet (they need about "
                                    "two weeks of history)")

    def _why_not(self, p: int) -> Reason:
        """Why no session runs at clock step ``p``."""
        if self._before_start(p):
            return Reason("before_start", f"before the start ({self.start}): history only")
        if not self._usable(p):
            return self._warming() if self._warming_up() else Reason(
                "data_hole", "the features are undefined at this bar (missing bars before "
                             "it); trading resumes at the first complete step")
        if p < self._next_start:
            return Reason("between_sessions", "the last session ended early at a data hole; "
                          f"the next may start in {self._next_start - p} clock steps")
        return Reason("waiting_for_close", "no session yet: one starts only at a 30-minute "
                                           f"close (the next is at {self.stream.next_close})")

    def _end_session(self) -> int:
        """Close the session's position at this bar's close (costs charged, as the backtest)."""
        self._in_session = False
        return self.live.end(self.env.account, self._cost_per_contract)

    def _decide(self, p: int, closed: int) -> Decision:
        """The decision at clock step ``p`` (the env's current position)."""
        env = self.env
        team = self.team
        began = time.perf_counter_ns()
        row = self._base_row(p)
        gates = team.decide(env, self._obs, p,
                            synergy_direction=float(env.market["synergy_direction"][row]),
                            initial_equity=self.env_config.initial_equity)
        target, limit = self.guard.apply(gates.target, equity=self.live.chained,
                                         day=trading_day_of(self.stream.open_time(row)))
        if env.account.ruined and target:  # the account trades nothing more: say so
            target, limit = 0, "ruin"
        self._pending = target
        self.last_reason = decided_reason(gates, target, limit)
        if limit == "kill_switch":
            self.check_kill()
        acct = env.account
        self._decision_ns.append(time.perf_counter_ns() - began)
        stop_d, target_d = env.stop_and_target()
        decision = Decision(
            time=self._close_time(p), clock=p, session=self.live.session,
            strategic_decision=bool(env.decision), position=int(acct.position),
            target=target, wanted=gates.wanted, limit=limit, stop_distance=stop_d,
            target_distance=target_d, close=float(env._ohlc[p, 3]), equity=float(acct.equity),
            actions={a: (v.tolist() if isinstance(v, np.ndarray) else int(v))
                     for a, v in team.actions.items()},
            confidence=dict(team.confidence), mc=team.mc_features(), gates=gates,
            closed_at_session_end=closed)
        self.decisions.append(decision)
        return decision

    def _close_time(self, p: int) -> pd.Timestamp:
        """Close time of clock bar ``p``."""
        strategic = bool(self.env.STRATEGIC_CLOCK)
        minutes = self.stream.strategic_minutes if strategic else self.stream.bar_minutes
        return self.stream.open_time(p, strategic=strategic) + pd.Timedelta(minutes=minutes)

    # -------------------------------------------------------------- results
    def replay(self) -> Replay:
        """The decision log, equity, positions and trades so far."""
        if self.env is None:
            raise ConfigError("no bar has been streamed yet")
        times = (self.stream.strategic_bars() if self.env.STRATEGIC_CLOCK
                 else self.stream.bars()).open_time
        live = self.live
        index = pd.DatetimeIndex(times[np.asarray(live.rows, dtype=np.int64)],
                                 name="open_time")
        log = pd.DataFrame([d.row() for d in self.decisions])
        counts = gate_counts(d.gates for d in self.decisions)
        return Replay(log, live.equity(index), np.asarray(live.held, dtype=np.int64),
                      live.all_trades(self.env.account if self._in_session else None),
                      counts, live.session + 1, self.seconds_per_bar,
                      np.asarray(self._decision_ns, dtype=np.float64) / 1e3)
