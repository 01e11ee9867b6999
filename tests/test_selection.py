"""Model selection's candidates: what the Deflated Sharpe Ratio counts as trials."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd

from algospace.tune.results import selection_trials


def _result(series: list[np.ndarray]) -> SimpleNamespace:
    """A Tune result whose rows carry validation daily P&L (and rows without it)."""
    rows = [json.dumps([round(float(x), 2) for x in s]) for s in series]
    frame = pd.DataFrame({"val_daily_pnl": [None, *rows], "val_sharpe": [None] * (1 + len(rows))})
    return SimpleNamespace(metrics_dataframe=frame)


def test_correlated_checkpoints_count_as_fewer_trials() -> None:
    rng = np.random.default_rng(0)
    days = 40
    base = [rng.normal(100, 1000, days) for _ in range(3)]
    # Three trials, each with four checkpoints that differ only slightly from each other.
    trials = [_result([b + rng.normal(0, 50, days) for _ in range(4)]) for b in base]
    selection = selection_trials(trials)
    assert selection["candidates"] == 12
    assert 2.0 < selection["effective_trials"] < 6.0
    independent = selection_trials([_result([rng.normal(100, 1000, days) for _ in range(12)])])
    assert independent["effective_trials"] > 10
    assert selection["sharpe_variance"] > 0


def test_no_validation_series_counts_one_trial() -> None:
    frame = pd.DataFrame({"val_sharpe": [1.0]})
    selection = selection_trials([SimpleNamespace(metrics_dataframe=frame)])
    assert selection["effective_trials"] == 1.0 and selection["candidates"] == 0


def test_default_score_prefers_the_checkpoint_that_earns_over_a_lucky_idle_one() -> None:
    """A near-idle checkpoint's Sharpe over a few dozen validation days can beat a trading
    one's by luck (seen in the 6x curriculum's strategic phase); the default score ranks
    by validation net P&L, the realised counterpart of the expected P&L the capture
    figures measure."""
    from algospace.config.evaluation import CheckpointSection
    from algospace.tune.results import best_checkpoint

    idle = {"val_sharpe": 5.97, "val_net_pnl": 800.0, "val_trades": 6}
    trading = {"val_sharpe": 4.48, "val_net_pnl": 9_500.0, "val_trades": 240}
    trial = SimpleNamespace(error=None, best_checkpoints=[("ckpt_idle", idle),
                                                          ("ckpt_trading", trading)],
                            checkpoint="ckpt_trading", metrics=trading, path="trial_0")
    section = CheckpointSection()
    checkpoint, metrics, chosen_by = best_checkpoint([trial], section.score, section.mode)
    assert checkpoint == "ckpt_trading" and metrics is trading
    assert chosen_by == "val_net_pnl (max)"
