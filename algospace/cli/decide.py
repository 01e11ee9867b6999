"""``algospace decide CHECKPOINT [--data FILE]``: replay bars through the decision engine.

Feeds bars one at a time through :class:`algospace.inference.engine.DecisionEngine`
and writes the decision log (one row per decision: target, order, stop and target,
every agent's action and confidence, the 15 MC features, both gates) as CSV **as it
goes** — each row whole and flushed, so an interrupted replay (Ctrl-C: exit 130) leaves
a valid CSV of the decisions made so far — then prints a summary.

The bars decided: by default the last :data:`DEFAULT_DAYS` trading days of the test split
of the data the checkpoint was trained on (or of ``--data``); ``--start``/``--end`` change
the window. Every bar before it only warms the features up (in bulk, once). Before the
replay it says how many bars it will decide; after the first few it estimates the time
left, then prints progress every ``--progress`` seconds.

``--export DIR`` also writes the actors as TorchScript (checked against the eager ones)
with everything else the engine needs; ``--exported DIR`` replays such an export, with no
checkpoint needed (given one too, its settings are used and only the actors come from DIR).

``--follow FILE`` decides on bars as a feed appends them to FILE, and the risk limits
(``--max-daily-loss``, ``--max-position``, ``--kill-file``) act on every target: see
:mod:`algospace.cli.follow`.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from algospace.cli import follow
from algospace.errors import AlgoSpaceError, ConfigError

DEFAULT_DAYS = 5
"""Trading days decided by default: the last ones of the test split (or of ``--data``)."""
ESTIMATE_BARS = 12
"""Bars timed, after the first (which computes the features over the whole history),
before the estimate is printed: two 30-minute closes, the costlier bars."""


def add_parser(sub: Any) -> None:
    """Register ``algospace decide``."""
    parser = sub.add_parser("decide", help="replay bars through the decision engine")
    parser.add_argument("checkpoint", nargs="?",
                        help="checkpoint directory of a training run (any phase); not "
                             "needed with --exported")
    parser.add_argument("--data", help="bar CSV to replay (default: the test split of the "
                                       "run's own data)")
    parser.add_argument("--start", help="first bar to decide on (default: the start of the "
                                        f"last {DEFAULT_DAYS} trading days of the test split, "
                                        "or of --data); earlier bars warm the features up")
    parser.add_argument("--end", help="decide on bars opening before this time (default: "
                                      "the end of the test split, or of --data)")
    parser.add_argument("--out", help="decision log CSV (default decisions-<data>.csv "
                                      "next to the checkpoint, or next to --exported); "
                                      "with --follow: JSON lines, appended")
    parser.add_argument("--no-gates", action="store_true",
                        help="record the two gates but do not hold trades back (the "
                             "backtest's behaviour)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="gate 2 consensus threshold (default: the gates a test report "
                             "of CHECKPOINT chose on validation, else 0.65; any gate flag "
                             "starts from the defaults)")
    parser.add_argument("--no-synergy-gate", action="store_true",
                        help="record gate 1 (synergy) only: gate 2 decides alone (what an "
                             "evaluation report's gate choice may pick)")
    parser.add_argument("--regime-adjustment", type=float, default=None,
                        help="added to the threshold when the regime agent opposes the "
                             "trade (default 0.05)")
    parser.add_argument("--drawdown-adjustment", type=float, default=None,
                        help="added to the threshold per percent of drawdown (default 0.01)")
    parser.add_argument("--mc-passes", type=int, default=50,
                        help="MC-dropout passes per decision (default 50)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the MC passes")
    parser.add_argument("--progress", type=float, default=10.0, metavar="SECONDS",
                        help="seconds between progress lines (default 10; 0: every bar)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--export", metavar="DIR",
                       help="also write the actors as TorchScript (checked) with the "
                            "engine's settings to DIR")
    group.add_argument("--exported", metavar="DIR",
                       help="replay with the TorchScript actors in DIR (no checkpoint "
                            "needed when DIR was written by --export)")
    follow.add_arguments(parser)
    parser.set_defaults(handler=run)


@dataclass(frozen=True)
class Window:
    """The bars of a replay and the part of them decided on."""

    bars: pd.DataFrame
    """Every bar: history first, then the window."""
    start: pd.Timestamp
    end: pd.Timestamp | None
    name: str
    """Short name of the data (for the default log name)."""
    what: str
    """What the window is, in words."""

    @property
    def history(self) -> pd.DataFrame:
        """Bars before the window: they only warm the features up."""
        return self.bars[self.bars.index < self.start]

    @property
    def todo(self) -> pd.DataFrame:
        """The bars decided on."""
        inside = self.bars.index >= self.start
        if self.end is not None:
            inside &= self.bars.index < self.end
        return self.bars[inside]


def run(args: argparse.Namespace) -> int:
    """Replay, write the log as it goes, print the summary."""
    from algospace.inference.engine import EngineConfig
    from algospace.inference.gates import GateConfig
    from algospace.tune.console import quiet_ray_console

    quiet_ray_console()  # RLlib's own deprecation notice when the actors load
    if args.progress < 0:
        raise ConfigError(f"--progress {args.progress}: give seconds >= 0")
    gates = GateConfig(enforce=not args.no_gates, **_gate_settings(args))
    cfg = EngineConfig(mc_passes=args.mc_passes, gates=gates, seed=args.seed,
                       limits=follow.limits_of(args))
    if cfg.limits.kill_file is not None and Path(cfg.limits.kill_file).expanduser().exists():
        raise ConfigError(f"--kill-file {cfg.limits.kill_file} exists, so the engine would stop "
                          "at once; remove it to start")
    engine, home = _engine(args, cfg)
    if args.follow is not None:
        for flag in ("data", "start", "end", "export"):
            if getattr(args, flag) is not None:
                raise ConfigError(f"--{flag} does not go with --follow: the followed file's "
                                  "rows warm up, its new rows are decided")
        return follow.run(args, engine, home)
    window = _window(args, engine)
    engine.start = window.start
    out = Path(args.out).expanduser() if args.out else home / f"decisions-{window.name}.csv"
    if args.export:
        folder = engine.export(Path(args.export).expanduser())
        print(f"[decide] exported the actors with the engine's settings to {folder} "
              "(TorchScript, outputs checked against the eager modules)")
    todo, history = window.todo, window.history
    if not len(todo):
        raise ConfigError(f"no bar to decide: {window.what} holds none of the "
                          f"{len(window.bars):,} bars; check --start/--end")
    print(f"[decide] {engine.env_name}: {len(todo):,} bars to decide ({window.what}: "
          f"{todo.index[0]} to {todo.index[-1]}), after {len(history):,} bars of history "
          f"that warm the features up; gates {'on' if gates.enforce else 'recorded only'}, "
          f"{cfg.mc_passes} MC passes; risk limits: {cfg.limits.describe()}")
    engine.warm_up(history)
    log = DecisionLog(out)
    try:
        done = _replay(engine, todo, log, args.progress)
    except KeyboardInterrupt:
        log.close()
        print(f"[decide] interrupted: {engine.bars_streamed:,} of {len(todo):,} bars "
              f"decided, {log.rows:,} decisions written to {out if log.rows else '(none)'}"
              " (every row complete)", file=sys.stderr)
        return 130
    except AlgoSpaceError:
        log.close()
        if log.rows:
            print(f"[decide] stopped: {log.rows:,} decisions written to {out} before the "
                  "error", file=sys.stderr)
        raise
    log.close()
    _summary(engine, done, out, len(history))
    return 0


def _gate_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The gate flags given; without any, the gates a test report of the checkpoint chose
    on validation (``algospace evaluate``, or the run's final evaluation), said aloud."""
    from algospace.evaluation.gate_choice import setting_label

    given: dict[str, Any] = {k: getattr(args, k) for k in (
        "threshold", "regime_adjustment", "drawdown_adjustment") if getattr(args, k) is not None}
    if args.no_synergy_gate:
        given["synergy_gate"] = False
    if given or args.checkpoint is None:
        return given
    found = chosen_for(args.checkpoint)
    if found is None:
        print("[decide] gates: the defaults (both gates, threshold 0.65): no test report of "
              "this checkpoint chose them on validation (algospace evaluate CHECKPOINT "
              "does); the gate flags set them")
        return {}
    chosen, report = found
    print(f"[decide] gates chosen on validation by {report}: {setting_label(chosen)} "
          "(the gate flags override)")
    return chosen


