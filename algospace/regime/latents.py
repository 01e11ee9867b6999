"""Windows, baselines and latents of the regime detector.

A sample is the window of ``window`` rows ending at row ``t`` (:func:`window_ends`,
:func:`gather_windows`). The trivial baselines the detector must beat
(:func:`baseline_mse`, :func:`linear_baseline_mse`, :data:`BEAT_MARGIN`) and the latent
``mu`` of every bar written to the feature store (:func:`encode_all`) live here; the
training loop and checkpoints are in :mod:`algospace.regime.train`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from algospace.data.splits import Normalizer
from algospace.errors import ConfigError, DataError
from algospace.regime.model import RegimeDetector

ENCODE_BATCH = 1024
"""Windows per forward pass in :func:`encode_all` and validation (larger is slower on
CPU: the attention matrices stop fitting in cache)."""

BEAT_MARGIN = 0.02
"""The detector beats its baseline when its validation MSE is at least this share lower."""


def beats_baseline(val_recon_mse: float, baseline_recon_mse: float) -> bool:
    """Whether a validation MSE beats the baseline's by :data:`BEAT_MARGIN`."""
    return bool(val_recon_mse <= (1.0 - BEAT_MARGIN) * baseline_recon_mse)


def baseline_warning(val_recon_mse: float, baseline_recon_mse: float) -> str | None:
    """One warning line when the detector does not beat its trivial baseline, else None."""
    if beats_baseline(val_recon_mse, baseline_recon_mse):
        return None
    return (f"warning: the regime detector's best validation reconstruction MSE "
            f"({val_recon_mse:.4f}) does not beat its trivial baseline "
            f"({baseline_recon_mse:.4f}: window means, or a linear summary of the window in "
            f"as many numbers as the latent) by {BEAT_MARGIN:.0%}: its latents carry no more "
            "than that baseline")


def window_ends(values: np.ndarray, window: int, rows: tuple[int, int]) -> np.ndarray:
    """Rows ``t`` in ``[start, stop)`` whose window ``t-window+1..t`` is complete and finite."""
    bad = ~np.isfinite(values).all(axis=1)
    counts = np.concatenate([[0], np.cumsum(bad)])
    ends = np.arange(max(rows[0], window - 1), rows[1])
    return ends[counts[ends + 1] - counts[ends + 1 - window] == 0]


def gather_windows(values: torch.Tensor, ends: torch.Tensor, window: int) -> torch.Tensor:
    """Windows ``(len(ends), window, F)`` of ``values`` ending at rows ``ends``."""
    offsets = torch.arange(1 - window, 1)
    return values[ends[:, None] + offsets]


@torch.no_grad()
def baseline_mse(values: torch.Tensor, ends: torch.Tensor, window: int) -> float:
    """MSE of predicting each window by its own per-feature mean."""
    sse = 0.0
    for i in range(0, len(ends), ENCODE_BATCH):
        x = gather_windows(values, ends[i:i + ENCODE_BATCH], window)
        sse += float((x - x.mean(dim=1, keepdim=True)).pow(2).sum())
    return sse / (len(ends) * window * values.shape[1])


@torch.no_grad()
def linear_baseline_mse(values: torch.Tensor, train_ends: torch.Tensor, val_ends: torch.Tensor,
                        window: int, components: int) -> float:
    """MSE of reconstructing validation windows from their first ``components`` principal
    components, fitted on the training windows (a linear autoencoder of the latent's size)."""
    train = gather_windows(values, train_ends, window).reshape(len(train_ends), -1).double()
    mean = train.mean(dim=0, keepdim=True)
    _, _, vt = torch.linalg.svd(train - mean, full_matrices=False)
    basis = vt[:components]
    sse = 0.0
    for i in range(0, len(val_ends), ENCODE_BATCH):
        x = gather_windows(values, val_ends[i:i + ENCODE_BATCH], window)
        flat = x.reshape(len(x), -1).double() - mean
        sse += float((flat @ basis.T @ basis - flat).pow(2).sum())
    return sse / (len(val_ends) * window * values.shape[1])


def standardise(features: pd.DataFrame, normaliser: Normalizer) -> torch.Tensor:
    """Standardised float32 tensor of the normaliser's columns (NaN kept)."""
    missing = [c for c in normaliser.columns if c not in features.columns]
    if missing:
        raise DataError(
            f"features lack the regime detector's columns {missing}",
            fix=f"pass a table with columns {list(normaliser.columns)} (regime_features)",
        )
    return torch.from_numpy(normaliser.transform(features).to_numpy(np.float32).copy())


@torch.no_grad()
def encode_all(model: RegimeDetector, normaliser: Normalizer, features: pd.DataFrame,
               window: int, batch_size: int = ENCODE_BATCH) -> np.ndarray:
    """Latent ``mu`` (N x latent_dim, float32) of the window ending at each row; NaN if none."""
    if window != model.window:
        raise ConfigError(f"window {window} differs from the model's window {model.window}; "
                          "Fix: pass the window of the config the model was trained with.")
    values = standardise(features, normaliser)
    ends = window_ends(values.numpy(), window, (0, len(features)))
    out = np.full((len(features), model.latent_dim), np.nan, dtype=np.float32)
    model.eval()
    for i in range(0, len(ends), batch_size):
        chunk = ends[i:i + batch_size]
        x = gather_windows(values, torch.from_numpy(chunk), window)
        out[chunk] = model.encode(x).numpy()
    return out
