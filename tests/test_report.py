"""The evaluation report: files, honesty guards, another CSV, the CLI, the bootstrap."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from algospace.cli import main
from algospace.config import DataConfig, EnvConfig, PPOSettings
from algospace.data.synthetic import SyntheticConfig, generate, to_csv
from algospace.errors import ConfigError
from algospace.evaluation.bootstrap import sharpe_difference_ci
from algospace.evaluation.report import EvaluateConfig, evaluate
from algospace.training.builder import TrainConfig
from algospace.training.checkpoint import load_train_config
from algospace.training.train import train


@pytest.fixture(scope="module")
def checkpoint(env_data: DataConfig, tmp_path_factory: pytest.TempPathFactory,
               ray_session: Any) -> str:
    """A two-iteration strategic run."""
    out = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(env="strategic_v0", env_config=EnvConfig(data=env_data, episode_steps=24),
                      iterations=2, num_env_runners=0, num_envs_per_env_runner=1,
                      ppo=PPOSettings(train_batch_size=100, minibatch_size=50, num_epochs=1),
                      out_dir=str(out), checkpoint_every=0)
    return train(cfg, log=lambda _: None).checkpoint


def test_the_checkpoint_records_its_train_config(checkpoint: str, env_data: DataConfig) -> None:
    cfg = load_train_config(checkpoint)
    assert cfg.env == "strategic_v0" and cfg.iterations == 2
    assert cfg.env_config.data.synthetic == env_data.synthetic
    assert cfg.env_config.episode_steps == 24


def test_report_files_and_content(checkpoint: str, tmp_path: Path) -> None:
    out = tmp_path / "report"
    report = evaluate(EvaluateConfig(checkpoint, out=str(out), random_seeds=3, bootstrap=200),
                      log=lambda _: None)
    for name in ("report.json", "report.html", "equity.png", "positions.png", "actions.png",
                 "monthly.png", "costs.png", "hours.png"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "report.json").read_text())
    assert saved["split"] == "test" and not saved["in_sample"]
    assert saved["period"]["bars"] == saved["period"]["tiles"] * 24
    assert saved["costs_assumed"]["symbol"] == "MES"
    assert saved["sizing"]["leverage_at_reference_price"] <= saved["sizing"]["leverage_cap"]
    assert saved["ruin_level"] == 50_000.0
    assert "train split of the same data" in saved["normalisation"]
    assert set(saved["baselines"]) == {"flat", "buy_and_hold", "random", "rule"}
    assert set(saved["oracles"]) == {"strategic", "tactical", "joint"}
    for key in ("capture_of_oracle", "capture_of_joint_oracle", "expected_capture",
                "probabilistic_sharpe", "deflated_sharpe"):
        assert key in saved["agents"], key
    rows = {"agents": saved["agents"], "gated": saved["gated"]["metrics"],
            **saved["baselines"], **saved["oracles"]}
    for name, row in rows.items():  # dollar-true: a Sharpe has the sign of its P&L
        if row["net_pnl"] != 0 and row["sharpe"] != 0:
            assert np.sign(row["sharpe"]) == np.sign(row["net_pnl"]), name
    assert saved["baselines"]["random"]["seeds"] == 3
    assert set(saved["actions"]) == {"mlmi", "nwrqk", "portfolio", "regime"}
    decisions = saved["period"]["bars"]
    assert all(sum(counts.values()) == decisions for counts in saved["actions"].values())
    assert report["agents"]["sharpe"] == saved["agents"]["sharpe"]
    gated = saved["gated"]  # the same bars through the two gates (DESIGN §6)
    counts = gated["gate_counts"]
    assert counts["decisions"] == decisions
    assert 0 <= counts["held_back"] <= decisions
    assert gated["gates"]["threshold"] == 0.65 and gated["gates"]["mc_passes"] == 50
    assert {"sharpe", "net_pnl", "trades"} <= set(gated["metrics"])
    page = (out / "report.html").read_text()
    assert "Two-gate decision" in page and "<th>agents, gated</th>" in page
    assert f"held back {counts['held_back']:,} trades" in page
    assert page.count("data:image/png;base64,") == 7  # calibration.png with the gates
    assert "http://" not in page and "https://" not in page  # opens offline
    assert not list(tmp_path.glob(".report.tmp*"))


def test_training_split_needs_an_explicit_flag(checkpoint: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--allow-train-split"):
        evaluate(EvaluateConfig(checkpoint, split="train", out=str(tmp_path / "r")))
    assert not (tmp_path / "r").exists()
    report = evaluate(EvaluateConfig(checkpoint, split="train", allow_train=True,
                                     out=str(tmp_path / "r"), bootstrap=100, random_seeds=1),
                      log=lambda _: None)
    assert report["in_sample"] and "In-sample" in (tmp_path / "r" / "report.html").read_text()


def test_evaluating_on_another_csv(checkpoint: str, tmp_path: Path) -> None:
    csv = tmp_path / "other.csv"
    to_csv(generate(SyntheticConfig(days=30, seed=99)).bars, csv)
    report = evaluate(EvaluateConfig(checkpoint, data=str(csv), out=str(tmp_path / "r"),
                                     bootstrap=100, random_seeds=1), log=lambda _: None)
    assert not report["data_is_training_data"]
    assert report["data"] == str(csv.resolve())
    assert "other.csv itself" in report["normalisation"]
    # a CSV evaluated for a built-in-market checkpoint trades the contract it trained on
    assert report["costs_assumed"]["symbol"] == "MES"
    assert report["period"]["bars"] > 0
    # no hidden regime in a CSV: that attribution table is left out, the others are there
    assert "regime" not in report["attribution"] and "layer" in report["attribution"]


def test_cli_errors_and_success(checkpoint: str, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["evaluate", checkpoint, "--data", str(tmp_path / "nope.csv")]) == 2
    assert "no such file" in capsys.readouterr().err
    out = tmp_path / "cli"
    assert main(["evaluate", checkpoint, "--split", "val", "--out", str(out),
                 "--bootstrap", "100", "--random-seeds", "1", "--threshold", "0.4",
                 "--mc-passes", "8"]) == 0
    printed = capsys.readouterr().out
    assert "[evaluate] val split" in printed and "net P&L" in printed
    assert "random*" in printed and (out / "report.html").is_file()
    assert "gated" in printed and "trades held back" in printed
    gates = json.loads((out / "report.json").read_text())["gated"]["gates"]
    assert gates["threshold"] == 0.4 and gates["mc_passes"] == 8
    assert main(["evaluate", checkpoint, "--split", "val", "--out", str(out), "--no-gates",
                 "--bootstrap", "100", "--random-seeds", "1"]) == 0
    assert "gated" not in capsys.readouterr().out
    assert "gated" not in json.loads((out / "report.json").read_text())
    assert main(["evaluate", checkpoint, "--mc-passes", "0", "--out", str(out)]) == 2
    assert "mc_passes must be >= 1" in capsys.readouterr().err
    assert main(["evaluate", checkpoint, "--threshold", "2", "--out", str(out)]) == 2
    assert "gates.threshold must lie in [0, 1], got 2.0" in capsys.readouterr().err


def test_sharpe_difference_interval() -> None:
    index = pd.date_range("2024-01-02 09:30", periods=60, freq="D")
    rng = np.random.default_rng(0)
    base = pd.Series(100_000 * np.cumprod(1 + rng.normal(0, 0.01, 60)), index=index)
    same = sharpe_difference_ci(base, base, 100_000.0, 500, 0)
    assert same["point"] == 0 and same["low_2.5"] == 0 and same["high_97.5"] == 0
    better = pd.Series(100_000 * np.cumprod(1 + rng.normal(0.01, 0.005, 60)), index=index)
    ci = sharpe_difference_ci(better, base, 100_000.0, 500, 0)
    assert ci["low_2.5"] > 0 and ci["share_above_0"] == 1.0 and ci["days"] == 60


def test_intervals_pair_the_curves_by_trading_day_on_the_days_both_cover() -> None:
    """Two envs on different clocks can end their last whole episode on different days
    (bench team's joint vs strategic-only curves): the days are paired by date."""
    from algospace.evaluation.bootstrap import pnl_difference_ci

    index = pd.date_range("2024-01-02 12:00", periods=6, freq="D")
    agent = pd.Series(100_000.0 + np.array([100, 300, 200, 500, 400, 700]), index=index)
    other = agent.iloc[:5] - np.array([0, 50, 50, 100, 100])  # one day shorter
    ci = pnl_difference_ci(agent, other, 100_000.0, 200, 0)
    # daily P&L differences on the five shared days: 0, 50, 0, 50, 0
    assert ci["days"] == 5 and ci["mean_daily_usd"] == 20.0
    assert sharpe_difference_ci(agent, other, 100_000.0, 200, 0)["days"] == 5
