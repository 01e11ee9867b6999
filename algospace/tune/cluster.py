"""Ray for a run: a local instance kept on this machine, or a cluster to attach to.

A local Ray (no ``--address``, no ``RAY_ADDRESS``) listens on the loopback interface only
(``resources.ray_host: 127.0.0.1``): Ray 2.60 binds its gRPC servers to every interface
unless its node address is exactly 127.0.0.1, and it rewrites 127.0.0.1 to the machine's
network address wherever multi-node clusters are enabled, so the runner turns that off for
its own single-node instance. Token authentication, which Ray 2.60 turns on for a local
instance, is left as it is.

Attached to a cluster, the runner checks that the cluster can place a trial (GPUs per
learner, CPUs, the env runners' custom resources), passes ``resources.worker_env`` to the
workers through Ray's runtime_env (never a secret: Ray logs it), and warns loudly when the
cluster spans several machines but Tune's storage is a local directory.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

from algospace.config import ExperimentConfig
from algospace.errors import ConfigError
from algospace.tune import storage

Log = Callable[[str], None]


def address(given: str | None) -> str | None:
    """The cluster to attach to: ``--address``, else ``RAY_ADDRESS``, else None (local)."""
    return given or os.environ.get("RAY_ADDRESS") or None


def start_local(cfg: ExperimentConfig, log: Log) -> Any:
    """Start a local Ray instance (on 127.0.0.1 unless ``resources.ray_host`` opens it)."""
    import ray

    from algospace.ray_compat import loopback_node

    r, dash = cfg.resources, cfg.logging.dashboard
    kwargs: dict[str, Any] = {}
    if not r.loopback and r.ray_host != "auto":
        kwargs["_node_ip_address"] = r.ray_host
    # "local": a new instance even where `ray start` runs a cluster on this machine (which
    # a plain ray.init() would join)
    port = free_dashboard_port(dash.host, dash.port, log) if dash.enabled else dash.port
    with loopback_node() if r.loopback else contextlib.nullcontext():
        ctx = ray.init(address="local", include_dashboard=dash.enabled,
                       dashboard_host=dash.host, dashboard_port=port,
                       log_to_driver=False, **kwargs)
    if not r.loopback:
        log(f"[ray] local Ray on {ray.util.get_node_ip_address()} (resources.ray_host: "
            f"{r.ray_host}), reachable from the network; token authentication guards it")
    return ctx


def free_dashboard_port(host: str, port: int, log: Log) -> int:
    """``port`` if it is free on ``host``, else a free one (said in the log).

    Another Ray on this machine (a second run, a notebook) holds the default port; Ray
    would stop with a traceback.
    """
    import socket

    def bind(p: int) -> int:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, p))
            return int(sock.getsockname()[1])

    try:
        return bind(port)
    except OSError:
        free = bind(0)
        log(f"[ray] dashboard port {port} on {host} is taken (another Ray on this machine?); "
            f"the dashboard uses port {free} (logging.dashboard.port sets it)")
        return free


def attach(cfg: ExperimentConfig, where: str, log: Log) -> Any:
    """Attach to the cluster at ``where``; check it can run ``cfg``; return Ray's context."""
    import ray

    env_vars = worker_env(cfg)
    runtime_env = {"env_vars": env_vars} if env_vars else None
    try:
        ctx = ray.init(address=where, log_to_driver=False, runtime_env=runtime_env)
    except ConnectionError as err:
        raise ConfigError(
            f"--address {where}: {err}. Is the head running there (`ray status --address "
            f"{where}`)? If the cluster uses token authentication (Ray's default), export "
            "RAY_AUTH_MODE=token and the cluster's token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, "
            "or ~/.ray/auth_token as on the head)") from None
    nodes = live_nodes()
    machines = {n["NodeManagerAddress"] for n in nodes}
    log(f"[ray] attached to {where}: {len(nodes)} node(s) on {len(machines)} machine(s), "
        f"{_total(nodes, 'CPU'):g} CPUs, {_total(nodes, 'GPU'):g} GPUs")
    if env_vars:
        log(f"[ray] passed to the workers: {', '.join(sorted(env_vars))}")
    return ctx


