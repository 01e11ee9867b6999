"""The arrays every environment reads, built once and shared.

``load_market(cfg)`` prepares the data (or finds it in the feature store),
derives every array the envs index by an integer step — OHLC, the per-agent
feature tables, the market part of the global state, ATR, the 30-minute
alignment — writes them as ``.npy`` files next to the prepared tables, and
maps them read-only. Within a process every env with the same data settings
gets the same :class:`MarketArrays` object; across processes on one machine
the memory-mapped files share the OS page cache. An extra env therefore
costs its own small buffers only.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from algospace.config import EnvConfig
from algospace.data.contracts import ContractSpec
from algospace.data.splits import Splits
from algospace.data.walkforward import (
    NORMALISED,
    Fold,
    episode_bars,
    fold_meta,
    fold_normalisation,
    resolve_gaps,
    walk_forward_fold,
)
from algospace.errors import DataError
from algospace.features.build import (
    STRATEGIC_FEATURES,
    SYNERGY_FEATURES,
    TACTICAL_FEATURES,
    FeatureConfig,
)
from algospace.features.latents import DETECTORS_KEY, FOLD_RECORD, latent_table, pick_detector
from algospace.features.pipeline import Prepared, prepare
from algospace.files import publish_dir
from algospace.market.sizing import contract_of
from algospace.schema import to_dict
from envs.core.derive import Standardiser, derive_rows
from envs.core.layout import LATENT_DIM

STRATEGIC_EPISODE_STEPS = 92
"""strategic_v0's default episode (30-minute steps), the longest default in base bars."""
ARRAYS_VERSION = 2
"""Bump when what the saved arrays mean changes (2: the rolling means sum their window only,
:func:`envs.core.derive.window_mean`, which may move a float32 value by one ulp)."""

_CACHE: dict[str, MarketArrays] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class MarketArrays:
    """Read-only arrays on the 5-minute (``T`` rows) and 30-minute (``S`` rows) clocks."""

    key: str
    """Identifies the data and array settings (cache key)."""
    contract: ContractSpec
    """Contract whose point value and costs the account uses."""
    splits: Splits
    """Chronological splits as 5-minute row ranges."""
    strategic_window: int
    """Rows of a strategic agent's window."""
    tactical_window: int
    """Rows of a tactical agent's window."""
    arrays: dict[str, np.ndarray]
    """``base_ohlc`` (T×4 float64), ``strategic_ohlc`` (S×4), ``strategic_index`` (T, latest
    closed 30-minute row), ``close_step`` (S, the 5-minute row where it closed, -1 none),
    ``is_close`` (T), ``atr`` (T, points), ``market_state`` (T×55 float32), ``usable`` (T),
    ``s_<agent>``/``t_<agent>`` per-agent tables, ``latent`` (S×8)."""
    reference_price: float = float("nan")
    """The training split's highest close: the price the default position limit is sized at
    (:mod:`algospace.market.sizing`)."""
    train_mask: np.ndarray | None = None
    """Per 5-minute row, whether it is a training bar (a walk-forward fold's training ranges,
    its embargo holes False); None: every row of ``splits.train``."""

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def split_rows(self, split: str, usable: np.ndarray) -> tuple[int, int, np.ndarray]:
        """``split``'s ``(start, stop)`` rows and ``usable`` with the rows an episode of it may
        not visit switched off (on train: a walk-forward fold's embargo holes)."""
        lo, hi = self.splits.range(split)
        if split == "train" and self.train_mask is not None:
            usable = usable & self.train_mask
        return lo, hi, usable

    @property
    def n_base(self) -> int:
        """Number of 5-minute rows."""
        return len(self.arrays["base_ohlc"])


def load_market(cfg: EnvConfig, log: Callable[[str], None] | None = None) -> MarketArrays:
    """The shared arrays for ``cfg``'s data settings (prepared and written on first use)."""
    ident = json.dumps({"data": to_dict(cfg.data), "atr": cfg.atr_bars,
                        "latent": cfg.regime_latent, "detector": cfg.regime_detector,
                        "capital": cfg.initial_equity,
                        "leverage": cfg.leverage_cap, "fold": cfg.fold,
                        "walk_forward": to_dict(cfg.walk_forward) if cfg.fold is not None
                        else None,
                        "episode": cfg.episode_steps if cfg.fold is not None else None},
                       sort_keys=True, default=str)
    with _LOCK:
        if ident in _CACHE:
            return _CACHE[ident]
        prepared = prepare(cfg.data, log=log or (lambda _: None))
        market = _load_or_build(prepared, cfg)
        _CACHE[ident] = market
        return market


