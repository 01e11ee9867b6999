"""Ray for a run: a local instance kept on this machine, or a cluster to attach to.

A local Ray (no ``--address``, no ``RAY_ADDRESS``) listens on the loopback interface only
(``resources.ray_host: 127.0.0.1``): Ray 2.60 binds its gRPC servers to every interface
unless its node address is exactly 127.0.0.1, and it rewrites 127.0.0.1 to the machine's
network address wherever multi-node clusters are enabled, so the runner turns that off for
its own single-node instance. Token authentication, which Ray 2.60 turns on for a local
instance, is left as it is.

Each run without an address starts a Ray of its own, so several runs go side by side on
one machine: each records its Ray (:mod:`algospace.tune.local_rays`), which keeps their
dashboard ports apart and lets ``--address auto`` attach a run to the Ray of another (the
driver then keeps 127.0.0.1 too; both read the token from ``~/.ray/auth_token``). That Ray
lives as long as the run that started it. Ray not starting or not answering is an
:class:`~algospace.errors.OperationalError`.

Attached to a cluster, the runner checks that the cluster can place a trial (GPUs per
learner, CPUs, the env runners' custom resources), passes ``resources.worker_env`` to the
workers through Ray's runtime_env (never a secret: Ray logs it), and warns loudly when the
cluster spans several machines but Tune's storage is a local directory.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
from collections.abc import Callable, Sequence
from typing import Any

from algospace.config import ExperimentConfig
from algospace.errors import ConfigError, OperationalError
from algospace.tune import local_rays, storage

Log = Callable[[str], None]


def address(given: str | None) -> str | None:
    """The cluster to attach to: ``--address``, else ``RAY_ADDRESS``, else None (local)."""
    return given or os.environ.get("RAY_ADDRESS") or None


def resolve(given: str, log: Log) -> str:
    """``--address`` as Ray takes it: ``auto`` names the Ray another run on this machine
    started (:mod:`algospace.tune.local_rays`), else Ray's own ``auto`` (a ``ray start``
    cluster on this machine); any other address is kept.

    For the Ray of another run that uses token authentication, this also turns it on
    (``RAY_AUTH_MODE=token``; Ray does so by itself for its own ``auto`` only), which Ray
    reads when it is imported: call this before ``import ray``.
    """
    address = given
    if given == "auto":
        rays = local_rays.running()
        if len(rays) > 1:
            listed = "; ".join(f"{e['gcs_address']} ({e.get('name') or 'a run'}, "
                               f"pid {e['pid']})" for e in rays)
            raise ConfigError(f"--address auto: {len(rays)} runs on this machine hold a Ray: "
                              f"{listed}; pass one of these addresses to --address")
        if not rays:
            log("[ray] --address auto: no other run on this machine holds a Ray; looking "
                "for a `ray start` cluster here")
            return given
        address = str(rays[0]["gcs_address"])
        log(f"[ray] --address auto: the Ray of run {rays[0].get('name') or '?'} "
            f"(pid {rays[0]['pid']}) at {address}")
    run_ray = next((e for e in local_rays.running() if e["gcs_address"] == address), {})
    if run_ray.get("token_auth") and AUTH_MODE not in os.environ:
        os.environ[AUTH_MODE] = "token"
    return address


def start_local(cfg: ExperimentConfig, log: Log, *, name: str = "",
                dashboard_port: int | None = None) -> Any:
    """Start a local Ray instance (on 127.0.0.1 unless ``resources.ray_host`` opens it) and
    record it for ``--address auto``.

    ``dashboard_port``: exactly this port (``--dashboard-port``), an error if it is taken;
    else ``logging.dashboard.port`` if free, or a free one. Ray failing to start is an
    :class:`~algospace.errors.OperationalError`.
    """
    import ray

    from algospace.ray_compat import loopback_node

    r, dash = cfg.resources, cfg.logging.dashboard
    kwargs: dict[str, Any] = {}
    if not r.loopback and r.ray_host != "auto":
        kwargs["_node_ip_address"] = r.ray_host
    port = dash.port
    # one Ray starts at a time on this machine: runs started together choose different
    # dashboard ports, and two starts at once on a small machine can outlast the 30 s Ray
    # 2.60 gives a node to come up
    with local_rays.locked(log), loopback_node() if r.loopback else contextlib.nullcontext():
        if dashboard_port is not None:
            port = exact_dashboard_port(dash.host, dashboard_port)
        elif dash.enabled:
            port = free_dashboard_port(dash.host, dash.port, log)
        local_rays.record(name=name, dashboard_port=port if dash.enabled else None)
        try:
            # "local": a new instance even where `ray start` runs a cluster on this machine
            # (which a plain ray.init() would join)
            ctx = ray.init(address="local", include_dashboard=dash.enabled,
                           dashboard_host=dash.host, dashboard_port=port,
                           log_to_driver=False, **kwargs)
        except Exception as err:
            if not ray_failure(err):
                raise
            raise OperationalError(start_failure(err)) from err
    local_rays.record(gcs_address=ctx.address_info["gcs_address"],
                      dashboard_url=getattr(ctx, "dashboard_url", None) or None,
                      loopback=r.loopback, token_auth=token_auth())
    if not r.loopback:
        log(f"[ray] local Ray on {ray.util.get_node_ip_address()} (resources.ray_host: "
            f"{r.ray_host}), reachable from the network; token authentication guards it")
    return ctx


AUTH_MODE = "RAY_AUTH_MODE"
"""Ray's switch for token authentication (``token`` or ``disabled``)."""