def live_nodes() -> list[dict[str, Any]]:
    """The cluster's live nodes (``ray.nodes()`` entries)."""
    import ray

    return [n for n in ray.nodes() if n.get("Alive")]


def check_attached(cfg: ExperimentConfig, log: Log) -> None:
    """Before a phase runs on a cluster: its resources, and where its results go."""
    nodes = live_nodes()
    check_cluster(cfg, nodes)
    storage_warning(cfg, sorted({n["NodeManagerAddress"] for n in nodes}), log)


def worker_env(cfg: ExperimentConfig) -> dict[str, str]:
    """The ``resources.worker_env`` variables, from this shell."""
    missing = [n for n in cfg.resources.worker_env if n not in os.environ]
    if missing:
        raise ConfigError(f"resources.worker_env: {', '.join(missing)} not set in this shell; "
                          "export it or remove it from the list")
    return {n: os.environ[n] for n in cfg.resources.worker_env}


def _total(nodes: Sequence[dict[str, Any]], resource: str) -> float:
    return float(sum(n.get("Resources", {}).get(resource, 0) for n in nodes))


def check_cluster(cfg: ExperimentConfig, nodes: Sequence[dict[str, Any]]) -> None:
    """Resources one trial needs that the cluster's live nodes (``ray.nodes()``) lack."""
    r = cfg.resources
    have = [dict(n.get("Resources", {})) for n in nodes]
    gpus = [h.get("GPU", 0.0) for h in have]
    if cfg.phase != "rde" and r.num_gpus_per_learner > 0 \
            and not any(g >= r.num_gpus_per_learner for g in gpus):
        raise ConfigError(
            f"resources.num_gpus_per_learner is {r.num_gpus_per_learner:g} but no node of the "
            f"cluster has that many GPUs (GPUs per node: {', '.join(f'{g:g}' for g in gpus)});"
            " set it to 0 to learn on the CPU, or add a node with a GPU "
            "(`ray start --address … --num-gpus 1`)")
    need = r.cpus_per_trial() if cfg.phase != "rde" else 1
    cpus = sum(h.get("CPU", 0.0) for h in have)
    if need > cpus:
        raise ConfigError(
            f"resources: one trial needs {need:g} CPUs ({r.cpus_described()}) but the "
            f"cluster has {cpus:g}; lower resources.num_env_runners or add nodes")
    if cfg.phase == "rde" or r.num_env_runners == 0:
        return
    bundle = {"CPU": r.num_cpus_per_env_runner, **r.env_runner_resources}
    fits = sum(min(math.floor(h.get(k, 0.0) / v + 1e-9) for k, v in bundle.items())
               for h in have)
    if fits < r.num_env_runners:
        per_node = "; ".join(", ".join(f"{k}: {h.get(k, 0.0):g}" for k in bundle)
                             for h in have)
        raise ConfigError(
            f"resources: each of the {r.num_env_runners} env runner(s) needs "
            f"{', '.join(f'{k}: {v:g}' for k, v in bundle.items())}, and the cluster's nodes "
            f"have room for {fits} (per node: {per_node}); start nodes with the resource "
            "(`ray start --address … --resources='{\"NAME\": N}'`) or change "
            "resources.env_runner_resources")


def storage_warning(cfg: ExperimentConfig, machines: Sequence[str], log: Log) -> None:
    """Warn when Tune's storage is a local directory of one machine of several."""
    where = cfg.output.storage or cfg.output.dir
    if len(machines) < 2 or storage.shared(where):
        return
    log(f"[ray] WARNING: the cluster spans {len(machines)} machines ({', '.join(machines)}) "
        f"but Tune's storage is {storage.describe(where)}, a directory of this machine: "
        "trials placed on other machines would write their results and checkpoints to "
        "their own disks, where this driver does not find them. Set output.storage to a "
        "path every node mounts (NFS, …) or an object-store URI (s3://…, gs://…).")
