"""A position still open when an episode ends pays its exit, in training as in the backtest.

The env does not flatten the account at the end of an episode; it charges the exit's
commission and slippage (``ContractSpec.cost_per_side`` per contract) in the last reward,
as the backtest charges it at the tile's end. With no drawdown penalty and no shaping, an
episode's rewards × ``reward.scale`` are then exactly the P&L the backtest reports for
that tile.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np
import pytest

from algospace.config import STRATEGIC_AGENTS, DataConfig, EnvConfig, RewardConfig
from algospace.evaluation.backtest import _exit_cost, backtest
from envs import joint_v0, strategic_v0, tactical_v0
from envs.core.base import TradingEnv
from envs.registry import env_class
from tests.test_env_costs import flip_policy
from tests.test_envs import make, random_actions

ENVS = [strategic_v0, tactical_v0, joint_v0]
IDS = ["strategic_v0", "tactical_v0", "joint_v0"]
LONG, HOLD = 2, 0  # strategic BUY_AGGRESSIVE, HOLD
SCALE = 10.0  # dollars per unit of reward
PLAIN = {"drawdown_penalty": 0.0, "scale": SCALE}  # the reward is the dollar P&L / SCALE


def play(env: TradingEnv, policy: Any, **reset: Any) -> tuple[float, list[dict[str, Any]],
                                                               bool]:
    """One episode of ``policy(env) -> actions``: the summed team reward in dollars, every
    step's info, and whether it was terminated."""
    env.reset(**reset)
    dollars, infos, terminated = 0.0, [], False
    while env.agents:
        first = env.agents[0]
        _, rewards, terms, _, info = env.step(policy(env))
        assert len(set(rewards.values())) == 1  # one team reward
        dollars += rewards[first] * SCALE
        infos.append(info[first])
        terminated = terms[first]
    return dollars, infos, terminated


def test_an_open_position_pays_its_exit_at_truncation(env_data: DataConfig) -> None:
    """Worked by hand: hold 3 long over one strategic episode."""
    env = make(strategic_v0, env_data, split="test", max_position=5, reward=PLAIN)
    c = env.market.contract
    start = int(env.valid_starts()[0])
    dollars, infos, terminated = play(env, lambda e: dict.fromkeys(e.agents, LONG),
                                      options={"start": start})
    acct = env.account
    assert not terminated and acct.position == 3  # b = 1, rho = 0.5: floor(2.5 + 0.5)
    # Bought at the first executed bar's open plus a tick, priced out at the last close,
    # commission on the way in; the exit's commission and tick of slippage on top.
    ohlc = np.asarray(env._ohlc)
    entry = ohlc[start + 1, 0] + c.slippage_ticks * c.tick_size
    exit_ = ohlc[start + env.episode_steps, 3]
    exit_cost = 3 * (c.commission + c.slippage_ticks * c.tick_size * c.point_value)
    by_hand = 3 * c.point_value * (exit_ - entry) - 3 * c.commission - exit_cost
    assert acct.equity - env.config.initial_equity == pytest.approx(by_hand + exit_cost,
                                                                     abs=1e-6)
    assert dollars == pytest.approx(by_hand, abs=1e-6)
    assert exit_cost > 0
    assert infos[-1]["exit_cost"] == pytest.approx(exit_cost, abs=1e-9)
    assert [i["exit_cost"] for i in infos[:-1]] == [0.0] * (len(infos) - 1)
    assert acct.position == 3  # charged, not flattened: the account still holds it


def test_an_episode_ending_flat_pays_nothing_more(env_data: DataConfig) -> None:
    env = make(strategic_v0, env_data, split="test", max_position=5, reward=PLAIN)
    last = env.episode_steps - 2
    dollars, infos, _ = play(env, lambda e: dict.fromkeys(
        e.agents, LONG if e._pos - e._end + e.episode_steps < last else HOLD), seed=0)
    acct = env.account
    assert acct.position == 0 and acct.turnover == 6  # in and out again before the end
    assert dollars == pytest.approx(acct.equity - env.config.initial_equity, abs=1e-9)
    assert all(i["exit_cost"] == 0.0 for i in infos)


