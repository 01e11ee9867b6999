"""What is known at each bar's open about the planted drifts of the bars to come.

The causal oracles (:mod:`algospace.market.oracle`) decide bar ``t``'s position
from a forecast, made at bar ``t``'s open, of the planted drifts of bars
``t, t+1, …, t+H-1`` (``H`` = :func:`horizon`). Column 0 is the drift of bar
``t`` itself, known exactly; the later columns are conditional expectations
with the score's clip applied to the expected sum (certainty equivalence).
The future regime path and volatilities are taken as known: the regime chain
is drawn independently of the price noise, so knowing it never lets a
position depend on the noise of the bar it is held over.

- **Tactical**: ``h_s`` sums products ``z·u`` of earlier bars of the same block,
  and ``E[z_r u_r | bars before r] = 0``; so the forecast of ``h_{t+j}`` keeps
  the products of bars ``<= t-1`` only (none for ``j >= TACTICAL_LAGS``), and
  the next block's tactical drift is forecast as 0.
- **Strategic**: ``g_k`` of the current block is known. The current block's
  standardized return is forecast as the return so far plus the expected drift
  of its remaining bars; each later block ``k+m`` of the session gets
  ``clip((sum of the last STRATEGIC_LAGS standardized returns) / sqrt(L))`` with
  the unknown ones replaced by their forecasts (a future block's expected
  standardized return is its strategic drift over its sigma).
"""

from __future__ import annotations

import math

import numpy as np

from algospace.data.synthetic import (
    SESSION_MINUTES,
    STRATEGIC_LAGS,
    STRATEGIC_ON,
    TACTICAL_LAGS,
    TACTICAL_ON,
    SyntheticMarket,
)


def horizon(market: SyntheticMarket) -> int:
    """Bars forecast at each step: the current block and ``STRATEGIC_LAGS + 1`` more blocks."""
    return _per_block(market) * (STRATEGIC_LAGS + 2)


def _per_block(market: SyntheticMarket) -> int:
    """Bars per strategic block."""
    return market.config.block_minutes // market.config.bar_minutes


