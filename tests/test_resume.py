"""``--resume``: a run killed with SIGKILL, or stopped with Ctrl-C, finishes the same budget.

The runs are real ``python -m experiments.run strategic.yaml --quick`` drivers in their own
session (``start_new_session``): the Ray processes a killed driver leaves behind are the
processes of that session, killed here, and nothing else (not the test session's Ray).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from algospace.cli.run import main as run_main
from algospace.tune import driver
from algospace.tune.plan import EXPERIMENT_FILE, QUICK, SUMMARY

REPO = Path(__file__).resolve().parents[1]
ITERATIONS = 6
BATCH = QUICK["training.train_batch_size"]
RUN_FILE = "algospace_run.json"
INTERRUPTED = "interrupted: checkpoints are kept; continue with python -m experiments.run "

linux_only = pytest.mark.skipif(not Path("/proc/self/stat").is_file(),
                                reason="finds a session's processes in /proc")


def _argv(tmp: Path, *extra: str) -> list[str]:
    sets = (f"stop.iterations={ITERATIONS}", "checkpoint.every=1", "env.regime_latent=false",
            "logging.dashboard.enabled=false", "evaluation.final=false",
            f"output.dir={tmp / 'results'}", f"data.cache_dir={tmp / 'cache'}")
    return [sys.executable, "-m", "experiments.run", "strategic.yaml", "--quick",
            *(a for s in sets for a in ("--set", s)), *extra]


def _session_processes(sid: int) -> list[int]:
    """Live (not zombie) processes of session ``sid``."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = stat.read_text()
            state, _ppid, _pgrp, session = text[text.rindex(")") + 2:].split()[:4]
            if int(session) == sid and state != "Z":
                pids.append(int(stat.parent.name))
    return pids


def _kill_session(sid: int, timeout: float = 30) -> list[int]:
    """SIGKILL every process left in session ``sid``; returns those it found."""
    found = _session_processes(sid)
    for pid in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while _session_processes(sid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _session_processes(sid), f"session {sid} processes survived SIGKILL"
    return found


@contextlib.contextmanager
def in_session(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``argv`` run in its own session with a local Ray, its output in ``log``; whatever is
    left of the session is killed at the end."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a local Ray
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        _kill_session(proc.pid)


def _driver(tmp: Path, log: Path, *extra: str) -> contextlib.AbstractContextManager[
        subprocess.Popen[bytes]]:
    """The quick strategic run of these tests (:func:`_argv`) in its own session."""
    return in_session(_argv(tmp, *extra), log)


def _resume(tmp: Path, timeout: float = 300) -> tuple[int, str]:
    """Run ``--resume`` to its end: (exit status, output)."""
    log = tmp / "resume.log"
    with _driver(tmp, log, "--resume") as proc:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"--resume still running after {timeout} s:\n{log.read_text()[-3000:]}")
    return proc.returncode, log.read_text()


def _wait_for_checkpoint(proc: subprocess.Popen[bytes], tmp: Path, index: int, log: Path,
                         timeout: float = 180) -> Path:
    """The trial directory, once it holds ``checkpoint_<index>``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = list(tmp.glob(f"results/*/*/trial_*/checkpoint_{index:06d}"))
        if found:
            return found[0].parent
        if proc.poll() is not None:
            pytest.fail(f"the run exited ({proc.returncode}) before checkpoint {index}:\n"
                        f"{log.read_text()[-3000:]}")
        time.sleep(0.1)
    pytest.fail(f"no checkpoint {index} after {timeout} s:\n{log.read_text()[-3000:]}")


def _checkpoints(trial: Path) -> dict[str, int]:
    """Checkpoint directory name → training iteration it holds (complete ones only)."""
    return {c.name: json.loads((c / RUN_FILE).read_text())["iteration"]
            for c in sorted(trial.glob("checkpoint_*")) if (c / RUN_FILE).is_file()}


def _rows(trial: Path) -> list[dict[str, Any]]:
    """The trial's result rows in the order Tune wrote them (both drivers' rows)."""
    return [json.loads(line) for line in (trial / "result.json").read_text().splitlines()
            if line.strip()]


def _history(rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Training iteration → its row (the resumed run's where an iteration was redone)."""
    return {int(r["training_iteration"]): r for r in rows}


