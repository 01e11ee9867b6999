"""Errors a user can act on.

Every error raised at a public entry point is an :class:`AlgoSpaceError`: the
command-line interface prints its message after ``error:`` (no traceback) and
exits with status 2. Messages say what was expected, what was found, where,
and how to fix it.
"""

from __future__ import annotations

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
