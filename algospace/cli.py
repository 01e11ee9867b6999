"""The ``algospace`` command.

Subcommands so far::

    algospace data validate FILE [--dayfirst|--monthfirst] [--timestamps open|close]
    algospace data synth --out FILE [--days N] [--seed S] [--bar-minutes M] [--signal X]
    algospace data prepare [CONFIG.yaml] [--csv FILE | --synthetic] [--force] ...
    algospace regime train [CONFIG.yaml] [--csv FILE | --synthetic] [--epochs N] [--out DIR]
    algospace evaluate CHECKPOINT [--split test|val] [--data FILE] [--out DIR]
    algospace run FILE.yaml [--quick] [--resume] [--address ADDR] [--set KEY=VALUE ...]
    algospace decide CHECKPOINT [--data FILE] [--start TIME] [--no-gates] [--export DIR]

Errors caused by input (files, config, arguments) print one line starting
with ``error:`` on stderr and exit with status 2; nothing is written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from algospace.errors import AlgoSpaceError


def _dayfirst_flags(parser: argparse.ArgumentParser) -> None:
    """Add the mutually exclusive --dayfirst / --monthfirst flags and --timestamps."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--dayfirst", dest="dayfirst", action="store_const", const=True,
                       help="dates are written day first (29/06/2020)")
    group.add_argument("--monthfirst", dest="dayfirst", action="store_const", const=False,
                       help="dates are written month first (06/29/2020)")
    parser.add_argument("--timestamps", choices=["open", "close"], default=None,
                        help="whether timestamps mark bar open or bar close (default: open)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``algospace`` command."""
    parser = argparse.ArgumentParser(prog="algospace", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    data = sub.add_parser("data", help="validate, generate and prepare bar data")
    data_sub = data.add_subparsers(dest="data_command", required=True)

    validate = data_sub.add_parser("validate", help="check a bar CSV and summarise it")
    validate.add_argument("file", help="the CSV file")
    _dayfirst_flags(validate)

    synth = data_sub.add_parser("synth", help="write a CSV from the built-in synthetic market")
    synth.add_argument("--out", required=True, help="CSV file to write")
    synth.add_argument("--days", type=int, default=None, help="trading days (default 250)")
    synth.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    synth.add_argument("--bar-minutes", type=int, default=None, help="bar size (default 5)")
    synth.add_argument("--signal", type=float, default=None,
                       help="scale of the planted 30- and 5-minute components (default 1.0, "
                            "the calibrated market; 0: none)")

    prep = data_sub.add_parser("prepare", help="build (or find) the prepared-data store")
    add_data_source_flags(prep)
    prep.add_argument("--force", action="store_true", help="rebuild even if cached")

    from algospace import regime_cli

    regime_cli.add_parser(sub)
    from algospace import evaluate_cli

    evaluate_cli.add_parser(sub)
    from algospace import run_cli

    run_cli.add_parser(sub)
    from algospace import decide_cli

    decide_cli.add_parser(sub)
    return parser


def add_data_source_flags(parser: argparse.ArgumentParser) -> None:
    """Flags choosing the data: a YAML's data section, a CSV or the synthetic market."""
    parser.add_argument("config", nargs="?", help="experiment YAML whose data section to use")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--csv", help="base-bar CSV (sets data.source: csv)")
    source.add_argument("--synthetic", action="store_true", help="use the built-in market")
    parser.add_argument("--strategic-csv", help="optional strategic-bar (e.g. 30-min) CSV")
    parser.add_argument("--symbol", help="contract root, e.g. ES, NQ")
    parser.add_argument("--days", type=int, help="synthetic market: trading days")
    parser.add_argument("--seed", type=int, help="synthetic market: seed")
    parser.add_argument("--signal", type=float,
                        help="synthetic market: scale of the planted components (1.0: calibrated)")
    parser.add_argument("--cache-dir", help="store directory (default .algospace/cache)")
    _dayfirst_flags(parser)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run a subcommand; input errors print ``error: …`` and return 2."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "data":
            from algospace import data_cli

            return data_cli.run(args)
        if args.command == "regime":
            from algospace import regime_cli

            return regime_cli.run(args)
        if args.command == "evaluate":
            from algospace import evaluate_cli

            return evaluate_cli.run(args)
        if args.command == "run":
            from algospace import run_cli

            return run_cli.run(args)
        if args.command == "decide":
            from algospace import decide_cli

            return decide_cli.run(args)
    except AlgoSpaceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        sys.stderr.close()  # output was piped into a command that stopped reading
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
