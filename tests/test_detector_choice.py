"""``handoff.regime``: which regime detector's latents a phase reads (no Ray, no training).

``latest`` (the newest finished rde run on the same data, else the only stored detector,
else none: train one), a run directory, a checkpoint, an id, and the ambiguous cases that
are refused with the candidates named.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from algospace.errors import ConfigError
from algospace.features.latents import DETECTORS_KEY, latent_table
from algospace.features.pipeline import prepare
from algospace.tune.detector import needs_detector, resolve_detector, use_detector
from algospace.tune.plan import EXPERIMENT_FILE, Plan, RunOptions, load_phase
from algospace.tune.resume import resumed_plan
from tests.test_regime_store import untrained_detector

A, B, C = "aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc"


def _plan(tmp: Path, *sets: str, quick: bool = True) -> Plan:
    opts = RunOptions("strategic.yaml", quick=quick,
                      sets=(f"output.dir={tmp / 'out'}", f"data.cache_dir={tmp / 'cache'}",
                            *sets))
    return Plan(load_phase("strategic.yaml", opts), quick)


def _store(tmp: Path, *held: str, key: str = "k1") -> Any:
    """A stand-in for prepared data ``key`` holding the latents of detectors ``held``."""
    path = tmp / "cache" / key
    path.mkdir(parents=True, exist_ok=True)
    for d in held:
        (path / f"{latent_table(d)}.parquet").touch()
    meta = {DETECTORS_KEY: {d: {"checkpoint": f"/ckpt/{d}"} for d in held}}
    return SimpleNamespace(key=key, path=path, meta=meta)


def _rde_run(tmp: Path, name: str, detector: str, finished_at: str, *, key: str = "k1",
             quick: bool = True, status: str = "finished", checkpoint: bool = True) -> Path:
    run = tmp / "out" / ("rde-quick" if quick else "rde") / name
    (run / "best_checkpoint").mkdir(parents=True)
    if not checkpoint:
        (run / "best_checkpoint").rmdir()
    (run / "summary.json").write_text(json.dumps({
        "phase": "rde", "status": status, "quick": quick, "finished_at": finished_at,
        "experiment_dir": str(run), "best_checkpoint": str(run / "best_checkpoint"),
        "rde": {"store": str(tmp / "cache" / key), "detector": detector}}))
    return run


def test_latest_is_the_newest_finished_rde_run_on_the_same_data(tmp_path: Path) -> None:
    _rde_run(tmp_path, "1", A, "2026-01-01T10:00:00")
    newest = _rde_run(tmp_path, "2", B, "2026-01-01T11:00:00")
    _rde_run(tmp_path, "3", C, "2026-01-01T12:00:00", key="other-data")
    _rde_run(tmp_path, "4", C, "2026-01-01T13:00:00", quick=False)
    _rde_run(tmp_path, "5", C, "2026-01-01T14:00:00", status="running")
    _rde_run(tmp_path, "6", C, "2026-01-01T15:00:00", checkpoint=False)
    found = resolve_detector(_plan(tmp_path), _store(tmp_path, A, C))
    assert found is not None and found.id == B and found.run_dir == str(newest)
    assert found.describe() == {"id": B, "checkpoint": str(newest / "best_checkpoint"),
                                "rde_run": str(newest)}


def test_latest_refuses_two_runs_finished_together(tmp_path: Path) -> None:
    one = _rde_run(tmp_path, "1", A, "2026-01-01T10:00:00")
    two = _rde_run(tmp_path, "2", B, "2026-01-01T10:00:00")
    with pytest.raises(ConfigError) as err:
        needs_detector(_plan(tmp_path), _store(tmp_path))
    message = str(err.value)
    assert "handoff.regime: latest is ambiguous" in message
    assert f"{A} ({one})" in message and f"{B} ({two})" in message
    assert "set handoff.regime to one of these run directories" in message
    assert message.split(": ")[0].endswith("strategic.yaml")  # names the phase file
    # naming one of them settles it
    found = resolve_detector(_plan(tmp_path, f"handoff.regime={two}"), _store(tmp_path))
    assert found is not None and found.id == B


def test_latest_without_runs_reads_the_store(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    assert needs_detector(plan, _store(tmp_path))  # nothing yet: the driver trains one
    only = resolve_detector(plan, _store(tmp_path, A))
    assert only is not None and (only.id, only.checkpoint, only.run_dir) == \
        (A, f"/ckpt/{A}", None)
    with pytest.raises(ConfigError, match="latest is ambiguous") as err:
        resolve_detector(plan, _store(tmp_path, A, B))
    assert f"{A} (/ckpt/{A})" in str(err.value) and f"{B} (/ckpt/{B})" in str(err.value)
    assert "set handoff.regime" in str(err.value)
    assert not needs_detector(_plan(tmp_path, "env.regime_latent=false"), _store(tmp_path))


def test_named_detector_by_id_run_or_checkpoint(tmp_path: Path) -> None:
    prepared = _store(tmp_path, A)
    found = resolve_detector(_plan(tmp_path, f"handoff.regime={A}"), prepared)
    assert found is not None and found.id == A
    with pytest.raises(ConfigError, match=f"holds no latents of detector {B}"):
        resolve_detector(_plan(tmp_path, f"handoff.regime={B}"), prepared)
    with pytest.raises(ConfigError, match="is neither an rde run directory"):
        resolve_detector(_plan(tmp_path, f"handoff.regime={tmp_path / 'nothing'}"), prepared)
    unfinished = _rde_run(tmp_path, "1", C, "2026-01-01T10:00:00", status="running")
    with pytest.raises(ConfigError, match="has not finished"):
        resolve_detector(_plan(tmp_path, f"handoff.regime={unfinished}"), prepared)
    other = tmp_path / "out" / "strategic-quick" / "1"
    other.mkdir(parents=True)
    (other / "summary.json").write_text(json.dumps({"phase": "strategic"}))
    with pytest.raises(ConfigError, match="is a run of the strategic phase"):
        resolve_detector(_plan(tmp_path, f"handoff.regime={other}"), prepared)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "rde.pt").write_bytes(b"not weights")
    with pytest.raises(ConfigError, match=r"handoff\.regime: no regime-detector checkpoint"):
        resolve_detector(_plan(tmp_path, f"handoff.regime={broken}"), prepared)


def test_use_detector_encodes_a_checkpoint_the_store_lacks(tmp_path: Path) -> None:
    """A detector trained elsewhere (here: a checkpoint by path) is encoded into this
    data first; the plan's env config and ``plan.regime`` name it, the log says so."""
    plan = _plan(tmp_path, "data.synthetic.days=20")
    prepared = prepare(plan.config.data)
    checkpoint = untrained_detector(prepared, tmp_path / "elsewhere" / "rde", seed=5)
    plan = _plan(tmp_path, "data.synthetic.days=20", f"handoff.regime={checkpoint}")
    lines: list[str] = []
    prepared = use_detector(plan, prepared, lines.append)
    detector = plan.config.env.regime_detector
    assert detector is not None and detector in prepared.meta[DETECTORS_KEY]
    assert (prepared.path / f"{latent_table(detector)}.parquet").is_file()
    assert plan.regime == {"id": detector, "checkpoint": str(checkpoint), "rde_run": None}
    assert f"[run] regime latents: detector {detector} ({checkpoint})" in lines
    assert any(line.startswith("[run] encoding the data with regime detector") for line in lines)
    assert plan.experiment.raw["env"]["regime_detector"] == detector  # what trials rebuild


def test_a_resumed_run_keeps_its_detector(tmp_path: Path) -> None:
    """--resume reads the detector id the run started with (from its saved experiment):
    no new resolution (here ``latest`` would now be ambiguous), no note that the file
    changed, and the summary's ``regime`` record comes back."""
    started = _plan(tmp_path)
    prepared = _store(tmp_path, A)
    use_detector(started, prepared, lambda _: None)
    run = tmp_path / "out" / started.name / "20260101-100000"
    run.mkdir(parents=True)
    (run / "tuner.pkl").touch()
    (run / EXPERIMENT_FILE).write_text(json.dumps({
        "source": started.experiment.source, "raw": started.experiment.raw, "quick": True,
        "handoff": [], "regime": started.regime, "tune_dir": str(run)}))
    lines: list[str] = []
    plan = resumed_plan(_plan(tmp_path), lines.append)
    assert lines == []
    assert plan.config.env.regime_detector == A and plan.regime == started.regime
    prepared = _store(tmp_path, A, B)
    assert not needs_detector(plan, prepared)
    use_detector(plan, prepared, lines.append)
    assert lines == [f"[run] regime latents: detector {A} (/ckpt/{A})"]
