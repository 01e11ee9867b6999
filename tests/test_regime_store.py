"""Regime latents kept per detector: ids, one table each, atomic writes, the env reads one.

The detectors here are untrained (weights from a seed, normaliser fitted on the training
split): encoding with them is real, and fast. No test here starts Ray or trains.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from algospace.config import DataConfig, EnvConfig, RDEConfig
from algospace.data.splits import Normalizer
from algospace.data.synthetic import SyntheticConfig
from algospace.errors import DataError
from algospace.features.latents import DETECTORS_KEY, latent_table, pick_detector
from algospace.features.pipeline import Prepared, prepare, strategic_rows
from algospace.features.store import META_LOCK, FeatureStore
from algospace.files import locked
from algospace.regime.features import regime_features
from algospace.regime.store import detector_id, store_latents
from algospace.regime.train import RDEResult, build_model, save_checkpoint
from envs.core.data import load_market

TINY = RDEConfig(window=24, patch=2, d_model=16, heads=2, layers=1, ff_dim=32, latent_dim=8)
"""A small detector (8 latent dimensions, as the envs read)."""


def untrained_detector(prepared: Prepared, out: Path, seed: int) -> Path:
    """A detector checkpoint with seeded random weights and a real normaliser."""
    features = regime_features(prepared.strategic)
    normaliser = Normalizer.fit(features, strategic_rows(prepared.strategic_index,
                                                         prepared.splits.train))
    torch.manual_seed(seed)
    model = build_model(len(features.columns), TINY)
    save_checkpoint(model, TINY, normaliser, tuple(features.columns),
                    RDEResult(out, 1, 1.0, 0.5, 0.6, 1))
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> DataConfig:
    """20 synthetic days in a store of this module's own."""
    return DataConfig(synthetic=SyntheticConfig(days=20, seed=3),
                      cache_dir=str(tmp_path_factory.mktemp("latent-cache")))


