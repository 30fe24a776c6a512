"""Replay of bad input: every bad row named by file, line and reason, or counted and skipped;
nothing half-written."""

from __future__ import annotations

import re
from pathlib import Path

import kline_rs
import pytest
from test_replay import (
    DAY,
    DAY0,
    EXPECTED_1M,
    EXPECTED_5M,
    FUTURES_HEADER,
    HOUR,
    MINUTE,
    TRADES,
    Row,
    futures,
    open_times,
    outputs,
    read_lines,
    run_cli,
    spot,
    write,
    write_zip,
)


def test_bad_row_stops_replay_with_file_line_and_reason(tmp_path: Path) -> None:
    rows = spot(TRADES).splitlines(keepends=True)
    rows[2] = "102,99.0.0,2.00000000,1003,1005,1709510459999,False,True\n"
    src = write(tmp_path / "in" / "BTCUSDT-aggTrades-2024-03-04.csv", "".join(rows))
    with pytest.raises(kline_rs.ParseError) as err:
        kline_rs.replay(src, tmp_path / "out", ["1m"])
    msg = str(err.value)
    assert "BTCUSDT-aggTrades-2024-03-04.csv:3:" in msg
    assert "price" in msg and "99.0.0" in msg


def test_bad_row_line_number_counts_the_futures_header(tmp_path: Path) -> None:
    lines = futures(TRADES).splitlines(keepends=True)
    lines[4] = "103,102.00000000,1.00000000,1006,1006,1709510580000,maybe\n"  # 4th data row
    src = write(tmp_path / "in" / "BTCUSDT-aggTrades-2024-03-04.csv", "".join(lines))
    with pytest.raises(kline_rs.ParseError, match=r"\.csv:5: is_buyer_maker is not a boolean"):
        kline_rs.replay(src, tmp_path / "out", ["1m"])


def test_bad_row_line_numbers_hold_across_blocks_files_and_zip_members(tmp_path: Path) -> None:
    # 40 000 rows (~2.5 MB) span several of the reader's 1 MiB blocks.
    many = [Row(i, "1.00000000", "1.00000000", i, i, DAY0 + i, True) for i in range(1, 40_001)]
    lines = spot(many).splitlines(keepends=True)
    lines[39_995] = "bad\n"
    big = write(tmp_path / "big" / "BTCUSDT-aggTrades-2024-03-04.csv", "".join(lines))
    with pytest.raises(kline_rs.ParseError, match=r"\.csv:39996: 1 columns"):
        kline_rs.replay(big, tmp_path / "out", ["1m"], threads=3)
    summary = kline_rs.replay(big, tmp_path / "out", ["1m"], skip_bad=True, threads=3)
    assert (summary.rows, summary.trades, summary.bad_rows) == (40_000, 39_999, 1)

    # Numbering restarts in each file; CRLF endings and blank lines still count as lines.
    two = tmp_path / "two"
    write(two / "BTCUSDT-aggTrades-2024-03-04.csv", spot(TRADES[:3]))
    second = spot(TRADES[3:]).replace("\n", "\r\n") + "\r\nx\r\n"
    write(two / "BTCUSDT-aggTrades-2024-03-05.csv", second)
    with pytest.raises(kline_rs.ParseError, match=r"2024-03-05\.csv:4: 1 columns"):
        kline_rs.replay(two, tmp_path / "out2", ["1m"])

    name = "BTCUSDT-aggTrades-2024-03-04"
    bad_zip = write_zip(tmp_path / "z" / f"{name}.zip", f"{name}.csv", futures(TRADES) + "y\n")
    with pytest.raises(kline_rs.ParseError, match=rf"{name}\.zip:{name}\.csv:7: 1 columns"):
        kline_rs.replay(bad_zip, tmp_path / "out3", ["1m"])


