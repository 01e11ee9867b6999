"""The PettingZoo envs: API, spaces, pickling, determinism and episodes."""

from __future__ import annotations

import itertools
import pickle
import typing
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

from algospace.config import (
    PHASE_ENV,
    STATE_DIM,
    STRATEGIC_AGENTS,
    TACTICAL_AGENTS,
    DataConfig,
    EnvName,
)
from algospace.errors import ConfigError, DataError
from envs import joint_v0, registry, single_v0, strategic_v0, tactical_v0
from envs.core.base import TradingEnv
from envs.core.layout import state_blocks, state_names

ENVS = [strategic_v0, tactical_v0, joint_v0, single_v0]
STEPS = {strategic_v0: 24, tactical_v0: 72, joint_v0: 72, single_v0: 72}


def make(module: ModuleType, data: DataConfig, **kwargs: Any) -> TradingEnv:
    """A small env of ``module`` on ``data``."""
    kwargs.setdefault("episode_steps", STEPS[module])
    env = module.parallel_env(data=data, **kwargs)
    assert isinstance(env, TradingEnv)
    return env


def random_actions(env: TradingEnv, rng: np.random.Generator) -> dict[str, Any]:
    """Uniformly random actions for every live agent, from ``rng``."""
    out: dict[str, Any] = {}
    for agent in env.agents:
        space = env.action_space(agent)
        if hasattr(space, "nvec"):
            out[agent] = rng.integers(0, space.nvec)
        else:
            out[agent] = int(rng.integers(space.n))
    return out


def run(env: TradingEnv, seed: int, steps: int, start: int | None = None
        ) -> list[tuple[Any, ...]]:
    """(obs, rewards, terms, truncs, infos) of ``steps`` seeded random steps."""
    rng = np.random.default_rng(seed)
    options = None if start is None else {"start": start}
    obs, infos = env.reset(seed=seed, options=options)
    out: list[tuple[Any, ...]] = [(obs, {}, {}, {}, infos)]
    for _ in range(steps):
        if not env.agents:
            obs, infos = env.reset()
            out.append((obs, {}, {}, {}, infos))
        out.append(env.step(random_actions(env, rng)))
    return out