@pytest.fixture(scope="module")
def two(data: DataConfig, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two detectors (seeds 1 and 2) whose latents are both in the store, by id."""
    prepared = prepare(data)
    root = tmp_path_factory.mktemp("detectors")
    out = {}
    for seed in (1, 2):
        checkpoint = untrained_detector(prepared, root / f"rde-{seed}", seed)
        out[store_latents(prepared, checkpoint, log=lambda _: None).detector] = checkpoint
    return out


def test_detector_id_is_a_short_hash_of_what_makes_the_latents(
        data: DataConfig, two: dict[str, Path], tmp_path: Path) -> None:
    a, b = sorted(two)
    assert a != b and all(len(d) == 12 and int(d, 16) >= 0 for d in (a, b))
    assert detector_id(two[a]) == a
    copy = shutil.copytree(two[a], tmp_path / "elsewhere")
    assert detector_id(copy) == a  # wherever the checkpoint is copied
    meta = json.loads((copy / "rde.json").read_text())
    meta["metrics"]["val_recon_mse"] = 123.0  # training figures do not change the latents
    (copy / "rde.json").write_text(json.dumps(meta))
    assert detector_id(copy) == a
    meta["normalizer"]["mmd_1"]["mean"] += 1.0  # the input normalisation does
    (copy / "rde.json").write_text(json.dumps(meta))
    assert detector_id(copy) != a


def test_each_detector_keeps_its_own_table_and_record(data: DataConfig,
                                                      two: dict[str, Path]) -> None:
    prepared = prepare(data)
    a, b = sorted(two)
    tables = {d: prepared.table(latent_table(d)) for d in (a, b)}
    assert tables[a].shape == tables[b].shape == (len(prepared.strategic), 8)
    finite = np.isfinite(tables[a].to_numpy()).all(axis=1)
    assert finite.sum() > 200  # NaN before the first full window (and season)
    assert not np.allclose(tables[a].to_numpy()[finite], tables[b].to_numpy()[finite])
    records = prepared.meta[DETECTORS_KEY]
    assert set(records) == {a, b}
    for d in (a, b):
        assert records[d]["checkpoint"] == str(two[d].resolve())
        assert records[d]["table"] == latent_table(d)
        assert latent_table(d) in prepared.meta["tables"]
    assert "regime" not in prepared.meta  # no unkeyed record left to confuse


def test_the_env_reads_the_named_detector_and_refuses_to_guess(data: DataConfig,
                                                               two: dict[str, Path]) -> None:
    prepared = prepare(data)
    keys = set()
    for d in sorted(two):
        market = load_market(EnvConfig(data=data, regime_latent=True, regime_detector=d))
        expected = prepared.table(latent_table(d)).to_numpy(np.float32)
        np.testing.assert_array_equal(np.asarray(market["latent"]), expected)
        keys.add(market.key)
    assert len(keys) == 2  # each detector has its own env-arrays folder
    with pytest.raises(DataError, match="several regime detectors"):
        load_market(EnvConfig(data=data, regime_latent=True))
    with pytest.raises(DataError, match="no latents of regime detector 0123456789ab"):
        load_market(EnvConfig(data=data, regime_latent=True, regime_detector="0123456789ab"))


def test_pick_detector_takes_the_only_one(tmp_path: Path) -> None:
    meta = {DETECTORS_KEY: {"aaaaaaaaaaaa": {"checkpoint": "x"}}}
    with pytest.raises(DataError, match="holds no regime latents"):
        pick_detector(meta, tmp_path, None)  # recorded, but its table is not there
    (tmp_path / f"{latent_table('aaaaaaaaaaaa')}.parquet").touch()
    assert pick_detector(meta, tmp_path, None) == ("aaaaaaaaaaaa", {"checkpoint": "x"})


# ------------------------------------------------------------- atomic writes
def _entry(tmp_path: Path) -> FeatureStore:
    store = FeatureStore(tmp_path)
    store.write("k", {"bars": pd.DataFrame({"x": [1.0, 2.0]})}, {"note": "entry"})
    return store


def test_meta_is_merged_under_the_lock(tmp_path: Path) -> None:
    """A writer waits for the entry's lock, then merges into the meta it finds then (a
    record another process added meanwhile is kept)."""
    store = _entry(tmp_path)
    done = threading.Event()

    def add() -> None:
        store.add_table("k", "t1", pd.DataFrame({"v": [1.0]}), {DETECTORS_KEY: {"one": {}}})
        done.set()

    with locked(store.path("k") / META_LOCK):
        writer = threading.Thread(target=add)
        writer.start()
        time.sleep(0.5)
        assert not done.is_set()  # the table is written, the meta waits for the lock
        assert (store.path("k") / "t1.parquet").is_file()
        assert "t1" not in store.meta("k")["tables"]
        meta = store.meta("k")  # another process adds its own record meanwhile
        meta[DETECTORS_KEY] = {"two": {}}
        meta["tables"] = sorted({*meta["tables"], "t2"})
        (store.path("k") / "meta.json").write_text(json.dumps(meta))
    writer.join(10)
    meta = store.meta("k")
    assert set(meta[DETECTORS_KEY]) == {"one", "two"}
    assert meta["tables"] == ["bars", "t1", "t2"] and meta["note"] == "entry"


def _write_many(root: str, name: str, value: float, record: str) -> None:
    store = FeatureStore(root)
    frame = pd.DataFrame({"v": np.full(20_000, value)})
    for i in range(15):
        store.add_table("k", name, frame, {DETECTORS_KEY: {f"{record}-{i}": {"i": i}}})


def test_concurrent_writers_never_leave_a_mixed_table_or_lose_a_record(
        tmp_path: Path) -> None:
    """Three processes add tables at once, two of them the same table with different
    values; a reader meanwhile only ever sees one writer's whole table, and every
    writer's records end up in meta.json."""
    store = _entry(tmp_path)
    ctx = multiprocessing.get_context("fork")
    jobs = [ctx.Process(target=_write_many, args=(str(tmp_path), name, value, record))
            for name, value, record in (("same", 1.0, "a"), ("same", 2.0, "b"),
                                        ("other", 3.0, "c"))]
    for job in jobs:
        job.start()
    seen = set()
    while any(job.is_alive() for job in jobs):
        if (store.path("k") / "same.parquet").is_file():
            values = store.read("k", "same")["v"].to_numpy()
            assert len(values) == 20_000 and len(set(values)) == 1
            seen.add(float(values[0]))
        json.loads((store.path("k") / "meta.json").read_text())  # always whole
    for job in jobs:
        job.join()
        assert job.exitcode == 0
    assert seen <= {1.0, 2.0}
    meta = store.meta("k")
    assert set(meta[DETECTORS_KEY]) == {f"{r}-{i}" for r in "abc" for i in range(15)}
    assert meta["tables"] == ["bars", "other", "same"]
    leftovers = [p.name for p in store.path("k").iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_a_failed_table_write_keeps_the_old_table(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    store = _entry(tmp_path)
    store.add_table("k", "t", pd.DataFrame({"v": [1.0, 2.0]}), {})
    import pyarrow.parquet as pq

    def half_then_fail(table: object, where: object) -> None:
        Path(str(where)).write_bytes(b"PAR1 half")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        store.add_table("k", "t", pd.DataFrame({"v": [9.0]}), {DETECTORS_KEY: {"x": {}}})
    monkeypatch.undo()
    assert store.read("k", "t")["v"].tolist() == [1.0, 2.0]
    assert DETECTORS_KEY not in store.meta("k")
    assert sorted(p.name for p in store.path("k").iterdir()) == \
        [META_LOCK, "bars.parquet", "meta.json", "t.parquet"]


def test_copied_entry_merges_its_meta_into_the_local_one(tmp_path: Path) -> None:
    """A worker given the driver's entry adds the tables it lacks and keeps the records of
    detectors only it has (the copied meta.json no longer replaces the local one)."""
    driver = _entry(tmp_path / "driver")
    driver.add_table("k", "mine", pd.DataFrame({"v": [1.0]}), {DETECTORS_KEY: {"d": {}}})
    worker = _entry(tmp_path / "worker")
    worker.add_table("k", "theirs", pd.DataFrame({"v": [2.0]}), {DETECTORS_KEY: {"w": {}}})
    worker.put_files("k", driver.files("k"))
    meta = worker.meta("k")
    assert set(meta[DETECTORS_KEY]) == {"d", "w"}
    assert meta["tables"] == ["bars", "mine", "theirs"]
    assert worker.read("k", "mine")["v"].tolist() == [1.0]
