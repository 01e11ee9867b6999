"""AlgoSpace evaluation package.

:mod:`algospace.evaluation.metrics` turns a per-bar equity curve (plus positions
and the trade log) into :class:`~algospace.evaluation.metrics.Metrics`, dollar-true:
daily dollar P&L over a fixed capital base per 18:00–17:00 trading day, Sharpe /
Sortino annualised with sqrt(252), per-bar dollar drawdown, trade statistics, the
probabilistic Sharpe ratio, ruin stops. :mod:`algospace.evaluation.baselines` runs flat,
buy-and-hold, random and rule baselines through the same cost-charging simulator as the
agents.
:mod:`algospace.evaluation.stats` holds the probabilistic and deflated Sharpe ratios.
:mod:`algospace.evaluation.probes` fits supervised probes of each layer's observations to
the planted signal and trades them: the capture an agent could reach from what it sees.
"""

from algospace.evaluation.metrics import Metrics, compute_metrics
from algospace.evaluation.stats import deflated_sharpe_ratio, probabilistic_sharpe_ratio

__all__ = ["Metrics", "compute_metrics", "deflated_sharpe_ratio", "probabilistic_sharpe_ratio"]
