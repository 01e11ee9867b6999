"""The stitched walk-forward record: its cost table, its capture of the oracles, and the
line a walk-forward run ends with (no Ray: each fold's test block is backtested here with a
seeded random team, as the run backtests each fold's best checkpoint)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from algospace.config import DataConfig, EnvConfig, WalkForwardSection
from algospace.evaluation.backtest import Backtest, backtest
from algospace.evaluation.costs import COST_MULTIPLES, break_even, cost_sensitivity
from algospace.evaluation.walkforward_report import (
    FoldRecord,
    cost_lines,
    fold_record,
    walk_forward_report,
    walk_forward_table,
    write_walk_forward,
)
from envs.registry import env_class
from tests.test_cost_sensitivity import random_policy

LAYOUT = WalkForwardSection(folds=3, val_fraction=0.05, test_fraction=0.15, purge_bars=120,
                            embargo_bars=400)
"""3 folds on 30 synthetic days where the embargo cuts a hole in the last fold's training
(the walk-forward tests' shared layout)."""
INITIAL = 100_000.0


@pytest.fixture(scope="module")
def folds(signal_data: DataConfig) -> list[tuple[Backtest, FoldRecord]]:
    """Each fold's test-block backtest (joint_v0, planted signal) and its record."""
    from algospace.features.pipeline import prepare
    from envs.core.data import env_fold

    prepared = prepare(signal_data, log=lambda _: None)
    out = []
    for k in range(LAYOUT.folds):
        cfg = EnvConfig(data=signal_data, episode_steps=48, walk_forward=LAYOUT, fold=k,
                        split="test", random_start=False, initial_equity=INITIAL)
        bt = backtest("joint_v0", cfg, random_policy(env_class("joint_v0")(cfg), k), seed=k)
        blocks = env_fold(prepared, cfg)
        assert blocks is not None
        record = fold_record(k, blocks.as_dict(), f"checkpoint-{k}", bt, {}, INITIAL, seed=k)
        out.append((bt, record))
    return out


@pytest.fixture(scope="module")
def report(folds: list[tuple[Backtest, FoldRecord]]) -> dict[str, Any]:
    """The walk-forward report of the three folds."""
    return walk_forward_report([r for _, r in folds], INITIAL)


def test_stitched_cost_table_chains_each_folds_replays(
        folds: list[tuple[Backtest, FoldRecord]], report: dict[str, Any]) -> None:
    table = report["cost_sensitivity"]
    rows = {r["multiple"]: r for r in table["rows"]}
    assert list(rows) == list(COST_MULTIPLES)
    per_fold = [{r["multiple"]: r for r in cost_sensitivity(bt)["rows"]} for bt, _ in folds]
    assert sum(bt.metrics.trades for bt, _ in folds) > 20
    for m, row in rows.items():  # each multiple: the folds' own replays, summed
        assert row["net_pnl"] == pytest.approx(sum(f[m]["net_pnl"] for f in per_fold),
                                               abs=1e-6)
        assert row["trades"] == sum(f[m]["trades"] for f in per_fold)
        assert row["costs"] == pytest.approx(sum(f[m]["costs"] for f in per_fold), abs=1e-6)
    stitched = report["stitched"]["agents"]  # the 1x row is the stitched record
    assert rows[1.0]["net_pnl"] == pytest.approx(stitched["net_pnl"], abs=1e-6)
    assert rows[1.0]["trades"] == stitched["trades"]
    assert rows[1.0]["costs"] == pytest.approx(stitched["costs"], abs=1e-6)
    assert rows[1.0]["sharpe"] == pytest.approx(stitched["sharpe"], abs=1e-9)
    assert rows[0.0]["costs"] == 0.0 and rows[3.0]["costs"] > 0
    pnls = [r["net_pnl"] for r in table["rows"]]
    assert pnls[0] > pnls[-1]
    assert table["break_even_multiple"] == break_even(list(COST_MULTIPLES), pnls)[0]
    for (bt, _), fold in zip(folds, report["folds"], strict=True):
        mine = cost_sensitivity(bt)
        assert fold["costs"]["break_even_multiple"] == mine["break_even_multiple"]
        assert fold["costs"]["net_pnl"]["2x"] == pytest.approx(mine["rows"][3]["net_pnl"])


def test_stitched_capture_is_the_yardstick_over_all_test_blocks(
        folds: list[tuple[Backtest, FoldRecord]], report: dict[str, Any]) -> None:
    stitched = report["stitched"]["agents"]
    agents_expected = sum(bt.capture["expected_pnl"] for bt, _ in folds)
    oracle_expected = sum(bt.oracles[bt.layer].expected_pnl for bt, _ in folds)
    oracle_net = sum(bt.oracles[bt.layer].metrics.net_pnl for bt, _ in folds)
    joint_expected = sum(bt.oracles["joint"].expected_pnl for bt, _ in folds)
    assert oracle_expected > 0 and oracle_net > 0  # the planted signal pays the oracle
    assert stitched["expected_pnl"] == pytest.approx(agents_expected)
    assert stitched["expected_capture"] == pytest.approx(agents_expected / oracle_expected)
    assert stitched["expected_capture_of_joint_oracle"] == pytest.approx(
        agents_expected / joint_expected)
    assert stitched["capture_of_oracle"] == pytest.approx(
        sum(bt.metrics.net_pnl for bt, _ in folds) / oracle_net)
    for (bt, _), fold in zip(folds, report["folds"], strict=True):  # each fold's own
        assert fold["agents"]["expected_capture"] == bt.capture["expected_capture"]
        assert fold["oracle"]["expected_pnl"] == bt.oracles[bt.layer].expected_pnl
    row = next(line for line in walk_forward_table(report)
               if line.strip().startswith("stitched"))
    assert f"{stitched['expected_capture']:.1%}" in row
    assert f"{stitched['capture_of_oracle']:.1%}" in row


def test_without_the_truth_the_stitched_record_has_no_capture(
        folds: list[tuple[Backtest, FoldRecord]]) -> None:
    records = [r for _, r in folds]
    blind = [*records[:-1], replace(records[-1], oracle={}, capture={})]
    stitched = walk_forward_report(blind, INITIAL)["stitched"]["agents"]
    assert "expected_capture" not in stitched and "capture_of_oracle" not in stitched
    row = next(line for line in walk_forward_table(walk_forward_report(blind, INITIAL))
               if line.strip().startswith("stitched"))
    assert row.split()[-2:] == ["-", "-"]


def test_the_written_record_holds_the_cost_table_and_its_figure(
        folds: list[tuple[Backtest, FoldRecord]], report: dict[str, Any],
        tmp_path: Path) -> None:
    out = write_walk_forward(tmp_path / "walkforward", report, [r for _, r in folds])
    assert {p.name for p in out.iterdir()} == {"report.json", "equity.png", "folds.png",
                                                "costs.png"}
    written = json.loads((out / "report.json").read_text())
    assert [r["multiple"] for r in written["cost_sensitivity"]["rows"]] == list(COST_MULTIPLES)
    lines = cost_lines(report)
    assert len(lines) == 2 + len(COST_MULTIPLES) + 1
    assert lines[-1] == f"[walk-forward] break-even: " \
                        f"{report['cost_sensitivity']['break_even_note']}"
    assert lines[2 + COST_MULTIPLES.index(1.0)].split()[1] == \
        f"{report['stitched']['agents']['net_pnl']:,.0f}"
    assert walk_forward_table(report)[-len(lines):] == lines


def test_a_walk_forward_run_ends_with_its_stitched_record_not_a_best_trial(
        report: dict[str, Any], tmp_path: Path) -> None:
    from algospace.tune.driver import closing_lines
    from algospace.tune.walkforward import summary_entry

    summary = {"name": "walkforward", "experiment_dir": str(tmp_path),
               "best": {"trial": "trial_00002", "params": {"fold": 2},
                        "chosen_by": "best validation", "score": {"value": 1.5}},
               "walk_forward": summary_entry(report, tmp_path / "walkforward")}
    lines: list[str] = []
    closing_lines([summary], lines.append)
    assert not any("best trial" in line for line in lines)
    [line] = [x for x in lines if x.startswith("[run] walk-forward of walkforward: ")]
    a = report["stitched"]["agents"]
    assert "3 test blocks stitched" in line
    assert f"net P&L {a['net_pnl']:,.0f}" in line and f"DSR {a['deflated_sharpe']:.3f}" in line
    assert f"expected capture {a['expected_capture']:.1%}" in line
    assert report["cost_sensitivity"]["break_even_note"] in line
    assert lines[-1] == f"[run] report:  {tmp_path / 'walkforward' / 'report.json'}"
    plain = {k: v for k, v in summary.items() if k != "walk_forward"}
    lines.clear()
    closing_lines([plain], lines.append)  # any other run still names its best trial
    assert lines[0].startswith("[run] best trial of walkforward: trial_00002")
