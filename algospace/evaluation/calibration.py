"""Is the MC-dropout consensus calibrated? Hit rate and trade P&L per consensus decile.

A **decision** is one clock step at which the team acted (a backtest of
:class:`~algospace.inference.policy.GatedTeam`, whose gates record, at every step, the
consensus — the acting agents' mean MC-dropout ``top_prob`` — and the consensus direction,
their mean ``direction``). Its **direction** is the sign of the consensus direction;
decisions without one (0) have nothing to be right about and are left out, as are those
whose horizon runs past the data. It is a **hit** when the close ``horizon`` base bars
after the decision's close lies on its side of the decision's close (30 minutes — six
5-minute bars — for the strategic layer, one 5-minute bar for the tactical layer; a move
of exactly 0 is a miss).

:func:`calibration` sorts the decisions by consensus and cuts them into ``bins`` groups of
equal count (deciles by default; ties are cut in time order, so the groups keep equal
counts). Per bin: the decisions, the mean consensus, the hit rate ``h`` and its standard
error ``sqrt(h (1 - h) / n)`` (binomial), and the trades opened right after the bin's
decisions (the account fills a decision on the next bar) with their mean net dollar P&L.

**Expected calibration error.** The consensus is read as the probability that the
decision's direction is right, so

    ECE = Σ_b (n_b / N) · |hit rate_b − mean consensus_b|

over the bins ``b`` (``n_b`` decisions each, ``N`` in all): 0 for a calibrated consensus.
Whether the hit rate rises with the consensus: the top bin's hit rate minus the bottom
bin's, against the standard error of that difference (``rises_beyond_se``: more than twice
it).
The consensus is a mean top-action probability and the top action can be "flat", so a
consensus of 0.4 may still carry a direction; the ECE says how far the figure the gate
reads is from the rate at which that direction comes true.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["BINS", "calibration", "decision_moves", "trades_by_decision"]

BINS = 10
"""Consensus bins of the calibration table (deciles)."""


def decision_moves(close: np.ndarray, base_rows: np.ndarray, horizon: int) -> np.ndarray:
    """The price move after each decision: ``close[b + horizon] - close[b]`` for the base
    row ``b`` of each decision's close (NaN where ``b + horizon`` is past the data)."""
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1 base bar, got {horizon!r}")
    close = np.asarray(close, dtype=np.float64)
    rows = np.asarray(base_rows, dtype=np.int64)
    later = rows + horizon
    inside = (rows >= 0) & (later < len(close))
    out = np.full(len(rows), np.nan)
    out[inside] = close[later[inside]] - close[rows[inside]]
    return out


def trades_by_decision(steps: np.ndarray, entry_steps: np.ndarray, pnl: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Trades opened after each decision, and their summed net P&L.

    ``steps``: the clock step of each decision; ``entry_steps``/``pnl``: each trade's entry
    clock step (the account's ``entry_t``: the bar after its decision) and net P&L. A
    trade entered at step ``t`` belongs to the decision at ``t - 1``.
    """
    steps = np.asarray(steps, dtype=np.int64)
    where = {int(s): i for i, s in enumerate(steps)}
    count = np.zeros(len(steps), dtype=np.int64)
    total = np.zeros(len(steps))
    for entry, value in zip(np.asarray(entry_steps, dtype=np.int64),
                            np.asarray(pnl, dtype=np.float64), strict=True):
        i = where.get(int(entry) - 1)
        if i is not None:
            count[i] += 1
            total[i] += value
    return count, total


def calibration(consensus: Sequence[float] | np.ndarray, direction: Sequence[float] | np.ndarray,
                move: Sequence[float] | np.ndarray, *,
                opened: Sequence[int] | np.ndarray | None = None,
                opened_pnl: Sequence[float] | np.ndarray | None = None,
                bins: int = BINS) -> dict[str, Any]:
    """The calibration table and ECE of decisions (see the module docstring).

    ``consensus``, ``direction``, ``move``: one value per decision; ``opened`` and
    ``opened_pnl``: trades opened after each decision and their summed net P&L (from
    :func:`trades_by_decision`; default none). Returns ``bins`` rows (a bin with no decision
    has NaN figures), ``ece``, the decisions counted and left out, and the top bin's hit
    rate minus the bottom bin's with its standard error.
    """
    c = np.asarray(consensus, dtype=np.float64)
    d = np.sign(np.asarray(direction, dtype=np.float64))
    m = np.asarray(move, dtype=np.float64)
    if not c.shape == d.shape == m.shape or c.ndim != 1:
        raise ValueError(f"consensus, direction and move need one value per decision, got "
                         f"shapes {c.shape}, {d.shape}, {m.shape}")
    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins!r}")
    n_open = np.zeros(len(c), np.int64) if opened is None else np.asarray(opened, np.int64)
    pnl = np.zeros(len(c)) if opened_pnl is None else np.asarray(opened_pnl, np.float64)
    if n_open.shape != c.shape or pnl.shape != c.shape:
        raise ValueError("opened and opened_pnl need one value per decision")
    keep = (d != 0) & np.isfinite(m) & np.isfinite(c)
    c, d, m, n_open, pnl = c[keep], d[keep], m[keep], n_open[keep], pnl[keep]
    hit = (np.sign(m) == d).astype(np.float64)
    n = len(c)
    order = np.argsort(c, kind="stable")
    which = np.empty(n, dtype=np.int64)
    which[order] = (np.arange(n) * bins) // n if n else order
    rows, ece = [], 0.0
    for b in range(bins):
        sel = which == b
        count = int(sel.sum())
        trades = int(n_open[sel].sum())
        if count:
            h, mean_c = float(hit[sel].mean()), float(c[sel].mean())
            se = math.sqrt(h * (1.0 - h) / count)
            ece += count / n * abs(h - mean_c)
            lo, hi = float(c[sel].min()), float(c[sel].max())
        else:
            h = mean_c = se = lo = hi = math.nan
        rows.append({"bin": b + 1, "decisions": count, "consensus_low": lo,
                     "consensus_high": hi, "mean_consensus": mean_c, "hit_rate": h,
                     "hit_rate_se": se, "trades_opened": trades,
                     "mean_trade_pnl": float(pnl[sel].sum() / trades) if trades else math.nan})
    top, bottom = rows[-1], rows[0]
    spread = top["hit_rate"] - bottom["hit_rate"]
    spread_se = math.hypot(top["hit_rate_se"], bottom["hit_rate_se"])
    return {"bins": rows, "ece": ece if n else math.nan, "decisions": n,
            "left_out": int((~keep).sum()),
            "hit_rate": float(hit.mean()) if n else math.nan,
            "top_minus_bottom_hit_rate": spread, "top_minus_bottom_se": spread_se,
            "rises_beyond_se": bool(spread > 2.0 * spread_se) if n else False}
