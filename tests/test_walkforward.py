"""Walk-forward folds: purge, embargo, anchored and rolling training, per-fold normalisation
fitted on the fold's training bars only, and the ``evaluation.walk_forward`` config."""

from __future__ import annotations

import inspect
import itertools

import numpy as np
import pandas as pd
import pytest

from algospace.config import build_experiment, experiment_from_raw, field_type
from algospace.data.bars import Bars
from algospace.data.resample import align_index, resample
from algospace.data.synthetic import generate
from algospace.data.synthetic_config import SyntheticConfig
from algospace.data.walkforward import (
    MMD_LOOKBACK,
    NWRQK_LOOKBACK,
    Fold,
    default_embargo_bars,
    default_purge_bars,
    episode_bars,
    fold_meta,
    fold_normalisation,
    lookback_bars,
    resolve_gaps,
    walk_forward_fold,
    walk_forward_folds,
)
from algospace.errors import ConfigError, DataError
from algospace.features.build import FeatureConfig, strategic_features, tactical_features
from algospace.features.mmd import mmd_features
from algospace.features.nwrqk import compute_nwrqk
from algospace.features.pipeline import bar_returns


@pytest.fixture(scope="module")
def bars() -> Bars:
    return generate(SyntheticConfig(days=30, seed=3)).bars


# A layout where the embargo bites: test blocks longer than two purges plus a val block.
BITES = {"folds": 4, "val_fraction": 0.05, "test_fraction": 0.15, "purge_bars": 120,
         "embargo_bars": 400}


def _bucket_starts(open_time: pd.DatetimeIndex) -> set[int]:
    b = open_time.floor("30min").asi8
    return {*np.flatnonzero(np.r_[True, b[1:] != b[:-1]]).tolist(), len(open_time)}


def _rows(*ranges: tuple[int, int]) -> set[int]:
    return {r for a, b in ranges for r in range(a, b)}


@pytest.mark.parametrize("mode", ["anchored", "rolling"])
@pytest.mark.parametrize("layout", [BITES, {"folds": 3, "purge_bars": 300, "embargo_bars": 0}])
def test_no_test_bar_in_or_near_its_folds_train_or_val(bars: Bars, mode: str,
                                                       layout: dict) -> None:
    folds = walk_forward_folds(bars.open_time, mode=mode, **layout)
    purge = layout["purge_bars"]
    starts = _bucket_starts(bars.open_time)
    for fold in folds:
        test, val, train = _rows(fold.test), _rows(fold.val), _rows(*fold.train)
        assert test and val and train
        near_val = _rows((fold.val[0] - purge, fold.val[1] + purge))
        near_train = _rows(*((a - purge, b + purge) for a, b in fold.train))
        assert not test & (val | train | near_val | near_train)
        assert not val & near_train  # val is purged from train too
        assert fold.test[0] - fold.val[1] >= purge and fold.val[0] - fold.train[-1][1] >= purge
        cuts = {fold.val[0], fold.val[1], *fold.test, *(c for r in fold.train for c in r)}
        assert cuts <= starts  # every cut on a strategic-bucket start (or the end)
    assert [f.test for f in folds] == sorted(f.test for f in folds)
    for earlier, later in itertools.pairwise(folds):
        assert later.test[0] == earlier.test[1]  # each test block later, tiling the tail
    assert folds[-1].test[1] == len(bars)


@pytest.mark.parametrize("mode", ["anchored", "rolling"])
def test_the_embargo_after_each_test_block_is_left_out_of_later_training(
        bars: Bars, mode: str) -> None:
    folds = walk_forward_folds(bars.open_time, mode=mode, **BITES)
    holes = 0
    for k, fold in enumerate(folds):
        train = fold.train_mask(len(bars))
        for earlier in folds[:k]:
            embargo = slice(earlier.test[1], earlier.test[1] + BITES["embargo_bars"])
            assert not train[embargo].any()
        span = np.zeros(len(bars), dtype=bool)
        span[fold.train[0][0]:fold.train[-1][1]] = True
        left_out = span & ~train
        holes += int(left_out.sum())
        # only embargoes (snapped to the next bucket start) are left out, nothing more
        assert left_out.sum() <= k * (BITES["embargo_bars"] + 6)
    assert holes > 0  # the layout does make later folds skip embargoes
    # earlier test blocks themselves still train later anchored folds
    if mode == "anchored":
        assert folds[-1].train_mask(len(bars))[slice(*folds[0].test)].any()


