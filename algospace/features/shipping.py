"""The prepared data (and hand-off weights) sent from the driver to Ray workers.

The driver prepares the data once (``prepare``), from the user's CSV or the built-in
market. A trial or env runner on another node cannot do that again: the CSV may exist on
the driver's machine only, and the store directory may not be shared. So the driver
hands its store entry — the Parquet tables and ``meta.json``, a few MB — to a small Ray
actor kept on its own node (:func:`serve`), and passes workers only the entry's key
(:class:`Shipped`, through ``tune.with_parameters`` and the env config). A worker that
finds the entry in its local store reads it; otherwise it copies it from the actor into
its store (``data.cache_dir``, or a temporary directory where that cannot be written) —
never reading the CSV. An env runner restarted on another node after a node failure gets
the data the same way.

Checkpoint folders that a trial loads (``handoff.load``) travel the same way
(:func:`serve_tree`, :func:`local_tree`).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from algospace.config import DataConfig
from algospace.errors import DataError
from algospace.features.store import FeatureStore
from algospace.schema import to_dict

DEPOT = "algospace-depot"
"""Name of the actor holding shipped files (one per driver, in the driver's namespace)."""
ENV_KEY = "prepared_data"
"""Key of a :class:`Shipped` mapping in an RLlib env config."""

_PROVIDED: dict[str, Shipped] = {}
_HANDLES: dict[str, Any] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Shipped:
    """A store entry the driver serves: its key, what data it is, and its tables."""

    key: str
    """Store key of the entry."""
    ident: str
    """The data settings it was prepared from (:func:`identity`)."""
    tables: tuple[str, ...]
    """Tables the entry had when shipped."""

    def to_dict(self) -> dict[str, Any]:
        """A plain mapping (for an env config)."""
        return {**asdict(self), "tables": list(self.tables)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Shipped:
        """Inverse of :meth:`to_dict`."""
        return cls(str(data["key"]), str(data["ident"]), tuple(data["tables"]))


def identity(cfg: DataConfig, features: Any = None) -> str:
    """What identifies prepared data apart from where its store is."""
    from algospace.features.build import FeatureConfig

    data = to_dict(cfg)
    data.pop("cache_dir")
    return json.dumps({"data": data, "features": to_dict(features or FeatureConfig())},
                      sort_keys=True, default=str)


class _Depot:
    """Files by bundle name, served to the workers of one driver."""

    def __init__(self) -> None:
        self._bundles: dict[str, dict[str, bytes]] = {}

    def put(self, name: str, files: dict[str, bytes]) -> None:
        self._bundles[name] = files

    def get(self, name: str) -> dict[str, bytes] | None:
        return self._bundles.get(name)


def _depot(create: bool) -> Any:
    """The driver's depot actor (created on the driver's node if ``create``).

    The driver keeps a handle for as long as it runs: Ray ends a named actor that no
    handle refers to any more (and a detached one would outlive the driver).
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    if not create:
        return ray.get_actor(DEPOT)
    context = ray.get_runtime_context()
    job = context.get_job_id()
    if job not in _HANDLES:
        _HANDLES[job] = ray.remote(_Depot).options(
            name=DEPOT, num_cpus=0, max_restarts=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(context.get_node_id(),
                                                               soft=False)).remote()
    return _HANDLES[job]


def serve(prepared: Any, cfg: DataConfig) -> Shipped:
    """Driver: hand prepared data (a ``Prepared``) to the depot; returns what workers get."""
    import ray

    store: FeatureStore = prepared.store
    files = store.files(prepared.key)
    ray.get(_depot(create=True).put.remote(f"data/{prepared.key}", files))
    tables = tuple(sorted(n.removesuffix(".parquet") for n in files if n != "meta.json"))
    return Shipped(prepared.key, identity(cfg), tables)


def provide(shipped: Shipped | None) -> None:
    """Worker: use ``shipped`` whenever this process prepares the same data."""
    if shipped is not None:
        with _LOCK:
            _PROVIDED[shipped.ident] = shipped


def provided(cfg: DataConfig, features: Any = None) -> Shipped | None:
    """The shipped entry for ``cfg`` in this process, if the driver provided one."""
    if not _PROVIDED:
        return None
    return _PROVIDED.get(identity(cfg, features))


def local_store(cfg: DataConfig, shipped: Shipped) -> FeatureStore:
    """A store on this machine holding ``shipped`` whole (copied from the driver if not)."""
    store = FeatureStore(cfg.cache_dir)
    if not store.missing(shipped.key, shipped.tables):
        return store
    try:
        Path(cfg.cache_dir).mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cfg.cache_dir, prefix=".probe-"):
            pass
    except OSError:  # e.g. the driver's home directory does not exist here
        store = FeatureStore(Path(tempfile.gettempdir()) / f"algospace-cache-{os.getuid()}")
        if not store.missing(shipped.key, shipped.tables):
            return store
    import ray

    files = ray.get(_depot(create=False).get.remote(f"data/{shipped.key}"))
    if files is None:
        raise DataError(f"the driver does not serve prepared data {shipped.key}",
                        path=str(cfg.cache_dir), fix="run the experiment again")
    store.put_files(shipped.key, files)
    return store


def serve_tree(root: str | Path, parts: list[str]) -> str:
    """Driver: hand the folders and files ``parts`` of ``root`` (a checkpoint) to the depot."""
    import ray

    base = Path(root)
    files = {str(p.relative_to(base)): p.read_bytes()
             for part in parts
             for p in ([base / part] if (base / part).is_file()
                       else sorted((base / part).rglob("*")))
             if p.is_file()}
    name = f"tree/{hashlib.sha256(str(base).encode()).hexdigest()[:16]}"
    ray.get(_depot(create=True).put.remote(name, files))
    return name


def local_tree(root: str, name: str, parts: list[str], into: Path) -> str:
    """Worker: ``root`` if its ``parts`` are here, else a copy from the driver in ``into``."""
    if all((Path(root) / part).exists() for part in parts):
        return root
    import ray

    files = ray.get(_depot(create=False).get.remote(name))
    if files is None:
        raise DataError(f"{root} is not on this node and the driver does not serve it",
                        path=root, fix="put checkpoints on storage every node reaches")
    dest = into / name.replace("/", "-")
    for rel, data in files.items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_bytes(data)
    return str(dest)
