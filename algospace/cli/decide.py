"""``algospace decide CHECKPOINT [--data FILE]``: replay bars through the decision engine.

Feeds the bars of a CSV (or, without ``--data``, the test split of the data the
checkpoint was trained on) one at a time through
:class:`algospace.inference.engine.DecisionEngine` and writes the decision log
(one row per decision: target, order, stop and target, every agent's action and
confidence, the 15 MC features, both gates) as CSV, then prints a summary.
``--export DIR`` also writes the actors as TorchScript (checked against the
eager ones); ``--exported DIR`` replays with such an export instead.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from algospace.errors import ConfigError
from algospace.files import atomic_write


def add_parser(sub: Any) -> None:
    """Register ``algospace decide``."""
    parser = sub.add_parser("decide", help="replay bars through the decision engine")
    parser.add_argument("checkpoint", help="checkpoint directory of a training run (any phase)")
    parser.add_argument("--data", help="bar CSV to replay (default: the test split of the "
                                       "run's own data)")
    parser.add_argument("--start", help="first bar the engine may trade on (default: the "
                                        "test split's start, or 14 days into --data)")
    parser.add_argument("--out", help="decision log CSV (default decisions-<data>.csv "
                                      "next to the checkpoint)")
    parser.add_argument("--no-gates", action="store_true",
                        help="record the two gates but do not hold trades back (the "
                             "backtest's behaviour)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="gate 2 consensus threshold (default 0.65)")
    parser.add_argument("--mc-passes", type=int, default=50,
                        help="MC-dropout passes per decision (default 50)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the MC passes")
    parser.add_argument("--export", metavar="DIR",
                        help="also write the actors as TorchScript to DIR (checked)")
    parser.add_argument("--exported", metavar="DIR",
                        help="replay with the TorchScript actors in DIR")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Replay, write the log, print the summary."""
    from algospace.evaluation.metrics import compute_metrics
    from algospace.inference.engine import DecisionEngine, EngineConfig
    from algospace.inference.gates import GateConfig

    gates = GateConfig(enforce=not args.no_gates,
                       **({} if args.threshold is None else {"threshold": args.threshold}))
    cfg = EngineConfig(mc_passes=args.mc_passes, gates=gates, seed=args.seed)
    checkpoint = Path(args.checkpoint).expanduser()
    engine = DecisionEngine.from_checkpoint(checkpoint, config=cfg, exported=args.exported,
                                            log=print)
    bars, start, name = _bars(args, engine)
    engine.start = start
    out = Path(args.out).expanduser() if args.out else checkpoint.parent / f"decisions-{name}.csv"
    if args.export:
        _export(checkpoint, Path(args.export).expanduser())
    warm = int((bars.index < start).sum())
    print(f"[decide] {engine.env_name}: {len(bars):,} bars of {name} ({warm:,} warm the "
          f"features up), trading from {start}; gates {'on' if gates.enforce else 'recorded only'}"
          f", {cfg.mc_passes} MC passes")
    replay = engine.run(bars, progress=print)
    if not len(replay.decisions):
        raise ConfigError(f"no decision was made: the {len(bars):,} bars never gave a "
                          "tradeable step after --start (the features need about two weeks "
                          "of history first)")
    atomic_write(out, lambda tmp: replay.decisions.to_csv(tmp, index=False))
    metrics = compute_metrics(replay.equity, positions=replay.positions, trades=replay.trades,
                              initial_equity=engine.env_config.initial_equity)
    counts = replay.gate_counts
    last = replay.decisions.iloc[-1]
    print(f"[decide] {counts['decisions']:,} decisions in {replay.sessions} sessions, "
          f"{metrics.trades} trades, net P&L ${metrics.net_pnl:,.0f}, Sharpe "
          f"{metrics.sharpe:.2f}, {replay.seconds_per_bar * 1e3:.1f} ms per bar")
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
    return 0


def _bars(args: argparse.Namespace, engine: Any) -> tuple[pd.DataFrame, pd.Timestamp, str]:
    """The bars to replay, the first tradeable time, and a short name of the data."""
    from algospace.data.loader import load_bars
    from algospace.features.pipeline import prepare

    data = engine.env_config.data
    if args.data is None:
        prepared = prepare(data)
        lo, _ = prepared.splits.range("test")
        start = pd.Timestamp(args.start) if args.start else prepared.base.open_time[lo]
        name = "test-split"
        return prepared.base.frame, start, name
    path = Path(args.data).expanduser()
    if not path.is_file():
        raise ConfigError(f"--data {args.data}: no such file; pass a bar CSV "
                          "(Timestamp,Open,High,Low,Close,Volume)")
    bars = load_bars(path, dayfirst=data.dayfirst, timestamps=data.timestamps)
    trained = int(engine.stream.bar_minutes)
    if bars.bar_minutes != trained:
        raise ConfigError(f"--data {args.data} has {bars.bar_minutes}-minute bars; the agents "
                          f"were trained on {trained}-minute bars")
    first = bars.open_time[0]
    start = pd.Timestamp(args.start) if args.start else first + pd.Timedelta(days=14)
    return bars.frame, start, path.stem.replace(" ", "_")


def _export(checkpoint: Path, folder: Path) -> None:
    """Write the checkpoint's actors as TorchScript to ``folder`` (checked)."""
    from algospace.inference.export import export_actors
    from algospace.training.checkpoint import load_actors

    export_actors(load_actors(checkpoint), folder)
    print(f"[decide] exported the actors to {folder} (TorchScript, outputs checked against "
          "the eager modules)")
