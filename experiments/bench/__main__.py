"""python -m experiments.bench NAME [options]: see experiments/bench/cli.py."""

import sys

from experiments.bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
