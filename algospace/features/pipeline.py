"""``prepare``: from a data config to a prepared, cached dataset.

Steps: load and validate the CSV (or generate the built-in market, only
when the config says ``source: synthetic``), resample base bars into
strategic bars (checking a user-given strategic file against them), align
strategic bars onto base steps causally, split chronologically, fit
normalisation on the training split, and write everything to the store.
A second call with the same inputs and config reads the store instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from algospace.config import DataConfig
from algospace.data.bars import Bars
from algospace.data.loader import load_bars
from algospace.data.resample import align_index, check_agreement, resample
from algospace.data.splits import (
    SPLIT_NAMES,
    Normalizer,
    Splits,
    chronological_split,
    strategic_rows,
)
from algospace.data.synthetic import generate
from algospace.data.validate import gap_summary
from algospace.errors import DataError
from algospace.features import shipping
from algospace.features.assembler import FeatureMatrices, MatrixAssembler
from algospace.features.build import (
    STRATEGIC_FEATURES,
    TACTICAL_FEATURES,
    FeatureConfig,
    strategic_features,
    synergy_features,
    tactical_features,
)
from algospace.features.store import FeatureStore, file_digest, store_key
from algospace.market import oracle
from algospace.schema import to_dict

Log = Callable[[str], None]

@dataclass(frozen=True)
class Prepared:
    """A prepared dataset: bars, alignment, splits and the store entry holding them."""

    key: str
    path: Path
    base: Bars
    strategic: Bars
    strategic_index: np.ndarray
    """Per base bar, the index of the latest closed strategic bar (-1 before the first)."""
    splits: Splits
    meta: dict[str, Any]
    cache_hit: bool
    store: FeatureStore = field(repr=False)

    def table(self, name: str) -> pd.DataFrame:
        """Read another table of this entry (features, latents, …)."""
        return self.store.read(self.key, name)

    def matrices(self, feature_cfg: FeatureConfig | None = None) -> FeatureMatrices:
        """Both matrix assemblers over the features, standardised with train-split statistics."""
        cfg = feature_cfg or FeatureConfig(**self.meta["features"])
        norms = self.meta["normalisation"]
        strategic = _standardised(self.table("features_strategic"), STRATEGIC_FEATURES,
                                  Normalizer.from_dict(norms["features_strategic"]))
        tactical = _standardised(self.table("features_tactical"), TACTICAL_FEATURES,
                                 Normalizer.from_dict(norms["features_tactical"]))
        return FeatureMatrices(MatrixAssembler(strategic, cfg.strategic_window),
                               MatrixAssembler(tactical, cfg.tactical_window),
                               self.strategic_index)


def _standardised(frame: pd.DataFrame, names: tuple[str, ...], norm: Normalizer) -> np.ndarray:
    """Columns ``names`` of ``frame``, standardised, as float32."""
    return norm.select(names).transform(frame).to_numpy(np.float32)


def _quiet(_: str) -> None:
    """Default progress sink: say nothing."""


def bar_returns(bars: Bars) -> pd.DataFrame:
    """Causal per-bar basics: log return, log range and log volume."""
    close = bars.column("close")
    with np.errstate(divide="ignore"):
        log_return = np.r_[np.nan, np.diff(np.log(close))]
    return pd.DataFrame(
        {
            "log_return": log_return,
            "log_range": np.log(bars.column("high") / bars.column("low")),
            "log_volume": np.log1p(bars.column("volume")),
        },
        index=bars.frame.index,
    )


def _inputs(cfg: DataConfig) -> list[str]:
    """Content digests identifying the inputs (files, or synthetic parameters)."""
    if cfg.source == "synthetic":
        return ["synthetic:" + repr(sorted(to_dict(cfg.synthetic).items()))]
    paths = [p for p in (cfg.path, cfg.strategic_path) if p]
    for p in paths:
        if not Path(p).is_file():
            raise DataError("file not found", path=p,
                            fix="check data.path / data.strategic_path (quote names with spaces)")
    return [file_digest(p) for p in paths]


def _key_config(cfg: DataConfig, features: FeatureConfig) -> dict[str, Any]:
    """The parts of the config that change what is stored (not paths or cache location)."""
    keep = to_dict(cfg)
    for name in ("path", "strategic_path", "cache_dir", "symbol"):
        keep.pop(name)
    if cfg.source == "csv":
        keep.pop("synthetic")
    keep["contract"] = to_dict(cfg.contract_spec())
    keep["has_strategic_file"] = cfg.strategic_path is not None
    keep["features"] = to_dict(features)
    return keep


def prepare(
    cfg: DataConfig,
    features: FeatureConfig | None = None,
    *,
    force: bool = False,
    log: Log = _quiet,
) -> Prepared:
    """Prepare (or find in the cache) the dataset described by ``cfg`` and ``features``.

    In a Ray worker that the driver provided this data to (:mod:`algospace.features.shipping`),
    the driver's entry is read — copied from the driver first if this machine lacks it —
    and the CSV is never opened.
    """
    features = features or FeatureConfig()
    shipped = None if force else shipping.provided(cfg, features)
    if shipped is not None:
        return _read(shipping.local_store(cfg, shipped), shipped.key)
    store = FeatureStore(cfg.cache_dir)
    store.clean_temporary()
    key = store_key(_inputs(cfg), _key_config(cfg, features))
    if store.exists(key) and not force:
        log(f"found prepared data {key} in {store.root}")
        return _read(store, key)
    return _build(cfg, features, store, key, log)


def _timed(log: Log, what: str, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` and log how long it took."""
    start = time.perf_counter()
    out = fn()
    log(f"{what} in {time.perf_counter() - start:.1f} s")
    return out


