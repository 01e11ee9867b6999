"""Tune's driver folder is copied into the experiment folder so that a driver killed at any
moment of the copy leaves a state on disk whose trials' result rows are all there too.

A SIGKILLed run in CI once resumed from the checkpoint of iteration 3 with iteration 3's
row missing from ``result.json`` for good: Tune's copy wrote the new experiment state
before the trial's rows.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from algospace import ray_compat


class Killed(Exception):
    """The driver dies here."""


def _driver_folder(root: Path, version: str) -> None:
    (root / "trial_a" / "sub").mkdir(parents=True, exist_ok=True)
    (root / "trial_b").mkdir(parents=True, exist_ok=True)
    (root / "experiment_state-1.json").write_text(version)
    (root / "basic-variant-state-1.json").write_text(version)
    (root / "trial_a" / "result.json").write_text(version)
    (root / "trial_a" / "sub" / "events.out").write_text(version)
    (root / "trial_b" / "result.json").write_text(version)


def _copy_killed_after(staging: Path, experiment: Path, renames: int,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    real = ray_compat.os.replace
    done = []

    def replace(src: str | Path, dst: str | Path) -> None:
        if len(done) == renames:
            raise Killed
        real(src, dst)
        done.append(dst)

    with monkeypatch.context() as patch:
        patch.setattr(ray_compat.os, "replace", replace)
        with pytest.raises(Killed):
            ray_compat.copy_whole_files(str(staging), str(experiment))


@pytest.mark.parametrize("renames", range(5))
def test_a_state_on_disk_never_names_rows_that_are_not(tmp_path: Path, renames: int,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    staging, experiment = tmp_path / "staging", tmp_path / "experiment"
    _driver_folder(experiment, "old")
    _driver_folder(staging, "new")
    _copy_killed_after(staging, experiment, renames, monkeypatch)
    state_new = (experiment / "experiment_state-1.json").read_text() == "new"
    rows_new = [(experiment / t / "result.json").read_text() == "new"
                for t in ("trial_a", "trial_b")]
    if state_new:
        assert all(rows_new), f"state copied before the rows (killed after {renames} files)"
    # nothing half-written: every file is whole, old or new
    for f in experiment.rglob("*"):
        if f.is_file() and not f.name.endswith(".algospace-sync"):
            assert f.read_text() in ("old", "new"), f


def test_the_whole_copy_writes_every_file(tmp_path: Path) -> None:
    staging, experiment = tmp_path / "staging", tmp_path / "experiment"
    _driver_folder(staging, "new")
    (staging / ".0a1b-tmp-basic-variant-state-1.json").write_text("")  # Tune's own temp
    ray_compat.copy_whole_files(str(staging), str(experiment))
    files = sorted(str(f.relative_to(experiment)) for f in experiment.rglob("*") if f.is_file())
    assert files == ["basic-variant-state-1.json", "experiment_state-1.json",
                     "trial_a/result.json", "trial_a/sub/events.out", "trial_b/result.json"]
    assert all((experiment / f).read_text() == "new" for f in files)
