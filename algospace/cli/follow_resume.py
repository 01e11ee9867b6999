"""``algospace decide --follow`` stopped with Ctrl-C, then run again: it continues identically.

The decision engine is deterministic — its decisions are a function of the warm-up history,
the bars taken since and its settings (the MC passes' dropout masks are seeded per clock
step) — so what a follow run must keep to continue is small: which lines of the followed
file were its warm-up history, and the decisions it wrote. When following starts, a JSON
file beside the output (``OUT.follow.json``, :func:`state_path`, written atomically) records
the followed file, the number of its warm-up lines, how many lines the output held before,
and the engine's settings. Run again with the same command, the engine warms up on the same
lines and takes the lines after them again, writing nothing, until it has made every
decision already in the output — each must equal its line there, or the restart stops with
an error — then goes on with the lines after the last of them, writing as before. So no
decision is written twice or lost, and the account, the position, the sessions and the risk
limits' trading day stand exactly where an uninterrupted run would have them (tested:
``tests/test_follow.py``). The cost of a restart is the warm-up plus one pass over the bars
taken since it (milliseconds a bar, tens at a 30-minute close).

An output that ends with the kill switch's line is not continued (the kill flattened the
account outside the replay): pass a new ``--out`` to start afresh.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from algospace.errors import ConfigError, DataError
from algospace.files import atomic_write

STATE_VERSION = 1
"""Bump when the state file's fields change."""
SETTINGS = ("checkpoint", "exported", "mc_passes", "seed", "no_gates", "threshold",
            "max_daily_loss", "max_position", "kill_file")
"""The ``decide`` flags that change decisions: a restart must give the same."""


def state_path(out: Path) -> Path:
    """The follow state file of output ``out``: ``OUT.follow.json`` beside it."""
    return out.with_name(out.name + ".follow.json")


def settings_of(args: argparse.Namespace) -> dict[str, Any]:
    """The flags of :data:`SETTINGS`, paths resolved (a restart may run from elsewhere)."""
    out = {}
    for name in SETTINGS:
        value = getattr(args, name, None)
        if name in ("checkpoint", "exported", "kill_file") and value is not None:
            value = str(Path(value).expanduser().resolve())
        out[name] = value
    return out


@dataclass(frozen=True)
class Resume:
    """What a restart continues from."""

    history_lines: int
    """Line number of the followed file's last warm-up row (1: the header only)."""
    written: list[dict[str, Any]]
    """The decisions the earlier runs of this follow wrote, in order."""


def _output_lines(out: Path) -> list[str]:
    """The output's lines (none if it does not exist); a last line without its newline
    (the process was killed mid-write) is refused."""
    if not out.exists():
        return []
    text = out.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        raise DataError(f"the last line of {out} is cut short (the engine was killed while "
                        "writing it), so the run cannot be continued exactly",
                        fix="pass a new --out to start afresh")
    return text.splitlines()


def start(out: Path, followed: Path, settings: dict[str, Any],
          history_lines: int) -> None:
    """Record a new follow run of ``followed`` into ``out`` (see the module docstring)."""
    state = {"version": STATE_VERSION, "followed": str(followed.resolve()),
             "history_lines": history_lines, "out_lines": len(_output_lines(out)),
             "settings": settings}
    atomic_write(state_path(out), lambda tmp: tmp.write_text(json.dumps(state, indent=1)))


def load(out: Path, followed: Path, settings: dict[str, Any]) -> Resume | None:
    """What a restart continues from (None: no follow run wrote ``out`` yet); a
    :class:`ConfigError` when the command differs from the one that started it."""
    path = state_path(out)
    if not path.exists():
        return None
    fix = (f"run the same command again (the flags and file it was started with), or pass "
           f"a new --out to start afresh (or delete {path})")
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        version, first = state["version"], int(state["out_lines"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(f"{path} is not a follow state file ({err})", fix=fix) from None
    if version != STATE_VERSION:
        raise DataError(f"{path} holds follow state version {version}; this code reads "
                        f"version {STATE_VERSION}", fix="pass a new --out to start afresh")
    if state["followed"] != str(followed.resolve()):
        raise ConfigError(f"{out} holds the decisions of following {state['followed']}, not "
                          f"{followed.resolve()}; Fix: {fix}")
    changed = {k: (state["settings"].get(k), v) for k, v in settings.items()
               if state["settings"].get(k) != v}
    if changed:
        described = ", ".join(f"{k} {was!r} -> {now!r}" for k, (was, now) in changed.items())
        raise ConfigError(f"{out} was written with other settings ({described}); the same "
                          f"command is needed to continue it identically; Fix: {fix}")
    written = []
    lines = _output_lines(out)
    for number, line in enumerate(lines[first:], start=first + 1):
        try:
            record = json.loads(line)
        except ValueError:
            raise DataError(f"{out}, line {number}: not a JSON decision", fix=fix) from None
        if record.get("event") == "kill_switch":
            raise ConfigError(f"{out} ends with the kill switch's line: the engine "
                              "flattened and stopped, so it cannot continue that run; Fix: pass a "
                              "new --out to start afresh")
        written.append(record)
    return Resume(int(state["history_lines"]), written)


def check_replayed(out: Path, written: dict[str, Any], got: dict[str, Any], number: int,
                   line: int, followed: Path) -> None:
    """A decision the restart made again must equal the one written (decision ``number``
    of this follow run); else :class:`DataError`."""
    if json.loads(json.dumps(got)) != written:
        raise DataError(f"{out}: this follow run's decision {number} (at {written.get('time')})"
                        f" differs from the engine's decision again on line {line} of "
                        f"{followed} (at {got.get('time')}): the file or the output changed "
                        "since, so the run cannot be continued exactly",
                        fix="pass a new --out to start afresh")