def chosen_for(checkpoint: str | Path) -> tuple[dict[str, Any], Path] | None:
    """The gate settings a test report of ``checkpoint`` chose on validation, and that
    report: the newest ``evaluation-test*/report.json`` of this checkpoint in its run folder
    (or next to it) whose gates were chosen on validation; None when there is none."""
    from algospace.evaluation.gate_choice import SETTING_KEYS
    from algospace.evaluation.report import run_folder

    ck = Path(checkpoint).expanduser().resolve()
    found: list[tuple[float, Path, dict[str, Any]]] = []
    for path in sorted((run_folder(ck) or ck.parent).glob("evaluation-test*/report.json")):
        report = json.loads(path.read_text())
        u = report.get("uncertainty") or {}
        if Path(report.get("checkpoint", "")).resolve() == ck \
                and u.get("threshold_chosen_on") == "val" and "gates" in u:
            found.append((path.stat().st_mtime, path, u["gates"]))
    if not found:
        return None
    _, path, gates = max(found, key=lambda f: (f[0], str(f[1])))
    return {k: gates[k] for k in SETTING_KEYS}, path


def _engine(args: argparse.Namespace, cfg: Any) -> tuple[Any, Path]:
    """The engine, and the folder the log goes to by default."""
    from algospace.inference.engine import DecisionEngine

    if args.checkpoint is None:
        if args.exported is None:
            raise ConfigError("give a CHECKPOINT (a training run's checkpoint directory), "
                              "or --exported DIR (an export written by --export)")
        folder = Path(args.exported).expanduser()
        return DecisionEngine.from_export(folder, config=cfg), folder.resolve().parent
    checkpoint = Path(args.checkpoint).expanduser()
    engine = DecisionEngine.from_checkpoint(checkpoint, config=cfg, exported=args.exported,
                                            log=print)
    return engine, checkpoint.resolve().parent


