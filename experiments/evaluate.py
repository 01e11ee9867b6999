"""``python -m experiments.evaluate CHECKPOINT [--split test|val] [--data FILE] [--out DIR]``.

The same command as ``algospace evaluate``: backtests a checkpoint's agents
and writes report.json, PNGs and a self-contained report.html.
"""

from __future__ import annotations

import sys

from algospace.cli.main import main as cli_main


def main(argv: list[str] | None = None) -> int:
    """Run ``algospace evaluate`` with these arguments."""
    return cli_main(["evaluate", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