def test_anchored_training_grows_from_the_first_bar_rolling_slides(bars: Bars) -> None:
    layout = {"folds": 3, "purge_bars": 200, "embargo_bars": 0}
    anchored = walk_forward_folds(bars.open_time, mode="anchored", **layout)
    rolling = walk_forward_folds(bars.open_time, mode="rolling", **layout)
    assert [f.train[0][0] for f in anchored] == [0, 0, 0]
    assert [f.train_bars for f in anchored] == sorted({f.train_bars for f in anchored})
    assert rolling[0].train == anchored[0].train
    assert [f.train[-1][1] for f in rolling] == [f.train[-1][1] for f in anchored]
    lengths = [f.train_bars for f in rolling]
    assert max(lengths) - min(lengths) <= 6  # one window length (up to bucket snapping)
    assert rolling[1].train[0][0] > 0 and rolling[2].train[0][0] > rolling[1].train[0][0]
    short = walk_forward_folds(bars.open_time, mode="rolling", train_fraction=0.2, **layout)
    assert all(abs(f.train_bars - 0.2 * len(bars)) <= 6 for f in short)


def test_fold_splits_and_lookup(bars: Bars) -> None:
    plain = walk_forward_fold(bars.open_time, 2, folds=3, purge_bars=200)
    splits = plain.splits()
    assert (splits.train, splits.val, splits.test) == (plain.train[0], plain.val, plain.test)
    holed = walk_forward_folds(bars.open_time, **BITES)[-1]
    assert len(holed.train) > 1
    with pytest.raises(ConfigError, match="train_mask"):
        holed.splits()
    with pytest.raises(ConfigError, match=r"fold 3 does not exist.*3 folds"):
        walk_forward_fold(bars.open_time, 3, folds=3)
    assert holed.as_dict()["train"] == [list(r) for r in holed.train]


def test_too_few_bars_names_the_numbers_and_a_fix(bars: Bars) -> None:
    with pytest.raises(DataError, match=r"8280 bars are too few for 4 walk-forward folds: "
                                        r"fold 0 gets 0 train.*purging 3714.*Fix: lower"):
        walk_forward_folds(bars.open_time, folds=4, purge_bars=3714, embargo_bars=3162)


def test_default_purge_is_the_longest_lookback_plus_one_episode() -> None:
    from envs.strategic import StrategicEnv
    from envs.tactical import TacticalEnv

    cfg = FeatureConfig()
    # the look-back constants are the feature modules' own
    assert inspect.signature(compute_nwrqk).parameters["lookback"].default == NWRQK_LOOKBACK
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, 700)))
    mmd3 = mmd_features(close * 1.001, close * 0.999, close, np.ones(700))["mmd_3"]
    assert int(np.flatnonzero(np.isfinite(mmd3))[0]) == MMD_LOOKBACK
    lookback = (cfg.strategic_window + MMD_LOOKBACK) * 6
    assert lookback_bars(cfg, 5, 30) == lookback == default_embargo_bars(cfg, 5, 30)
    strategic = episode_bars(StrategicEnv.DEFAULT_EPISODE_STEPS, True, 5, 30)
    tactical = episode_bars(TacticalEnv.DEFAULT_EPISODE_STEPS, False, 5, 30)
    assert (strategic, tactical) == (92 * 6, 276)
    assert default_purge_bars(cfg, 5, 30, strategic) == lookback + strategic
    assert resolve_gaps("auto", 7, cfg, 5, 30, tactical) == (lookback + tactical, 7)
    with pytest.raises(ConfigError, match="whole multiple"):
        lookback_bars(cfg, 7, 30)


def _tables(bars: Bars) -> tuple[dict[str, pd.DataFrame], np.ndarray]:
    strategic = resample(bars, 30)
    cfg = FeatureConfig()
    return ({"returns_base": bar_returns(bars), "returns_strategic": bar_returns(strategic),
             "features_tactical": tactical_features(bars, cfg),
             "features_strategic": strategic_features(strategic, cfg)},
            align_index(bars, strategic))


