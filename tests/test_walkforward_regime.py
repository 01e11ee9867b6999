"""Regime latents on walk-forward folds: one detector per fold, fitted on that fold's
training bars only, read by that fold's env and no other (algospace/tune/fold_detectors.py).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from algospace.config import (
    DataConfig,
    EnvConfig,
    RDEConfig,
    build_experiment,
    experiment_from_raw,
)
from algospace.data.synthetic import SyntheticConfig
from algospace.data.walkforward import strategic_train_rows
from algospace.errors import ConfigError, DataError
from algospace.features.latents import FOLD_RECORD, latent_table, pick_detector
from algospace.regime.train import train_rde, train_window_ends
from algospace.tune.fold_detectors import KEY, fit_fold_detector, strategic_ranges
from algospace.tune.walkforward import trial_config
from tests.test_walkforward_report import LAYOUT

TINY = RDEConfig(window=16, patch=2, d_model=16, heads=2, layers=1, ff_dim=32, batch_size=64,
                 max_epochs=1, kl_warmup_epochs=0, patience=1, seed=3)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> DataConfig:
    """30 synthetic days in this module's own cache (its detectors stay out of others')."""
    return DataConfig(synthetic=SyntheticConfig(days=30, seed=7, signal=0.0),
                      cache_dir=str(tmp_path_factory.mktemp("wf-regime-cache")))


@pytest.fixture(scope="module")
def prepared(data: DataConfig) -> Any:
    from algospace.features.pipeline import prepare

    return prepare(data, log=lambda _: None)


def _fold(prepared: Any, data: DataConfig, k: int) -> Any:
    from envs.core.data import env_fold

    return env_fold(prepared, EnvConfig(data=data, walk_forward=LAYOUT, fold=k))


def test_regime_latents_with_walk_forward_are_accepted_and_each_fold_must_name_its_own() -> None:
    cfg = build_experiment({"env": {"regime_latent": True},
                            "evaluation": {"walk_forward": {"folds": 3}}})
    assert cfg.env.regime_latent and cfg.evaluation.walk_forward is not None
    with pytest.raises(ConfigError, match="fits its own regime detector per fold"):
        build_experiment({"env": {"regime_latent": True}, "handoff": {"regime": "a" * 12},
                          "evaluation": {"walk_forward": {"folds": 3}}})
    with pytest.raises(ConfigError, match="names no detector"):
        EnvConfig(walk_forward=LAYOUT, fold=1, regime_latent=True)

    experiment = experiment_from_raw({"env": {"regime_latent": True},
                                      "evaluation": {"walk_forward": {"folds": 3}}}, "x.yaml")
    ids = {"0": "0" * 12, "1": "1" * 12, "2": "2" * 12}
    for k in range(3):  # fold k's trial reads fold k's detector
        assert trial_config(experiment, {"fold": k, KEY: ids}).env.regime_detector == ids[str(k)]
    with pytest.raises(ConfigError, match="no detector fitted on it"):
        trial_config(experiment, {"fold": 2, KEY: {"0": ids["0"]}})


def test_training_windows_lie_wholly_inside_the_training_ranges() -> None:
    values = np.zeros((200, 3))
    values[:10] = np.nan  # warm-up
    ranges = ((0, 60), (90, 140))
    ends = train_window_ends(values, 16, ranges)
    inside = np.zeros(200, dtype=bool)
    for a, b in ranges:
        inside[a:b] = True
    assert ends.size == (60 - 25) + (140 - 105)
    for t in ends:  # every row a training window reads is a training row
        assert inside[t - 15:t + 1].all() and np.isfinite(values[t - 15:t + 1]).all()


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "rde.pt", weights_only=True)


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _perturbed(features: pd.DataFrame, rows: np.ndarray, seed: int = 0) -> pd.DataFrame:
    out = features.copy()
    noise = np.random.default_rng(seed).normal(0, 5, (rows.size, features.shape[1]))
    out.iloc[rows] = out.iloc[rows].to_numpy() * 3.0 + noise
    return out


@pytest.mark.train
def test_a_fold_detector_sees_its_training_bars_only(prepared: Any, data: DataConfig,
                                                     tmp_path: Path) -> None:
    """Changing the future: every 30-minute row outside fold 2's training ranges (its
    embargo hole, purges, validation and test blocks) changed, the detector fitted for
    one epoch (nothing to early-stop) has the same weights; with early stopping on the
    validation block, changing every row after it changes nothing either. Changing one
    training row does change them (the check can fail)."""
    from algospace.regime.features import regime_features

    fold = _fold(prepared, data, 2)
    assert len(fold.train) == 2  # an embargo hole
    train, val = strategic_ranges(prepared, fold)
    features = regime_features(prepared.strategic)
    n = len(features)
    inside = np.zeros(n, dtype=bool)
    for a, b in train:
        inside[a:b] = True
    # the 30-minute training rows: bars that closed within the base-bar training ranges
    assert set(np.flatnonzero(inside)) <= set(
        strategic_train_rows(np.asarray(prepared.strategic_index), fold).tolist())
    assert not inside[val[0]:].any() and val[1] < n

    def fit(frame: pd.DataFrame, cfg: RDEConfig, name: str) -> dict[str, torch.Tensor]:
        train_rde(frame, train, val, cfg, tmp_path / name)
        return _weights(tmp_path / name)

    base = fit(features, TINY, "base")
    assert _same(base, fit(_perturbed(features, np.flatnonzero(~inside)), TINY, "outside"))
    hit = np.array([train[-1][1] - 5])  # one row inside the last training range
    assert not _same(base, fit(_perturbed(features, hit), TINY, "inside"))

    stopped = replace(TINY, max_epochs=3, patience=2)
    base = fit(features, stopped, "stopped")
    after = np.arange(val[1], n)
    assert _same(base, fit(_perturbed(features, after), stopped, "stopped-after"))


@pytest.mark.train
def test_each_fold_reads_its_own_detector_and_refuses_another_folds(
        prepared: Any, data: DataConfig, tmp_path: Path) -> None:
    from algospace.features.pipeline import prepare
    from envs.core.data import load_market

    records = {k: fit_fold_detector(prepared, _fold(prepared, data, k),
                                    TINY,
                                    tmp_path / f"fold{k}", lambda _: None) for k in (0, 2)}
    assert records[0]["id"] != records[2]["id"]
    again = prepare(data, log=lambda _: None)
    held = again.meta["regime_detectors"]
    tables = {}
    for k, record in records.items():
        assert held[record["id"]][FOLD_RECORD]["fold"] == k
        assert record["fitted_on"]["train"] == [list(r) for r in _fold(prepared, data, k).train]
        assert (Path(again.path) / f"{latent_table(record['id'])}.parquet").is_file()
        tables[k] = again.table(latent_table(record["id"])).to_numpy(np.float32)
    finite = np.isfinite(tables[0]).all(axis=1) & np.isfinite(tables[2]).all(axis=1)
    assert finite.sum() > 100 and not np.allclose(tables[0][finite], tables[2][finite])

    env = EnvConfig(data=data, walk_forward=LAYOUT, fold=2, regime_latent=True,
                    regime_detector=records[2]["id"])
    market = load_market(env)
    np.testing.assert_array_equal(np.asarray(market["latent"]), tables[2])
    with pytest.raises(DataError, match="fitted on fold 0's training bars"):
        load_market(EnvConfig(data=data, walk_forward=LAYOUT, fold=2, regime_latent=True,
                              regime_detector=records[0]["id"]))
    with pytest.raises(DataError, match="only that fold reads it"):  # nor data.split's env
        load_market(EnvConfig(data=data, regime_latent=True, regime_detector=records[0]["id"]))
    with pytest.raises(DataError, match="holds no regime latents"):  # never picked by default
        pick_detector(again.meta, again.path, None)
    # a second fit with the same settings reuses the checkpoint: the same detector
    fold0 = _fold(prepared, data, 0)
    lines: list[str] = []
    same = fit_fold_detector(again, fold0, TINY,
                             tmp_path / "fold0", lines.append)
    assert same["id"] == records[0]["id"] and same["reused"] and not records[0]["reused"]
    assert any("reusing" in m for m in lines)


@pytest.mark.slow
@pytest.mark.train
def test_walkforward_quick_with_regime_latents_fits_a_detector_per_fold(
        ray_session: Any, tmp_path: Path) -> None:
    """``walkforward.yaml --quick`` with ``env.regime_latent=true`` on 2 folds, 1 iteration:
    report.json names each fold's own detector, and each trial's env read it."""
    from algospace.tune.driver import RunOptions, run

    lines: list[str] = []
    [summary] = run(RunOptions(file="walkforward.yaml", quick=True, sets=(
        f"output.dir={tmp_path / 'results'}", f"data.cache_dir={tmp_path / 'cache'}",
        "logging.dashboard.enabled=false", "env.regime_latent=true",
        "evaluation.walk_forward.folds=2", "stop.iterations=1",
        "resources.num_env_runners=0")), log=lines.append)
    assert summary["status"] == "finished"
    report = json.loads(Path(summary["walk_forward"]["report"]).read_text())
    entries = {f["fold"]: f["regime_detector"] for f in report["folds"]}
    assert sorted(entries) == [0, 1] and entries[0]["id"] != entries[1]["id"]
    for fold, entry in zip(report["folds"], entries.values(), strict=True):
        assert entry["fitted_on"]["train"] == fold["train"]  # its own fold's training bars
        assert Path(entry["checkpoint"], "rde.pt").is_file()
        assert isinstance(entry["val_recon_mse"], float)
    for trial in summary["trials"]:  # each trial read its fold's detector
        fold = trial["params"]["fold"]
        assert trial["params"][KEY][str(fold)] == entries[fold]["id"]
    info = json.loads((Path(summary["best_checkpoint"]) / "algospace_run.json").read_text())
    assert info["train_config"]["env_config"]["regime_detector"] == entries[1]["id"]
    assert any(line.startswith("[run] 2 fold detectors ready in") for line in lines)
