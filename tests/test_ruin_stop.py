"""The account's ruin stop: hand-worked fills, gaps, the nearer stop, refused orders, and a
property: without gaps no equity is ever below the ruin level.

ES: $50 a point, tick 0.25, commission $2.50 a side, slippage one tick. Ruin at $99,000 on
$100,000. Bar 0 buys 2 at 4000 + 0.25 = 4000.25 (commission $5); the ruin stop's fill is
4000.25 + (99,000 - 100,000 + 5 + 5) / (2 × 50) = 3990.35, its trigger 3990.35 + 0.25 = 3990.60.
"""

from __future__ import annotations

import numpy as np
import pytest

from algospace.data.contracts import get_contract
from algospace.errors import ConfigError
from algospace.market import Account, simulate

ES = get_contract("ES")
RUIN = 99_000.0


def long_two() -> Account:
    acct = Account(ES, ruin_level=RUIN)
    acct.step(2, 4000, 4002, 3999, 4001)
    assert acct.equity == 100_070.0  # 100,000 - 5 + (4001 - 4000.25) × 2 × 50
    assert acct.ruin_trigger() == pytest.approx(3990.60)
    return acct


def test_touched_inside_the_bar_lands_exactly_on_the_level() -> None:
    acct = long_two()
    change = acct.step(2, 4000, 4001, 3985, 3987)
    assert (acct.position, acct.ruined, acct.ruin_t, acct.last_exit) == (0, True, 1, "ruin")
    assert acct.equity == pytest.approx(RUIN, abs=1e-6)
    assert change == pytest.approx(RUIN - 100_070.0, abs=1e-6)
    fill = acct.fills().iloc[-1]
    assert (fill.qty, fill.reason) == (-2, "ruin") and fill.price == pytest.approx(3990.35)
    # ruined: every later target is ignored, the account stays flat and its equity fixed
    for _ in range(3):
        assert acct.step(-2, 3987, 3990, 3980, 3982) == 0.0
    assert (acct.position, acct.n_fills) == (0, 2)


def test_short_mirrored() -> None:
    acct = Account(ES, ruin_level=RUIN)
    acct.step(-2, 4000, 4001, 3998, 3999)  # sell 2 at 3999.75
    assert acct.ruin_trigger() == pytest.approx(4009.40)  # fill 4009.65, minus a tick
    acct.step(-2, 4000, 4012, 3999, 4010)
    assert acct.ruined and acct.equity == pytest.approx(RUIN, abs=1e-6)
    assert acct.fills().iloc[-1].price == pytest.approx(4009.65)


def test_a_gap_through_the_trigger_sells_at_the_open_below_the_level() -> None:
    acct = long_two()
    acct.step(2, 3980, 3981, 3975, 3978)
    # sold at 3980 - 0.25: (3979.75 - 4000.25) × 100 = -2,050; realised -5 - 2,050 - 5
    assert acct.ruined and acct.equity == pytest.approx(100_000 - 2_060.0)


def test_the_nearer_bracket_stop_fires_first() -> None:
    acct = Account(ES, ruin_level=RUIN)
    acct.step(2, 4000, 4002, 3999, 4001, stop_distance=4.0)  # stop 3996.25, nearer
    acct.step(2, 4000, 4001, 3985, 3987)
    assert (acct.last_exit, acct.ruined, acct.position) == ("stop", False, 0)
    assert acct.equity == pytest.approx(100_000 - 5 + (3996.0 - 4000.25) * 100 - 5)


def test_an_order_whose_costs_would_cross_the_level_is_not_placed() -> None:
    acct = Account(ES, ruin_level=99_950.0, initial_equity=100_000.0)
    # buying 2 costs 2 × (2.5 + 12.5) and exiting them as much: 100,000 - 60 < 99,950
    acct.step(2, 4000, 4001, 3999, 4000)
    assert (acct.position, acct.n_fills, acct.ruined) == (0, 0, False)
    acct.step(1, 4000, 4001, 4000, 4000)  # 1 contract: 100,000 - 30 > 99,950: placed
    assert acct.position == 1 and acct.ruin_trigger() == pytest.approx(3999.60)


def test_reset_keeps_the_level_and_clears_the_ruin() -> None:
    acct = long_two()
    acct.step(2, 4000, 4001, 3985, 3987)
    acct.reset()
    assert (acct.ruined, acct.ruin_t, acct.ruin_level) == (False, -1, RUIN)
    acct.step(1, 4000, 4001, 3999, 4000)
    assert acct.position == 1


def test_no_ruin_level_changes_nothing() -> None:
    rng = np.random.default_rng(3)
    c = 4000 + np.cumsum(rng.normal(0, 4, 500)).round(2)
    o = np.r_[4000, c[:-1]]
    h, lo = np.maximum(o, c) + 1, np.minimum(o, c) - 1
    targets = rng.integers(-3, 4, 500)
    a, _ = simulate(ES, targets, o, h, lo, c)
    b, acct = simulate(ES, targets, o, h, lo, c, ruin_level=-1e12)
    assert np.array_equal(a, b) and not acct.ruined


@pytest.mark.parametrize("seed", range(20))
def test_without_gaps_equity_never_goes_below_the_level(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 2_000
    c = 4000 + np.cumsum(rng.normal(-0.5, 6, n)).round(2)  # drifts down, wide bars
    o = np.r_[4000, c[:-1]]  # each bar opens at the last close: no gap
    h = np.maximum(o, c) + rng.uniform(0, 8, n)
    lo = np.minimum(o, c) - rng.uniform(0, 8, n)
    targets = rng.integers(-5, 6, n)
    equity, acct = simulate(ES, targets, o, h, lo, c, max_position=5, ruin_level=90_000.0)
    assert equity.min() >= 90_000.0 - 1e-6
    if acct.ruined:
        assert np.all(equity[acct.ruin_t:] == equity[acct.ruin_t])


@pytest.mark.parametrize("level", [100_000.0, float("nan"), True, "50000"])
def test_bad_ruin_level(level: object) -> None:
    with pytest.raises(ConfigError, match="ruin_level"):
        Account(ES, ruin_level=level)  # type: ignore[arg-type]
