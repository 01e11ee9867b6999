"""Is a Sharpe ratio better than luck? Probabilistic and Deflated Sharpe ratios.

Sources:

- Bailey & López de Prado (2012), "The Sharpe Ratio Efficient Frontier", J. of Risk
  15(2): the probabilistic Sharpe ratio (PSR), the probability that the true Sharpe
  exceeds a benchmark ``SR*`` given the track record's length, skewness and kurtosis.
- Bailey & López de Prado (2014), "The Deflated Sharpe Ratio: Correcting for Selection
  Bias, Backtest Overfitting and Non-Normality", J. of Portfolio Management 40(5): the
  DSR is the PSR against ``SR0``, the Sharpe the best of ``N`` skill-less trials is
  expected to reach.
- López de Prado (2019), "Detection of false investment strategies using unsupervised
  learning methods", Quantitative Finance 19(9): correlated trials count less than
  independent ones. :func:`effective_trials` measures how many independent bets the
  trials hold with Meucci's (2009) effective number of bets (the entropy of the
  correlation matrix's eigenvalues), which counts clusters of near-copies — a trial's
  successive checkpoints — about once each.

Everything here is **per period** (e.g. per trading day), never annualised: the
Sharpe ratio is ``mean / std(ddof=1)`` of the series; skewness and kurtosis are the
biased (population) moments of the paper, kurtosis non-excess (3 for a normal law).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from algospace.errors import ConfigError

__all__ = [
    "EULER_GAMMA",
    "deflated_sharpe_ratio",
    "dsr_from_moments",
    "effective_trials",
    "expected_max_sharpe",
    "probabilistic_sharpe_ratio",
    "psr_from_moments",
]

EULER_GAMMA = 0.5772156649015329
"""The Euler–Mascheroni constant (in the expected maximum of N normal draws)."""
_NORMAL = NormalDist()


def _series(returns: np.ndarray | list[float], what: str) -> np.ndarray:
    """``returns`` as a finite 1-D float64 array."""
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 1:
        raise ConfigError(f"{what}: returns must be 1-D (one value per period), found shape "
                          f"{r.shape}; pass e.g. daily_returns(equity).to_numpy()")
    if not np.isfinite(r).all():
        raise ConfigError(f"{what}: found {int((~np.isfinite(r)).sum())} NaN/inf returns; "
                          "drop or fill them before testing the Sharpe ratio")
    return r


def _moments(r: np.ndarray) -> tuple[float, float, float] | None:
    """(Sharpe with ddof=1, skewness, kurtosis) of ``r``; None if fewer than 3 or constant."""
    if len(r) < 3:
        return None
    sd = float(np.std(r, ddof=1))
    if sd <= 1e-12 * float(np.mean(np.abs(r))):
        return None
    dev = r - float(np.mean(r))
    m2 = float(np.mean(dev ** 2))
    skew = float(np.mean(dev ** 3)) / m2 ** 1.5
    kurt = float(np.mean(dev ** 4)) / m2 ** 2
    return float(np.mean(r)) / sd, skew, kurt


def psr_from_moments(sr: float, n_obs: int, skew: float, kurtosis: float,
                     sr_benchmark: float = 0.0) -> float:
    """PSR = Φ((SR − SR*)·sqrt(T − 1) / sqrt(1 − γ3·SR + (γ4 − 1)/4·SR²)); nan if undefined.

    ``sr`` and ``sr_benchmark`` are per period (not annualised), ``kurtosis`` non-excess.
    """
    if n_obs < 2:
        raise ConfigError(f"psr: n_obs must be >= 2 observations, found {n_obs!r}; pass "
                          "the number of returns the Sharpe ratio was estimated on")
    if not all(math.isfinite(v) for v in (sr, skew, kurtosis, sr_benchmark)):
        return math.nan
    var = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr
    if var <= 0.0:
        return math.nan
    return _NORMAL.cdf((sr - sr_benchmark) * math.sqrt(n_obs - 1) / math.sqrt(var))


def probabilistic_sharpe_ratio(returns: np.ndarray | list[float],
                               sr_benchmark: float = 0.0) -> float:
    """Probability that the true per-period Sharpe of ``returns`` exceeds ``sr_benchmark``.

    nan with fewer than 3 returns or a constant series (the Sharpe is undefined).
    """
    r = _series(returns, "probabilistic_sharpe_ratio")
    moments = _moments(r)
    if moments is None:
        return math.nan
    sr, skew, kurt = moments
    return psr_from_moments(sr, len(r), skew, kurt, sr_benchmark)


def expected_max_sharpe(sr_variance: float, n_trials: float) -> float:
    """SR0 = sqrt(V)·((1 − γ)·Φ⁻¹(1 − 1/N) + γ·Φ⁻¹(1 − 1/(N·e))); 0.0 for N <= 1.

    The Sharpe the best of ``n_trials`` skill-less trials is expected to reach, where
    ``sr_variance`` is the variance of the trials' Sharpe ratios (same units as the
    Sharpe being deflated, i.e. per period).
    """
    if not (math.isfinite(sr_variance) and sr_variance >= 0):
        raise ConfigError(f"sr_variance: must be a finite number >= 0, found {sr_variance!r}; "
                          "pass the variance of the per-period Sharpe ratios of the trials")
    if not n_trials > 1:
        return 0.0
    first = _NORMAL.inv_cdf(1.0 - 1.0 / n_trials)
    second = _NORMAL.inv_cdf(1.0 - 1.0 / (n_trials * math.e))
    return math.sqrt(sr_variance) * ((1.0 - EULER_GAMMA) * first + EULER_GAMMA * second)


def dsr_from_moments(sr: float, n_obs: int, skew: float, kurtosis: float, *,
                     sr_variance: float, n_trials: float) -> float:
    """DSR: the PSR of ``sr`` against :func:`expected_max_sharpe` (all per period)."""
    benchmark = expected_max_sharpe(sr_variance, n_trials)
    return psr_from_moments(sr, n_obs, skew, kurtosis, benchmark)


def deflated_sharpe_ratio(returns: np.ndarray | list[float], *, sr_variance: float,
                          n_trials: float) -> float:
    """Probability that the selected strategy's true Sharpe beats the best of N lucky trials."""
    return probabilistic_sharpe_ratio(returns, expected_max_sharpe(sr_variance, n_trials))


