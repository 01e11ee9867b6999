"""The benchmarks behind python -m experiments.bench (see experiments/bench/cli.py).

One module per benchmark that lives here: data (data.py), env (env.py), train
(train.py) and market (market.py); learn and compare run experiments/learn.py,
latency runs experiments/latency.py. common.py holds what they share (machine,
memory readings, fresh child processes, tables); cli.py the command line.
"""

from experiments.bench.cli import main

__all__ = ["main"]
