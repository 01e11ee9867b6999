"""The experiment runner end to end: every phase file with --quick, the hand-off, sweeps.

The pipeline, sweep and quick-start runs are the README's own commands, run once per session
by the fixtures of ``tests/readme_runs.py`` (``tests/test_readme.py`` checks the same runs).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from algospace.tune.driver import RunOptions, run
from tests.readme_runs import ReadmeRun

pytestmark = pytest.mark.slow


def _opts(tmp: Path, file: str, *sets: str) -> RunOptions:
    return RunOptions(file=file, quick=True,
                      sets=(f"output.dir={tmp / 'results'}", f"data.cache_dir={tmp / 'cache'}",
                            "logging.dashboard.enabled=false", *sets))


def _weights(checkpoint: str, module: str) -> dict[str, torch.Tensor]:
    path = Path(checkpoint) / "learner_group" / "learner" / "rl_module" / module
    from ray.rllib.core.rl_module.rl_module import RLModule

    module = RLModule.from_checkpoint(str(path))  # parameters (not the value-norm counts)
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.fixture(scope="module")
def pipeline(readme_pipeline: ReadmeRun) -> list[dict[str, Any]]:
    """pipeline.yaml --quick: all five phase files, end to end, each handing off."""
    return readme_pipeline.summaries


def test_quick_pipeline_runs_every_phase(pipeline: list[dict[str, Any]]) -> None:
    assert [s["phase"] for s in pipeline] == ["rde", "strategic", "tactical", "coordination",
                                             "joint"]
    for s in pipeline:
        assert s["status"] == "finished" and s["quick"] and s["failed_trials"] == 0
        exp = Path(s["experiment_dir"])
        assert json.loads((exp / "summary.json").read_text())["status"] == "finished"
        assert Path(s["best_checkpoint"]).is_dir()
    assert pipeline[0]["rde"]["bars_with_latent"] > 0
    for s in pipeline[1:]:  # each reads the latents of the detector the pipeline trained
        assert s["config"]["env"]["regime_latent"] is True
        assert s["regime"]["id"] == pipeline[0]["rde"]["detector"]
        assert s["regime"]["rde_run"] == pipeline[0]["experiment_dir"]
        html = Path(s["evaluation"]["report_html"])
        assert html.is_file() and (html.parent / "equity.png").is_file()
        assert s["evaluation"]["split"] == "test"
        assert s["throughput"]["env_steps_per_s"] > 0
        trial = Path(s["trials"][0]["path"])
        progress = pd.read_csv(trial / "progress.csv")
        assert progress["training_iteration"].tolist() == [1, 2]
        assert "val_sharpe" in progress and "episode_return_mean" in progress


def test_handoff_loads_freezes_and_trains(pipeline: list[dict[str, Any]]) -> None:
    """Coordination: loaded weights equal phase 1's and the frozen ones stay so; portfolio
    and risk change. Joint: everything loaded from coordination, everything changes."""
    _, strategic, tactical, coordination, joint = pipeline
    sources = {h["phase"]: h for h in coordination["handoff"]}
    assert sources["strategic"]["checkpoint"] == strategic["best_checkpoint"]
    assert sources["tactical"]["checkpoint"] == tactical["best_checkpoint"]
    after = coordination["best_checkpoint"]
    for phase, modules in (("strategic", ("mlmi", "nwrqk", "regime")),
                           ("tactical", ("fvg", "momentum", "entry"))):
        for module in modules:
            assert _max_diff(_weights(sources[phase]["checkpoint"], module),
                             _weights(after, module)) == 0.0, module
    for phase, module in (("strategic", "portfolio"), ("tactical", "risk")):
        before = _weights(sources[phase]["checkpoint"], module)
        diff = _max_diff(before, _weights(after, module))
        assert 0.0 < diff < 0.02, (module, diff)  # loaded, then a few small Adam steps
        fresh = _weights(joint["best_checkpoint"], module)
        assert _max_diff(before, fresh) > 0.0
    [source] = joint["handoff"]
    assert source["phase"] == "coordination"
    assert source["checkpoint"] == coordination["best_checkpoint"]
    assert set(source["modules"]) == {"mlmi", "nwrqk", "regime", "portfolio", "fvg",
                                      "momentum", "entry", "risk", "critic"}
    for module in source["modules"]:
        diff = _max_diff(_weights(coordination["best_checkpoint"], module),
                         _weights(joint["best_checkpoint"], module))
        assert 0.0 < diff < 0.02, (module, diff)  # all trainable, at the lower lr


def test_pipeline_resume_skips_finished_phases(pipeline: list[dict[str, Any]]) -> None:
    """--resume on a pipeline: finished phases are skipped, an unfinished one continues."""
    joint = Path(pipeline[-1]["experiment_dir"])
    (joint / "summary.json").unlink()  # as if the driver died after training, before the end
    tmp = Path(pipeline[0]["experiment_dir"]).parents[2]
    lines: list[str] = []
    opts = _opts(tmp, "pipeline.yaml")
    again = run(RunOptions(**{**opts.__dict__, "resume": True}), log=lines.append)
    skipped = [line for line in lines if line.startswith("[pipeline] already finished")]
    assert len(skipped) == 4
    assert f"[run] resuming {joint}" in lines
    assert [s["experiment_dir"] for s in again] == [s["experiment_dir"] for s in pipeline]
    assert again[-1]["status"] == "finished"
    assert again[-1]["best_checkpoint"] == pipeline[-1]["best_checkpoint"]


def test_grid_sweep_runs_trials_side_by_side(readme_grid_sweep: ReadmeRun) -> None:
    lines = readme_grid_sweep.lines
    [summary] = readme_grid_sweep.summaries
    trials = summary["trials"]
    grid = {(t["params"]["training.lr"], t["params"]["training.entropy_coeff"]) for t in trials}
    assert grid == {(3e-4, 0.0), (3e-4, 0.01), (1e-3, 0.0), (1e-3, 0.01)}
    spans = []
    for t in trials:
        rows = [json.loads(line) for line in (Path(t["path"]) / "result.json").open()]
        spans.append((rows[0]["timestamp"] - rows[0]["time_this_iter_s"], rows[-1]["timestamp"]))
    spans.sort()
    overlaps = sum(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans))
    assert overlaps >= 1, spans  # 1 CPU per trial on 2 CPUs: two at a time
    best = summary["best"]
    scores = [t["last"].get("val_net_pnl") for t in trials]
    assert best["metrics"]["val_net_pnl"] >= max(s for s in scores if s is not None) - 1e-9
    # the progress rows show each trial's searched values; the end names the best trial
    header = next(line for line in lines if line.startswith("trial "))
    assert {"lr", "entropy_coeff"} <= set(header.split())
    [owner] = [t for t in trials if Path(best["checkpoint"]).is_relative_to(t["path"])]
    assert best["trial"] == Path(owner["path"]).name
    assert best["params"] == {k: owner["params"][k]
                              for k in ("training.lr", "training.entropy_coeff")}
    assert best["score"]["value"] == best["metrics"]["val_net_pnl"]
    [line] = [line for line in lines if line.startswith("[run] best trial")]
    assert line.startswith(f"[run] best trial of {summary['name']}: {best['trial']}, "
                           "by val_net_pnl (max) = ")
    assert f"training.lr={best['params']['training.lr']:.6g}" in line


def test_random_search_with_asha(readme_asha_sweep: ReadmeRun) -> None:
    [summary] = readme_asha_sweep.summaries
    assert len(summary["trials"]) == 2  # --quick caps the samples
    lrs = [t["params"]["training.lr"] for t in summary["trials"]]
    assert all(1e-4 <= lr <= 2e-3 for lr in lrs) and lrs[0] != lrs[1]
    assert all(t["params"]["training.num_epochs"] in (3, 5, 8) for t in summary["trials"])


def test_decision_engine_replays_a_trained_checkpoint_as_the_backtest(
        pipeline: list[dict[str, Any]], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The joint phase's checkpoint (regime latents on): the engine, fed the test split bar
    by bar, trades exactly as the batch backtest; `algospace decide` writes the same log
    with the TorchScript export as with the eager actors (it reads the same weights out
    of either)."""
    from algospace.cli import main
    from algospace.evaluation.backtest import backtest, greedy_policy
    from algospace.features.pipeline import prepare
    from algospace.inference.engine import DecisionEngine, EngineConfig
    from algospace.inference.gates import GateConfig
    from algospace.training.checkpoint import load_actors, load_train_config

    checkpoint = pipeline[-1]["best_checkpoint"]
    cfg = EngineConfig(mc_passes=4, gates=GateConfig(enforce=False))
    engine = DecisionEngine.from_checkpoint(checkpoint, config=cfg)
    train_cfg = load_train_config(checkpoint)
    env_cfg = train_cfg.env_config
    prepared = prepare(env_cfg.data)
    lo, _ = prepared.splits.range("test")
    engine.start = prepared.base.open_time[lo]
    replay = engine.run(prepared.base.frame)
    batch = backtest(train_cfg.env, replace(env_cfg, split="test", random_start=False),
                     greedy_policy(load_actors(checkpoint)))
    n = len(batch.equity)
    assert (replay.equity.index[:n] == batch.equity.index).all()
    assert (replay.equity.to_numpy()[:n] == batch.equity.to_numpy()).all()
    assert (replay.positions[:n] == batch.positions).all()
    trades = replay.trades[replay.trades["tile"] < batch.tiles] if len(replay.trades) \
        else replay.trades
    assert len(trades) == len(batch.trades)

    last_day = str(prepared.base.open_time[-1].normalize())
    common = [checkpoint, "--start", last_day, "--mc-passes", "8"]
    exported = tmp_path / "torchscript"
    assert main(["decide", *common, "--out", str(tmp_path / "eager.csv"),
                 "--export", str(exported)]) == 0
    assert (exported / "manifest.json").is_file()
    assert main(["decide", *common, "--out", str(tmp_path / "exported.csv"),
                 "--exported", str(exported)]) == 0
    # the export alone (env, settings, normalisation, regime detector copied in)
    assert main(["decide", "--exported", str(exported), *common[1:], "--out",
                 str(tmp_path / "alone.csv")]) == 0
    eager = pd.read_csv(tmp_path / "eager.csv")
    scripted = pd.read_csv(tmp_path / "exported.csv")
    assert len(eager) > 50
    pd.testing.assert_frame_equal(eager, scripted, check_exact=True)
    pd.testing.assert_frame_equal(eager, pd.read_csv(tmp_path / "alone.csv"), check_exact=True)
    printed = capsys.readouterr().out
    assert printed.count("[decide] decision step (agents, 8 MC passes, gates; without the "
                         "feature update) p50 ") == 3


