"""`algospace regime train`: trains, writes the checkpoint and the latents table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from algospace.cli import main
from algospace.config import load_data_config
from algospace.features.pipeline import prepare
from algospace.regime.store import detector_id


@pytest.mark.train
def test_regime_train_writes_latents(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["regime", "train", "--synthetic", "--days", "45", "--epochs", "1",
            "--out", "rde"]
    assert main(args) == 0
    out = capsys.readouterr().out
    detector = detector_id(tmp_path / "rde")
    assert "checkpoint:  rde" in out and f"detector:    {detector}" in out
    assert f"table regime_latent-{detector}" in out
    assert "[rde] epoch 1/1: train " in out and "rde epoch" not in out  # one prefix
    assert (tmp_path / "rde" / "rde.pt").is_file() and (tmp_path / "rde" / "rde.json").is_file()
    prepared = prepare(load_data_config({"synthetic": {"days": 45}}))
    assert prepared.cache_hit
    latents = prepared.table(f"regime_latent-{detector}")
    assert latents.shape == (len(prepared.strategic), 8)
    finite = np.isfinite(latents.to_numpy()).all(axis=1)
    assert finite.sum() > 0.5 * len(latents)
    # NaN only before the first complete window: never a finite row followed by NaN.
    assert finite[int(np.argmax(finite)):].all()
    assert prepared.meta["regime_detectors"][detector]["checkpoint"].endswith("rde")


def test_regime_train_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["regime", "train", "--data", "missing.csv"]) == 2
    assert "missing.csv: file not found" in capsys.readouterr().err
    assert main(["regime", "train", "--csv", "missing.csv"]) == 2  # the deprecated name
    err = capsys.readouterr().err
    assert err.startswith("note: --csv is deprecated") and "missing.csv: file not found" in err
    assert main(["regime", "train", "--synthetic", "--days", "45", "--epochs", "0"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert not (tmp_path / "results").exists() and not (tmp_path / ".algospace").exists()
