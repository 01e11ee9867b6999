"""Costs are always charged and nothing pays for merely acting.

A uniformly random policy loses reward on average; a policy flipping its
position every step loses at least its commissions and slippage; an oracle
that knows the planted signal of the built-in market earns a positive reward.
"""

from __future__ import annotations

import dataclasses
import math
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from algospace.config import DataConfig
from algospace.data.synthetic import SyntheticConfig
from envs import joint_v0, strategic_v0, tactical_v0
from envs.core.base import TradingEnv
from tests.test_envs import STEPS, make, random_actions

ENVS = [strategic_v0, tactical_v0, joint_v0]
IDS = ["strategic_v0", "tactical_v0", "joint_v0"]
BUY_A, SELL_A, INCREASE = 2, 4, 6  # strategic actions
BUY_L, SELL_L = 2, 4  # tactical actions
WIDE_RISK = np.array([5, 5, 4])  # 5 contracts, stop 3 ATR, reward:risk 5


def episode_return(env: TradingEnv, policy: Any, **reset: Any) -> float:
    """Team reward summed over one episode of ``policy(env) -> actions``."""
    env.reset(**reset)
    total = 0.0
    while env.agents:
        _, rewards, _, _, _ = env.step(policy(env))
        total += rewards[env.possible_agents[0]]
    return total


@pytest.mark.parametrize("module", ENVS, ids=IDS)
def test_random_policy_loses_on_average(module: ModuleType, env_data: DataConfig) -> None:
    env = make(module, env_data)
    rng = np.random.default_rng(0)
    returns = [episode_return(env, lambda e: random_actions(e, rng), seed=s) for s in range(100)]
    mean = float(np.mean(returns))
    stderr = float(np.std(returns, ddof=1) / math.sqrt(len(returns)))
    assert mean + 2 * stderr < 0, (mean, stderr)


def flip_policy(env: TradingEnv) -> dict[str, Any]:
    """Full long on even steps, full short on odd ones."""
    up = env._pos % 2 == 0
    actions: dict[str, Any] = {}
    for agent in env.agents:
        if agent in ("mlmi", "nwrqk", "regime"):
            actions[agent] = BUY_A if up else SELL_A
        elif agent == "portfolio":
            actions[agent] = INCREASE
        elif agent == "risk":
            actions[agent] = WIDE_RISK
        else:
            actions[agent] = BUY_L if up else SELL_L
    return actions


@pytest.mark.parametrize("module", ENVS, ids=IDS)
def test_flipping_loses_at_least_its_costs(module: ModuleType, env_data: DataConfig) -> None:
    env = make(module, env_data, reward={"drawdown_penalty": 0.0})
    spec = env.market.contract
    scale = spec.point_value * env.max_position
    reward = cost = gross = 0.0
    for seed in range(30):
        reward += episode_return(env, flip_policy, seed=seed) * scale
        acct = env.account
        costs = acct.commissions + acct.slippage_cost
        assert costs == pytest.approx(acct.turnover * spec.cost_per_side, rel=1e-12)
        assert acct.turnover >= env.episode_steps  # it really flipped
        net = acct.equity - env.config.initial_equity
        exit_cost = abs(acct.position) * spec.cost_per_side  # the position left at the end
        cost += costs + exit_cost
        gross += net + costs
    assert reward == pytest.approx(gross - cost, rel=1e-9)  # reward is P&L net of every cost
    assert reward < 0 < cost


def oracle_policy(truth: dict[str, np.ndarray], market: Any) -> Any:
    """Trades as the layer oracles position themselves for the next bar (the generator's
    causal oracles, known to the test only)."""
    close_step = market["close_step"]
    strategic, tactical = truth["oracle_strategic"], truth["oracle_tactical"]

    def policy(env: TradingEnv) -> dict[str, Any]:
        strategic_next = strategic[int(close_step[env._srow]) + 1]
        tactical_next = tactical[env._brow + 1]
        actions: dict[str, Any] = {}
        for agent in env.agents:
            if agent in ("mlmi", "nwrqk", "regime"):
                actions[agent] = {1: BUY_A, -1: SELL_A}.get(int(strategic_next), 0)
            elif agent == "portfolio":
                actions[agent] = INCREASE
            elif agent == "risk":
                actions[agent] = WIDE_RISK
            else:
                actions[agent] = {1: BUY_L, -1: SELL_L}.get(int(tactical_next), 0)
        return actions

    return policy


@pytest.fixture(scope="module")
def strong_signal(tmp_path_factory: pytest.TempPathFactory) -> DataConfig:
    """30 days with the planted components at 4× their calibrated strength: one draw of a
    few validation days then shows what the calibrated market shows over months."""
    return DataConfig(synthetic=SyntheticConfig(days=30, seed=7, signal=4.0),
                      cache_dir=str(tmp_path_factory.mktemp("strong-cache")))


@pytest.mark.parametrize("module", ENVS, ids=IDS)
def test_oracle_of_the_planted_signal_earns(module: ModuleType,
                                            strong_signal: DataConfig) -> None:
    from algospace.features.pipeline import prepare

    table = prepare(strong_signal).table("synthetic_truth")
    truth = {k: table[k].to_numpy() for k in ("oracle_strategic", "oracle_tactical")}
    env = module.parallel_env(data=strong_signal, split="val", episode_steps=STEPS[module])
    policy = oracle_policy(truth, env.market)
    returns, turnover = [], 0
    for _ in range(env.n_episodes):
        returns.append(episode_return(env, policy))
        turnover += env.account.turnover
    assert turnover > 0
    assert sum(returns) > 0 and np.mean(np.array(returns) > 0) >= 0.6, returns
    anti = oracle_policy({k: -v for k, v in truth.items()}, env.market)  # wrong way round
    assert sum(episode_return(env, anti) for _ in range(env.n_episodes)) < 0


def test_costs_come_from_the_contract_settings(env_data: DataConfig) -> None:
    free = dataclasses.replace(env_data, contract={"commission": 0.0, "slippage_ticks": 0.0})
    env = make(tactical_v0, free, reward={"drawdown_penalty": 0.0})
    episode_return(env, flip_policy, seed=0)
    assert env.account.turnover > 0
    assert env.account.commissions == 0.0 and env.account.slippage_cost == 0.0
    dear = dataclasses.replace(env_data, contract={"commission": 5.0})
    costly = make(tactical_v0, dear, reward={"drawdown_penalty": 0.0})
    episode_return(costly, flip_policy, seed=0)
    assert costly.account.commissions == pytest.approx(5.0 * costly.account.turnover)
