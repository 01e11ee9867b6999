"""Backtests of fixed policies: P&L by hand, tile stitching, the oracle, errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from algospace.config import DataConfig
from algospace.errors import CheckpointError, ConfigError
from algospace.evaluation.backtest import ORACLE, backtest, env_class, load_actors
from envs.core.config import EnvConfig

LONG = 2  # BUY_AGGRESSIVE
HOLD = 0


def constant(action: int) -> Any:
    """A policy giving every agent the same action."""
    def act(obs: dict[str, Any], decision: bool) -> dict[str, int]:
        return dict.fromkeys(obs, action)

    return act


def test_flat_policy_has_flat_equity(env_data: DataConfig) -> None:
    bt = backtest("strategic_v0", EnvConfig(data=env_data, split="test", episode_steps=24),
                  constant(HOLD))
    assert bt.tiles >= 2
    assert (bt.equity == 100_000.0).all() and bt.metrics.trades == 0
    assert bt.turnover_contracts == 0 and bt.metrics.sharpe == 0.0


def test_constant_long_pnl_matches_a_hand_computation(env_data: DataConfig) -> None:
    cfg = EnvConfig(data=env_data, split="test", episode_steps=24)
    bt = backtest("strategic_v0", cfg, constant(LONG))
    env = env_class("strategic_v0")(cfg)
    c = env.market.contract
    ohlc = np.asarray(env._ohlc)
    # b = 1, rho = 0.5: target floor(0.5 * 5 + 0.5) = 3 contracts, bought at the open of
    # each tile's first executed bar plus one tick, closed at the tile's last close paying
    # commission and one tick of slippage.
    expected = 0.0
    for start in env._tiles.tolist():
        entry = ohlc[start + 1, 0] + c.slippage_ticks * c.tick_size
        exit_ = ohlc[start + 24, 3]
        expected += 3 * c.point_value * (exit_ - entry) - 3 * c.commission \
            - 3 * (c.commission + c.slippage_ticks * c.tick_size * c.point_value)
    assert bt.tiles == len(env._tiles)
    assert bt.metrics.net_pnl == pytest.approx(expected, abs=1e-6)
    assert len(bt.equity) == 24 * bt.tiles
    assert bt.equity.index.is_monotonic_increasing
    last = np.arange(len(bt.positions)) % 24 == 23
    assert (bt.positions[~last] == 3).all() and (bt.positions[last] == 0).all()
    assert bt.turnover_contracts == 6 * bt.tiles  # in and out of every tile
    # Per tile: 3 contracts × (commission + one tick of slippage) on the way in and out.
    per_side = c.commission + c.slippage_ticks * c.tick_size * c.point_value
    assert bt.metrics.costs == pytest.approx(bt.tiles * 6 * per_side)
    assert set(bt.baselines) == {"flat", "buy_and_hold", "random", "rule", ORACLE}


def test_a_rule_reading_the_last_close_trades_like_the_oracle(signal_data: DataConfig) -> None:
    cfg = EnvConfig(data=signal_data, split="test", episode_steps=24)
    env = env_class("strategic_v0")(cfg)
    ohlc = np.asarray(env._ohlc)
    positions = [t + k for t in env._tiles.tolist() for k in range(24)]
    calls = iter(positions)

    def rule(obs: dict[str, Any], decision: bool) -> dict[str, int]:
        # Causal: the sign of the 30-minute bar that has just closed at the position
        # the backtest is at (it visits the tiles in order, 24 steps each).
        pos = next(calls)
        move = ohlc[pos, 3] - ohlc[pos - 1, 3]
        vote = LONG if move > 0 else 4 if move < 0 else HOLD
        return {a: (6 if a == "portfolio" else vote) for a in obs}

    bt = backtest("strategic_v0", cfg, rule)
    assert next(calls, None) is None  # every position visited once
    oracle = bt.baselines[ORACLE]
    assert oracle.sharpe > 5
    assert bt.metrics.sharpe > 0.7 * oracle.sharpe
    assert bt.metrics.sharpe > max(bt.baselines[n].sharpe
                                   for n in ("flat", "random", "buy_and_hold"))


def test_backtest_rejects_random_starts_and_bad_checkpoints(env_data: DataConfig,
                                                            tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="random_start=False"):
        backtest("strategic_v0", EnvConfig(data=env_data, split="test", random_start=True),
                 constant(HOLD))
    with pytest.raises(ConfigError, match="train split needs random_start=False"):
        backtest("strategic_v0", EnvConfig(data=env_data, split="train"), constant(HOLD))
    with pytest.raises(ConfigError, match="unknown env 'strategic_v1'"):
        backtest("strategic_v1", EnvConfig(data=env_data, split="test"), constant(HOLD))
    with pytest.raises(CheckpointError, match="does not exist"):
        load_actors(tmp_path / "missing")
