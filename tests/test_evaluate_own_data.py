"""A trained team evaluated (and replayed) on a CSV of one's own: ``data synth`` output.

Every phase's agents read the regime latents (``env.regime_latent``). The checkpoints here
are built directly (freshly initialised actors, ``algospace_run.json`` as training writes
it), their detector is untrained (seeded weights, real normaliser): no Ray, no training.
``evaluate --data`` must encode the CSV with the checkpoint's own detector (compared by
value with the detector's encoding), never train one, and take the checkpoint's contract
when the file name names none; ``decide --data`` must replay the same CSV.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from algospace.cli import main
from algospace.config import DataConfig, EnvConfig
from algospace.data.synthetic import SyntheticConfig
from algospace.errors import DataError
from algospace.evaluation.own_data import csv_env_config
from algospace.features.latents import latent_table, stored_detectors
from algospace.features.pipeline import prepare
from algospace.models.actor import ActorModule
from algospace.regime.features import regime_features
from algospace.regime.latents import encode_all
from algospace.regime.store import encode_missing, store_latents
from algospace.regime.train import load_rde
from algospace.schema import to_dict
from algospace.training.builder import TrainConfig, votes_for
from envs.core.data import load_market
from envs.registry import env_class
from tests.test_regime_store import untrained_detector

pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.:DeprecationWarning")

ENVS = ("strategic_v0", "tactical_v0", "joint_v0")
FAST = ["--no-gates", "--random-seeds", "1", "--bootstrap", "100"]


def tiny_checkpoint(folder: Path, env_name: str, cfg: EnvConfig) -> Path:
    """A checkpoint of freshly initialised actors of ``env_name`` trained (so it says) on
    ``cfg``, laid out as training writes it."""
    from algospace.training.checkpoint import MODULES_DIR, RUN_FILE, _entry, _write

    env = env_class(env_name)(cfg)
    torch.manual_seed(0)
    entries, states = {}, {}
    for agent in env.possible_agents:
        spec = {"hidden": (16,), "votes": votes_for(agent)}
        module = ActorModule(observation_space=env.observation_space(agent),
                             action_space=env.action_space(agent), model_config=spec)
        entries[agent] = _entry(ActorModule, env.observation_space(agent),
                                env.action_space(agent), spec, False)
        states[agent] = module.state_dict()
        folder.joinpath(*MODULES_DIR, agent).mkdir(parents=True)
    _write(folder, entries, states)
    (folder / RUN_FILE).write_text(json.dumps(
        {"train_config": to_dict(TrainConfig(env=env_name, env_config=cfg))}))
    return folder


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Training data with one detector's latents, a checkpoint of every phase reading them
    (joint_v0's run records its detector in summary.json, the others rely on the prepared
    data's record), and a 25-day CSV written by ``algospace data synth``."""
    root = tmp_path_factory.mktemp("own-data")
    data = DataConfig(synthetic=SyntheticConfig(days=30, seed=5), split=(0.6, 0.15, 0.25),
                      cache_dir=str(root / "cache"))
    prepared = prepare(data)
    rde = untrained_detector(prepared, root / "rde", seed=1)
    detector = store_latents(prepared, rde, log=lambda _: None).detector
    checkpoints = {}
    for env_name in ENVS:
        cfg = EnvConfig(data=data, episode_steps=48, regime_latent=True,
                        regime_detector=detector)
        run = root / f"run-{env_name}"
        checkpoints[env_name] = tiny_checkpoint(run / "best_checkpoint", env_name, cfg)
    (root / "run-joint_v0" / "summary.json").write_text(json.dumps(
        {"phase": "joint", "regime": {"id": detector, "checkpoint": str(rde),
                                      "rde_run": None}}))
    csv = root / "synth.csv"
    assert main(["data", "synth", "--out", str(csv), "--days", "25", "--seed", "9"]) == 0
    return {"root": root, "data": data, "rde": rde, "detector": detector,
            "checkpoints": checkpoints, "csv": csv}


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Training a regime detector fails the test."""
    import algospace.regime.store as store
    import algospace.regime.train as train

    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("a regime detector was trained")

    monkeypatch.setattr(train, "train_rde", refuse)
    monkeypatch.setattr(store, "train_rde", refuse)
    monkeypatch.setattr(store, "train_and_store", refuse)


@pytest.mark.parametrize("env_name", ENVS)
def test_evaluate_encodes_the_csv_with_the_checkpoints_detector(
        setup: dict[str, Any], env_name: str, tmp_path: Path, no_training: None,
        capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint, detector, rde = setup["checkpoints"][env_name], setup["detector"], setup["rde"]
    out = tmp_path / "report"
    assert main(["evaluate", str(checkpoint), "--data", str(setup["csv"]), "--out", str(out),
                 *FAST]) == 0
    printed = capsys.readouterr().out
    assert "[evaluate] contract: MES (from the checkpoint; --symbol to change)" in printed
    line = next(x for x in printed.splitlines() if "regime latents of synth.csv" in x)
    assert f"encoded with the checkpoint's detector {detector} ({rde.resolve()})" in line
    report = json.loads((out / "report.json").read_text())
    assert report["costs_assumed"]["symbol"] == "MES" and report["period"]["bars"] > 0

    # the latents the backtest read are the detector's own encoding of the CSV's bars
    env_cfg = csv_env_config(checkpoint, _trained(checkpoint), str(setup["csv"]),
                             log=lambda _: None)
    own = prepare(env_cfg.data)
    assert set(stored_detectors(own.meta, own.path)) == {detector}
    model, rde_cfg, normaliser, _ = load_rde(rde)
    expected = encode_all(model, normaliser, regime_features(own.strategic), rde_cfg.window)
    used = np.asarray(load_market(env_cfg)["latent"])
    assert used.shape == expected.shape and np.isfinite(expected).any()
    np.testing.assert_array_equal(used, expected.astype(np.float32))
    np.testing.assert_array_equal(own.table(latent_table(detector)).to_numpy(), expected)


def _trained(checkpoint: Path) -> EnvConfig:
    """The env settings a checkpoint was trained with."""
    from algospace.training.checkpoint import load_train_config

    return load_train_config(checkpoint).env_config


@pytest.mark.parametrize("env_name", ENVS)
def test_decide_replays_the_csv(setup: dict[str, Any], env_name: str, tmp_path: Path,
                                no_training: None, capsys: pytest.CaptureFixture[str]) -> None:
    """The last four hours of the CSV (every bar before warms the features up)."""
    log = tmp_path / "decisions.csv"
    assert main(["decide", str(setup["checkpoints"][env_name]), "--data", str(setup["csv"]),
                 "--mc-passes", "2", "--start", "2020-02-07 13:00", "--out", str(log)]) == 0
    printed = capsys.readouterr().out
    assert f"decision log: {log}" in printed
    assert len(log.read_text().splitlines()) > 1


def test_the_contract_of_the_csv(setup: dict[str, Any], tmp_path: Path) -> None:
    """--symbol first, then the file name's contract; the checkpoint's only without both."""
    trained = _trained(setup["checkpoints"]["strategic_v0"])
    named = tmp_path / "NQ 5 min.csv"
    shutil.copy(setup["csv"], named)
    lines: list[str] = []
    untouched = replace(trained, regime_latent=False)
    assert csv_env_config("x", untouched, str(named), log=lines.append).data.symbol is None
    assert prepare(csv_env_config("x", untouched, str(named)).data).meta[
        "contract"]["symbol"] == "NQ"
    assert csv_env_config("x", untouched, str(setup["csv"]), "ES",
                          log=lines.append).data.symbol == "ES"
    assert lines == []
    assert main(["evaluate", str(setup["checkpoints"]["strategic_v0"]), "--symbol", "ES"]) == 2

    # agents trained on an ES file (traded as MES: a 2x cap on $100k allows one ES at
    # ~4,000) evaluated on synth.csv: MES, said once
    es_file = tmp_path / "ES_train.csv"
    shutil.copy(setup["csv"], es_file)
    on_es = replace(untouched, data=DataConfig(source="csv", path=str(es_file),
                                                 cache_dir=str(tmp_path / "cache")))
    env = csv_env_config("x", on_es, str(setup["csv"]), log=lines.append)
    assert env.data.symbol == "MES" and prepare(env.data).meta["contract"]["symbol"] == "MES"
    assert lines == ["[evaluate] contract: MES (from the checkpoint; --symbol to change)"]


def test_encoding_checks_the_detector_id(setup: dict[str, Any], tmp_path: Path) -> None:
    """A checkpoint at a recorded path whose weights changed is not used as the detector."""
    prepared = prepare(replace(setup["data"], cache_dir=str(tmp_path / "cache")))
    other = untrained_detector(prepared, tmp_path / "other", seed=7)
    with pytest.raises(DataError, match=f"is detector .* not {setup['detector']}"):
        encode_missing(prepared, setup["detector"], other, log=lambda _: None)
    assert not stored_detectors(prepared.meta, prepared.path)


def test_a_missing_detector_checkpoint_is_one_clear_error(
        setup: dict[str, Any], tmp_path: Path, no_training: None,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The detector's checkpoint is gone: the error names its id, where it looked and what
    to do; no report, and no latents of the CSV are written."""
    data = replace(setup["data"], cache_dir=str(tmp_path / "cache"))
    prepared = prepare(data)
    rde = untrained_detector(prepared, tmp_path / "gone", seed=4)
    detector = store_latents(prepared, rde, log=lambda _: None).detector
    shutil.rmtree(rde)
    cfg = EnvConfig(data=data, episode_steps=48, regime_latent=True, regime_detector=detector)
    checkpoint = tiny_checkpoint(tmp_path / "run" / "best_checkpoint", "strategic_v0", cfg)
    csv = tmp_path / "mine.csv"
    shutil.copy(setup["csv"], csv)
    out = tmp_path / "report"
    assert main(["evaluate", str(checkpoint), "--data", str(csv), "--out", str(out),
                 *FAST]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert f"regime detector {detector}" in err[0] and str(rde) in err[0]
    assert "summary.json" in err[0] and "put that detector's checkpoint folder" in err[0]
    assert not out.exists()
    own = prepare(csv_env_config(checkpoint, replace(cfg, regime_latent=False), str(csv),
                                 log=lambda _: None).data)
    assert not stored_detectors(own.meta, own.path)
