"""``algospace decide`` a user can wait for, and an engine that says why it did not decide.

The CLI runs on an export of freshly initialised actors on the built-in market (no
checkpoint, no Ray): it counts the bars and estimates before it streams, logs progress,
writes the decision log row by row (an interrupted run leaves a valid partial CSV), and
decides on the last five trading days of the test split by default. The engine takes the
loader's bars and sets ``last_reason`` at every bar; the README's snippet runs as written.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from algospace.cli import main
from algospace.cli.decide import DEFAULT_DAYS, default_start
from algospace.config import DataConfig, EnvConfig
from algospace.data.calendar import trading_day
from algospace.data.loader import load_bars
from algospace.data.synthetic import SyntheticConfig, to_csv
from algospace.errors import DataError
from algospace.features.pipeline import prepare
from algospace.inference.decision import REASONS
from algospace.inference.engine import DecisionEngine, EngineConfig
from algospace.inference.export import export_actors
from algospace.models.actor import ActorModule
from algospace.schema import to_dict
from algospace.training.builder import TrainConfig, votes_for
from envs.registry import env_class
from tests.test_decision_engine import random_actors

pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.:DeprecationWarning")

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--mc-passes", "2"]


def _actors(env_name: str, cfg: EnvConfig, seed: int = 0) -> dict[str, ActorModule]:
    """Freshly initialised actors, weights scaled up (their actions change bar to bar)."""
    return random_actors(env_class(env_name)(cfg), seed, hidden=(16,))


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """30 days of the built-in market, joint_v0 actors, and their engine export."""
    root = tmp_path_factory.mktemp("decide")
    data = DataConfig(synthetic=SyntheticConfig(days=30, seed=5), split=(0.6, 0.15, 0.25),
                      cache_dir=str(root / "cache"))  # a test split longer than 5 days
    prepared = prepare(data)
    cfg = EnvConfig(data=data, episode_steps=48)
    actors = _actors("joint_v0", cfg)
    engine = DecisionEngine("joint_v0", cfg, actors, prepared.meta)
    folder = engine.export(root / "export")
    return {"root": root, "data": data, "prepared": prepared, "cfg": cfg, "actors": actors,
            "export": folder}


def _interrupt_after(monkeypatch: pytest.MonkeyPatch, bars: int) -> None:
    """Ctrl-C while the engine takes bar ``bars + 1``."""
    original = DecisionEngine.on_bar
    calls = [0]

    def on_bar(self: DecisionEngine, *args: Any) -> Any:
        calls[0] += 1
        if calls[0] > bars:
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(DecisionEngine, "on_bar", on_bar)


# ------------------------------------------------------------------------- CLI
def test_default_window_is_the_last_five_test_days(setup: dict[str, Any], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    prepared = setup["prepared"]
    lo, hi = prepared.splits.range("test")
    times = prepared.base.open_time[lo:hi]
    days = trading_day(times).unique()
    assert len(days) > DEFAULT_DAYS, "the test split should be longer than the window"
    first = times[trading_day(times) >= days[-DEFAULT_DAYS]]
    start = default_start(times)
    assert start == first[0] and trading_day(pd.DatetimeIndex([start]))[0] == days[-5]
    _interrupt_after(monkeypatch, 0)
    out = tmp_path / "log.csv"
    assert main(["decide", "--exported", str(setup["export"]), *FAST, "--out", str(out)]) == 130
    printed = capsys.readouterr().out
    assert (f"{len(first):,} bars to decide (the last 5 trading days of the test split: "
            f"{first[0]} to {times[-1]}), after {lo + len(times) - len(first):,} bars of "
            "history") in printed


def test_interrupt_leaves_a_valid_partial_log(setup: dict[str, Any], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Ctrl-C after k bars: exit 130, the k decisions made are in the CSV, whole, and the
    message says how many bars were decided and where the log is."""
    k = 15
    _interrupt_after(monkeypatch, k)
    out = tmp_path / "decisions.csv"
    code = main(["decide", "--exported", str(setup["export"]), *FAST, "--out", str(out)])
    assert code == 130
    err = capsys.readouterr().err
    log = pd.read_csv(out)
    prepared = setup["prepared"]
    lo, hi = prepared.splits.range("test")
    window = prepared.base.open_time[lo:hi]
    window = window[window >= default_start(window)][:k]
    # joint_v0 decides at every bar of a session, which starts at the first 30-minute close
    waiting = next(i for i, t in enumerate(window) if (t.minute + 5) % 30 == 0)
    assert len(log) == k - waiting and 0 < waiting < 6
    assert log["time"].iloc[-1] == str(window[-1] + pd.Timedelta(minutes=5))
    assert not log.isna()[["time", "target", "order", "gate_consensus"]].any().any()
    assert f"interrupted: {k} of 1,380 bars decided, {len(log)} decisions written to {out}" in err
    assert out.read_text().endswith("\n")


