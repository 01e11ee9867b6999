"""``algospace decide CHECKPOINT --follow FILE``: decide on bars as a data feed appends them.

The engine warms up on the complete rows already in FILE, then polls it (every ``--poll``
seconds) for complete new lines — a last line without its newline is not a bar yet — and
takes each as one bar. Each decision goes out as one JSON line (:func:`decision_json`:
time, every agent's action, consensus, gates, target position, the limit that changed
it), appended to ``--out`` and flushed at once. A malformed appended line (or a bar out of
order) is reported with its line number and skipped; the engine keeps following. Ctrl-C
stops it: exit 130, every line of the output whole; the same command run again continues
that run exactly — no decision written twice or lost, the account, position and risk
limits where they stood (:mod:`algospace.cli.follow_resume`). The kill file (``--kill-file``) is
checked at every poll and every bar: its presence writes a last line with target 0 and
stops the engine (exit 0); that line's ``time`` is the last decision's (null if none),
its ``position`` the one held then.

The risk-limit flags (``--max-daily-loss``, ``--max-position``, ``--kill-file``) apply to a
replay (``--data``) too; see :mod:`algospace.market.limits`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import IO, Any

import pandas as pd

from algospace.errors import ConfigError, DataError
from algospace.market.limits import RiskLimits

POLL_SECONDS = 1.0
"""Default seconds between two looks at the followed file."""
SKIPPED = object()
"""A followed line that is not a bar (reported and skipped)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The follow and risk-limit flags of ``algospace decide``."""
    parser.add_argument("--follow", metavar="FILE",
                        help="decide on each complete bar a feed appends to this CSV, as it "
                             "arrives (the rows already there warm the features up); one "
                             "JSON line per decision goes to --out")
    parser.add_argument("--poll", type=float, default=POLL_SECONDS, metavar="SECONDS",
                        help=f"with --follow: seconds between looks at FILE (default "
                             f"{POLL_SECONDS:g})")
    parser.add_argument("--max-daily-loss", type=float, metavar="USD",
                        help="flat for the rest of the trading day once its loss reaches USD")
    parser.add_argument("--max-position", type=int, metavar="N",
                        help="hold at most N contracts, long or short")
    parser.add_argument("--kill-file", metavar="PATH",
                        help="if PATH exists: target 0 (flatten) and stop")


def limits_of(args: argparse.Namespace) -> RiskLimits:
    """The risk limits the flags ask for."""
    return RiskLimits(max_daily_loss=args.max_daily_loss, max_position=args.max_position,
                      kill_file=args.kill_file)


def _clean(value: Any) -> Any:
    """A JSON-safe value: NaN and infinities become null, NumPy scalars plain numbers."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def decision_json(decision: Any) -> dict[str, Any]:
    """One decision as the follow mode's JSON line (a dict)."""
    g = decision.gates
    return {
        "time": decision.time.isoformat(), "clock": int(decision.clock),
        "session": int(decision.session), "position": int(decision.position),
        "target": int(decision.target), "order": int(decision.order),
        "wanted": int(decision.wanted), "limit": decision.limit,
        "actions": decision.actions,
        "confidence": {a: _clean(c) for a, c in decision.confidence.items()},
        "consensus": _clean(g.consensus), "threshold": _clean(g.threshold),
        "gates": {"synergy": bool(g.synergy_open), "consensus": bool(g.consensus_open),
                  "held_back": bool(g.held_back)},
        "stop_price": _clean(decision.stop_price), "target_price": _clean(decision.target_price),
        "close": _clean(decision.close), "equity": _clean(decision.equity),
    }


