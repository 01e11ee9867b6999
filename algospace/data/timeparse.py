"""Timestamp parsing for vendor CSV files.

Real exports mix formats, sometimes within one file (``29/06/2020 01:00:00``
next to ``1/7/2020 1:00``). Every cell is matched against a small set of
patterns and its fields are assembled explicitly, so nothing is left to a
library's guess:

- year first: ``2020-06-29 01:00[:00[.000]]``, ``2020/06/29``, ``2020.06.29``,
  optional ``T`` separator and a UTC offset (``Z``, ``+01:00``), which is
  converted to UTC and dropped;
- day or month first: ``29/06/2020 01:00:00``, ``1/7/2020 1:00``,
  ``01.01.2017 22:00:00.000``, ``06-29-20 1:00 PM`` (two-digit years are 20YY);
- Unix epoch seconds (``1593392400``), as some exporters write.

Day-first vs month-first is either given (``dayfirst=True/False``) or
detected: a first field above 12 proves day-first, a second field above 12
proves month-first; both in one file is an error. When no field is above
12, the order whose timestamps increase is chosen; when both orders
increase, the file is ambiguous and the user is asked to choose.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from algospace.errors import DataError

_TIME = (
    r"(?:[ T]+(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:[.,](?P<F>\d{1,9}))?)?"
    r"\s*(?P<ampm>[AaPp][Mm])?)?"
)
_TZ = r"\s*(?P<tz>Z|[+-]\d{2}:?\d{2})?"
_YMD = r"^\s*(?P<a>\d{4})[-/.](?P<b>\d{1,2})[-/.](?P<c>\d{1,2})" + _TIME + _TZ + r"\s*$"
_DMY = r"^\s*(?P<a>\d{1,2})[-/.](?P<b>\d{1,2})[-/.](?P<c>\d{4}|\d{2})" + _TIME + _TZ + r"\s*$"
_EPOCH = r"^\s*(?P<e>\d{9,10})\s*$"

_DAYFIRST_FIX = (
    "pass --dayfirst or --monthfirst (data.dayfirst: true/false in YAML) to say "
    "how the file writes dates"
)


def parse_timestamps(
    raw: pd.Series,
    *,
    dayfirst: bool | None = None,
    path: str = "",
    column: str = "Timestamp",
    lines: np.ndarray | None = None,
) -> pd.DatetimeIndex:
    """Parse timestamp strings (possibly of mixed formats) into tz-naive datetimes.

    ``lines`` gives the file line number of each cell for error messages.
    """
    text = raw.astype(str).str.strip()
    line_of = lines if lines is not None else np.arange(len(text)) + 2
    kinds = np.full(len(text), -1, dtype=np.int8)
    parts: dict[int, pd.DataFrame] = {}
    for kind, pattern in enumerate((_YMD, _DMY, _EPOCH)):
        todo = kinds < 0
        if not todo.any():
            break
        found = text[todo].str.extract(pattern)
        hit = found.notna().any(axis=1).to_numpy()
        index = np.flatnonzero(todo)[hit]
        if index.size:
            kinds[index] = kind
            parts[kind] = found[hit]
    if (kinds < 0).any():
        i = int(np.flatnonzero(kinds < 0)[0])
        raise DataError(
            f"cannot read timestamp {text.iloc[i]!r}",
            path=path, line=int(line_of[i]), column=column,
            fix="use a format such as 2020-06-29 01:00:00 or 29/06/2020 01:00:00",
        )
    out = np.empty(len(text), dtype="datetime64[ns]")
    if 0 in parts:
        sel = kinds == 0
        out[sel] = _assemble(parts[0], "a", "b", "c", path, column, line_of[sel])
    if 1 in parts:
        sel = kinds == 1
        first_is_day = _resolve_dayfirst(parts[1], dayfirst, path, column, line_of[sel])
        day, month = ("a", "b") if first_is_day else ("b", "a")
        out[sel] = _assemble(parts[1], "c", month, day, path, column, line_of[sel])
    if 2 in parts:
        sel = kinds == 2
        seconds = parts[2]["e"].astype(np.int64).to_numpy()
        out[sel] = seconds.astype("datetime64[s]").astype("datetime64[ns]")
    return pd.DatetimeIndex(out)


def _int(col: pd.Series, default: int = 0) -> np.ndarray:
    """A regex capture group as int64, with a default for missing groups."""
    return pd.to_numeric(col, errors="coerce").fillna(default).astype(np.int64).to_numpy()


def _assemble(
    p: pd.DataFrame, year: str, month: str, day: str, path: str, column: str, lines: np.ndarray
) -> np.ndarray:
    """Build datetime64 values from captured fields, checking each field's range."""
    y = _int(p[year])
    y = np.where(y < 100, y + 2000, y)
    m, d = _int(p[month]), _int(p[day])
    hh, mm, ss = _int(p["H"]), _int(p["M"]), _int(p["S"])
    ampm = p["ampm"].fillna("").str.upper().to_numpy()
    hh = np.where((ampm == "PM") & (hh < 12), hh + 12, hh)
    hh = np.where((ampm == "AM") & (hh == 12), 0, hh)
    frac = p["F"].fillna("0").str.ljust(9, "0").str[:9].astype(np.int64).to_numpy()
    _check_range(m, 1, 12, "month", p, path, column, lines)
    _check_range(hh, 0, 23, "hour", p, path, column, lines)
    _check_range(mm, 0, 59, "minute", p, path, column, lines)
    _check_range(ss, 0, 59, "second", p, path, column, lines)
    months = (y - 1970) * 12 + (m - 1)
    first_of_month = months.astype("datetime64[M]").astype("datetime64[D]")
    next_month = (months + 1).astype("datetime64[M]").astype("datetime64[D]")
    days_in_month = (next_month - first_of_month).astype(np.int64)
    _check_range(d, 1, days_in_month, "day", p, path, column, lines)
    stamp = (
        (first_of_month + (d - 1)).astype("datetime64[ns]")
        + (hh * 3600 + mm * 60 + ss).astype("timedelta64[s]")
        + frac.astype("timedelta64[ns]")
    )
    return _apply_offsets(stamp, p["tz"])


