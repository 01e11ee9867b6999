"""Training, checkpointing and batch encoding of the regime detector (phase 0).

Data. ``features`` is one row per 30-minute bar (columns e.g.
:data:`~algospace.regime.features.REGIME_FEATURES`). A
:class:`~algospace.data.splits.Normalizer` is fitted on the training rows only
and standardises every row. A sample is the window of ``cfg.window`` rows
ending at row ``t``; it belongs to the split that contains its **last** row
``t`` (it may start before the split), and windows touching a NaN (warm-up)
row are skipped.

Loss. Per window ``x`` (``W x F`` values) with reconstruction ``x'`` from a
sampled latent ``z ~ q(z|x)``::

    loss = mean((x' - x)^2) + beta_e * KL(q(z|x) || N(0, I)) / (W * F)

so ``beta`` weighs the KL (nats per window) against the window's **summed**
squared error; ``beta = 0.5`` is the negative ELBO of a unit-variance
Gaussian decoder (divided by ``W * F``). The default ``kl_weight = 0.1`` is a
beta-VAE leaning towards reconstruction: the latent keeps enough information
to separate regimes while the KL keeps ``mu`` on a unit scale and smooth.
``beta_e`` rises linearly from 0 (epoch 1) to ``kl_weight`` (epoch
``kl_warmup_epochs + 1``) so the encoder learns a code before it is squeezed.

Validation (eval mode, ``z = mu``): ``val_recon_mse``, ``val_kl`` (nats per
window) and ``val_loss = val_recon_mse + kl_weight * val_kl / (W * F)``,
always with the full ``kl_weight`` so epochs are comparable. The baseline
``baseline_recon_mse`` predicts every value of a validation window by its
window's own per-feature mean. Early stopping keeps the weights of the epoch
with the lowest ``val_loss``; after the warm-up, ``patience`` epochs without
improvement end training.

Training is deterministic on CPU for a given ``seed``: the global torch RNG is
forked and seeded (initial weights, dropout, latent noise), batches are
shuffled with a dedicated :class:`torch.Generator`, and deterministic
algorithms are enforced for the duration of training.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from algospace.data.splits import Normalizer
from algospace.errors import AlgoSpaceError, ConfigError, DataError
from algospace.regime.model import RegimeDetector, kl_divergence
from algospace.schema import build

CHECKPOINT_WEIGHTS = "rde.pt"
"""File name of the state dict inside a checkpoint directory."""
CHECKPOINT_META = "rde.json"
"""File name of the config, normaliser, feature names and metrics."""
CHECKPOINT_FORMAT = 1
"""Version of the ``rde.json`` layout."""
ENCODE_BATCH = 1024
"""Windows per forward pass in :func:`encode_all` and validation (larger is slower on
CPU: the attention matrices stop fitting in cache)."""

logger = logging.getLogger(__name__)


class RDECheckpointError(AlgoSpaceError):
    """A regime-detector checkpoint is missing, corrupt or does not fit its config."""


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


@dataclass(frozen=True)
class RDEResult:
    """Outcome of :func:`train_rde`."""

    checkpoint_dir: Path
    """Directory holding ``rde.pt`` and ``rde.json``."""
    best_epoch: int
    """Epoch (1-based) whose weights were kept."""
    best_val_loss: float
    """Validation loss of the kept weights."""
    val_recon_mse: float
    """Validation reconstruction MSE of the kept weights (standardised units)."""
    baseline_recon_mse: float
    """The trivial baseline's validation MSE: the better of predicting each window by its
    own per-feature mean, and by its first ``latent_dim`` principal components (fitted on
    the training windows: the best linear summary in as many numbers as the latent)."""
    epochs_run: int
    """Epochs trained before stopping."""
    history: tuple[dict[str, float], ...] = ()
    """Per-epoch metrics, as passed to ``report``."""

    @property
    def beats_baseline(self) -> bool:
        """True when the kept weights reconstruct validation windows clearly better than the
        trivial baseline (otherwise the latents carry no more than that baseline)."""
        return beats_baseline(self.val_recon_mse, self.baseline_recon_mse)


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


def build_model(n_features: int, cfg: RDEConfig) -> RegimeDetector:
    """A fresh :class:`RegimeDetector` for ``n_features`` inputs with ``cfg``'s sizes."""
    return RegimeDetector(n_features, cfg.window, cfg.d_model, cfg.heads, cfg.layers,
                          cfg.dropout, cfg.latent_dim, cfg.ff_dim, cfg.patch)


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