def assert_same(a: Any, b: Any) -> None:
    """Deep equality of nested dicts of arrays and scalars."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, tuple | list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b


@pytest.mark.parametrize("module", ENVS, ids=lambda m: m.__name__.split(".")[-1])
def test_parallel_api(module: ModuleType, env_data: DataConfig) -> None:
    parallel_api_test(make(module, env_data), num_cycles=200)


def test_no_argument_construction_uses_the_built_in_market() -> None:
    env = joint_v0.parallel_env()
    assert env.config.data.source == "synthetic"
    assert env.possible_agents == sorted(env.possible_agents)
    assert len(env.possible_agents) == 8


@pytest.mark.parametrize("module", ENVS, ids=lambda m: m.__name__.split(".")[-1])
def test_obs_in_space_and_finite_over_a_full_episode(module: ModuleType,
                                                     env_data: DataConfig) -> None:
    env = make(module, env_data)
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    steps = 0
    while True:
        for agent, ob in obs.items():
            assert env.observation_space(agent).contains(ob), agent
            assert np.isfinite(ob["local"]).all() and np.isfinite(ob["state"]).all(), agent
            np.testing.assert_array_equal(ob["state"], env.state())
        if not env.agents:
            break
        obs, rewards, terms, truncs, _ = env.step(random_actions(env, rng))
        assert all(np.isfinite(r) for r in rewards.values())
        steps += 1
    assert steps == env.episode_steps
    assert all(truncs.values()) and not any(terms.values())
    assert set(obs) == set(env.possible_agents)


@pytest.mark.parametrize("module", ENVS, ids=lambda m: m.__name__.split(".")[-1])
def test_seeded_determinism(module: ModuleType, env_data: DataConfig) -> None:
    first = run(make(module, env_data), seed=3, steps=400)
    second = run(make(module, env_data), seed=3, steps=400)
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        assert_same(a, b)
    other = run(make(module, env_data), seed=4, steps=400)
    assert any(not np.array_equal(a[0][k]["local"], b[0][k]["local"])
               for a, b in zip(first, other, strict=True) for k in a[0])


@pytest.mark.parametrize("module", ENVS, ids=lambda m: m.__name__.split(".")[-1])
def test_pickle_round_trip_mid_episode(module: ModuleType, env_data: DataConfig) -> None:
    env = make(module, env_data)
    rng = np.random.default_rng(1)
    env.reset(seed=1)
    for _ in range(10):
        env.step(random_actions(env, rng))
    copy = pickle.loads(pickle.dumps(env))
    assert len(pickle.dumps(env)) < 100_000  # the shared arrays are not pickled
    for _ in range(10):
        actions = random_actions(env, rng)
        assert_same(env.step(actions), copy.step(actions))
    assert copy.account.equity == env.account.equity


def test_state_layout_is_named_and_sums_to_112() -> None:
    names = state_names()
    assert len(names) == 112 and len(set(names)) == 112
    sizes = {block: len(n) for block, n in state_blocks()}
    assert sizes == {"strategic_now": 13, "strategic_mean": 13, "tactical_now": 7,
                     "tactical_mean": 7, "regime_latent": 8, "synergy": 7, "account": 8,
                     "signals": 3, "last_strategic_actions": 28, "last_tactical_actions": 18}


def test_the_layout_names_exactly_the_configured_state_dim() -> None:
    """The config checks ``state_dim`` against STATE_DIM; the layout must name that many."""
    assert len(state_names()) == STATE_DIM


def test_the_registry_holds_exactly_the_configured_env_names() -> None:
    """The config names the envs (EnvName, below envs); the registry registers those."""
    assert set(registry.ENVS) == set(typing.get_args(EnvName))
    assert set(PHASE_ENV.values()) <= set(registry.ENVS)
    assert set(registry.agents_of("joint_v0")) == {*STRATEGIC_AGENTS, *TACTICAL_AGENTS}


def test_state_dim_must_match_the_layout(env_data: DataConfig) -> None:
    with pytest.raises(ConfigError, match=r"state_dim is 100 but .* 112"):
        joint_v0.parallel_env(data=env_data, state_dim=100)


def test_unknown_config_key_is_rejected_with_a_hint(env_data: DataConfig) -> None:
    with pytest.raises(ConfigError, match=r"env\.episode_step: unknown key\. Did you mean "
                                          r"'episode_steps'"):
        joint_v0.parallel_env(data=env_data, episode_step=10)
    with pytest.raises(ConfigError, match=r"reward\.shaping: unknown agent 'mlni'"):
        joint_v0.parallel_env(data=env_data, reward={"shaping": {"mlni": 0.1}})


def test_missing_regime_latent_table_names_the_fix(env_data: DataConfig) -> None:
    with pytest.raises(DataError, match="algospace regime train"):
        strategic_v0.parallel_env(data=env_data, regime_latent=True)


def test_episode_longer_than_the_split_is_a_clear_error(env_data: DataConfig) -> None:
    with pytest.raises(DataError, match="split 'test' has no window of 100001"):
        tactical_v0.parallel_env(data=env_data, split="test", episode_steps=100_000)


def test_joint_strategic_decisions_only_at_30_minute_closes(env_data: DataConfig) -> None:
    env = make(joint_v0, env_data)
    rng = np.random.default_rng(5)
    _obs, _infos = env.reset(seed=5)
    assert env.decision  # episodes start at a close
    decisions, bias = [], []
    while env.agents:
        row = env._brow
        decisions.append((row, env.decision))
        actions = random_actions(env, rng)
        if not env.decision:  # strategic actions are ignored (and may be left out)
            for agent in STRATEGIC_AGENTS:
                actions.pop(agent)
        env.step(actions)
        bias.append(env._bias)
    closes = env.market["is_close"]
    assert all(flag == bool(closes[row]) for row, flag in decisions)
    # the bias only changes on steps taken from a decision step
    changed = [i for i in range(1, len(bias)) if bias[i] != bias[i - 1]]
    assert all(decisions[i][1] for i in changed)
    assert 0 < sum(flag for _, flag in decisions) < len(decisions)


def test_strategic_action_missing_at_a_decision_is_an_error(env_data: DataConfig) -> None:
    env = make(joint_v0, env_data)
    env.reset(seed=0)
    actions = random_actions(env, np.random.default_rng(0))
    del actions["mlmi"]
    with pytest.raises(KeyError, match="no action for agent 'mlmi'"):
        env.step(actions)


def test_evaluation_tiles_the_split_deterministically(env_data: DataConfig) -> None:
    env = make(tactical_v0, env_data, split="val")
    starts = [env._pos for _ in range(env.n_episodes) if env.reset()]
    assert starts == sorted(starts)
    assert all(b - a >= env.episode_steps for a, b in itertools.pairwise(starts))
    assert env.reset()[0] and env._pos == starts[0]  # wraps around
    lo, hi = env.market.splits.range("val")
    assert lo <= starts[0] and starts[-1] + env.episode_steps < hi


def test_random_starts_on_train_stay_in_the_split(env_data: DataConfig) -> None:
    env = make(tactical_v0, env_data)
    lo, hi = env.market.splits.range("train")
    starts = set()
    for seed in range(20):
        env.reset(seed=seed)
        starts.add(env._pos)
        assert lo <= env._pos and env._pos + env.episode_steps < hi
    assert len(starts) > 10


def test_extra_envs_share_the_arrays(env_data: DataConfig) -> None:
    a, b = make(joint_v0, env_data), make(joint_v0, env_data)
    assert a.market is b.market
    assert np.shares_memory(a._mstate, b._mstate)
