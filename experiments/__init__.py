"""Entry points: python -m experiments.run, experiments.evaluate and experiments.bench."""
