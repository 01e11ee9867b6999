"""Where Tune writes a run's trials and checkpoints: a local path, a shared one, or a URI.

``output.dir`` always holds what the driver writes (``summary.json``, the reports, W&B's
offline runs, the experiment record). Tune's trials and checkpoints go there too, unless
``output.storage`` names another place: a path every node of a cluster mounts (NFS, …) or
an object-store URI (``s3://bucket/prefix``, ``gs://…``, anything pyarrow opens). On a
cluster, trials on other nodes write their checkpoints straight to that storage, so it
must be reachable from every node; the driver copies the best checkpoint of a URI store
next to the summary, where evaluation and later phases read it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

NETWORK_FILESYSTEMS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "lustre",
                       "gpfs", "beegfs", "9p", "virtiofs", "afs", "ocfs2", "gfs2", "fuse")
"""Filesystem types (``/proc/mounts``) that other machines can mount too."""


def is_uri(location: str) -> bool:
    """Whether ``location`` is a URI (``scheme://…``) rather than a path."""
    return "://" in location


def join(location: str, *parts: str) -> str:
    """``location`` (a path or a URI) with ``parts`` appended."""
    if is_uri(location):
        return "/".join([location.rstrip("/"), *parts])
    return str(Path(location).joinpath(*parts))


def filesystem(location: str) -> tuple[Any, str]:
    """The pyarrow filesystem of a path or URI, and the path within it."""
    import pyarrow.fs

    if not is_uri(location):
        return pyarrow.fs.LocalFileSystem(), str(Path(location).expanduser().resolve())
    return pyarrow.fs.FileSystem.from_uri(location)


def exists(location: str) -> bool:
    """Whether the file or directory ``location`` exists."""
    import pyarrow.fs

    fs, path = filesystem(location)
    return bool(fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound)


def is_local(checkpoint: Any) -> bool:
    """Whether a Tune checkpoint lives on this machine's filesystem."""
    import pyarrow.fs

    return isinstance(checkpoint.filesystem, pyarrow.fs.LocalFileSystem)


def local_checkpoint(checkpoint: Any, dest: Path) -> str:
    """A local directory holding ``checkpoint``: its own path, or a copy in ``dest``."""
    if is_local(checkpoint):
        return str(checkpoint.path)
    dest.mkdir(parents=True, exist_ok=True)
    return str(checkpoint.to_directory(str(dest)))


def delete(checkpoint: Any) -> bool:
    """Delete a Tune checkpoint's directory wherever it is; False if it was gone."""
    import pyarrow.fs

    fs = checkpoint.filesystem
    if fs.get_file_info(checkpoint.path).type != pyarrow.fs.FileType.Directory:
        return False
    fs.delete_dir(checkpoint.path)
    return True


def filesystem_type(path: str) -> str:
    """The type of the filesystem holding ``path`` (``/proc/mounts``; '' where unknown)."""
    mounts = Path("/proc/mounts")
    if not mounts.is_file():
        return ""
    target = Path(path).expanduser().resolve()
    best, kind = -1, ""
    for line in mounts.read_text().splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        if (target == Path(point) or Path(point) in target.parents) and len(point) > best:
            best, kind = len(point), fields[2]
    return kind


def shared(location: str) -> bool:
    """Whether other machines can reach ``location``: a URI, or a network filesystem."""
    if is_uri(location):
        return not location.startswith("file://")
    kind = filesystem_type(location)
    return any(kind == name or kind.startswith(name + ".") for name in NETWORK_FILESYSTEMS)


def describe(location: str) -> str:
    """``location`` with its filesystem type, for messages."""
    if is_uri(location):
        return location
    kind = filesystem_type(location)
    return f"{location} ({kind or 'unknown filesystem'} on {os.uname().nodename})"
