"""Probabilistic and Deflated Sharpe ratios, and the effective number of trials.

Sources: Bailey & López de Prado (2012), "The Sharpe Ratio Efficient Frontier" (PSR);
Bailey & López de Prado (2014), "The Deflated Sharpe Ratio: Correcting for Selection
Bias, Backtest Overfitting and Non-Normality", J. Portfolio Management 40(5) (DSR);
López de Prado (2019), "Detection of false investment strategies using unsupervised
learning methods" (correlated trials count less).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from algospace.evaluation import (
    compute_metrics,
    deflated_sharpe_ratio,
    probabilistic_sharpe_ratio,
)
from algospace.evaluation.stats import (
    dsr_from_moments,
    effective_trials,
    expected_max_sharpe,
    psr_from_moments,
)


def test_dsr_paper_numerical_example() -> None:
    """Bailey & López de Prado (2014), the numerical example of the DSR paper.

    An annualised Sharpe of 2.5 over T = 1250 daily observations (5 years of 250
    days), skewness −3, kurtosis 10, the best of N = 100 trials whose annualised
    Sharpe ratios have variance V = 1/2. Per day: SR = 2.5 / sqrt(250) and V / 250.
    The paper reports SR0 ≈ 0.1132 (per day) and DSR ≈ 0.9004. (With 252 days a year
    the same inputs give 0.1127 and 0.8997, so the paper's year has 250 days.)
    """
    sr, var = 2.5 / math.sqrt(250), 0.5 / 250
    assert expected_max_sharpe(var, 100) == pytest.approx(0.1132, abs=5e-5)
    dsr = dsr_from_moments(sr, 1250, -3.0, 10.0, sr_variance=var, n_trials=100)
    assert dsr == pytest.approx(0.9004, abs=5e-5)


def test_expected_max_sharpe_formula() -> None:
    """SR0 = sqrt(V)·((1 − γ)·Φ⁻¹(1 − 1/N) + γ·Φ⁻¹(1 − 1/(N·e))), 0 for N <= 1."""
    inv = NormalDist().inv_cdf
    g = 0.5772156649
    want = 2.0 * ((1 - g) * inv(1 - 1 / 10) + g * inv(1 - 1 / (10 * math.e)))
    assert expected_max_sharpe(4.0, 10) == pytest.approx(want, abs=1e-9)
    assert expected_max_sharpe(4.0, 1) == 0.0 and expected_max_sharpe(4.0, 0.5) == 0.0
    assert expected_max_sharpe(1.0, 1000) > expected_max_sharpe(1.0, 10) > 0
    with pytest.raises(ValueError, match="sr_variance: must be a finite number >= 0"):
        expected_max_sharpe(-1.0, 10)


def test_psr_from_moments_properties() -> None:
    """PSR = 0.5 at the benchmark, rises with SR and with T, falls with fatter tails."""
    assert psr_from_moments(0.1, 250, 0.0, 3.0, sr_benchmark=0.1) == 0.5
    values = [psr_from_moments(sr, 250, -0.5, 5.0) for sr in (-0.1, 0.0, 0.05, 0.1, 0.2)]
    assert values == sorted(values) and len(set(values)) == 5 and values[1] == 0.5
    assert psr_from_moments(0.05, 1000, 0, 3) > psr_from_moments(0.05, 100, 0, 3)
    assert psr_from_moments(0.1, 250, 0.0, 10.0) < psr_from_moments(0.1, 250, 0.0, 3.0)
    # Normal returns, SR = 0.1, T = 101: z = 0.1 * 10 / sqrt(1 + 0.5 * 0.01)
    want = NormalDist().cdf(1.0 / math.sqrt(1.005))
    assert psr_from_moments(0.1, 101, 0.0, 3.0) == pytest.approx(want, abs=1e-12)
    with pytest.raises(ValueError, match="n_obs must be >= 2"):
        psr_from_moments(0.1, 1, 0.0, 3.0)


def test_probabilistic_sharpe_ratio_of_a_series() -> None:
    """Per-period SR with ddof=1 and the biased skewness / kurtosis of the series."""
    rng = np.random.default_rng(4)
    r = rng.standard_t(5, 500) * 0.01 + 0.001
    dev = r - r.mean()
    m2 = np.mean(dev ** 2)
    skew, kurt = np.mean(dev ** 3) / m2 ** 1.5, np.mean(dev ** 4) / m2 ** 2
    sr = r.mean() / r.std(ddof=1)
    want = psr_from_moments(sr, 500, skew, kurt, 0.02)
    assert probabilistic_sharpe_ratio(r, 0.02) == pytest.approx(want, abs=1e-12)
    assert kurt > 3.5  # fat tails really enter
    assert probabilistic_sharpe_ratio(r + 0.001) > probabilistic_sharpe_ratio(r)
    assert math.isnan(probabilistic_sharpe_ratio([0.01, 0.02]))  # fewer than 3
    assert math.isnan(probabilistic_sharpe_ratio(np.full(10, 0.01)))  # constant
    with pytest.raises(ValueError, match="NaN/inf returns"):
        probabilistic_sharpe_ratio([0.01, np.nan, 0.02])
    with pytest.raises(ValueError, match="must be 1-D"):
        probabilistic_sharpe_ratio(np.ones((2, 3)))


def test_deflated_sharpe_ratio_is_psr_against_sr0() -> None:
    """More trials, higher bar: DSR falls with N and equals PSR for one trial."""
    rng = np.random.default_rng(9)
    r = rng.normal(0.002, 0.01, 750)
    one = deflated_sharpe_ratio(r, sr_variance=0.002, n_trials=1)
    assert one == pytest.approx(probabilistic_sharpe_ratio(r), abs=1e-15)
    many = deflated_sharpe_ratio(r, sr_variance=0.002, n_trials=50)
    sr0 = expected_max_sharpe(0.002, 50)
    assert many == pytest.approx(probabilistic_sharpe_ratio(r, sr0), abs=1e-15)
    assert many < deflated_sharpe_ratio(r, sr_variance=0.002, n_trials=5) < one


def test_effective_trials() -> None:
    """Identical rows count once, independent rows about N times, flat rows not at all."""
    rng = np.random.default_rng(0)
    row = rng.normal(0, 100, 500)
    assert effective_trials(np.tile(row, (8, 1))) == pytest.approx(1.0, abs=1e-9)
    independent = rng.normal(0, 100, (8, 5000))
    assert effective_trials(independent) == pytest.approx(8.0, abs=0.1)
    # Two groups of 4 identical rows, uncorrelated across: two bets, not eight (nor the
    # 5 that the mean-correlation formula ρ̄ + (1 - ρ̄)·N would give).
    a, b = rng.normal(0, 1, 20_000), rng.normal(0, 1, 20_000)
    groups = np.vstack([np.tile(a, (4, 1)), np.tile(b, (4, 1))])
    assert effective_trials(groups) == pytest.approx(2.0, abs=0.05)
    with_flat = np.vstack([independent, np.zeros((3, 5000))])
    assert effective_trials(with_flat) == pytest.approx(effective_trials(independent))
    assert effective_trials(np.zeros((4, 10))) == 1.0
    assert effective_trials(np.ones((4, 1))) == 1.0  # one day: no correlation to measure
    anti = np.vstack([row, -row])  # the same bet reversed: one trial
    assert effective_trials(anti) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="trials × days"):
        effective_trials(np.ones(5))
    with pytest.raises(ValueError, match="NaN/inf"):
        effective_trials(np.array([[1.0, np.nan], [1.0, 2.0]]))


def test_package_exports() -> None:
    """from algospace.evaluation import compute_metrics works (and the stats)."""
    import algospace.evaluation as ev

    assert set(ev.__all__) == {"Metrics", "compute_metrics", "deflated_sharpe_ratio",
                               "probabilistic_sharpe_ratio"}
    assert compute_metrics is ev.metrics.compute_metrics
