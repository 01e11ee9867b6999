"""Loader formats: every layout real users export, read to the same bars."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from algospace.data.loader import load_bars
from algospace.errors import DataError

EXPECTED_OPEN = pd.to_datetime(
    ["2020-06-29 01:00", "2020-06-29 01:05", "2020-06-29 01:10", "2020-07-01 01:00"]
)
OHLCV = [
    ("10", "11", "9", "10.5", "100"),
    ("10.5", "12", "10", "11.75", "250"),
    ("11.75", "12.25", "11", "11", "80"),
    ("11", "11.5", "10.25", "11.25", "0"),
]


def write(tmp_path: Path, text: str, name: str = "bars.csv") -> Path:
    """Write CSV text to a file under tmp_path."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def rows(header: str, stamps: list[str], sep: str = ",") -> str:
    """A CSV with the given header and timestamp cells followed by OHLCV."""
    body = [sep.join([s, *v]) for s, v in zip(stamps, OHLCV, strict=True)]
    return "\n".join([header, *body]) + "\n"


def check(bars, expected_open=EXPECTED_OPEN) -> None:
    """Bars match the reference rows."""
    assert list(bars.frame.columns) == ["open", "high", "low", "close", "volume"]
    assert (bars.frame.index == expected_open).all()
    np.testing.assert_array_equal(bars.column("close"), [10.5, 11.75, 11.0, 11.25])
    np.testing.assert_array_equal(bars.column("volume"), [100, 250, 80, 0])
    assert bars.frame.dtypes.eq(np.float64).all()
    assert bars.bar_minutes == 5


ISO = ["2020-06-29 01:00:00", "2020-06-29 01:05:00", "2020-06-29 01:10:00", "2020-07-01 01:00:00"]


def test_standard_header(tmp_path: Path) -> None:
    check(load_bars(write(tmp_path, rows("Timestamp,Open,High,Low,Close,Volume", ISO))))


def test_date_header_and_lowercase(tmp_path: Path) -> None:
    check(load_bars(write(tmp_path, rows("date,open,high,low,close,volume", ISO))))


def test_split_date_time(tmp_path: Path) -> None:
    stamps = [s.replace(" ", ",") for s in ISO]
    check(load_bars(write(tmp_path, rows("Date,Time,Open,High,Low,Close,Volume", stamps))))


def test_unnamed_index_counter_is_dropped(tmp_path: Path) -> None:
    stamps = [f"{i},{s}" for i, s in enumerate(ISO)]
    check(load_bars(write(tmp_path, rows(",Timestamp,Open,High,Low,Close,Volume", stamps))))


def test_unnamed_index_holding_dates_is_the_timestamp(tmp_path: Path) -> None:
    check(load_bars(write(tmp_path, rows(",Open,High,Low,Close,Volume", ISO))))


def test_llow_typo_and_aliases(tmp_path: Path) -> None:
    check(load_bars(write(tmp_path, rows("Datetime,Open,High,Llow,Last,Vol", ISO))))


def test_mixed_dayfirst_formats_in_one_file(tmp_path: Path) -> None:
    # The NQ export mixes zero-padded with seconds and unpadded without.
    stamps = ["29/06/2020 01:00:00", "29/06/2020 01:05:00", "29/06/2020 1:10", "1/7/2020 1:00"]
    check(load_bars(write(tmp_path, rows("Timestamp,Open,High,Low,Close,Volume", stamps))))


def test_monthfirst_detected(tmp_path: Path) -> None:
    stamps = ["06/29/2020 01:00", "06/29/2020 01:05", "06/29/2020 01:10", "07/01/2020 01:00"]
    check(load_bars(write(tmp_path, rows("Timestamp,Open,High,Low,Close,Volume", stamps))))


def test_dukascopy_style_semicolons(tmp_path: Path) -> None:
    stamps = ["29.06.2020 01:00:00.000", "29.06.2020 01:05:00.000",
              "29.06.2020 01:10:00.000", "01.07.2020 01:00:00.000"]
    text = rows("Gmt time;Open;High;Low;Close;Volume", stamps, sep=";")
    check(load_bars(write(tmp_path, text)))


def test_tab_separated_metatrader_headers(tmp_path: Path) -> None:
    stamps = [s.replace("-", ".").replace(" ", "\t") for s in ISO]
    text = rows("<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>", stamps, sep="\t")
    check(load_bars(write(tmp_path, text)))


