"""Several runs on one machine, ``--address auto``, and operational failures (Ray not
starting, an address that does not answer, a taken port, a full disk) as one ``error:``
line with the traceback in a log file."""

from __future__ import annotations

import errno
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from algospace.errors import OperationalError, operational

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = re.compile(r"^\[ray\] dashboard: http://127\.0\.0\.1:(\d+)", re.M)


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A registry of local Rays of this test's own."""
    folder = tmp_path / "registry"
    monkeypatch.setenv("ALGOSPACE_RAY_REGISTRY", str(folder))
    return folder


def _env(registry: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ALGOSPACE_RAY_REGISTRY": str(registry),
           **extra}
    env.pop("RAY_ADDRESS", None)
    return env


def _run(registry: Path, tmp_path: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    """``experiments.run rde.yaml --quick`` (results and data cache in ``tmp_path``)."""
    cmd = [sys.executable, "-m", "experiments.run", "rde.yaml", "--quick",
           "--set", f"output.dir={tmp_path / 'results'}",
           "--set", f"data.cache_dir={tmp_path / 'cache'}", *args]
    return subprocess.Popen(cmd, cwd=ROOT, env=_env(registry, **env), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _one_error_line(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[str, Path]:
    """The process's one ``error:`` line and the log file it names (exit 2, no traceback)."""
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 2, out + err
    text = out + err
    assert "Traceback" not in text, text
    [line] = [ln for ln in text.splitlines() if "error" in ln.lower()]
    assert line.startswith("error: "), line
    found = re.search(r"\(traceback: (\S+\.log)\)$", line)
    assert found, line
    log = Path(found.group(1))
    assert log.is_file() and "Traceback (most recent call last)" in log.read_text()
    return line, log


def _entry(folder: Path, pid: int, **fields: Any) -> None:
    import json

    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{pid}.json").write_text(json.dumps({"pid": pid, "started": 1.0, **fields}))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# -- fast: the registry, the port choice, the mapping, the exit status ---------------------


def test_ports_of_other_live_runs_are_not_chosen(registry: Path) -> None:
    """A port another live run has claimed is taken even before its Ray binds it; a dead
    run's entry is ignored and removed."""
    from algospace.tune.cluster import exact_dashboard_port, free_dashboard_port

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = _dead_pid()
    _entry(registry, dead, dashboard_port=port)
    assert free_dashboard_port("127.0.0.1", port, print) == port
    assert not (registry / f"{dead}.json").exists()
    _entry(registry, os.getppid(), dashboard_port=port)  # a live process
    lines: list[str] = []
    other = free_dashboard_port("127.0.0.1", port, lines.append)
    assert other != port and f"port {port}" in lines[0]
    with pytest.raises(OperationalError, match=rf"--dashboard-port {port}: the port is taken"):
        exact_dashboard_port("127.0.0.1", port)


def test_a_taken_fixed_dashboard_port_is_an_error(registry: Path) -> None:
    from algospace.tune.cluster import exact_dashboard_port

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        with pytest.raises(OperationalError, match=rf"--dashboard-port {taken}: the port is "
                                                   r"taken on 127\.0\.0\.1 .*choose a free"):
            exact_dashboard_port("127.0.0.1", taken)
    assert exact_dashboard_port("127.0.0.1", taken) == taken


def test_auto_names_the_one_ray_of_another_run(registry: Path) -> None:
    from algospace.errors import ConfigError
    from algospace.tune.cluster import resolve

    lines: list[str] = []
    assert resolve("10.0.0.1:6379", lines.append) == "10.0.0.1:6379"
    assert resolve("auto", lines.append) == "auto" and "`ray start` cluster" in lines[0]
    _entry(registry, os.getpid(), gcs_address="127.0.0.1:1111", name="self")  # this run's
    _entry(registry, _dead_pid(), gcs_address="127.0.0.1:2222", name="ended")
    _entry(registry, os.getppid(), gcs_address="127.0.0.1:3333", name="rde-quick")
    assert resolve("auto", lines.append) == "127.0.0.1:3333"
    assert "the Ray of run rde-quick" in lines[-1]
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _entry(registry, other.pid, gcs_address="127.0.0.1:4444", name="strategic")
        with pytest.raises(ConfigError, match=r"--address auto: 2 runs on this machine hold "
                                              r"a Ray: 127\.0\.0\.1:\d+ .*127\.0\.0\.1:\d+ "):
            resolve("auto", lines.append)
    finally:
        other.kill()
        other.wait()


def test_operational_maps_disk_errors_only(tmp_path: Path) -> None:
    """A full or read-only disk becomes an OperationalError (with the log folder); other
    OSErrors and bugs pass unchanged."""
    with pytest.raises(OperationalError, match=r"no space left on the device \(/x/summary"
                                               r"\.json\); free space") as caught, \
            operational(tmp_path):
        raise OSError(errno.ENOSPC, "No space left on device", "/x/summary.json")
    assert caught.value.log_dir == tmp_path and isinstance(caught.value.__cause__, OSError)
    with pytest.raises(OperationalError, match="read-only"), operational(None):
        raise OSError(errno.EROFS, "Read-only file system")
    for bug in (TypeError("bad"), AttributeError("x"), ConnectionRefusedError(111, "refused"),
                FileNotFoundError(2, "gone")):
        with pytest.raises(type(bug)), operational(tmp_path):
            raise bug
    with pytest.raises(OperationalError) as inner, operational(tmp_path / "outer"), \
            operational(tmp_path / "inner"):  # the inner folder is kept
        raise OSError(errno.EDQUOT, "Disk quota exceeded")
    assert inner.value.log_dir == tmp_path / "inner"


def test_exit_status_logs_the_traceback_of_an_operational_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from algospace.cli.status import exit_status

    def full_disk() -> None:
        with operational(tmp_path / "run"):
            raise OSError(errno.ENOSPC, "No space left on device", "/x/checkpoint")

    assert exit_status(full_disk) == 2
    err = capsys.readouterr().err
    [line] = err.splitlines()
    assert line.startswith("error: no space left on the device (/x/checkpoint)")
    [log] = (tmp_path / "run").glob("*.log")
    assert line.endswith(f"(traceback: {log})")
    assert "OSError: [Errno 28]" in log.read_text() and "full_disk" in log.read_text()

    def bug() -> None:
        raise TypeError("a bug")

    with pytest.raises(TypeError):
        exit_status(bug)


def test_ray_failures_are_told_from_bugs() -> None:
    from ray.exceptions import AuthenticationError

    from algospace.tune.cluster import last_line, ray_failure

    for failure in (Exception("\nlog lines\nFailed to find a valid port"), RuntimeError("x"),
                    ConnectionError("no GCS"), TimeoutError(), AuthenticationError("token"),
                    OSError(errno.ENOTDIR, "Not a directory")):
        assert ray_failure(failure), failure
    for bug in (TypeError("kw"), AttributeError("a"), ValueError("v"), KeyError("k"),
                NotImplementedError()):
        assert not ray_failure(bug), bug
    assert last_line(Exception("\nThe last 20 lines:\n  a\n  Failed: port 8265\n")) \
        == "Failed: port 8265"


def test_a_dashboard_that_did_not_start_is_named() -> None:
    """Ray pastes the dashboard's log (module handles) into its exception: the error line
    names the dashboard and the way round it instead."""
    from algospace.tune.cluster import start_failure

    text = start_failure(Exception(
        "Failed to start the dashboard\nINFO head.py:341 -- Loaded 9 subprocess modules: "
        "[<ray.dashboard.subprocesses.handle.SubprocessModuleHandle object at 0x7f>]"))
    assert text.startswith("Ray's dashboard did not start")
    assert "logging.dashboard.enabled=false" in text and "SubprocessModuleHandle" not in text
    assert start_failure(Exception("boom\nport 6379 taken")).startswith(
        "Ray did not start: port 6379 taken")


def test_dashboard_port_with_an_address_is_an_input_error(
        capsys: pytest.CaptureFixture[str]) -> None:
    from algospace.cli.run import main

    assert main(["rde.yaml", "--address", "127.0.0.1:1", "--dashboard-port", "8300"]) == 2
    assert "error: --dashboard-port applies to a Ray of this run's own" \
        in capsys.readouterr().err
    assert main(["rde.yaml", "--dashboard-port", "70000"]) == 2
    assert "expected a port from 1 to 65535" in capsys.readouterr().err


def test_run_directories_of_one_second_differ(tmp_path: Path) -> None:
    from algospace.tune.tuner import new_run_dir

    dirs = {new_run_dir(tmp_path / "rde-quick") for _ in range(2)}
    assert len(dirs) == 2 and all(d.is_dir() for d in dirs)


# -- subprocesses: Ray failing, several runs, --address auto -------------------------------


@pytest.mark.ray
def test_ray_that_does_not_start_is_one_error_line(registry: Path, tmp_path: Path) -> None:
    """Ray's temp folder is a file: Ray fails to start; one ``error:`` line, exit 2, the
    traceback in ``<output.dir>/<name>/errors/``."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    line, log = _one_error_line(_run(registry, tmp_path, RAY_TMPDIR=str(blocker)))
    assert line.startswith("error: Ray did not start: [Errno 20] Not a directory")
    assert log.parent == tmp_path / "results" / "rde-quick" / "errors"


@pytest.mark.ray
def test_unreachable_address_and_taken_port_are_one_error_line(registry: Path,
                                                               tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        taken = _run(registry, tmp_path, "--dashboard-port", str(port))
        line, log = _one_error_line(taken)
    assert line.startswith(f"error: --dashboard-port {port}: the port is taken on 127.0.0.1")
    assert log.parent == tmp_path / "results" / "rde-quick" / "errors"
    line, _ = _one_error_line(_run(registry, tmp_path, "--address", f"127.0.0.1:{port}"))
    assert line.startswith(f"error: --address 127.0.0.1:{port}: nothing answers there")


@pytest.mark.ray
@pytest.mark.slow
def test_two_runs_at_once_each_with_its_own_ray(registry: Path, tmp_path: Path) -> None:
    """Two runs of one experiment started together: both finish, each on its own Ray with
    its own dashboard, in folders of their own."""
    started = time.time()
    procs = [_run(registry, tmp_path) for _ in range(2)]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=400)
        assert proc.returncode == 0, out + err
        assert "Traceback" not in out + err
        outs.append(out)
    ports = [int(DASHBOARD.search(out).group(1)) for out in outs]  # type: ignore[union-attr]
    assert ports[0] != ports[1]
    assert len(list((tmp_path / "results" / "rde-quick").glob("*/summary.json"))) == 2
    print(f"two runs at once: {time.time() - started:.0f} s")


@pytest.fixture
def other_run(registry: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process that started its local Ray the way a run does, and holds it."""
    code = ("import time\nfrom algospace.config import ExperimentConfig\n"
            "from algospace.tune import cluster\n"
            "ctx = cluster.start_local(ExperimentConfig(), print, name='other-run')\n"
            "print('READY', ctx.dashboard_url, flush=True)\ntime.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=_env(registry),
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=60)


@pytest.mark.ray
@pytest.mark.slow
def test_address_auto_attaches_to_the_ray_of_another_run(
        other_run: subprocess.Popen[str], registry: Path, tmp_path: Path) -> None:
    """``--address auto`` finds the Ray another process started (loopback only, token
    authentication on), runs there and prints that Ray's dashboard."""
    assert other_run.stdout is not None
    ready = other_run.stdout.readline()
    while ready.startswith("[ray] "):  # e.g. 8265 held by a Ray outside the test: moved
        ready = other_run.stdout.readline()
    assert ready.startswith("READY "), ready
    url = ready.split()[1]
    attached = _run(registry, tmp_path, "--address", "auto")
    out, err = attached.communicate(timeout=300)
    assert attached.returncode == 0 and "Traceback" not in out + err, out + err
    assert "[ray] --address auto: the Ray of run other-run" in out
    assert "[ray] attached to 127.0.0.1:" in out
    assert f"[ray] dashboard: http://{url} (the cluster's)" in out
    assert list((tmp_path / "results" / "rde-quick").glob("*/summary.json"))
