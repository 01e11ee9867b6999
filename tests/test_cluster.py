"""Cluster runs: the checks of an attached cluster, and a real cluster of three nodes on
this machine — placement on a worker node, and that node's loss.

The three-node test: each node is its own ``ray start --block`` in its own session (killed
whole at the end, nothing else; Ray 2.60 replaces the 127.0.0.1 given to ``ray start`` by
the machine's network address, where the nodes then listen): a head (1 CPU, the dashboard
on 127.0.0.1 for Ray's state API) and two worker nodes that have the custom resource
``worker_node``. Token authentication is on with a token made for the test and exported
to every node and to the driver. The driver is ``python -m experiments.run strategic.yaml
--quick --address …`` on a CSV market with ``resources.env_runner_resources:
{worker_node: 1}``, its trials and checkpoints in ``output.storage`` apart from
``output.dir``. The test reads where the env runner runs from Ray's state API, deletes
the CSV once the driver has prepared the data (no worker may read it again), kills the
worker node that hosts the env runner after two iterations, and checks that a new env
runner comes up on the other worker node and the run samples on to its env-step budget.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.test_resume import _session_processes

REPO = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).with_name("ray"))
BUDGET = 2900
"""Env steps the run must reach (about four quick iterations): two before the kill, the
rest only after a replacement env runner samples."""
ITERATION_CAP = 40

multinode = [pytest.mark.slow,
             pytest.mark.skipif(not Path("/proc/self/stat").is_file(),
                                reason="finds each node's processes in /proc")]

WATCH = textwrap.dedent("""
    import json, sys, time
    from ray.util.state import list_actors, list_nodes
    address, out = sys.argv[1], open(sys.argv[2], "a")
    while True:
        try:
            nodes = [{"id": n.node_id, "state": n.state, "resources": n.resources_total}
                     for n in list_nodes(address=address, detail=True)]
            actors = [{"cls": a.class_name, "state": a.state, "node": a.node_id,
                       "pid": a.pid, "id": a.actor_id}
                      for a in list_actors(address=address, limit=1000)]
            out.write(json.dumps({"t": time.time(), "nodes": nodes, "actors": actors}) + "\\n")
        except Exception as err:  # the dashboard is still starting
            out.write(json.dumps({"t": time.time(), "error": str(err)[:300]}) + "\\n")
        out.flush()
        time.sleep(0.5)
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _session_of(pid: int) -> int:
    text = Path(f"/proc/{pid}/stat").read_text()
    return int(text[text.rindex(")") + 2:].split()[3])


