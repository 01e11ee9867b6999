"""Feature tables: the one list of feature names, and the builders that fill them.

Strategic (30-minute) features, one row per 30-minute bar, 13 columns
(:data:`STRATEGIC_FEATURES`): MLMI value and signal, NW-RQK value and slope,
LVN distance and strength, time of day of the bar's close, MMD at 3 scales,
volatility and volume-profile skew.

Tactical (5-minute) features, one row per 5-minute bar, 7 columns
(:data:`TACTICAL_FEATURES`): FVG state (bullish/bearish active, nearest
level, age, mitigation), 5-bar momentum and volume ratio.

Synergy features, one row per 5-minute bar (:mod:`algospace.features.synergy`).

Every feature at row ``t`` uses bars ``<= t`` of its own timeframe only; the
30-minute rows reach a 5-minute step only through the causal alignment of
:func:`algospace.data.resample.align_index`. These names are shared by the
assemblers, the environments and the docs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from algospace.data.bars import Bars
from algospace.features import synergy
from algospace.features.basic import hour_cos, hour_sin, momentum_5, volume_ratio
from algospace.features.fvg import compute_fvg
from algospace.features.lvn import lvn_features
from algospace.features.mlmi import compute_mlmi
from algospace.features.mmd import mmd_features
from algospace.features.nwrqk import compute_nwrqk

STRATEGIC_FEATURES: tuple[str, ...] = (
    "mlmi_value", "mlmi_signal", "nwrqk_value", "nwrqk_slope", "lvn_distance", "lvn_strength",
    "hour_sin", "hour_cos", "mmd_1", "mmd_2", "mmd_3", "volatility_30", "volume_skew",
)
"""Columns of the 30-minute matrix (48 × 13), in order."""

TACTICAL_FEATURES: tuple[str, ...] = (
    "fvg_bullish_active", "fvg_bearish_active", "fvg_nearest_level", "fvg_age",
    "fvg_mitigation", "momentum_5", "volume_ratio",
)
"""Columns of the 5-minute matrix (60 × 7), in order."""

SYNERGY_FEATURES: tuple[str, ...] = synergy.OUTPUT_NAMES
"""Synergy-state columns of the global state, in order."""


@dataclass(frozen=True)
class FeatureConfig:
    """Indicator parameters (defaults from the original indicators)."""

    strategic_window: int = 48
    """Rows of the 30-minute matrix."""
    tactical_window: int = 60
    """Rows of the 5-minute matrix."""
    fvg_body_multiplier: float = 1.5
    """FVG middle-candle body filter (× mean body of the 10 bars before); 0 disables."""
    fvg_max_age: int = 50
    """Bars after which an unfilled FVG expires."""
    mlmi_k: int = 200
    """Neighbours in the MLMI kNN vote."""
    mlmi_threshold: float = 0.1
    """|mlmi_value| above which mlmi_signal is ±1 (the original 0.5 almost never fires on
    our [-1, 1] kNN vote: 15 turns and no synergy in 60 synthetic days; 0.1 gives ~14)."""
    nwrqk_h: float = 8.0
    """NW-RQK kernel bandwidth (bars)."""
    nwrqk_r: float = 8.0
    """NW-RQK rational-quadratic shape parameter."""
    lvn_window: int = 100
    """Bars in the rolling volume profile of the LVN features."""
    synergy_window: int = 10
    """5-minute steps within which the three synergy signals must agree."""
    synergy_cooldown: int = 5
    """5-minute steps after a synergy during which no new one is detected."""


def strategic_features(bars: Bars, cfg: FeatureConfig) -> pd.DataFrame:
    """The 13 strategic features of each 30-minute bar (NaN during warm-up)."""
    o, h, low, c, v = (bars.column(k) for k in ("open", "high", "low", "close", "volume"))
    del o
    cols: dict[str, np.ndarray] = {}
    cols.update(compute_mlmi(c, k=cfg.mlmi_k, threshold=cfg.mlmi_threshold))
    nw = compute_nwrqk(c, h=cfg.nwrqk_h, r=cfg.nwrqk_r)
    cols.update({k: nw[k] for k in ("nwrqk_value", "nwrqk_slope")})
    cols.update(lvn_features(h, low, c, v, window=cfg.lvn_window))
    close_times = bars.close_time.to_numpy()
    cols["hour_sin"], cols["hour_cos"] = hour_sin(close_times), hour_cos(close_times)
    cols.update(mmd_features(h, low, c, v))
    frame = pd.DataFrame({k: cols[k] for k in STRATEGIC_FEATURES}, index=bars.frame.index)
    frame["nwrqk_signal"] = nw["nwrqk_signal"]  # an event column used by the synergy detector
    return frame


def tactical_features(bars: Bars, cfg: FeatureConfig) -> pd.DataFrame:
    """The 7 tactical features of each 5-minute bar (NaN during warm-up)."""
    ohlcv = np.column_stack([bars.column(k) for k in ("open", "high", "low", "close",
                                                      "volume")])
    return pd.DataFrame(tactical_columns(ohlcv, cfg), index=bars.frame.index,
                        columns=list(TACTICAL_FEATURES))


def tactical_columns(ohlcv: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """:func:`tactical_features` of rows ``open, high, low, close, volume`` (n × 5) as an
    n × 7 float64 array in :data:`TACTICAL_FEATURES` order (no pandas: the stream's path)."""
    o, h, low, c, v = (np.ascontiguousarray(ohlcv[:, k], np.float64) for k in range(5))
    cols = compute_fvg(o, h, low, c, body_multiplier=cfg.fvg_body_multiplier,
                       max_age=cfg.fvg_max_age)
    cols["momentum_5"] = momentum_5(c)
    cols["volume_ratio"] = volume_ratio(v)
    return np.column_stack([cols[k] for k in TACTICAL_FEATURES])


def synergy_features(strategic: pd.DataFrame, tactical: pd.DataFrame,
                     strategic_index: np.ndarray, cfg: FeatureConfig) -> pd.DataFrame:
    """Synergy state per 5-minute step from both feature tables and the alignment."""
    events = {
        "mlmi": synergy.strategic_events(strategic["mlmi_signal"].to_numpy(), strategic_index,
                                         as_state=True),
        "nwrqk": synergy.strategic_events(strategic["nwrqk_signal"].to_numpy(), strategic_index,
                                          as_state=False),
        "fvg": np.nan_to_num(tactical["fvg_mitigation"].to_numpy()),
    }
    visible = np.maximum(strategic_index, 0)
    seen = strategic_index >= 0
    mlmi = np.where(seen, np.abs(strategic["mlmi_value"].to_numpy()[visible]), 0.0)
    slope = np.where(seen, np.abs(strategic["nwrqk_slope"].to_numpy()[visible]), 0.0)
    strength = (np.nan_to_num(mlmi) + np.nan_to_num(slope) + 1.0) / 3.0
    out = synergy.detect(events, strength, window=cfg.synergy_window,
                         cooldown=cfg.synergy_cooldown)
    return pd.DataFrame(out, index=tactical.index)
