"""P&L attribution: where the agents' net P&L came from.

:func:`attribution` splits a backtest's per-bar dollar P&L — the change in the chained
equity over the bar, so the costs charged on the bar (fills at its open, a bracket or
ruin exit in it, the close at a tile's end) are in it — into tables, each summing to the
total net P&L:

- ``hour``: the bar's session hour (its open time, exchange clock);
- ``weekday``: the bar's day of the week (open time);
- ``volatility``: terciles of a causal volatility — the standard deviation of the
  executed bars' close-to-close log returns over the :data:`VOL_WINDOW` bars before the
  bar (known at its open); the tercile cut points are those of the whole span, and the
  first bars, without enough history, form their own row;
- ``regime``: the generator's hidden regime at the bar's open (built-in market only;
  absent otherwise);
- ``side``: long or short — the sign of the position at the bar's close, or, if flat
  there, of the position it closed (the previous close), or, flat at both closes, of the
  bar's target (a position opened at the open and stopped out inside the bar); ``flat``
  otherwise;
- ``layer``: which layer moved the target the bar traded on
  (:mod:`algospace.evaluation.decisions`).

Each row gives the dollars and the bars. :func:`hour_weekday` is the hour × weekday grid
of the same P&L drawn as the report's heatmap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from algospace.evaluation.decisions import LAYER_LABELS

if TYPE_CHECKING:
    from algospace.evaluation.backtest import Backtest
    from algospace.features.pipeline import Prepared

__all__ = ["VOL_WINDOW", "WEEKDAYS", "attribution", "bar_pnl", "causal_volatility", "hour_weekday",
           "regime_labels", "side_labels", "table", "volatility_terciles"]

VOL_WINDOW = 20
"""Bars of returns in the causal volatility (at least 5 needed)."""
WEEKDAYS: tuple[str, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def bar_pnl(equity: pd.Series, initial_equity: float) -> np.ndarray:
    """Each executed bar's dollar P&L (costs charged on it included)."""
    values = equity.to_numpy(np.float64)
    return np.diff(np.concatenate([[initial_equity], values]))


def table(pnl: np.ndarray, labels: Sequence[Any] | np.ndarray,
          order: Sequence[str] | None = None) -> dict[str, dict[str, float | int]]:
    """Dollars and bars per label (in ``order`` when given, else sorted; empty rows out)."""
    frame = pd.DataFrame({"pnl": pnl, "label": [str(x) for x in labels]})
    grouped = frame.groupby("label", sort=True)["pnl"].agg(["sum", "count"])
    keys = [k for k in (order or []) if k in grouped.index]
    keys += [k for k in grouped.index if k not in keys]
    return {k: {"pnl": float(grouped.at[k, "sum"]), "bars": int(grouped.at[k, "count"])}
            for k in keys}


def causal_volatility(close: np.ndarray, window: int = VOL_WINDOW) -> np.ndarray:
    """Per bar, the std of the log returns of the ``window`` closes before its open (nan
    with fewer than 5 returns): nothing from the bar itself or later."""
    logs = np.log(np.asarray(close, dtype=np.float64))
    returns = pd.Series(np.diff(logs, prepend=logs[0])).iloc[1:]
    vol = returns.rolling(window, min_periods=5).std().shift(1)  # known at the bar's open
    return vol.reindex(range(len(logs))).to_numpy()


def volatility_terciles(close: np.ndarray, window: int = VOL_WINDOW) -> np.ndarray:
    """``low`` / ``mid`` / ``high`` per bar by its causal volatility, ``warm-up`` first."""
    vol = causal_volatility(close, window)
    labels = np.full(len(vol), "warm-up", dtype=object)
    known = np.isfinite(vol)
    if known.any():
        lo, hi = np.quantile(vol[known], [1 / 3, 2 / 3])
        labels[known] = np.where(vol[known] <= lo, "low",
                                 np.where(vol[known] <= hi, "mid", "high"))
    return labels


def side_labels(positions: np.ndarray, targets: np.ndarray | None = None) -> np.ndarray:
    """``long`` / ``short`` / ``flat`` per bar (see the module docstring)."""
    pos = np.asarray(positions, dtype=np.int64)
    previous = np.concatenate([[0], pos[:-1]])
    wanted = np.zeros_like(pos) if targets is None else np.asarray(targets, dtype=np.int64)
    sign = np.where(pos != 0, np.sign(pos),
                    np.where(previous != 0, np.sign(previous), np.sign(wanted)))
    return np.where(sign > 0, "long", np.where(sign < 0, "short", "flat")).astype(object)


def regime_labels(prepared: Prepared, index: pd.DatetimeIndex) -> np.ndarray | None:
    """The hidden regime at each bar's open (built-in market), or None without the truth."""
    from algospace.data.synthetic_config import REGIME_NAMES
    from algospace.evaluation.oracles import TRUTH
    from envs.core.data import stored_tables

    if TRUTH not in stored_tables(prepared):
        return None
    regimes = prepared.table(TRUTH)["regime"].to_numpy()
    base = pd.DatetimeIndex(prepared.base.open_time)
    rows = np.clip(base.searchsorted(index, side="right") - 1, 0, len(base) - 1)
    return np.asarray([REGIME_NAMES[int(r)] for r in regimes[rows]], dtype=object)


def attribution(bt: Backtest, regimes: np.ndarray | None = None) -> dict[str, Any]:
    """The report's ``attribution`` tables (module docstring); ``regimes``: per bar."""
    pnl = bar_pnl(bt.equity, bt.initial_equity)
    index = pd.DatetimeIndex(bt.equity.index)
    hours = [f"{h:02d}:00" for h in index.hour]
    out: dict[str, Any] = {
        "total_net_pnl": float(pnl.sum()),
        "hour": table(pnl, hours, sorted(set(hours))),
        "weekday": table(pnl, [WEEKDAYS[d] for d in index.day_of_week], WEEKDAYS),
        "volatility": table(pnl, volatility_terciles(bt.bars["close"].to_numpy()),
                            ("low", "mid", "high", "warm-up")),
        "side": table(pnl, side_labels(bt.positions, None if bt.decisions is None
                                       else bt.decisions.targets), ("long", "short", "flat")),
    }
    if regimes is not None:
        out["regime"] = table(pnl, regimes)
    if bt.decisions is not None and len(bt.decisions.moved_by) == len(pnl):
        out["layer"] = table(pnl, bt.decisions.moved_by, LAYER_LABELS)
    return out


def hour_weekday(bt: Backtest) -> pd.DataFrame:
    """Net P&L summed per session hour (rows) and weekday (columns)."""
    index = pd.DatetimeIndex(bt.equity.index)
    frame = pd.DataFrame({"pnl": bar_pnl(bt.equity, bt.initial_equity), "hour": index.hour,
                          "day": [WEEKDAYS[d] for d in index.day_of_week]})
    grid = frame.pivot_table(index="hour", columns="day", values="pnl", aggfunc="sum",
                             fill_value=0.0)
    return grid[[d for d in WEEKDAYS if d in grid.columns]]