def token_auth() -> bool:
    """Whether this process's Ray uses token authentication (Ray 2.60 sets
    ``RAY_AUTH_MODE=token`` when it starts a local instance, unless told otherwise)."""
    return os.environ.get(AUTH_MODE, "").lower() == "token"


def ray_failure(err: BaseException) -> bool:
    """Whether ``err``, raised by ``ray.init``, is Ray failing to start or to connect (not
    a bug in the call): Ray raises a bare ``Exception`` or ``RuntimeError`` for a process
    that did not come up, an ``OSError`` for its temp folder or a port, ``ConnectionError``
    / ``TimeoutError`` for a GCS that does not answer, ``AuthenticationError`` for a token
    that does not fit."""
    from ray.exceptions import AuthenticationError

    return type(err) in (Exception, RuntimeError) \
        or isinstance(err, (OSError, TimeoutError, AuthenticationError))


def start_failure(err: BaseException) -> str:
    """The ``error:`` text of a local Ray that did not start (``err`` from ``ray.init``).

    Ray raises the dashboard's failure with the dashboard's log pasted into the message
    (module handles, not the cause); on a busy machine the dashboard can simply take
    longer to come up than Ray waits for it.
    """
    if "dashboard" in str(err).lower():
        return ("Ray's dashboard did not start (on a busy machine it can take longer than "
                f"Ray waits for it; its log: {os.path.join(ray_logs(), 'dashboard.log')}); "
                "run again, or turn the dashboard off with --set "
                "logging.dashboard.enabled=false")
    return (f"Ray did not start: {last_line(err)}. See Ray's logs in {ray_logs()} "
            "(raylet.out, gcs_server.out, dashboard.log); free memory or disk space if "
            "short of either, or run again if another program took a port Ray had chosen")


def ray_logs() -> str:
    """Where a local Ray keeps the logs of its latest session."""
    import tempfile

    root = os.environ.get("RAY_TMPDIR") or tempfile.gettempdir()
    return os.path.join(root, "ray", "session_latest", "logs")


def last_line(err: BaseException) -> str:
    """The last non-empty line of an exception's message (Ray's are often long logs)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = lines[-1] if lines else type(err).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _bind(host: str, port: int) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, port))
        return int(sock.getsockname()[1])


def free_dashboard_port(host: str, port: int, log: Log) -> int:
    """``port`` if it is free on ``host`` and no other run on this machine holds it, else a
    free one (said in the log).

    Another Ray on this machine (a second run, a notebook) holds the default port; Ray
    would stop with a traceback.
    """
    taken = local_rays.taken_ports()
    if port not in taken:
        with contextlib.suppress(OSError):
            return _bind(host, port)
    try:
        free = _bind(host, 0)
        while free in taken:
            free = _bind(host, 0)
    except OSError as err:
        raise ConfigError(f"logging.dashboard.host {host}: cannot listen there "
                          f"({err.strerror or err}); use 127.0.0.1 (the default) or an "
                          "address of this machine") from None
    log(f"[ray] dashboard port {port} on {host} is taken (another Ray on this machine?); "
        f"the dashboard uses port {free} (--dashboard-port sets it)")
    return free


def exact_dashboard_port(host: str, port: int) -> int:
    """``port`` (``--dashboard-port``) if it is free on ``host``, else an error."""
    try:
        if port in local_rays.taken_ports():
            raise OSError("another run on this machine holds it")
        return _bind(host, port)
    except OSError as err:
        raise OperationalError(
            f"--dashboard-port {port}: the port is taken on {host} ({err.strerror or err}; "
            "another Ray or program on this machine); choose a free port, or leave "
            "--dashboard-port out and the run picks one") from err


def check_answers(where: str, timeout: float = 5.0) -> None:
    """Fail at once when nothing listens at ``where`` (``host:port``) — Ray would retry for
    minutes."""
    host, _, port = where.rpartition(":")
    if "://" in where or not host or not port.isdigit():
        return  # Ray's client address or another form: Ray checks it
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        raise OperationalError(
            f"--address {where}: nothing answers there ({err.strerror or err}). Is the "
            f"head running (`ray status --address {where}`)? For the Ray of another run on "
            "this machine use --address auto") from err


def attach(cfg: ExperimentConfig, where: str, log: Log) -> Any:
    """Attach to the cluster at ``where`` (see :func:`resolve`); check it can run ``cfg``;
    return Ray's context.

    The local Ray of another run on this machine listens on 127.0.0.1 only: the driver
    then keeps 127.0.0.1 as its own address too (Ray would reach for the network's).
    Token authentication is Ray's: on the same machine both runs read ``~/.ray/auth_token``.
    """
    import ray

    from algospace.ray_compat import loopback_node

    env_vars = worker_env(cfg)
    runtime_env = {"env_vars": env_vars} if env_vars else None
    check_answers(where)
    loopback = any(e["gcs_address"] == where and e.get("loopback")
                   for e in local_rays.running())
    try:
        with loopback_node() if loopback else contextlib.nullcontext():
            ctx = ray.init(address=where, log_to_driver=False, runtime_env=runtime_env)
    except Exception as err:
        if not ray_failure(err):
            raise
        raise OperationalError(
            f"--address {where}: {last_line(err)}. Is the head running there (`ray status "
            f"--address {where}`)? If the cluster uses token authentication (Ray's "
            "default), export RAY_AUTH_MODE=token and the cluster's token (RAY_AUTH_TOKEN, "
            "RAY_AUTH_TOKEN_PATH, or ~/.ray/auth_token as on the head)") from err
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