def _first_resumed_iteration(rows: list[dict[str, Any]]) -> int:
    """The first iteration reported after the restore."""
    starts = [int(r["training_iteration"]) for r in rows if r["iterations_since_restore"] == 1]
    assert len(starts) == 2, f"expected one run and one resumed run, got starts at {starts}"
    return starts[1]


def _check_finished(trial: Path) -> dict[str, Any]:
    """The resumed run finished the whole budget; returns its summary."""
    exp = trial.parent
    summary = json.loads((exp / SUMMARY).read_text())
    assert summary["status"] == "finished" and summary["failed_trials"] == 0
    assert [t["iterations"] for t in summary["trials"]] == [ITERATIONS]
    history = _history(_rows(trial))
    assert sorted(history) == list(range(1, ITERATIONS + 1))
    last = history[ITERATIONS]
    assert last["training_iteration"] == ITERATIONS and last["iteration"] == ITERATIONS
    assert Path(summary["best_checkpoint"]).is_dir()
    assert _checkpoints(trial)[last["checkpoint_dir_name"]] == ITERATIONS
    # all kept during the run (Tune's pruning could delete what its saved state names),
    # pruned at the end to the checkpoint.keep (2 with --quick) best plus the latest
    assert len(list(trial.glob("checkpoint_*"))) <= 3
    return summary


# ------------------------------------------------------------------ SIGKILL
@dataclass
class Killed:
    """A run SIGKILLed after its third checkpoint, then resumed."""

    trial: Path
    summary_at_kill: bool
    newest_at_kill: int
    """Iteration of the newest complete checkpoint once the driver was dead."""
    returncode: int
    output: str


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Killed:
    if any("uninterrupted" in getattr(item, "fixturenames", ())
           for item in request.session.items):
        # the run to compare with starts now and runs beside this one (most of a quick
        # run is Ray starting and stopping, which two runs can overlap)
        request.getfixturevalue("_uninterrupted_driver")
    tmp = tmp_path_factory.mktemp("sigkill")
    log = tmp / "run.log"
    with _driver(tmp, log) as proc:
        trial = _wait_for_checkpoint(proc, tmp, 2, log)
        os.kill(proc.pid, signal.SIGKILL)  # the driver only: the scenario is a lost driver
        proc.wait(30)
        # Its Ray workers outlive it for a while (the trial actor can still write a
        # checkpoint): kill what is left of its session before resuming.
        _kill_session(proc.pid)
    summary_at_kill = (trial.parent / SUMMARY).exists()
    newest = max(_checkpoints(trial).values())
    returncode, output = _resume(tmp)
    return Killed(trial, summary_at_kill, newest, returncode, output)


@linux_only
@pytest.mark.slow
def test_sigkill_then_resume_finishes_the_budget(killed: Killed) -> None:
    assert not killed.summary_at_kill
    assert killed.returncode == 0, killed.output[-3000:]
    assert f"[run] resuming {killed.trial.parent}" in killed.output
    _check_finished(killed.trial)


@linux_only
@pytest.mark.slow
def test_sigkill_resume_continues_from_the_last_checkpoint(killed: Killed) -> None:
    """Not from scratch, and at most the checkpoint in flight at the kill is redone (Tune's
    experiment state is saved after every checkpoint, see
    algospace.ray_compat.resumable_tune_state)."""
    assert killed.returncode == 0, killed.output[-3000:]
    first = _first_resumed_iteration(_rows(killed.trial))
    assert first > 1
    assert killed.newest_at_kill <= first <= killed.newest_at_kill + 1


@linux_only
@pytest.mark.slow
def test_sigkill_resume_continues_the_env_step_counter(killed: Killed) -> None:
    """The lifetime env-step counter goes on from the checkpoint: every iteration adds about
    as much as in an uninterrupted run, the restored one included."""
    assert killed.returncode == 0, killed.output[-3000:]
    history = _history(_rows(killed.trial))
    steps = [history[i]["env_steps"] for i in range(1, ITERATIONS + 1)]
    added = [b - a for a, b in zip([0.0, *steps], steps, strict=False)]
    typical = statistics.median(added)
    assert typical >= BATCH
    assert all(0.5 * typical <= a <= 1.5 * typical for a in added), added
    assert steps[-1] >= ITERATIONS * BATCH
    summary = json.loads((killed.trial.parent / SUMMARY).read_text())
    assert summary["throughput"]["env_steps"] == steps[-1]