def test_late_trades_and_repeats_across_days_are_counted(tmp_path: Path) -> None:
    src = tmp_path / "in"
    day1 = [
        Row(1, "1.00000000", "1.00000000", 1, 1, DAY0, True),
        Row(2, "2.00000000", "1.00000000", 2, 2, DAY0 + MINUTE, True),
        Row(3, "3.00000000", "1.00000000", 3, 3, DAY0 + 5, True),  # minute 0 has closed
    ]
    day2 = [day1[1], Row(4, "4.00000000", "1.00000000", 4, 4, DAY0 + MINUTE + 1, True)]
    write(src / "BTCUSDT-aggTrades-2024-03-04.csv", spot(day1))
    write(src / "BTCUSDT-aggTrades-2024-03-05.csv", spot(day2))
    summary = kline_rs.replay(src, tmp_path / "out", ["1m"])
    assert (summary.trades, summary.late, summary.duplicates) == (3, 1, 1)
    assert read_lines(tmp_path / "out" / "BTCUSDT-1m.csv") == [
        f"{DAY0},1.00000000,1.00000000,1.00000000,1.00000000,1.00000000,{DAY0 + MINUTE - 1},"
        "1.00000000,1,0.00000000,0.00000000,0",
        f"{DAY0 + MINUTE},2.00000000,4.00000000,2.00000000,4.00000000,2.00000000,"
        f"{DAY0 + 2 * MINUTE - 1},6.00000000,2,0.00000000,0.00000000,0",
    ]


def test_skip_bad_counts_and_lists_bad_rows_and_aggregates_the_rest(tmp_path: Path) -> None:
    good = spot(TRADES).splitlines(keepends=True)
    text = "".join(
        [
            good[0],
            good[1],
            "garbage\n",
            good[2],
            "103,1.123456789,1.0,1,1,1709510580000,True,True\n",
            good[3],
            good[4],
        ]
    )
    src = write(tmp_path / "in" / "BTCUSDT-aggTrades-2024-03-04.csv", text)
    summary = kline_rs.replay(src, tmp_path / "out", ["1m"], skip_bad=True)
    assert summary.bad_rows == 2
    assert summary.trades == len(TRADES)
    assert summary.rows == len(TRADES) + 2
    assert len(summary.bad_examples) == 2
    assert ".csv:3:" in summary.bad_examples[0] and "1 columns" in summary.bad_examples[0]
    assert ".csv:5:" in summary.bad_examples[1] and "8 decimals" in summary.bad_examples[1]
    assert read_lines(tmp_path / "out" / "BTCUSDT-1m.csv") == EXPECTED_1M


def test_placeholders_and_duplicates_are_counted_not_applied(tmp_path: Path) -> None:
    placeholder = Row(102, "0.00000000", "0.00000000", -1, -1, DAY0 + 30_000, True)
    rows = [*TRADES[:2], placeholder, *TRADES[2:4], TRADES[1], TRADES[3], *TRADES[4:]]
    # ids: 100 101 102(placeholder) 102 103 101(dup) 103(dup) 104
    src = write(tmp_path / "in" / "BTCUSDT-aggTrades-2024-03-04.csv", spot(rows))
    summary = kline_rs.replay(src, tmp_path / "out", ["1m", "5m"])
    assert summary.placeholders == 1
    assert summary.duplicates == 2
    assert summary.trades == len(TRADES)
    assert summary.bad_rows == 0
    assert read_lines(tmp_path / "out" / "BTCUSDT-1m.csv") == EXPECTED_1M
    assert read_lines(tmp_path / "out" / "BTCUSDT-5m.csv") == EXPECTED_5M


