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

from algospace.config import STRATEGIC_AGENTS, TACTICAL_AGENTS, EnvConfig
from algospace.data.contracts import ContractSpec
from algospace.data.splits import Normalizer, Splits
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
from algospace.features.assembler import MatrixAssembler
from algospace.features.build import (
    STRATEGIC_FEATURES,
    SYNERGY_FEATURES,
    TACTICAL_FEATURES,
    FeatureConfig,
)
from algospace.features.latents import DETECTORS_KEY, latent_table, pick_detector
from algospace.features.pipeline import Prepared, prepare
from algospace.files import publish_dir
from algospace.market.sizing import contract_of
from algospace.schema import to_dict
from envs.core.layout import (
    AGENT_COLUMNS,
    LATENT_DIM,
    RETURN_5,
    RETURN_30,
    SHORT_MEAN_BARS,
    market_state_dim,
)

STRATEGIC_EPISODE_STEPS = 92
"""strategic_v0's default episode (30-minute steps), the longest default in base bars."""
ARRAYS_VERSION = 1
"""Bump when what the saved arrays mean changes."""

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

    The batch path (:func:`build_arrays`) and the decision engine's bar-by-bar path
    (:mod:`algospace.inference.stream`) both come here, so a row means the same in both.
    ``meta`` gives the feature settings and the train-split normalisation.
    """
    features = FeatureConfig(**meta["features"])
    norms = meta["normalisation"]
    strat = _standardise(tables["features_strategic"], STRATEGIC_FEATURES,
                         norms["features_strategic"])
    tact = _standardise(tables["features_tactical"], TACTICAL_FEATURES,
                        norms["features_tactical"])
    strat[RETURN_30] = _standardise(tables["returns_strategic"], ("log_return",),
                                    norms["returns_strategic"])["log_return"]
    tact[RETURN_5] = _standardise(tables["returns_base"], ("log_return",),
                                  norms["returns_base"])["log_return"]
    index = np.asarray(strategic_index, dtype=np.int64)
    base_ohlc = base[["open", "high", "low", "close"]].to_numpy(np.float64)
    out: dict[str, np.ndarray] = {
        "base_ohlc": base_ohlc,
        "strategic_ohlc": strategic[["open", "high", "low", "close"]].to_numpy(np.float64),
        "strategic_index": index,
        "close_step": _close_steps(index, len(strat)),
        "is_close": _is_close(index),
        "atr": average_true_range(base_ohlc, atr_bars),
        "latent": latent,
    }
    synergy = tables["synergy"][list(SYNERGY_FEATURES)].to_numpy(np.float32)
    # one conversion per table, then columns by position (pandas column lookups dominate
    # the cost of the decision engine's per-bar update otherwise)
    strat_np, strat_at = strat.to_numpy(np.float32), {c: i for i, c in enumerate(strat.columns)}
    tact_np, tact_at = tact.to_numpy(np.float32), {c: i for i, c in enumerate(tact.columns)}
    out["market_state"] = market_state(strat_np[:, [strat_at[c] for c in STRATEGIC_FEATURES]],
                                       tact_np[:, [tact_at[c] for c in TACTICAL_FEATURES]],
                                       latent, synergy, index, features.strategic_window)
    valid = np.isfinite(out["market_state"]).all(axis=1) & (index >= 0)
    for agent in STRATEGIC_AGENTS:
        table = strat_np[:, [strat_at[c] for c in AGENT_COLUMNS[agent]]]
        out[f"s_{agent}"] = table
        ok = MatrixAssembler(table, features.strategic_window).valid
        valid &= ok[np.maximum(index, 0)]
    for agent in TACTICAL_AGENTS:
        table = tact_np[:, [tact_at[c] for c in AGENT_COLUMNS[agent]]]
        out[f"t_{agent}"] = table
        valid &= MatrixAssembler(table, features.tactical_window).valid
    valid &= np.isfinite(out["atr"])
    out["usable"] = valid
    return out


def _standardise(frame: pd.DataFrame, names: tuple[str, ...],
                 stats: dict[str, dict[str, float]]) -> pd.DataFrame:
    """Columns ``names`` standardised with the train-split statistics."""
    return Normalizer.from_dict(stats).select(names).transform(frame)


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


def _close_steps(index: np.ndarray, rows: int) -> np.ndarray:
    """For each 30-minute row, the first 5-minute row at which it is visible (-1: never)."""
    out = np.full(rows, -1, dtype=np.int64)
    steps = np.flatnonzero(_is_close(index))
    out[index[steps]] = steps
    return out


def _is_close(index: np.ndarray) -> np.ndarray:
    """True at 5-minute rows where a new 30-minute bar has just closed."""
    prev = np.r_[-1, index[:-1]]
    return (index >= 0) & (index != prev)


def average_true_range(ohlc: np.ndarray, bars: int) -> np.ndarray:
    """Mean true range over the last ``bars`` bars, including the current one (NaN before)."""
    high, low, close = ohlc[:, 1], ohlc[:, 2], ohlc[:, 3]
    prev = np.r_[np.nan, close[:-1]]
    tr = np.fmax(high - low, np.fmax(np.abs(high - prev), np.abs(low - prev)))
    mean = pd.Series(tr).rolling(bars, min_periods=bars).mean().to_numpy()
    return np.asarray(mean, dtype=np.float64)


def _rolling_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last ``window`` rows (NaN until complete or when any is NaN)."""
    return pd.DataFrame(values).rolling(window, min_periods=window).mean().to_numpy(np.float32)


def market_state(strat: np.ndarray, tact: np.ndarray, latent: np.ndarray, synergy: np.ndarray,
                 index: np.ndarray, window: int) -> np.ndarray:
    """The market blocks of the global state per 5-minute row (see layout.state_blocks)."""
    seen = index >= 0
    rows = np.maximum(index, 0)
    strat_blocks = np.concatenate([strat, _rolling_mean(strat, window), latent], axis=1)[rows]
    strat_blocks[~seen] = np.nan
    now, mean48, lat = np.split(strat_blocks, [strat.shape[1], 2 * strat.shape[1]], axis=1)
    out = np.concatenate([now, mean48, tact, _rolling_mean(tact, SHORT_MEAN_BARS), lat,
                          synergy], axis=1).astype(np.float32)
    assert out.shape[1] == market_state_dim()
    return out


def describe(market: MarketArrays) -> dict[str, Any]:
    """A short JSON-friendly summary (for env metadata and logs)."""
    return {"key": market.key, "contract": market.contract.symbol, "rows": market.n_base,
            "splits": {"train": market.splits.train, "val": market.splits.val,
                       "test": market.splits.test}}
