"""The regime detector (RDE): a transformer VAE over a window of regime features.

Input: ``x`` of shape ``(B, W, F)``, a window of ``W`` consecutive 30-minute
bars (oldest first, the current bar last) of ``F`` standardised features
(:data:`algospace.regime.features.REGIME_FEATURES`).

Encoder: the window is cut into ``W / patch`` tokens of ``patch`` consecutive
bars (``patch = 1``: one token per bar; 2: one per hour, half the cost, the
same quality on the synthetic market); a linear embedding
``patch * F -> d_model`` plus a learned positional embedding per token, then
a pre-norm ``nn.TransformerEncoder`` (batch-first; self-attention only among
the tokens of one sample, so no value depends on other samples in the
batch), a final LayerNorm, and the mean over the tokens. Two linear heads
give the posterior ``q(z|x) = N(mu, diag(exp(logvar)))`` of a
``latent_dim``-dimensional latent.

Decoder: an MLP from ``z`` to ``W * F`` values reshaped to ``(B, W, F)``: it
reconstructs the **input window itself** (not the encoder's context vector,
which would let encoder and decoder agree on a trivial code). Training samples
``z = mu + exp(logvar / 2) * eps``; in eval mode ``z = mu``.

Losses (see :mod:`algospace.regime.train`): mean squared reconstruction error
of the window plus ``beta`` times the KL divergence to ``N(0, I)`` per window,
divided by ``W * F``. :meth:`RegimeDetector.encode` returns ``mu``, the
deterministic regime embedding written into the feature store.
"""

from __future__ import annotations

import torch
from torch import nn

LOGVAR_LIMIT = 10.0
"""``logvar`` is clamped to ``[-LOGVAR_LIMIT, LOGVAR_LIMIT]`` for numerical safety."""


class RegimeDetector(nn.Module):
    """Transformer encoder + VAE head + MLP decoder of the input window."""

    def __init__(
        self,
        n_features: int,
        window: int,
        d_model: int = 64,
        heads: int = 4,
        layers: int = 2,
        dropout: float = 0.1,
        latent_dim: int = 8,
        ff_dim: int = 128,
        patch: int = 2,
    ) -> None:
        super().__init__()
        if patch < 1 or window % patch:
            raise ValueError(f"window {window} is not a multiple of patch {patch}")
        self.n_features = n_features
        self.window = window
        self.patch = patch
        self.latent_dim = latent_dim
        self.embed = nn.Linear(patch * n_features, d_model)
        self.position = nn.Parameter(torch.randn(1, window // patch, d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d_model, heads, dim_feedforward=ff_dim, dropout=dropout,
            batch_first=True, norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(
            layer, layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False
        )
        self.to_mu = nn.Linear(d_model, latent_dim)
        self.to_logvar = nn.Linear(d_model, latent_dim)
        hidden = 2 * d_model
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.GELU(),
            nn.Linear(hidden, hidden), nn.GELU(),
            nn.Linear(hidden, window * n_features),
        )

    def _check(self, x: torch.Tensor) -> None:
        """Raise ValueError unless ``x`` has shape ``(B, window, n_features)``."""
        if x.dim() != 3 or x.shape[1:] != (self.window, self.n_features):
            raise ValueError(
                f"expected input of shape (B, {self.window}, {self.n_features}), "
                f"got {tuple(x.shape)}"
            )

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)`` of ``q(z|x)``, each ``(B, latent_dim)``."""
        self._check(x)
        tokens = x.reshape(x.shape[0], self.window // self.patch, self.patch * self.n_features)
        hidden = self.encoder(self.embed(tokens) + self.position)
        pooled = hidden.mean(dim=1)
        logvar = self.to_logvar(pooled).clamp(-LOGVAR_LIMIT, LOGVAR_LIMIT)
        return self.to_mu(pooled), logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstructed window ``(B, window, n_features)`` from latent ``z``."""
        return self.decoder(z).view(z.shape[0], self.window, self.n_features)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(recon, mu, logvar)``; ``z`` is sampled in training mode, ``mu`` in eval mode."""
        mu, logvar = self.posterior(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if self.training else mu
        return self.decode(z), mu, logvar

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic regime embedding ``mu`` ``(B, latent_dim)`` (eval mode, no grad)."""
        was_training = self.training
        self.eval()
        try:
            return self.posterior(x)[0]
        finally:
            self.train(was_training)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-sample KL(q(z|x) || N(0, I)) in nats, summed over latent dims: shape ``(B,)``."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)