def _check_rows(name: str, rows: tuple[int, int], n: int) -> None:
    """Raise ConfigError unless ``rows`` is a non-empty range inside ``[0, n)``."""
    start, stop = rows
    if not 0 <= start < stop <= n:
        raise ConfigError(
            f"{name} rows must satisfy 0 <= start < stop <= {n} (rows of features); "
            f"got {tuple(rows)}. Fix: pass half-open row ranges of the 30-minute feature table."
        )


def _split_ends(values: np.ndarray, window: int, name: str, rows: tuple[int, int]) -> np.ndarray:
    """Window ends of one split; DataError if it has none."""
    ends = window_ends(values, window, rows)
    if ends.size == 0:
        raise DataError(
            f"the {name} split (rows {rows[0]}..{rows[1] - 1}) has no complete {window}-bar "
            "window without warm-up (NaN) rows",
            fix="use more data (the MMD features need ~480 warm-up bars) or a smaller rde.window",
        )
    return ends


def _beta(cfg: RDEConfig, epoch: int) -> float:
    """KL weight of 1-based ``epoch`` (linear warm-up)."""
    if cfg.kl_warmup_epochs == 0:
        return cfg.kl_weight
    return cfg.kl_weight * min(1.0, (epoch - 1) / cfg.kl_warmup_epochs)


@contextlib.contextmanager
def deterministic(seed: int) -> Iterator[None]:
    """Seed a forked global torch RNG and enforce deterministic algorithms inside."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def _train_epoch(model: RegimeDetector, optim: torch.optim.Optimizer, values: torch.Tensor,
                 ends: torch.Tensor, cfg: RDEConfig, beta: float, gen: torch.Generator) -> float:
    """One pass over shuffled training windows; mean training loss."""
    model.train()
    scale = cfg.window * model.n_features
    order = ends[torch.randperm(len(ends), generator=gen)]
    total = 0.0
    for i in range(0, len(order), cfg.batch_size):
        x = gather_windows(values, order[i:i + cfg.batch_size], cfg.window)
        recon, mu, logvar = model(x)
        loss = (recon - x).pow(2).mean() + beta * kl_divergence(mu, logvar).mean() / scale
        optim.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optim.step()
        total += float(loss.detach()) * len(x)
    return total / len(order)


@torch.no_grad()
def _evaluate(model: RegimeDetector, values: torch.Tensor, ends: torch.Tensor,
              window: int) -> tuple[float, float]:
    """``(recon MSE, mean KL per window)`` over the windows ending at ``ends`` (eval mode)."""
    model.eval()
    sse, kl = 0.0, 0.0
    for i in range(0, len(ends), ENCODE_BATCH):
        x = gather_windows(values, ends[i:i + ENCODE_BATCH], window)
        recon, mu, logvar = model(x)
        sse += float((recon - x).pow(2).sum())
        kl += float(kl_divergence(mu, logvar).sum())
    return sse / (len(ends) * window * model.n_features), kl / len(ends)


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


def _standardise(features: pd.DataFrame, normaliser: Normalizer) -> torch.Tensor:
    """Standardised float32 tensor of the normaliser's columns (NaN kept)."""
    missing = [c for c in normaliser.columns if c not in features.columns]
    if missing:
        raise DataError(
            f"features lack the regime detector's columns {missing}",
            fix=f"pass a table with columns {list(normaliser.columns)} (regime_features)",
        )
    return torch.from_numpy(normaliser.transform(features).to_numpy(np.float32).copy())


