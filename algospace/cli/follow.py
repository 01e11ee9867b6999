"""``algospace decide CHECKPOINT --follow FILE``: decide on bars as a data feed appends them.

The engine warms up on the complete rows already in FILE, then polls it (every ``--poll``
seconds) for complete new lines — a last line without its newline is not a bar yet — and
takes each as one bar. Each decision goes out as one JSON line (:func:`decision_json`:
time, every agent's action, consensus, gates, target position, the limit that changed
it), appended to ``--out`` and flushed at once. A malformed appended line (or a bar out of
order) is reported with its line number and skipped; the engine keeps following. Ctrl-C
stops it: exit 130, every line of the output whole. The kill file (``--kill-file``) is
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
    """Follow ``args.follow``: warm up, then decide on each new bar until Ctrl-C or the
    kill file."""
    from algospace.data.loader import bars_from_text, parse_line

    if args.poll <= 0:
        raise ConfigError(f"--poll {args.poll}: give seconds > 0")
    path = Path(args.follow).expanduser()
    if not path.is_file():
        raise ConfigError(f"--follow {args.follow}: no such file; pass the bar CSV the feed "
                          "appends to (its header line at least)")
    out = Path(args.out).expanduser() if args.out else \
        home / f"decisions-{path.stem.replace(' ', '_')}.jsonl"
    data = engine.env_config.data
    minutes = int(engine.stream.bar_minutes)
    tail = Tail(path)
    lines = tail.read()
    if not lines:
        raise ConfigError(f"--follow {args.follow}: the file has no complete header line")
    header = lines[0][1]
    dayfirst = data.dayfirst
    if len(lines) > 1:
        text = "\n".join([header, *(t for _, t in lines[1:])]) + "\n"
        history = bars_from_text(text, path, dayfirst=dayfirst,
                                 timestamps=data.timestamps).frame
        dayfirst = history_dayfirst(text, path, history, dayfirst, data.timestamps)
        engine.warm_up(history)
        engine.start = history.index[-1] + pd.Timedelta(minutes=minutes)
    print(f"[decide] following {path}: warmed up on {len(lines) - 1:,} bars; deciding on "
          f"each new bar, one JSON line each to {out}; risk limits: "
          f"{engine.config.limits.describe()}; Ctrl-C stops", flush=True)
    log = JsonLines(out)
    bars = skipped = 0
    try:
        while not engine.check_kill():
            new = tail.read()
            if not new:
                time.sleep(args.poll)
                continue
            for number, text in new:
                try:
                    frame = parse_line(header, text, number, path=path, dayfirst=dayfirst,
                                       timestamps=data.timestamps, bar_minutes=minutes)
                    decision = engine.on_bar(frame.index[0], *frame.iloc[0].to_numpy())
                except DataError as err:
                    skipped += 1
                    where = "" if err.line is not None else f"{path}, line {number}: "
                    print(f"[decide] skipped: {where}{err}", file=sys.stderr, flush=True)
                    continue
                bars += 1
                if decision is not None:
                    log.write(decision_json(decision))
                    limited = f", limited by {decision.limit}" if decision.limit else ""
                    print(f"[decide] {decision.time}: target {decision.target:+d} (position "
                          f"{decision.position:+d}, agents wanted {decision.wanted:+d}"
                          f"{limited})", flush=True)
                if engine.stopped:
                    break
    except KeyboardInterrupt:
        log.close()
        print(f"[decide] interrupted: {bars:,} new bars taken, {skipped:,} line(s) skipped, "
              f"{log.lines:,} decisions written to {out} (every line whole)", file=sys.stderr)
        return 130
    last = engine.decisions[-1] if engine.decisions else None
    log.write({"time": None if last is None else last.time.isoformat(),
               "event": "kill_switch", "target": 0,
               "position": 0 if last is None else int(last.position),
               "wall_time_utc": pd.Timestamp.now(tz="UTC").isoformat(),
               "reason": str(engine.last_reason)})
    log.close()
    print(f"[decide] {engine.last_reason}; {bars:,} new bars taken, {log.lines:,} lines "
          f"written to {out}")
    return 0
