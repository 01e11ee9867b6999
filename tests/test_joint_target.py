"""joint_v0's target rule, hand-worked: the two layers' positions add (clipped to the
limit), each as its own env would size it, so either layer alone trades as it learned to.

The scalar env and the vectorised env give the same targets (the formula is in
:mod:`envs.joint`'s card).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from algospace.config import DataConfig
from envs.core.layout import STRATEGIC_ACTIONS, TACTICAL_ACTIONS, TACTICAL_VOTERS
from envs.core.vector import VectorEnv
from envs.registry import make_parallel_env

S = {name: i for i, name in enumerate(STRATEGIC_ACTIONS)}
T = {name: i for i, name in enumerate(TACTICAL_ACTIONS)}

CASES = [
    # (vote of mlmi, nwrqk and regime, portfolio action, tactical vote, risk contracts,
    #  expected target as a function of the position limit M). b is the mean of the four
    # strategic agents' votes (portfolio's HOLD votes 0), rho the budget (0.5 at reset,
    # +-0.25 by portfolio), s the tactical voters' mean vote, k the risk agent's contracts:
    # target = sign(c) * floor(|c| * M + 0.5) with c = clip(b * rho + s * k / 5, -1, 1)
    ("BUY_CONSERVATIVE", "HOLD", "HOLD", 5, lambda m: math.floor(0.1875 * m + 0.5)),
    ("HOLD", "HOLD", "BUY_LARGE", 5, lambda m: m),  # the tactical layer alone: full size
    ("SELL_AGGRESSIVE", "HOLD", "HOLD", 5, lambda m: -math.floor(0.375 * m + 0.5)),
    ("BUY_AGGRESSIVE", "HOLD", "BUY_LARGE", 5, lambda m: m),  # 0.375 + 1 clipped to 1
    ("BUY_AGGRESSIVE", "BUY_AGGRESSIVE", "SELL_SMALL", 5, lambda m: 0),  # 0.5 - 0.5
    ("BUY_AGGRESSIVE", "BUY_AGGRESSIVE", "SELL_SMALL", 2, lambda m: math.floor(0.3 * m + 0.5)),
    # INCREASE_RISK at the first decision: rho = 0.75; b = 0.75; s = 0.5 with 4 contracts
    ("BUY_AGGRESSIVE", "INCREASE_RISK", "BUY_SMALL", 4, lambda m: math.floor(0.9625 * m + 0.5)),
    ("HOLD", "HOLD", "SELL_SMALL", 2, lambda m: -math.floor(0.2 * m + 0.5)),
]


def _actions(vote: str, portfolio: str, tactical: str, contracts: int) -> dict[str, object]:
    out: dict[str, object] = {a: S[vote] for a in ("mlmi", "nwrqk", "regime")}
    out["portfolio"] = S[portfolio]
    out.update({a: T[tactical] for a in TACTICAL_VOTERS})
    out["risk"] = np.array([contracts, 1, 1])
    return out


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}+{c[2]}" for c in CASES])
def test_joint_target_adds_the_layers_votes(case: tuple, env_data: DataConfig) -> None:
    vote, portfolio, tactical, contracts, expected = case
    env = make_parallel_env("joint_v0", data=env_data)
    env.reset(seed=0)
    limit = env.max_position
    assert limit >= 5
    want = expected(limit)
    assert env.decide(_actions(vote, portfolio, tactical, contracts)) == want

    venv = VectorEnv("joint_v0", 3, data=env_data)
    venv.reset(seed=[0, 1, 2])
    batch = {a: np.array([v] * 3) for a, v in _actions(vote, portfolio, tactical,
                                                         contracts).items()}
    assert venv.decide(batch).tolist() == [want] * 3


@pytest.mark.parametrize("vote", ["BUY_CONSERVATIVE", "SELL_AGGRESSIVE", "BUY_AGGRESSIVE"])
@pytest.mark.parametrize("portfolio", ["HOLD", "REDUCE_RISK", "INCREASE_RISK"])
def test_either_layer_alone_trades_as_in_its_own_env(vote: str, portfolio: str,
                                                      env_data: DataConfig) -> None:
    """Tactical votes at HOLD: strategic_v0's target; strategic votes at HOLD: tactical_v0's."""
    joint = make_parallel_env("joint_v0", data=env_data)
    joint.reset(seed=0)
    strategic = make_parallel_env("strategic_v0", data=env_data)
    strategic.reset(seed=0)
    acts = _actions(vote, portfolio, "HOLD", 3)
    assert joint.decide(acts) == strategic.decide({a: acts[a] for a in strategic.agents})
    assert joint.max_position == strategic.max_position
    for tactical, contracts in (("BUY_SMALL", 3), ("SELL_LARGE", 4), ("BUY_LARGE", 1)):
        joint = make_parallel_env("joint_v0", data=env_data)
        joint.reset(seed=0)
        alone = make_parallel_env("tactical_v0", data=env_data)
        alone.reset(seed=0)
        acts = _actions("HOLD", "HOLD", tactical, contracts)
        assert joint.decide(acts) == alone.decide({a: acts[a] for a in alone.agents})


def test_the_risk_budget_starts_at_half_in_joint_and_strategic(env_data: DataConfig) -> None:
    for name in ("joint_v0", "strategic_v0"):
        env = make_parallel_env(name, data=env_data)
        env.reset(seed=0)
        assert env._budget == 0.5, name


def test_the_bracket_guards_only_trades_without_a_strategic_part(env_data: DataConfig) -> None:
    """The risk agent's stop and target apply while the strategic part is 0 contracts."""
    env = make_parallel_env("joint_v0", data=env_data)
    env.reset(seed=0)
    env.decide(_actions("HOLD", "HOLD", "BUY_LARGE", 5))  # the tactical layer alone
    stop, target = env.stop_and_target()
    assert 0 < stop < target
    env.reset(seed=0)
    assert env.decide(_actions("BUY_AGGRESSIVE", "HOLD", "BUY_LARGE", 5)) == env.max_position
    assert all(math.isnan(d) for d in env.stop_and_target())  # a strategic part: no bracket

    venv = VectorEnv("joint_v0", 2, data=env_data)
    venv.reset(seed=[0, 0])
    acts = [_actions("HOLD", "HOLD", "BUY_LARGE", 5),
            _actions("BUY_AGGRESSIVE", "HOLD", "BUY_LARGE", 5)]
    venv.decide({a: np.array([acts[0][a], acts[1][a]]) for a in acts[0]})
    venv.execute(np.array([env.max_position] * 2))
    stops = venv.account.stop_price
    assert np.isfinite(stops[0]) and np.isnan(stops[1])


def test_a_bracket_exit_does_not_block_the_strategic_part(env_data: DataConfig) -> None:
    """After a stop or target exit the tactical layer stays out while it points the same way;
    a strategic part in that direction still trades."""
    env = make_parallel_env("joint_v0", data=env_data)
    env.reset(seed=0)
    env._blocked = 1  # as after a long position's bracket exit
    assert env.decide(_actions("HOLD", "HOLD", "BUY_LARGE", 5)) == 0
    env.reset(seed=0)
    env._blocked = 1
    assert env.decide(_actions("BUY_AGGRESSIVE", "HOLD", "BUY_LARGE", 5)) == env.max_position
    assert env._blocked == 0
