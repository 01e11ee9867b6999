"""``algospace decide --follow``: deciding on bars while a feed appends them.

An export of freshly initialised joint_v0 actors on the built-in market (no checkpoint,
no Ray) follows a CSV that a writer appends bars to — a malformed line among them, and a
line written in two pieces. The engine runs as its own process and is stopped with
Ctrl-C (SIGINT): exit 130, every output line a whole JSON object, one per decision, the
same decisions as the engine's replay of the same bars, the malformed line reported with
its number and skipped. In process, the kill file stops it: a last line with target 0.
Stopped with Ctrl-C while the writer goes on appending, and run again with the same
command, it continues the run: the union of its outputs is, line for line, the output of
one uninterrupted run; a restart with other settings or a changed output is refused.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from algospace.cli import main
from algospace.config import DataConfig, EnvConfig
from algospace.data.synthetic import SyntheticConfig, generate, to_csv
from algospace.errors import DataError
from algospace.features.pipeline import prepare
from algospace.inference.engine import DecisionEngine, EngineConfig
from algospace.market.limits import RiskLimits
from tests.test_decide import _actors

pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.:DeprecationWarning")

ROOT = Path(__file__).resolve().parents[1]
NEW = 36
"""Bars the writer appends after the warm-up rows."""
BAD = "2020-02-13 10:00:00,4000.00,abc,3990.00,3995.00,100"
"""A malformed line: High is not a number."""


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """20 days of the built-in market, an engine export, and the CSV lines of the bars."""
    root = tmp_path_factory.mktemp("follow")
    synth = SyntheticConfig(days=20, seed=5)
    data = DataConfig(synthetic=synth, cache_dir=str(root / "cache"))
    prepared = prepare(data)
    cfg = EnvConfig(data=data, episode_steps=48)
    actors = _actors("joint_v0", cfg)
    folder = DecisionEngine("joint_v0", cfg, actors, prepared.meta).export(root / "export")
    bars = generate(synth).bars
    lines = to_csv(bars, root / "all.csv").read_text().splitlines()
    return {"root": root, "export": folder, "bars": bars.frame, "lines": lines, "cfg": cfg,
            "actors": actors, "meta": prepared.meta}


def _start_file(path: Path, lines: list[str]) -> None:
    """The followed file: the header and every bar but the last NEW."""
    path.write_text("\n".join(lines[:-NEW]) + "\n")


def _append(path: Path, text: str) -> None:
    with path.open("a") as f:
        f.write(text)


def _wait_for(what: Any, seconds: float, message: str) -> None:
    end = time.monotonic() + seconds
    while not what():
        assert time.monotonic() < end, message
        time.sleep(0.1)


def _replayed(setup: dict[str, Any], limits: RiskLimits) -> list[Any]:
    """The decisions of the engine's replay of the same bars (the same settings)."""
    frame = setup["bars"]
    engine = DecisionEngine("joint_v0", setup["cfg"], setup["actors"], setup["meta"],
                            config=EngineConfig(mc_passes=2, limits=limits),
                            start=frame.index[-NEW])
    engine.run(frame)
    return engine.decisions


