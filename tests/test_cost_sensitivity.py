"""Cost sensitivity: the same decisions through the account at scaled costs."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np
import pytest

from algospace.config import DataConfig, EnvConfig
from algospace.data.contracts import ContractSpec
from algospace.evaluation.backtest import Backtest, backtest
from algospace.evaluation.costs import (
    COST_MULTIPLES,
    break_even,
    cost_sensitivity,
    replay,
    scaled_contract,
)
from algospace.evaluation.decisions import Decisions
from envs.registry import env_class

ES = ContractSpec("ES", point_value=50.0, tick_size=0.25, commission=2.5, slippage_ticks=1.0)
"""$15 a contract a side at 1×: $2.50 commission and one $12.50 tick."""
NAN = float("nan")


def decisions(targets: list[int], tiles: list[int]) -> Decisions:
    """No brackets; every target moved by the same layer."""
    n = len(targets)
    return Decisions(np.asarray(targets), np.full(n, NAN), np.full(n, NAN),
                     np.asarray(tiles), np.full(n, "tactical", dtype=object))


def bars(closes: list[float], opens: list[float]) -> np.ndarray:
    """OHLC rows whose high and low are the open and close."""
    o, c = np.asarray(opens, float), np.asarray(closes, float)
    return np.stack([o, np.maximum(o, c), np.minimum(o, c), c], axis=1)


def pnl_at(m: float, d: Decisions, ohlc: np.ndarray, **kw: Any) -> np.ndarray:
    """The replay's per-bar P&L with costs × ``m``."""
    args = {"limit": 5, "initial_equity": 100_000.0, "ruin_level": 50_000.0, **kw}
    return replay(d, ohlc, scaled_contract(ES, m), **args).pnl


def test_two_tiles_by_hand() -> None:
    # tile 0: long 1 from 100 to 102; tile 1: short 2 from 102 to 100. At multiple m a
    # side costs 0.25m points of slippage and 2.5m commission, and each tile's open
    # position is closed at its end for 15m a contract.
    d = decisions([1, 1, -2, -2], [0, 0, 1, 1])
    ohlc = bars([101, 102, 101, 100], [100, 101, 102, 101])
    for m in COST_MULTIPLES:
        pnl = pnl_at(m, d, ohlc)
        tile0 = (102 - (100 + 0.25 * m)) * 50 - 2.5 * m - 15 * m  # 100 - 30m
        tile1 = 2 * ((102 - 0.25 * m) - 100) * 50 - 5 * m - 30 * m  # 200 - 60m
        assert pnl[:2].sum() == pytest.approx(tile0, abs=1e-9)
        assert pnl[2:].sum() == pytest.approx(tile1, abs=1e-9)
        assert pnl[0] == pytest.approx((101 - 100 - 0.25 * m) * 50 - 2.5 * m, abs=1e-9)
        assert pnl.sum() == pytest.approx(300 - 90 * m, abs=1e-9)


def test_break_even_interpolates_between_multiples() -> None:
    # long 1 from 100 to 101 in one tile: 50 - 30m, zero at 5/3
    d = decisions([1, 1], [0, 0])
    ohlc = bars([100.5, 101], [100, 100.5])
    pnls = [float(pnl_at(m, d, ohlc).sum()) for m in COST_MULTIPLES]
    assert pnls == pytest.approx([50 - 30 * m for m in COST_MULTIPLES], abs=1e-9)
    multiple, note = break_even(list(COST_MULTIPLES), pnls)
    assert multiple == pytest.approx(5 / 3) and "1.67" in note


def test_break_even_cases_without_a_crossing() -> None:
    assert break_even([0, 1, 3], [10.0, 5.0, 1.0]) == (None, "none below 3×: still positive "
                                                            "at 3× costs")
    assert break_even([0, 1, 3], [-1.0, -5.0, -9.0])[0] is None
    assert "already" in break_even([0, 1, 3], [0.0, -5.0, -9.0])[1]
    assert break_even([0, 1, 3], [10.0, 0.0, -9.0])[0] == pytest.approx(1.0)


def test_ruin_stops_every_multiple_alike() -> None:
    # $1,000 account, ruin at $500: long 1 ES falls 20 points inside the second bar. The
    # ruin stop sells where equity after the exit lands on the level, at every multiple;
    # the chained account is ruined, so the next tile stays flat whatever it targets.
    d = decisions([1, 1, 1, 1], [0, 0, 1, 1])
    ohlc = np.array([[100, 100, 100, 100], [100, 100, 80, 81],
                     [81, 90, 81, 90], [90, 99, 90, 99]], dtype=float)
    for m in COST_MULTIPLES:
        run = replay(d, ohlc, scaled_contract(ES, m), limit=1, initial_equity=1_000.0,
                     ruin_level=500.0)
        assert run.pnl.sum() == pytest.approx(-500.0, abs=1e-6)
        assert run.ruin_bar == 1 and (run.pnl[2:] == 0).all()


def random_policy(env: Any, seed: int) -> Any:
    """Uniformly random actions for the live agents, from one seeded generator."""
    rng = np.random.default_rng(seed)

    def act(obs: dict[str, Any], decision: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for agent in obs:
            space = env.action_space(agent)
            out[agent] = rng.integers(0, space.nvec) if hasattr(space, "nvec") \
                else int(rng.integers(space.n))
        return out

    return act


@pytest.fixture(scope="module")
def joint(env_data: DataConfig) -> Backtest:
    """A random team on joint_v0's test split (brackets, both layers)."""
    cfg = EnvConfig(data=env_data, split="test", episode_steps=48)
    return backtest("joint_v0", cfg, random_policy(env_class("joint_v0")(cfg), 3))


def test_the_1x_row_is_the_backtest(joint: Backtest) -> None:
    sens = cost_sensitivity(joint)
    rows = {r["multiple"]: r for r in sens["rows"]}
    assert list(rows) == list(COST_MULTIPLES)
    assert joint.metrics.trades > 20
    assert rows[1.0]["net_pnl"] == pytest.approx(joint.metrics.net_pnl, abs=1e-6)
    assert rows[1.0]["trades"] == joint.metrics.trades
    assert rows[1.0]["costs"] == pytest.approx(joint.metrics.costs, abs=1e-6)
    assert rows[1.0]["sharpe"] == pytest.approx(joint.metrics.sharpe, abs=1e-9)
    assert rows[0.0]["costs"] == 0.0


def test_net_pnl_never_increases_with_the_multiple(joint: Backtest) -> None:
    sens = cost_sensitivity(joint, (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0))
    pnls = [r["net_pnl"] for r in sens["rows"]]
    assert all(b <= a + 1e-6 for a, b in pairwise(pnls)), pnls
    assert pnls[0] > pnls[-1] and sens["monotone"]
