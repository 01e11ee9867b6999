"""The stream's constant-cost feature update equals the batch features over the whole history.

* the 5-minute features recomputed on the tail of :func:`tactical_tail` bars equal the batch
  features over every bar before, at many cut points (built-in market, and a CSV-like frame
  with holes: a missing bar, an outage, a holiday);
* :class:`SynergyStream`, advanced in chunks of every size from one step, equals the batch
  synergy features on every row;
* :class:`MarketStream` updated at irregular steps builds the same env arrays as the batch
  path (the decisions built on them are the engine-vs-backtest replays of
  ``tests/test_decision_engine.py``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from algospace.config import DataConfig, EnvConfig
from algospace.data.bars import COLUMNS, Bars
from algospace.data.resample import align_index, resample
from algospace.data.synthetic import SyntheticConfig, generate, to_csv
from algospace.features.build import (
    FeatureConfig,
    strategic_features,
    synergy_features,
    tactical_features,
)
from algospace.features.mlmi import compute_mlmi
from algospace.features.mlmi_stream import MLMIStream
from algospace.features.mmd import mmd_squared
from algospace.features.pipeline import prepare
from algospace.features.strategic_stream import STRATEGIC_TABLE, MMDStream, strategic_rows
from algospace.features.streaming import SynergyStream, tactical_tail
from algospace.inference.stream import MarketStream
from envs.core.data import load_market


def _bars(days: int, seed: int, holes: bool = False) -> Bars:
    """The built-in market; with ``holes``: a missing bar, a 45-minute outage and a whole
    trading day (a holiday) dropped."""
    bars = generate(SyntheticConfig(days=days, seed=seed, signal=1.0)).bars
    if not holes:
        return bars
    frame = bars.frame
    n = len(frame)
    day = frame.index.normalize() == frame.index[n // 2].normalize()
    drop = np.zeros(n, bool)
    drop[[n // 5, n // 3 + 7]] = True  # missing bars
    drop[int(0.7 * n):int(0.7 * n) + 9] = True  # an outage
    drop |= day  # a holiday
    return Bars(frame[~drop], bars.bar_minutes, bars.source)


def _check_tail(bars: Bars, cfg: FeatureConfig, every: int) -> int:
    """Tail rows vs full-history rows at every ``every``-th bar (and the first ones)."""
    full = tactical_features(bars, cfg).to_numpy()
    tail = tactical_tail(cfg.fvg_max_age, cfg.fvg_body_multiplier)
    cuts = sorted({*range(0, 2 * tail), *range(2 * tail, len(full), every), len(full) - 1})
    for t in cuts:
        window = Bars(bars.frame.iloc[max(0, t - tail + 1):t + 1], bars.bar_minutes, "tail")
        row = tactical_features(window, cfg).to_numpy()[-1]
        np.testing.assert_array_equal(row, full[t], err_msg=f"bar {t}")
    assert np.nansum(np.abs(full[:, 4])) > 20, "enough FVG mitigation events to test"
    return len(cuts)


@pytest.mark.parametrize("cfg", [FeatureConfig(), FeatureConfig(fvg_max_age=20),
                                 FeatureConfig(fvg_body_multiplier=0.0, fvg_max_age=80)],
                         ids=["default", "short-age", "no-body-filter"])
def test_tactical_tail_equals_full_history(cfg: FeatureConfig) -> None:
    assert _check_tail(_bars(40, seed=3), cfg, every=23) > 400


def test_tactical_tail_equals_full_history_with_holes() -> None:
    assert _check_tail(_bars(40, seed=4, holes=True), FeatureConfig(), every=23) > 400


def test_a_shorter_tail_would_differ() -> None:
    """The FVG look-back is needed: ten bars fewer change some rows."""
    bars, cfg = _bars(40, seed=3), FeatureConfig()
    full = tactical_features(bars, cfg).to_numpy()
    short = tactical_tail(cfg.fvg_max_age, cfg.fvg_body_multiplier) - 10
    differs = 0
    for t in range(short, len(full), 29):
        window = Bars(bars.frame.iloc[t - short + 1:t + 1], bars.bar_minutes, "tail")
        differs += not np.array_equal(tactical_features(window, cfg).to_numpy()[-1], full[t],
                                      equal_nan=True)
    assert differs > 0


def _check_synergy(bars: Bars, cfg: FeatureConfig, seed: int) -> None:
    """SynergyStream in random chunks (mostly single steps) vs the batch synergy table."""
    strategic = resample(bars, 30)
    index = align_index(bars, strategic)
    strat = strategic_features(strategic, cfg)
    tact = tactical_features(bars, cfg)
    batch = synergy_features(strat, tact, index, cfg)
    assert np.count_nonzero(batch["synergy_event"]) >= 5, "enough synergies to test"
    stream = SynergyStream(cfg.synergy_window, cfg.synergy_cooldown)
    mitigation = tact["fvg_mitigation"].to_numpy()
    rng = np.random.default_rng(seed)
    first = int(np.argmax(index >= 0)) + 1  # the stream starts after a 30-minute close
    parts: list[pd.DataFrame] = []
    while first < len(index):
        end = min(len(index), first + int(rng.choice([1, 1, 1, 2, 6, 13, 200])))
        if not parts:
            end, first = first, 0
        visible = strat.iloc[:int(index[end - 1]) + 1]
        parts.append(stream.advance(visible, mitigation[first:end], index[:end], first))
        first = end
    got = pd.concat(parts, ignore_index=True)
    np.testing.assert_array_equal(got[list(batch.columns)].to_numpy(), batch.to_numpy())


def test_synergy_stream_equals_batch() -> None:
    _check_synergy(_bars(60, seed=5), FeatureConfig(), seed=0)


def test_synergy_stream_equals_batch_with_holes_and_a_cooldown_met_exactly() -> None:
    _check_synergy(_bars(60, seed=6, holes=True), FeatureConfig(synergy_cooldown=3), seed=1)


@pytest.mark.slow
def test_a_year_of_bars_streams_like_the_batch() -> None:
    """252 trading days (~70k bars): the tactical tail at every 97th bar and the synergy
    stream on every step."""
    bars = _bars(252, seed=8)
    assert _check_tail(bars, FeatureConfig(), every=97) > 700
    _check_synergy(bars, FeatureConfig(), seed=2)


@pytest.mark.parametrize("holes", [False, True], ids=["synthetic", "csv-with-holes"])
def test_market_stream_updated_at_irregular_steps_equals_batch(
        holes: bool, tmp_path: Path) -> None:
    """Every env array of a stream updated after chunks of 1 to 13 bars equals the batch."""
    bars = _bars(20, seed=7, holes=holes)
    path = to_csv(bars, tmp_path / "bars.csv")
    data = DataConfig(source="csv", path=str(path), symbol="ES",
                      cache_dir=str(tmp_path / "cache"))
    prepared = prepare(data, log=lambda _: None)
    cfg = replace(EnvConfig(), data=data)
    batch = load_market(cfg).arrays
    stream = MarketStream(prepared.meta, atr_bars=cfg.atr_bars)
    frame = prepared.base.frame
    start = len(frame) - 300
    stream.extend(frame.iloc[:start])
    stream.update()
    rng = np.random.default_rng(0)
    values = frame[["open", "high", "low", "close", "volume"]].to_numpy()
    for i in range(start, len(frame)):
        stream.add(frame.index[i], *values[i])
        if i == len(frame) - 1 or rng.random() < 0.4 or i < start + 30:
            stream.update()
    assert stream.market is not None
    for name, got in stream.market.arrays.items():
        if name == "synergy_direction":
            continue
        np.testing.assert_array_equal(got, np.asarray(batch[name])[:len(got)], err_msg=name)
    assert len(stream.market.arrays["base_ohlc"]) == len(frame)


@pytest.mark.slow
def test_a_year_of_bars_streams_like_the_batch_env_arrays(tmp_path: Path) -> None:
    """252 trading days with holes (~70k bars): a stream warmed up at 16 cut points spread
    over the year, then fed 13 bars one at a time (at least two 30-minute closes), equals
    every batch env array on every row so far."""
    bars = _bars(252, seed=9, holes=True)
    path = to_csv(bars, tmp_path / "bars.csv")
    data = DataConfig(source="csv", path=str(path), symbol="ES",
                      cache_dir=str(tmp_path / "cache"))
    prepared = prepare(data, log=lambda _: None)
    batch = {k: np.asarray(v) for k, v in load_market(replace(EnvConfig(), data=data))
             .arrays.items()}
    frame = prepared.base.frame
    values = frame[["open", "high", "low", "close", "volume"]].to_numpy()
    for cut in np.linspace(3_000, len(frame) - 13, 16).astype(int):
        stream = MarketStream(prepared.meta, atr_bars=14)
        stream.extend(frame.iloc[:cut])
        stream.update()
        closes = 0
        for i in range(cut, cut + 13):
            closes += stream.add(frame.index[i], *values[i])
            stream.update()
        assert closes >= 2
        assert stream.market is not None
        for name, got in stream.market.arrays.items():
            if name != "synergy_direction":
                np.testing.assert_array_equal(got, batch[name][:len(got)],
                                              err_msg=f"{name} after cut {cut}")


def test_strategic_rows_equal_the_batch_features_at_every_cut() -> None:
    """The 30-minute features of the newest bars only (tails, MMD from its chunk, MLMI's vote
    for those bars) equal the batch table exactly, column by column: at the warm-up edges,
    across MMD's 4096-bar chunk boundary and at random cuts, one bar or several at a time."""
    bars = resample(_bars(100, seed=9, holes=True), 30)
    cfg = FeatureConfig()
    full = strategic_features(bars, cfg)[list(STRATEGIC_TABLE)].to_numpy()
    ns, ohlcv = bars.frame.index.asi8, bars.frame[list(COLUMNS)].to_numpy()
    n = len(full)
    assert n > 4_400 and np.isfinite(full[-1]).all()
    rng = np.random.default_rng(0)
    edges = [0, 1, 99, 100, 101, 102, 103, 298, 299, 300, 4394, 4395, 4396]
    for cut in sorted({*edges, *rng.integers(0, n - 7, 25).tolist()}):
        for end in (cut + 1, cut + 7):
            rows = strategic_rows(ns[:end], ohlcv[:end], 30, cut, cfg)
            for j, name in enumerate(STRATEGIC_TABLE):
                np.testing.assert_array_equal(rows[:, j], full[cut:end, j],
                                              err_msg=f"{name}, bars {cut}..{end - 1}")


