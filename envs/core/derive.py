"""The env arrays from numpy tables: one arithmetic for the batch env and the live stream.

:func:`envs.core.data.derive_arrays` (the batch, from the prepared tables) and the decision
engine's :class:`algospace.inference.stream.MarketStream` (on a bounded tail of its rows, at
every bar) both call :func:`derive_rows`. Every derived row is a function of a bounded window
of earlier rows, computed the same way whatever rows come before the window — the rolling
means (:func:`window_mean`) sum their window in a fixed order instead of carrying a running
sum over the whole history — so a row derived on a tail is bit-for-bit the batch row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from algospace.config import STRATEGIC_AGENTS, TACTICAL_AGENTS
from algospace.features.assembler import complete_rows
from algospace.features.build import STRATEGIC_FEATURES, TACTICAL_FEATURES, FeatureConfig
from envs.core.layout import AGENT_COLUMNS, RETURN_5, RETURN_30, SHORT_MEAN_BARS, market_state_dim

_STRAT_COLUMNS = (*STRATEGIC_FEATURES, RETURN_30)
_TACT_COLUMNS = (*TACTICAL_FEATURES, RETURN_5)
_AGENT_AT = {agent: [(_STRAT_COLUMNS if agent in STRATEGIC_AGENTS else _TACT_COLUMNS).index(c)
                     for c in AGENT_COLUMNS[agent]]
             for agent in (*STRATEGIC_AGENTS, *TACTICAL_AGENTS)}
_STATE_DIM = market_state_dim()


@dataclass(frozen=True)
class Standardiser:
    """The train-split normalisation of the prepared meta, as numpy vectors."""

    strategic: tuple[np.ndarray, np.ndarray]
    """Mean and std of :data:`STRATEGIC_FEATURES`, then of the 30-minute log return."""
    tactical: tuple[np.ndarray, np.ndarray]
    """Mean and std of :data:`TACTICAL_FEATURES`, then of the 5-minute log return."""

    @classmethod
    def of(cls, meta: Mapping[str, Any]) -> Standardiser:
        norms = meta["normalisation"]

        def stats(table: str, names: tuple[str, ...], returns: str) -> tuple[np.ndarray, ...]:
            rows = [norms[table][c] for c in names] + [norms[returns]["log_return"]]
            return (np.array([r["mean"] for r in rows], np.float64),
                    np.array([r["std"] for r in rows], np.float64))

        s_mean, s_std = stats("features_strategic", STRATEGIC_FEATURES, "returns_strategic")
        t_mean, t_std = stats("features_tactical", TACTICAL_FEATURES, "returns_base")
        return cls((s_mean, s_std), (t_mean, t_std))


def standardise(values: np.ndarray, returns: np.ndarray,
                stats: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Feature columns then the log-return column, ``(x - mean) / std`` in float64, as
    float32 (:meth:`algospace.data.splits.Normalizer.transform`'s arithmetic)."""
    x = np.concatenate([np.asarray(values, np.float64),
                        np.asarray(returns, np.float64).reshape(-1, 1)], axis=1)
    return ((x - stats[0]) / stats[1]).astype(np.float32)


