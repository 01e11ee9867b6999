"""A MarketStream saved after any bar and restored continues with the same arrays.

The saved stream and the restored one take the same next bars; at every update each env
array of the restored stream equals the uninterrupted stream's (and the batch arrays):
cut after a 30-minute close, in the middle of a 30-minute bucket, after ``add`` without
``update``, across a hole in the bars, and with a regime encoder. Bad files are refused
with a message.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from algospace.config import DataConfig, EnvConfig
from algospace.data.splits import Normalizer
from algospace.data.synthetic import to_csv
from algospace.errors import DataError
from algospace.features.pipeline import Prepared, prepare
from algospace.inference.stream import MarketStream, RegimeEncoder
from algospace.inference.stream_state import restore_stream, save_stream
from algospace.regime.features import regime_features
from algospace.regime.model import RegimeDetector
from envs.core.data import load_market
from tests.test_stream_incremental import _bars

COLUMNS = ["open", "high", "low", "close", "volume"]


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> tuple[Prepared, dict[str, np.ndarray]]:
    """A CSV market with holes (a missing bar, an outage, a holiday) and its batch arrays."""
    tmp = tmp_path_factory.mktemp("state")
    path = to_csv(_bars(20, seed=7, holes=True), tmp / "bars.csv")
    data = DataConfig(source="csv", path=str(path), symbol="ES", cache_dir=str(tmp / "cache"))
    prepared = prepare(data, log=lambda _: None)
    batch = load_market(replace(EnvConfig(), data=data)).arrays
    return prepared, {k: np.asarray(v) for k, v in batch.items()}


def _feed(stream: MarketStream, prepared: Prepared, rows: range, update: bool = True) -> None:
    frame = prepared.base.frame
    values = frame[COLUMNS].to_numpy()
    for i in rows:
        stream.add(frame.index[i], *values[i])
        if update:
            stream.update()


def _same(a: MarketStream, b: MarketStream) -> None:
    assert a.market is not None and b.market is not None
    assert a.market.arrays.keys() == b.market.arrays.keys()
    for name, got in b.market.arrays.items():
        np.testing.assert_array_equal(got, a.market.arrays[name], err_msg=name)


def _cuts(prepared: Prepared) -> dict[str, int]:
    """Bars fed before the save: after a 30-minute close, mid-bucket, after a hole."""
    frame = prepared.base.frame
    minute = (frame.index.minute % 30).to_numpy()
    late = len(frame) - 200
    close = late + int(np.argmax(minute[late:] == 25)) + 1  # the bucket's last bar is fed
    gaps = np.flatnonzero(np.diff(frame.index.asi8) > 5 * 60_000_000_000)
    hole = int(gaps[gaps > len(frame) // 2][0]) + 1  # the last bar before the hole is fed
    return {"after-close": close, "mid-bucket": close + 2, "after-hole": hole}


@pytest.mark.parametrize("cut", ["after-close", "mid-bucket", "after-hole", "no-update"])
def test_restored_stream_continues_like_the_saved_one(
        cut: str, market: tuple[Prepared, dict[str, np.ndarray]], tmp_path: Path) -> None:
    prepared, batch = market
    n = len(prepared.base.frame)
    at = _cuts(prepared).get(cut, _cuts(prepared)["mid-bucket"])
    a = MarketStream(prepared.meta, atr_bars=14)
    a.extend(prepared.base.frame.iloc[:at - 40])
    a.update()
    _feed(a, prepared, range(at - 40, at))
    if cut == "no-update":  # a bar added, the state saved before its update
        _feed(a, prepared, range(at, at + 1), update=False)
        at += 1
    saved = save_stream(a, tmp_path / "stream.npz")
    b = restore_stream(saved)
    assert len(b) == len(a) == at and b.n_strategic == a.n_strategic
    assert b.next_close == a.next_close
    if cut != "no-update":
        _same(a, b)
    for i in range(at, min(n, at + 120)):
        _feed(a, prepared, range(i, i + 1))
        _feed(b, prepared, range(i, i + 1))
        _same(a, b)
    assert b.market is not None
    for name, got in b.market.arrays.items():
        if name != "synergy_direction":
            np.testing.assert_array_equal(got, batch[name][:len(got)], err_msg=name)


def _encoder(prepared: Prepared) -> RegimeEncoder:
    """A small, freshly initialised regime detector (the state does not depend on its
    weights' values) with its input normalisation fitted on the bars."""
    torch.manual_seed(0)
    model = RegimeDetector(8, window=16, d_model=16, heads=2, layers=1, ff_dim=16).eval()
    features = regime_features(prepared.strategic)
    return RegimeEncoder(model, Normalizer.fit(features, (0, len(features))), 16)


def test_a_regime_stream_restores_with_its_encoder(
        market: tuple[Prepared, dict[str, np.ndarray]], tmp_path: Path) -> None:
    prepared, _ = market
    encoder = _encoder(prepared)
    at = _cuts(prepared)["mid-bucket"]
    a = MarketStream(prepared.meta, atr_bars=14, regime=encoder)
    a.extend(prepared.base.frame.iloc[:at])
    a.update()
    saved = save_stream(a, tmp_path / "stream.npz")
    with pytest.raises(DataError, match="built in code"):
        restore_stream(saved)
    b = restore_stream(saved, regime=encoder)
    for i in range(at, at + 40):
        _feed(a, prepared, range(i, i + 1))
        _feed(b, prepared, range(i, i + 1))
        _same(a, b)
    assert b.market is not None
    assert np.isfinite(b.market.arrays["latent"][-1]).all()


def test_bad_state_files_are_refused(market: tuple[Prepared, dict[str, np.ndarray]],
                                     tmp_path: Path) -> None:
    prepared, _ = market
    with pytest.raises(DataError, match="no saved stream state"):
        restore_stream(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_text("not a state")
    with pytest.raises(DataError, match="not a saved stream state"):
        restore_stream(junk)
    a = MarketStream(prepared.meta, atr_bars=14)
    a.extend(prepared.base.frame.iloc[:2000])
    a.update()
    with pytest.raises(DataError, match="had no regime encoder"):
        restore_stream(save_stream(a, tmp_path / "plain.npz"), regime=_encoder(prepared))
    with np.load(tmp_path / "plain.npz") as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(str(arrays["header"]))
    arrays["header"] = np.array(json.dumps({**header, "version": 0}))
    np.savez(tmp_path / "old.npz", allow_pickle=False, **arrays)
    with pytest.raises(DataError, match="version 0"):
        restore_stream(tmp_path / "old.npz")


def test_a_save_replaces_the_file_whole(market: tuple[Prepared, dict[str, np.ndarray]],
                                        tmp_path: Path) -> None:
    """Saving again overwrites the state and leaves no temporary file behind."""
    prepared, _ = market
    a = MarketStream(prepared.meta, atr_bars=14)
    a.extend(prepared.base.frame.iloc[:2000])
    a.update()
    path = save_stream(a, tmp_path / "stream.npz")
    _feed(a, prepared, range(2000, 2010))
    save_stream(a, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stream.npz"]
    assert len(restore_stream(path)) == 2010
