"""docker/ keeps its safe defaults: pinned bases, a non-root user, setup.sh installs,
loopback-only ports, Ray token auth on every node, shared result volumes, no secrets.

Static checks on the files (no Docker engine needed); `docker compose config` runs
too where a compose client is installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
COMPOSE = DOCKER / "compose.yaml"
KUBERAY = DOCKER / "kuberay-raycluster.yaml"
DOCKERIGNORE = ROOT / ".dockerignore"

SHARED_MOUNTS = {"/app/results", "/app/.algospace"}  # output.dir, data.cache_dir
PUBLISHED = {8265, 10001}  # dashboard, Ray Client; never the GCS port 6379
TOKEN_FROM_SHELL = re.compile(r"^\$\{RAY_AUTH_TOKEN:\?[^}]+\}$")
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
EXACT_TAG = re.compile(r":[^:@/]*\d+\.\d+\.\d+[^:@/]*(@|$)")


# ------------------------------------------------------------------ Dockerfile
def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        if full:
            word, _, args = full.partition(" ")
            out.append((word.upper(), args.strip()))
    return out


def _stages() -> list[dict[str, Any]]:
    """The build stages: name, base, instructions, and the user each instruction runs as."""
    stages: list[dict[str, Any]] = []
    by_name: dict[str, dict[str, Any]] = {}
    for word, args in _instructions(DOCKERFILE.read_text()):
        if word == "FROM":
            parts = args.split()
            base = next(p for p in parts if not p.startswith("--"))
            name = parts[-1] if len(parts) >= 3 and parts[-2].upper() == "AS" else None
            parent = by_name.get(base)
            stage: dict[str, Any] = {"name": name, "base": base, "steps": [],
                                     "user": parent["user"] if parent else None}
            stages.append(stage)
            if name:
                by_name[name] = stage
            continue
        stage = stages[-1]
        if word == "USER":
            stage["user"] = args
        stage["steps"].append((word, args, stage["user"]))
    return stages


def test_every_from_is_pinned_to_an_exact_version_and_digest() -> None:
    stages = _stages()
    names = {s["name"] for s in stages if s["name"]}
    external = [s["base"] for s in stages if s["base"] not in names]
    assert external, "docker/Dockerfile has no FROM"
    for image in external:
        assert ":latest" not in image, image
        assert EXACT_TAG.search(image), f"{image}: pin an exact version tag such as 3.11.16"
        assert DIGEST.search(image), f"{image}: pin the digest too (@sha256:...)"


def _numeric_non_root(user: str | None) -> bool:
    uid = (user or "").split(":")[0]
    return uid.isdigit() and int(uid) != 0


def test_images_run_as_a_fixed_non_root_user() -> None:
    finals = [s for s in _stages() if any(w in ("CMD", "ENTRYPOINT") for w, _, _ in s["steps"])]
    assert {s["name"] for s in finals} == {"cpu", "cuda"}
    for stage in finals:
        user = stage["user"]
        assert _numeric_non_root(user), (
            f"stage {stage['name']}: USER {user!r} before CMD must be a numeric non-root uid "
            "(Kubernetes runAsNonRoot can only check a number)")


def test_images_install_with_setup_sh_as_the_user() -> None:
    stages = {s["name"]: s for s in _stages()}
    for target, torch in (("cpu", "cpu"), ("cuda", "cuda")):
        runs = [(args, user) for word, args, user in stages[target]["steps"] if word == "RUN"]
        setup = [(args, user) for args, user in runs if "bash scripts/setup.sh" in args]
        assert len(setup) == 1, f"stage {target} must install with scripts/setup.sh once"
        args, user = setup[0]
        assert f"ALGOSPACE_TORCH={torch}" in args
        assert _numeric_non_root(user), "setup.sh must run as the image's non-root user"
    text = DOCKERFILE.read_text()
    assert "pip install" not in text, "install through scripts/setup.sh only, so they cannot drift"


def test_dockerignore_allows_exactly_what_the_image_copies() -> None:
    lines = [x.strip() for x in DOCKERIGNORE.read_text().splitlines()
             if x.strip() and not x.startswith("#")]
    assert lines[0] == "*", ".dockerignore must start by excluding everything"
    allowed = {x[1:].rstrip("/") for x in lines if x.startswith("!")}
    for word, args, _ in (step for s in _stages() for step in s["steps"]):
        if word != "COPY" or "--from" in args:
            continue
        sources = [a for a in args.split() if not a.startswith("--")][:-1]
        for src in sources:
            assert src.rstrip("/") in allowed, f"COPY {src} is excluded by .dockerignore"
            assert (ROOT / src).exists(), f"COPY {src}: no such path in the repository"
    for secretish in (".env", ".venv", "results", ".algospace", ".git"):
        assert secretish not in allowed


# ------------------------------------------------------------------ compose
def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def _ray_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services = compose["services"]
    ray = {n: s for n, s in services.items() if "ray start" in " ".join(map(str, s["command"]))}
    assert {"head", "worker"} <= set(ray)
    return ray


def test_compose_publishes_only_dashboard_and_client_on_loopback() -> None:
    compose = _compose()
    published: set[int] = set()
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert isinstance(port, str) and port.startswith("127.0.0.1:"), (
                f"{name}: port {port!r} must be bound to 127.0.0.1 (\"127.0.0.1:8265:8265\")")
            published.add(int(port.split(":")[1]))
        assert service.get("network_mode") != "host", f"{name}: host networking exposes Ray"
    assert published == PUBLISHED


def test_compose_turns_token_auth_on_everywhere_with_the_token_from_the_shell() -> None:
    for name, service in _ray_services(_compose()).items():
        env = service["environment"]
        assert isinstance(env, dict), f"{name}: environment as a mapping"
        assert env.get("RAY_AUTH_MODE") == "token", name
        assert TOKEN_FROM_SHELL.match(str(env.get("RAY_AUTH_TOKEN"))), (
            f"{name}: RAY_AUTH_TOKEN must come from the shell as ${{RAY_AUTH_TOKEN:?...}}")
    for path in (COMPOSE, KUBERAY, DOCKERFILE):
        text = path.read_text()
        assert not re.search(r"RAY_AUTH_MODE\W+(value:\s*)?\W*disabled", text), path


def test_compose_mounts_results_and_store_at_the_same_paths_on_every_node() -> None:
    compose = _compose()
    declared = set(compose.get("volumes") or {})
    for name, service in _ray_services(compose).items():
        mounts = {}
        for spec in service["volumes"]:
            source, target = spec.split(":")[:2]
            mounts[target] = source
        assert set(mounts) >= SHARED_MOUNTS, f"{name}: mounts {sorted(mounts)}"
        for target in SHARED_MOUNTS:
            assert mounts[target] in declared, f"{name}: {target} is not a named volume"


def test_no_secret_values_are_committed() -> None:
    for path in [*sorted(p for p in DOCKER.iterdir() if p.is_file()), DOCKERIGNORE]:
        text = re.sub(r"sha256:[0-9a-f]{64}", "", path.read_text())  # image digests
        assert not re.search(r"\b[0-9a-f]{32,}\b", text), (
            f"{path.name}: a long hex string looks like a token")
        assert not re.search(r"RAY_AUTH_TOKEN\s*[:=]\s*['\"]?[A-Za-z0-9]", text), (
            f"{path.name}: RAY_AUTH_TOKEN must not be given a literal value")


# ------------------------------------------------------------------ KubeRay
def _kuberay() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(KUBERAY.read_text()) if d]


def _pod_templates(cluster: dict[str, Any]) -> list[dict[str, Any]]:
    spec = cluster["spec"]
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    return [g["template"]["spec"] for g in groups]


def test_kuberay_sample_keeps_the_head_inside_the_cluster() -> None:
    docs = _kuberay()
    clusters = [d for d in docs if d["kind"] == "RayCluster"]
    assert len(clusters) == 1 and clusters[0]["apiVersion"] == "ray.io/v1"
    head = clusters[0]["spec"]["headGroupSpec"]
    assert head.get("serviceType") == "ClusterIP"
    assert not head.get("enableIngress")
    for doc in docs:
        assert doc["kind"] != "Secret", "create the token Secret with kubectl, not in the file"
        if doc["kind"] == "Service":
            assert doc["spec"].get("type", "ClusterIP") == "ClusterIP", doc["metadata"]


def test_kuberay_sample_enables_token_auth_and_shares_one_volume() -> None:
    docs = _kuberay()
    cluster = next(d for d in docs if d["kind"] == "RayCluster")
    claims = {d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"}
    for pod in _pod_templates(cluster):
        assert pod["securityContext"]["runAsNonRoot"] is True
        volumes = {v["name"]: v for v in pod["volumes"]}
        for container in pod["containers"]:
            env = {e["name"]: e for e in container["env"]}
            assert env["RAY_AUTH_MODE"]["value"] == "token", container["name"]
            token = env["RAY_AUTH_TOKEN"]
            assert "value" not in token and token["valueFrom"]["secretKeyRef"], container["name"]
            mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
            assert set(mounts) >= SHARED_MOUNTS, container["name"]
            for path in SHARED_MOUNTS:
                claim = volumes[mounts[path]["name"]]["persistentVolumeClaim"]["claimName"]
                assert claim in claims, f"{container['name']}: {path} not on the shared PVC"


# ------------------------------------------------------------------ docker compose config
def _compose_command() -> list[str] | None:
    """`docker compose` (plugin) or `docker-compose`, whichever is installed."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True,
                                 timeout=30).returncode == 0:
        return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone else None


def test_docker_compose_config_accepts_the_file_and_requires_a_token() -> None:
    command = _compose_command()
    if command is None:
        pytest.skip("no `docker compose` plugin or `docker-compose` on PATH to validate with")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "COMPOSE_"))}
    base = [*command, "-f", str(COMPOSE), "--profile", "gpu", "config"]
    missing = subprocess.run(base, capture_output=True, text=True, env=env, timeout=60)
    assert missing.returncode != 0 and "RAY_AUTH_TOKEN" in missing.stderr
    env["RAY_AUTH_TOKEN"] = "token-used-only-to-check-the-file"
    done = subprocess.run([*base, "--format", "json"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    services = json.loads(done.stdout)["services"]
    assert {"head", "worker", "gpu-worker"} <= set(services)
    for service in services.values():
        for port in service.get("ports", []):
            assert port["host_ip"] == "127.0.0.1", port
        assert service["environment"]["RAY_AUTH_MODE"] == "token"