def test_a_corrupt_first_row_is_a_bad_row_not_a_header(tmp_path: Path) -> None:
    text = "x100,100.5,1.25,1000,1001,1709510401000,False,True\n" + spot(TRADES)
    src = write(tmp_path / "in" / "BTCUSDT-aggTrades-2024-03-04.csv", text)
    with pytest.raises(kline_rs.ParseError, match=r"2024-03-04\.csv:1: agg_trade_id"):
        kline_rs.replay(src, tmp_path / "out", ["1m"])
    summary = kline_rs.replay(src, tmp_path / "out", ["1m"], skip_bad=True)
    assert (summary.rows, summary.bad_rows, summary.trades) == (len(TRADES) + 1, 1, len(TRADES))
    assert read_lines(tmp_path / "out" / "BTCUSDT-1m.csv") == EXPECTED_1M


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (Row(102, "-99.00000000", "2.00000000", 1003, 1005, DAY0 + 9, False), "price is not"),
        (Row(102, "0.00000000", "2.00000000", 1003, 1005, DAY0 + 9, False), "price is not"),
        (Row(102, "99.00000000", "2.00000000", 1005, 1003, DAY0 + 9, False), "not a range"),
        (Row(102, "99.00000000", "2.00000000", 1003, 1005, -5, False), "time is negative"),
        (Row(102, "99.00000000", "2.00000000", 0, 2**63 - 1, DAY0 + 9, False), "2^32"),
    ],
)
def test_values_no_kline_can_use_are_bad_rows_with_file_and_line(
    tmp_path: Path, row: Row, reason: str
) -> None:
    # Row 3 of 6 is unusable; a placeholder stays Binance's own counted skip.
    placeholder = Row(105, "0.00000000", "0.00000000", -1, -1, DAY0 + 8 * MINUTE, True)
    rows = [*TRADES[:2], row, *TRADES[2:], placeholder]
    src = write(tmp_path / "in" / "BTCUSDT-aggTrades-2024-03-04.csv", spot(rows))
    with pytest.raises(kline_rs.ParseError, match=rf"2024-03-04\.csv:3: .*{re.escape(reason)}"):
        kline_rs.replay(src, tmp_path / "out", ["1m"])
    summary = kline_rs.replay(src, tmp_path / "out", ["1m"], skip_bad=True)
    assert (summary.bad_rows, summary.invalid, summary.placeholders) == (1, 0, 1)
    assert summary.trades == len(TRADES)
    (example,) = summary.bad_examples
    assert ".csv:3: " in example and reason in example
    assert read_lines(tmp_path / "out" / "BTCUSDT-1m.csv") == EXPECTED_1M


def test_a_long_bad_line_is_cut_in_the_error(tmp_path: Path) -> None:
    long_row = "103,1.0,1.0,1,1,1709510580000,True,True," + "9" * 5_000_000 + "\n"
    src = write(tmp_path / "in" / "BTCUSDT-aggTrades-2024-03-04.csv", spot(TRADES) + long_row)
    with pytest.raises(kline_rs.ParseError) as err:
        kline_rs.replay(src, tmp_path / "out", ["1m"])
    msg = str(err.value)
    assert ".csv:6: more than 8 columns" in msg
    assert len(msg) < 500 and f"({len(long_row) - 1} bytes)" in msg, msg[:1000]
    summary = kline_rs.replay(src, tmp_path / "out", ["1m"], skip_bad=True)
    assert len(summary.bad_examples[0]) < 500


def test_a_failed_replay_keeps_the_previous_output(tmp_path: Path) -> None:
    src = tmp_path / "in"
    write(src / "BTCUSDT-aggTrades-2024-03-04.csv", spot(TRADES))
    out = tmp_path / "out"
    kline_rs.replay(src, out, ["1m", "5m"])
    before = outputs(out)
    # The second day fails after the first has begun writing.
    write(src / "BTCUSDT-aggTrades-2024-03-05.csv", "105,oops\n")
    with pytest.raises(kline_rs.ParseError, match=r"2024-03-05\.csv:1:"):
        kline_rs.replay(src, out, ["1m", "5m"])
    assert outputs(out) == before  # nothing truncated, no partial or temporary file left


def test_an_empty_input_warns(tmp_path: Path) -> None:
    src = tmp_path / "in"
    write(src / "BTCUSDT-aggTrades-2024-03-04.csv", "")
    write(src / "BTCUSDT-aggTrades-2024-03-05.csv", FUTURES_HEADER)
    summary = kline_rs.replay(src, tmp_path / "out", ["1m"])
    assert (summary.files, summary.rows, summary.trades) == (2, 0, 0)
    assert any("no trades read from 2 files" in w for w in summary.warnings), summary.warnings
    done = run_cli(src, "--out", tmp_path / "out2")
    assert done.returncode == 0, done.stderr
    assert "warning: no trades read from 2 files" in done.stderr, done.stderr


