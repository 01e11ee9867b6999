"""Backtest a policy on one split of an env, with baselines and the oracle on the same bars.

:func:`backtest` runs a :data:`Policy` over every episode tile of the split —
the same consecutive, non-overlapping tiles the env visits with
``random_start=False`` — so the agents see exactly the kind of episode they
were trained on (each tile starts flat, with a fresh account and risk budget).
The per-bar profit and loss of the tiles is chained into one equity curve
starting at ``initial_equity``:

- the curve has one point per executed bar (bar ``p + 1`` for the decision
  at position ``p``), indexed by that bar's open time;
- a position still open at the end of a tile is closed there at the tile's
  last close, and the exit's commission and slippage are charged (the next
  tile starts flat), so tiling never trades for free. The env charges the same
  exit (the contract's ``cost_per_side`` per contract) in an episode's last
  reward, so the rewards the agents learn from count the costs counted here.

**Ruin.** The chained curve is the reported account, and its ruin level is
``(1 - ruin_fraction) × initial_equity``. Each tile's account carries the
account's ruin stop (:class:`~algospace.market.account.Account`) at the level
that corresponds to the chained curve's: when the chained equity would reach
the ruin level, the position is sold where equity after the exit's costs meets
it (at the open on a gap through it), and the strategy stays flat for the rest
of the split. The baselines and the oracles run through the same account with
the same ruin level, so every curve stops alike and none goes below the level
but by a gap.

The same executed bars then go through the cost-charging baselines of
:mod:`algospace.evaluation.baselines` (flat, buy-and-hold, random, and ``rule``
— the synergy detector's rule: hold its direction, known at a bar's close,
over the next bar while a MLMI → NW-RQK → FVG synergy is active — each at
the env's position limit) and, on the built-in synthetic market, through the
three **oracles** of :mod:`algospace.evaluation.oracles` (strategic-only,
tactical-only, joint), whose dollar P&L, realised and expected, gives the
agents' capture.

**With the two gates.** Given a :class:`~algospace.inference.policy.GatedTeam`
instead of a policy, each step goes through the team's gated decision — the
code the decision engine decides with: the agents act (with their MC-dropout
passes), the env turns their actions into a target, the gates hold back new
exposure they do not let through, and the env trades what is left. The
backtest then also counts how often each gate closed (``gate_counts``); its
trades equal the engine's gated replay of the same bars (tested).

**Risk limits.** Given ``limits`` (:class:`~algospace.market.limits.RiskLimits`: maximum
position, maximum daily loss), every target goes through the decision engine's
:class:`~algospace.market.limits.RiskGuard` before it is traded, on the chained equity and
the trading day of the decision's bar, as the engine applies them: both hold the same
positions (tested). The kill file is the engine's alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from algospace.config import EnvConfig
from algospace.data.calendar import trading_day
from algospace.errors import ConfigError
from algospace.evaluation.baselines import run_baselines
from algospace.evaluation.decisions import DecisionLog, Decisions
from algospace.evaluation.metrics import Metrics, compute_metrics
from algospace.evaluation.oracles import (
    LAYERS,
    TRUTH,
    OracleRun,
    capture,
    expected_pnl,
    read_truth,
    run_oracle,
    span_rows,
)
from algospace.features.pipeline import Prepared, prepare
from algospace.market.account import TRADE_COLUMNS
from algospace.market.limits import RiskGuard, RiskLimits
from envs.core.data import stored_tables
from envs.registry import env_class

if TYPE_CHECKING:
    from algospace.inference.policy import GatedTeam

Observations = Mapping[str, Mapping[str, np.ndarray]]
Policy = Callable[[Observations, bool], dict[str, Any]]
"""``policy(obs, decision) -> actions``: obs per live agent; ``decision`` is True when the
strategic agents decide this step (their actions are ignored otherwise)."""

@dataclass(frozen=True)
class Backtest:
    """A policy's backtest on one split, and the baselines on the same bars."""

    env: str
    split: str
    equity: pd.Series
    """Equity after each executed bar, indexed by the bar's open time (tiles chained,
    stopped at ruin)."""
    positions: np.ndarray
    """Contracts held at the close of each executed bar."""
    trades: pd.DataFrame
    """Closed round trips of every tile (``Account.trades`` columns plus ``tile``)."""
    turnover_contracts: float
    """Contracts traded, including the closes at tile ends."""
    metrics: Metrics
    """The policy's metrics (see :mod:`algospace.evaluation.metrics` for conventions)."""
    baselines: dict[str, Metrics] = field(default_factory=dict)
    """flat, buy_and_hold, random and rule on the same bars, stopped at ruin alike."""
    tiles: int = 0
    """Episodes run."""
    bars: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    """The executed bars (open, high, low, close), indexed by open time."""
    contract: Any = field(default=None, repr=False)
    """The contract whose costs were charged (a ContractSpec)."""
    ruined_tiles: int = 0
    """Tiles whose own account reached the env's ruin level without ruining the chained
    account: ended early by the env (the bars they did not reach are left out, for the
    baselines too) or flat to the tile's end."""
    rule_signal: np.ndarray | None = field(default=None, repr=False)
    """The synergy direction at each executed bar (the ``rule`` baseline's signal)."""
    gate_counts: dict[str, int] | None = None
    """With a gated team: decisions, how often each gate closed, trades held back."""
    position_limit: int = 0
    """Contracts the agents, baselines and oracles may hold (long or short)."""
    ruin_level: float = 0.0
    """Equity at which every strategy is flattened and stays flat (dollars)."""
    oracles: dict[str, OracleRun] = field(default_factory=dict, repr=False)
    """strategic, tactical and joint oracles on the same span (built-in market only)."""
    capture: dict[str, float] = field(default_factory=dict)
    """Realised and expected capture of the oracles (built-in market only)."""
    layer: str = "joint"
    """The env's own layer: which oracle ``capture_of_oracle`` divides by."""
    decisions: Decisions | None = field(default=None, repr=False)
    """Per executed bar: the account's target and bracket, the tile, the layer that moved
    the target (to re-run the account at other costs, and to attribute the P&L)."""
    initial_equity: float = 100_000.0
    """The equity the chained curve starts from (dollars)."""
    steps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)
    """The clock step decided at for each executed bar (the bar executed is the next)."""
    gate_results: tuple[Any, ...] = field(default=(), repr=False)
    """With a gated team: the :class:`~algospace.inference.gates.GateResult` of each
    executed bar's decision (consensus, its direction, both gates)."""