def effective_trials(pnl_matrix: np.ndarray) -> float:
    """Effective number of independent trials of a (trials × days) P&L matrix.

    The exponential of the entropy of the correlation matrix's normalised eigenvalues
    (Meucci 2009, "Managing diversification": the effective number of bets). Identical
    rows count once, uncorrelated rows N times, and k clusters of near-copies about k
    times — so a trial's successive checkpoints, which differ little, are not counted as
    independent trials. Perfectly anti-correlated rows are one bet. Rows with zero variance
    are dropped (a flat checkpoint is no trial); the result is at least 1.
    """
    m = np.asarray(pnl_matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] < 1 or m.shape[1] < 1:
        raise ConfigError(f"pnl_matrix: must be 2-D (trials × days) with >= 1 trial and >= 1 "
                          f"day, found shape {m.shape}; stack each trial's daily P&L as a row")
    if not np.isfinite(m).all():
        raise ConfigError("pnl_matrix: found NaN/inf; every trial needs a P&L for every day")
    m = m[np.std(m, axis=1) > 0]
    if m.shape[0] <= 1 or m.shape[1] < 2:
        return 1.0
    eig = np.clip(np.linalg.eigvalsh(np.corrcoef(m)), 0.0, None)
    share = eig[eig > 1e-12] / eig.sum()
    return max(1.0, float(np.exp(-np.sum(share * np.log(share)))))
