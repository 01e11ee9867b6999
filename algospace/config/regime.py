"""The ``rde`` section: hyper-parameters of the regime detector and its training.

See :mod:`algospace.regime.train` for the model, the loss and the training loop they set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real

from algospace.errors import ConfigError


@dataclass(frozen=True)
class RDEConfig:
    """Hyper-parameters of the regime detector and its training; validated on construction."""

    window: int = 48
    """Bars per input window (30-minute bars; 48 = one day)."""
    patch: int = 2
    """Bars per transformer token (``window`` must be a multiple): 2 = one token per hour,
    about 3x faster than 1 with the same reconstruction and probe accuracy."""
    d_model: int = 64
    """Transformer width (must be divisible by ``heads``)."""
    heads: int = 4
    """Attention heads per layer."""
    layers: int = 2
    """Transformer encoder layers."""
    ff_dim: int = 128
    """Hidden size of each layer's feed-forward block."""
    dropout: float = 0.1
    """Dropout inside the transformer, in [0, 1)."""
    latent_dim: int = 8
    """Size of the VAE latent (the regime embedding written to the feature store)."""
    lr: float = 1e-3
    """Adam learning rate."""
    weight_decay: float = 0.0
    """Decoupled (AdamW) weight decay; 0 is plain Adam."""
    batch_size: int = 128
    """Windows per training batch."""
    max_epochs: int = 50
    """Upper bound on training epochs."""
    patience: int = 5
    """Epochs without a validation-loss improvement (after warm-up) before stopping."""
    min_delta: float = 1e-4
    """Smallest decrease of validation loss that counts as an improvement."""
    kl_weight: float = 0.1
    """beta: weight of the KL (nats per window) against the window's summed squared error."""
    kl_warmup_epochs: int = 5
    """Epochs over which beta rises linearly from 0 to ``kl_weight`` (0: no warm-up)."""
    grad_clip: float = 1.0
    """Maximum global gradient norm per step (0: no clipping)."""
    seed: int = 0
    """Seed of weights, dropout, latent noise and batch order."""

    def __post_init__(self) -> None:
        for name in ("window", "patch", "d_model", "heads", "layers", "ff_dim", "latent_dim",
                     "batch_size", "max_epochs", "patience"):
            _check_int(name, getattr(self, name), 2 if name == "window" else 1)
        _check_int("kl_warmup_epochs", self.kl_warmup_epochs, 0)
        _check_int("seed", self.seed, 0)
        if self.window % self.patch:
            raise ConfigError(
                f"rde.window must be a multiple of rde.patch; got window={self.window}, "
                f"patch={self.patch}. Fix: e.g. window=48 with patch=1 or 2."
            )
        if self.d_model % self.heads:
            raise ConfigError(
                f"rde.d_model must be divisible by rde.heads; got d_model={self.d_model}, "
                f"heads={self.heads}. Fix: e.g. d_model=64 with heads=4."
            )
        _check_real("lr", self.lr, positive=True)
        for name in ("weight_decay", "min_delta", "kl_weight", "grad_clip"):
            _check_real(name, getattr(self, name), positive=False)
        _check_real("dropout", self.dropout, positive=False)
        if self.dropout >= 1.0:
            raise ConfigError(
                f"rde.dropout must be in [0, 1); got {self.dropout!r}. Fix: e.g. dropout=0.1."
            )


def _check_int(name: str, value: object, minimum: int) -> None:
    """Raise ConfigError unless ``value`` is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, Integral) or int(value) < minimum:
        raise ConfigError(
            f"rde.{name} must be an integer >= {minimum}; got {value!r}. "
            f"Fix: set rde.{name} to a whole number >= {minimum} "
            f"(default {getattr(RDEConfig, name)})."
        )


def _check_real(name: str, value: object, *, positive: bool) -> None:
    """Raise ConfigError unless ``value`` is a finite number > 0 (or >= 0)."""
    number = float(value) if isinstance(value, Real) and not isinstance(value, bool) else math.nan
    if not (math.isfinite(number) and (number > 0 if positive else number >= 0)):
        bound = "> 0" if positive else ">= 0"
        raise ConfigError(
            f"rde.{name} must be a finite number {bound}; got {value!r}. "
            f"Fix: set rde.{name} {bound} (default {getattr(RDEConfig, name)})."
        )
