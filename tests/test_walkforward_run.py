"""Walk-forward runs: an env given a fold trains, validates and tests on that fold's blocks
only (embargo holes respected), and a walk-forward phase runs one Tune trial per fold whose
test blocks are stitched into one out-of-sample record."""

from __future__ import annotations

import contextlib
import itertools
import json
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from algospace.config import DataConfig, EnvConfig, build_experiment
from algospace.errors import ConfigError
from algospace.tune.plan import EXPERIMENT_FILE, SUMMARY
from envs.core.data import env_fold, load_market
from envs.registry import env_class
from tests.test_resume import INTERRUPTED, _rows, in_session, linux_only
from tests.test_walkforward_report import LAYOUT


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
        "report.json", "equity.png", "folds.png", "costs.png"}
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
    costs = {r["multiple"]: r for r in report["cost_sensitivity"]["rows"]}
    assert costs[1.0]["net_pnl"] == pytest.approx(stitched, abs=0.01)
    assert any(line.startswith("[run] walk-forward of ") for line in lines)
    assert not any(line.startswith(("[run] best trial", "[run] best checkpoint"))
                   for line in lines)
    # what a later phase loads: the last fold's best, not the best score across folds
    assert summary["best"]["chosen_by"].startswith("fold 2's")
    assert summary["best"]["trial"] == next(Path(t["path"]).name for t in summary["trials"]
                                            if t["params"]["fold"] == 2)


def test_the_checkpoint_a_walk_forward_run_hands_on_is_the_last_folds() -> None:
    from types import SimpleNamespace

    from algospace.tune.walkforward import last_fold_results

    def trial(fold: int | None, error: str | None = None) -> SimpleNamespace:
        return SimpleNamespace(config={} if fold is None else {"fold": fold, "lr": 1e-3},
                               error=error)

    folds = [trial(0), trial(2), trial(1), trial(2), trial(3, error="crashed")]
    chosen, last = last_fold_results(folds)
    assert last == 2 and chosen == [folds[1], folds[3]]  # a failed fold 3 is not "last"
    plain = [trial(None), trial(None)]
    assert last_fold_results(plain) == (plain, None)


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



WF_ITERATIONS = 3


def _wf_argv(tmp: Path, *extra: str) -> list[str]:
    """``walkforward.yaml --quick``, 3 iterations a fold, a checkpoint each, 1 CPU a trial."""
    sets = (f"stop.iterations={WF_ITERATIONS}", "checkpoint.every=1",
            "resources.num_env_runners=0", "logging.dashboard.enabled=false",
            f"output.dir={tmp / 'results'}", f"data.cache_dir={tmp / 'cache'}")
    return [sys.executable, "-m", "experiments.run", "walkforward.yaml", "--quick",
            *(a for s in sets for a in ("--set", s)), *extra]


def _wf_driver(tmp: Path, log: Path, *extra: str) -> contextlib.AbstractContextManager[
        subprocess.Popen[bytes]]:
    """The run in its own session (tests/test_resume.py's, this command line)."""
    return in_session(_wf_argv(tmp, *extra), log)


def _second_checkpoint(proc: subprocess.Popen[bytes], tmp: Path, log: Path,
                       timeout: float = 400) -> None:
    """Wait until a fold's trial holds ``checkpoint_000001`` (so the driver has taken in
    its checkpoint 0: tests/test_resume.py's Ctrl-C test)."""
    deadline = time.monotonic() + timeout
    while not list(tmp.glob("results/*/*/trial_*/checkpoint_000001")):
        if proc.poll() is not None:
            pytest.fail(f"the run exited ({proc.returncode}) before a second checkpoint:\n"
                        f"{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"no second checkpoint after {timeout} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


def _restarts(trial: Path) -> list[int]:
    """The training iterations a trial's runs started at (two: it was resumed)."""
    return [int(r["training_iteration"]) for r in _rows(trial)
            if r["iterations_since_restore"] == 1]


@linux_only
@pytest.mark.slow
@pytest.mark.train
def test_walkforward_ctrl_c_then_resume_finishes_every_fold(tmp_path: Path) -> None:
    """Ctrl-C once a fold's trial has checkpoints; ``--resume`` trains every fold to the
    end and writes the stitched record, each fold on the regime detector fitted for it
    before the interruption, reused, not refitted. (A run without regime latents resumes
    through the same code, minus the detectors: one walk-forward resume test covers both.)"""
    extra = ("--set", "env.regime_latent=true")
    log = tmp_path / "run.log"
    with _wf_driver(tmp_path, log, *extra) as proc:
        _second_checkpoint(proc, tmp_path, log)
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running 60 s after SIGINT:\n{log.read_text()[-3000:]}")
        output = log.read_text()
        assert proc.returncode == 130, output[-3000:]
        assert INTERRUPTED in output
    [exp] = [p.parent for p in tmp_path.glob(f"results/*/*/{EXPERIMENT_FILE}")]
    assert not (exp / SUMMARY).exists() and not (exp / "walkforward").exists()
    rows = {t.name: len(_rows(t)) for t in exp.glob("trial_*") if (t / "result.json").is_file()}
    assert len(rows) < 3 or min(rows.values()) < WF_ITERATIONS, rows  # work left to resume

    log = tmp_path / "resume.log"
    with _wf_driver(tmp_path, log, *extra, "--resume") as proc:
        try:
            proc.wait(500)
        except subprocess.TimeoutExpired:
            pytest.fail(f"--resume still running after 500 s:\n{log.read_text()[-3000:]}")
    output = log.read_text()
    assert proc.returncode == 0, output[-3000:]
    summary = json.loads((exp / SUMMARY).read_text())
    assert summary["status"] == "finished" and summary["failed_trials"] == 0
    assert sorted(t["params"]["fold"] for t in summary["trials"]) == [0, 1, 2]
    assert [t["iterations"] for t in summary["trials"]] == [WF_ITERATIONS] * 3
    resumed = [_restarts(t) for t in exp.glob("trial_*") if len(_restarts(t)) == 2]
    assert resumed and all(r[1] > 1 for r in resumed)  # continued from a checkpoint
    report = json.loads((exp / "walkforward" / "report.json").read_text())
    assert [f["fold"] for f in report["folds"]] == [0, 1, 2] and not report["missing_folds"]
    assert len(report["cost_sensitivity"]["rows"]) == 5
    assert "[run] walk-forward of " in output and "[run] best trial" not in output
    assert "[run] best checkpoint" not in output
    ids = [f["regime_detector"]["id"] for f in report["folds"]]
    assert len(set(ids)) == 3 and all(f"fold {k}: reusing its detector" in output
                                      for k in range(3))
    for t in summary["trials"]:
        assert t["params"]["fold_detectors"][str(t["params"]["fold"])] == \
            ids[t["params"]["fold"]]
