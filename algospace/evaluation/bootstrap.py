"""Paired bootstrap intervals of the agents against a baseline, over trading days.

The same resampled days are used for both curves, which keeps the day-to-day
correlation of the two strategies but not serial correlation. The curves are paired by
trading day, on the days both cover: two envs on different clocks can tile a split into
whole episodes that end on different days.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from algospace.data.calendar import TRADING_DAYS_PER_YEAR
from algospace.evaluation.metrics import daily_pnl, daily_returns

__all__ = ["pnl_difference_ci", "sharpe_difference_ci"]


def _paired(a: pd.Series, b: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The two daily series on the trading days both cover, paired by date."""
    a, b = a.align(b, join="inner")
    if len(a) == 0:
        raise ValueError("the two equity curves share no trading day: nothing to pair")
    return a.to_numpy(), b.to_numpy()


def pnl_difference_ci(agent: pd.Series, other: pd.Series, initial: float, resamples: int,
                      seed: int) -> dict[str, Any]:
    """Paired bootstrap over trading days of the mean daily dollar P&L difference, 95 %."""
    a, b = _paired(daily_pnl(agent, initial_equity=initial),
                   daily_pnl(other, initial_equity=initial))
    d = a - b
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(resamples, len(d)))].mean(axis=1)
    return {"mean_daily_usd": float(d.mean()), "low_2.5": float(np.percentile(means, 2.5)),
            "high_97.5": float(np.percentile(means, 97.5)),
            "share_above_0": float(np.mean(means > 0)), "resamples": resamples,
            "days": len(d), "method": "paired iid bootstrap over trading days"}


def sharpe_difference_ci(agent: pd.Series, other: pd.Series, initial: float, resamples: int,
                         seed: int) -> dict[str, Any]:
    """Paired bootstrap over trading days of Sharpe(agent) - Sharpe(other), 95 % interval.

    Days are resampled with replacement (the same days for both curves), which keeps the
    day-to-day correlation of the two strategies but not serial correlation.
    """
    a, b = _paired(daily_returns(agent, initial_equity=initial),
                   daily_returns(other, initial_equity=initial))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(resamples, len(a)))

    def sharpe(r: np.ndarray) -> np.ndarray:
        sd = r.std(axis=1, ddof=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(sd > 0, r.mean(axis=1) / sd, 0.0)
        return out * math.sqrt(TRADING_DAYS_PER_YEAR)

    diff = sharpe(a[idx]) - sharpe(b[idx])
    point = float(sharpe(a[None])[0] - sharpe(b[None])[0])
    return {"point": point, "low_2.5": float(np.percentile(diff, 2.5)),
            "high_97.5": float(np.percentile(diff, 97.5)),
            "share_above_0": float(np.mean(diff > 0)), "resamples": resamples,
            "days": len(a), "method": "paired iid bootstrap over trading days"}
