"""AlgoSpace evaluation package.

:mod:`algospace.evaluation.metrics` turns a per-bar equity curve (plus positions
and the trade log) into :class:`~algospace.evaluation.metrics.Metrics` — returns,
Sharpe / Sortino on daily returns per 18:00–17:00 trading day annualised with
sqrt(252), per-bar max drawdown, trade statistics — and runs flat, buy-and-hold,
random and rule baselines through the same cost-charging simulator as the agents.
"""
