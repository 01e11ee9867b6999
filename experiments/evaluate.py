"""``python -m experiments.evaluate CHECKPOINT [options]`` (``--help`` lists them).

The same command as ``algospace evaluate``: backtests a checkpoint's agents
and writes report.json, PNGs and a self-contained report.html.
"""

from __future__ import annotations

import sys

from algospace.cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
