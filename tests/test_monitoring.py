"""Monitoring outputs of a run: W&B offline runs, Tune's per-trial logs, summary.json, no secrets.

Two quick strategic runs in the session's Ray: one with W&B on and no WANDB_API_KEY (so
offline), one with a fake key and ``logging.wandb.mode: offline`` for the secrets check.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from algospace.tune.driver import RunOptions, run

pytestmark = pytest.mark.slow

HAS_WANDB = importlib.util.find_spec("wandb") is not None
NO_WANDB = "wandb is not installed (pip install -e '.[dev]' or '.[wandb]')"
PROJECT, GROUP, TAGS = "algospace-test", "monitoring", ["ci", "smoke"]
TRADING = ("val_sharpe", "val_total_return", "val_net_pnl", "val_max_drawdown", "val_trades")
FAKE_KEY = "fake0wandb0key0c0ffee0123456789abcdef0123"


@contextmanager
def _env(**values: str | None) -> Iterator[None]:
    """Set (None: unset) environment variables; restore them afterwards.

    Also restores WANDB_MODE, which the runner sets in the driver for an offline run.
    """
    names = {*values, "WANDB_MODE"}
    saved = {name: os.environ.get(name) for name in names}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _quick(tmp: Path, *sets: str, wandb: bool) -> tuple[dict[str, Any], list[str]]:
    """strategic.yaml --quick [--wandb]: its summary and the lines it logged."""
    lines: list[str] = []
    opts = RunOptions(file="strategic.yaml", quick=True, wandb=wandb, sets=(
        f"output.dir={tmp / 'results'}", f"data.cache_dir={tmp / 'cache'}",
        "env.regime_latent=false", "logging.dashboard.enabled=false",
        f"logging.wandb.project={PROJECT}", f"logging.wandb.group={GROUP}",
        f"logging.wandb.tags=[{', '.join(TAGS)}]", *sets))
    [summary] = run(opts, log=lines.append)
    return summary, lines


def _wandb_records(path: Path) -> list[Any]:
    """The records of a ``.wandb`` transaction log (LevelDB-style log of protobufs)."""
    from wandb.proto import wandb_internal_pb2 as pb

    block, header = 32768, 7
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    pos, chunks, out = header, b"", []
    while pos + header <= len(data):
        if block - pos % block < header:  # the rest of a block is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + header])
        if kind == 0:
            break
        chunks += data[pos + header:pos + header + length]
        pos += header + length
        if kind in (1, 4):  # FULL, LAST (FIRST=2 and MIDDLE=3 continue a record)
            record = pb.Record()
            record.ParseFromString(chunks)
            out.append(record)
            chunks = b""
    return out


def _key(item: Any) -> str:
    """The metric name of a history or summary item (``key``, or ``nested_key`` joined)."""
    return item.key or "/".join(item.nested_key)


def _tfevent_tags(path: Path) -> set[str]:
    """Scalar tags in a TensorBoard event file (TFRecord framing of Event protobufs)."""
    from tensorboardX.proto.event_pb2 import Event

    data, pos, tags = path.read_bytes(), 0, set()
    while pos + 12 <= len(data):
        (length,) = struct.unpack("<Q", data[pos:pos + 8])
        event = Event()
        event.ParseFromString(data[pos + 12:pos + 12 + length])
        tags.update(v.tag for v in event.summary.value)
        pos += 12 + length + 4
    return tags


@pytest.fixture(scope="module")
def wandb_run(ray_session: Any, tmp_path_factory: pytest.TempPathFactory
              ) -> tuple[dict[str, Any], list[str]]:
    """A quick run with --wandb (if installed) and no WANDB_API_KEY."""
    tmp = tmp_path_factory.mktemp("monitoring")
    with _env(WANDB_API_KEY=None, WANDB_MODE=None):
        return _quick(tmp, wandb=HAS_WANDB)


@pytest.mark.skipif(not HAS_WANDB, reason=NO_WANDB)
def test_wandb_offline_run_in_results(wandb_run: tuple[dict[str, Any], list[str]]) -> None:
    summary, _ = wandb_run
    exp = Path(summary["experiment_dir"])
    [trial] = summary["trials"]
    trial_id = Path(trial["path"]).name.removeprefix("trial_")
    runs = sorted((exp / "wandb").glob("offline-run-*"))
    assert [r.name.rsplit("-", 1)[-1] for r in runs] == [trial_id], runs
    records = _wandb_records(runs[0] / f"run-{trial_id}.wandb")
    kinds = [r.WhichOneof("record_type") for r in records]
    assert "exit" in kinds, "the W&B run was not finished (it could not be synced)"

    [info] = [r.run for r in records if r.HasField("run")]
    assert (info.project, info.run_group) == (PROJECT, GROUP)
    assert {"strategic", "strategic_v0", "quick", *TAGS} <= set(info.tags)

    history = [{_key(i): json.loads(i.value_json) for i in r.history.item}
               for r in records if r.HasField("history")]
    assert len(history) == trial["iterations"] == 2
    for row in history:
        for key in (*TRADING, "env_steps", "episode_return_mean"):
            assert isinstance(row.get(key), int | float) and math.isfinite(row[key]), key
    assert history[-1]["val_sharpe"] == pytest.approx(trial["last"]["val_sharpe"])
    summary_keys = {_key(i) for r in records if r.HasField("summary") for i in r.summary.update}
    assert set(TRADING) <= summary_keys


def test_tune_logs_and_summary(wandb_run: tuple[dict[str, Any], list[str]]) -> None:
    summary, lines = wandb_run
    exp = Path(summary["experiment_dir"])
    trial = Path(summary["trials"][0]["path"])
    assert trial.parent == exp
    progress = (trial / "progress.csv").read_text().splitlines()
    assert len(progress) == 3 and {"val_sharpe", "env_steps"} <= set(progress[0].split(","))
    rows = [json.loads(line) for line in (trial / "result.json").read_text().splitlines()]
    assert [r["training_iteration"] for r in rows] == [1, 2] and "val_sharpe" in rows[-1]
    [events] = trial.glob("events.out.tfevents.*")
    assert {"ray/tune/val_sharpe", "ray/tune/episode_return_mean"} <= _tfevent_tags(events)

    saved = json.loads((exp / "summary.json").read_text())
    assert saved["phase"] == "strategic" and saved["status"] == "finished"
    assert Path(saved["best_checkpoint"]).is_dir()
    assert Path(saved["best_checkpoint"]).is_relative_to(trial)
    assert saved["config"]["logging"]["wandb"]["project"] == PROJECT
    assert saved["wall_seconds"] > 0
    assert saved["throughput"]["env_steps"] > 0
    assert saved["throughput"]["env_steps_per_s"] > 0
    assert any(str(exp) in line for line in lines)
    if HAS_WANDB:  # where the offline W&B runs are, and how to upload them: at start and end
        notes = [line for line in lines if line.startswith("[wandb] offline")]
        assert len(notes) == 2 and notes[0] == notes[1], lines
        assert notes[0].endswith(f"with: wandb sync {exp / 'wandb'}/offline-run-*")


@pytest.mark.skipif(not HAS_WANDB, reason=NO_WANDB)
def test_no_api_key_in_outputs(ray_session: Any, tmp_path: Path,
                               capfd: pytest.CaptureFixture[str]) -> None:
    with _env(WANDB_API_KEY=FAKE_KEY):
        summary, lines = _quick(tmp_path, "logging.wandb.mode=offline", "stop.iterations=1",
                               wandb=True)
        assert os.environ.get("WANDB_API_KEY") is None  # dropped: offline needs no key
    assert os.environ.get("WANDB_API_KEY") != FAKE_KEY
    exp = Path(summary["experiment_dir"])
    assert list((exp / "wandb").glob("offline-run-*")), "no offline W&B run"
    out, err = capfd.readouterr()
    assert FAKE_KEY not in "\n".join([*lines, out, err])
    assert FAKE_KEY not in json.dumps(summary)
    files = [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink()]
    assert any(p.name == "summary.json" for p in files)
    assert any(p.suffix == ".html" for p in files)
    leaked = [p for p in files if FAKE_KEY.encode() in p.read_bytes()]
    assert not leaked, f"the API key was written to {leaked}"
    # Ray's own session logs: Ray hands WANDB_API_KEY to its W&B logging actors in their
    # runtime_env, which its runtime-env agent logs; an offline run must not pass it on.
    from ray._private import worker

    logs = Path(worker._global_node.get_session_dir_path()) / "logs"
    leaked = [p for p in logs.rglob("*") if p.is_file() and FAKE_KEY.encode() in p.read_bytes()]
    assert not leaked, f"the API key was written to Ray's logs: {leaked}"