def _kill_session(sid: int, timeout: float = 30) -> None:
    """SIGKILL every process of session ``sid`` (one node, or the driver's)."""
    deadline = time.monotonic() + timeout
    while (pids := _session_processes(sid)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


@dataclass
class Cluster:
    """The nodes (``ray start`` processes by name), addresses and the environment to use."""

    gcs: str
    dashboard: str
    env: dict[str, str]
    tmp: Path
    nodes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    args: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def start(self, name: str, *args: str) -> None:
        self.args[name] = args
        log = (self.tmp / f"{name}.log").open("wb")
        self.nodes[name] = subprocess.Popen(
            [RAY, "start", "--block", "--disable-usage-stats", "--node-ip-address=127.0.0.1",
             "--num-cpus=1", "--object-store-memory=100000000",
             f"--temp-dir={self.tmp / name}",
             f"--dashboard-agent-listen-port={_free_port()}",
             f"--metrics-export-port={_free_port()}", *args],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_started(self, name: str, timeout: float = 60, *, retry: bool = False) -> None:
        """Wait for node ``name``; with ``retry``, start it once more if it gave up (Ray's
        node start-up waits a fixed 30 s for the head, which a loaded 2-core CI machine
        has been seen to outlast)."""
        log = self.tmp / f"{name}.log"
        deadline = time.monotonic() + timeout
        while "Ray runtime started" not in log.read_text(errors="replace"):
            if self.nodes[name].poll() is not None or time.monotonic() > deadline:
                if retry:
                    _kill_session(self.nodes[name].pid)
                    self.nodes[name].wait()
                    log.rename(log.with_suffix(".first.log"))
                    self.start(name, *self.args[name])
                    return self.wait_started(name, timeout)
                pytest.fail(f"node {name} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)


WORKER_NODES = ("a", "b", "c")
"""Names of the worker nodes (each with one CPU and the ``worker_node`` resource)."""


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    # A short path: Ray's socket paths under the temp dir must stay below 108 bytes.
    tmp = Path(tempfile.mkdtemp(prefix="asc-", dir="/tmp"))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RAY_ADDRESS", "RAY_AUTH"))}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32),
               # the head notices a lost node after ~3 s instead of ~30 s
               RAY_health_check_period_ms="1000", RAY_health_check_failure_threshold="3")
    port, dash = _free_port(), _free_port()
    c = Cluster(f"127.0.0.1:{port}", f"http://127.0.0.1:{dash}", env, tmp)
    try:
        c.start("head", "--head", f"--port={port}", "--resources={\"head\": 1}",
                "--include-dashboard=true", "--dashboard-host=127.0.0.1",
                f"--dashboard-port={dash}", f"--ray-client-server-port={_free_port()}")
        c.wait_started("head")
        # three one-CPU worker nodes: the env runner takes one, the trial may land on the
        # head or on another worker (Ray picks), and one is left for the replaced env runner
        for name in WORKER_NODES:  # one at a time: three raylets registering at once load
            c.start(name, f"--address={c.gcs}", "--resources={\"worker_node\": 1}")
            c.wait_started(name, retry=True)
        yield c
    finally:
        for proc in c.nodes.values():
            _kill_session(proc.pid)
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def _records(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [r for r in (json.loads(line) for line in path.read_text().splitlines()
                        if line.endswith("}")) if "actors" in r]


def _runners(record: dict[str, Any], state: str = "ALIVE") -> list[dict[str, Any]]:
    return [a for a in record["actors"] if a["cls"].endswith("EnvRunner")
            and a["state"] == state]


def _current_runner(watch_log: Path) -> dict[str, Any] | None:
    """The live env runner in the watcher's latest record, if any."""
    records = _records(watch_log)
    runners = _runners(records[-1]) if records else []
    return runners[0] if runners else None


@dataclass
class Run:
    """What the test saw of the driver on the cluster."""

    cluster: Cluster
    tmp: Path
    returncode: int
    output: str
    killed_node: str
    """Name (a or b) of the worker node killed."""
    first: dict[str, Any]
    """The env runner before the kill (state API record)."""
    steps_at_kill: float
    records: list[dict[str, Any]]
    csv_deleted: bool


def _wait_for(proc: subprocess.Popen[bytes], log: Path, what: str, check: Any,
              timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        if proc.poll() is not None:
            pytest.fail(f"the run exited ({proc.returncode}) before {what}:\n"
                        f"{log.read_text()[-3000:]}")
        time.sleep(0.2)
    pytest.fail(f"no {what} after {timeout} s:\n{log.read_text()[-3000:]}")


def _progress_rows(log: Path) -> list[tuple[int, float]]:
    """The driver's progress rows: (iteration, env steps)."""
    rows = re.findall(r"^\S+_\d{5}\s+(\d+)/\d+\s+([\d,]+)\s",
                      log.read_text(errors="replace"), re.MULTILINE)
    return [(int(i), float(steps.replace(",", ""))) for i, steps in rows]


@pytest.fixture(scope="module")
def run(cluster: Cluster) -> Iterator[Run]:
    tmp = cluster.tmp / "run"
    tmp.mkdir()
    csv = tmp / "ES - 5 min.csv"
    subprocess.run([str(Path(sys.executable).with_name("algospace")), "data", "synth",
                    "--out", str(csv),
                    "--days", "20", "--seed", "3", "--signal", "0.3"], check=True, cwd=REPO,
                   capture_output=True)
    watch_log = tmp / "watch.jsonl"
    watcher = subprocess.Popen([sys.executable, "-c", WATCH, cluster.dashboard, str(watch_log)],
                               env=cluster.env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sets = ("data.source=csv", f"data.path={csv}", f"data.cache_dir={tmp / 'cache'}",
            f"output.dir={tmp / 'results'}", f"output.storage={tmp / 'storage'}",
            f"stop.iterations={ITERATION_CAP}", f"stop.env_steps={BUDGET}",
            "checkpoint.every=5", "env.regime_latent=false", "evaluation.final=false",
            "resources.env_runner_resources={worker_node: 1}")
    log = tmp / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "experiments.run", "strategic.yaml", "--quick",
             "--address", cluster.gcs, *(a for s in sets for a in ("--set", s))],
            cwd=REPO, env=cluster.env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        _wait_for(proc, log, "the experiment directory",
                  lambda: "phase: results in" in log.read_text(errors="replace"))
        csv.unlink()  # prepared and served: nothing may read it from here on
        rows = _wait_for(proc, log, "iteration 2",
                         lambda: [r for r in _progress_rows(log) if r[0] >= 2])
        first = _wait_for(proc, log, "an env runner in Ray's state API",
                          lambda: _current_runner(watch_log))
        session = _session_of(first["pid"])
        [killed] = [n for n, p in cluster.nodes.items() if p.pid == session]
        _kill_session(session)
        try:
            proc.wait(180)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the run did not finish after the node loss:\n{log.read_text()[-3000:]}")
        yield Run(cluster, tmp, proc.returncode, log.read_text(errors="replace"), killed, first,
                  rows[-1][1], _records(watch_log), not csv.exists())
    finally:
        for p in (proc, watcher):
            if p.poll() is None:
                p.kill()
            p.wait()
            _kill_session(p.pid)


def _worker_nodes(records: list[dict[str, Any]]) -> set[str]:
    return {n["id"] for r in records for n in r["nodes"] if "worker_node" in n["resources"]}


@multinode[0]
@multinode[1]
def test_env_runner_placed_on_a_worker_node(run: Run) -> None:
    """Ray's state API puts the env runner on a node with the ``worker_node`` resource, not
    the head, and that node's processes are the killed ``ray start``'s."""
    records = run.records
    heads = {n["id"] for r in records for n in r["nodes"] if "head" in n["resources"]}
    workers = _worker_nodes(records)
    assert len(heads) == 1 and len(workers) == len(WORKER_NODES)
    assert run.first["node"] in workers and run.first["node"] not in heads
    trials = {a["node"] for r in records for a in r["actors"]
              if a["cls"] == "ImplicitFunc" and a["state"] == "ALIVE"}
    assert len(trials) == 1 and run.first["node"] not in trials, \
        "the trial cannot share the env runner's one-CPU node"
    assert run.killed_node in WORKER_NODES


@multinode[0]
@multinode[1]
def test_training_goes_on_after_the_node_is_lost(run: Run) -> None:
    assert run.returncode == 0, run.output[-3000:]
    replaced = [a for r in run.records for a in _runners(r)
                if a["node"] != run.first["node"]]
    assert replaced, "no env runner came up on another node"
    assert replaced[0]["node"] in _worker_nodes(run.records)
    [summary_file] = (run.tmp / "results").glob("*/*/summary.json")
    summary = json.loads(summary_file.read_text())
    assert summary["status"] == "finished" and summary["failed_trials"] == 0
    [trial] = summary["trials"]
    assert trial["env_steps"] >= BUDGET > run.steps_at_kill
    assert trial["iterations"] < ITERATION_CAP


@multinode[0]
@multinode[1]
def test_results_in_storage_and_no_csv_read_on_workers(run: Run) -> None:
    """Trials and checkpoints in ``output.storage``, the summary in ``output.dir``; the
    CSV was deleted right after the driver prepared it, and no worker missed it."""
    assert run.csv_deleted and run.returncode == 0, run.output[-3000:]
    [summary_file] = (run.tmp / "results").glob("*/*/summary.json")
    summary = json.loads(summary_file.read_text())
    storage = run.tmp / "storage"
    assert Path(summary["best_checkpoint"]).is_relative_to(storage)
    assert Path(summary["trials"][0]["path"]).is_relative_to(storage)
    assert not list((run.tmp / "results").glob("*/*/trial_*"))
    assert "[ray] attached to" in run.output and f"{1 + len(WORKER_NODES)} node(s)" in run.output


# ------------------------------------------------------------------ checks, no Ray
def _cfg(**sets: Any) -> Any:
    from algospace.config import TUNE_CONFIGS, load_experiment

    return load_experiment(TUNE_CONFIGS / "strategic.yaml",
                           {f"resources.{k}": v for k, v in sets.items()}).config


def _node(cpu: float, gpu: float = 0, **custom: float) -> dict[str, Any]:
    return {"Alive": True, "NodeManagerAddress": "10.0.0.1",
            "Resources": {"CPU": cpu, "GPU": gpu, **custom}}


def test_attached_cluster_resources_checked() -> None:
    """A GPU learner, CPUs and the env runners' custom resources against the cluster's
    live nodes; each message names the setting and what the nodes have."""
    from algospace.errors import ConfigError
    from algospace.tune.cluster import check_cluster

    nodes = [_node(1), _node(1, worker_node=1), _node(1, worker_node=1)]
    check_cluster(_cfg(env_runner_resources={"worker_node": 1}, num_env_runners=2), nodes)
    with pytest.raises(ConfigError, match=r"num_gpus_per_learner is 1 but no node of the "
                                          r"cluster has that many GPUs \(GPUs per node: "
                                          r"0, 0, 0\).*set it to 0"):
        check_cluster(_cfg(num_gpus_per_learner=1), nodes)
    check_cluster(_cfg(num_gpus_per_learner=1), [*nodes, _node(4, gpu=1)])
    check_cluster(_cfg(num_gpus_per_learner=1, num_learners=1), [*nodes, _node(4, gpu=1)])
    with pytest.raises(ConfigError, match=r"needs 4 CPUs \(1 for the trial \+ 1 learner\(s\) "
                                          r"\+ 2 env runner"):
        check_cluster(_cfg(num_learners=1, num_env_runners=2), nodes)
    with pytest.raises(ConfigError, match="num_learners must be 0 or 1, got 2"):
        _cfg(num_learners=2)
    with pytest.raises(ConfigError, match=r"one trial needs 4 CPUs .* the cluster has 3"):
        check_cluster(_cfg(num_env_runners=3), nodes)
    with pytest.raises(ConfigError, match=r"each of the 3 env runner\(s\) needs CPU: 1, "
                                          r"worker_node: 1, and the cluster's nodes have room "
                                          r"for 2 .*ray start --address"):
        check_cluster(_cfg(env_runner_resources={"worker_node": 1}, num_env_runners=3),
                      [*nodes, _node(2)])
    with pytest.raises(ConfigError, match="room for 0"):
        check_cluster(_cfg(env_runner_resources={"gpu_node": 1}), nodes)


def test_env_runner_resources_validated() -> None:
    from algospace.errors import ConfigError

    assert _cfg(env_runner_resources={"worker_node": 0.5}).resources.env_runner_resources \
        == {"worker_node": 0.5}
    for bad in ({"CPU": 1}, {"worker_node": 0}):
        with pytest.raises(ConfigError, match=r"resources\.env_runner_resources"):
            _cfg(env_runner_resources=bad)
    with pytest.raises(ConfigError, match=r"ray_host: expected 127\.0\.0\.1, auto or an IP"):
        _cfg(ray_host="my-laptop")


def test_local_storage_on_several_machines_warned(tmp_path: Path) -> None:
    from algospace.tune.cluster import storage_warning

    cfg = _cfg()
    lines: list[str] = []
    storage_warning(cfg, ["10.0.0.1"], lines.append)
    assert not lines
    storage_warning(cfg, ["10.0.0.1", "10.0.0.2"], lines.append)
    [line] = lines
    assert "WARNING: the cluster spans 2 machines" in line and "output.storage" in line
    from algospace.config import TUNE_CONFIGS, load_experiment

    remote = load_experiment(TUNE_CONFIGS / "strategic.yaml",
                             {"output.storage": "s3://bucket/runs"}).config
    storage_warning(remote, ["10.0.0.1", "10.0.0.2"], lines.append)
    assert len(lines) == 1


@pytest.mark.slow
def test_remote_learner_trains(ray_session: Any, tmp_path: Path) -> None:
    """``resources.num_learners: 1``: the learner is a process of its own (1 CPU beside the
    trial's), the run trains to its budget and its checkpoints record the setting."""
    from algospace.tune.driver import RunOptions, run

    opts = RunOptions(file="strategic.yaml", quick=True, sets=(
        f"output.dir={tmp_path / 'results'}", f"data.cache_dir={tmp_path / 'cache'}",
        "env.regime_latent=false", "evaluation.final=false", "resources.num_learners=1",
        "resources.num_env_runners=0"))
    [summary] = run(opts, log=lambda _: None)
    [trial] = summary["trials"]
    assert trial["error"] is None and trial["iterations"] == 2
    assert trial["last"]["losses/policy"] == trial["last"]["losses/policy"]  # not NaN
    info = json.loads((Path(summary["best_checkpoint"]) / "algospace_run.json").read_text())
    assert info["train_config"]["num_learners"] == 1
    assert (Path(summary["best_checkpoint"]) / "learner_group" / "learner" / "rl_module").is_dir()


def test_a_taken_dashboard_port_is_replaced_by_a_free_one() -> None:
    """A second run on the same machine finds the dashboard's port taken: it says so and
    uses another (Ray would stop with a traceback)."""
    from algospace.tune.cluster import free_dashboard_port

    lines: list[str] = []
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        port = free_dashboard_port("127.0.0.1", taken, lines.append)
    assert port != taken and port > 0
    assert lines and f"port {taken}" in lines[0] and f"port {port}" in lines[0]
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    assert free_dashboard_port("127.0.0.1", free, lines.append) == free and len(lines) == 1
