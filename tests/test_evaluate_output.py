"""What ``algospace evaluate`` prints and where it writes, and that ``algospace decide``
counts the decisions the evaluation counts on the same bars.

No Ray: the checkpoint is written from freshly initialised actors (weights scaled up so
that they trade) in the layout training writes, inside a run folder (``summary.json``).
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from algospace.cli import main
from algospace.config import DataConfig, EnvConfig
from algospace.data.synthetic import SyntheticConfig
from algospace.evaluation.report import (
    RUN_SUMMARY,
    EvaluateConfig,
    _selection,
    report_dir,
    run_folder,
    throttled,
)
from algospace.evaluation.table import FOOTNOTE, HEADER, evaluation_table
from algospace.features.pipeline import prepare
from algospace.models.actor import ActorModule
from algospace.schema import to_dict
from algospace.training.builder import TrainConfig, votes_for
from algospace.training.checkpoint import MODULES_DIR, RUN_FILE, _entry, _write
from algospace.tune.plan import SUMMARY
from envs.registry import env_class
from tests.test_decision_engine import random_actors

FAST = ["--mc-passes", "2", "--bootstrap", "100", "--random-seeds", "2"]
STEPS = 24
"""Clock steps of an episode tile (a decide session)."""


def _checkpoint(folder: Path, env_name: str, cfg: EnvConfig) -> Path:
    """A checkpoint of freshly initialised actors, as training writes one."""
    env = env_class(env_name)(cfg)
    actors = random_actors(env, 0, hidden=(16,))
    entries = {a: _entry(ActorModule, env.observation_space(a), env.action_space(a),
                         {"hidden": (16,), "votes": votes_for(a)}, False) for a in actors}
    for agent in entries:
        folder.joinpath(*MODULES_DIR, agent).mkdir(parents=True)
    _write(folder, entries, {a: m.state_dict() for a, m in actors.items()})
    train = TrainConfig(env=env_name, env_config=cfg)
    (folder / RUN_FILE).write_text(json.dumps({"train_config": to_dict(train)}))
    return folder


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A run folder with a trial's checkpoint, and ``algospace evaluate`` of it (defaults:
    test split, the report into the run folder), with what it printed."""
    root = tmp_path_factory.mktemp("evalout")
    data = DataConfig(synthetic=SyntheticConfig(days=20, seed=5), split=(0.75, 0.15, 0.1),
                      cache_dir=str(root / "cache"))
    cfg = EnvConfig(data=data, episode_steps=STEPS)
    folder = root / "results" / "strategic" / "20261202-120000"
    checkpoint = _checkpoint(folder / "trial_0" / "checkpoint_000001", "strategic_v0", cfg)
    (folder / RUN_SUMMARY).write_text("{}")
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        code = main(["evaluate", str(checkpoint), *FAST])
    assert code == 0, text.getvalue()
    return {"root": root, "run": folder, "checkpoint": checkpoint, "data": data,
            "printed": text.getvalue(),
            "report": json.loads((folder / "evaluation-test" / "report.json").read_text())}


def test_evaluate_prints_the_table_of_its_report(run: dict[str, Any]) -> None:
    """The printed table is the shared table function's output for the report (the run's
    final evaluation prints the same function's lines), footnotes included."""
    printed = run["printed"]
    table = evaluation_table(run["report"])
    assert "\n".join(table) in printed
    assert HEADER in printed and FOOTNOTE in printed
    assert "random*" in printed and "decisions counted: every clock step of " in printed
    page = (run["run"] / "evaluation-test" / "report.html").read_text()
    assert "Decisions counted: every clock step of " in page


def test_a_runs_final_evaluation_prints_the_same_table_as_quietly(
        run: dict[str, Any], tmp_path: Path) -> None:
    """The run's end (``finish`` → ``final_evaluation``) logs the table function's lines
    for its report, footnotes included, and no per-tile progress."""
    from algospace.config import ExperimentConfig
    from algospace.config.evaluation import EvaluationSection
    from algospace.tune.results import final_evaluation

    cfg = ExperimentConfig(evaluation=EvaluationSection(random_seeds=2, bootstrap=100,
                                                        mc_passes=2))
    lines: list[str] = []
    summary = final_evaluation(cfg, str(run["checkpoint"]), tmp_path, lines.append)
    report = json.loads((Path(summary["out"]) / "report.json").read_text())
    table = evaluation_table(report)
    start = lines.index(table[0])
    assert lines[start:start + len(table)] == table and FOOTNOTE in table
    assert not any(line.startswith("[backtest]") for line in lines)
    # the same checkpoint and settings: evaluate printed the very same table
    assert table == evaluation_table(run["report"])


