"""``algospace evaluate CHECKPOINT`` (also ``python -m experiments.evaluate``).

Runs the trained agents of a checkpoint over a split of their data (or of
another CSV) and writes ``report.json``, the PNGs and ``report.html`` (see
:mod:`algospace.evaluation.report`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

DESCRIPTION = ("Backtest a checkpoint's agents on a split of their data (or on another bar "
               "CSV) and write report.json, the PNGs and report.html.")


def build_parser(prog: str = "python -m experiments.evaluate") -> argparse.ArgumentParser:
    """The command line of ``experiments.evaluate`` (``prog``: the name its usage shows)."""
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m experiments.evaluate``; input errors exit 2."""
    from algospace.cli.status import exit_status

    args = build_parser().parse_args(argv)
    return exit_status(lambda: run(args))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The evaluate command's arguments."""
    parser.add_argument("checkpoint", help="checkpoint directory of a training run")
    parser.add_argument("--split", choices=["test", "val", "train"], default="test",
                        help="split to evaluate on (default test)")
    parser.add_argument("--data", help="a bar CSV to evaluate on instead of the run's data")
    parser.add_argument("--symbol", help="contract of --data (ES, NQ, …; default: the one its "
                                         "file name names, else the checkpoint's)")
    parser.add_argument("--out", help="report directory, replaced if it exists (default "
                                      "<run>/evaluation-<split> when the checkpoint lies in "
                                      "a run folder, else next to the checkpoint; -2, -3, ... "
                                      "appended when that folder exists)")
    parser.add_argument("--allow-train-split", action="store_true",
                        help="allow --split train (in-sample figures)")
    parser.add_argument("--random-seeds", type=int, default=5,
                        help="seeds of the random baseline (default 5)")
    parser.add_argument("--bootstrap", type=int, default=2000,
                        help="bootstrap resamples of the Sharpe difference (default 2000)")
    parser.add_argument("--window-days", type=int, default=3,
                        help="trading days in the positions plot (default 3)")
    parser.add_argument("--no-gates", action="store_true",
                        help="skip the run through the two gates of the live decision")
    parser.add_argument("--threshold", type=float, default=None,
                        help="gate 2 consensus threshold of the gated run (default: the "
                             "gates are chosen on the validation split — gate 1 on or off, "
                             "threshold 0.3 to 0.9, the adjustments — by net P&L for a test "
                             "report; else 0.65 with both gates)")
    parser.add_argument("--no-synergy-gate", action="store_true",
                        help="record gate 1 (synergy) only, gate 2 decides alone; like "
                             "--threshold, fixes the gates (not chosen on validation)")
    parser.add_argument("--mc-passes", type=int, default=50,
                        help="MC-dropout passes per decision of the gated run (default 50)")
    parser.add_argument("--verbose", action="store_true",
                        help="print the backtests' per-tile progress lines (default: one "
                             "line every ~10 s at most, and a count at the end of each)")


def add_parser(sub: Any) -> None:
    """Register ``algospace evaluate``."""
    parser = sub.add_parser("evaluate", help="backtest a checkpoint and write its report",
                            description=DESCRIPTION)
    add_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the headline figures."""
    from algospace.evaluation.gate_choice import GATE_GRID
    from algospace.evaluation.report import EvaluateConfig, evaluate
    from algospace.inference.gates import GateConfig
    from algospace.tune.console import quiet_ray_console

    quiet_ray_console()

    fixed = args.threshold is not None or args.no_synergy_gate
    gates = None if args.no_gates else GateConfig(
        synergy_gate=not args.no_synergy_gate,
        **({} if args.threshold is None else {"threshold": args.threshold}))
    cfg = EvaluateConfig(checkpoint=args.checkpoint, split=args.split, data=args.data,
                         symbol=args.symbol,
                         out=args.out, allow_train=args.allow_train_split,
                         random_seeds=args.random_seeds, bootstrap=args.bootstrap,
                         window_days=args.window_days, gates=gates, mc_passes=args.mc_passes,
                         gate_grid=None if fixed else GATE_GRID,
                         verbose=args.verbose)
    report = evaluate(cfg)
    from algospace.evaluation.table import evaluation_table

    for line in evaluation_table(report):
        print(line)
    print(f"report: {report['out']}/report.html")
    return 0
