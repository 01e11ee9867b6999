"""Price probes: labels are the bars' own realised moves, the fit and the choice never
read the generator's truth, the band by hand, and a strong planted signal is learned."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from algospace.config import DataConfig, EnvConfig
from algospace.data.synthetic import SyntheticConfig
from algospace.errors import ConfigError
from algospace.evaluation.price_probes import (
    lean,
    positions,
    price_probe,
    realised_labels,
    select_price_probe,
)
from algospace.evaluation.probes import ProbeData, collect

GRID = (1.0, 0.1)


@pytest.fixture(scope="module")
def strong(tmp_path_factory: pytest.TempPathFactory) -> EnvConfig:
    """60 days with both planted components at 12 times their calibrated strength."""
    return EnvConfig(data=DataConfig(synthetic=SyntheticConfig(days=60, seed=1, signal=12.0),
                                     cache_dir=str(tmp_path_factory.mktemp("price-probe"))))


@pytest.fixture(scope="module")
def tactical(strong: EnvConfig) -> dict[str, ProbeData]:
    return {split: collect("tactical", strong, split) for split in ("train", "val", "test")}


def test_labels_are_each_bars_own_move(tactical: dict[str, ProbeData]) -> None:
    data = tactical["train"]
    labels = realised_labels(data)
    ohlc = data.truth.ohlc
    for i in (0, 1, len(labels) // 2, len(labels) - 1):
        move = ohlc[i, 3] - ohlc[i, 0]
        assert labels[i] == (1 if move > 0 else -1 if move < 0 else 0)
    assert set(np.unique(labels)) <= {-1, 0, 1} and (labels == 0).any()  # tick-rounded bars


def test_band_by_hand() -> None:
    leans = np.array([0.30, 0.05, -0.05, -0.30, 0.10, -0.10])
    assert positions(leans, 0.0).tolist() == [1, 1, -1, -1, 1, -1]
    assert positions(leans, 0.1).tolist() == [1, 0, 0, -1, 0, 0]  # strictly beyond the band
    assert positions(leans, 0.5).tolist() == [0] * 6


def _scrambled(data: ProbeData, seed: int) -> ProbeData:
    """The same rows and prices with every truth column (drifts, oracle positions, the
    oracle target) replaced by noise."""
    rng = np.random.default_rng(seed)
    n = len(data.target)
    truth = dataclasses.replace(
        data.truth, drift_strategic=rng.normal(size=n), drift_tactical=rng.normal(size=n),
        unit_positions={k: rng.integers(-1, 2, n) for k in data.truth.unit_positions})
    return dataclasses.replace(data, truth=truth, target=rng.integers(-1, 2, n))


def test_fit_and_choice_never_read_the_truth(tactical: dict[str, ProbeData]) -> None:
    train, val = tactical["train"], tactical["val"]
    model, band, q, pnl = select_price_probe(train, val, l2_grid=GRID)
    other, band2, q2, pnl2 = select_price_probe(_scrambled(train, 1), _scrambled(val, 2),
                                                l2_grid=GRID)
    assert (band, q, pnl, model.l2) == (band2, q2, pnl2, other.l2)
    np.testing.assert_array_equal(lean(model, val.features), lean(other, val.features))


def test_choice_is_the_best_realised_validation_pnl(tactical: dict[str, ProbeData]) -> None:
    from algospace.evaluation.probe_model import fit_probe
    from algospace.evaluation.probes import trade

    train, val = tactical["train"], tactical["val"]
    _, _, _, chosen = select_price_probe(train, val, l2_grid=GRID, quantiles=(0.0, 0.9))
    scores = []
    for l2 in GRID:
        m = fit_probe(train.features, realised_labels(train), l2=l2)
        lv = lean(m, val.features)
        for q in (0.0, 0.9):
            scores.append(trade(val, positions(lv, float(np.quantile(np.abs(lv), q))))
                          .metrics.net_pnl)
    assert chosen == pytest.approx(max(scores), abs=1e-6)


def test_learns_a_strong_planted_signal(strong: EnvConfig) -> None:
    """At 12x the tactical component is learned from prices alone, out of sample."""
    result = price_probe("tactical", strong, split="test", l2_grid=GRID)
    assert result.expected_pnl > 0 and result.expected_capture > 0.2
    assert result.trades > 0 and result.layer == "tactical"


def test_empty_grid_is_an_error(tactical: dict[str, ProbeData]) -> None:
    with pytest.raises(ConfigError, match="at least one L2"):
        select_price_probe(tactical["train"], tactical["val"], l2_grid=())
