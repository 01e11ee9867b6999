"""The regime encoder at a 30-minute close reads a bounded window, equal to the batch.

* :class:`RegimeRows` — the regime features of the newest rows only — equals
  :func:`regime_features` over the whole history bit for bit, at cut points over a year of
  bars with holes (a missing bar, an outage, a holiday), in bulk and one bar at a time,
  and on a calendar where some clock slots trade only on some days;
* the seasonal norm, now summed over its window alone, is the rolling mean it replaced up
  to rounding (1e-15);
* a :class:`MarketStream` with a regime encoder, warmed up at cut points over a year of
  5-minute bars and fed bars one at a time, holds the latents of the batch
  ``regime_latent`` table (:func:`encode_all`) to 1e-6 — its inputs are bit-equal, but the
  stream encodes one window per close and the batch 1024 at a time, and torch's float32
  matrix products round differently with the batch size — while the rows it computes at
  a close are the window's, whatever the history.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from algospace.config import DataConfig
from algospace.data.bars import COLUMNS, Bars
from algospace.data.resample import resample
from algospace.data.splits import Normalizer
from algospace.data.synthetic import SyntheticConfig
from algospace.features.mmd import MMD_FEATURES
from algospace.features.pipeline import prepare
from algospace.inference.stream import MarketStream, RegimeEncoder
from algospace.regime.features import (
    REGIME_FEATURES,
    REGIME_LOOKBACK,
    RegimeRows,
    clock_slot,
    regime_features,
    relative_to_season,
)
from algospace.regime.latents import encode_all
from algospace.regime.model import RegimeDetector
from tests.test_stream_incremental import _bars

YEAR = 252
"""Trading days of the long history (about 69k 5-minute bars, 11.5k of 30 minutes)."""
WINDOW = 16
"""The test detector's window (30-minute bars)."""


@pytest.fixture(scope="module")
def year() -> Bars:
    """A year of the built-in market with holes."""
    return _bars(YEAR, seed=9, holes=True)


def _check_rows(bars: Bars, cuts: list[int], carried: int = 60) -> None:
    """RegimeRows at each cut (a fresh one, the whole history in bulk), then carried one
    bar at a time for ``carried`` bars with the window's rows recomputed, vs the batch."""
    full = regime_features(bars).to_numpy()
    ns, ohlcv = bars.frame.index.asi8, bars.frame[list(COLUMNS)].to_numpy()
    mmd = full[:, :len(MMD_FEATURES)]
    for cut in cuts:
        rows = RegimeRows(bars.bar_minutes)
        got = rows.rows(ns[:cut + 1], ohlcv[:cut + 1], mmd[:cut + 1], 0)
        np.testing.assert_array_equal(got, full[:cut + 1], err_msg=f"bulk to bar {cut}")
        for t in range(cut + 1, min(len(full), cut + 1 + carried)):
            r0 = max(0, t - WINDOW + 1)
            got = rows.rows(ns[:t + 1], ohlcv[:t + 1], mmd[r0:t + 1], r0)
            np.testing.assert_array_equal(got, full[r0:t + 1], err_msg=f"bars {r0}..{t}")


def test_regime_rows_equal_the_batch_over_a_year(year: Bars) -> None:
    bars = resample(year, 30)
    full = regime_features(bars)
    n = len(full)
    assert n > 11_000 and np.isfinite(full.to_numpy()[REGIME_LOOKBACK:]).all()
    edges = [0, 1, 458, 459, 460, 461, REGIME_LOOKBACK - 1, REGIME_LOOKBACK, n - 2]
    rng = np.random.default_rng(0)
    _check_rows(bars, sorted({*edges, *rng.integers(0, n - 1, 12).tolist()}))


def test_regime_rows_equal_the_batch_on_an_irregular_calendar(year: Bars) -> None:
    """A third of the 30-minute bars dropped at random: each slot's ten earlier bars lie
    a varying number of days back (the look-back is not a fixed count of bars)."""
    bars = resample(year, 30)
    keep = np.random.default_rng(1).random(len(bars.frame)) > 1 / 3
    sparse = Bars(bars.frame[keep], 30, "sparse")
    full = regime_features(sparse).to_numpy()
    assert np.isfinite(full[-1]).all()
    _check_rows(sparse, [500, 2_000, len(full) - 80])


def test_the_seasonal_norm_is_the_rolling_mean_up_to_rounding(year: Bars) -> None:
    """The definition is unchanged: pandas' rolling mean of the same-slot values (the
    previous form) agrees to 1e-14, and NaN on the same rows."""
    bars = resample(year, 30)
    slot = clock_slot(bars)
    values = np.log1p(bars.column("volume"))
    series = pd.Series(values)
    rolling = (series - series.groupby(slot).transform(
        lambda s: s.shift(1).rolling(10).mean())).to_numpy()
    ours = relative_to_season(values, slot, 10)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(rolling))
    np.testing.assert_allclose(ours, rolling, rtol=0, atol=1e-14)


def test_streamed_latents_equal_the_batch_table_over_a_year(
        year: Bars, tmp_path_factory: pytest.TempPathFactory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream with a regime encoder, warmed up in bulk to each of 5 cut points over the
    year, then fed 13 bars one at a time (two 30-minute closes or more): its latents equal
    the batch table's on every 30-minute bar so far (to 1e-6), and a close computes the
    regime features of one window's rows only."""
    cache = tmp_path_factory.mktemp("regime-stream")
    meta = prepare(DataConfig(synthetic=SyntheticConfig(days=20, seed=9),
                              cache_dir=str(cache)), log=lambda _: None).meta
    strategic = resample(year, 30)
    features = regime_features(strategic)
    torch.manual_seed(0)
    model = RegimeDetector(len(REGIME_FEATURES), window=WINDOW, d_model=16, heads=2,
                           layers=1, ff_dim=16).eval()
    normaliser = Normalizer.fit(features, (0, len(features) // 2))
    batch = encode_all(model, normaliser, features, WINDOW)
    assert np.isfinite(batch[-1]).all()
    stream = MarketStream(meta, atr_bars=14, regime=RegimeEncoder(model, normaliser, WINDOW))
    computed: list[int] = []
    original = stream._regime_rows.rows

    def spy(*args: object) -> np.ndarray:
        out = original(*args)  # type: ignore[arg-type]
        computed.append(len(out))
        return out

    monkeypatch.setattr(stream._regime_rows, "rows", spy)
    frame = year.frame
    values = frame[list(COLUMNS)].to_numpy()
    fed = 0
    for cut in np.linspace(3_000, len(frame) - 13, 5).astype(int):
        stream.extend(frame.iloc[fed:cut])
        stream.update()
        computed.clear()
        closes = 0
        for i in range(cut, cut + 13):
            closes += stream.add(frame.index[i], *values[i])
            stream.update()
        fed = cut + 13
        assert closes >= 2 and computed and max(computed) == WINDOW, computed
        got = stream._latents.view
        assert len(got) == stream.n_strategic
        np.testing.assert_array_equal(np.isnan(got), np.isnan(batch[:len(got)]))
        np.testing.assert_allclose(got, batch[:len(got)], rtol=0, atol=1e-6,
                                   err_msg=f"after cut {cut}")
        assert stream.market is not None
        np.testing.assert_array_equal(stream.market.arrays["latent"], got)
