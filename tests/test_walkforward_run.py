"""Walk-forward runs: an env given a fold trains, validates and tests on that fold's blocks
only (embargo holes respected), and a walk-forward phase runs one Tune trial per fold whose
test blocks are stitched into one out-of-sample record."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from algospace.config import DataConfig, EnvConfig, WalkForwardSection, build_experiment
from algospace.errors import ConfigError
from envs.core.data import env_fold, load_market
from envs.registry import env_class

# 3 folds where the embargo cuts a hole in the last fold's training (30 synthetic days)
LAYOUT = WalkForwardSection(folds=3, val_fraction=0.05, test_fraction=0.15, purge_bars=120,
                            embargo_bars=400)


def _base_rows(env, start: int) -> np.ndarray:
    """The 5-minute rows an episode starting at clock position ``start`` visits."""
    pos = np.arange(start, start + env.episode_steps + 1)
    return np.asarray(env._close_step)[pos] if env.STRATEGIC_CLOCK else pos


@pytest.mark.parametrize("name", ["strategic_v0", "tactical_v0"])
def test_fold_env_trains_only_inside_its_train_ranges_and_tests_on_its_block(
        env_data: DataConfig, name: str) -> None:
    from algospace.features.pipeline import prepare

    cfg = EnvConfig(data=env_data, episode_steps=20, walk_forward=LAYOUT, fold=2)
    fold = env_fold(prepare(env_data, log=lambda _: None), cfg)
    assert fold is not None and len(fold.train) == 2  # the embargo cut a hole
    train = fold.train_mask(load_market(cfg).n_base)
    env = env_class(name)(cfg)
    starts = env.valid_starts()
    assert starts.size
    visited = np.concatenate([_base_rows(env, s) for s in starts])
    assert train[visited].all()  # no train-episode bar outside the fold's train ranges
    for s in starts:  # every episode lies inside one range (none crosses the hole)
        rows = _base_rows(env, s)
        assert any(a <= rows.min() and rows.max() < b for a, b in fold.train)
    second = [s for s in starts if _base_rows(env, s).min() >= fold.train[1][0]]
    assert second  # the range after the hole is used too
    for _ in range(20):  # random training episodes start at those starts
        env.reset()
        assert env._pos in set(starts.tolist())
    test = env_class(name)(replace(cfg, split="test"))
    assert test.market.splits.test == fold.test
    rows = np.concatenate([_base_rows(test, s) for s in test.valid_starts()])
    assert rows.min() >= fold.test[0] and rows.max() < fold.test[1]
    val = env_class(name)(replace(cfg, split="val"))
    rows = np.concatenate([_base_rows(val, s) for s in val.valid_starts()])
    assert rows.min() >= fold.val[0] and rows.max() < fold.val[1]


def test_fold_env_is_normalised_on_its_training_bars(env_data: DataConfig) -> None:
    plain = load_market(EnvConfig(data=env_data))
    folds = [load_market(EnvConfig(data=env_data, walk_forward=LAYOUT, fold=k)) for k in (0, 2)]
    assert plain.train_mask is None and folds[0].train_mask is not None
    state = [np.asarray(m["market_state"]) for m in (plain, *folds)]
    rows = np.flatnonzero(np.isfinite(state[0]).all(axis=1) & np.isfinite(state[1]).all(axis=1))
    assert not np.allclose(state[0][rows], state[1][rows])  # other statistics
    assert not np.allclose(state[1][rows], state[2][rows])
    np.testing.assert_array_equal(plain["base_ohlc"], folds[0]["base_ohlc"])


def test_walk_forward_config_checks() -> None:
    with pytest.raises(ConfigError, match=r"regime_latent.*walk_forward"):
        build_experiment({"env": {"regime_latent": True},
                          "evaluation": {"walk_forward": {"folds": 3}}})
    with pytest.raises(ConfigError, match=r"env\.fold: not set here"):
        build_experiment({"env": {"fold": 1}, "evaluation": {"walk_forward": {"folds": 3}}})
    with pytest.raises(ConfigError, match="fold 3 does not exist"):
        EnvConfig(walk_forward=LAYOUT, fold=3)
    with pytest.raises(ConfigError, match="no walk-forward layout"):
        EnvConfig(fold=0)
    cfg = build_experiment({"evaluation": {"walk_forward": {"folds": 3}}})
    assert cfg.env.walk_forward == cfg.evaluation.walk_forward and cfg.env.fold is None


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.train
def test_walkforward_quick_runs_a_trial_per_fold_and_stitches_their_test_blocks(
        readme_walkforward: Any) -> None:
    """The README's ``walkforward.yaml --quick`` (1 iteration; tests/readme_runs.py)."""
    import pandas as pd

    lines = readme_walkforward.lines
    [summary] = readme_walkforward.summaries
    assert summary["status"] == "finished"
    folds = sorted(t["params"]["fold"] for t in summary["trials"])
    assert folds == [0, 1, 2]  # one Tune trial per fold
    exp = Path(summary["experiment_dir"])
    report = json.loads((exp / "walkforward" / "report.json").read_text())
    assert {p.name for p in (exp / "walkforward").iterdir()} == {
        "report.json", "equity.png", "folds.png"}
    per_fold = report["folds"]
    assert [f["fold"] for f in per_fold] == [0, 1, 2]
    stitched = report["stitched"]["agents"]["net_pnl"]
    assert stitched == pytest.approx(sum(f["agents"]["net_pnl"] for f in per_fold), abs=0.01)
    for name, figures in report["stitched"]["baselines"].items():
        assert figures["net_pnl"] == pytest.approx(
            sum(f["baselines"][name]["net_pnl"] for f in per_fold), abs=0.01)
    for earlier, later in itertools.pairwise(per_fold):
        assert earlier["test"][1] <= later["test"][0]  # blocks in time order, disjoint rows
        assert pd.Timestamp(earlier["period"][1]) < pd.Timestamp(later["period"][0])
        assert later["train"][-1][1] <= later["val"][0] < later["val"][1] <= later["test"][0]
    assert report["deflation"]["n_trials"] >= 3  # every fold's selection counts
    assert any(line.strip().startswith("stitched") for line in lines)


def test_stitch_chains_block_pnl_and_refuses_overlapping_blocks() -> None:
    import pandas as pd

    from algospace.errors import AlgoSpaceError
    from algospace.evaluation.walkforward_report import stitch

    first = pd.Series([100_010.0, 99_990.0], index=pd.date_range("2024-01-01", periods=2,
                                                                  freq="30min"))
    second = pd.Series([100_050.0, 100_030.0], index=pd.date_range("2024-01-02", periods=2,
                                                                    freq="30min"))
    out = stitch([first, second], 100_000.0)
    assert out.tolist() == [100_010.0, 99_990.0, 100_040.0, 100_020.0]  # -10, then +30
    with pytest.raises(AlgoSpaceError, match="not after block 0"):
        stitch([second, first], 100_000.0)
