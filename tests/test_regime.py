"""Tests of the regime detector: model shapes, training, latent quality, causality, checkpoints."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from algospace.config import RDEConfig
from algospace.data.bars import Bars
from algospace.data.resample import resample
from algospace.data.splits import Normalizer
from algospace.data.synthetic import SyntheticConfig, generate
from algospace.errors import AlgoSpaceError, ConfigError
from algospace.regime.features import REGIME_FEATURES, bar_labels, regime_features
from algospace.regime.latents import baseline_mse, baseline_warning, beats_baseline, encode_all
from algospace.regime.model import RegimeDetector
from algospace.regime.train import RDECheckpointError, RDEResult, _split_ends, load_rde, train_rde

SMALL = RDEConfig(window=24, patch=2, d_model=32, heads=4, layers=1, ff_dim=64, lr=3e-3,
                  batch_size=64, max_epochs=16, kl_warmup_epochs=2, patience=3)
"""A tiny detector that trains in a few seconds on 250 synthetic days."""


class Market:
    """Synthetic 30-minute features, true regimes and a 60/20/20 row split."""

    def __init__(self, days: int, seed: int) -> None:
        market = generate(SyntheticConfig(days=days, seed=seed))
        bars = resample(market.bars, 30)
        self.features = regime_features(bars)
        self.labels = bar_labels(market.bars, market.regimes, bars)
        n = len(self.features)
        self.train = (0, int(0.6 * n))
        self.val = (int(0.6 * n), int(0.8 * n))
        self.test = (int(0.8 * n), n)


@pytest.fixture(scope="module")
def market() -> Market:
    """250 trading days of the default synthetic market."""
    return Market(250, seed=0)


@pytest.fixture(scope="module")
def trained(market: Market, tmp_path_factory: pytest.TempPathFactory) -> RDEResult:
    """One small detector trained on ``market``."""
    out = tmp_path_factory.mktemp("rde")
    return train_rde(market.features, market.train, market.val, SMALL, out)


def test_features_columns_and_warmup(market: Market) -> None:
    """Columns in documented order; warm-up NaN then finite; labels cover every bar."""
    assert tuple(market.features.columns) == REGIME_FEATURES
    finite = np.isfinite(market.features.to_numpy()).all(axis=1)
    first = int(np.argmax(finite))
    assert 400 < first < 500 and finite[first:].all()
    assert set(np.unique(market.labels)) <= {0, 1, 2}


def test_features_are_causal(market: Market) -> None:
    """Features of bars up to t do not change when later bars are dropped."""
    market_bars = resample(generate(SyntheticConfig(days=40, seed=3)).bars, 30)
    full = regime_features(market_bars)
    cut = 1300
    short = Bars(market_bars.frame.iloc[:cut], 30)
    pd.testing.assert_frame_equal(regime_features(short), full.iloc[:cut])


def test_model_shapes_and_recon_target() -> None:
    """Decoder output has the input window's shape; encode gives (B, latent)."""
    torch.manual_seed(0)
    model = RegimeDetector(n_features=8, window=24, d_model=32, heads=4, layers=1, patch=2)
    x = torch.randn(5, 24, 8)
    recon, mu, logvar = model(x)
    assert recon.shape == x.shape
    assert mu.shape == logvar.shape == (5, 8)
    assert model.encode(x).shape == (5, 8)
    assert model.training
    with pytest.raises(ValueError, match=r"\(B, 24, 8\)"):
        model(torch.randn(5, 23, 8))


def test_eval_is_deterministic_and_per_sample() -> None:
    """In eval mode each window's mu is independent of the rest of the batch."""
    torch.manual_seed(0)
    model = RegimeDetector(n_features=3, window=12, d_model=16, heads=2, layers=1).eval()
    x = torch.randn(6, 12, 3)
    full = model.encode(x)
    alone = model.encode(x[2:3])
    torch.testing.assert_close(full[2:3], alone, rtol=1e-5, atol=1e-6)
    recon, mu, _ = model(x)
    torch.testing.assert_close(recon, model.decode(mu))