@pytest.fixture(scope="module")
def _uninterrupted_driver(tmp_path_factory: pytest.TempPathFactory
                          ) -> Iterator[tuple[Path, Path, subprocess.Popen[bytes]]]:
    """The same run as ``killed``'s, started (its own session and local Ray): its folder,
    log and process. What is left of its session is killed when the module ends."""
    tmp = tmp_path_factory.mktemp("uninterrupted")
    log = tmp / "run.log"
    with _driver(tmp, log) as proc:
        yield tmp, log, proc


@pytest.fixture(scope="module")
def uninterrupted(_uninterrupted_driver: tuple[Path, Path, subprocess.Popen[bytes]]) -> Path:
    """The trial folder of the same run as ``killed``'s, left to finish."""
    tmp, log, proc = _uninterrupted_driver
    try:
        proc.wait(300)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the uninterrupted run still runs after 300 s:\n{log.read_text()[-3000:]}")
    assert proc.returncode == 0, log.read_text()[-3000:]
    (trial,) = tmp.glob("results/*/*/trial_*")
    return trial


def _final_weights(trial: Path) -> dict[str, bytes]:
    """Module id → the bytes of its state in the trial's last checkpoint."""
    last = max(trial.glob("checkpoint_*"))
    return {f.parent.name: f.read_bytes()
            for f in last.glob("learner_group/learner/rl_module/*/module_state.pkl")}


@linux_only
@pytest.mark.slow
def test_sigkill_resumed_run_equals_the_uninterrupted_run(killed: Killed,
                                                          uninterrupted: Path) -> None:
    """Same seed, same machine: the killed-and-resumed run reports the same figures at every
    iteration and ends with the same weights (actors and critic, value-norm statistics
    included) as the run that was never interrupted."""
    assert killed.returncode == 0, killed.output[-3000:]
    resumed, straight = _history(_rows(killed.trial)), _history(_rows(uninterrupted))
    figures = [k for k in straight[1] if k.startswith(("losses/", "critic/", "agents/", "val_"))]
    assert len(figures) > 20
    for i in range(1, ITERATIONS + 1):
        for key in (*figures, "env_steps", "episode_return_mean"):
            assert resumed[i].get(key) == straight[i].get(key), (i, key)
    final = _final_weights(killed.trial)
    assert len(final) == 5 and final == _final_weights(uninterrupted)


