"""Entry points: benchmarks (``python -m experiments.bench``)."""