def test_fold_normalisation_never_reads_a_bar_after_its_training(bars: Bars) -> None:
    folds = walk_forward_folds(bars.open_time, folds=3, purge_bars=200, embargo_bars=100)
    fold = folds[1]
    cut = fold.train[-1][1]  # the train/val boundary: from here on the bars change
    frame = bars.frame.copy()
    for col in ("open", "high", "low", "close"):
        frame.iloc[cut:, frame.columns.get_loc(col)] *= 1.3
    frame.iloc[cut:, frame.columns.get_loc("volume")] *= 4
    changed = Bars(frame, bars.bar_minutes, bars.source)
    (before, index), (after, index_after) = _tables(bars), _tables(changed)
    assert np.array_equal(index, index_after)
    stats = [{k: n.to_dict() for k, n in fold_normalisation(t, index, fold).items()}
             for t in (before, after)]
    assert stats[0] == stats[1]
    # the next fold trains on the changed bars, so its statistics do move (the test can fail)
    later = [fold_normalisation(t, index, folds[2]) for t in (before, after)]
    assert later[0]["returns_strategic"].to_dict() != later[1]["returns_strategic"].to_dict()
    assert later[0]["features_tactical"].to_dict() != later[1]["features_tactical"].to_dict()
    # the fold's meta: its normalisation and the training bars' highest close
    meta = fold_meta({"features": {}}, fold, fold_normalisation(before, index, fold),
                     bars.column("close"))
    assert meta["reference_price"] == float(np.max(bars.column("close")[slice(*fold.train[0])]))
    assert meta["normalisation"]["returns_base"] == stats[0]["returns_base"]
    assert meta["walk_forward_fold"]["fold"] == 1


def test_fold_training_ranges_are_what_normalisation_fits(bars: Bars) -> None:
    fold = Fold(0, ((0, 600), (1200, 1800)), (2400, 3000), (3600, 4200), 0, 0)
    tables, index = _tables(bars)
    norm = fold_normalisation(tables, index, fold)["returns_base"]
    rows = tables["returns_base"].iloc[np.r_[0:600, 1200:1800]]
    assert np.allclose(norm.mean, np.nanmean(rows.to_numpy(), axis=0))


def _config(walk_forward: object) -> object:
    return build_experiment({"evaluation": {"walk_forward": walk_forward}})


def test_walk_forward_config() -> None:
    assert _config(None).evaluation.walk_forward is None
    section = _config({"folds": 5, "mode": "rolling", "purge_bars": 0}).evaluation.walk_forward
    assert (section.folds, section.mode, section.purge_bars, section.embargo_bars) == \
        (5, "rolling", 0, "auto")
    assert section.layout()["folds"] == 5
    # read as a section of a YAML file (not as a search space), its keys typed one by one
    raw = {"evaluation": {"walk_forward": {"folds": 3, "embargo_bars": 50}}}
    read = experiment_from_raw(raw, "wf.yaml").config.evaluation.walk_forward
    assert (read.folds, read.embargo_bars) == (3, 50)
    assert field_type("evaluation.walk_forward.folds") is int


@pytest.mark.parametrize(("value", "message"), [
    ({"fold": 3}, r"walk_forward\.fold: unknown key\. Did you mean 'folds'\?"),
    ({"folds": 1}, r"walk_forward\.folds must be >= 2, got 1"),
    ({"mode": "expanding"}, r"walk_forward\.mode: expected one of \['anchored', 'rolling'\]"),
    ({"folds": 5, "test_fraction": 0.2}, r"5 folds × test_fraction 0\.2 \+ val_fraction 0\.1"
                                         r" = 1\.1 leaves no bars to train the first fold"),
    ({"val_fraction": 0}, r"val_fraction must lie in \(0, 1\), got 0"),
    ({"train_fraction": 0.3}, r"train_fraction applies to mode: rolling only"),
    ({"purge_bars": "lots"}, r"purge_bars must be a number of base bars >= 0 or auto"),
    ({"embargo_bars": -1}, r"embargo_bars must be a number of base bars >= 0 or auto"),
])
def test_walk_forward_config_errors(value: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _config(value)