def test_ms_and_us_files_of_one_symbol_are_refused(tmp_path: Path) -> None:
    src = tmp_path / "in"
    write(src / "BTCUSDT-aggTrades-2024-03-04.csv", spot(TRADES[:2]))
    micro = [r._replace(t=(r.t + DAY) * 1000) for r in TRADES[2:]]
    write(src / "BTCUSDT-aggTrades-2024-03-05.csv", spot(micro))
    with pytest.raises(kline_rs.ReplayError) as err:
        kline_rs.replay(src, tmp_path / "out", ["1m"])
    msg = str(err.value)
    assert "BTCUSDT-aggTrades-2024-03-05.csv" in msg
    assert re.search(r"\bus\b", msg) and re.search(r"\bms\b", msg), msg


def test_missing_input_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope"):
        kline_rs.replay(tmp_path / "nope.csv", tmp_path / "out", ["1m"])
    with pytest.raises(FileNotFoundError):
        kline_rs.replay(str(tmp_path / "nothing-*.csv"), tmp_path / "out", ["1m"])


@pytest.mark.parametrize("interval", ["7x", "", "1y", "0m"])
def test_bad_interval_raises_interval_error(tmp_path: Path, interval: str) -> None:
    src = write(tmp_path / "in" / "BTCUSDT-aggTrades-2024-03-04.csv", spot(TRADES))
    with pytest.raises(kline_rs.IntervalError):
        kline_rs.replay(src, tmp_path / "out", ["1m", interval])


def test_bad_time_zone_offset_raises_interval_error(tmp_path: Path) -> None:
    src = write(tmp_path / "in" / "BTCUSDT-aggTrades-2024-03-04.csv", spot(TRADES))
    with pytest.raises(kline_rs.IntervalError, match="15:00"):
        kline_rs.replay(src, tmp_path / "out", ["1d"], tz_offset="+15:00")


def test_time_zone_offset_moves_days_but_not_hours(tmp_path: Path) -> None:
    rows = [
        Row(1, "1.00000000", "1.00000000", 1, 1, DAY0 + 10 * HOUR, False),
        Row(2, "2.00000000", "1.00000000", 2, 2, DAY0 + 16 * HOUR - 1, False),
        Row(3, "3.00000000", "1.00000000", 3, 3, DAY0 + 16 * HOUR, False),
    ]
    src = write(tmp_path / "in" / "BTCUSDT-aggTrades-2024-03-04.csv", spot(rows))
    kline_rs.replay(src, tmp_path / "utc", ["1h", "1d"])
    kline_rs.replay(src, tmp_path / "cst", ["1h", "1d"], tz_offset="+08:00")
    assert (tmp_path / "cst" / "BTCUSDT-1h.csv").read_bytes() == (
        tmp_path / "utc" / "BTCUSDT-1h.csv"
    ).read_bytes()
    assert open_times(read_lines(tmp_path / "cst" / "BTCUSDT-1h.csv"))[0] == DAY0 + 10 * HOUR
    local_days = read_lines(tmp_path / "cst" / "BTCUSDT-1d.csv")
    # 2024-03-04 00:00 +08:00 is 2024-03-03 16:00 UTC.
    assert open_times(local_days) == [DAY0 - 8 * HOUR, DAY0 + 16 * HOUR]
    assert [int(d.split(",")[6]) for d in local_days] == [
        DAY0 + 16 * HOUR - 1,
        DAY0 + 40 * HOUR - 1,
    ]
    assert [d.split(",")[1] for d in local_days] == ["1.00000000", "3.00000000"]
    assert [d.split(",")[4] for d in local_days] == ["2.00000000", "3.00000000"]
    assert open_times(read_lines(tmp_path / "utc" / "BTCUSDT-1d.csv")) == [DAY0]