def test_progress_estimate_and_log_as_it_goes(setup: dict[str, Any], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Bars to decide, an estimate after the first few, progress lines (every bar with
    --progress 0), and the log equal to the engine's own replay of the same bars."""
    prepared = setup["prepared"]
    bars = prepared.base.frame
    start = bars.index[-30]
    out = tmp_path / "decisions.csv"
    assert main(["decide", "--exported", str(setup["export"]), *FAST, "--out", str(out),
                 "--start", str(start), "--progress", "0"]) == 0
    printed = capsys.readouterr().out
    assert "30 bars to decide (from --start" in printed
    assert re.search(r"estimate: \d+ s for the 17 bars left \([\d,]+ ms per bar over the "
                     r"first 12\)", printed), printed
    progress = re.findall(r"\] (\d+)/30 bars \(\d+ %\), \d+ decisions, [\d,]+ ms per bar, "
                          r"\d+ s left", printed)
    assert [int(i) for i in progress] == list(range(14, 31))
    engine = DecisionEngine("joint_v0", setup["cfg"], setup["actors"], prepared.meta,
                            config=EngineConfig(mc_passes=2), start=start)
    expected = engine.run(bars).decisions
    log = pd.read_csv(out)
    assert len(log) > 10
    assert log["time"].tolist() == [str(t) for t in expected["time"]]
    np.testing.assert_array_equal(log["target"], expected["target"])
    np.testing.assert_allclose(log["mc_tactical_agreement"], expected["mc_tactical_agreement"])


def test_window_flags_and_errors(setup: dict[str, Any], tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    bars = setup["prepared"].base.frame
    export = str(setup["export"])
    out = tmp_path / "log.csv"
    assert main(["decide", "--exported", export, *FAST, "--out", str(out), "--start",
                 str(bars.index[-20]), "--end", str(bars.index[-10])]) == 0
    assert "10 bars to decide" in capsys.readouterr().out
    assert len(pd.read_csv(out)) <= 10
    assert main(["decide", "--exported", export, "--start", "yesterday-ish"]) == 2
    assert "--start 'yesterday-ish' is not a time" in capsys.readouterr().err
    assert main(["decide", "--exported", export, "--start", "2031-01-01"]) == 2
    assert "no bar to decide" in capsys.readouterr().err
    assert main(["decide"]) == 2
    assert "give a CHECKPOINT" in capsys.readouterr().err
    assert main(["decide", "--exported", export, *FAST, "--out", str(tmp_path), "--start",
                 str(bars.index[-12])]) == 2
    assert f"cannot write the decision log {tmp_path}" in capsys.readouterr().err


def test_exported_without_engine_settings_says_what_to_do(
        setup: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = export_actors(setup["actors"], tmp_path / "actors-only")
    assert main(["decide", "--exported", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "holds the actors only" in err and "--export DIR" in err


def test_export_holds_what_the_engine_needs(setup: dict[str, Any]) -> None:
    manifest = json.loads((setup["export"] / "manifest.json").read_text())
    settings = manifest["engine"]
    assert settings["env"] == "joint_v0" and settings["regime"] is None
    assert settings["env_config"]["episode_steps"] == 48
    assert settings["meta"]["normalisation"] == setup["prepared"].meta["normalisation"]
    engine = DecisionEngine.from_export(setup["export"])
    assert engine.env_config == DecisionEngine("joint_v0", setup["cfg"], setup["actors"],
                                               setup["prepared"].meta).env_config


# ---------------------------------------------------------------------- engine
def test_engine_says_why_it_did_not_decide(setup: dict[str, Any]) -> None:
    bars = setup["prepared"].base.frame
    meta, cfg, actors = setup["prepared"].meta, setup["cfg"], setup["actors"]
    small = EngineConfig(mc_passes=2)

    engine = DecisionEngine("joint_v0", cfg, actors, meta, config=small)
    assert engine.on_bar(bars.index[0], bars.iloc[0]) is None
    assert engine.last_reason.code == "warming_up"
    engine.warm_up(bars.iloc[1:300])
    assert engine.on_bar(bars.index[300], *bars.iloc[300]) is None
    assert engine.last_reason.code == "warming_up"
    assert str(engine.last_reason).startswith("warming up: 301 bars (")

    n = len(bars)
    start = bars.index[n - 40]
    engine = DecisionEngine("joint_v0", cfg, actors, meta, config=small, start=start)
    engine.warm_up(bars.iloc[:n - 44])
    reasons = []
    for when, row in bars.iloc[n - 44:n - 20].iterrows():
        decision = engine.on_bar(when, row)
        reasons.append(engine.last_reason.code)
        assert (decision is not None) == engine.last_reason.decided
    assert reasons[:4] == ["before_start"] * 4
    first = reasons.index("decided")
    assert set(reasons[4:first]) <= {"waiting_for_close"}
    assert engine.on_bar(bars.index[n - 20], bars.iloc[n - 20]) is not None
    assert str(engine.last_reason).startswith("decided: target ")

    strategic = DecisionEngine("strategic_v0", cfg, _actors("strategic_v0", cfg), meta,
                               config=small)
    strategic.warm_up(bars.iloc[:n - 40])
    codes = set()
    for when, row in bars.iloc[n - 40:n - 30].iterrows():
        decision = strategic.on_bar(when, row)
        codes.add(strategic.last_reason.code)
        if strategic.last_reason.code == "not_a_decision_bar":
            assert decision is None and "30-minute" in str(strategic.last_reason)
    assert {"not_a_decision_bar", "decided"} <= codes
    assert codes <= set(REASONS)


def test_engine_takes_the_loaders_bars_and_rejects_others(setup: dict[str, Any],
                                                          tmp_path: Path) -> None:
    path = to_csv(setup["prepared"].base, tmp_path / "bars.csv")
    loaded = load_bars(path)
    meta, cfg, actors = setup["prepared"].meta, setup["cfg"], setup["actors"]
    engine = DecisionEngine("joint_v0", cfg, actors, meta)
    engine.warm_up(loaded)  # the Bars
    assert len(engine.stream) == len(loaded)
    engine = DecisionEngine("joint_v0", cfg, actors, meta)
    engine.warm_up(loaded.frame.iloc[:100])  # or its frame
    raw = pd.read_csv(path)
    with pytest.raises(DataError, match=r"index must be their open times.*load_bars"):
        engine.warm_up(raw)
    with pytest.raises(DataError, match=r"lack column\(s\) \['volume'\]"):
        engine.warm_up(loaded.frame.drop(columns="volume"))
    with pytest.raises(DataError, match="must be a Bars or a DataFrame"):
        engine.warm_up(loaded.frame.to_numpy())
    with pytest.raises(DataError, match="got 4 values"):
        engine.on_bar(loaded.frame.index[100], 1.0, 2.0, 0.5, 1.5)
    with pytest.raises(DataError, match=r"lacks \['volume'\]"):
        engine.on_bar(loaded.frame.index[100], loaded.frame.iloc[100].drop("volume"))
    assert len(engine.stream) == 100


def _readme_snippet() -> str:
    """The Python block of the README's section on `algospace decide`."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Deciding bar by bar"):]
    return section[section.index("```python\n") + 10:section.index("\n```", section.index(
        "```python\n"))]


def test_readme_snippet_runs_as_written(setup: dict[str, Any], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """The snippet, with its checkpoint and CSV paths pointing at small real ones."""
    from algospace.training.checkpoint import MODULES_DIR, RUN_FILE, _entry, _write

    checkpoint = tmp_path / "checkpoint_000039"
    env = env_class("joint_v0")(setup["cfg"])
    entries = {a: _entry(ActorModule, env.observation_space(a), env.action_space(a),
                         {"hidden": (16,), "votes": votes_for(a)}, False)
               for a in setup["actors"]}
    checkpoint.joinpath(*MODULES_DIR).mkdir(parents=True)
    for agent in entries:
        checkpoint.joinpath(*MODULES_DIR, agent).mkdir()
    _write(checkpoint, entries, {a: m.state_dict() for a, m in setup["actors"].items()})
    train = TrainConfig(env="joint_v0", env_config=setup["cfg"])
    (checkpoint / RUN_FILE).write_text(json.dumps({"train_config": to_dict(train)}))
    frame = setup["prepared"].base.frame
    end = len(frame) - next(j for j in range(1, 7) if frame.index[-j - 24].minute % 30 == 0)
    # the snippet's first decided-on bar opens a 30-minute bucket: a joint_v0 session
    # starts only at a 30-minute close, so the first bars give no decision
    to_csv(type(setup["prepared"].base)(frame.iloc[:end], 5, "test"), tmp_path / "bars.csv")

    code = _readme_snippet()
    assert '"results/strategic/.../checkpoint_000039"' in code and '"bars.csv"' in code
    monkeypatch.chdir(tmp_path)
    exec(code.replace("results/strategic/.../checkpoint_000039", str(checkpoint)), {})
    printed = capsys.readouterr().out.splitlines()
    assert any("no decision: " in line for line in printed)
    assert any(line.startswith("decided at ") for line in printed)


@pytest.mark.parametrize(("flags", "message"), [
    (["--regime-adjustment", "-1"], "gates.regime_adjustment must be >= 0, got -1.0"),
    (["--drawdown-adjustment", "-0.5"], "gates.drawdown_adjustment must be >= 0, got -0.5"),
    (["--threshold", "1.5"], "gates.threshold must lie in [0, 1], got 1.5"),
])
def test_bad_gate_flags_end_in_one_error_line_and_status_2(
        flags: list[str], message: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The gate flags are checked before anything loads: one line naming the flag's value."""
    assert main(["decide", str(tmp_path / "missing"), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {message}"]
