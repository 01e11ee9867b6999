"""Backtests of fixed policies: P&L by hand, tile stitching, ruin, the oracles, errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from algospace.config import DataConfig, EnvConfig
from algospace.errors import CheckpointError, ConfigError
from algospace.evaluation.backtest import backtest
from algospace.evaluation.baselines import baseline_equity
from algospace.evaluation.oracles import LAYERS
from algospace.features.pipeline import prepare
from algospace.training.checkpoint import load_actors
from envs.registry import env_class

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
    cfg = EnvConfig(data=env_data, split="test", episode_steps=24, max_position=5)
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
    assert set(bt.baselines) == {"flat", "buy_and_hold", "random", "rule"}
    assert set(bt.oracles) == set(LAYERS) and bt.layer == "strategic"
    assert not bt.metrics.ruined


def _drift_policy(env: Any, sign: int) -> Any:
    """Votes as the strategic oracle positions itself for the bar about to be traded.

    Causal: the oracle decides on the drifts known at each bar (the generator's truth, read
    here instead of learned). ``portfolio`` raises the risk budget every decision, so the
    agents hold about 3/4 of the limit where the oracle holds all of it.
    """
    truth = prepare(env.config.data).table("synthetic_truth")
    drift = truth["oracle_strategic"].to_numpy()
    close_step = np.asarray(env._close_step)
    positions = iter([t + k for t in env._tiles.tolist() for k in range(24)])

    def act(obs: dict[str, Any], decision: bool) -> dict[str, int]:
        pos = next(positions)
        d = sign * drift[close_step[pos] + 1]  # the first 5-minute bar of the next block
        vote = LONG if d > 0 else 4 if d < 0 else HOLD
        return {a: (6 if a == "portfolio" else vote) for a in obs}

    return act


def test_expected_capture_of_a_policy_that_reads_the_planted_drift(
        signal_data: DataConfig) -> None:
    cfg = EnvConfig(data=signal_data, split="test", episode_steps=24)
    good = backtest("strategic_v0", cfg, _drift_policy(env_class("strategic_v0")(cfg), 1))
    bad = backtest("strategic_v0", cfg, _drift_policy(env_class("strategic_v0")(cfg), -1))
    oracle = good.oracles["strategic"]
    assert oracle.expected_pnl > 0 and oracle.metrics.net_pnl > 0
    # Following the oracle at about 3/4 of its size captures about 3/4 of it.
    assert 0.4 < good.capture["expected_capture"] <= 1.0
    assert bad.capture["expected_capture"] < 0
    assert good.capture["expected_capture_of_joint_oracle"] < good.capture["expected_capture"]
    # The joint oracle knows both components: it expects more than either layer's oracle.
    expected = {layer: run.expected_pnl for layer, run in good.oracles.items()}
    assert expected["joint"] > max(expected["strategic"], expected["tactical"])


def test_every_row_stops_at_ruin_and_its_sharpe_has_the_sign_of_its_pnl(
        signal_data: DataConfig) -> None:
    # A tiny account: churning 5 contracts every bar ruins it; the oracles win.
    cfg = EnvConfig(data=signal_data, split="test", episode_steps=24, max_position=5,
                    initial_equity=3_000.0, ruin_fraction=0.5)
    flip = iter(range(10**6))

    def churn(obs: dict[str, Any], decision: bool) -> dict[str, int]:
        vote = LONG if next(flip) % 2 else 4
        return {a: (6 if a == "portfolio" else vote) for a in obs}

    bt = backtest("strategic_v0", cfg, churn)
    level = bt.ruin_level
    assert level == 1_500.0
    assert bt.metrics.ruined
    eq = bt.equity.to_numpy()
    bar = int(bt.equity.index.get_loc(pd.Timestamp(bt.metrics.ruin_time)))
    assert (eq[:bar] > level).all() and eq[bar] == pytest.approx(level, abs=1e-6)
    assert (eq[bar:] == eq[bar]).all() and (bt.positions[bar:] == 0).all()
    # no curve of the report goes below the ruin level: agents, baselines, oracles
    curves = {"agents": eq, **{f"{k} oracle": v.equity.to_numpy() for k, v in bt.oracles.items()},
              **{name: baseline_equity(name, bt.bars, bt.contract, size=bt.position_limit,
                                       rule_signal=bt.rule_signal, ruin_level=level)[0].to_numpy()
                 for name in bt.baselines}}
    assert {k: float(v.min()) for k, v in curves.items() if v.min() < level - 1e-6} == {}
    assert sum(bt.baselines[k].ruined for k in bt.baselines) >= 1
    rows = {"agents": bt.metrics, **bt.baselines,
            **{f"{k} oracle": v.metrics for k, v in bt.oracles.items()}}
    assert any(m.net_pnl > 0 for m in rows.values())
    assert any(m.net_pnl < 0 for m in rows.values())
    for name, m in rows.items():
        if m.net_pnl != 0:
            assert np.sign(m.sharpe) == np.sign(m.net_pnl), (name, m.sharpe, m.net_pnl)
        assert m.max_drawdown >= -1.0, name


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