def _load_or_build(prepared: Prepared, cfg: EnvConfig) -> MarketArrays:
    """Map the saved arrays of this entry, building them first if missing."""
    meta = prepared.meta
    detector = pick_detector(meta, prepared.path, cfg.regime_detector)[0] \
        if cfg.regime_latent else None
    fold = env_fold(prepared, cfg)
    settings = {"v": ARRAYS_VERSION, "atr": cfg.atr_bars, "latent": cfg.regime_latent,
                "detector": detector,
                "regime": (meta.get(DETECTORS_KEY) or {}).get(detector) if detector else None}
    splits, train_mask = prepared.splits, None
    record = (meta.get(DETECTORS_KEY) or {}).get(detector) if detector else None
    if detector is not None:
        check_fold_detector(detector, record, fold)
    if fold is not None:
        settings["fold"] = fold.as_dict()
        meta = fold_meta_of(prepared, fold)
        splits = Splits(train=(fold.train[0][0], fold.train[-1][1]), val=fold.val,
                        test=fold.test)
        train_mask = fold.train_mask(len(prepared.strategic_index))
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    folder = prepared.path / f"env-arrays-{digest.hexdigest()[:12]}"
    if not folder.is_dir():
        _write_atomic(folder, build_arrays(prepared, replace(cfg, regime_detector=detector),
                                           meta))
    arrays = {p.stem: np.load(p, mmap_mode="r") for p in sorted(folder.glob("*.npy"))}
    features = FeatureConfig(**meta["features"])
    contract, _ = contract_of(meta, cfg)
    return MarketArrays(f"{prepared.key}/{folder.name}", contract, splits,
                        features.strategic_window, features.tactical_window, arrays,
                        float(meta["reference_price"]), train_mask)


def env_fold(prepared: Prepared, cfg: EnvConfig) -> Fold | None:
    """The walk-forward fold ``cfg.fold`` over ``prepared``'s bars (None: no fold).

    ``purge_bars: auto`` counts one episode of ``cfg.episode_steps`` strategic steps (or the
    longest default episode, strategic_v0's 92 30-minute steps): never shorter than the
    episode of any env, so the gap holds for every phase.
    """
    if cfg.fold is None or cfg.walk_forward is None:
        return None
    wf = cfg.walk_forward
    features = FeatureConfig(**prepared.meta["features"])
    bar, strategic = prepared.base.bar_minutes, prepared.strategic.bar_minutes
    episode = episode_bars(cfg.episode_steps or STRATEGIC_EPISODE_STEPS, True, bar, strategic)
    purge, embargo = resolve_gaps(wf.purge_bars, wf.embargo_bars, features, bar, strategic,
                                  episode)
    return walk_forward_fold(prepared.base.open_time, cfg.fold, **wf.layout(),
                             purge_bars=purge, embargo_bars=embargo, snap_minutes=strategic)


def check_fold_detector(detector: str, record: Mapping[str, Any] | None,
                        fold: Fold | None) -> None:
    """A :class:`DataError` unless detector ``detector`` (its ``record`` in the prepared
    data) was fitted on ``fold``'s training bars: a fold never reads latents of a detector
    that saw other bars (another fold's, or ``data.split``'s train split); and a fold's
    detector is read by that fold only (``fold`` None: ``data.split``'s env)."""
    fitted = (record or {}).get(FOLD_RECORD)
    if fold is None:
        if fitted:
            raise DataError(f"regime detector {detector} was fitted for walk-forward fold "
                            f"{fitted.get('fold')} (on its training bars "
                            f"{fitted.get('train')}); only that fold reads it",
                            fix="name a detector trained by rde.yaml (handoff.regime)")
        return
    if fitted and fitted.get("fold") == fold.index \
            and fitted.get("train") == [list(r) for r in fold.train]:
        return
    where = f"fold {fitted.get('fold')}'s training bars {fitted.get('train')}" if fitted \
        else "data.split's train split (not per fold)"
    raise DataError(f"walk-forward fold {fold.index} reads regime detector {detector}, which "
                    f"was fitted on {where}, not on this fold's training bars "
                    f"{[list(r) for r in fold.train]}",
                    fix="run the phase through `python -m experiments.run` (it fits one "
                        "detector per fold and gives each fold its own)")


