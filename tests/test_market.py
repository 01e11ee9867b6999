"""Futures account simulator: golden tests with hand-worked numbers.

ES unless noted: point value $50, tick 0.25 pt, commission $2.50 per contract per
side, slippage 1 tick = 0.25 pt = $12.50 per contract per side. Buys fill at
open + 0.25, sells at open - 0.25.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from algospace.data.contracts import get_contract
from algospace.errors import ConfigError
from algospace.market import Account, simulate

ES = get_contract("ES")
E0 = 100_000.0


def new(**kwargs: object) -> Account:
    return Account(ES, **kwargs)  # type: ignore[arg-type]


def long_one_with_bracket(acct: Account) -> None:
    """Bar 0: buy 1 at 4000 + 0.25 = 4000.25; stop 4000.25 - 4 = 3996.25; target 4008.25."""
    acct.step(1, 4000, 4002, 3999, 4001, stop_distance=4.0, target_distance=8.0)
    assert (acct.stop_price, acct.target_price) == (3996.25, 4008.25)
    # equity = 100000 - 2.5 (commission) + (4001 - 4000.25) * 50 = 100035
    assert acct.equity == 100_035.0


def short_one_with_bracket(acct: Account) -> None:
    """Bar 0: sell 1 at 4000 - 0.25 = 3999.75; stop 3999.75 + 4 = 4003.75; target 3991.75."""
    acct.step(-1, 4000, 4001, 3998, 3999, stop_distance=4.0, target_distance=8.0)
    assert (acct.stop_price, acct.target_price) == (4003.75, 3991.75)
    # equity = 100000 - 2.5 - (3999 - 3999.75) * 50 = 100035
    assert acct.equity == 100_035.0


def test_long_round_trip() -> None:
    acct = new()
    # Buy 2 at 4000.25: commission 2 * 2.5 = 5; unrealised 2 * (4002 - 4000.25) * 50 = 175
    # equity 100000 - 5 + 175 = 100170
    assert acct.step(2, 4000, 4005, 3995, 4002) == 170.0
    assert (acct.position, acct.entry_price, acct.unrealised) == (2, 4000.25, 175.0)
    # Hold: unrealised 2 * (4010 - 4000.25) * 50 = 975 -> +800
    assert acct.step(2, 4002, 4012, 4001, 4010) == 800.0
    # Sell 2 at 4010 - 0.25 = 4009.75: gross (4009.75 - 4000.25) * 2 * 50 = 950
    # realised -5 + 950 - 5 = 940; equity 100940 -> 100940 - 100970 = -30
    assert acct.step(0, 4010, 4011, 4005, 4008) == -30.0
    assert (acct.position, acct.realised, acct.unrealised) == (0, 940.0, 0.0)
    assert acct.equity == 100_940.0
    assert math.isnan(acct.entry_price)
    assert acct.commissions == 10.0  # 4 contract-sides * 2.5
    assert acct.slippage_cost == 50.0  # 4 contract-sides * 12.5
    # Cross-check: price move (4010 - 4000) * 2 * 50 = 1000 minus 4 sides * (2.5 + 12.5) = 940
    assert acct.equity - E0 == 1000.0 - 4 * ES.cost_per_side
    assert (acct.n_fills, acct.turnover) == (2, 4)
    fills = acct.fills()
    assert list(fills.columns) == ["t", "qty", "price", "commission", "slippage", "reason"]
    assert fills.to_dict("records") == [
        # slippage: 2 contracts * $12.50
        {"t": 0, "qty": 2, "price": 4000.25, "commission": 5.0, "slippage": 25.0,
         "reason": "order"},
        {"t": 2, "qty": -2, "price": 4009.75, "commission": 5.0, "slippage": 25.0,
         "reason": "order"},
    ]
    assert acct.trades().to_dict("records") == [{
        "entry_t": 0, "exit_t": 2, "direction": 1, "contracts": 2, "entry_price": 4000.25,
        "exit_price": 4009.75, "pnl_gross": 950.0, "commission": 10.0, "pnl_net": 940.0,
        "exit_reason": "order",
    }]


def test_short_round_trip() -> None:
    acct = new()
    # Sell 1 at 3999.75: unrealised -(3995 - 3999.75) * 50 = 237.5; equity 100000 - 2.5 + 237.5
    assert acct.step(-1, 4000, 4001, 3990, 3995) == 235.0
    # Buy 1 at 3990.25: gross (3999.75 - 3990.25) * 50 = 475; realised -2.5 + 475 - 2.5 = 470
    # equity 100470; change 100470 - 100235 = 235
    assert acct.step(0, 3990, 3992, 3985, 3988) == 235.0
    assert (acct.realised, acct.equity) == (470.0, 100_470.0)
    # Cross-check: (4000 - 3990) * 50 = 500 minus 2 sides * 15 = 470
    trade = acct.trades().iloc[0]
    assert (trade.direction, trade.entry_price, trade.exit_price) == (-1, 3999.75, 3990.25)
    assert (trade.pnl_gross, trade.commission, trade.pnl_net) == (475.0, 5.0, 470.0)


def test_long_stop_hit_fills_at_stop_minus_slippage() -> None:
    acct = new()
    long_one_with_bracket(acct)
    # l = 3995 <= 3996.25: stop sells at 3996.25 - 0.25 = 3996.00
    # gross (3996 - 4000.25) * 50 = -212.5; realised -2.5 - 212.5 - 2.5 = -217.5
    # equity 99782.5; change 99782.5 - 100035 = -252.5
    assert acct.step(1, 4000, 4001, 3995, 3997) == -252.5
    assert (acct.position, acct.realised, acct.equity) == (0, -217.5, 99_782.5)
    assert (acct.last_exit, acct.last_exit_direction, acct.bars_in_trade) == ("stop", 1, 0)
    assert math.isnan(acct.stop_price) and math.isnan(acct.target_price)
    assert acct.fills().iloc[-1].to_dict() == {
        "t": 1, "qty": -1, "price": 3996.0, "commission": 2.5, "slippage": 12.5, "reason": "stop"}
    assert acct.trades().iloc[0].exit_reason == "stop"
    # Next step: the exit flags are cleared; the agent's target 1 re-enters (no bracket now).
    acct.step(1, 3997, 3998, 3996, 3997)
    assert (acct.last_exit, acct.last_exit_direction, acct.position) == ("", 0, 1)


def test_stop_on_the_entry_bar() -> None:
    acct = new()
    # Buy at 4000.25, stop 3996.25; the same bar reaches 3990: stop at 3996.00, realised -217.5
    acct.step(1, 4000, 4001, 3990, 3995, stop_distance=4.0)
    assert (acct.position, acct.realised, acct.last_exit, acct.bars_in_trade) == (0, -217.5,
                                                                                  "stop", 0)


def test_short_stop_hit_fills_at_stop_plus_slippage() -> None:
    acct = new()
    short_one_with_bracket(acct)
    # h = 4004 >= 4003.75: stop buys at 4003.75 + 0.25 = 4004.00
    # gross (3999.75 - 4004) * 50 = -212.5; realised -2.5 - 212.5 - 2.5 = -217.5
    acct.step(-1, 4000, 4004, 3999, 4002)
    assert (acct.position, acct.realised, acct.last_exit, acct.last_exit_direction) == (
        0, -217.5, "stop", -1)
    assert acct.fills().price.iloc[-1] == 4004.0


def test_long_target_hit_fills_at_target_without_slippage() -> None:
    acct = new()
    long_one_with_bracket(acct)
    # h = 4010 >= 4008.25: limit sells at 4008.25 exactly
    # gross (4008.25 - 4000.25) * 50 = 400; realised -2.5 + 400 - 2.5 = 395; change 395 - 35 = 360
    assert acct.step(1, 4005, 4010, 4004, 4009) == 360.0
    assert (acct.position, acct.realised, acct.last_exit, acct.last_exit_direction) == (
        0, 395.0, "target", 1)
    assert acct.slippage_cost == 12.5  # entry only
    last = acct.fills().iloc[-1]
    assert (last.price, last.slippage, last.reason) == (4008.25, 0.0, "target")


def test_short_target_hit() -> None:
    acct = new()
    short_one_with_bracket(acct)
    # l = 3990 <= 3991.75: limit buys at 3991.75; gross (3999.75 - 3991.75) * 50 = 400
    acct.step(-1, 3995, 3996, 3990, 3992)
    assert (acct.realised, acct.last_exit, acct.last_exit_direction) == (395.0, "target", -1)


def test_bar_touching_stop_and_target_exits_at_stop() -> None:
    acct = new()
    long_one_with_bracket(acct)
    # l = 3990 <= 3996.25 and h = 4010 >= 4008.25: stop wins, 3996.00, realised -217.5
    acct.step(1, 4001, 4010, 3990, 4005)
    assert (acct.last_exit, acct.realised) == ("stop", -217.5)
    acct = new()
    short_one_with_bracket(acct)
    # h = 4010 >= 4003.75 and l = 3990 <= 3991.75: stop at 4003.75 + 0.25, realised -217.5
    acct.step(-1, 3999, 4010, 3990, 4005)
    assert (acct.last_exit, acct.realised) == ("stop", -217.5)


def test_gap_through_stop_fills_at_open() -> None:
    acct = new()
    long_one_with_bracket(acct)
    # Opens at 3990 <= 3996.25: sell at 3990 - 0.25 = 3989.75 (not at the stop)
    # gross (3989.75 - 4000.25) * 50 = -525; realised -2.5 - 525 - 2.5 = -530
    acct.step(1, 3990, 3992, 3985, 3991)
    assert (acct.last_exit, acct.realised, acct.fills().price.iloc[-1]) == ("stop", -530.0, 3989.75)
    acct = new()
    short_one_with_bracket(acct)
    # Opens at 4010 >= 4003.75: buy at 4010.25; gross (3999.75 - 4010.25) * 50 = -525
    acct.step(-1, 4010, 4012, 4008, 4009)
    assert (acct.last_exit, acct.realised, acct.fills().price.iloc[-1]) == ("stop", -530.0, 4010.25)


def test_gap_through_target_fills_at_open() -> None:
    acct = new()
    long_one_with_bracket(acct)
    # Opens at 4012 >= 4008.25: limit fills at the better open 4012, no slippage
    # gross (4012 - 4000.25) * 50 = 587.5; realised -2.5 + 587.5 - 2.5 = 582.5
    acct.step(1, 4012, 4015, 4011, 4013)
    assert (acct.last_exit, acct.realised, acct.fills().price.iloc[-1]) == ("target", 582.5, 4012.0)
    # Opened through the target and then fell through the stop: the limit filled at the open,
    # before anything else happened, so it is still the target (same 582.5).
    acct = new()
    long_one_with_bracket(acct)
    acct.step(1, 4012, 4012, 3990, 3991)
    assert (acct.last_exit, acct.realised) == ("target", 582.5)


def test_reversal_long_two_to_short_three() -> None:
    acct = new()
    # Bar 0: buy 2 at 4000.25 (stop 3996.25, target 4008.25); equity 100000 - 5 + 175 = 100170
    acct.step(2, 4000, 4004, 3998, 4002, stop_distance=4.0, target_distance=8.0)
    # Bar 1: sell 5 at 4004 - 0.25 = 4003.75; commission 5 * 2.5 = 12.5
    # closes 2: gross (4003.75 - 4000.25) * 2 * 50 = 350; realised -5 + 350 - 12.5 = 332.5
    # opens short 3 at 4003.75: stop 4003.75 + 5 = 4008.75, target 4003.75 - 10 = 3993.75
    # unrealised -3 * (4001 - 4003.75) * 50 = 412.5; equity 100745; change 575
    assert acct.step(-3, 4004, 4006, 4000, 4001, stop_distance=5.0, target_distance=10.0) == 575.0
    assert (acct.position, acct.entry_price, acct.stop_price, acct.target_price) == (
        -3, 4003.75, 4008.75, 3993.75)
    assert (acct.realised, acct.unrealised, acct.equity) == (332.5, 412.5, 100_745.0)
    assert (acct.commissions, acct.turnover, acct.n_fills, acct.bars_in_trade) == (17.5, 7, 2, 1)
    last = acct.fills().iloc[-1]
    assert (last.qty, last.commission, last.slippage) == (-5, 12.5, 62.5)  # 5 * 12.5 slippage
    # Bar 2: buy 3 at 4000.25: gross (4003.75 - 4000.25) * 3 * 50 = 525; commission 7.5
    # realised 332.5 + 525 - 7.5 = 850
    acct.step(0, 4000, 4001, 3999, 4000)
    assert acct.realised == 850.0
    trades = acct.trades()
    # First trade: commission 5 (entry) + 2 * 2.5 (its share of the reversal) = 10, net 340.
    # Second: 3 * 2.5 (share of the reversal) + 7.5 (exit) = 15, net 525 - 15 = 510.
    assert trades[["entry_t", "exit_t", "direction", "contracts"]].values.tolist() == [
        [0, 1, 1, 2], [1, 2, -1, 3]]
    assert trades[["entry_price", "exit_price", "pnl_gross", "commission", "pnl_net"]
                  ].values.tolist() == [[4000.25, 4003.75, 350.0, 10.0, 340.0],
                                        [4003.75, 4000.25, 525.0, 15.0, 510.0]]
    assert trades.pnl_net.sum() == acct.realised  # 340 + 510 = 850


def test_scaling_in_and_out() -> None:
    acct = new()
    # Bar 0: buy 1 at 4000.25; stop 4000.25 - 10 = 3990.25; target 4000.25 + 20 = 4020.25
    acct.step(1, 4000, 4002, 3999, 4001, stop_distance=10.0, target_distance=20.0)
    # Bar 1: add 1 at 4010.25 -> average (4000.25 + 4010.25) / 2 = 4005.25. The bracket is
    # kept: the new 0.5 stop distance (would be 4009.75, touched by l = 4009) is ignored.
    acct.step(2, 4010, 4012, 4009, 4011, stop_distance=0.5, target_distance=0.5)
    assert (acct.position, acct.entry_price, acct.stop_price, acct.target_price) == (
        2, 4005.25, 3990.25, 4020.25)
    # unrealised 2 * (4011 - 4005.25) * 50 = 575; realised -2.5 - 2.5 = -5
    assert (acct.unrealised, acct.realised, acct.last_exit) == (575.0, -5.0, "")
    # Bar 2: sell 1 at 4014.75: gross (4014.75 - 4005.25) * 50 = 475; realised -5 + 475 - 2.5
    acct.step(1, 4015, 4016, 4014, 4015)
    assert (acct.position, acct.entry_price, acct.realised) == (1, 4005.25, 467.5)
    assert (acct.stop_price, acct.target_price, acct.bars_in_trade) == (3990.25, 4020.25, 3)
    # unrealised (4015 - 4005.25) * 50 = 487.5; equity 100000 + 467.5 + 487.5
    assert acct.equity == 100_955.0
    # Bar 3: h = 4021 >= 4020.25: target; gross (4020.25 - 4005.25) * 50 = 750
    # realised 467.5 + 750 - 2.5 = 1215
    acct.step(1, 4018, 4021, 4017, 4020)
    assert (acct.realised, acct.last_exit) == (1215.0, "target")
    # Round trip: entry avg (4000.25 + 4010.25) / 2 = 4005.25; exit avg (4014.75 + 4020.25) / 2
    # = 4017.5; gross 475 + 750 = 1225; commission 4 * 2.5 = 10; net 1215
    assert acct.trades().iloc[0].to_dict() == {
        "entry_t": 0, "exit_t": 3, "direction": 1, "contracts": 2, "entry_price": 4005.25,
        "exit_price": 4017.5, "pnl_gross": 1225.0, "commission": 10.0, "pnl_net": 1215.0,
        "exit_reason": "target"}


def test_target_is_clipped_to_max_position() -> None:
    acct = new(max_position=2)
    acct.step(5, 4000, 4000, 4000, 4000)
    assert (acct.position, acct.turnover) == (2, 2)
    acct.step(-7, 4000, 4000, 4000, 4000)  # -2: sells 4
    assert (acct.position, acct.turnover) == (-2, 6)


def test_nan_bracket_never_exits() -> None:
    acct = new()
    acct.step(1, 4000, 4000, 4000, 4000)
    assert math.isnan(acct.stop_price) and math.isnan(acct.target_price)
    acct.step(1, 4000, 9000, 1000, 4000)
    assert (acct.position, acct.last_exit, acct.n_fills) == (1, "", 1)
    # Only a target: the huge low does nothing.
    acct = new()
    acct.step(1, 4000, 4000, 4000, 4000, target_distance=100.0)
    acct.step(1, 4000, 4050, 1000, 4000)
    assert acct.position == 1


def test_drawdown_and_bars_in_trade() -> None:
    acct = new()
    seen = []
    bars = [(1, 4000, 4000, 4000, 4000), (1, 4000, 4010, 4000, 4010),
            (1, 4010, 4010, 4002, 4002), (1, 4002, 4006, 4002, 4006), (0, 4006, 4006, 4006, 4006)]
    for bar in bars:
        acct.step(*bar)
        seen.append((acct.equity, acct.peak_equity, acct.drawdown, acct.max_drawdown,
                     acct.bars_in_trade))
    assert seen == [
        # buy at 4000.25: 100000 - 2.5 + (4000 - 4000.25) * 50 = 99985; peak 100000; dd 15
        (99_985.0, 100_000.0, 15.0, 15.0, 1),
        # (4010 - 4000.25) * 50 = 487.5 -> 100485, new peak
        (100_485.0, 100_485.0, 0.0, 15.0, 2),
        # (4002 - 4000.25) * 50 = 87.5 -> 100085; dd 400
        (100_085.0, 100_485.0, 400.0, 400.0, 3),
        # (4006 - 4000.25) * 50 = 287.5 -> 100285; dd 200
        (100_285.0, 100_485.0, 200.0, 400.0, 4),
        # sell at 4005.75: gross 5.5 * 50 = 275; realised -2.5 + 275 - 2.5 = 270; dd 215
        (100_270.0, 100_485.0, 215.0, 400.0, 0),
    ]


def test_reset() -> None:
    acct = new()
    acct.step(2, 4000, 4005, 3995, 4002, stop_distance=4.0)
    acct.step(0, 4010, 4011, 4005, 4008)
    acct.step(-1, 4010, 4011, 4005, 4008)
    acct.reset()
    assert (acct.position, acct.equity, acct.peak_equity, acct.realised, acct.unrealised) == (
        0, E0, E0, 0.0, 0.0)
    assert (acct.commissions, acct.slippage_cost, acct.drawdown, acct.max_drawdown) == (0, 0, 0, 0)
    assert (acct.bars_in_trade, acct.n_fills, acct.turnover, acct.last_exit) == (0, 0, 0, "")
    assert math.isnan(acct.entry_price) and math.isnan(acct.stop_price)
    assert acct.fills().empty and acct.trades().empty
    assert list(acct.trades().columns)[-1] == "exit_reason"
    # t defaults to the number of steps since reset
    acct.step(1, 4000, 4000, 4000, 4000)
    assert acct.fills().t.tolist() == [0]


def test_flipping_every_bar_pays_exact_costs() -> None:
    acct = new()
    targets = [1, -1] * 5 + [0]
    returns = [acct.step(tg, 4000.0, 4000.0, 4000.0, 4000.0) for tg in targets]
    # Contracts traded: 1 (open) + 9 reversals * 2 + 1 (close) = 20 contract-sides, each costing
    # 2.5 + 12.5 = 15 -> 300. Bar 0: -2.5 commission - 12.5 (bought 0.25 above the close) =
    # -15; each reversal closes at a 0.5 pt loss (-25, of which 12.5 was already marked), pays
    # 5 commission and marks the new side at -12.5: -12.5 - 5 - 12.5 = -30; the close: -15.
    assert returns == [-15.0] + [-30.0] * 9 + [-15.0]
    assert acct.equity == E0 - 300.0 == E0 - 20 * ES.cost_per_side
    assert (acct.commissions, acct.slippage_cost, acct.turnover) == (50.0, 250.0, 20)
    assert acct.trades().pnl_net.tolist() == [-30.0] * 10  # 2 sides * 15 each


def test_invariants_on_a_random_walk() -> None:
    rng = np.random.default_rng(7)
    n = 500
    c = 4000 + np.cumsum(rng.integers(-8, 9, n)) * 0.25
    o = np.r_[4000.0, c[:-1]] + rng.integers(-2, 3, n) * 0.25
    h = np.maximum(o, c) + rng.integers(0, 8, n) * 0.25
    l = np.minimum(o, c) - rng.integers(0, 8, n) * 0.25  # noqa: E741
    targets = rng.integers(-6, 7, n)
    targets[-1] = 0
    acct = new()
    total = sum(acct.step(int(targets[i]), o[i], h[i], l[i], c[i], stop_distance=3.0,
                          target_distance=5.0, t=i) for i in range(n))
    assert total == pytest.approx(acct.equity - E0, abs=1e-9)
    assert type(acct.equity) is float and type(acct.position) is int
    assert acct.position == 0 and acct.unrealised == 0.0
    fills, trades = acct.fills(), acct.trades()
    assert acct.realised == pytest.approx(trades.pnl_net.sum(), abs=1e-6)
    # Flat: P&L = -(sum of signed qty * price) * 50 - commissions
    cash = -(fills.qty * fills.price).sum() * ES.point_value - fills.commission.sum()
    assert acct.realised == pytest.approx(cash, abs=1e-6)
    assert acct.commissions == pytest.approx(fills.commission.sum())
    assert acct.slippage_cost == pytest.approx(fills.slippage.sum())
    assert acct.turnover == fills.qty.abs().sum() and acct.n_fills == len(fills)
    assert set(fills.reason) <= {"order", "stop", "target"}
    assert acct.max_drawdown >= acct.drawdown >= 0.0


def test_simulate() -> None:
    # Same bars as test_long_round_trip: equity 100170, 100970, 100940
    equity, acct = simulate(ES, [2, 2, 0], [4000, 4002, 4010], [4005, 4012, 4011],
                            [3995, 4001, 4005], [4002, 4010, 4008])
    assert equity.tolist() == [100_170.0, 100_970.0, 100_940.0]
    assert acct.trades().pnl_net.tolist() == [940.0]
    # A 4-point stop from 4000.25 is 3996.25; bar 1's low 3996 hits it: sell at 3996.00,
    # realised -2.5 + (3996 - 4000.25) * 50 - 2.5 = -217.5.
    equity, acct = simulate(ES, np.array([1, 1]), np.array([4000.0, 4000.0]),
                            np.array([4001.0, 4001.0]), np.array([3999.0, 3996.0]),
                            np.array([4000.0, 3998.0]), stop_distance=4.0)
    assert (acct.last_exit, equity[-1]) == ("stop", E0 - 217.5)
    with pytest.raises(ConfigError, match="equal length"):
        simulate(ES, [1, 1], [4000.0], [4000.0], [4000.0], [4000.0])
    with pytest.raises(ConfigError, match="one value per bar"):
        simulate(ES, [1], [4000.0], [4000.0], [4000.0], [4000.0], stop_distance=[1.0, 2.0])


@pytest.mark.parametrize("value", [0, -1, 2.5, True, "5"])
def test_bad_max_position(value: object) -> None:
    with pytest.raises(ConfigError, match=r"max_position must be an integer >= 1.*got"):
        new(max_position=value)


@pytest.mark.parametrize("value", [0.0, -5.0, math.nan, math.inf])
def test_bad_initial_equity(value: float) -> None:
    with pytest.raises(ConfigError, match=r"initial_equity must be a finite number > 0.*got"):
        new(initial_equity=value)


def test_record_false_has_no_logs() -> None:
    acct = new(record=False)
    acct.step(1, 4000, 4000, 4000, 4000)
    acct.step(0, 4000, 4000, 4000, 4000)
    assert acct.equity == E0 - 30.0  # 2 sides * 15
    with pytest.raises(ConfigError, match="record=True"):
        acct.fills()