def test_follow_a_live_writer_then_ctrl_c(setup: dict[str, Any], tmp_path: Path) -> None:
    lines = setup["lines"]
    feed, out = tmp_path / "feed.csv", tmp_path / "decisions.jsonl"
    _start_file(feed, lines)
    printed = tmp_path / "printed.txt"
    cmd = [sys.executable, "-m", "algospace.cli", "decide", "--exported",
           str(setup["export"]), "--follow", str(feed), "--out", str(out), "--poll", "0.05",
           "--mc-passes", "2", "--max-position", "1"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with printed.open("w") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    try:
        _wait_for(lambda: "[decide] following" in printed.read_text(), 120,
                  f"the engine did not start following: {printed.read_text()}")
        new = lines[-NEW:]
        bad_line = len(lines) - NEW + 1 + 10  # the file's line number of the malformed line
        _append(feed, "\n".join(new[:10]) + "\n" + BAD + "\n")
        for line in new[10:-1]:  # as a feed writes: one bar at a time
            _append(feed, line + "\n")
            time.sleep(0.02)
        half = len(new[-1]) // 2
        _append(feed, new[-1][:half])  # a partial last line is not a bar yet
        time.sleep(0.5)
        _append(feed, new[-1][half:] + "\n")
        last_close = str(pd.Timestamp(new[-1].split(",")[0]) + pd.Timedelta(minutes=5))
        _wait_for(lambda: out.exists() and last_close.replace(" ", "T") in out.read_text(),
                  120, f"no decision at the last bar's close: {printed.read_text()}")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
    text = printed.read_text()
    assert f"line {bad_line}" in text and "skipped" in text and "'High'" in text, text
    assert text.count("[decide] skipped:") == 1, text
    assert "interrupted: 36 new bars taken, 1 line(s) skipped" in text, text
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert out.read_text().endswith("\n")
    expected = _replayed(setup, RiskLimits(max_position=1))
    assert len(written) == len(expected) > NEW // 2
    for row, d in zip(written, expected, strict=True):
        assert pd.Timestamp(row["time"]) == d.time
        assert (row["target"], row["position"], row["limit"]) == (d.target, d.position,
                                                                  d.limit)
        assert row["actions"] == d.actions and abs(row["target"]) <= 1
        assert set(row["gates"]) == {"synergy", "consensus", "held_back"}
        assert row["consensus"] == pytest.approx(d.gates.consensus)


def _follow(setup: dict[str, Any], feed: Path, out: Path, *extra: str) -> list[str]:
    """The follow command's arguments (after ``algospace``)."""
    return ["decide", "--exported", str(setup["export"]), "--follow", str(feed), "--out",
            str(out), "--poll", "0.05", "--mc-passes", "2", "--max-position", "1", *extra]


def _launch(args: list[str], printed: Path) -> subprocess.Popen[bytes]:
    """The follow command as its own process, printing to ``printed``, once following."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with printed.open("w") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "algospace.cli", *args], stdout=sink,
                                stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    _wait_for(lambda: "[decide] following" in printed.read_text() or proc.poll() is not None,
              120, "the engine did not start following")
    assert proc.poll() is None, printed.read_text()
    return proc


def _interrupt(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        assert proc.wait(timeout=60) == 130
    finally:
        if proc.poll() is None:
            proc.kill()


def test_ctrl_c_then_the_same_command_continues_the_run(
        setup: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = setup["lines"]
    new = [*lines[-NEW:-NEW + 12], BAD, *lines[-NEW + 12:]]
    last_close = str(pd.Timestamp(new[-1].split(",")[0]) + pd.Timedelta(minutes=5))

    def done(out: Path) -> bool:
        return out.exists() and last_close.replace(" ", "T") in out.read_text()

    # one uninterrupted run (in process; the kill file ends it after the last bar)
    feed, whole, kill = tmp_path / "whole.csv", tmp_path / "whole.jsonl", tmp_path / "STOP"
    _start_file(feed, lines)

    def feeder() -> None:
        _wait_for(lambda: "following" in "".join(capsys.readouterr()), 120, "not following")
        _append(feed, "\n".join(new) + "\n")
        _wait_for(lambda: done(whole), 120, "no decision at the last bar's close")
        kill.touch()

    thread = threading.Thread(target=feeder, daemon=True)
    thread.start()
    try:
        assert main(_follow(setup, feed, whole, "--kill-file", str(kill))) == 0
    finally:
        kill.touch()
        thread.join(timeout=60)
    expected = whole.read_text().splitlines()[:-1]  # the kill switch's line last
    assert len(expected) > NEW // 2 and all("event" not in json.loads(x) for x in expected)

    # the same bars, the engine stopped with Ctrl-C while the writer appends, then again
    feed, out = tmp_path / "feed.csv", tmp_path / "decisions.jsonl"
    _start_file(feed, lines)
    args = _follow(setup, feed, out)
    proc = _launch(args, tmp_path / "first.txt")

    def writer() -> None:
        for line in new:  # as a feed writes: one bar at a time, on through the restart
            _append(feed, line + "\n")
            time.sleep(0.15)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        _wait_for(lambda: out.exists() and len(out.read_text().splitlines()) >= 5, 120,
                  "no decisions")
        _interrupt(proc)
        first = out.read_text().splitlines()
        assert 5 <= len(first) < len(expected)
        assert "the same command continues" in (tmp_path / "first.txt").read_text()
        proc = _launch(args, tmp_path / "second.txt")
        _wait_for(lambda: done(out), 120, "the restart made no decision at the last close")
        _interrupt(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
        thread.join(timeout=60)
    second = (tmp_path / "second.txt").read_text()
    assert f"its {len(first)} decisions made again and checked" in second, second
    assert out.read_text().splitlines() == expected  # none twice, none lost, all equal

    # a restart with other settings, or on an output that changed, is refused
    capsys.readouterr()
    assert main(_follow(setup, feed, out, "--seed", "1")) == 2
    assert "other settings (seed 0 -> 1)" in capsys.readouterr().err
    changed = [json.loads(x) for x in expected]
    changed[2]["target"] = 1 - changed[2]["target"]
    out.write_text("".join(json.dumps(x) + "\n" for x in changed))
    assert main(args) == 2
    assert "decision 3 (at " in capsys.readouterr().err


def test_kill_file_flattens_and_stops(setup: dict[str, Any], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    lines = setup["lines"]
    feed, out, kill = tmp_path / "feed.csv", tmp_path / "out.jsonl", tmp_path / "STOP"
    _start_file(feed, lines)

    def writer() -> None:
        _wait_for(lambda: "following" in "".join(capsys.readouterr()), 120, "not following")
        _append(feed, "\n".join(lines[-NEW:-NEW + 20]) + "\n")
        _wait_for(lambda: out.exists() and len(out.read_text().splitlines()) >= 10, 120,
                  "no decisions")
        kill.touch()

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        code = main(["decide", "--exported", str(setup["export"]), "--follow", str(feed),
                     "--out", str(out), "--poll", "0.05", "--mc-passes", "2",
                     "--kill-file", str(kill)])
    finally:
        kill.touch()
        thread.join(timeout=60)
    assert code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[-1]["event"] == "kill_switch" and rows[-1]["target"] == 0
    assert rows[-1]["time"] == rows[-2]["time"] and "kill file" in rows[-1]["reason"]
    assert all("event" not in r for r in rows[:-1]) and len(rows) >= 11


def test_a_kill_file_already_there_refuses_to_start(setup: dict[str, Any], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    feed, kill = tmp_path / "feed.csv", tmp_path / "STOP"
    _start_file(feed, setup["lines"])
    kill.touch()
    assert main(["decide", "--exported", str(setup["export"]), "--follow", str(feed),
                 "--kill-file", str(kill)]) == 2
    assert f"--kill-file {kill} exists" in capsys.readouterr().err


@pytest.mark.parametrize("dayfirst", [True, False])
def test_appended_rows_read_dates_as_the_rows_before_them(dayfirst: bool,
                                                          tmp_path: Path) -> None:
    """``01/02/2020`` alone is ambiguous; the rows already in the file (13 January) tell
    the order, and an appended row is read the same way (not skipped as ambiguous)."""
    from algospace.cli.follow import history_dayfirst
    from algospace.data.loader import bars_from_text, parse_line

    def stamp(t: pd.Timestamp) -> str:
        return t.strftime("%d/%m/%Y %H:%M" if dayfirst else "%m/%d/%Y %H:%M")

    header = "Timestamp,Open,High,Low,Close,Volume"
    times = pd.date_range("2020-01-13 10:00", periods=4, freq="5min")
    text = "\n".join([header, *(f"{stamp(t)},10,11,9,10,5" for t in times)]) + "\n"
    path = tmp_path / "feed.csv"
    history = bars_from_text(text, path).frame
    assert list(history.index) == list(times)
    found = history_dayfirst(text, path, history, None, "open")
    assert found is dayfirst
    new = pd.Timestamp("2020-02-01 10:00")
    row = parse_line(header, f"{stamp(new)},10,11,9,10,5", 6, path=path, dayfirst=found)
    assert row.index[0] == new
    with pytest.raises(DataError, match="cannot tell whether dates are day-first"):
        parse_line(header, f"{stamp(new)},10,11,9,10,5", 6, path=path, dayfirst=None)