def fold_meta_of(prepared: Prepared, fold: Fold) -> dict[str, Any]:
    """``prepared.meta`` with ``fold``'s train-only normalisation and reference price."""
    tables = {name: prepared.table(name) for name, _ in NORMALISED}
    norms = fold_normalisation(tables, prepared.strategic_index, fold)
    return fold_meta(prepared.meta, fold, norms, prepared.base.frame["close"].to_numpy())


def stored_tables(prepared: Prepared) -> set[str]:
    """Names of the tables stored for this entry."""
    return {p.stem for p in Path(prepared.path).glob("*.parquet")}


def _write_atomic(folder: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write every array into a temporary sibling folder, then rename it into place."""
    def fill(tmp: Path) -> None:
        for name, values in arrays.items():
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(values))

    publish_dir(folder, fill, prefix=f".tmp-{folder.name}-")


def build_arrays(prepared: Prepared, cfg: EnvConfig,
                 meta: Mapping[str, Any] | None = None) -> dict[str, np.ndarray]:
    """Derive every env array from a prepared dataset (the slow, once-only part); ``meta``:
    the prepared meta to use (a walk-forward fold's, :func:`fold_meta_of`)."""
    tables = {name: prepared.table(name) for name in DERIVED_FROM}
    latent = _latent(prepared, cfg, len(tables["features_strategic"]))
    return derive_arrays(tables, prepared.meta if meta is None else meta, prepared.base.frame,
                         prepared.strategic.frame, prepared.strategic_index, latent,
                         cfg.atr_bars)


DERIVED_FROM: tuple[str, ...] = ("features_strategic", "features_tactical", "returns_strategic",
                                 "returns_base", "synergy")
"""The prepared tables the env arrays are derived from (besides bars and latents)."""


def derive_arrays(tables: Mapping[str, pd.DataFrame], meta: Mapping[str, Any],
                  base: pd.DataFrame, strategic: pd.DataFrame, strategic_index: np.ndarray,
                  latent: np.ndarray, atr_bars: int) -> dict[str, np.ndarray]:
    """Every env array from the feature tables, bars and latents (see :class:`MarketArrays`).

    ``meta`` gives the feature settings and the train-split normalisation. The arithmetic is
    :func:`envs.core.derive.derive_rows`, which the decision engine's bar-by-bar path
    (:mod:`algospace.inference.stream`) calls on its tail, so a row means the same in both.
    """
    return derive_rows(
        strategic=tables["features_strategic"][list(STRATEGIC_FEATURES)].to_numpy(),
        returns_strategic=tables["returns_strategic"]["log_return"].to_numpy(),
        tactical=tables["features_tactical"][list(TACTICAL_FEATURES)].to_numpy(),
        returns_base=tables["returns_base"]["log_return"].to_numpy(),
        synergy=tables["synergy"][list(SYNERGY_FEATURES)].to_numpy(np.float32),
        base_ohlc=base[["open", "high", "low", "close"]].to_numpy(np.float64),
        strategic_ohlc=strategic[["open", "high", "low", "close"]].to_numpy(np.float64),
        strategic_index=strategic_index, latent=latent, norms=Standardiser.of(meta),
        features=FeatureConfig(**meta["features"]), atr_bars=atr_bars)


def _latent(prepared: Prepared, cfg: EnvConfig, rows: int) -> np.ndarray:
    """Regime latent μ per 30-minute row (of detector ``cfg.regime_detector``, or the only
    one the data holds), or zeros when switched off."""
    if not cfg.regime_latent:
        return np.zeros((rows, LATENT_DIM), np.float32)
    detector = pick_detector(prepared.meta, prepared.path, cfg.regime_detector)[0]
    name = latent_table(detector)
    table = prepared.table(name).to_numpy(np.float32)
    if table.shape != (rows, LATENT_DIM):
        raise DataError(f"table {name} has shape {table.shape}, expected "
                        f"({rows}, {LATENT_DIM})", path=str(prepared.path),
                        fix="train a regime detector with rde.latent_dim: "
                            f"{LATENT_DIM} (rde.yaml) and name it in handoff.regime")
    return table


def describe(market: MarketArrays) -> dict[str, Any]:
    """A short JSON-friendly summary (for env metadata and logs)."""
    return {"key": market.key, "contract": market.contract.symbol, "rows": market.n_base,
            "splits": {"train": market.splits.train, "val": market.splits.val,
                       "test": market.splits.test}}