# ------------------------------------------------------------------ Ctrl-C
@linux_only
@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_resumes(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    with _driver(tmp_path, log) as proc:
        # Checkpoint 1 on disk means the driver has taken in checkpoint 0 (a trial waits
        # for the driver between reports); an interrupt any earlier may leave Tune knowing
        # no checkpoint, and the resumed trial rightly starts from scratch.
        trial = _wait_for_checkpoint(proc, tmp_path, 1, log)
        os.kill(proc.pid, signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running 60 s after SIGINT:\n{log.read_text()[-3000:]}")
        output = log.read_text()
        assert proc.returncode == 130, output[-3000:]
        assert INTERRUPTED in output
        assert f"{INTERRUPTED}{shlex.join(_argv(tmp_path)[3:])} --resume\n" in output
        assert "Tuner.restore(" not in output  # Ray's own hint, for its Python API
        deadline = time.monotonic() + 15  # Ray shuts down with the driver
        while _session_processes(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _session_processes(proc.pid), "Ray processes outlived the driver"
    assert not (trial.parent / SUMMARY).exists()
    # Every checkpoint Tune took (and would resume from) is whole. (A trial killed while
    # copying the checkpoint of an iteration Tune never saw can leave a partial folder;
    # the resumed run writes that iteration's checkpoint over it.)
    taken = {r.get("checkpoint_dir_name") for r in _rows(trial)} - {None}
    kept = [c for c in sorted(trial.glob("checkpoint_*")) if c.name in taken]
    assert kept and kept[-1].name == max(taken)
    for checkpoint in kept:
        assert (checkpoint / RUN_FILE).is_file(), checkpoint
        assert (checkpoint / "learner_group" / "learner" / "rl_module").is_dir(), checkpoint

    returncode, output = _resume(tmp_path)
    assert returncode == 0, output[-3000:]
    _check_finished(trial)
    assert _first_resumed_iteration(_rows(trial)) > 1


# ------------------------------------------------------------------ no Ray
@pytest.fixture
def no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything past validation runs."""
    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the command should have been rejected before this")

    for name in ("start_ray", "prepare_data", "run_phase"):
        monkeypatch.setattr(driver, name, forbidden)


@pytest.mark.parametrize("finished_runs", [0, 1])
def test_resume_with_nothing_unfinished_exits_2(finished_runs: int, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str],
                                                no_ray: None) -> None:
    root = tmp_path / "results" / "strategic-quick"
    for n in range(finished_runs):
        run = root / f"20200101-00000{n}"
        run.mkdir(parents=True)
        (run / EXPERIMENT_FILE).write_text("{}")
        (run / SUMMARY).write_text(json.dumps({"status": "finished"}))
    assert run_main(_argv(tmp_path, "--resume")[3:]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --resume: no unfinished run under ")
    assert f"{root.resolve()} (runs found: {finished_runs})" in err and "without --resume" in err


def test_tune_state_saved_after_every_checkpoint_in_whole_files(tmp_path: Path) -> None:
    """Tune's own rule (every ``checkpoint.keep`` checkpoints, or 10 s) leaves the saved
    state naming a checkpoint it may already have deleted, and its copy into the experiment
    directory truncates files in place; the runner saves after each checkpoint, and copies
    each file to a temporary name first."""
    import pyarrow.fs
    from ray.train._internal import storage
    from ray.tune.execution.experiment_state import _ExperimentCheckpointManager

    from algospace.ray_compat import resumable_tune_state

    original = (_ExperimentCheckpointManager.on_trial_checkpoint, storage._upload_to_fs_path)
    with resumable_tune_state():
        for keep in (None, 2):
            manager = _ExperimentCheckpointManager(storage=None, checkpoint_period="auto",
                                                   sync_every_n_trial_checkpoints=keep)
            manager.on_trial_checkpoint("trial")
            assert manager._should_force_sync_up

        staging, experiment = tmp_path / "staging", tmp_path / "experiment"
        (staging / "trial_1").mkdir(parents=True)
        (staging / "experiment_state-1.json").write_text("{}")
        (staging / "trial_1" / "result.json").write_text("{}\n")
        (staging / ".0a1b-tmp-basic-variant-state-1.json").write_text("")  # Tune's own temp
        (experiment / "trial_1").mkdir(parents=True)
        (experiment / "trial_1" / "result.json").write_text("old")
        storage._upload_to_fs_path(str(staging), pyarrow.fs.LocalFileSystem(), str(experiment))
    files = sorted(str(f.relative_to(experiment)) for f in experiment.rglob("*") if f.is_file())
    assert files == ["experiment_state-1.json", "trial_1/result.json"]
    assert (experiment / "trial_1" / "result.json").read_text() == "{}\n"
    # undone after the run: Tune's own behaviour in this process again
    assert (_ExperimentCheckpointManager.on_trial_checkpoint,
            storage._upload_to_fs_path) == original


def test_ray_internals_need_the_pinned_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ray other than the pinned one fails with a message naming both versions, and
    nothing is patched."""
    import ray

    from algospace.errors import AlgoSpaceError
    from algospace.ray_compat import RAY_VERSION, resumable_tune_state

    monkeypatch.setattr(ray, "__version__", "9.9.9")
    with (pytest.raises(AlgoSpaceError, match=rf"Ray {RAY_VERSION}.*Ray 9\.9\.9 is installed"),
          resumable_tune_state()):
        pass


# ------------------------------------------------------------------ messages (no Ray)
def test_ctrl_c_prints_the_exact_command_to_resume(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(driver, "run", interrupted)
    argv = ["strategic.yaml", "--quick", "--name", "my run", "--set", "training.lr=1e-4",
            "--set", "output.dir=/tmp/a b"]
    assert run_main(argv) == 130
    assert capsys.readouterr().err == (
        "interrupted: checkpoints are kept; continue with python -m experiments.run "
        "strategic.yaml --quick --name 'my run' --set training.lr=1e-4 "
        "--set 'output.dir=/tmp/a b' --resume\n")


def _started(tmp: Path, file: Path, *sets: str) -> Path:
    """An unfinished run of ``file`` (quick) as the runner leaves it, started with ``sets``."""
    from algospace.tune.plan import Plan, RunOptions, load_phase
    from algospace.tune.resume import command_record

    opts = RunOptions(str(file), quick=True, sets=sets)
    experiment = load_phase(str(file), opts)
    plan = Plan(experiment, True)
    run = Path(plan.config.output.dir) / plan.name / "20200101-000000"
    run.mkdir(parents=True)
    (run / "tuner.pkl").write_bytes(b"")
    (run / EXPERIMENT_FILE).write_text(json.dumps(
        {"source": experiment.source, "raw": experiment.raw, "quick": True, "handoff": [],
         "regime": None, "tune_dir": str(run),
         "command": command_record(opts, experiment.source)}, default=str))
    return run


def _resume_notes(file: Path, *sets: str) -> tuple[list[str], Any]:
    from algospace.tune.plan import Plan, RunOptions, load_phase
    from algospace.tune.resume import resumed_plan

    notes: list[str] = []
    opts = RunOptions(str(file), quick=True, sets=sets, resume=True)
    plan = resumed_plan(Plan(load_phase(str(file), opts), True), notes.append, sets)
    return notes, plan


@pytest.fixture
def phase_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of strategic.yaml in a working directory of its own (results go under it)."""
    monkeypatch.chdir(tmp_path)
    file = tmp_path / "strategic.yaml"
    file.write_text((REPO / "tune_configs" / "strategic.yaml").read_text())
    return file


def test_resume_without_the_original_sets_notes_nothing(phase_file: Path) -> None:
    run = _started(phase_file.parent, phase_file, "training.lr=1e-4", "seed=3")
    notes, plan = _resume_notes(phase_file)
    assert notes == []
    assert plan.resume_dir == run
    assert plan.experiment.raw["seed"] == 3  # the run's stored settings


def test_resume_names_each_set_that_differs(phase_file: Path) -> None:
    run = _started(phase_file.parent, phase_file, "training.lr=1e-4", "seed=3")
    notes, plan = _resume_notes(phase_file, "seed=4", "training.lr=1e-4", "stop.iterations=9")
    assert notes == [f"[run] note: the --set items differ from those {run.name} started with "
                     "(seed: 3 -> 4; stop.iterations: unset -> 9); it resumes with the "
                     "settings it started with"]
    assert plan.experiment.raw["seed"] == 3
    assert _resume_notes(phase_file, "seed=3", "training.lr=0.0001")[0] == []


def test_resume_names_what_changed_in_the_file(phase_file: Path) -> None:
    run = _started(phase_file.parent, phase_file)
    phase_file.write_text(phase_file.read_text().replace("\nseed: 0\n", "\nseed: 5\n"))
    notes, plan = _resume_notes(phase_file)
    assert notes == [f"[run] note: {phase_file} changed since {run.name} started (seed: 0 -> "
                     "5); it resumes with the settings it started with"]
    assert plan.experiment.raw["seed"] == 0


def test_rays_restore_hint_is_filtered_from_the_console() -> None:
    """Tune's "Resume experiment with: Tuner.restore(...)" names its Python API, not the
    command; the runner prints its own. Tune's other warnings still get through."""
    import logging

    from algospace.tune.console import quiet_ray_console

    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    logger = logging.getLogger("ray.tune.tune")
    handler = Keep(level=logging.INFO)
    logger.addHandler(handler)
    try:
        quiet_ray_console()
        logger.warning("Experiment has been interrupted, but the most recent state was "
                       'saved.\nResume experiment with: Tuner.restore(path="/x", trainable=...)')
        logger.warning("Stop signal received (e.g. via SIGINT/Ctrl+C), ending Ray Tune run.")
    finally:
        logger.removeHandler(handler)
    assert seen == ["Stop signal received (e.g. via SIGINT/Ctrl+C), ending Ray Tune run."]