def _apply_offsets(stamp: np.ndarray, tz: pd.Series) -> np.ndarray:
    """Convert timestamps written with a UTC offset to UTC (offset dropped)."""
    if tz.isna().all():
        return stamp
    text = tz.fillna("").str.replace(":", "", regex=False).to_numpy()
    minutes = np.zeros(len(text), dtype=np.int64)
    for i, t in enumerate(text):
        if t and t != "Z":
            sign = -1 if t[0] == "-" else 1
            minutes[i] = sign * (int(t[1:3]) * 60 + int(t[3:5]))
    return stamp - minutes.astype("timedelta64[m]")


def _check_range(
    values: np.ndarray,
    low: int,
    high: int | np.ndarray,
    name: str,
    p: pd.DataFrame,
    path: str,
    column: str,
    lines: np.ndarray,
) -> None:
    """Raise a DataError naming the first cell whose field is out of range."""
    bad = (values < low) | (values > high)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        fix = _DAYFIRST_FIX if name in ("month", "day") else "correct the timestamp"
        raise DataError(
            f"{name} {int(values[i])} is out of range in timestamp {_cell(p, i)!r}",
            path=path, line=int(lines[i]), column=column, fix=fix,
        )


def _cell(p: pd.DataFrame, i: int) -> str:
    """Reconstruct a readable date from captured fields for messages."""
    row = p.iloc[i]
    clock = f" {row['H']}:{row['M']}" if pd.notna(row["H"]) else ""
    return f"{row['a']}/{row['b']}/{row['c']}{clock}"


def _resolve_dayfirst(
    p: pd.DataFrame, dayfirst: bool | None, path: str, column: str, lines: np.ndarray
) -> bool:
    """Decide whether the first field of d/m/Y-style dates is the day."""
    a, b = _int(p["a"]), _int(p["b"])
    first_big, second_big = np.flatnonzero(a > 12), np.flatnonzero(b > 12)
    if first_big.size and second_big.size:
        i, j = int(first_big[0]), int(second_big[0])
        raise DataError(
            f"dates are inconsistent: {_cell(p, i)!r} (line {int(lines[i])}) can only be "
            f"day-first but {_cell(p, j)!r} (line {int(lines[j])}) can only be month-first",
            path=path, column=column, fix="export the file with one date format",
        )
    if dayfirst is not None:
        wrong = second_big if dayfirst else first_big
        if wrong.size:
            i = int(wrong[0])
            order = "day-first" if dayfirst else "month-first"
            other = "--monthfirst" if dayfirst else "--dayfirst"
            raise DataError(
                f"{_cell(p, i)!r} cannot be read {order}",
                path=path, line=int(lines[i]), column=column,
                fix=f"use {other} (or fix the row)",
            )
        return dayfirst
    if first_big.size:
        return True
    if second_big.size:
        return False
    return _dayfirst_by_order(p, path, column)


def _dayfirst_by_order(p: pd.DataFrame, path: str, column: str) -> bool:
    """With no field above 12, choose the order under which time increases."""
    increasing = []
    for first_is_day in (True, False):
        day, month = ("a", "b") if first_is_day else ("b", "a")
        try:
            stamps = _assemble(p, "c", month, day, path, column, np.zeros(len(p), dtype=int))
        except DataError:
            increasing.append(False)
            continue
        increasing.append(bool(np.all(np.diff(stamps) > np.timedelta64(0))))
    if increasing[0] != increasing[1]:
        return increasing[0]
    raise DataError(
        "cannot tell whether dates are day-first or month-first: no day above 12 and "
        + ("both readings" if increasing[0] else "neither reading")
        + " give increasing timestamps",
        path=path, column=column, fix=_DAYFIRST_FIX,
    )
