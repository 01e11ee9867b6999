"""The local Rays of the runs on this machine, so that several can run side by side.

Every run that starts its own Ray records it in a small registry, one JSON file per run
(``<pid>.json``): first the dashboard port it takes, then, once Ray is up, the Ray's GCS
address, dashboard URL and whether it uses token authentication (the attaching run then
turns it on too: Ray 2.60 does so by itself only for its own ``auto``). The file is
removed when the run's process exits; an entry whose process is gone is ignored and
cleaned away. The registry serves two purposes:

- runs started at the same moment do not pick the same dashboard port (the choice is
  made under a lock on the registry, against the ports other live runs hold), and start
  their Rays one after the other (under the same lock);
- ``--address auto`` finds the Ray of another run on this machine (:func:`running`).
  Ray 2.60's own ``address="auto"`` does not reach such a Ray: it finds the instance but
  rewrites its 127.0.0.1 address to the machine's network address, where a loopback-only
  Ray does not listen, and keeps retrying.

The registry is ``$TMPDIR/algospace-ray-<uid>/`` (``ALGOSPACE_RAY_REGISTRY`` names another
folder, e.g. for tests); it holds no secret (Ray's token stays in Ray's own files).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from algospace.files import write_json

REGISTRY_ENV = "ALGOSPACE_RAY_REGISTRY"
"""Environment variable naming the registry folder (default: under the temp dir)."""


def registry() -> Path:
    """The registry folder (created)."""
    given = os.environ.get(REGISTRY_ENV)
    uid = os.getuid() if hasattr(os, "getuid") else 0
    folder = Path(given) if given else Path(tempfile.gettempdir()) / f"algospace-ray-{uid}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextlib.contextmanager
def locked(log: Callable[[str], None] = lambda _: None) -> Iterator[Path]:
    """Hold the registry's lock (an ``flock`` on ``.lock``; none where fcntl is missing);
    ``log`` says so when another process holds it."""
    folder = registry()
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield folder
        return
    with open(folder / ".lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log("[ray] waiting for the Ray of another run on this machine to start")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield folder
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists (signal 0 on POSIX; on Windows, where that would end
    the process, every entry counts as live)."""
    if os.name == "nt":  # pragma: no cover
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def entries(folder: Path | None = None) -> list[dict[str, Any]]:
    """The entries of live runs, newest first (those of ended processes are removed)."""
    folder = registry() if folder is None else folder
    found = []
    for path in folder.glob("*.json"):
        try:
            entry = json.loads(path.read_text())
            pid = int(entry["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being written, or not ours
        if alive(pid):
            found.append(entry)
        else:
            path.unlink(missing_ok=True)
    return sorted(found, key=lambda e: -float(e.get("started", 0)))


def taken_ports() -> set[int]:
    """Dashboard ports held by the local Rays of other live runs."""
    return {int(e["dashboard_port"]) for e in entries()
            if e.get("dashboard_port") and int(e["pid"]) != os.getpid()}


def record(**fields: Any) -> None:
    """Add ``fields`` to this process's entry (written whole); removed when it exits."""
    path = registry() / f"{os.getpid()}.json"
    try:
        entry = json.loads(path.read_text())
    except (OSError, ValueError):
        entry = {"pid": os.getpid(), "started": time.time()}
        atexit.register(path.unlink, missing_ok=True)
    entry.update(fields)
    write_json(path, entry)


def running() -> list[dict[str, Any]]:
    """The local Rays other runs on this machine have started and still hold, newest
    first: entries with ``gcs_address``, ``dashboard_url``, ``name`` and ``pid``."""
    return [e for e in entries() if e.get("gcs_address") and int(e["pid"]) != os.getpid()]