def test_epoch_seconds_and_iso_with_offset(tmp_path: Path) -> None:
    epoch = [str(int(t.timestamp())) for t in EXPECTED_OPEN]
    check(load_bars(write(tmp_path, rows("time,open,high,low,close,Volume", epoch))))
    local = EXPECTED_OPEN + pd.Timedelta(hours=2)
    offset = [t.strftime("%Y-%m-%dT%H:%M:%S") + "+02:00" for t in local]
    check(load_bars(write(tmp_path, rows("Timestamp,Open,High,Low,Close,Volume", offset), "b.csv")))


def test_ampm_and_two_digit_year(tmp_path: Path) -> None:
    stamps = ["6/29/20 1:00 AM", "6/29/20 1:05 AM", "6/29/20 1:10 AM", "7/1/20 1:00 AM"]
    check(load_bars(write(tmp_path, rows("Timestamp,Open,High,Low,Close,Volume", stamps))))


def test_bom_crlf_and_odd_file_names(tmp_path: Path) -> None:
    text = "\ufeff" + rows("Timestamp,Open,High,Low,Close,Volume", ISO).replace("\n", "\r\n")
    for name in ("ES  30 min  New.csv", "@NQ - 5 min - ETH.csv", "ES - 5 min.csv"):
        check(load_bars(write(tmp_path, text, name)))


def test_close_stamps_become_open_times(tmp_path: Path) -> None:
    stamps = [str(t + pd.Timedelta(minutes=5)) for t in EXPECTED_OPEN]
    path = write(tmp_path, rows("Timestamp,Open,High,Low,Close,Volume", stamps))
    bars = load_bars(path, timestamps="close")
    check(bars)
    assert (bars.close_time == EXPECTED_OPEN + pd.Timedelta(minutes=5)).all()


@pytest.mark.parametrize(
    ("minutes", "freq"), [(1, "1min"), (15, "15min"), (60, "60min"), (1440, "1D")]
)
def test_bar_size_detected_with_session_gaps(tmp_path: Path, minutes: int, freq: str) -> None:
    day1 = pd.date_range("2024-01-04 09:30", periods=20, freq=freq)
    day2 = pd.date_range(day1[-1] + pd.Timedelta(days=4), periods=20, freq=freq)  # a weekend+
    stamps = list(day1) + list(day2)
    body = [f"{t},{100 + i},{101 + i},{99 + i},{100.5 + i},{10 + i}" for i, t in enumerate(stamps)]
    path = write(tmp_path, "Timestamp,Open,High,Low,Close,Volume\n" + "\n".join(body) + "\n")
    bars = load_bars(path)
    assert bars.bar_minutes == minutes
    assert len(bars) == 40


def test_ambiguous_dates_are_not_guessed(tmp_path: Path) -> None:
    stamps = ["01/02/2020 01:00", "01/02/2020 01:05", "01/02/2020 01:10", "01/02/2020 01:15"]
    path = write(tmp_path, rows("Timestamp,Open,High,Low,Close,Volume", stamps))
    with pytest.raises(DataError, match="cannot tell whether dates are day-first or month-first"):
        load_bars(path)
    assert load_bars(path, dayfirst=True).open_time[0] == pd.Timestamp("2020-02-01 01:00")
    assert load_bars(path, dayfirst=False).open_time[0] == pd.Timestamp("2020-01-02 01:00")


def test_explicit_order_contradicted_by_data(tmp_path: Path) -> None:
    stamps = ["29/06/2020 01:00", "29/06/2020 01:05", "29/06/2020 01:10", "1/7/2020 1:00"]
    path = write(tmp_path, rows("Timestamp,Open,High,Low,Close,Volume", stamps))
    with pytest.raises(DataError, match=r"line 2, column 'Timestamp'.*cannot be read month-first"):
        load_bars(path, dayfirst=False)


def test_inconsistent_orders_in_one_file(tmp_path: Path) -> None:
    stamps = ["29/06/2020 01:00", "29/06/2020 01:05", "06/30/2020 01:10", "07/01/2020 1:00"]
    path = write(tmp_path, rows("Timestamp,Open,High,Low,Close,Volume", stamps))
    with pytest.raises(DataError, match=r"dates are inconsistent.*line 2.*line 4"):
        load_bars(path)
