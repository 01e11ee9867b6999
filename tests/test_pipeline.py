"""prepare(): the store's cache hit/miss, atomic writes, and no silent fall-back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from algospace.config import load_data_config
from algospace.data.resample import resample
from algospace.data.synthetic import SyntheticConfig, generate, to_csv
from algospace.errors import ConfigError, DataError
from algospace.features import pipeline

SMALL = {"days": 12, "seed": 1}


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    """A small synthetic ES file, open-stamped."""
    path = tmp_path / "ES - 5 min.csv"
    to_csv(generate(SyntheticConfig(**SMALL)), path)
    return path


def test_synthetic_prepare_then_cache_hit(tmp_path: Path) -> None:
    cfg = load_data_config({"cache_dir": str(tmp_path), "synthetic": SMALL})
    first = pipeline.prepare(cfg)
    assert not first.cache_hit
    second = pipeline.prepare(cfg)
    assert second.cache_hit and second.key == first.key
    pd.testing.assert_frame_equal(second.base.frame, first.base.frame)
    pd.testing.assert_frame_equal(second.strategic.frame, first.strategic.frame)
    np.testing.assert_array_equal(second.strategic_index, first.strategic_index)
    assert second.splits == first.splits
    assert "synthetic_truth" in second.meta["tables"]
    other = pipeline.prepare(load_data_config({"cache_dir": str(tmp_path),
                                               "synthetic": {**SMALL, "seed": 2}}))
    assert other.key != first.key and not other.cache_hit


def test_csv_key_follows_content_not_name(tmp_path: Path, csv_file: Path) -> None:
    cache = tmp_path / "cache"
    cfg = load_data_config({"source": "csv", "path": str(csv_file), "cache_dir": str(cache)})
    first = pipeline.prepare(cfg)
    assert first.meta["contract"]["symbol"] == "ES"
    copy = tmp_path / "ES copy.csv"
    copy.write_bytes(csv_file.read_bytes())
    cfg_copy = load_data_config({"source": "csv", "path": str(copy), "cache_dir": str(cache),
                                 "symbol": "ES"})
    assert pipeline.prepare(cfg_copy).cache_hit
    text = csv_file.read_text().splitlines()
    text[-1] = text[-1].rsplit(",", 1)[0] + ",1"  # edit the last bar's volume
    csv_file.write_text("\n".join(text) + "\n")
    changed = pipeline.prepare(cfg)
    assert not changed.cache_hit and changed.key != first.key
    cfg_split = load_data_config({"source": "csv", "path": str(csv_file), "cache_dir": str(cache),
                                  "split": [0.6, 0.2, 0.2]})
    assert pipeline.prepare(cfg_split).key != changed.key


def test_interrupted_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_data_config({"cache_dir": str(tmp_path), "synthetic": SMALL})
    calls = {"n": 0}
    real_write = pq.write_table

    def crash_on_third_table(*args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        real_write(*args, **kwargs)

    monkeypatch.setattr(pq, "write_table", crash_on_third_table)
    with pytest.raises(KeyboardInterrupt):
        pipeline.prepare(cfg)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(pq, "write_table", real_write)
    assert not pipeline.prepare(cfg).cache_hit
    assert pipeline.prepare(cfg).cache_hit


def test_bad_csv_writes_nothing(tmp_path: Path, csv_file: Path) -> None:
    lines = csv_file.read_text().splitlines()
    lines[100] = lines[100].replace(",", ",x", 1)
    csv_file.write_text("\n".join(lines) + "\n")
    cache = tmp_path / "cache"
    cfg = load_data_config({"source": "csv", "path": str(csv_file), "cache_dir": str(cache)})
    with pytest.raises(DataError, match="line 101, column 'Open'"):
        pipeline.prepare(cfg)
    assert not cache.exists() or list(cache.iterdir()) == []


def test_no_fallback_to_synthetic(tmp_path: Path) -> None:
    cfg = load_data_config({"source": "csv", "path": str(tmp_path / "missing.csv"),
                            "cache_dir": str(tmp_path)})
    with pytest.raises(DataError, match=r"missing.csv: file not found"):
        pipeline.prepare(cfg)
    with pytest.raises(ConfigError, match=r"never swaps your data for synthetic"):
        load_data_config({"path": "mine.csv"})
    with pytest.raises(ConfigError, match=r"data.path: required"):
        load_data_config({"source": "csv"})


def test_strategic_file_is_checked(tmp_path: Path, csv_file: Path) -> None:
    market = generate(SyntheticConfig(**SMALL))
    thirty = tmp_path / "ES - 30 min.csv"
    to_csv(resample(market.bars, 30), thirty)
    cfg = load_data_config({"source": "csv", "path": str(csv_file), "strategic_path": str(thirty),
                            "cache_dir": str(tmp_path / "c")})
    assert len(pipeline.prepare(cfg).strategic) > 0
    shifted = tmp_path / "ES - 30 min shifted.csv"
    lines = thirty.read_text().splitlines()
    header, body = lines[0], lines[1:]
    stamps = [row.split(",", 1)[0] for row in body]
    moved = [f"{s},{row.split(',', 1)[1]}" for s, row in zip(stamps[1:], body[:-1], strict=True)]
    shifted.write_text("\n".join([header, *moved]) + "\n")
    bad = load_data_config({"source": "csv", "path": str(csv_file),
                            "strategic_path": str(shifted), "cache_dir": str(tmp_path / "d")})
    with pytest.raises(DataError, match="disagree with the base file"):
        pipeline.prepare(bad)


def test_normalisation_fitted_on_train_only(tmp_path: Path, csv_file: Path) -> None:
    cfg = load_data_config({"source": "csv", "path": str(csv_file), "cache_dir": str(tmp_path)})
    prepared = pipeline.prepare(cfg)
    stats = prepared.meta["normalisation"]["returns_base"]
    returns = prepared.table("returns_base")
    a, b = prepared.splits.train
    assert stats["log_volume"]["mean"] == pytest.approx(returns["log_volume"].iloc[a:b].mean())
    assert stats["log_volume"]["mean"] != pytest.approx(returns["log_volume"].mean(), rel=1e-9)
    assert prepared.meta["normalisation_fitted_on"] == "train"
