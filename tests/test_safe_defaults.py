"""Safe defaults: YAML, weights, Ray's network exposure and authentication, secrets.

- YAML is read with a ``yaml.SafeLoader`` (Python tags are refused);
- weights are loaded with ``torch.load(weights_only=True)`` and nothing of ours unpickles
  (a code scan, and a booby-trapped ``rde.pt`` that must not run);
- nothing in the project turns Ray's token authentication off; the local Ray the runner starts
  has token authentication on and listens on 127.0.0.1 only, dashboard included;
- a W&B API key (a fake one) in online mode reaches neither the results nor Ray's logs;
  secrets are never passed through Ray's runtime_env.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import ipaddress
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from algospace.config import TUNE_CONFIGS, YamlLoader, load_experiment, parse_set, read_yaml
from algospace.errors import ConfigError
from algospace.tune import cluster

REPO = Path(__file__).resolve().parents[1]
CODE = [p for d in ("algospace", "envs", "experiments") for p in (REPO / d).rglob("*.py")]
FAKE_KEY = "fake0wandb0key0online0c0ffee0123456789ab"


# ------------------------------------------------------------------ YAML
def test_yaml_loader_is_safe(tmp_path: Path) -> None:
    assert issubclass(YamlLoader, yaml.SafeLoader)
    marker = tmp_path / "ran"
    for tag in (f"!!python/object/apply:os.system ['touch {marker}']",
                "!!python/object:algospace.errors.ConfigError {}",
                "!!python/name:os.system"):
        file = tmp_path / "bad.yaml"
        file.write_text(f"phase: strategic\nname: {tag}\n")
        with pytest.raises(ConfigError, match="not valid YAML"):
            read_yaml(file)
        with pytest.raises(ConfigError, match="not valid YAML"):
            parse_set([f"name={tag}"])
    assert not marker.exists()


def _calls(name: str) -> list[tuple[Path, ast.Call]]:
    """Calls of ``<something>.name(...)`` or ``name(...)`` in the project's code."""
    out = []
    for path in CODE:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else \
                    getattr(func, "id", None)
                if called == name:
                    out.append((path, node))
    return out


def _keyword(call: ast.Call, name: str) -> Any:
    for kw in call.keywords:
        if kw.arg == name and isinstance(kw.value, ast.Constant):
            return kw.value.value
        if kw.arg == name and isinstance(kw.value, ast.Name):
            return kw.value.id
    return None


def test_no_unsafe_deserialisation_in_the_code() -> None:
    """torch.load only with weights_only=True; YAML only through the safe loader; no
    pickle, marshal or np.load(allow_pickle=True) of our own."""
    loads = _calls("load")
    torch_loads = [(p, c) for p, c in loads if ast.unparse(c.func) == "torch.load"]
    assert torch_loads, "the RDE weights are read with torch.load"
    for path, call in torch_loads:
        assert _keyword(call, "weights_only") is True, f"{path}:{call.lineno}"
    for path, call in loads:
        if ast.unparse(call.func) == "yaml.load":
            assert _keyword(call, "Loader") in ("YamlLoader", "SafeLoader"), path
        assert ast.unparse(call.func).split(".")[0] not in ("pickle", "cloudpickle",
                                                             "marshal", "dill"), path
        assert _keyword(call, "allow_pickle") is not True, f"{path}:{call.lineno}"
    for name in ("unsafe_load", "full_load", "loads", "read_pickle"):
        for path, call in _calls(name):
            assert not ast.unparse(call.func).startswith(("yaml.", "pickle.", "pd.")), \
                f"{path}:{call.lineno}"


