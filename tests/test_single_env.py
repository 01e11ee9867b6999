"""single_v0, the non-MARL baseline: one trader on joint_v0's market, account and reward.

The PettingZoo API, determinism, pickling and look-ahead checks of every env
(tests/test_envs.py, tests/test_env_lookahead.py) cover single_v0 too.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from algospace.config import DataConfig, EnvConfig, ModelSettings, PPOSettings
from algospace.errors import ConfigError
from algospace.training.builder import TrainConfig, build_ppo_config
from envs import joint_v0, registry, single_v0
from envs.core.layout import ACCOUNT, CONTEXT, SIGNALS, SINGLE_TARGET, market_state_dim
from envs.rllib import make_env, module_of

STEPS = 72
SIGNAL_SLOTS = [CONTEXT.index(name) for name in SIGNALS]
"""Where b, s and rho sit in the 12-d context (they are the trader's own there)."""


def make(data: DataConfig, **kwargs: Any) -> single_v0.SingleEnv:
    """A small single_v0 on ``data``."""
    kwargs.setdefault("episode_steps", STEPS)
    return single_v0.parallel_env(data=data, **kwargs)


def expected_target(action: int, limit: int) -> int:
    """sign(f) * floor(|f| * limit + 0.5) for the action's fraction f."""
    f = SINGLE_TARGET[action]
    return int(math.copysign(math.floor(abs(f) * limit + 0.5), f)) if f else 0


def test_one_trader_seeing_the_whole_team(env_data: DataConfig) -> None:
    env = make(env_data)
    joint = joint_v0.parallel_env(data=env_data, episode_steps=STEPS)
    assert env.possible_agents == ["trader"] == list(registry.agents_of("single_v0"))
    assert env.action_space("trader").n == 5
    space = env.observation_space("trader")
    widths = [joint.observation_space(a)["local"].shape[0] for a in joint.possible_agents]
    assert space["local"].shape == (sum(widths),)
    assert space["state"].shape == (112,)
    assert list(env.local_slices) == joint.possible_agents
    assert [s.stop - s.start for s in env.local_slices.values()] == widths
    assert env.local_columns == joint.local_columns
    assert env.max_position == joint.max_position
    assert set(env.valid_starts().tolist()) == set(joint.valid_starts().tolist())


@pytest.mark.parametrize("limit", [None, 4, 7])
def test_target_is_the_actions_fraction_of_the_limit(env_data: DataConfig,
                                                     limit: int | None) -> None:
    env = make(env_data, max_position=limit)
    full = env.max_position
    for action in range(5):
        env.reset(seed=action)
        target = env.decide({"trader": action})
        assert target == expected_target(action, full)
        _, _, _, _, infos = env.execute(target)
        assert infos["trader"]["position"] == target
        assert math.isnan(env.stop_and_target()[0])  # no bracket
    assert expected_target(0, full) == -full and expected_target(4, full) == full


def test_a_missing_or_finished_action_is_an_error(env_data: DataConfig) -> None:
    env = make(env_data)
    env.reset(seed=0)
    with pytest.raises(KeyError, match="'trader'"):
        env.step({"entry": 1})
    while env.agents:
        env.step({"trader": 2})
    with pytest.raises(RuntimeError, match="finished episode"):
        env.step({"trader": 2})


def _drive_both(data: DataConfig, seed: int, **kwargs: Any) -> tuple[list[Any], list[Any]]:
    """The same random target path through single_v0 (its actions) and joint_v0 (its
    ``execute``, no bracket) from the same start: each env's step results."""
    single = make(data, **kwargs)
    joint = joint_v0.parallel_env(data=data, episode_steps=STEPS, **kwargs)
    rng = np.random.default_rng(seed)
    start = int(rng.choice(single.valid_starts()))
    s_obs, _ = single.reset(seed=seed, options={"start": start})
    j_obs, _ = joint.reset(seed=seed, options={"start": start})
    s_steps, j_steps = [(s_obs, {}, {}, {}, {})], [(j_obs, {}, {}, {}, {})]
    while single.agents:
        target = single.decide({"trader": int(rng.integers(5))})
        s_steps.append(single.execute(target))
        j_steps.append(joint.execute(target))
    assert not joint.agents
    return s_steps, j_steps


@pytest.mark.parametrize("ruin_fraction", [0.5, 0.002])
def test_pnl_equals_joint_v0_driven_to_the_same_targets(env_data: DataConfig,
                                                        ruin_fraction: float) -> None:
    ended_by_ruin = []
    for seed in range(3):
        s_steps, j_steps = _drive_both(env_data, seed, ruin_fraction=ruin_fraction)
        _same_observation(s_steps[0][0]["trader"], j_steps[0][0])
        for (s_obs, s_rew, s_term, s_trunc, s_info), (j_obs, j_rew, j_term, j_trunc, j_info) \
                in zip(s_steps[1:], j_steps[1:], strict=True):
            assert s_rew["trader"] == j_rew["entry"]  # the same arithmetic: exactly equal
            assert s_term["trader"] == j_term["entry"] and s_trunc["trader"] == j_trunc["entry"]
            assert s_info["trader"] == j_info["entry"]  # equity, position, exit cost, clock
            _same_observation(s_obs["trader"], j_obs)
        ended_by_ruin.append(s_term["trader"])
        assert s_info["trader"]["exit_cost"] == j_info["entry"]["exit_cost"]
    if ruin_fraction < 0.01:  # the tight ruin level ends some episodes early
        assert any(ended_by_ruin)
    else:
        assert not any(ended_by_ruin)


def _same_observation(trader: dict[str, np.ndarray], team: dict[str, Any]) -> None:
    """The trader's local is the team's locals side by side and its state the team's, but
    for the signal slots b, s, rho (the trader's fraction, twice, and a full budget)."""
    local = trader["local"]
    offset = 0
    for agent in sorted(team):
        part = team[agent]["local"]
        mine = local[offset:offset + len(part)].copy()
        signals = len(part) - len(CONTEXT) + np.asarray(SIGNAL_SLOTS)
        b, s, rho = ours = mine[signals]
        assert b == s and b in SINGLE_TARGET and rho == 1.0
        mine[signals] = part[signals]
        np.testing.assert_array_equal(mine, part)
        offset += len(part)
    assert offset == len(local)
    state = trader["state"].copy()
    team_state = team["entry"]["state"]
    slots = market_state_dim() + len(ACCOUNT) + np.arange(len(SIGNALS))
    np.testing.assert_array_equal(state[slots], ours)
    state[slots] = team_state[slots]
    np.testing.assert_array_equal(state, team_state)


def test_shaping_is_refused(env_data: DataConfig) -> None:
    with pytest.raises(ConfigError, match="single_v0 has one agent"):
        make(env_data, reward={"shaping": {"entry": 0.1}})


def test_mappo_is_refused_and_ippo_accepted(env_data: DataConfig, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mappo needs the team's agents"):
        TrainConfig(env="single_v0")
    cfg = small(env_data, tmp_path, model=ModelSettings(sharing="layer"))
    config = build_ppo_config(cfg)  # layer sharing: the trader keeps its own module
    assert set(config.policies) == {"trader"}
    assert module_of("trader", "layer") == "trader"
    assert make_env("single_v0", {"data": {"synthetic": {"days": 30, "seed": 7},
                                           "cache_dir": env_data.cache_dir}})._slow == ()


def small(data: DataConfig, tmp_path: Path, **kwargs: Any) -> TrainConfig:
    """A tiny IPPO run on single_v0, sampling in the driver (as tests/test_mappo.py)."""
    return TrainConfig(env="single_v0", algorithm="ippo",
                       env_config=EnvConfig(data=data, episode_steps=STEPS),
                       iterations=2, num_env_runners=0, num_envs_per_env_runner=1,
                       ppo=PPOSettings(train_batch_size=150, minibatch_size=75, num_epochs=2),
                       out_dir=str(tmp_path), **kwargs)


@pytest.mark.train
def test_ippo_trains_and_the_greedy_trader_backtests(env_data: DataConfig, tmp_path: Path,
                                                     ray_session: Any) -> None:
    from algospace.evaluation.backtest import backtest, greedy_policy
    from algospace.training.checkpoint import load_actors
    from algospace.training.train import train

    result = train(small(env_data, tmp_path), log=lambda _: None)
    assert result.iterations == 2 and result.env_steps > 0
    assert all(np.isfinite(row["losses/critic"]) and np.isfinite(row["losses/policy"])
               for row in result.history)
    modules = load_actors(result.checkpoint)
    assert set(modules) == {"trader"}
    bt = backtest("single_v0", EnvConfig(data=env_data, split="test", episode_steps=STEPS),
                  greedy_policy(modules))
    assert bt.tiles >= 1 and len(bt.equity) == STEPS * bt.tiles
    assert bt.layer == "joint" and bt.position_limit == make(env_data).max_position
    assert np.isfinite(bt.metrics.net_pnl)
    assert set(np.unique(bt.positions)) <= {expected_target(a, bt.position_limit)
                                            for a in range(5)}
