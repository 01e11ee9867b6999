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
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from algospace.config import RDEConfig
from algospace.data.splits import Normalizer
from algospace.errors import AlgoSpaceError, ConfigError, DataError
from algospace.files import atomic_write, write_json
from algospace.regime.latents import (
    ENCODE_BATCH,
    baseline_mse,
    beats_baseline,
    gather_windows,
    linear_baseline_mse,
    standardise,
    window_ends,
)
from algospace.regime.model import RegimeDetector, kl_divergence
from algospace.schema import build

CHECKPOINT_WEIGHTS = "rde.pt"
"""File name of the state dict inside a checkpoint directory."""
CHECKPOINT_META = "rde.json"
"""File name of the config, normaliser, feature names and metrics."""
CHECKPOINT_FORMAT = 1
"""Version of the ``rde.json`` layout."""
logger = logging.getLogger(__name__)


class RDECheckpointError(AlgoSpaceError):
    """A regime-detector checkpoint is missing, corrupt or does not fit its config."""


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


def build_model(n_features: int, cfg: RDEConfig) -> RegimeDetector:
    """A fresh :class:`RegimeDetector` for ``n_features`` inputs with ``cfg``'s sizes."""
    return RegimeDetector(n_features, cfg.window, cfg.d_model, cfg.heads, cfg.layers,
                          cfg.dropout, cfg.latent_dim, cfg.ff_dim, cfg.patch)


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


def _check_features(features: pd.DataFrame) -> None:
    """Raise DataError unless ``features`` is a non-empty numeric DataFrame."""
    if not isinstance(features, pd.DataFrame) or features.shape[1] == 0:
        raise DataError("features must be a pandas DataFrame with at least one column",
                        fix="pass regime_features(bars_30m)")
    if not all(pd.api.types.is_numeric_dtype(t) for t in features.dtypes):
        raise DataError("features must have numeric columns only",
                        fix="pass regime_features(bars_30m)")


def train_window_ends(values: np.ndarray, window: int,
                      ranges: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Ends of the training windows that lie wholly inside one of ``ranges`` (a walk-forward
    fold's training ranges): no window reads a row outside them."""
    parts = [window_ends(values, window, (a + window - 1, b)) for a, b in ranges
             if b - a >= window]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _train_rows(train: tuple[int, int] | tuple[tuple[int, int], ...]
                ) -> tuple[tuple[tuple[int, int], ...], bool]:
    """``(train as ranges, whether it was given as one plain (start, stop) pair)``."""
    if all(isinstance(x, int | np.integer) for x in train):
        start, stop = train
        return ((int(start), int(stop)),), True  # type: ignore[arg-type]
    return tuple((int(a), int(b)) for a, b in train), False  # type: ignore[misc]


def train_rde(
    features: pd.DataFrame,
    train: tuple[int, int] | tuple[tuple[int, int], ...],
    val: tuple[int, int],
    cfg: RDEConfig,
    out_dir: Path | str,
    report: Callable[[dict[str, float]], None] | None = None,
    *,
    log: Callable[[str], None] | None = None,
) -> RDEResult:
    """Fit the RDE on the train rows, early-stop on val rows, write the checkpoint.

    ``train``: one ``(start, stop)`` range (a window may start before it), or a tuple of
    ranges (a walk-forward fold's training): then the normaliser is fitted on their rows
    and every training window lies wholly inside one of them, so nothing else is read.
    """
    _check_features(features)
    ranges, plain = _train_rows(train)
    for part in ranges:
        _check_rows("train", part, len(features))
    _check_rows("val", val, len(features))
    if plain:
        normaliser = Normalizer.fit(features, ranges[0])
    else:
        rows = np.concatenate([np.arange(a, b) for a, b in ranges])
        normaliser = Normalizer.fit(features.iloc[rows], (0, len(rows)))
    values = standardise(features, normaliser)
    array = values.numpy()
    if plain:
        ends = _split_ends(array, cfg.window, "train", ranges[0])
    else:
        ends = train_window_ends(array, cfg.window, ranges)
        if ends.size == 0:
            raise DataError(f"the training ranges {[list(r) for r in ranges]} hold no "
                            f"complete {cfg.window}-bar window without warm-up (NaN) rows",
                            fix="use more data or fewer walk-forward folds, or a smaller "
                                "rde.window")
    train_ends = torch.from_numpy(ends)
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
    return (f"epoch {int(m['epoch'])}/{cfg.max_epochs}: train {m['train_loss']:.4f} "
            f"val {m['val_loss']:.4f} (recon {m['val_recon_mse']:.4f} vs baseline "
            f"{m['baseline_recon_mse']:.4f}, kl {m['val_kl']:.2f} nats, beta {m['beta']:.3g}) "
            f"{m['epoch_seconds']:.1f}s")


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
    atomic_write(out / CHECKPOINT_WEIGHTS, lambda p: torch.save(state, p))
    write_json(out / CHECKPOINT_META, meta, indent=2)


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
