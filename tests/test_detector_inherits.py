"""The regime detector a phase trains first runs with that phase's output and dashboard
settings, ``--set`` overrides included (a run with the dashboard turned off, on a Ray
without ``ray[default]``, once failed at the detector's Ray start)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from algospace.tune import driver
from algospace.tune.driver import RunOptions, plan_phase, train_regime_detector
from algospace.tune.plan import load_phase


def test_the_detector_phase_takes_the_phase_s_dashboard_and_storage(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = tmp_path / "shared"
    opts = RunOptions(file="strategic.yaml", quick=True,
                      sets=(f"output.dir={tmp_path / 'results'}",
                            f"data.cache_dir={tmp_path / 'cache'}",
                            f"output.storage={storage}",
                            "logging.dashboard.enabled=false",
                            "logging.dashboard.port=8301"))
    quiet = lambda _: None  # noqa: E731
    plan = plan_phase(load_phase(opts.file, opts), opts, quiet)
    started: list[Any] = []
    monkeypatch.setattr(driver, "prepare_data", lambda plan, log: None)
    monkeypatch.setattr(driver, "start_ray", lambda plan, *a: started.append(plan))
    monkeypatch.setattr(driver, "run_phase", lambda plan, log: {"phase": plan.config.phase})

    assert train_regime_detector(plan, opts, quiet) == {"phase": "rde"}
    [rde] = started
    cfg = rde.config
    assert cfg.phase == "rde"
    assert not cfg.logging.dashboard.enabled and cfg.logging.dashboard.port == 8301
    assert cfg.output.storage == str(storage) and cfg.output.dir == str(tmp_path / "results")
    assert cfg.data == plan.config.data