def default_start(open_time: pd.DatetimeIndex, days: int = DEFAULT_DAYS) -> pd.Timestamp:
    """Open time of the first bar of the last ``days`` trading days of ``open_time``."""
    from algospace.data.calendar import trading_day

    day = trading_day(open_time)
    first = day.unique()[-days:][0]
    return open_time[int(np.searchsorted(day, first))]


def _window(args: argparse.Namespace, engine: Any) -> Window:
    """The bars to replay and the window decided on."""
    from algospace.data.loader import load_bars
    from algospace.features.pipeline import prepare

    data = engine.env_config.data
    end = _time(args.end, "--end")
    if args.data is None:
        prepared = prepare(data)
        lo, hi = prepared.splits.range("test")
        bars, split = prepared.base.frame, prepared.base.open_time[lo:hi]
        name, what = "test-split", f"the last {DEFAULT_DAYS} trading days of the test split"
    else:
        path = Path(args.data).expanduser()
        if not path.is_file():
            raise ConfigError(f"--data {args.data}: no such file; pass a bar CSV "
                              "(Timestamp,Open,High,Low,Close,Volume)")
        loaded = load_bars(path, dayfirst=data.dayfirst, timestamps=data.timestamps)
        trained = int(engine.stream.bar_minutes)
        if loaded.bar_minutes != trained:
            raise ConfigError(f"--data {args.data} has {loaded.bar_minutes}-minute bars; the "
                              f"agents were trained on {trained}-minute bars")
        bars, split = loaded.frame, loaded.open_time
        name, what = path.stem.replace(" ", "_"), f"the last {DEFAULT_DAYS} trading days"
    start = _time(args.start, "--start")
    if start is None:
        start = default_start(split)
        end = split[-1] + pd.Timedelta(minutes=1) if end is None else end
    else:
        what = f"from --start {args.start}"
    if args.end is not None:
        what += f" to --end {args.end}"
    return Window(bars, start, end, name, what)


def _time(value: str | None, flag: str) -> pd.Timestamp | None:
    """A ``--start``/``--end`` time, or a clear error."""
    if value is None:
        return None
    try:
        return pd.Timestamp(value)
    except ValueError:
        raise ConfigError(f"{flag} {value!r} is not a time; write e.g. 2024-03-01 or "
                          "'2024-03-01 09:30'") from None


