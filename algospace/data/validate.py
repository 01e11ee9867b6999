"""Validation of parsed bar tables: every check fails loudly and names the row.

Checks, in order: empty cells, non-numeric cells, NaN/inf values,
non-positive prices, negative volume, High < Low, Open or Close outside
[Low, High], duplicate timestamps, decreasing timestamps, and bars spaced
closer than the detected bar size. Each failure raises a
:class:`~algospace.errors.DataError` naming file, line, column and the fix,
and says how many other rows have the same problem.

Session gaps (daily breaks, weekends, holidays) are expected and only
summarised by :func:`gap_summary`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from algospace.data.bars import COLUMNS
from algospace.errors import DataError


def _fail(
    mask: np.ndarray,
    message: Callable[[int], str],
    *,
    path: str,
    lines: np.ndarray,
    column: str | None,
    fix: str,
) -> None:
    """Raise for the first True in ``mask`` and count the rest."""
    bad = np.flatnonzero(mask)
    if bad.size == 0:
        return
    i = int(bad[0])
    more = f" ({bad.size - 1} more row(s) like this)" if bad.size > 1 else ""
    raise DataError(message(i) + more, path=path, line=int(lines[i]), column=column, fix=fix)


def _numeric(raw: pd.DataFrame, name: str, path: str, lines: np.ndarray) -> np.ndarray:
    """Convert one column of strings to float64, rejecting empty and non-numeric cells."""
    cells = raw[name].str.strip()
    _fail((cells == "").to_numpy(), lambda i: "empty cell", path=path, lines=lines,
          column=name, fix="fill in the value or delete the row")
    values = pd.to_numeric(cells, errors="coerce").to_numpy(dtype=np.float64)
    literal_nan = cells.str.lower().isin(["nan", "na", "n/a", "null", "none", "-nan"]).to_numpy()
    _fail(np.isnan(values) & ~literal_nan,
          lambda i: f"{cells.iloc[i]!r} is not a number", path=path, lines=lines,
          column=name, fix="use plain numbers with '.' as the decimal point")
    _fail(~np.isfinite(values), lambda i: f"value is {cells.iloc[i]!r}", path=path,
          lines=lines, column=name, fix="replace missing values or delete the row")
    return values


def validate_frame(
    raw: pd.DataFrame,
    columns: dict[str, str],
    times: pd.DatetimeIndex,
    lines: np.ndarray,
    path: str,
) -> pd.DataFrame:
    """Check string cells and timestamps; return the float64 OHLCV frame."""
    values = {c: _numeric(raw, columns[c], path, lines) for c in COLUMNS}
    o, h, low, c, v = (values[k] for k in COLUMNS)
    for key in ("open", "high", "low", "close"):
        price = values[key]

        def not_positive(i: int, price: np.ndarray = price) -> str:
            return f"price {price[i]:g} is not positive"

        _fail(price <= 0, not_positive, path=path, lines=lines, column=columns[key],
              fix="prices must be > 0; back-adjusted series with negative prices must be re-based")
    _fail(v < 0, lambda i: f"volume {v[i]:g} is negative", path=path, lines=lines,
          column=columns["volume"], fix="volume must be >= 0")
    _fail(h < low, lambda i: f"High {h[i]:g} is below Low {low[i]:g}", path=path,
          lines=lines, column=columns["high"], fix="check the column order of the export")
    for key, arr in (("open", o), ("close", c)):

        def outside(i: int, name: str = key.capitalize(), a: np.ndarray = arr) -> str:
            return f"{name} {a[i]:g} is outside [Low {low[i]:g}, High {h[i]:g}]"

        _fail((arr < low) | (arr > h), outside, path=path, lines=lines, column=columns[key],
              fix="correct or delete the bar")
    _check_order(times, lines, path, columns.get("timestamp", columns.get("date")))
    frame = pd.DataFrame(values, index=times, columns=list(COLUMNS))
    return frame


def _check_order(
    times: pd.DatetimeIndex, lines: np.ndarray, path: str, column: str | None
) -> None:
    """Reject duplicate and decreasing timestamps."""
    stamps = times.asi8
    step = np.diff(stamps)
    shown = [str(t) for t in times]
    _fail(np.r_[False, step == 0], lambda i: f"duplicate timestamp {shown[i]}",
          path=path, lines=lines, column=column, fix="remove the repeated bar")
    _fail(np.r_[False, step < 0],
          lambda i: f"timestamp {shown[i]} is earlier than the previous row's {shown[i - 1]}",
          path=path, lines=lines, column=column,
          fix="sort the file by time; if dates look shuffled, check --dayfirst/--monthfirst")


def detect_bar_minutes(index: pd.DatetimeIndex, path: str = "") -> int:
    """The bar size in minutes: the most common spacing between consecutive bars."""
    if len(index) < 2:
        raise DataError("need at least 2 bars to detect the bar size", path=path)
    step = np.diff(index.asi8) // 60_000_000_000
    sizes, counts = np.unique(step, return_counts=True)
    minutes = int(sizes[np.argmax(counts)])
    if minutes <= 0:
        raise DataError("bars are closer than one minute apart", path=path,
                        fix="AlgoSpace reads bars of 1 minute or longer")
    too_close = np.flatnonzero((step > 0) & (step < minutes) & (minutes < 1440))
    if too_close.size:
        i = int(too_close[0]) + 1
        raise DataError(
            f"bar at {index[i]} is only {int(step[i - 1])} min after the previous one, "
            f"but the file's bar size is {minutes} min ({too_close.size} such row(s))",
            path=path, fix="the file mixes bar sizes; export one bar size per file",
        )
    return minutes


def gap_summary(index: pd.DatetimeIndex, bar_minutes: int) -> dict[str, int]:
    """Count gaps between bars by length.

    Under 4 h: daily maintenance breaks and missing bars; 4–30 h: overnight
    closes; 30–80 h: weekends; over 80 h: holidays and outages.
    """
    step_min = np.diff(index.asi8) / 60e9
    gaps = step_min[step_min > bar_minutes]
    hours = gaps / 60
    return {
        "regular_steps": int(np.sum(step_min == bar_minutes)),
        "gaps_under_4h": int(np.sum(hours < 4)),
        "gaps_4h_to_30h": int(np.sum((hours >= 4) & (hours < 30))),
        "gaps_30h_to_80h": int(np.sum((hours >= 30) & (hours < 80))),
        "gaps_over_80h": int(np.sum(hours >= 80)),
    }
