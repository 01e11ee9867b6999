"""Errors a user can act on.

Every error raised at a public entry point is an :class:`AlgoSpaceError`: the
command-line interface prints its message after ``error:`` (no traceback) and
exits with status 2. Messages say what was expected, what was found, where,
and how to fix it.

An :class:`OperationalError` is one whose cause lies outside the run's input: Ray that does
not start, a cluster that does not answer, a port already taken, a full disk. The command
line prints it the same way and writes the full traceback to a log file, named in the
``error:`` line. :func:`operational` turns the few outside failures it knows (an ``OSError``
of a full, read-only or forbidden file system) into one; every other exception passes
unchanged, so a bug still shows its traceback.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from pathlib import Path


class AlgoSpaceError(Exception):
    """Base class of errors caused by user input (files, config, arguments)."""


class ConfigError(AlgoSpaceError, ValueError):
    """A configuration value or YAML key is wrong."""


class DataError(AlgoSpaceError, ValueError):
    """A data file cannot be used; the message names file, line and column."""

    def __init__(
        self,
        problem: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        column: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.problem = problem
        self.path = None if path is None else str(path)
        self.line = line
        self.column = column
        self.fix = fix
        where = []
        if self.path is not None:
            where.append(self.path)
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column!r}")
        message = (": ".join([", ".join(where), problem]) if where else problem)
        if fix:
            message = f"{message}. Fix: {fix}"
        super().__init__(message)


class CheckpointError(AlgoSpaceError, FileNotFoundError):
    """A checkpoint is missing, incomplete, or does not fit the run that loads it."""


class OperationalError(AlgoSpaceError):
    """Something outside the run's input stopped it (Ray, the network, the disk).

    ``log_dir``: the folder where the command line writes the traceback (the run's folder,
    or ``<output.dir>/<name>/errors`` before it exists); None: a folder of its own choice.
    """

    def __init__(self, message: str, *, log_dir: str | Path | None = None) -> None:
        super().__init__(" ".join(message.split()))  # one line
        self.log_dir = None if log_dir is None else Path(log_dir)


DISK_ERRNOS = {errno.ENOSPC: "no space left on the device",
               errno.EDQUOT: "the disk quota is exceeded",
               errno.EROFS: "the file system is read-only",
               errno.EACCES: "permission denied",
               errno.EPERM: "operation not permitted"}
"""The ``OSError`` numbers :func:`operational` reports as operational failures."""


def disk_problem(err: OSError) -> str | None:
    """What a failed write means for the user, or None when ``err`` is no disk problem."""
    what = DISK_ERRNOS.get(err.errno or 0)
    if what is None:
        return None
    where = f" ({err.filename})" if err.filename else ""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = "free space there, or set output.dir (and data.cache_dir) to another disk"
    else:
        fix = "make the folder writable, or set output.dir (and data.cache_dir) elsewhere"
    return f"{what}{where}; {fix}, then run again (--resume continues an unfinished run)"


@contextlib.contextmanager
def operational(log_dir: str | Path | None) -> Iterator[None]:
    """Within the block, a full, read-only or forbidden disk (``OSError``, see
    :data:`DISK_ERRNOS`) becomes an :class:`OperationalError`; an operational error
    without a ``log_dir`` gets this one. Everything else passes unchanged."""
    try:
        yield
    except OperationalError as err:
        if err.log_dir is None and log_dir is not None:
            err.log_dir = Path(log_dir)
        raise
    except OSError as err:
        problem = disk_problem(err)
        if problem is None:
            raise
        raise OperationalError(problem, log_dir=log_dir) from err
