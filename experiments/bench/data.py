"""The data benchmark: five years of 5-minute bars through loading, features, RDE and prepare.

The synthetic market (1260 trading days by default, about 350,000 rows) is
written to CSV; then, each in a fresh process, load + validate + resample +
align (time and peak memory), all features and both matrices (time and peak
memory), RDE inference over every 30-minute bar, a cold ``prepare`` and a
cached one. Targets: load/validate/resample < 15 s and < 1.5 GB; features
< 60 s and < 3 GB; RDE inference < 30 s; cached < 1 s.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from experiments.bench.common import Figures, peak_rss_mb, run_child

DEFAULT_DAYS = 1260
"""Trading days of the market (5 years)."""


def child_load(csv: str) -> Figures:
    """Load + validate + resample + align one CSV; report time and peak memory."""
    from algospace.data.loader import load_bars
    from algospace.data.resample import align_index, resample

    baseline = peak_rss_mb()
    start = time.perf_counter()
    bars = load_bars(csv)
    loaded = time.perf_counter()
    strategic = resample(bars, 30)
    align_index(bars, strategic)
    done = time.perf_counter()
    return {"rows": len(bars), "load_validate_s": loaded - start,
            "resample_align_s": done - loaded, "load_validate_resample_s": done - start,
            "peak_rss_mb": peak_rss_mb(), "rss_after_imports_mb": baseline}


def child_features(csv: str) -> Figures:
    """Build all features and both matrices for one CSV; report time and peak memory."""
    from algospace.data.loader import load_bars
    from algospace.data.resample import align_index, resample
    from algospace.features.assembler import FeatureMatrices, MatrixAssembler
    from algospace.features.build import (
        STRATEGIC_FEATURES,
        TACTICAL_FEATURES,
        FeatureConfig,
        strategic_features,
        synergy_features,
        tactical_features,
    )

    bars = load_bars(csv)
    strategic = resample(bars, 30)
    index = align_index(bars, strategic)
    cfg = FeatureConfig()
    before = peak_rss_mb()
    start = time.perf_counter()
    strat = strategic_features(strategic, cfg)
    t_strat = time.perf_counter()
    tact = tactical_features(bars, cfg)
    t_tact = time.perf_counter()
    synergy_features(strat, tact, index, cfg)
    t_syn = time.perf_counter()
    matrices = FeatureMatrices(
        MatrixAssembler(strat[list(STRATEGIC_FEATURES)].to_numpy(), cfg.strategic_window),
        MatrixAssembler(tact[list(TACTICAL_FEATURES)].to_numpy(), cfg.tactical_window), index)
    usable = matrices.usable
    done = time.perf_counter()
    return {"strategic_rows": len(strategic), "strategic_s": t_strat - start,
            "tactical_s": t_tact - t_strat, "synergy_s": t_syn - t_tact,
            "matrices_s": done - t_syn, "total_s": done - start,
            "usable_steps": int(usable.sum()), "peak_rss_mb": peak_rss_mb(),
            "rss_before_features_mb": before}


def child_rde_encode(csv: str) -> Figures:
    """RDE inference (latent mu of every 30-minute bar) with the default model size.

    Timing only: the weights are freshly initialised (inference cost does not
    depend on their values); training quality is checked by the test suite.
    """
    import torch

    from algospace.config import RDEConfig
    from algospace.data.loader import load_bars
    from algospace.data.resample import resample
    from algospace.data.splits import Normalizer
    from algospace.regime.features import regime_features
    from algospace.regime.latents import encode_all
    from algospace.regime.train import build_model

    strategic = resample(load_bars(csv), 30)
    start = time.perf_counter()
    features = regime_features(strategic)
    featured = time.perf_counter()
    cfg = RDEConfig()
    torch.manual_seed(0)
    model = build_model(features.shape[1], cfg).eval()
    normaliser = Normalizer.fit(features, (0, len(features)))
    encoded = time.perf_counter()
    mu = encode_all(model, normaliser, features, cfg.window)
    done = time.perf_counter()
    return {"rows": len(features), "features_s": featured - start, "encode_s": done - encoded,
            "finite_rows": int(np.isfinite(mu).all(axis=1).sum()), "peak_rss_mb": peak_rss_mb(),
            "torch_threads": torch.get_num_threads()}


def child_prepare(csv: str, cache: str) -> Figures:
    """Time one ``prepare`` call (cold or cached) in a fresh process."""
    from algospace.config import load_data_config
    from algospace.features.pipeline import prepare

    cfg = load_data_config({"source": "csv", "path": csv, "cache_dir": cache})
    start = time.perf_counter()
    prepared = prepare(cfg)
    return {"seconds": time.perf_counter() - start, "cache_hit": prepared.cache_hit,
            "peak_rss_mb": peak_rss_mb()}


def run(days: int = DEFAULT_DAYS) -> Figures:
    """The data benchmark (see the module docstring) on a market of ``days`` trading days."""
    from algospace.data.synthetic import SyntheticConfig, generate, to_csv

    with tempfile.TemporaryDirectory() as tmp:
        csv = str(Path(tmp) / "ES - 5 min.csv")
        start = time.perf_counter()
        market = generate(SyntheticConfig(days=days, seed=0))
        generated = time.perf_counter()
        to_csv(market, csv)
        written = time.perf_counter()
        load = run_child("load", [csv])
        feats = run_child("features", [csv])
        rde = run_child("rde_encode", [csv])
        cache = str(Path(tmp) / "cache")
        cold = run_child("prepare", [csv, cache])
        warm = run_child("prepare", [csv, cache])
        assert not cold["cache_hit"] and warm["cache_hit"]
        return {
            "data_rows": load["rows"],
            "data_csv_mb": Path(csv).stat().st_size / 2**20,
            "data_synth_generate_s": generated - start,
            "data_synth_write_csv_s": written - generated,
            "data_load_validate_s": load["load_validate_s"],
            "data_resample_align_s": load["resample_align_s"],
            "data_load_validate_resample_s": load["load_validate_resample_s"],
            "data_load_peak_rss_mb": load["peak_rss_mb"],
            "data_rss_after_imports_mb": load["rss_after_imports_mb"],
            "features_strategic_rows": feats["strategic_rows"],
            "features_strategic_s": feats["strategic_s"],
            "features_tactical_s": feats["tactical_s"],
            "features_synergy_s": feats["synergy_s"],
            "features_matrices_s": feats["matrices_s"],
            "features_total_s": feats["total_s"],
            "features_usable_steps": feats["usable_steps"],
            "features_peak_rss_mb": feats["peak_rss_mb"],
            "rde_rows": rde["rows"],
            "rde_features_s": rde["features_s"],
            "rde_encode_s": rde["encode_s"],
            "rde_encode_torch_threads": rde["torch_threads"],
            "rde_peak_rss_mb": rde["peak_rss_mb"],
            "data_prepare_cold_s": cold["seconds"],
            "data_prepare_cold_peak_rss_mb": cold["peak_rss_mb"],
            "data_prepare_cached_s": warm["seconds"],
            "data_target_load_s": 15.0,
            "data_target_load_ratio": load["load_validate_resample_s"] / 15.0,
            "data_target_peak_mb": 1536.0,
            "data_target_peak_ratio": load["peak_rss_mb"] / 1536.0,
            "data_target_cached_s": 1.0,
            "data_target_cached_ratio": warm["seconds"] / 1.0,
            "features_target_s": 60.0,
            "features_target_ratio": feats["total_s"] / 60.0,
            "features_target_peak_mb": 3072.0,
            "features_target_peak_ratio": feats["peak_rss_mb"] / 3072.0,
            "rde_target_encode_s": 30.0,
            "rde_target_encode_ratio": rde["encode_s"] / 30.0,
        }


CHILDREN: dict[str, Callable[..., Figures]] = {
    "load": child_load, "features": child_features, "rde_encode": child_rde_encode,
    "prepare": child_prepare}
"""The measurements this benchmark runs in fresh processes, by task name."""