def test_progress_lines_only_with_verbose(run: dict[str, Any],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Default: no per-tile line (the backtests are shorter than 10 s), one count line a
    backtest; --verbose: the per-tile lines."""
    tiles = run["report"]["period"]["tiles"]
    assert "[backtest]" not in run["printed"]
    assert f"[evaluate] greedy run: {tiles} tiles" in run["printed"]
    assert f"[evaluate] gated run: {tiles} tiles" in run["printed"]
    out = run["root"] / "verbose"
    assert main(["evaluate", str(run["checkpoint"]), *FAST, "--no-gates", "--verbose",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"[backtest] strategic_v0 test: tile {tiles}/{tiles}" in printed


def test_report_goes_to_the_run_folder_without_replacing_one(
        run: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    """In a run folder: <run>/evaluation-<split>; that one exists, so the next evaluation
    goes to evaluation-<split>-2 and the first is kept; --out wins."""
    first = run["run"] / "evaluation-test"
    assert (first / "report.html").is_file()
    assert f"report: {first}/report.html" in run["printed"]
    before = (first / "report.json").read_text()
    assert main(["evaluate", str(run["checkpoint"]), *FAST, "--no-gates"]) == 0
    second = run["run"] / "evaluation-test-2"
    assert f"report: {second}/report.html" in capsys.readouterr().out
    assert (second / "report.html").is_file() and (first / "report.json").read_text() == before
    assert not (run["checkpoint"].parent / "evaluation-test").exists()


def test_a_report_finished_meanwhile_is_not_replaced(
        run: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Two evaluations of one run at once: the one that finishes second takes the next
    free name at its rename and leaves the first one's report alone (it used to replace
    the folder both had chosen when they started)."""
    import algospace.evaluation.report as report_module

    figures = report_module._report
    taken: list[Path] = []

    def another_evaluation_finishes_first(cfg: Any, *args: Any) -> dict[str, Any]:
        other = report_dir(cfg)  # the name this evaluation would have used
        other.mkdir()
        (other / "report.json").write_text('{"other": true}')
        taken.append(other)
        return figures(cfg, *args)

    monkeypatch.setattr(report_module, "_report", another_evaluation_finishes_first)
    assert main(["evaluate", str(run["checkpoint"]), *FAST, "--no-gates"]) == 0
    (other,) = taken
    assert json.loads((other / "report.json").read_text()) == {"other": True}
    mine = other.with_name(f"evaluation-test-{int(other.name.rsplit('-', 1)[-1]) + 1}"
                           if other.name != "evaluation-test" else "evaluation-test-2")
    assert f"report: {mine}/report.html" in capsys.readouterr().out
    assert (mine / "report.html").is_file()
    assert not [p for p in run["run"].iterdir() if p.name.startswith(".")]


def test_report_dir_choices(tmp_path: Path) -> None:
    assert RUN_SUMMARY == SUMMARY  # the file a run writes is the one looked for
    run = tmp_path / "results" / "x" / "20261202"
    trial = run / "trial_3" / "checkpoint_000007"
    best = run / "best_checkpoint"
    loose = tmp_path / "elsewhere" / "checkpoint_000002"
    for folder in (trial, best, loose):
        folder.mkdir(parents=True)
    assert run_folder(trial) is None
    (run / RUN_SUMMARY).write_text("{}")
    assert run_folder(trial) == run and run_folder(best) == run
    assert run_folder(loose) is None
    assert report_dir(EvaluateConfig(str(trial), split="val")) == run / "evaluation-val"
    assert report_dir(EvaluateConfig(str(best))) == run / "evaluation-test"
    assert report_dir(EvaluateConfig(str(loose))) == loose.parent / "evaluation-test"
    (run / "evaluation-test").mkdir()
    (run / "evaluation-test-2").mkdir()
    assert report_dir(EvaluateConfig(str(trial))) == run / "evaluation-test-3"
    # selection.json: next to a best_checkpoint, in the run folder for a trial's checkpoint
    (run / "selection.json").write_text(json.dumps(
        {"candidates": 6, "effective_trials": 2.5, "sharpe_variance": 0.1}))
    assert _selection(EvaluateConfig(str(trial)))["effective_trials"] == 2.5
    assert _selection(EvaluateConfig(str(loose)))["effective_trials"] == 1.0
    out = tmp_path / "mine"
    out.mkdir()
    assert report_dir(EvaluateConfig(str(trial), out=str(out))) == out


def test_throttled_progress() -> None:
    now = [0.0]
    said: list[str] = []
    say = throttled(said.append, 10.0, clock=lambda: now[0])
    for t, line in [(1, "a"), (9.9, "b"), (10, "c"), (15, "d"), (20.5, "e"), (21, "f")]:
        now[0] = t
        say(line)
    assert said == ["c", "e"]


@pytest.mark.slow  # 8-17 s: decide streams the whole test split bar by bar
def test_decide_counts_what_evaluate_counts(run: dict[str, Any], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Decide from the test split's first bar: its decisions in complete sessions are the
    evaluation's gated decisions, with the same gate counts; the summary says which bars
    it counted and shows the table's row."""
    prepared = prepare(run["data"], log=lambda _: None)
    lo, _ = prepared.splits.range("test")
    out = tmp_path / "decisions.csv"
    # no gate flag: decide takes the gates the report chose on validation
    assert main(["decide", str(run["checkpoint"]), "--mc-passes", "2", "--start",
                 str(prepared.base.open_time[lo]), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    report_json = run["run"] / "evaluation-test" / "report.json"
    assert f"[decide] gates chosen on validation by {report_json}: gate 1 " in printed
    log = pd.read_csv(out)
    sizes = log.groupby("session").size()
    whole = log[log["session"].isin(sizes[sizes == STEPS].index)]
    counts = {"decisions": len(whole), "synergy_closed": int((~whole["gate_synergy"]).sum()),
              "consensus_closed": int((~whole["gate_consensus"]).sum()),
              "held_back": int(whole["held_back"].sum())}
    report = run["report"]
    assert counts == report["gated"]["gate_counts"]
    assert len(log) > len(whole), "the split ends with an incomplete session"
    assert (f"{len(whole):,} in the {report['period']['tiles']:,} complete ones of {STEPS} "
            "steps") in printed
    assert f"[decide] {HEADER}" in printed and "[decide] agents, gated" in printed


def test_the_report_calibrates_the_consensus_and_chooses_the_threshold_on_validation(
        run: dict[str, Any]) -> None:
    """Without --threshold a test report chooses the gates on the validation split (gate 1
    on/off × the grid, then the adjustments) and uses them in the gated run; the calibration
    table has ten bins over the ungated team's decisions, whose trades are the greedy run's."""
    from algospace.evaluation.gate_choice import GATE_GRID, SETTING_KEYS

    report = run["report"]
    u = report["uncertainty"]
    assert u["threshold_chosen_on"] == "val" and u["grid"] == list(GATE_GRID)
    first = [(v["synergy_gate"], v["threshold"]) for v in u["validation"] if v["stage"] == 1]
    assert first == [(s, t) for s in (True, False) for t in GATE_GRID]
    best = max(v["net_pnl"] for v in u["validation"])
    chosen = [v for v in u["validation"] if all(v[k] == u["gates"][k] for k in SETTING_KEYS)]
    assert len(chosen) == 1 and chosen[0]["net_pnl"] == best
    assert {k: report["gated"]["gates"][k] for k in SETTING_KEYS} == u["gates"]
    assert report["gated"]["gates"]["threshold"] == u["gate_threshold"]
    cal = u["calibration"]
    assert len(cal["bins"]) == 10 and cal["horizon_minutes"] == 30
    assert sum(b["decisions"] for b in cal["bins"]) + cal["left_out"] == \
        report["period"]["bars"]
    side = u["side_by_side"]
    assert side["ungated_trades"] == report["agents"]["trades"]
    assert side["ungated_net_pnl_usd"] == pytest.approx(report["agents"]["net_pnl"])
    assert side["gated_trades"] == report["gated"]["metrics"]["trades"]
    assert side["gated_held_back"] == report["gated"]["gate_counts"]["held_back"]
    folder = run["run"] / "evaluation-test"
    assert (folder / "calibration.png").is_file()
    page = (folder / "report.html").read_text()
    assert "reliability of the MC consensus" in page and "<b>The gates</b>: gate 1 " in page
    assert "uncertainty: MC consensus ECE" in run["printed"]