class DecisionLog:
    """The decision log CSV, written row by row: header with the first row, each row whole
    and flushed (a reader, or an interrupted run, only ever sees complete rows)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0
        self._file: IO[str] | None = None
        self._columns: list[str] = []

    def write(self, row: dict[str, Any]) -> None:
        """Append one decision (:meth:`~algospace.inference.decision.Decision.row`)."""
        if self._file is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("w", encoding="utf-8", newline="")
            except OSError as err:
                raise ConfigError(f"cannot write the decision log {self.path} "
                                  f"({err.strerror}); pass a writable --out FILE") from None
            self._columns = list(row)
        elif list(row) != self._columns:
            raise ConfigError(f"decision {self.rows + 1} has other columns than the first; "
                              f"{self.path} holds the {self.rows} decisions before it")
        text = io.StringIO()
        pd.DataFrame([row], columns=self._columns).to_csv(text, index=False,
                                                          header=self.rows == 0)
        self._file.write(text.getvalue())
        self._file.flush()
        self.rows += 1

    def close(self) -> None:
        """Close the file (if a row was written)."""
        if self._file is not None:
            self._file.close()
            self._file = None


def _replay(engine: Any, todo: pd.DataFrame, log: DecisionLog, every: float) -> float:
    """Stream ``todo`` through the engine, logging each decision and the progress;
    the seconds the bars after the first took."""
    values = todo[["open", "high", "low", "close", "volume"]].to_numpy(np.float64)
    n = len(values)
    began = time.perf_counter()
    timed_from, last_line = began, began
    for i, (when, row) in enumerate(zip(todo.index, values, strict=True)):
        decision = engine.on_bar(when, *row)
        if decision is not None:
            log.write(decision.row())
        if engine.stopped:
            print(f"[decide] {engine.last_reason} (at the bar opening {when})")
            break
        now = time.perf_counter()
        if i == 0:
            print(f"[decide] features computed over the history with the first bar in "
                  f"{now - began:.1f} s")
            timed_from = last_line = now
        elif i == ESTIMATE_BARS or (i < ESTIMATE_BARS and i == n - 1):
            per_bar = (now - timed_from) / i
            print(f"[decide] estimate: {_duration(per_bar * (n - 1 - i))} for the "
                  f"{n - 1 - i:,} bars left ({per_bar * 1e3:,.0f} ms per bar over "
                  f"the first {i})")
            last_line = now
        elif i > ESTIMATE_BARS and (now - last_line >= every or i == n - 1):
            per_bar = (now - timed_from) / i
            print(f"[decide] {i + 1:,}/{n:,} bars ({100 * (i + 1) / n:.0f} %), "
                  f"{log.rows:,} decisions, {per_bar * 1e3:,.0f} ms per bar, "
                  f"{_duration(per_bar * (n - 1 - i))} left")
            last_line = now
    return time.perf_counter() - began


def _duration(seconds: float) -> str:
    """``1 h 05 min``, ``3 min 20 s`` or ``12 s``."""
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"


def _counted(decisions: pd.DataFrame, steps: int) -> str:
    """Which bars the decisions are, and how many of them lie in complete sessions (those
    are the steps a backtest of the same bars runs: its whole tiles)."""
    per = decisions.groupby("session").size()
    whole = per[per == steps]
    return (f"one a clock step, at the bar closes from {decisions['time'].iloc[0]} to "
            f"{decisions['time'].iloc[-1]} ({len(per):,} sessions); {int(whole.sum()):,} in "
            f"the {len(whole):,} complete ones of {steps:,} steps, which a backtest of the "
            "same bars also counts (it runs whole tiles only)")


def _summary(engine: Any, seconds: float, out: Path, warm: int) -> None:
    """The replay's figures."""
    from algospace.evaluation.metrics import compute_metrics, to_dict
    from algospace.evaluation.table import metric_rows

    replay = engine.replay()
    if not len(replay.decisions):
        raise ConfigError(f"no decision was made: the bars never gave a tradeable step in "
                          f"the window ({engine.last_reason}); the features need about two "
                          f"weeks of history before it ({warm:,} bars were given)")
    metrics = compute_metrics(replay.equity, positions=replay.positions, trades=replay.trades,
                              initial_equity=engine.env_config.initial_equity)
    counts = replay.gate_counts
    last = replay.decisions.iloc[-1]
    print(f"[decide] {counts['decisions']:,} decisions in {replay.sessions} sessions, "
          f"{metrics.trades} trades, net P&L ${metrics.net_pnl:,.0f}, Sharpe "
          f"{metrics.sharpe:.2f}; {_duration(seconds)}, {replay.seconds_per_bar * 1e3:.1f} ms "
          "per bar")
    for line in metric_rows([("agents, gated" if engine.config.gates.enforce else "agents",
                              to_dict(metrics))]):
        print(f"[decide] {line}")
    print(f"[decide] decisions counted: {_counted(replay.decisions, engine.env.episode_steps)}")
    p50, p99 = np.percentile(replay.decision_us, [50, 99])
    print(f"[decide] decision step (agents, {engine.config.mc_passes} MC passes, gates; "
          f"without the feature update) p50 {p50:,.0f} µs, p99 {p99:,.0f} µs")
    print(f"[decide] gate 1 (synergy) closed at {counts['synergy_closed']:,}, gate 2 "
          f"(consensus) closed at {counts['consensus_closed']:,} decisions; "
          f"{counts['held_back']:,} trades held back")
    print(f"[decide] last decision at {last['time']}: position {last['position']}, "
          f"target {last['target']} (order {last['order']:+d}), gates synergy="
          f"{bool(last['gate_synergy'])} consensus={bool(last['gate_consensus'])}")
    print(f"[decide] decision log: {out}")