def window_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of rows ``t-window+1 .. t`` at each row ``t`` (float64; NaN before a full window
    or when the window holds a NaN), summed in row order within the window only, so a row's
    value does not depend on the rows before its window."""
    x = np.asarray(values, np.float64)
    out = np.full(x.shape, np.nan)
    n = len(x)
    if n >= window:
        acc = x[:n - window + 1].copy()
        for k in range(1, window):
            acc += x[k:n - window + 1 + k]
        out[window - 1:] = acc / window
    return out


def average_true_range(ohlc: np.ndarray, bars: int) -> np.ndarray:
    """Mean true range over the last ``bars`` bars, including the current one (NaN before)."""
    high, low, close = ohlc[:, 1], ohlc[:, 2], ohlc[:, 3]
    prev = np.concatenate([[np.nan], close[:-1]])
    tr = np.fmax(high - low, np.fmax(np.abs(high - prev), np.abs(low - prev)))
    return window_mean(tr, bars)


def close_steps(index: np.ndarray, rows: int) -> np.ndarray:
    """For each 30-minute row, the first 5-minute row at which it is visible (-1: never)."""
    out = np.full(rows, -1, dtype=np.int64)
    steps = np.flatnonzero(is_close(index))
    out[index[steps]] = steps
    return out


def is_close(index: np.ndarray) -> np.ndarray:
    """True at 5-minute rows where a new 30-minute bar has just closed."""
    prev = np.concatenate([[-1], index[:-1]])
    return (index >= 0) & (index != prev)


def market_state(strat: np.ndarray, tact: np.ndarray, latent: np.ndarray, synergy: np.ndarray,
                 index: np.ndarray, window: int) -> np.ndarray:
    """The market blocks of the global state per 5-minute row (see layout.state_blocks)."""
    seen = index >= 0
    rows = np.maximum(index, 0)
    strat_mean = window_mean(strat, window).astype(np.float32)
    strat_blocks = np.concatenate([strat, strat_mean, latent], axis=1)[rows]
    strat_blocks[~seen] = np.nan
    now, mean48, lat = np.split(strat_blocks, [strat.shape[1], 2 * strat.shape[1]], axis=1)
    tact_mean = window_mean(tact, SHORT_MEAN_BARS).astype(np.float32)
    out = np.concatenate([now, mean48, tact, tact_mean, lat, synergy], axis=1).astype(np.float32)
    assert out.shape[1] == _STATE_DIM
    return out


def derive_rows(*, strategic: np.ndarray, returns_strategic: np.ndarray, tactical: np.ndarray,
                returns_base: np.ndarray, synergy: np.ndarray, base_ohlc: np.ndarray,
                strategic_ohlc: np.ndarray, strategic_index: np.ndarray, latent: np.ndarray,
                norms: Standardiser, features: FeatureConfig, atr_bars: int
                ) -> dict[str, np.ndarray]:
    """Every env array (see :class:`envs.core.data.MarketArrays`) from numpy tables.

    ``strategic`` (S × :data:`STRATEGIC_FEATURES`) and ``tactical`` (T ×
    :data:`TACTICAL_FEATURES`) are the feature tables as stored (float32), ``synergy`` the
    synergy columns (T × ``SYNERGY_FEATURES``, float32), the returns the unstandardised log
    returns; ``strategic_index`` maps each 5-minute row to its latest closed 30-minute row.
    """
    strat = standardise(strategic, returns_strategic, norms.strategic)
    tact = standardise(tactical, returns_base, norms.tactical)
    index = np.asarray(strategic_index, dtype=np.int64)
    base_ohlc = np.asarray(base_ohlc, np.float64)
    n_feat_s, n_feat_t = len(STRATEGIC_FEATURES), len(TACTICAL_FEATURES)
    out: dict[str, np.ndarray] = {
        "base_ohlc": base_ohlc,
        "strategic_ohlc": np.asarray(strategic_ohlc, np.float64),
        "strategic_index": index,
        "close_step": close_steps(index, len(strat)),
        "is_close": is_close(index),
        "atr": average_true_range(base_ohlc, atr_bars),
        "latent": latent,
        "market_state": market_state(strat[:, :n_feat_s], tact[:, :n_feat_t], latent,
                                     np.asarray(synergy, np.float32), index,
                                     features.strategic_window),
    }
    valid = np.isfinite(out["market_state"]).all(axis=1) & (index >= 0)
    for agent in STRATEGIC_AGENTS:
        table = strat[:, _AGENT_AT[agent]]
        out[f"s_{agent}"] = table
        ok = complete_rows(table, features.strategic_window)
        valid &= ok[np.maximum(index, 0)]
    for agent in TACTICAL_AGENTS:
        table = tact[:, _AGENT_AT[agent]]
        out[f"t_{agent}"] = table
        valid &= complete_rows(table, features.tactical_window)
    valid &= np.isfinite(out["atr"])
    out["usable"] = valid
    return out
