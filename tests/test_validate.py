"""Every validation failure names file, line, column and problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from algospace.data.loader import load_bars
from algospace.errors import DataError

HEADER = "Timestamp,Open,High,Low,Close,Volume"
GOOD = [
    "2024-01-02 09:30,100,101,99,100.5,10",
    "2024-01-02 09:35,100.5,102,100,101,20",
    "2024-01-02 09:40,101,101.5,100.25,101.25,30",
    "2024-01-02 09:45,101.25,102,101,101.5,40",
]

# (case id, row index to replace (0-based data row), replacement, error regex)
BAD_ROWS = [
    ("non-numeric", 1, "2024-01-02 09:35,100.5,abc,100,101,20",
     r"line 3, column 'High': 'abc' is not a number"),
    ("empty cell", 2, "2024-01-02 09:40,101,101.5,,101.25,30", r"line 4, column 'Low': empty cell"),
    ("nan", 1, "2024-01-02 09:35,100.5,102,100,NaN,20", r"line 3, column 'Close': value is 'NaN'"),
    ("inf", 1, "2024-01-02 09:35,100.5,102,100,inf,20", r"line 3, column 'Close': value is 'inf'"),
    ("zero price", 0, "2024-01-02 09:30,0,101,0,0.5,10",
     r"line 2, column 'Open': price 0 is not positive"),
    ("negative price", 3, "2024-01-02 09:45,-1,102,-2,-1.5,40",
     r"line 5, column 'Open': price -1 is not positive"),
    ("negative volume", 2, "2024-01-02 09:40,101,101.5,100.25,101.25,-3",
     r"line 4, column 'Volume': volume -3 is negative"),
    ("high below low", 1, "2024-01-02 09:35,100.5,99,100,99.5,20",
     r"line 3, column 'High': High 99 is below Low 100"),
    ("open outside", 1, "2024-01-02 09:35,103,102,100,101,20",
     r"line 3, column 'Open': Open 103 is outside \[Low 100, High 102\]"),
    ("close outside", 1, "2024-01-02 09:35,100.5,102,100,99,20",
     r"line 3, column 'Close': Close 99 is outside \[Low 100, High 102\]"),
    ("duplicate timestamp", 2, "2024-01-02 09:35,101,101.5,100.25,101.25,30",
     r"line 4, column 'Timestamp': duplicate timestamp 2024-01-02 09:35:00"),
    ("decreasing timestamp", 3, "2024-01-02 09:20,101.25,102,101,101.5,40",
     r"line 5, column 'Timestamp': timestamp 2024-01-02 09:20:00 is earlier"),
    ("short row", 2, "2024-01-02 09:40,101,101.5,100.25",
     r"line 4: row has 4 fields, the header has 6 \(short row\)"),
    ("long row", 2, "2024-01-02 09:40,101,101.5,100.25,101.25,30,7",
     r"line 4: row has 7 fields, the header has 6 \(extra fields\)"),
    ("bad timestamp", 1, "yesterday,100.5,102,100,101,20",
     r"line 3, column 'Timestamp': cannot read timestamp 'yesterday'"),
    ("impossible date", 1, "2024-02-30 09:35,100.5,102,100,101,20",
     r"line 3, column 'Timestamp': day 30 is out of range"),
]


@pytest.mark.parametrize(("case", "row", "text", "message"), BAD_ROWS, ids=[c[0] for c in BAD_ROWS])
def test_bad_row(tmp_path: Path, case: str, row: int, text: str, message: str) -> None:
    lines = list(GOOD)
    lines[row] = text
    path = tmp_path / "bad.csv"
    path.write_text("\n".join([HEADER, *lines]) + "\n")
    with pytest.raises(DataError, match=message) as info:
        load_bars(path)
    assert str(path) in str(info.value)
    assert "Fix:" in str(info.value)


def test_more_rows_with_same_problem_are_counted(tmp_path: Path) -> None:
    lines = [r.rsplit(",", 1)[0] + ",-1" for r in GOOD]
    path = tmp_path / "bad.csv"
    path.write_text("\n".join([HEADER, *lines]) + "\n")
    with pytest.raises(DataError, match=r"line 2.*\(3 more row\(s\) like this\)"):
        load_bars(path)


def test_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("Timestamp,Open,High,Close\n2024-01-02 09:30,1,2,1.5\n")
    with pytest.raises(DataError, match=r"line 1: missing column\(s\) Low, Volume"):
        load_bars(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "file is empty"),
        (b"   \n\n", "file is empty"),
        (HEADER.encode() + b"\n", "header but no data rows"),
        (b"PK\x03\x04\x14\x00\x00\x00binary", "file is binary"),
        (b"Timestamp,Open\x00\x01\x02", "file is binary"),
        ("Timestamp,Open,High,Low,Close,Volume\n2024-01-02 09:30,\xe9".encode("latin-1"),
         "not UTF-8"),
    ],
    ids=["zero-byte", "blank", "header-only", "zip", "nul-bytes", "latin-1"],
)
def test_unreadable_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        load_bars(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        load_bars(tmp_path / "nope.csv")


def test_mixed_bar_sizes(tmp_path: Path) -> None:
    lines = [*GOOD, "2024-01-02 09:47,101.5,102,101,101.5,40"]
    path = tmp_path / "bad.csv"
    path.write_text("\n".join([HEADER, *lines]) + "\n")
    with pytest.raises(DataError, match="only 2 min after the previous one"):
        load_bars(path)


def test_blank_lines_keep_line_numbers(tmp_path: Path) -> None:
    lines = [GOOD[0], "", GOOD[1], GOOD[2].replace("101.5,100.25", "99,100.25")]
    path = tmp_path / "bad.csv"
    path.write_text("\n".join([HEADER, *lines]) + "\n")
    with pytest.raises(DataError, match="line 5, column 'High'"):
        load_bars(path)