def backtest(env_name: str, env_config: EnvConfig, policy: Policy | GatedTeam, *,
             seed: int = 0, progress: Callable[[str], None] | None = None,
             limits: RiskLimits | None = None) -> Backtest:
    """Run ``policy`` over every tile of ``env_config.split`` and score it against baselines.

    ``policy`` is a :data:`Policy`, or a :class:`~algospace.inference.policy.GatedTeam`
    to trade through the two gates; ``limits``: risk limits applied to every target (see
    the module docstring).
    """
    from algospace.inference.policy import GatedTeam, gate_counts

    if env_config.random_start:
        raise ConfigError("backtest needs random_start=False (or None on val/test): it runs "
                          "the split's consecutive tiles")
    cfg = env_config if env_config.random_start is False else _replace_random_start(env_config)
    env = env_class(env_name)(cfg)
    prepared = prepare(cfg.data, log=lambda _: None)
    ohlc, times = _clock_bars(env, prepared)
    cost_per_contract = _exit_cost(env)
    team = policy if isinstance(policy, GatedTeam) else None
    plain = None if isinstance(policy, GatedTeam) else policy
    # the synergy state at each clock step's close (gate 1), looked up once
    synergy = _synergy_direction(prepared, _base_rows(env, np.arange(len(ohlc)))) \
        if team is not None else None
    gates: list[Any] = []
    log = DecisionLog(single=len(env.possible_agents) == 1)
    pnl: list[float] = []
    rows: list[int] = []
    held: list[int] = []
    trades: list[pd.DataFrame] = []
    turnover = costs = 0.0
    ruined = 0
    initial = cfg.initial_equity
    ruin_level = (1.0 - cfg.ruin_fraction) * initial
    chained, ruin_row = initial, None
    limited = _limiter(limits, env, prepared, len(ohlc), initial)
    env.reset(seed=seed)
    n_tiles = env.n_episodes
    for tile in range(n_tiles):
        obs, _ = env.reset() if tile else env.reset(seed=seed)
        acct = env.account
        if ruin_row is None:  # the tile's own ruin, or the chained account's, if higher
            acct.ruin_level = max(ruin_level, ruin_level + initial - chained)
        else:  # ruined: flat for the rest of the split
            acct.ruined = True
        already = ruin_row is not None
        before = acct.equity
        terms: dict[str, bool] = {}
        if team is not None:
            team.reset()
        while env.agents:
            pos = env._pos
            latched = log.latches(env)
            if plain is not None:
                target = env.decide(plain(obs, env.decision))
            else:
                assert team is not None and synergy is not None
                gate = team.decide(env, obs, pos, synergy_direction=float(synergy[pos]),
                                   initial_equity=cfg.initial_equity)
                gates.append(gate)
                target = gate.target
            target = limited(target, pos, chained)
            log.add(env, tile, latched, target)
            obs, _, terms, _, _ = env.execute(target)
            rows.append(pos + 1)
            pnl.append(acct.equity - before)
            chained += pnl[-1]
            before = acct.equity
            held.append(acct.position)
            if ruin_row is None and acct.ruined and chained <= ruin_level + 1e-6:
                ruin_row = len(pnl) - 1
        ruined += (any(terms.values()) or acct.ruined) and not already and ruin_row is None
        closing = abs(acct.position)
        if closing:
            pnl[-1] -= closing * cost_per_contract
            chained -= closing * cost_per_contract
            held[-1] = 0
        turnover += acct.turnover + closing
        costs += acct.commissions + acct.slippage_cost + closing * cost_per_contract
        tile_trades = acct.trades()
        if len(tile_trades):
            trades.append(tile_trades.assign(tile=tile))
        if progress is not None and (tile + 1) % max(1, n_tiles // 10) == 0:
            progress(f"[backtest] {env_name} {cfg.split}: tile {tile + 1}/{n_tiles}")
    idx = np.asarray(rows)
    index = pd.DatetimeIndex(times[idx], name="open_time")
    limit = int(env.max_position)
    equity = pd.Series(initial + np.cumsum(pnl), index=index, name="equity")
    positions = np.asarray(held, dtype=np.int64)
    trade_log = pd.concat(trades, ignore_index=True) if trades else \
        pd.DataFrame(columns=[*TRADE_COLUMNS, "tile"])
    metrics = compute_metrics(equity, positions=positions, trades=trade_log,
                              turnover_contracts=turnover, initial_equity=initial, costs=costs,
                              ruin_bar=ruin_row)
    bars = pd.DataFrame(ohlc[idx], index=index, columns=["open", "high", "low", "close"])
    contract = env.market.contract
    rule_signal = _synergy_direction(prepared, _base_rows(env, idx))
    baselines = run_baselines(bars, contract, size=limit, seed=seed, initial_equity=initial,
                              rule_signal=rule_signal, ruin_level=ruin_level)
    oracles, oracle_capture = _oracles(env, prepared, idx, positions, metrics, costs,
                                       ruin_level)
    return Backtest(env_name, cfg.split, equity, positions, trade_log, turnover, metrics,
                    baselines, n_tiles, bars, contract, ruined,
                    rule_signal, gate_counts(gates) if team is not None else None,
                    limit, ruin_level, oracles, oracle_capture, env_layer(env),
                    log.decisions(), initial, idx - 1, tuple(gates))


def env_layer(env: Any) -> str:
    """The layer oracle an env is judged against: strategic, tactical or joint."""
    if env.STRATEGIC and env.TACTICAL:
        return "joint"
    return "strategic" if env.STRATEGIC else "tactical"


def _oracles(env: Any, prepared: Prepared, clock_rows: np.ndarray, positions: np.ndarray,
             metrics: Metrics, costs: float, ruin_level: float
             ) -> tuple[dict[str, OracleRun], dict[str, float]]:
    """The three layer oracles on the executed span, and the agents' capture of them."""
    if TRUTH not in stored_tables(prepared):
        return {}, {}
    base_rows, owner = span_rows(clock_rows, np.asarray(env._close_step)
                                 if env.STRATEGIC_CLOCK else None)
    base_ohlc = np.asarray(env.market.arrays["base_ohlc"])
    truth = read_truth(prepared.table(TRUTH), base_ohlc, prepared.base.open_time, base_rows)
    contract = env.market.contract
    runs = {layer: run_oracle(truth, layer, contract, int(env.max_position),
                              env.config.initial_equity, ruin_level) for layer in LAYERS}
    agents_expected = expected_pnl(positions[owner], truth.drift("joint"),
                                   contract.point_value, costs)
    return runs, capture(metrics.net_pnl, agents_expected, runs, env_layer(env))


def _replace_random_start(cfg: EnvConfig) -> EnvConfig:
    """``cfg`` with random_start=False, rejecting a train split left on random starts."""
    if cfg.split == "train":
        raise ConfigError("backtest on the train split needs random_start=False explicitly "
                          "(train episodes start at random by default)")
    return replace(cfg, random_start=False)


def _limiter(limits: RiskLimits | None, env: Any, prepared: Prepared, steps: int,
             initial: float) -> Callable[[int, int, float], int]:
    """``limit(target, clock step, chained equity)``: the target the risk limits allow."""
    if limits is None or not limits.any:
        return lambda target, _step, _equity: target
    guard = RiskGuard(replace(limits, kill_file=None), initial)
    days = trading_day(prepared.base.open_time)[_base_rows(env, np.arange(steps))]
    return lambda target, step, equity: guard.apply(target, day=days[step], equity=equity)[0]


def _clock_bars(env: Any, prepared: Prepared) -> tuple[np.ndarray, np.ndarray]:
    """OHLC and open times of the env's clock (30-minute or 5-minute bars)."""
    bars = prepared.strategic if env.STRATEGIC_CLOCK else prepared.base
    ohlc = np.asarray(env._ohlc, dtype=np.float64)
    if len(bars) != len(ohlc):
        raise RuntimeError(f"prepared bars ({len(bars)}) and env arrays ({len(ohlc)}) differ; "
                           "delete the data cache and run again")
    return ohlc, bars.open_time.to_numpy()


def _exit_cost(env: Any) -> float:
    """Dollars charged per contract to close at a tile end (commission + slippage): the
    contract's ``cost_per_side``, the price the env charges in an episode's last reward."""
    return float(env.market.contract.cost_per_side)


def decision_base_rows(env: Any, rows: np.ndarray) -> np.ndarray:
    """The 5-minute row at the close of each of ``env``'s clock bars ``rows`` (30-minute
    bars: their last 5-minute row)."""
    return _base_rows(env, rows)


def _base_rows(env: Any, rows: np.ndarray) -> np.ndarray:
    """The 5-minute row at the close of each clock bar (30-minute bars: their last one)."""
    return np.asarray(env._close_step)[rows] if env.STRATEGIC_CLOCK else rows


def _synergy_direction(prepared: Prepared, base_rows: np.ndarray) -> np.ndarray:
    """The synergy detector's direction state at each executed bar (what is known at its
    close); the ``rule`` baseline holds its sign over the next bar."""
    state = prepared.table("synergy")["synergy_direction"].to_numpy(np.float64)
    return np.nan_to_num(state[base_rows])


def greedy_policy(modules: Mapping[str, Any]) -> Policy:
    """The deterministic policy of actor modules: the most likely action of each head.

    ``modules`` maps module ids to actor modules: one per agent, or the shared
    ``strategic`` / ``tactical`` / ``risk`` modules of ``sharing="layer"`` (recognised by
    their ids; the agents' observations are then padded as in training). The weights are
    read once, here, and the logits computed by
    :func:`algospace.inference.kernel.greedy_logits` — the function the decision engine
    acts through, so streaming and batch decisions are computed identically.
    """
    from algospace.inference.kernel import greedy_action, greedy_logits, net_weights
    from envs.rllib import LAYER_GROUPS, LayerSharing, module_of

    layer = any(m in modules for m in LAYER_GROUPS if m != "risk")
    sharing = "layer" if layer else "agent"
    nets = {m: net_weights(module) for m, module in modules.items()}
    padder: list[LayerSharing] = []

    def act(obs: Observations, decision: bool) -> dict[str, Any]:
        if layer:
            if not padder:
                padder.append(LayerSharing({a: len(o["local"]) for a, o in obs.items()}))
            obs = padder[0].pad({a: dict(o) for a, o in obs.items()})
        out: dict[str, Any] = {}
        for agent, o in obs.items():
            net = nets[module_of(agent, sharing)]
            out[agent] = greedy_action(net, greedy_logits(net, o["local"]))[0]
        return out

    return act