def test_mmd_sums_carried_bar_by_bar_equal_the_batch() -> None:
    """MMDStream, one bar at a time after a bulk start — from the warm-up, within a chunk and
    across the 4096-bar chunk boundary (row 4395) — equals mmd_squared bit for bit."""
    close = resample(_bars(100, seed=9, holes=True), 30).column("close")
    full = mmd_squared(close)
    assert len(close) > 4_500
    for start in (0, 290, 1_000, 4_300):
        stream = MMDStream()
        parts = [stream.rows(close[:start + 1], 0)]
        for t in range(start + 1, min(len(close), start + 300)):
            parts.append(stream.rows(close[:t + 1], t))
        got = np.concatenate(parts)
        np.testing.assert_array_equal(got, full[:len(got)], err_msg=f"from bar {start}")


def test_mlmi_recurrences_carried_bar_by_bar_equal_the_batch() -> None:
    """MLMIStream, one bar at a time after a bulk start — in the RSI warm-up, across the
    64-bar blocks of the Wilder recurrences and far into the kNN memory — equals
    compute_mlmi bit for bit, value and signal."""
    close = resample(_bars(100, seed=9, holes=True), 30).column("close")
    cfg = FeatureConfig()
    full = compute_mlmi(close, k=cfg.mlmi_k, threshold=cfg.mlmi_threshold)
    for start in (0, 19, 20, 83, 84, 1_000, 4_300):
        stream = MLMIStream(cfg.mlmi_k, cfg.mlmi_threshold)
        parts = [stream.rows(close[:start + 1], 0)]
        for t in range(start + 1, min(len(close), start + 200)):
            parts.append(stream.rows(close[:t + 1], t))
        for name in ("mlmi_value", "mlmi_signal"):
            got = np.concatenate([p[name] for p in parts])
            np.testing.assert_array_equal(got, full[name][:len(got)],
                                          err_msg=f"{name} from bar {start}")
    assert np.isfinite(full["mlmi_value"][1_000:]).all()
    assert np.count_nonzero(full["mlmi_signal"][1_000:]) > 100
