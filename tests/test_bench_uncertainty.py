"""``python -m experiments.bench uncertainty``: a smoke run on a checkpoint (no Ray), and
the training path's sizes (training replaced by a stand-in)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from algospace.config import DataConfig, EnvConfig
from algospace.data.synthetic import SyntheticConfig
from algospace.evaluation.gate_choice import GATE_GRID
from tests.test_evaluate_output import _checkpoint

KEYS = ("ece", "consensus_hit_rate_by_decile", "consensus_hit_rate_se_by_decile",
        "gated_pnl_per_trade_usd", "ungated_pnl_per_trade_usd", "gated_trades",
        "ungated_trades", "gated_sharpe", "ungated_sharpe", "gate_threshold")
"""The figures issue 21 asks the bench to write."""


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("unc")
    data = DataConfig(synthetic=SyntheticConfig(days=20, seed=5), split=(0.7, 0.15, 0.15),
                      cache_dir=str(root / "cache"))
    return _checkpoint(root / "run" / "checkpoint", "strategic_v0", EnvConfig(data=data))


def test_uncertainty_bench_quick_on_a_checkpoint_writes_every_key(
        checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from experiments.bench import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "machine", lambda: {"host": "test"})
    out = tmp_path / "figures.json"
    assert cli.main(["uncertainty", "--checkpoint", str(checkpoint), "--quick",
                     "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    for key in KEYS:
        assert key in figures, key
    assert len(figures["consensus_hit_rate_by_decile"]) == 10
    assert len(figures["consensus_hit_rate_se_by_decile"]) == 10
    assert all(0.0 <= h <= 1.0 for h in figures["consensus_hit_rate_by_decile"])
    assert 0.0 <= figures["ece"] <= 1.0 and figures["gate_threshold"] in GATE_GRID
    assert figures["quick"] is True and figures["mc_passes"] == 8
    assert "seed=1000, days=60," in figures["eval_market"]
    assert figures["ungated_trades"] > figures["gated_trades"] >= 0
    if figures["gated_trades"]:
        assert math.isfinite(figures["gated_pnl_per_trade_usd"])
    assert (tmp_path / "results" / "bench" / "uncertainty" / "calibration.png").is_file()
    assert "benchmark: uncertainty" in capsys.readouterr().out


def test_uncertainty_bench_trains_at_the_quick_size_without_a_checkpoint(
        checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No --checkpoint: strategic_v0 is trained (here a stand-in records the config and
    stops the run there: the study of a checkpoint has its own test above) — 2 iterations
    on a 20-day market with --quick, 25 and the 250-day market otherwise, at the --signal
    given."""
    from algospace.training import train as training
    from experiments import uncertainty
    from experiments.bench import cli

    seen: list[Any] = []

    class Trained(Exception):
        pass

    def fake_train(cfg: Any, **_: Any) -> Any:
        seen.append(cfg)
        raise Trained

    studied: list[dict[str, Any]] = []

    def fake_run(**kw: Any) -> dict[str, Any]:
        studied.append(kw)
        return {"ok": 1}

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "machine", lambda: {"host": "test"})
    monkeypatch.setattr(training, "train", fake_train)
    with pytest.raises(Trained):
        cli.main(["uncertainty", "--quick"])
    assert seen[0].iterations == 2 and seen[0].env == "strategic_v0"
    assert seen[0].env_config.data.synthetic.days == 20
    assert not seen[0].model.train_dropout
    with pytest.raises(Trained):
        cli.main(["uncertainty", "--quick", "--train-dropout"])
    assert seen[1].model.train_dropout
    assert cli.main(["uncertainty", "--quick", "--train-dropout", "--checkpoint",
                     str(checkpoint)]) == 2  # --train-dropout trains; a checkpoint does not
    monkeypatch.setattr(uncertainty, "run", fake_run)
    assert cli.main(["uncertainty", "--signal", "6", "--iterations", "7",
                     "--eval-days", "300"]) == 0
    assert studied[-1]["iterations"] == 7 and studied[-1]["signal"] == 6.0
    assert studied[-1]["eval_days"] == 300 and studied[-1]["checkpoint"] is None
    assert studied[-1]["train_dropout"] is False
    assert cli.main(["uncertainty"]) == 0
    assert studied[-1]["iterations"] == uncertainty.ITERATIONS == 25
    assert cli.main(["uncertainty", "--iterations", "0"]) == 2


def test_a_missing_checkpoint_ends_in_one_error_line_and_status_2(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from experiments.bench import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "machine", lambda: {"host": "test"})
    missing = tmp_path / "no-such-run"
    assert cli.main(["uncertainty", "--checkpoint", str(missing), "--quick",
                     "--json", str(tmp_path / "figures.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: checkpoint {missing} does not exist")
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "figures.json").exists()  # nothing half-written