@pytest.mark.parametrize("module", ENVS, ids=IDS)
def test_rewards_are_the_pnl_net_of_the_exit(module: ModuleType, env_data: DataConfig) -> None:
    """Random policies, every env: the summed reward is the equity change less the exit of
    the position held at the end, whatever that position is."""
    env = make(module, env_data, reward=PLAIN)
    per_contract = env.market.contract.cost_per_side
    rng = np.random.default_rng(1)
    ended_open = 0
    for seed in range(8):
        dollars, infos, _ = play(env, lambda e: random_actions(e, rng), seed=seed)
        acct = env.account
        exit_cost = abs(acct.position) * per_contract
        ended_open += acct.position != 0
        assert infos[-1]["exit_cost"] == exit_cost
        assert dollars == pytest.approx(acct.equity - env.config.initial_equity - exit_cost,
                                        abs=1e-6)
    assert ended_open  # the case this is about did occur


@pytest.mark.parametrize("module", [strategic_v0, tactical_v0], ids=IDS[:2])
def test_a_ruined_episode_pays_its_exit_too(module: ModuleType, env_data: DataConfig) -> None:
    """A tiny account churning its whole limit falls below the ruin level with a position
    open (the env has no ruin stop in training): terminated, and the exit charged."""
    env = make(module, env_data, reward=PLAIN, max_position=5, initial_equity=400.0,
               ruin_fraction=0.5)
    dollars, infos, terminated = play(env, flip_policy, seed=0)
    acct = env.account
    assert terminated and len(infos) < env.episode_steps and acct.position != 0
    exit_cost = abs(acct.position) * env.market.contract.cost_per_side
    assert infos[-1]["exit_cost"] == exit_cost > 0
    assert dollars == pytest.approx(acct.equity - 400.0 - exit_cost, abs=1e-6)


def test_the_backtest_charges_the_same_exit(env_data: DataConfig) -> None:
    env = make(strategic_v0, env_data)
    assert _exit_cost(env) == env.market.contract.cost_per_side


def _seeded_policy(seed: int) -> Any:
    """Deterministic random actions for every agent in ``obs`` (a backtest policy)."""
    rng = np.random.default_rng(seed)

    def act(obs: dict[str, Any], decision: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for agent in sorted(obs):
            if agent == "risk":
                out[agent] = rng.integers(0, [6, 6, 5])
            else:
                out[agent] = int(rng.integers(7 if agent in STRATEGIC_AGENTS else 5))
        return out

    return act


@pytest.mark.parametrize(("name", "steps"), [("strategic_v0", 24), ("tactical_v0", 72)])
def test_episode_rewards_equal_the_backtest_pnl_of_each_tile(name: str, steps: int,
                                                             env_data: DataConfig) -> None:
    cfg = EnvConfig(data=env_data, split="test", episode_steps=steps, max_position=5,
                    reward=RewardConfig(scale=SCALE, drawdown_penalty=0.0))
    bt = backtest(name, cfg, _seeded_policy(3))
    assert not bt.metrics.ruined and bt.ruined_tiles == 0
    assert len(bt.equity) == steps * bt.tiles  # every tile ran to its end
    bar_pnl = np.diff(bt.equity.to_numpy(), prepend=cfg.initial_equity)
    tile_pnl = bar_pnl.reshape(bt.tiles, steps).sum(axis=1)

    env = env_class(name)(cfg)
    policy = _seeded_policy(3)
    obs, _ = env.reset(seed=0)
    rewards, open_ends = [], 0
    for tile in range(env.n_episodes):
        if tile:
            obs, _ = env.reset()
        total = 0.0
        while env.agents:
            obs, r, _, _, _ = env.step(policy(obs, env.decision))
            total += next(iter(r.values())) * SCALE
        rewards.append(total)
        open_ends += env.account.position != 0
    assert open_ends  # some tiles end with a position: the exit is charged in both
    np.testing.assert_allclose(rewards, tile_pnl, rtol=0, atol=1e-6)