def test_decide_bad_input_is_one_clear_error(pipeline: list[dict[str, Any]], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from algospace.cli import main

    checkpoint = pipeline[-1]["best_checkpoint"]
    assert main(["decide", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["decide", checkpoint, "--data", str(tmp_path / "missing.csv")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["decide", checkpoint, "--exported", str(tmp_path / "none")]) == 2
    assert str(tmp_path / "none") in capsys.readouterr().err
    assert main(["decide", checkpoint, "--seed", "-1"]) == 2
    assert "seed must be >= 0" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_phase_trains_the_regime_detector_it_needs_first(readme_quick_start: ReadmeRun) -> None:
    """strategic.yaml --quick on data without regime latents (a fresh clone) trains the
    regime detector on that data (rde.yaml, --quick carried over), then runs the phase."""
    lines, summaries = readme_quick_start.lines, readme_quick_start.summaries
    tmp_path = readme_quick_start.root
    assert "[run] no regime latents for this data yet: training the regime detector " \
           "first (rde.yaml)" in lines
    assert [s["phase"] for s in summaries] == ["strategic"]
    rde = [json.loads(p.read_text())
           for p in (tmp_path / "results").glob("rde-quick/*/summary.json")]
    assert len(rde) == 1 and rde[0]["status"] == "finished" and rde[0]["quick"]
    assert rde[0]["config"]["data"] == summaries[0]["config"]["data"]
    assert rde[0]["rde"]["bars_with_latent"] > 0
    assert summaries[0]["status"] == "finished"
