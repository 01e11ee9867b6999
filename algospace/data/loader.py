"""Load futures bar CSVs as users really have them, or fail with a clear message.

Accepted layouts (header names are matched case-insensitively, ignoring
spaces, underscores and ``<>``):

- ``Timestamp,Open,High,Low,Close,Volume`` (also ``Datetime``, ``Date``,
  ``Time``, ``Gmt time``, ``Local time`` as the one timestamp column);
- split ``Date,Time`` columns;
- an unnamed leading index column (as ``DataFrame.to_csv`` writes it): dropped
  when it is a row counter, used as the timestamp when it holds dates;
- known header typos and aliases (``Llow``, ``Vol``, ``TickVol``, ``Last``);
- comma, semicolon or tab separators; UTF-8 with or without BOM.

Timestamps are parsed by :mod:`algospace.data.timeparse`; the file says
whether they mark the bar's open or close (``timestamps``, default
``"open"``: the safe choice, since reading close-stamped bars as
open-stamped only delays information by one bar, while the reverse would
let a bar be seen before it closed). Loaded bars are indexed by open time.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from algospace.data.bars import COLUMNS, Bars
from algospace.data.timeparse import parse_timestamps
from algospace.data.validate import detect_bar_minutes, validate_frame
from algospace.errors import DataError

TimestampConvention = Literal["open", "close"]

_ALIASES: dict[str, str] = {
    "timestamp": "timestamp", "datetime": "timestamp", "datetimeutc": "timestamp",
    "gmttime": "timestamp", "localtime": "timestamp", "time": "time", "date": "date",
    "open": "open", "o": "open", "first": "open", "openprice": "open",
    "high": "high", "h": "high", "hi": "high", "max": "high", "highprice": "high",
    "low": "low", "l": "low", "lo": "low", "llow": "low", "min": "low", "lowprice": "low",
    "close": "close", "c": "close", "last": "close", "closeprice": "close",
    "volume": "volume", "vol": "volume", "v": "volume", "tickvol": "volume",
    "tickvolume": "volume", "totalvolume": "volume",
}


def load_bars(
    path: str | Path,
    *,
    dayfirst: bool | None = None,
    timestamps: TimestampConvention = "open",
) -> Bars:
    """Read, parse and validate one bar CSV; raise :class:`DataError` on any problem."""
    path = Path(path)
    if timestamps not in ("open", "close"):
        raise DataError(
            f"timestamps must be 'open' or 'close', got {timestamps!r}",
            fix="say whether the file's timestamps mark each bar's open or its close",
        )
    return bars_from_text(_read_text(path), path, dayfirst=dayfirst, timestamps=timestamps)


def bars_from_text(text: str, path: str | Path, *, dayfirst: bool | None = None,
                   timestamps: TimestampConvention = "open") -> Bars:
    """:func:`load_bars` on the text of a bar CSV (``path`` names it in messages)."""
    path = Path(path)
    raw, lines = _read_table(text, path)
    columns = _map_columns(list(raw.columns), path)
    stamp_raw = _timestamp_strings(raw, columns)
    stamp_col = columns.get("timestamp", columns.get("date", ""))
    times = parse_timestamps(
        stamp_raw, dayfirst=dayfirst, path=str(path), column=stamp_col, lines=lines
    )
    frame = validate_frame(raw, columns, times, lines, str(path))
    bar_minutes = detect_bar_minutes(frame.index, str(path))
    if timestamps == "close":
        frame.index = frame.index - pd.Timedelta(minutes=bar_minutes)
    frame.index.name = "open_time"
    return Bars(frame=frame, bar_minutes=bar_minutes, source=str(path))


def parse_line(header: str, line: str, number: int, *, path: str | Path,
               dayfirst: bool | None = None, timestamps: TimestampConvention = "open",
               bar_minutes: int = 5) -> pd.DataFrame:
    """One data row of a bar CSV whose first line is ``header``, checked as
    :func:`load_bars` checks a row: a one-row frame indexed by open time, or a
    :class:`DataError` naming line ``number`` of ``path`` (the row's order against the
    rows before it is the caller's to check)."""
    path = Path(path)
    sep = _sniff_separator(header)
    if line.count(sep) != header.count(sep):
        kind = "short row" if line.count(sep) < header.count(sep) else "extra fields"
        raise DataError(f"row has {line.count(sep) + 1} fields, the header has "
                        f"{header.count(sep) + 1} ({kind})", path=path, line=number,
                        fix="complete, repair or delete that row")
    raw, _ = _read_table(f"{header}\n{line}\n", path)
    lines = np.array([number])
    columns = _map_columns(list(raw.columns), path)
    times = parse_timestamps(_timestamp_strings(raw, columns), dayfirst=dayfirst,
                             path=str(path), lines=lines,
                             column=columns.get("timestamp", columns.get("date", "")))
    frame = validate_frame(raw, columns, times, lines, str(path))
    if timestamps == "close":
        frame.index = frame.index - pd.Timedelta(minutes=bar_minutes)
    frame.index.name = "open_time"
    return frame


def _read_text(path: Path) -> str:
    """Read the file as text, rejecting missing, empty and binary files."""
    if not path.exists():
        raise DataError("file not found", path=path, fix="check the path (quote names with spaces)")
    if path.is_dir():
        raise DataError("is a directory, not a CSV file", path=path)
    data = path.read_bytes()
    if not data.strip():
        raise DataError("file is empty", path=path, fix="export the bars again")
    if b"\x00" in data[:65536] or data[:4] in (b"PK\x03\x04", b"PAR1"):
        raise DataError(
            "file is binary, not CSV text", path=path,
            fix="export the bars as CSV (not .xlsx, Parquet or a zipped file)",
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(
            f"file is not UTF-8 text (byte {err.start})", path=path,
            fix="re-save the file as UTF-8 CSV",
        ) from None


def _sniff_separator(header: str) -> str:
    """Pick the separator used in the header line: comma, semicolon or tab."""
    counts = {sep: header.count(sep) for sep in (",", ";", "\t")}
    return max(counts, key=lambda sep: counts[sep])


def _read_table(text: str, path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """Parse CSV text into string cells, with each row's file line number."""
    header_line = text.split("\n", 1)[0]
    sep = _sniff_separator(header_line)
    _check_field_counts(text, sep, path)
    try:
        raw = pd.read_csv(
            io.StringIO(text), sep=sep, dtype=str, keep_default_na=False,
            skip_blank_lines=False, engine="c", quoting=csv.QUOTE_MINIMAL,
        )
    except pd.errors.ParserError as err:
        raise DataError(f"cannot parse as CSV ({err})", path=path) from None
    lines = np.arange(len(raw)) + 2
    blank = (raw.isna() | (raw == "")).all(axis=1).to_numpy()
    raw, lines = raw[~blank].reset_index(drop=True), lines[~blank]
    if raw.empty:
        raise DataError("file has a header but no data rows", path=path)
    return raw, lines


def _check_field_counts(text: str, sep: str, path: Path) -> None:
    """Reject rows with fewer or more fields than the header (pandas would pad them)."""
    counts = np.array([line.count(sep) for line in text.splitlines()])
    blank = np.array([not line.strip() for line in text.splitlines()])
    bad = np.flatnonzero((counts != counts[0]) & ~blank)
    if bad.size:
        i = int(bad[0])
        kind = "short row" if counts[i] < counts[0] else "extra fields"
        raise DataError(
            f"row has {counts[i] + 1} fields, the header has {counts[0] + 1} ({kind})",
            path=path, line=i + 1, fix="complete, repair or delete that row",
        )


def _normalise(name: str) -> str:
    """Header name as matched against aliases."""
    return re.sub(r"[\s_<>\-\"']", "", name).lower()


def _map_columns(names: list[str], path: Path) -> dict[str, str]:
    """Map canonical roles (timestamp/date/time/open/…/volume) to file column names."""
    roles: dict[str, str] = {}
    for name in names:
        role = _ALIASES.get(_normalise(name))
        if role is not None and role not in roles:
            roles[role] = name
    unnamed = [n for n in names if n.startswith("Unnamed: ") or not n.strip()]
    if "date" in roles and "time" not in roles and "timestamp" not in roles:
        roles["timestamp"] = roles.pop("date")
    if "time" in roles and "date" not in roles and "timestamp" not in roles:
        roles["timestamp"] = roles.pop("time")
    if "timestamp" not in roles and "date" not in roles and unnamed:
        roles["timestamp"] = unnamed[0]
    missing = [r for r in ("timestamp", *COLUMNS) if r not in roles]
    if missing == ["timestamp"] and "date" in roles:
        missing = []
    if missing:
        wanted = ", ".join(m.capitalize() for m in missing)
        raise DataError(
            f"missing column(s) {wanted}; found columns {names}",
            path=path, line=1,
            fix="the header needs Timestamp (or Date and Time), Open, High, Low, Close, Volume",
        )
    return roles


def _timestamp_strings(raw: pd.DataFrame, columns: dict[str, str]) -> pd.Series:
    """The timestamp text of each row, joining split Date and Time columns."""
    if "timestamp" in columns:
        return raw[columns["timestamp"]]
    return raw[columns["date"]].str.strip() + " " + raw[columns["time"]].str.strip()
