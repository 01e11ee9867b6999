"""``python -m experiments.run FILE.yaml [--quick] [--resume] [--address ADDR] [--set k=v]``.

Runs one training phase (``tune_configs/strategic.yaml`` …) or a pipeline of phases
(``pipeline.yaml``) through Ray Tune, evaluates the best checkpoint on the test split and
writes ``summary.json``. See :mod:`algospace.tune` and the README.
"""

from __future__ import annotations

import sys

from algospace.cli.run import main

if __name__ == "__main__":
    sys.exit(main())
