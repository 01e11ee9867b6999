"""P&L attribution: every table sums to the net P&L; the labels by hand; the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from algospace.config import DataConfig, EnvConfig
from algospace.data.synthetic import SyntheticConfig
from algospace.evaluation.attribution import (
    attribution,
    bar_pnl,
    causal_volatility,
    hour_weekday,
    regime_labels,
    side_labels,
    table,
    volatility_terciles,
)
from algospace.evaluation.backtest import Backtest, backtest
from algospace.evaluation.decisions import LAYER_LABELS
from algospace.evaluation.report import EvaluateConfig, evaluate
from algospace.features.pipeline import prepare
from envs.registry import env_class
from tests.test_cost_sensitivity import random_policy
from tests.test_evaluate_output import _checkpoint

CENT = 0.005


def test_table_by_hand() -> None:
    pnl = np.array([10.0, -5.0, 2.5, 0.25])
    assert table(pnl, ["b", "a", "b", "c"], ("c", "b")) == {
        "c": {"pnl": 0.25, "bars": 1}, "b": {"pnl": 12.5, "bars": 2},
        "a": {"pnl": -5.0, "bars": 1}}


def test_bar_pnl_is_the_change_in_equity() -> None:
    equity = pd.Series([100_010.0, 100_005.0, 100_007.5])
    assert bar_pnl(equity, 100_000.0).tolist() == [10.0, -5.0, 2.5]


def test_side_of_a_bar_by_hand() -> None:
    # held long; closed long (flat at the close); opened and stopped inside the bar
    # (flat at both closes, target long); short; flat
    positions = np.array([2, 0, 0, -1, 0, 0])
    targets = np.array([2, 0, 1, -1, 0, 0])
    assert side_labels(positions, targets).tolist() == [
        "long", "long", "long", "short", "short", "flat"]


def test_volatility_is_known_at_the_bar_and_split_in_terciles() -> None:
    rng = np.random.default_rng(0)
    scale = np.repeat([0.001, 0.004, 0.016], 40)
    close = 100 * np.exp(np.cumsum(rng.normal(0, scale)))
    labels = volatility_terciles(close, window=10)
    assert (labels[:6] == "warm-up").all() and "warm-up" not in labels[6:]
    assert labels[30] == "low" and labels[119] == "high"
    # causal: changing the close of bar 60 and later ones leaves the volatility of every
    # bar up to 60 (known at its open) unchanged, and changes bar 61's
    later = close.copy()
    later[60:] *= np.exp(rng.normal(0, 0.05, 60))
    vol, moved = causal_volatility(close, 10), causal_volatility(later, 10)
    assert np.array_equal(vol[:61], moved[:61], equal_nan=True) and vol[61] != moved[61]


@pytest.fixture(scope="module")
def joint(signal_data: DataConfig) -> Backtest:
    """A random team on joint_v0's test split of the built-in market (regimes known)."""
    cfg = EnvConfig(data=signal_data, split="test", episode_steps=48)
    return backtest("joint_v0", cfg, random_policy(env_class("joint_v0")(cfg), 5))


def test_every_table_sums_to_the_net_pnl(joint: Backtest, signal_data: DataConfig) -> None:
    regimes = regime_labels(prepare(signal_data, log=lambda _: None), joint.equity.index)
    assert regimes is not None
    parts = attribution(joint, regimes)
    total = parts["total_net_pnl"]
    assert total == pytest.approx(joint.metrics.net_pnl, abs=CENT)
    tables = {k: v for k, v in parts.items() if k != "total_net_pnl"}
    assert set(tables) == {"hour", "weekday", "volatility", "regime", "side", "layer"}
    for name, rows in tables.items():
        assert abs(sum(r["pnl"] for r in rows.values()) - total) <= CENT, name
        assert sum(r["bars"] for r in rows.values()) == len(joint.equity), name
    assert set(tables["layer"]) <= set(LAYER_LABELS)
    assert {"tactical", "both layers"} <= set(tables["layer"])
    assert set(tables["regime"]) <= {"trend", "range", "volatile"}
    assert tables["layer"].get("none", {"pnl": 0.0})["pnl"] == 0.0
    grid = hour_weekday(joint)
    assert abs(float(grid.to_numpy().sum()) - total) <= CENT


def test_layer_of_strategic_v0_is_strategic(env_data: DataConfig) -> None:
    cfg = EnvConfig(data=env_data, split="test", episode_steps=24)
    bt = backtest("strategic_v0", cfg, random_policy(env_class("strategic_v0")(cfg), 1))
    layers = attribution(bt)["layer"]
    assert set(layers) <= {"strategic", "none"} and "strategic" in layers
    assert "regime" not in attribution(bt)


def test_the_report_carries_both(tmp_path_factory: pytest.TempPathFactory) -> None:
    """evaluate writes the tables, the two PNGs and the page's sections."""
    root = tmp_path_factory.mktemp("attr")
    data = DataConfig(synthetic=SyntheticConfig(days=20, seed=5), split=(0.75, 0.15, 0.1),
                      cache_dir=str(root / "cache"))
    checkpoint = _checkpoint(root / "ck", "strategic_v0", EnvConfig(data=data,
                                                                     episode_steps=24))
    out = root / "report"
    evaluate(EvaluateConfig(str(checkpoint), out=str(out), random_seeds=2, bootstrap=100,
                            gates=None), log=lambda _: None)
    report: dict[str, Any] = json.loads((out / "report.json").read_text())
    rows = {r["multiple"]: r for r in report["cost_sensitivity"]["rows"]}
    assert rows[1.0]["net_pnl"] == pytest.approx(report["agents"]["net_pnl"], abs=1e-6)
    parts = report["attribution"]
    assert parts["total_net_pnl"] == pytest.approx(report["agents"]["net_pnl"], abs=CENT)
    assert "regime" in parts and "layer" in parts
    for name in ("costs.png", "hours.png"):
        assert (out / name).stat().st_size > 1000, name
    page = Path(out / "report.html").read_text()
    assert "Cost sensitivity" in page and "P&L attribution" in page
    assert "session hour" in page and "hidden regime" in page
