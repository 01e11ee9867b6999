"""What a run prints: the progress table's searched values, the best trial at the end, the
regime detector's closing report, and where W&B writes (no Ray started, no training)."""

from __future__ import annotations

import shlex
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from algospace.config import load_experiment
from algospace.tune.driver import closing_lines
from algospace.tune.progress import ProgressTable
from algospace.tune.results import best_trial
from algospace.tune.searched import best_config_line, compact, short_names
from algospace.tune.wandb_logging import summary_note, wandb_mode, wandb_note


def _trial(trial_id: str, config: dict[str, Any]) -> SimpleNamespace:
    return SimpleNamespace(trial_id=trial_id, config=config, path=f"/r/trial_{trial_id}")


def test_short_names_and_compact_values() -> None:
    assert short_names(["training.lr", "training.entropy_coeff", "seed"]) == [
        "lr", "entropy_coeff", "seed"]
    assert short_names(["model.critic.hidden", "model.actor.hidden", "rde.lr"]) == [
        "critic.hidden", "actor.hidden", "rde.lr"]
    assert short_names([]) == []
    assert [compact(v) for v in (3e-4, 1e-5, 0.01, 0.000412345, 5, "relu")] == [
        "0.0003", "1e-05", "0.01", "0.000412", "5", "relu"]


def test_progress_rows_show_each_trials_searched_values() -> None:
    experiment = load_experiment("sweeps/strategic_grid.yaml")
    lines: list[str] = []
    table = ProgressTable(experiment.config, lines.append, searched=list(experiment.spaces))
    result = {"training_iteration": 1, "env_steps": 4000.0, "val_sharpe": 0.5,
              "val_net_pnl": -1234.4, "time_total_s": 10.0}
    table.on_trial_result(1, [], _trial("a1b2c_00000", {"training.lr": 3e-4,
                                                          "training.entropy_coeff": 0.0}),
                          result)
    table.on_trial_result(2, [], _trial("a1b2c_00001", {"training.lr": 1e-3,
                                                          "training.entropy_coeff": 0.01}),
                          result)
    header, first, second = lines
    assert header.split()[-5:-3] == ["lr", "entropy_coeff"]
    assert first.startswith("a1b2c_00000") and "0.0003" in first.split()
    assert second.split()[-5:-3] == ["0.001", "0.01"], second
    assert len({len(line.split(" 0:")[0]) for line in (first, second)}) == 1  # aligned
    # the default checkpoint score has its column, next to the Sharpe
    assert "val P&L" in header and "-1,234" in first.split()


def test_rde_closing_report_is_one_line_not_a_repeated_row() -> None:
    experiment = load_experiment("rde.yaml")
    lines: list[str] = []
    table = ProgressTable(experiment.config, lines.append)
    trial = _trial("r_00000", {})
    epoch = {"epoch": 2, "val_loss": 0.25, "val_recon_mse": 0.2, "final": 0.0}
    table.on_trial_result(1, [], trial, {**epoch, "epoch": 1, "val_loss": 0.2})
    table.on_trial_result(2, [], trial, epoch)
    table.on_trial_result(3, [], trial, {"epoch": 2.0, "val_loss": 0.2, "best_epoch": 1.0,
                                         "final": 1.0})
    assert len(lines) == 4  # header, two epochs, the closing line
    assert lines[-1] == "r_00000: best epoch 1 of 2, val loss 0.2000"


def test_best_trial_and_the_closing_lines() -> None:
    results = [SimpleNamespace(path="/r/exp/trial_a_00000", config={"training.lr": 3e-4}),
               SimpleNamespace(path="/r/exp/trial_a_00001",
                               config={"training.lr": 1e-3, "other": 1})]
    checkpoint = SimpleNamespace(path="/r/exp/trial_a_00001/checkpoint_000002")
    spaces = {"training.lr": {"grid_search": [3e-4, 1e-3]}}
    assert best_trial(results, checkpoint, spaces) == {
        "trial": "trial_a_00001", "params": {"training.lr": 1e-3}}
    assert best_trial(results, SimpleNamespace(path="/r/exp/trial_a_0000"), spaces) == {}

    summary = {"name": "strategic-grid", "experiment_dir": "/r/exp", "config": {},
               "best": {"trial": "trial_a_00001", "chosen_by": "val_sharpe (max)",
                        "params": {"training.lr": 1e-3, "training.entropy_coeff": 0.01},
                        "score": {"metric": "val_sharpe", "mode": "max", "value": 1.23456}}}
    line = best_config_line(summary)
    assert line == ("[run] best trial of strategic-grid: trial_a_00001, by val_sharpe (max) "
                    "= 1.235; training.lr=0.001 training.entropy_coeff=0.01")
    lines: list[str] = []
    closing_lines([summary], lines.append)
    assert lines == [line, "[run] summary: /r/exp/summary.json"]
    summary["best"] = {"trial": "trial_b", "chosen_by": "val_sharpe (max)", "params": {}}
    assert best_config_line(summary) == ("[run] best trial of strategic-grid: trial_b, by "
                                         "val_sharpe (max) (no search space)")
    assert best_config_line({"best": {}}) is None


def test_wandb_mode_and_where_it_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert wandb_mode("auto") == "offline" and wandb_mode("online") == "online"
    monkeypatch.setenv("WANDB_API_KEY", "x")
    assert wandb_mode("auto") == "online"
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert wandb_mode("auto") == "offline"

    exp = Path("/r/my runs/strategic/20260101-000000")
    note = wandb_note(exp, "offline", "algospace")
    command = note.split("with: ", 1)[1]
    assert shlex.split(command) == ["wandb", "sync", f"{exp}/wandb/offline-run-*"]
    assert f"written to {exp / 'wandb'}" in note
    assert "wandb sync" not in wandb_note(exp, "online", "algospace")

    summary = {"experiment_dir": str(exp),
               "config": {"logging": {"wandb": {"enabled": True, "mode": "auto",
                                                 "project": "p"}}}}
    assert summary_note(summary) == wandb_note(exp, "offline", "p")
    summary["config"]["logging"]["wandb"]["enabled"] = False
    assert summary_note(summary) is None
