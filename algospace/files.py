"""Atomic writes: the one home of write-to-a-temporary-then-rename.

A reader (another process, a crashed run's resume) sees either the old file or
the complete new one, never half of it. Files are written next to their target
(the rename is then atomic on the same file system) under a dot-name that
carries the process id, and removed if the write fails. :func:`locked` serialises the
read-modify-write of a file that several processes update (a store entry's ``meta.json``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_dir", "atomic_write", "locked", "numbered", "publish_dir", "publish_numbered",
           "write_bytes", "write_json", "write_text"]


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary path beside ``path``, then rename it onto ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp",
                                dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any, *, indent: int | None = 2,
               default: Callable[[Any], Any] | None = None) -> Path:
    """Write ``obj`` as JSON (with a trailing newline) to ``path`` atomically."""
    return write_text(path, json.dumps(obj, indent=indent, default=default) + "\n")


def _temporary_folder(target: Path, *, prefix: str | None = None, suffix: str = ".tmp"
                      ) -> Path:
    """A new empty folder beside ``target`` (its parent created), named
    ``.<name>.<pid>.<random><suffix>`` unless ``prefix`` is given."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix or f".{target.name}.{os.getpid()}.",
                                 suffix=suffix, dir=target.parent))


def atomic_dir(path: str | os.PathLike[str], fill: Callable[[Path], object]) -> Path:
    """Fill a temporary folder beside ``path`` with ``fill(tmp)``, then rename it onto ``path``.

    An existing ``path`` is replaced only after the new folder is complete.
    """
    target = Path(path)
    tmp = _temporary_folder(target)
    try:
        fill(tmp)
        if target.exists():
            old = target.with_name(f".{target.name}.{os.getpid()}.old")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def publish_dir(path: str | os.PathLike[str], fill: Callable[[Path], object], *,
                prefix: str | None = None) -> bool:
    """Fill a temporary folder beside ``path``, then rename it to ``path`` unless another
    process got there first (its copy is kept: it holds the same content).

    Returns True when this call published the folder. ``prefix`` names the temporary folder
    (default ``.<name>.<pid>.``) so that a cleaner can find leftovers of killed writers.
    """
    target = Path(path)
    tmp = _temporary_folder(target, prefix=prefix, suffix="")
    try:
        fill(tmp)
        try:
            os.rename(tmp, target)
        except OSError:  # another process won the race
            if not target.is_dir():
                raise
            return False
        return True
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def numbered(base: str | os.PathLike[str], n: int) -> Path:
    """``base`` for ``n`` = 1, else ``base`` with ``-n`` appended to its name."""
    path = Path(base)
    return path if n == 1 else path.with_name(f"{path.name}-{n}")


def publish_numbered(base: str | os.PathLike[str], fill: Callable[[Path], object]) -> Path:
    """Fill a temporary folder beside ``base``, then rename it to the first of ``base``,
    ``base-2``, ``base-3``, … that is free *at the rename* — never over another folder.

    Two processes that finish at the same moment get two names: a rename onto a folder
    that holds files fails, and the next name is tried. Returns the folder's path.
    """
    target = Path(base)
    tmp = _temporary_folder(target)
    try:
        fill(tmp)
        n = 1
        while True:
            candidate = numbered(target, n)
            if not candidate.exists():
                try:
                    os.rename(tmp, candidate)  # fails on a folder with files in it
                    return candidate
                except OSError:
                    if not candidate.exists():
                        raise
            n += 1
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def locked(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created if missing) for the block.

    Other processes (and threads) entering ``locked`` on the same path wait until it is
    released; the operating system releases it when its holder dies, so a killed writer
    never leaves the lock taken. Use it around a read-modify-write of a shared file.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