def _check_features(features: pd.DataFrame) -> None:
    """Raise DataError unless ``features`` is a non-empty numeric DataFrame."""
    if not isinstance(features, pd.DataFrame) or features.shape[1] == 0:
        raise DataError("features must be a pandas DataFrame with at least one column",
                        fix="pass regime_features(bars_30m)")
    if not all(pd.api.types.is_numeric_dtype(t) for t in features.dtypes):
        raise DataError("features must have numeric columns only",
                        fix="pass regime_features(bars_30m)")


def train_rde(
    features: pd.DataFrame,
    train: tuple[int, int],
    val: tuple[int, int],
    cfg: RDEConfig,
    out_dir: Path | str,
    report: Callable[[dict[str, float]], None] | None = None,
    *,
    log: Callable[[str], None] | None = None,
) -> RDEResult:
    """Fit the RDE on the train rows, early-stop on val rows, write the checkpoint."""
    _check_features(features)
    _check_rows("train", train, len(features))
    _check_rows("val", val, len(features))
    normaliser = Normalizer.fit(features, train)
    values = _standardise(features, normaliser)
    array = values.numpy()
    train_ends = torch.from_numpy(_split_ends(array, cfg.window, "train", train))
    val_ends = torch.from_numpy(_split_ends(array, cfg.window, "val", val))
    baseline = min(baseline_mse(values, val_ends, cfg.window),
                   linear_baseline_mse(values, train_ends, val_ends, cfg.window,
                                       cfg.latent_dim))
    say = log or logger.info
    with deterministic(cfg.seed):
        model = build_model(values.shape[1], cfg)
        optim = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        gen = torch.Generator().manual_seed(cfg.seed)
        history: list[dict[str, float]] = []
        best: tuple[float, int, float, dict[str, torch.Tensor]] | None = None
        for epoch in range(1, cfg.max_epochs + 1):
            start = time.perf_counter()
            train_loss = _train_epoch(model, optim, values, train_ends, cfg, _beta(cfg, epoch), gen)
            recon, kl = _evaluate(model, values, val_ends, cfg.window)
            val_loss = recon + cfg.kl_weight * kl / (cfg.window * values.shape[1])
            metrics = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                       "val_recon_mse": recon, "val_kl": kl, "baseline_recon_mse": baseline,
                       "beta": _beta(cfg, epoch), "epoch_seconds": time.perf_counter() - start}
            history.append(metrics)
            say(_progress_line(metrics, cfg))
            if report is not None:
                report(dict(metrics))
            if best is None or val_loss < best[0] - cfg.min_delta:
                best = (val_loss, epoch, recon, copy.deepcopy(model.state_dict()))
            elif epoch - max(best[1], cfg.kl_warmup_epochs + 1) >= cfg.patience:
                break
    assert best is not None
    model.load_state_dict(best[3])
    model.eval()
    result = RDEResult(Path(out_dir), best[1], best[0], best[2], baseline, len(history),
                       tuple(history))
    save_checkpoint(model, cfg, normaliser, tuple(normaliser.columns), result)
    return result


def _progress_line(m: dict[str, float], cfg: RDEConfig) -> str:
    """One human-readable line per epoch."""
    return (f"rde epoch {int(m['epoch'])}/{cfg.max_epochs}: train {m['train_loss']:.4f} "
            f"val {m['val_loss']:.4f} (recon {m['val_recon_mse']:.4f} vs baseline "
            f"{m['baseline_recon_mse']:.4f}, kl {m['val_kl']:.2f} nats, beta {m['beta']:.3g}) "
            f"{m['epoch_seconds']:.1f}s")


