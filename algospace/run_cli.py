"""``algospace run FILE.yaml …``: the same command as ``python -m experiments.run``."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    """Register ``algospace run``."""
    from algospace.runner import add_arguments

    run = sub.add_parser("run", help="run a training phase or pipeline (Ray Tune)")
    add_arguments(run)


def run(args: argparse.Namespace) -> int:
    """Run ``algospace run``."""
    from algospace.runner import options, run_cli

    return run_cli(options(args))
