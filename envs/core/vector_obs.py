"""Observation assembly of :class:`envs.core.vector.VectorEnv`: every copy's rows at once.

The same blocks as :meth:`envs.core.base.TradingEnv._observe` (account and signal
blocks, context, global state, each agent's local window), built for a batch of copies
by fancy indexing, with the same float32 casts, so each row equals the scalar env's
observation bit for bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.core.base import N_ACCOUNT, N_SIGNALS
from envs.core.layout import CONTEXT
from envs.core.vector_account import AccountBatch

Index = np.ndarray | slice
"""Which copies: an integer array, or ``slice(None)`` for all of them."""
_STRAT_OFF = N_ACCOUNT + N_SIGNALS


class Observer:
    """Builds ``{agent: {"local", "state"}}`` batches from the shared market arrays."""

    def __init__(self, views: list[tuple[str, np.ndarray, int, bool]], arrays: dict[str, Any],
                 ohlc: np.ndarray, max_position: int, initial_equity: float) -> None:
        self._views = [(agent, windows(table, window), window - 1, strategic)
                       for agent, table, window, strategic in views]
        self._same = _same_locals(views)
        """Agent -> an earlier agent whose local observation is always equal to its own
        (``entry`` and ``risk`` read the same columns): one array serves both."""
        extra = {agent: arrays["latent"].shape[1] if agent == "regime" else 0
                 for agent, *_ in views}
        self._width = sum(flat.shape[1] + extra[agent] + len(CONTEXT)
                          for agent, flat, _, _ in self._views)
        """Columns of all the agents' locals side by side (single_v0's ``local``)."""
        self._atr = arrays["atr"]
        self._mstate = arrays["market_state"]
        self._latent = arrays["latent"]
        self._ohlc = ohlc
        self._max_position = max_position
        self._initial = float(initial_equity)

    def dynamic(self, acct: AccountBatch, idx: Index, pos: np.ndarray, brow: np.ndarray,
                signals: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
        """The account and signal blocks (float64, ``(n, 11)``) of the copies ``idx``."""
        pct = 100.0 / self._initial
        atr = self._atr[brow]
        close = self._ohlc[pos, 3]
        stop, tgt = acct.stop_price[idx], acct.target_price[idx]
        with np.errstate(invalid="ignore"):
            stop_atr = np.where(stop == stop, np.abs(close - stop) / atr, 0.0)
            tgt_atr = np.where(tgt == tgt, np.abs(tgt - close) / atr, 0.0)
        columns = (acct.position[idx] / self._max_position, acct.unrealised[idx] * pct,
                   acct.realised[idx] * pct, acct.drawdown[idx] * pct,
                   acct.equity[idx] / self._initial, acct.bars_in_trade[idx] / 100.0,
                   stop_atr, tgt_atr, *signals)
        out = np.empty((len(close), len(columns)))
        for j, column in enumerate(columns):
            out[:, j] = column
        return out

    def observe(self, dyn: np.ndarray, ctx: np.ndarray, values: np.ndarray,
                decision: np.ndarray, brow: np.ndarray, srow: np.ndarray, idx: Index,
                joined: bool = False) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Write ``values`` into the state and context rows ``idx``; each agent's local
        observation and the global state of those copies. ``joined``: the locals are
        column slices of one array, in agent order, returned under ``""`` too."""
        dyn[idx, :_STRAT_OFF] = values
        ctx[idx, :_STRAT_OFF] = values
        ctx[idx, _STRAT_OFF] = decision
        state = np.concatenate((self._mstate[brow], dyn[idx]), axis=1)
        context = ctx[idx]
        n = len(brow)
        locals_: dict[str, np.ndarray] = {}
        whole = np.empty((n, self._width), np.float32) if joined else None
        at = 0
        for agent, flat, back, strategic in self._views:
            if whole is None and agent in self._same:
                locals_[agent] = locals_[self._same[agent]]
                continue
            width = flat.shape[1]
            extra = self._latent.shape[1] if agent == "regime" else 0
            size = width + extra + context.shape[1]
            if whole is None:
                local = np.empty((n, size), np.float32)
            else:
                local, at = whole[:, at:at + size], at + size
            local[:, :width] = flat[(srow if strategic else brow) - back]
            if extra:
                local[:, width:width + extra] = self._latent[srow]
            local[:, width + extra:] = context
            locals_[agent] = local
        if whole is not None:
            locals_[""] = whole
        return locals_, state


def _same_locals(views: list[tuple[str, np.ndarray, int, bool]]) -> dict[str, str]:
    """Agent -> the first earlier agent with an equal window table, window and clock
    (and neither is ``regime``, whose local also holds the latent): their local
    observations are equal at every step."""
    out: dict[str, str] = {}
    for i, (agent, table, window, strategic) in enumerate(views):
        for other, o_table, o_window, o_strategic in views[:i]:
            if other not in out and "regime" not in (agent, other) \
                    and (window, strategic) == (o_window, o_strategic) \
                    and np.array_equal(table, o_table, equal_nan=True):
                out[agent] = other
                break
    return out


def windows(table: np.ndarray, window: int) -> np.ndarray:
    """A read-only view whose row ``r`` is ``table[r:r + window]`` flattened (no copy):
    gathering N windows is then one row gather of contiguous blocks."""
    table = np.ascontiguousarray(table)
    rows, cols = table.shape
    step = table.strides[0]
    return np.lib.stride_tricks.as_strided(table, shape=(rows - window + 1, window * cols),
                                           strides=(step, table.strides[1]), writeable=False)