class _Layout:
    """Session and block position of every bar (blocks counted from each session's open)."""

    def __init__(self, market: SyntheticMarket) -> None:
        n = len(market.regimes)
        self.per_session = SESSION_MINUTES // market.config.bar_minutes
        self.per_block = _per_block(market)
        self.blocks_per_session = -(-self.per_session // self.per_block)
        bar = np.arange(n)
        self.session = bar // self.per_session
        self.index = (bar % self.per_session) // self.per_block
        self.block = self.session * self.blocks_per_session + self.index
        self.start = np.flatnonzero(np.r_[True, self.block[1:] != self.block[:-1]])
        self.block_start = self.start[np.searchsorted(self.start, bar, side="right") - 1]


def _clip(values: np.ndarray) -> np.ndarray:
    """Clip to [-1, 1]."""
    return np.clip(values, -1.0, 1.0)


def _shifted(values: np.ndarray, lag: int, allowed: np.ndarray) -> np.ndarray:
    """``values[t - lag]`` where ``allowed`` (same length) says it exists, else 0."""
    out = np.zeros_like(values)
    out[lag:] = values[:-lag] if lag else values
    return np.where(allowed, out, 0.0)


def _tactical(market: SyntheticMarket, lay: _Layout, width: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """Tactical forecasts (n, width) in log drift / sigma-loading form, and their block sum."""
    n = len(market.regimes)
    frame = market.bars.frame
    z = np.log(frame["close"].to_numpy() / frame["open"].to_numpy()) / market.sigma
    product = z * market.volume_surprise
    bar = np.arange(n)
    loading = market.config.tactical_loading * TACTICAL_ON[market.regimes] * market.sigma
    out = np.zeros((n, width))
    rest = np.zeros(n)
    for j in range(min(width, TACTICAL_LAGS)):
        total = market.tactical_score.copy() if j == 0 else np.zeros(n)
        if j > 0:
            for i in range(j + 1, TACTICAL_LAGS + 1):  # products of bars t-1 .. known
                lag = i - j
                total += _shifted(product, lag, bar - lag >= lay.block_start)
            total = _clip(total / math.sqrt(TACTICAL_LAGS))
        target = np.minimum(bar + j, n - 1)
        same = (bar + j < n) & (lay.block[target] == lay.block)
        out[:, j] = np.where(same, loading[target] * total, 0.0)
        rest += out[:, j]
    return out, rest


def _block_sums(market: SyntheticMarket, lay: _Layout) -> dict[str, np.ndarray]:
    """Per block: sigma, standardized return, strategic drift per unit score."""
    frame = market.bars.frame
    end = np.r_[lay.start[1:] - 1, len(market.regimes) - 1]
    sd = np.sqrt(np.add.reduceat(market.sigma**2, lay.start))
    loading = market.config.strategic_loading * STRATEGIC_ON[market.regimes] * market.sigma
    ret = np.log(frame["close"].to_numpy()[end] / frame["open"].to_numpy()[lay.start])
    return {"sd": sd, "z": ret / sd, "unit": np.add.reduceat(loading, lay.start) / sd,
            "loading": loading}


def _strategic_scores(market: SyntheticMarket, lay: _Layout, tactical_rest: np.ndarray,
                      blocks_ahead: int) -> np.ndarray:
    """Forecast strategic score per bar for blocks k, k+1, …, k+blocks_ahead (n, m)."""
    n = len(market.regimes)
    sums = _block_sums(market, lay)
    g = market.strategic_score
    opens = market.bars.column("open")
    k = lay.block - lay.session * lay.blocks_per_session
    global_k = lay.session * lay.blocks_per_session + k
    rev = _block_reverse_cumsum(sums["loading"], lay)
    so_far = np.log(opens / opens[lay.block_start])
    current = (so_far + rev * g + tactical_rest) / sums["sd"][_block_number(lay)]
    window = [np.where(k - lag >= 0, sums["z"][np.maximum(global_k - lag, 0)], 0.0)
              for lag in range(STRATEGIC_LAGS - 1, 0, -1)] + [current]
    scores = np.zeros((n, blocks_ahead + 1))
    scores[:, 0] = g
    for m in range(1, blocks_ahead + 1):
        inside = k + m < lay.blocks_per_session
        block_m = np.minimum(_block_number(lay) + m, len(lay.start) - 1)
        score = _clip(np.sum(window[-STRATEGIC_LAGS:], axis=0) / math.sqrt(STRATEGIC_LAGS))
        scores[:, m] = np.where(inside, score, 0.0)
        window.append(scores[:, m] * sums["unit"][block_m])
    return scores


def _block_number(lay: _Layout) -> np.ndarray:
    """Index of each bar's block in ``lay.start``."""
    return np.searchsorted(lay.start, np.arange(len(lay.block)), side="right") - 1


def _block_reverse_cumsum(values: np.ndarray, lay: _Layout) -> np.ndarray:
    """Per bar: sum of ``values`` over the bar and the later bars of its block."""
    total = np.add.reduceat(values, lay.start)[_block_number(lay)]
    before = np.cumsum(values) - values
    return total - (before - before[lay.block_start])


def drift_forecasts(market: SyntheticMarket) -> dict[str, np.ndarray]:
    """Forecasts (points) of each component's drift, rows = bars, columns = bars ahead."""
    lay = _Layout(market)
    width = horizon(market)
    n = len(market.regimes)
    opens = market.bars.column("open")
    tactical, rest = _tactical(market, lay, width)
    blocks_ahead = -(-width // lay.per_block)
    scores = _strategic_scores(market, lay, rest, blocks_ahead)
    loading = market.config.strategic_loading * STRATEGIC_ON[market.regimes] * market.sigma
    bar = np.arange(n)
    strategic = np.zeros((n, width))
    for j in range(width):
        target = np.minimum(bar + j, n - 1)
        ahead = lay.index[target] - lay.index
        valid = (bar + j < n) & (lay.session[target] == lay.session)
        m = np.clip(ahead, 0, blocks_ahead)
        strategic[:, j] = np.where(valid, loading[target] * scores[bar, m], 0.0)
    return {"strategic": strategic * opens[:, None], "tactical": tactical * opens[:, None]}