class _Trap:
    """An object whose unpickling creates a file (a stand-in for running any code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (Path.touch, (self.marker,))


def test_rde_weights_refuse_code(tmp_path: Path) -> None:
    """An ``rde.pt`` holding a pickled object that runs code is refused, the code not run."""
    from algospace.config import RDEConfig
    from algospace.data.splits import Normalizer
    from algospace.regime.train import (
        CHECKPOINT_FORMAT,
        CHECKPOINT_META,
        CHECKPOINT_WEIGHTS,
        RDECheckpointError,
        load_rde,
    )

    names = ("a", "b")
    frame = pd.DataFrame(np.random.default_rng(0).normal(size=(10, 2)), columns=list(names))
    (tmp_path / CHECKPOINT_META).write_text(json.dumps({
        "format": CHECKPOINT_FORMAT, "config": dataclasses.asdict(RDEConfig()),
        "features": list(names), "normalizer": Normalizer.fit(frame, (0, 10)).to_dict()}))
    marker = tmp_path / "code-ran"
    torch.save({"weights": _Trap(marker)}, tmp_path / CHECKPOINT_WEIGHTS)
    with pytest.raises(RDECheckpointError, match="unreadable weights"):
        load_rde(tmp_path)
    assert not marker.exists()


# ------------------------------------------------------------------ Ray
def test_project_never_disables_ray_token_auth() -> None:
    """Every place the project sets RAY_AUTH_MODE (code, scripts, docs, docker and KubeRay
    files: ``X=v``, ``X: v``, ``["X"] = "v"``, ``"X", "v"``, ``name: X`` + ``value: v``)
    sets it to token."""
    skip = {".git", ".venv", "results", ".algospace", "__pycache__", ".mypy_cache",
            ".ruff_cache", ".pytest_cache"}
    setting = re.compile(r"RAY_AUTH_MODE[\"'\]]*(?:\s*[=:,]|\s*\n\s*value:)\s*[\"']?([\w$]+)")
    found = []
    for path in REPO.rglob("*"):
        if skip & set(path.relative_to(REPO).parts) or not path.is_file() \
                or path.stat().st_size > 1_000_000:
            continue
        for value in setting.findall(path.read_text(errors="ignore")):
            found.append((str(path.relative_to(REPO)), value))
    assert found, "the cluster test sets RAY_AUTH_MODE=token"
    assert {v.lower() for _, v in found} == {"token"}, found


LOCAL_RAY = """
import json, os, sys
import ray
from algospace.config import load_experiment
from algospace.tune import driver as runner
exp = load_experiment("strategic.yaml", {"logging.dashboard.port": int(sys.argv[1])})
runner.start_ray(runner.Plan(exp, False), None, lambda m: None)
ray.get(ray.remote(lambda: 1).remote())  # a worker process, with its own server
from ray._raylet import AuthenticationMode, get_authentication_mode
print(json.dumps({"ips": [n["NodeManagerAddress"] for n in ray.nodes()],
                  "token": get_authentication_mode() == AuthenticationMode.TOKEN,
                  "mode": os.environ.get("RAY_AUTH_MODE"),
                  "dashboard": ray.get_runtime_context().dashboard_url
                  if hasattr(ray.get_runtime_context(), "dashboard_url") else None}),
      flush=True)
sys.stdin.read()
"""


def _session_pids(sid: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = stat.read_text()
            fields = text[text.rindex(")") + 2:].split()
            if int(fields[3]) == sid and fields[0] != "Z":
                pids.append(int(stat.parent.name))
    return pids


def _address(hex_addr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address of /proc/net/tcp{,6} (32-bit words in host order)."""
    raw = bytes.fromhex(hex_addr)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(words)


def _listening(pids: list[int]) -> list[tuple[Any, int]]:
    """(address, port) of every listening TCP socket the processes ``pids`` hold."""
    inodes: set[str] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                host, port = fields[1].split(":")
                out.append((_address(host), int(port, 16)))
    return out


def _loopback(addr: Any) -> bool:
    mapped = getattr(addr, "ipv4_mapped", None)
    return bool(addr.is_loopback or (mapped is not None and mapped.is_loopback))