@pytest.mark.train
def test_training_reaches_the_linear_baseline(trained: RDEResult, market: Market) -> None:
    """Validation reconstruction is clearly better than predicting each window's mean, and
    about as good as the window's first 8 principal components (the trivial baseline).

    On this market: window mean 0.50, 8 principal components 0.40, the detector 0.40; on an
    i.i.d. market 0.62, 0.50 and 0.50. Reconstruction alone does not show regime knowledge
    (the latent-probe test below does), so a run warns when the detector does not beat the
    linear baseline clearly (``beats_baseline``).
    """
    values = torch.from_numpy(
        Normalizer.fit(market.features, market.train).transform(market.features)
        .to_numpy(np.float32).copy())
    ends = torch.from_numpy(_split_ends(values.numpy(), SMALL.window, "val", market.val))
    window_mean = baseline_mse(values, ends, SMALL.window)
    assert trained.baseline_recon_mse < 0.9 * window_mean
    assert trained.val_recon_mse < 0.9 * window_mean
    assert trained.val_recon_mse < 1.05 * trained.baseline_recon_mse
    assert 1 <= trained.best_epoch <= trained.epochs_run <= SMALL.max_epochs
    first = trained.history[0]
    assert set(first) >= {"epoch", "train_loss", "val_loss", "val_recon_mse", "val_kl",
                          "baseline_recon_mse"}
    assert trained.best_val_loss == min(m["val_loss"] for m in trained.history)


def _probe_accuracy(z_train: np.ndarray, y_train: np.ndarray,
                    z_test: np.ndarray, y_test: np.ndarray) -> float:
    """Multinomial logistic regression fitted with L-BFGS; accuracy on the test rows."""
    mean, std = z_train.mean(0), z_train.std(0) + 1e-6
    x_train = torch.from_numpy((z_train - mean) / std)
    x_test = torch.from_numpy((z_test - mean) / std)
    weight = torch.zeros(x_train.shape[1], 3, requires_grad=True)
    bias = torch.zeros(3, requires_grad=True)
    optim = torch.optim.LBFGS([weight, bias], max_iter=200)
    target = torch.from_numpy(y_train)

    def closure() -> torch.Tensor:
        optim.zero_grad()
        logits = x_train @ weight + bias
        loss = torch.nn.functional.cross_entropy(logits, target) + 1e-3 * weight.pow(2).sum()
        loss.backward()
        return loss

    optim.step(closure)
    with torch.no_grad():
        predicted = (x_test @ weight + bias).argmax(1).numpy()
    return float((predicted == y_test).mean())


@pytest.mark.train
def test_latent_separates_regimes(market: Market, trained: RDEResult) -> None:
    """A linear probe on train-split latents beats the held-out majority rate clearly.

    Held out = the val and test splits (the detector never sees labels; val only
    early-stops its reconstruction). Measured over 4 markets x 2 training seeds:
    accuracy 0.68-0.85 against majority rates 0.45-0.53, margin 0.23-0.34.
    """
    model, cfg, normaliser, _ = load_rde(trained.checkpoint_dir)
    z = encode_all(model, normaliser, market.features, cfg.window)
    rows = np.arange(len(z))
    ok = np.isfinite(z).all(axis=1)
    train = ok & (rows < market.train[1])
    held_out = ok & (rows >= market.val[0])
    labels = market.labels
    accuracy = _probe_accuracy(z[train], labels[train], z[held_out], labels[held_out])
    majority = np.bincount(labels[held_out]).max() / held_out.sum()
    assert accuracy > majority + 0.15, (accuracy, majority)


@pytest.mark.train
def test_same_seed_same_weights(tmp_path: Path) -> None:
    """Two trainings with the same seed give bit-identical weights."""
    data = Market(60, seed=1)
    cfg = dataclasses.replace(SMALL, max_epochs=2, kl_warmup_epochs=1, d_model=16)
    states = []
    for name in ("a", "b"):
        train_rde(data.features, data.train, data.val, cfg, tmp_path / name)
        states.append(torch.load(tmp_path / name / "rde.pt", weights_only=True))
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert not torch.are_deterministic_algorithms_enabled()


@pytest.mark.train
def test_encode_all_is_causal(market: Market, trained: RDEResult) -> None:
    """Changing rows after t leaves mu at rows <= t unchanged; warm-up rows are NaN."""
    model, cfg, normaliser, _ = load_rde(trained.checkpoint_dir)
    features = market.features.iloc[:2000]
    z = encode_all(model, normaliser, features, cfg.window)
    assert z.shape == (2000, cfg.latent_dim) and z.dtype == np.float32
    first_feature_row = int(np.argmax(np.isfinite(features.to_numpy()).all(axis=1)))
    first = first_feature_row + cfg.window - 1
    assert np.isnan(z[:first]).all() and np.isfinite(z[first:]).all()
    t = 1500
    changed = features.copy()
    changed.iloc[t + 1:] = changed.iloc[t + 1:].to_numpy()[::-1] * 3.0
    z_changed = encode_all(model, normaliser, changed, cfg.window)
    np.testing.assert_array_equal(z_changed[:t + 1], z[:t + 1])
    assert not np.array_equal(z_changed[t + 1:], z[t + 1:])


