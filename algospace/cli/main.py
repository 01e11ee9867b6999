"""The ``algospace`` command: one subcommand per front end of :mod:`algospace.cli`.

Each front end registers its parser (``add_parser``) with a ``handler`` that runs it.
Errors caused by input (files, config, arguments) print one line starting with
``error:`` on stderr and exit with status 2; nothing is written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from algospace.cli.status import exit_status

DESCRIPTION = "AlgoSpace: prepare data, train the regime detector and the agents, evaluate " \
    "a checkpoint, replay bars through the decision engine."
USAGE = """commands:
  algospace data validate FILE [--dayfirst|--monthfirst] [--timestamps open|close]
  algospace data synth --out FILE [--days N] [--seed S] [--bar-minutes M] [--signal X]
  algospace data prepare [CONFIG.yaml] [--data FILE | --synthetic] [--force] ...
  algospace regime train [CONFIG.yaml] [--data FILE | --synthetic] [--epochs N] [--out DIR]
  algospace evaluate CHECKPOINT [--split test|val] [--data FILE] [--out DIR]
  algospace run FILE.yaml [--quick] [--resume] [--address ADDR] [--set KEY=VALUE ...]
  algospace decide CHECKPOINT [--data FILE] [--start TIME] [--no-gates] [--export DIR]
  algospace decide CHECKPOINT --follow FILE [--out FILE.jsonl] [--max-daily-loss USD]
                   [--max-position N] [--kill-file PATH]

Input errors (files, config, arguments) print one line starting with "error:" and
exit with status 2; nothing is written."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``algospace`` command."""
    from algospace.cli import data, decide, evaluate, regime, run

    parser = argparse.ArgumentParser(prog="algospace", description=DESCRIPTION,
                                     epilog=USAGE,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (data, regime, evaluate, run, decide):
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run a subcommand; input errors print ``error: …`` and return 2."""
    args = build_parser().parse_args(argv)
    return exit_status(lambda: args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
