"""Risk limits and the ruin stop: the engine and the backtest agree with them on.

The guard (:mod:`algospace.market.limits`) is tested on its own: the maximum position
clips, the maximum daily loss holds the strategy flat for the rest of the trading day,
the kill file flattens. Then the engine replays the built-in market bar by bar with the
limits on, and the batch backtest runs with the same limits: same positions, equity and
trades, and the limits did change them. The engine's live account carries the backtest's
ruin stop: with a ruin level the actors reach, both stop alike. The kill switch stops the
engine at the bar where the file appears.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from algospace.config import DataConfig
from algospace.data.calendar import trading_day, trading_day_of
from algospace.data.synthetic import SyntheticConfig
from algospace.errors import ConfigError
from algospace.evaluation.backtest import backtest, greedy_policy
from algospace.inference.engine import DecisionEngine
from algospace.market.limits import RiskGuard, RiskLimits
from tests.test_decision_engine import SPLIT, UNGATED, Case, _assert_same_as_batch, _case

DAY1, DAY2 = pd.Timestamp("2024-03-04"), pd.Timestamp("2024-03-05")


# ------------------------------------------------------------------- the guard
def test_max_position_clips_both_sides() -> None:
    guard = RiskGuard(RiskLimits(max_position=2), 100_000.0)
    assert guard.apply(5, day=DAY1, equity=100_000.0) == (2, "max_position")
    assert guard.apply(-3, day=DAY1, equity=100_000.0) == (-2, "max_position")
    assert guard.apply(-2, day=DAY1, equity=100_000.0) == (-2, "")
    assert guard.apply(0, day=DAY1, equity=100_000.0) == (0, "")


def test_daily_loss_is_flat_for_the_rest_of_the_day() -> None:
    """The day's loss counts from the last equity of the previous day; once it reaches the
    limit the target is 0 until the day changes, even if the equity recovers."""
    guard = RiskGuard(RiskLimits(max_daily_loss=500.0), 100_000.0)
    assert guard.apply(3, day=DAY1, equity=99_600.0) == (3, "")  # lost 400: under the limit
    assert guard.apply(3, day=DAY1, equity=99_500.0) == (0, "max_daily_loss")  # lost 500
    assert guard.apply(3, day=DAY1, equity=100_200.0) == (0, "max_daily_loss")  # recovered
    assert guard.day_pnl == pytest.approx(200.0)
    # a new day counts from the last equity of the day before: 100,200
    assert guard.apply(-1, day=DAY2, equity=99_800.0) == (-1, "")  # lost 400 today
    assert guard.apply(-1, day=DAY2, equity=99_700.0) == (0, "max_daily_loss")
    assert guard.day_pnl == pytest.approx(-500.0)


def test_kill_file_flattens(tmp_path: Path) -> None:
    kill = tmp_path / "stop"
    guard = RiskGuard(RiskLimits(kill_file=str(kill), max_position=5), 100_000.0)
    assert guard.apply(2, day=DAY1, equity=100_000.0) == (2, "") and not guard.killed()
    kill.touch()
    assert guard.killed()
    assert guard.apply(2, day=DAY1, equity=100_000.0) == (0, "kill_switch")


def test_the_day_of_one_bar_is_the_calendars() -> None:
    """The engine's day of one bar (a scalar) is the backtest's (an index), across 18:00."""
    times = pd.date_range("2024-03-01 15:00", periods=600, freq="5min")
    assert [trading_day_of(t) for t in times] == list(trading_day(times))
    assert trading_day_of(pd.Timestamp("2024-03-04 17:55")) == DAY1
    assert trading_day_of(pd.Timestamp("2024-03-04 18:00")) == DAY2


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"max_daily_loss": 0}, "max_daily_loss must be a dollar amount > 0"),
    ({"max_daily_loss": float("nan")}, "max_daily_loss must be a dollar amount > 0"),
    ({"max_position": 0}, "max_position must be a whole number of contracts >= 1"),
    ({"max_position": 1.5}, "max_position must be a whole number of contracts >= 1"),
    ({"kill_file": " "}, "kill_file is empty"),
])
def test_bad_limits_are_named(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        RiskLimits(**kwargs)


# ------------------------------------------------------- engine and backtest
@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Case:
    """joint_v0 on the built-in market; these actors (seed 4) hold up to 5 contracts and
    lose about a thousand dollars over the test split."""
    data = DataConfig(synthetic=SyntheticConfig(days=30, seed=9, signal=1.0), split=SPLIT,
                      cache_dir=str(tmp_path_factory.mktemp("limits")))
    return _case("joint_v0", data, seed=4, episode_steps=96)


def _engine(case: Case, limits: RiskLimits | None = None, **env: Any) -> DecisionEngine:
    return DecisionEngine(case.env_name, replace(case.cfg, **env), case.actors, case.meta,
                          config=replace(UNGATED, limits=limits or RiskLimits()),
                          start=case.start)


def test_engine_and_backtest_agree_with_limits_on(case: Case) -> None:
    free = case.batch
    assert np.abs(free.positions).max() == 5
    limits = RiskLimits(max_position=1, max_daily_loss=100.0)
    batch = backtest(case.env_name, case.cfg, greedy_policy(case.actors), limits=limits)
    engine = _engine(case, limits)
    replay = engine.run(case.base)
    _assert_same_as_batch(replace(case, batch=batch), replay, min_changes=2)
    # the limits acted: at most one contract, and a day halted after losing $100
    assert np.abs(batch.positions).max() == 1
    log = replay.decisions
    assert (log["limit"] == "max_position").any()
    halted = log[log["limit"] == "max_daily_loss"]
    assert len(halted) and (halted["target"] == 0).all()
    first = halted.index[0]
    day = trading_day(pd.DatetimeIndex(log["time"] - pd.Timedelta(minutes=5)))
    same_day = day == day[first]
    assert (log["limit"][same_day & (log.index >= first)] == "max_daily_loss").all()
    assert not np.array_equal(batch.positions, free.positions[:len(batch.positions)])


def test_engine_has_the_backtests_ruin_stop(case: Case) -> None:
    """With a ruin level the actors reach ($500 below the start), the engine's account is
    liquidated at the level and stays flat, as the backtest's; without the ruin stop its
    equity would go on below the level."""
    batch = backtest(case.env_name, replace(case.cfg, ruin_fraction=0.005),
                     greedy_policy(case.actors))
    assert batch.metrics.ruined and case.batch.equity.min() < batch.ruin_level - 100
    engine = _engine(case, ruin_fraction=0.005)
    replay = engine.run(case.base)
    assert engine.live.ruined
    _assert_same_as_batch(replace(case, batch=batch), replay, min_changes=2)
    ruined_at = engine.live.ruin_row
    assert ruined_at is not None
    assert replay.equity.iloc[ruined_at] >= batch.ruin_level - 50  # a gap at most
    assert (replay.positions[ruined_at:] == 0).all()
    # what goes out says so: target 0 from the ruin on, though the agents want more
    after = replay.decisions[replay.decisions["time"] > replay.equity.index[ruined_at]]
    assert len(after) and (after["target"] == 0).all()
    assert (after["limit"] == "ruin").any() and (after["wanted"] != 0).any()
    assert replay.equity.iloc[-1] == replay.equity.iloc[ruined_at]


def test_kill_file_stops_the_engine(case: Case, tmp_path: Path) -> None:
    kill = tmp_path / "kill"
    engine = _engine(case, RiskLimits(kill_file=str(kill)))
    bars = case.base[case.base.index >= case.start]
    engine.warm_up(case.base[case.base.index < case.start])
    for k, (when, row) in enumerate(bars.iloc[:60].iterrows()):
        if k == 40:
            kill.touch()
            assert engine.on_bar(when, row) is None
            break
        engine.on_bar(when, row)
    assert engine.decisions and engine.stopped
    assert engine.last_reason.code == "kill_switch" and "target 0" in str(engine.last_reason)
    made = len(engine.decisions)
    kill.unlink()  # stopped for good: later bars are not taken
    for when, row in bars.iloc[40:50].iterrows():
        assert engine.on_bar(when, row) is None
    assert len(engine.decisions) == made and engine.bars_streamed == 40