@pytest.mark.train
def test_checkpoint_round_trip(market: Market, trained: RDEResult) -> None:
    """The saved checkpoint reproduces mu; rde.json holds config, stats, names, metrics."""
    model, cfg, normaliser, names = load_rde(trained.checkpoint_dir)
    assert cfg == SMALL and names == REGIME_FEATURES
    assert not model.training
    meta = json.loads((trained.checkpoint_dir / "rde.json").read_text())
    assert meta["metrics"]["best_epoch"] == trained.best_epoch
    assert set(meta["normalizer"]) == set(REGIME_FEATURES)
    features = market.features.iloc[:800]
    again, *_ = load_rde(trained.checkpoint_dir)
    np.testing.assert_array_equal(encode_all(model, normaliser, features, cfg.window),
                                  encode_all(again, normaliser, features, cfg.window))
    assert not list(trained.checkpoint_dir.glob(".rde*"))  # no temporary files left


@pytest.mark.train
def test_missing_and_corrupt_checkpoint(tmp_path: Path, trained: RDEResult) -> None:
    """A missing or garbled checkpoint raises an AlgoSpaceError naming the path and the fix."""
    with pytest.raises(RDECheckpointError, match=r"rde\.pt, rde\.json missing.*Fix"):
        load_rde(tmp_path)
    for name in ("rde.pt", "rde.json"):
        (tmp_path / name).write_bytes((trained.checkpoint_dir / name).read_bytes())
    (tmp_path / "rde.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(AlgoSpaceError, match=r"rde\.pt: unreadable weights.*Fix"):
        load_rde(tmp_path)
    (tmp_path / "rde.json").write_text("{")
    with pytest.raises(RDECheckpointError, match=r"rde\.json: unreadable"):
        load_rde(tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"window": 1}, r"rde\.window must be an integer >= 2"),
        ({"d_model": 30, "heads": 4}, "divisible by rde.heads"),
        ({"window": 48, "patch": 5}, "multiple of rde.patch"),
        ({"dropout": 1.0}, r"rde\.dropout must be in \[0, 1\)"),
        ({"lr": 0.0}, r"rde\.lr must be a finite number > 0"),
        ({"kl_weight": -0.1}, r"rde\.kl_weight must be a finite number >= 0"),
        ({"batch_size": 2.5}, r"rde\.batch_size must be an integer"),
    ],
)
def test_invalid_config(kwargs: dict[str, float], match: str) -> None:
    """Bad hyper-parameters raise ConfigError saying what is wrong and how to fix it."""
    with pytest.raises(ConfigError, match=match):
        RDEConfig(**kwargs)  # type: ignore[arg-type]


def test_bad_split_rows(market: Market, tmp_path: Path) -> None:
    """Splits outside the table, or without a complete window, are rejected clearly."""
    cfg = SMALL
    with pytest.raises(ConfigError, match="val rows must satisfy"):
        train_rde(market.features, market.train, (100, 10**7), cfg, tmp_path)
    with pytest.raises(AlgoSpaceError, match=r"train split .* has no complete 24-bar window"):
        train_rde(market.features, (0, 300), market.val, cfg, tmp_path)


@pytest.mark.train
def test_a_detector_on_a_market_without_regimes_is_flagged(tmp_path: Path) -> None:
    """On i.i.d. returns there is nothing to detect: the run must say so."""
    market = generate(SyntheticConfig(days=120, seed=1, regimes=False, signal=0.0))
    assert set(np.unique(market.regimes)) == {0}
    features = regime_features(resample(market.bars, 30))
    n = len(features)
    result = train_rde(features, (0, int(0.6 * n)), (int(0.6 * n), int(0.8 * n)),
                       dataclasses.replace(SMALL, max_epochs=8), tmp_path / "rde")
    assert not result.beats_baseline
    line = baseline_warning(result.val_recon_mse, result.baseline_recon_mse)
    assert line is not None and "does not beat its trivial baseline" in line
    assert beats_baseline(0.9, 1.0) and not beats_baseline(0.99, 1.0)
    assert baseline_warning(0.5, 1.0) is None