class JsonLines:
    """The output: one JSON object a line, appended and flushed line by line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file: IO[str] = path.open("a", encoding="utf-8")
        except OSError as err:
            raise ConfigError(f"cannot write the decisions to {path} ({err.strerror}); pass "
                              "a writable --out FILE") from None

    def write(self, record: dict[str, Any]) -> None:
        """Append one line and flush it."""
        self._file.write(json.dumps(record, allow_nan=False) + "\n")
        self._file.flush()
        self.lines += 1

    def close(self) -> None:
        self._file.close()


class Tail:
    """The complete lines appended to a file since the last look, with their numbers."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.number = 0
        self._partial = b""

    def read(self) -> list[tuple[int, str]]:
        """New complete lines (a last line without its newline waits for it)."""
        try:
            size = self.path.stat().st_size
            if size < self.offset:
                raise DataError(f"the file shrank from {self.offset:,} to {size:,} bytes while "
                                "followed", path=self.path,
                                fix="a feed may only append; restart on the new file")
            with self.path.open("rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except OSError as err:
            raise DataError(f"cannot read the followed file ({err.strerror})",
                            path=self.path) from None
        self.offset += len(chunk)
        parts = (self._partial + chunk).split(b"\n")
        self._partial = parts.pop()
        out = []
        for raw in parts:
            self.number += 1
            text = raw.decode("utf-8-sig" if self.number == 1 else "utf-8",
                              errors="replace").rstrip("\r")
            if text.strip():
                out.append((self.number, text))
        return out


def history_dayfirst(text: str, path: Path, history: pd.DataFrame, dayfirst: bool | None,
                     timestamps: Any) -> bool | None:
    """Whether the file writes day-first dates, as its rows already there showed (the
    loader detects it over many rows; one appended row like ``03/02/2020`` alone cannot
    tell). ``dayfirst`` when given; True when reading day-first gives the same times."""
    from algospace.data.loader import bars_from_text

    if dayfirst is not None:
        return dayfirst
    try:
        same = bars_from_text(text, path, dayfirst=True, timestamps=timestamps).frame.index
    except DataError:
        return False
    return bool(same.equals(history.index))


def run(args: argparse.Namespace, engine: Any, home: Path) -> int:
    """Follow ``args.follow``: warm up (or continue an interrupted run, see
    :mod:`algospace.cli.follow_resume`), then decide on each new bar until Ctrl-C or the
    kill file."""
    from algospace.cli import follow_resume

    if args.poll <= 0:
        raise ConfigError(f"--poll {args.poll}: give seconds > 0")
    path = Path(args.follow).expanduser()
    if not path.is_file():
        raise ConfigError(f"--follow {args.follow}: no such file; pass the bar CSV the feed "
                          "appends to (its header line at least)")
    out = Path(args.out).expanduser() if args.out else \
        home / f"decisions-{path.stem.replace(' ', '_')}.jsonl"
    settings = follow_resume.settings_of(args)
    resume = follow_resume.load(out, path, settings)
    follow = _Follow(engine, path, out)
    try:
        history = follow.warm_up(None if resume is None else resume.history_lines)
        if resume is None:
            follow_resume.start(out, path, settings, follow.last_history)
            resumed = ""
        else:
            follow.catch_up(resume.written)
            resumed = (f"; continuing the run in {out}: its {len(resume.written):,} "
                       "decisions made again and checked")
    except KeyboardInterrupt:
        print(f"[decide] interrupted before following: nothing written to {out}",
              file=sys.stderr)
        return 130
    print(f"[decide] following {path}: warmed up on {history:,} bars{resumed}; deciding on "
          f"each new bar, one JSON line each to {out}; risk limits: "
          f"{engine.config.limits.describe()}; Ctrl-C stops (the same command continues)",
          flush=True)
    log = JsonLines(out)
    try:
        follow.loop(log, args.poll)
    except KeyboardInterrupt:
        log.close()
        print(f"[decide] interrupted: {follow.bars:,} new bars taken, {follow.skipped:,} "
              f"line(s) skipped, {log.lines:,} decisions written to {out} (every line whole);"
              f" the same command continues this run ({follow_resume.state_path(out).name})",
              file=sys.stderr)
        return 130
    last = engine.decisions[-1] if engine.decisions else None
    log.write({"time": None if last is None else last.time.isoformat(),
               "event": "kill_switch", "target": 0,
               "position": 0 if last is None else int(last.position),
               "wall_time_utc": pd.Timestamp.now(tz="UTC").isoformat(),
               "reason": str(engine.last_reason)})
    log.close()
    print(f"[decide] {engine.last_reason}; {follow.bars:,} new bars taken, {log.lines:,} "
          f"lines written to {out}")
    return 0


class _Follow:
    """The followed file's lines through the engine."""

    def __init__(self, engine: Any, path: Path, out: Path) -> None:
        self.engine, self.path, self.out = engine, path, out
        self.data = engine.env_config.data
        self.minutes = int(engine.stream.bar_minutes)
        self.tail = Tail(path)
        self.header = ""
        self.dayfirst = self.data.dayfirst
        self.last_history = 1
        """Line number of the last warm-up row (1: the header)."""
        self.pending: list[tuple[int, str]] = []
        """Lines read after the warm-up, not taken yet."""
        self.bars = self.skipped = 0

    def warm_up(self, last_history: int | None) -> int:
        """Warm up on the rows already there (up to line ``last_history`` when given);
        the warm-up bars."""
        from algospace.data.loader import bars_from_text

        lines = self.tail.read()
        if not lines:
            raise ConfigError(f"--follow {self.path}: the file has no complete header line")
        self.header = lines[0][1]
        self.last_history = lines[-1][0] if last_history is None else last_history
        if lines[-1][0] < self.last_history:
            raise DataError(f"the file has {lines[-1][0]:,} lines, fewer than the "
                            f"{self.last_history:,} this follow run warmed up on",
                            path=self.path,
                            fix="a feed may only append; pass a new --out to start afresh")
        rows = [t for n, t in lines[1:] if n <= self.last_history]
        self.pending = [(n, t) for n, t in lines[1:] if n > self.last_history]
        if rows:
            text = "\n".join([self.header, *rows]) + "\n"
            data = self.data
            history = bars_from_text(text, self.path, dayfirst=self.dayfirst,
                                     timestamps=data.timestamps).frame
            self.dayfirst = history_dayfirst(text, self.path, history, self.dayfirst,
                                             data.timestamps)
            self.engine.warm_up(history)
            self.engine.start = history.index[-1] + pd.Timedelta(minutes=self.minutes)
        return len(rows)

    def take(self, number: int, text: str, report: bool) -> Any:
        """The decision on one line's bar (None: none; :data:`SKIPPED`: not a bar)."""
        from algospace.data.loader import parse_line

        try:
            frame = parse_line(self.header, text, number, path=self.path,
                               dayfirst=self.dayfirst, timestamps=self.data.timestamps,
                               bar_minutes=self.minutes)
            return self.engine.on_bar(frame.index[0], *frame.iloc[0].to_numpy())
        except DataError as err:
            if report:
                where = "" if err.line is not None else f"{self.path}, line {number}: "
                print(f"[decide] skipped: {where}{err}", file=sys.stderr, flush=True)
            return SKIPPED

    def catch_up(self, written: list[dict[str, Any]]) -> None:
        """Take the interrupted run's bars again, writing nothing, until its ``written``
        decisions are made again (each checked against its line)."""
        from algospace.cli import follow_resume

        again = taken = 0
        while taken < len(self.pending) and again < len(written):
            number, text = self.pending[taken]
            taken += 1
            decision = self.take(number, text, report=False)
            if decision is not None and decision is not SKIPPED:
                follow_resume.check_replayed(self.out, written[again], decision_json(decision),
                                             again + 1, number, self.path)
                again += 1
        del self.pending[:taken]
        if again < len(written):
            raise DataError(f"{self.out} holds {len(written):,} decisions of this follow run, "
                            f"but the bars after the warm-up give {again:,}", path=self.path,
                            fix="pass a new --out to start afresh")

    def loop(self, log: JsonLines, poll: float) -> None:
        """Decide on each new line until the kill file stops the engine."""
        engine = self.engine
        while not engine.check_kill():
            new, self.pending = self.pending or self.tail.read(), []
            if not new:
                time.sleep(poll)
                continue
            for number, text in new:
                decision = self.take(number, text, report=True)
                if decision is SKIPPED:
                    self.skipped += 1
                    continue
                self.bars += 1
                if decision is not None:
                    log.write(decision_json(decision))
                    limited = f", limited by {decision.limit}" if decision.limit else ""
                    print(f"[decide] {decision.time}: target {decision.target:+d} (position "
                          f"{decision.position:+d}, agents wanted {decision.wanted:+d}"
                          f"{limited})", flush=True)
                if engine.stopped:
                    break
