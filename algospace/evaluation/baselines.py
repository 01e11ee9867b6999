"""Cost-charged baselines on the agents' bars: flat, buy-and-hold, random and rule.

Each baseline is a target position per bar (:func:`baseline_targets`) run through
:func:`~algospace.market.account.simulate` at the agents' position limit, so it pays
the same commissions and slippage, and stops at ruin by the same rule (the account's
ruin stop, ``ruin_level``); its curve is scored by
:func:`~algospace.evaluation.metrics.compute_metrics`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from algospace.data.contracts import ContractSpec
from algospace.errors import ConfigError
from algospace.evaluation.metrics import (
    Metrics,
    account_at_ruin,
    check_index,
    compute_metrics,
)
from algospace.market.account import simulate

__all__ = ["BASELINES", "baseline_equity", "baseline_targets", "run_baselines"]

BASELINES: tuple[str, ...] = ("flat", "buy_and_hold", "random", "rule")
"""Names accepted by :func:`baseline_targets`."""
_bad = ConfigError
"""Errors say what was expected, what was found and how to fix it."""


def _check_int(value: object, name: str, low: int, hint: str) -> int:
    """``value`` as an int >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise _bad(f"{name}: must be an integer >= {low}, found {value!r}; pass {hint}")
    return int(value)


def _rule_targets(signal: np.ndarray | None, n_bars: int, size: int) -> np.ndarray:
    """sign(signal[i - 1]) * size for bar i (flat on bar 0 and where the signal is NaN)."""
    if signal is None:
        raise _bad("baseline 'rule': needs a signal, found signal=None; pass one value per "
                   "bar, e.g. the synergy direction")
    sig = np.asarray(signal, dtype=np.float64)
    if sig.shape != (n_bars,):
        raise _bad(f"baseline 'rule': signal needs one value per bar ({n_bars}), found shape "
                   f"{sig.shape}; pass an array as long as the bars")
    out = np.zeros(n_bars, dtype=np.int64)
    out[1:] = np.sign(np.nan_to_num(sig[:-1], nan=0.0)).astype(np.int64) * size
    return out


def baseline_targets(name: str, n_bars: int, *, size: int = 1, seed: int = 0,
                     signal: np.ndarray | None = None) -> np.ndarray:
    """Target position (contracts) for each bar of baseline ``name`` (see :data:`BASELINES`).

    ``flat``: 0. ``buy_and_hold``: +size from bar 0, never exits. ``random``: an
    independent uniform draw from {-size, 0, +size} every bar from
    ``np.random.default_rng(seed)`` (so it re-trades often and pays costs).
    ``rule``: ``sign(signal[i - 1]) * size`` for bar i, flat on bar 0 (no look-ahead).
    """
    size = _check_int(size, "size", 1, "contracts, e.g. size=1")
    n_bars = _check_int(n_bars, "n_bars", 0, "len(bars)")
    if name == "flat":
        return np.zeros(n_bars, dtype=np.int64)
    if name == "buy_and_hold":
        return np.full(n_bars, size, dtype=np.int64)
    if name == "random":
        choices = np.array([-size, 0, size], dtype=np.int64)
        return np.random.default_rng(seed).choice(choices, size=n_bars)
    if name == "rule":
        return _rule_targets(signal, n_bars, size)
    raise _bad(f"baseline: unknown name {name!r}; use one of {', '.join(BASELINES)}")


def _ohlc(bars: pd.DataFrame) -> list[np.ndarray]:
    """open, high, low, close of validated bars as float64 arrays."""
    missing = [c for c in ("open", "high", "low", "close") if c not in bars.columns]
    if missing:
        raise _bad(f"bars: missing columns {missing}, found {list(bars.columns)}; pass a "
                   "frame with open/high/low/close (e.g. Bars.frame)")
    if len(bars) == 0:
        raise _bad("bars: found an empty frame; pass at least one bar")
    check_index(bars.index, "bars")
    cols = [bars[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low", "close")]
    if not all(np.isfinite(c).all() for c in cols):
        raise _bad("bars: found NaN/inf prices; clean or drop those bars first")
    return cols


def baseline_equity(name: str, bars: pd.DataFrame, contract: ContractSpec, *, size: int = 1,
                    seed: int = 0, rule_signal: np.ndarray | None = None,
                    initial_equity: float = 100_000.0,
                    ruin_level: float | None = None) -> tuple[pd.Series, Metrics]:
    """Equity curve and metrics of baseline ``name`` on ``bars`` (through :func:`simulate`).

    With ``ruin_level`` the account's ruin stop liquidates it where equity after the exit's
    costs meets the level, and it stays flat after; trades, turnover and costs stop there.
    """
    o, h, l, c = _ohlc(bars)  # noqa: E741
    size = _check_int(size, "size", 1, "contracts, e.g. size=1")
    targets = baseline_targets(name, len(o), size=size, seed=seed, signal=rule_signal)
    values, acct = simulate(contract, targets, o, h, l, c, max_position=size,
                            initial_equity=initial_equity, ruin_level=ruin_level)
    ruin, kwargs = account_at_ruin(values, acct)
    equity = pd.Series(ruin.equity, index=bars.index, name="equity")
    return equity, compute_metrics(equity, initial_equity=initial_equity, **kwargs)


def run_baselines(bars: pd.DataFrame, contract: ContractSpec, *, size: int = 1, seed: int = 0,
                  rule_signal: np.ndarray | None = None, initial_equity: float = 100_000.0,
                  ruin_level: float | None = None) -> dict[str, Metrics]:
    """Metrics of flat, buy_and_hold, random (and rule, if ``rule_signal``) on ``bars``.

    Each runs through :func:`simulate` with ``max_position=size``, so commissions and
    slippage are charged exactly as for the agents; ``ruin_level`` as in
    :func:`baseline_equity`.
    """
    names = [n for n in BASELINES if n != "rule" or rule_signal is not None]
    return {name: baseline_equity(name, bars, contract, size=size, seed=seed,
                                  rule_signal=rule_signal, initial_equity=initial_equity,
                                  ruin_level=ruin_level)[1]
            for name in names}