def _load_base(cfg: DataConfig, log: Log) -> tuple[Bars, pd.DataFrame | None, dict[str, Any]]:
    """Base bars, the synthetic ground truth (if synthetic) and source info for meta.

    On the built-in market the truth holds, per bar, the regime, each planted component's
    expected drift and the model sigma (points), and the causal oracles' unit positions;
    meta gets the oracles' figures over the whole market (:mod:`algospace.market.oracle`)
    for the config's contract, $100k and the limit at the training split's highest close.
    """
    if cfg.source == "synthetic":
        market = _timed(log, f"generated synthetic market ({cfg.synthetic.days} days)",
                        lambda: generate(cfg.synthetic))
        splits = chronological_split(market.bars.open_time, cfg.split, cfg.strategic_minutes)
        account = oracle.default_account(market, cfg.contract_spec(),
                                         reference_price=reference_price(market.bars, splits))
        truth, figures = _timed(log, "computed the oracles",
                                lambda: oracle.oracle_truth(market, account))
        return market.bars, truth, {"source": market.bars.source, **figures}
    path = str(cfg.path)
    bars = _timed(log, f"loaded and validated {path}",
                  lambda: load_bars(path, dayfirst=cfg.dayfirst, timestamps=cfg.timestamps))
    return bars, None, {"source": path}


def _feature_tables(base: Bars, strategic: Bars, index: np.ndarray,
                    cfg: FeatureConfig) -> dict[str, pd.DataFrame]:
    """Strategic, tactical and synergy feature tables (float32)."""
    strat = strategic_features(strategic, cfg)
    tact = tactical_features(base, cfg)
    syn = synergy_features(strat, tact, index, cfg)
    return {"features_strategic": strat.astype(np.float32),
            "features_tactical": tact.astype(np.float32),
            "synergy": syn.astype(np.float32)}


def _build(cfg: DataConfig, features: FeatureConfig, store: FeatureStore, key: str,
           log: Log) -> Prepared:
    """Run every preparation step and write the store entry."""
    base, truth, info = _load_base(cfg, log)
    log(f"{len(base):,} bars of {base.bar_minutes} min, "
        f"{base.open_time[0]} to {base.open_time[-1]}")
    strategic = resample(base, cfg.strategic_minutes)
    if cfg.strategic_path:
        given = load_bars(cfg.strategic_path, dayfirst=cfg.dayfirst, timestamps=cfg.timestamps)
        check_agreement(strategic, given, cfg.contract_spec().tick_size)
        log(f"{cfg.strategic_path} agrees with bars resampled from {cfg.path}")
    index = align_index(base, strategic)
    splits = chronological_split(base.open_time, cfg.split, cfg.strategic_minutes)
    base_ret, strat_ret = bar_returns(base), bar_returns(strategic)
    strat_train = strategic_rows(index, splits.train)
    feats = _timed(log, "computed features", lambda: _feature_tables(base, strategic, index,
                                                                      features))
    norms = {"returns_base": Normalizer.fit(base_ret, splits.train),
             "returns_strategic": Normalizer.fit(strat_ret, strat_train),
             "features_tactical": Normalizer.fit(feats["features_tactical"], splits.train),
             "features_strategic": Normalizer.fit(feats["features_strategic"], strat_train)}
    tables = {
        **feats,
        "bars_base": base.frame,
        "bars_strategic": strategic.frame,
        "align": pd.DataFrame({"strategic_index": index}, index=base.frame.index),
        "returns_base": base_ret,
        "returns_strategic": strat_ret,
    }
    if truth is not None:
        tables["synthetic_truth"] = truth
    meta = {
        **info,
        "created": pd.Timestamp.now().isoformat(timespec="seconds"),
        "config": to_dict(cfg),
        "contract": to_dict(cfg.contract_spec()),
        "bar_minutes": base.bar_minutes,
        "strategic_minutes": cfg.strategic_minutes,
        "rows": {"base": len(base), "strategic": len(strategic)},
        "first": str(base.open_time[0]),
        "last": str(base.open_time[-1]),
        "gaps": gap_summary(base.open_time, base.bar_minutes),
        "splits": _split_meta(base, splits),
        "normalisation": {name: n.to_dict() for name, n in norms.items()},
        "normalisation_fitted_on": "train",
        "reference_price": reference_price(base, splits),
        "features": to_dict(features),
    }
    path = _timed(log, f"wrote prepared data {key}", lambda: store.write(key, tables, meta))
    return Prepared(key, path, base, strategic, index, splits, store.meta(key), False, store)


def _split_meta(base: Bars, splits: Splits) -> dict[str, Any]:
    """Rows and date range of each split."""
    out = {}
    for name in SPLIT_NAMES:
        a, b = splits.range(name)
        out[name] = {"rows": [a, b], "first": str(base.open_time[a]),
                     "last": str(base.open_time[b - 1])}
    return out


def reference_price(base: Bars, splits: Splits) -> float:
    """The training split's highest close: what the default position limit is sized at."""
    lo, hi = splits.train
    return float(np.max(base.column("close")[lo:hi]))


def _read(store: FeatureStore, key: str) -> Prepared:
    """Load a prepared entry from the store."""
    meta = store.meta(key)
    base = Bars(store.read(key, "bars_base"), int(meta["bar_minutes"]), meta["source"])
    strategic = Bars(store.read(key, "bars_strategic"), int(meta["strategic_minutes"]),
                     meta["source"])
    index = store.read(key, "align")["strategic_index"].to_numpy()
    sp = meta["splits"]
    splits = Splits(*(tuple(sp[name]["rows"]) for name in SPLIT_NAMES))
    if "reference_price" not in meta:  # entries prepared before position limits existed
        meta = {**meta, "reference_price": reference_price(base, splits)}
    return Prepared(key, store.path(key), base, strategic, index, splits, meta, True, store)