def _atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Write ``path`` via a temporary file in the same directory and ``os.replace``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(model: RegimeDetector, cfg: RDEConfig, normaliser: Normalizer,
                    feature_names: tuple[str, ...], result: RDEResult) -> None:
    """Write ``rde.pt`` (state dict) then ``rde.json`` (metadata) atomically."""
    out = Path(result.checkpoint_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "config": dataclasses.asdict(cfg),
        "features": list(feature_names),
        "normalizer": normaliser.to_dict(),
        "metrics": {k: v for k, v in dataclasses.asdict(result).items()
                    if k != "checkpoint_dir"},
    }
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    _atomic_write(out / CHECKPOINT_WEIGHTS, lambda p: torch.save(state, p))
    _atomic_write(out / CHECKPOINT_META,
                  lambda p: p.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8"))


def _corrupt(path: Path, problem: str) -> RDECheckpointError:
    """A checkpoint error naming the file and how to fix it."""
    return RDECheckpointError(
        f"{path}: {problem}. Fix: retrain the regime detector (train_rde) into "
        f"{path.parent}, or point to a directory with a complete rde.pt and rde.json."
    )


def _read_meta(path: Path) -> tuple[RDEConfig, Normalizer, tuple[str, ...]]:
    """Parse ``rde.json`` into config, normaliser and feature names."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise _corrupt(path, f"unsupported format {meta.get('format')!r} "
                                 f"(expected {CHECKPOINT_FORMAT})")
        cfg = build(RDEConfig, meta["config"], "rde")
        normaliser = Normalizer.from_dict(meta["normalizer"])
        names = tuple(str(n) for n in meta["features"])
    except RDECheckpointError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise _corrupt(path, f"unreadable checkpoint metadata ({err})") from None
    if names != normaliser.columns:
        raise _corrupt(path, "feature names and normaliser columns disagree")
    return cfg, normaliser, names


def load_rde(directory: Path | str) -> tuple[RegimeDetector, RDEConfig, Normalizer,
                                             tuple[str, ...]]:
    """Load ``(model in eval mode, config, normaliser, feature names)`` from a checkpoint."""
    root = Path(directory)
    missing = [n for n in (CHECKPOINT_WEIGHTS, CHECKPOINT_META) if not (root / n).is_file()]
    if missing:
        raise RDECheckpointError(
            f"no regime-detector checkpoint in {root}: {', '.join(missing)} missing. "
            "Fix: train it first (train_rde / phase 0) or point to the directory that holds "
            f"{CHECKPOINT_WEIGHTS} and {CHECKPOINT_META}."
        )
    cfg, normaliser, names = _read_meta(root / CHECKPOINT_META)
    weights = root / CHECKPOINT_WEIGHTS
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for truncated/garbled files
        raise _corrupt(weights, f"unreadable weights ({type(err).__name__})") from None
    model = build_model(len(names), cfg)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as err:
        raise _corrupt(weights, f"weights do not match rde.json ({err})") from None
    model.eval()
    return model, cfg, normaliser, names


@torch.no_grad()
def encode_all(model: RegimeDetector, normaliser: Normalizer, features: pd.DataFrame,
               window: int, batch_size: int = ENCODE_BATCH) -> np.ndarray:
    """Latent ``mu`` (N x latent_dim, float32) of the window ending at each row; NaN if none."""
    if window != model.window:
        raise ConfigError(f"window {window} differs from the model's window {model.window}; "
                          "Fix: pass the window of the config the model was trained with.")
    values = _standardise(features, normaliser)
    ends = window_ends(values.numpy(), window, (0, len(features)))
    out = np.full((len(features), model.latent_dim), np.nan, dtype=np.float32)
    model.eval()
    for i in range(0, len(ends), batch_size):
        chunk = ends[i:i + batch_size]
        x = gather_windows(values, torch.from_numpy(chunk), window)
        out[chunk] = model.encode(x).numpy()
    return out