@pytest.mark.skipif(not Path("/proc/net/tcp").is_file(), reason="reads /proc/net/tcp")
@pytest.mark.ray
def test_local_ray_listens_on_loopback_with_token_auth() -> None:
    """The runner's own Ray: every port of every Ray process (GCS, raylet, agents, workers,
    dashboard) on 127.0.0.1, node address 127.0.0.1, token authentication on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.Popen([sys.executable, "-c", LOCAL_RAY, str(port)], cwd=REPO, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, "the local Ray did not start"
        info = json.loads(line)
        time.sleep(2)  # the dashboard's last servers
        sockets = _listening(_session_pids(proc.pid))
    finally:
        for pid in _session_pids(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait()
    assert info["ips"] == ["127.0.0.1"]
    assert info["token"] and info["mode"] == "token"
    ports = {p for _, p in sockets}
    assert port in ports, f"no dashboard on {port}: {sockets}"
    assert len(sockets) >= 5, sockets  # GCS, raylet, agents, driver, worker, dashboard
    exposed = [(str(a), p) for a, p in sockets if not _loopback(a)]
    assert not exposed, f"listening beyond loopback: {exposed}"


def test_worker_env_passed_without_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Attaching passes resources.worker_env in runtime_env; secret-looking names are a
    configuration error before Ray starts."""
    for name in ("WANDB_API_KEY", "RAY_AUTH_TOKEN", "AWS_SECRET_ACCESS_KEY", "DB_PASSWORD"):
        with pytest.raises(ConfigError, match=f"{name} looks like a secret"):
            load_experiment(TUNE_CONFIGS / "strategic.yaml", {"resources.worker_env": [name]})
    cfg = load_experiment(TUNE_CONFIGS / "strategic.yaml",
                          {"resources.worker_env": ["ALGOSPACE_NOTE", "WANDB_ENTITY"]}).config
    monkeypatch.setenv("ALGOSPACE_NOTE", "hello")
    monkeypatch.setenv("WANDB_ENTITY", "team")
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    seen: dict[str, Any] = {}

    import ray

    monkeypatch.setattr(ray, "init", lambda **kw: seen.update(kw))
    monkeypatch.setattr(ray, "nodes", lambda: [])
    monkeypatch.setattr(cluster, "check_answers", lambda where: None)  # no head listens
    lines: list[str] = []
    cluster.attach(cfg, "127.0.0.1:1", lines.append)
    assert seen["address"] == "127.0.0.1:1"
    assert seen["runtime_env"] == {"env_vars": {"ALGOSPACE_NOTE": "hello",
                                                "WANDB_ENTITY": "team"}}
    assert FAKE_KEY not in json.dumps(seen) + "\n".join(lines)
    monkeypatch.delenv("ALGOSPACE_NOTE")
    with pytest.raises(ConfigError, match="ALGOSPACE_NOTE not set in this shell"):
        cluster.attach(cfg, "127.0.0.1:1", lines.append)


# ------------------------------------------------------------------ W&B online
@pytest.mark.slow
def test_wandb_online_key_reaches_no_file(ray_session: Any, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Online mode with a (fake) key and W&B's server pointed at a closed local port: the
    key is in no file of the results nor of Ray's session logs (Ray's own callback writes
    it to runtime_env_agent.log), and the W&B actor did try to go online with it."""
    pytest.importorskip("wandb")
    from algospace.tune.driver import RunOptions, run

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{closed}")
    monkeypatch.setenv("WANDB_INIT_TIMEOUT", "3")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    opts = RunOptions(file="strategic.yaml", quick=True, wandb=True, sets=(
        f"output.dir={tmp_path / 'results'}", f"data.cache_dir={tmp_path / 'cache'}",
        "env.regime_latent=false", "stop.iterations=1", "evaluation.final=false",
        "logging.wandb.mode=online"))
    lines: list[str] = []
    [summary] = run(opts, log=lines.append)
    assert os.environ.get("WANDB_MODE") != "offline"
    from ray._private import worker

    logs = Path(worker._global_node.get_session_dir_path()) / "logs"
    files = [p for root in (tmp_path, logs) for p in root.rglob("*")
             if p.is_file() and not p.is_symlink()]
    leaked = [p for p in files if FAKE_KEY.encode() in p.read_bytes()]
    assert not leaked, f"the API key was written to {leaked}"
    assert FAKE_KEY not in "\n".join(lines) + json.dumps(summary)
    exp = Path(summary["experiment_dir"])
    debug = list((exp / "wandb").glob("run-*/logs/debug*.log"))
    assert debug, "the W&B actor did not start a run"
    tried = "\n".join(p.read_text(errors="replace") for p in debug)
    # without a key W&B stops before contacting any server ("No API key configured")
    assert f"127.0.0.1:{closed}/graphql" in tried and "connection refused" in tried, \
        "W&B did not try the configured server with the key"
