"""Replay of aggTrades dumps (files written to tmp_path) and the ``kline-rs replay`` CLI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import kline_rs
import pytest
from kline_rs.fake.simulate import generate_day

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
PYTHON_LOOP = REPO / "benchmarks" / "peers" / "python_loop.py"

DAY0 = 1_709_510_400_000  # 2024-03-04 00:00 UTC
MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
THREE_DAYS = 3 * DAY
FUTURES_HEADER = (
    "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker\n"
)
FLAT_TAIL = "0.00000000,{close_time},0.00000000,0,0.00000000,0.00000000,0"


class Row(NamedTuple):
    """One aggTrade as the text columns of a dump."""

    a: int
    p: str
    q: str
    f: int
    l: int  # noqa: E741 - Binance's field name
    t: int
    m: bool


def spot(rows: Sequence[Row]) -> str:
    """Spot dump text: no header, 8 columns, ``True``/``False``."""
    return "".join(f"{r.a},{r.p},{r.q},{r.f},{r.l},{r.t},{r.m},True\n" for r in rows)


def futures(rows: Sequence[Row]) -> str:
    """Futures dump text: a header line, 7 columns, ``true``/``false``."""
    body = "".join(f"{r.a},{r.p},{r.q},{r.f},{r.l},{r.t},{str(r.m).lower()}\n" for r in rows)
    return FUTURES_HEADER + body


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def write_zip(path: Path, member: str, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr(member, text)
    return path


def read_lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def outputs(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def open_times(lines: Sequence[str]) -> list[int]:
    return [int(line.split(",")[0]) for line in lines]


#: Minute 0: three trades; minutes 1 and 2: empty; minute 3: one trade; minute 7: one trade.
TRADES = [
    Row(100, "100.50000000", "1.25000000", 1000, 1001, DAY0 + 1_000, False),
    Row(101, "101.00000000", "0.50000000", 1002, 1002, DAY0 + 2_000, True),
    Row(102, "99.00000000", "2.00000000", 1003, 1005, DAY0 + MINUTE - 1, False),
    Row(103, "102.00000000", "1.00000000", 1006, 1006, DAY0 + 3 * MINUTE, True),
    Row(104, "98.12345678", "0.00000001", 1007, 1008, DAY0 + 7 * MINUTE + 5, False),
]


def flat(open_time: int, price: str) -> str:
    tail = FLAT_TAIL.format(close_time=open_time + MINUTE - 1)
    return f"{open_time},{price},{price},{price},{price},{tail}"


#: The 1m klines of TRADES, worked out by hand.
EXPECTED_1M = [
    f"{DAY0},100.50000000,101.00000000,99.00000000,99.00000000,3.75000000,{DAY0 + MINUTE - 1},"
    "374.12500000,6,3.25000000,323.62500000,0",
    flat(DAY0 + MINUTE, "99.00000000"),
    flat(DAY0 + 2 * MINUTE, "99.00000000"),
    f"{DAY0 + 3 * MINUTE},102.00000000,102.00000000,102.00000000,102.00000000,1.00000000,"
    f"{DAY0 + 4 * MINUTE - 1},102.00000000,1,0.00000000,0.00000000,0",
    flat(DAY0 + 4 * MINUTE, "102.00000000"),
    flat(DAY0 + 5 * MINUTE, "102.00000000"),
    flat(DAY0 + 6 * MINUTE, "102.00000000"),
    # p·q = 98.12345678 * 0.00000001 = 0.0000009812345678 → printed truncated to 8 decimals.
    f"{DAY0 + 7 * MINUTE},98.12345678,98.12345678,98.12345678,98.12345678,0.00000001,"
    f"{DAY0 + 8 * MINUTE - 1},0.00000098,2,0.00000001,0.00000098,0",
]
EXPECTED_5M = [
    f"{DAY0},100.50000000,102.00000000,99.00000000,102.00000000,4.75000000,"
    f"{DAY0 + 5 * MINUTE - 1},476.12500000,7,3.25000000,323.62500000,0",
    f"{DAY0 + 5 * MINUTE},98.12345678,98.12345678,98.12345678,98.12345678,0.00000001,"
    f"{DAY0 + 10 * MINUTE - 1},0.00000098,2,0.00000001,0.00000098,0",
]


# --- input formats -------------------------------------------------------------------------


def test_output_is_binance_kline_csv_with_flat_empty_minutes(tmp_path: Path) -> None:
    src = write(tmp_path / "in" / "BTCUSDT-aggTrades-2024-03-04.csv", spot(TRADES))
    summary = kline_rs.replay(src, tmp_path / "out", ["1m", "5m"])
    one = read_lines(tmp_path / "out" / "BTCUSDT-1m.csv")
    assert one == EXPECTED_1M
    assert read_lines(tmp_path / "out" / "BTCUSDT-5m.csv") == EXPECTED_5M
    for line in one:
        fields = line.split(",")
        assert len(fields) == 12
        assert fields[11] == "0"
        for i in (1, 2, 3, 4, 5, 7, 9, 10):
            assert re.fullmatch(r"\d+\.\d{8}", fields[i]), (i, line)
    assert open_times(one) == [DAY0 + i * MINUTE for i in range(8)]
    assert summary.trades == 5 and summary.rows == 5 and summary.files == 1
    assert summary.klines_written == len(EXPECTED_1M) + len(EXPECTED_5M)
    assert sorted(p.name for p in summary.outputs) == ["BTCUSDT-1m.csv", "BTCUSDT-5m.csv"]


def test_spot_futures_and_zip_inputs_give_identical_klines(tmp_path: Path) -> None:
    name = "BTCUSDT-aggTrades-2024-03-04"
    inputs = {
        "spot": write(tmp_path / "spot" / f"{name}.csv", spot(TRADES)),
        "futures": write(tmp_path / "futures" / f"{name}.csv", futures(TRADES)),
        "spot_zip": write_zip(tmp_path / "spot_zip" / f"{name}.zip", f"{name}.csv", spot(TRADES)),
        "futures_zip": write_zip(
            tmp_path / "futures_zip" / f"{name}.zip", f"{name}.csv", futures(TRADES)
        ),
    }
    results = {}
    for kind, path in inputs.items():
        summary = kline_rs.replay(path, tmp_path / f"out_{kind}", ["1m", "5m", "1h"])
        assert summary.trades == len(TRADES) and summary.bad_rows == 0, kind
        results[kind] = outputs(tmp_path / f"out_{kind}")
    assert results["spot"]["BTCUSDT-1m.csv"].decode().splitlines() == EXPECTED_1M
    for kind in ("futures", "spot_zip", "futures_zip"):
        assert results[kind] == results["spot"], kind


def test_zip_members_are_read_in_name_order_not_archive_order(tmp_path: Path) -> None:
    path = tmp_path / "in" / "BTCUSDT-aggTrades-2024-03.zip"
    path.parent.mkdir(parents=True)
    with zipfile.ZipFile(path, "w") as z:  # the later day first in the archive
        z.writestr("BTCUSDT-aggTrades-2024-03-05.csv", spot(TRADES[3:]))
        z.writestr("BTCUSDT-aggTrades-2024-03-04.csv", spot(TRADES[:3]))
    summary = kline_rs.replay(path, tmp_path / "out", ["1m"])
    assert (summary.trades, summary.duplicates, summary.late) == (len(TRADES), 0, 0)
    assert read_lines(tmp_path / "out" / "BTCUSDT-1m.csv") == EXPECTED_1M


def test_microsecond_timestamps_close_one_microsecond_before_the_next_minute(
    tmp_path: Path,
) -> None:
    rows = [r._replace(t=r.t * 1000 + 123) for r in TRADES]
    rows[2] = rows[2]._replace(t=(DAY0 + MINUTE) * 1000 - 1)  # last µs of minute 0
    rows[3] = rows[3]._replace(t=(DAY0 + 3 * MINUTE) * 1000)  # first µs of minute 3
    assert all(r.t > 10**14 for r in rows)
    src = write(tmp_path / "in" / "BTCUSDT-aggTrades-2025-03-04.csv", spot(rows))
    kline_rs.replay(src, tmp_path / "out", ["1m", "1h"])
    lines = read_lines(tmp_path / "out" / "BTCUSDT-1m.csv")
    assert len(lines) == 8
    for line in lines:
        fields = line.split(",")
        assert int(fields[6]) == int(fields[0]) + 60_000_000 - 1
    assert open_times(lines) == [(DAY0 + i * MINUTE) * 1000 for i in range(8)]
    # Apart from the time unit the klines are those of the ms input.
    for got, want in zip(lines, EXPECTED_1M, strict=True):
        g, w = got.split(","), want.split(",")
        assert g[1:6] + g[7:] == w[1:6] + w[7:]
    (hour,) = read_lines(tmp_path / "out" / "BTCUSDT-1h.csv")
    assert hour.split(",")[0] == str(DAY0 * 1000)
    assert hour.split(",")[6] == str((DAY0 + HOUR) * 1000 - 1)


def test_directories_and_glob_patterns_as_inputs(tmp_path: Path) -> None:
    src = tmp_path / "in"
    write(src / "BTCUSDT-aggTrades-2024-03-04.csv", spot(TRADES[:3]))
    write(src / "BTCUSDT-aggTrades-2024-03-05.csv", spot([]))  # empty day: nothing to add
    write(src / "ignored.txt", "not a dump\n")
    write(tmp_path / "more" / "BTCUSDT-aggTrades-2024-03-06.csv", spot(TRADES[3:]))
    runs: dict[str, list[Any]] = {
        "dir+file": [src, tmp_path / "more" / "BTCUSDT-aggTrades-2024-03-06.csv"],
        "globs": [str(src / "*.csv"), str(tmp_path / "m*" / "BTCUSDT-*.csv")],
        "one glob": [str(tmp_path / "*" / "BTCUSDT-aggTrades-*.csv")],
    }
    for label, inputs in runs.items():
        summary = kline_rs.replay(inputs, tmp_path / label, ["1m"])
        assert summary.trades == len(TRADES), label
        assert read_lines(tmp_path / label / "BTCUSDT-1m.csv") == EXPECTED_1M, label


def test_symbol_comes_from_the_file_name_unless_given(tmp_path: Path) -> None:
    named = write(tmp_path / "in" / "ETHUSDT-aggTrades-2024-03-04.csv", spot(TRADES))
    kline_rs.replay(named, tmp_path / "a", ["1m"])
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["ETHUSDT-1m.csv"]

    kline_rs.replay(named, tmp_path / "b", ["1m"], symbol="solusdt")
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["SOLUSDT-1m.csv"]

    anonymous = write(tmp_path / "in" / "trades.csv", spot(TRADES))
    kline_rs.replay(anonymous, tmp_path / "c", ["1m"], symbol="XRPUSDT")
    assert read_lines(tmp_path / "c" / "XRPUSDT-1m.csv") == EXPECTED_1M

    with pytest.raises(kline_rs.KlineError, match=r"trades\.csv.*symbol"):
        kline_rs.replay(anonymous, tmp_path / "d", ["1m"])


def test_two_consecutive_days_continue_across_midnight(tmp_path: Path) -> None:
    midnight = DAY0 + DAY
    day1 = [
        Row(1, "10.00000000", "1.00000000", 1, 1, midnight - 2 * MINUTE + 7, False),
        Row(2, "11.00000000", "1.00000000", 2, 2, midnight - 1, True),
    ]
    day2 = [
        Row(3, "12.00000000", "1.00000000", 3, 3, midnight, False),
        Row(4, "13.00000000", "1.00000000", 4, 4, midnight + MINUTE + 1, False),
    ]
    second = write(tmp_path / "in" / "BTCUSDT-aggTrades-2024-03-05.csv", spot(day2))
    first = write(tmp_path / "in" / "BTCUSDT-aggTrades-2024-03-04.csv", spot(day1))
    summary = kline_rs.replay([second, first], tmp_path / "out", ["1m", "1d"])  # any order
    assert summary.trades == 4 and summary.late == 0 and summary.duplicates == 0
    minutes = read_lines(tmp_path / "out" / "BTCUSDT-1m.csv")
    assert open_times(minutes) == [midnight - 2 * MINUTE + i * MINUTE for i in range(4)]
    closes = [line.split(",")[4] for line in minutes]
    assert closes == ["10.00000000", "11.00000000", "12.00000000", "13.00000000"]
    days = read_lines(tmp_path / "out" / "BTCUSDT-1d.csv")
    assert open_times(days) == [DAY0, midnight]
    assert [d.split(",")[1] for d in days] == ["10.00000000", "12.00000000"]
    assert [d.split(",")[8] for d in days] == ["2", "2"]


def test_several_symbols_give_one_file_per_symbol_and_interval(tmp_path: Path) -> None:
    src = tmp_path / "in"
    write(src / "BTCUSDT-aggTrades-2024-03-04.csv", spot(TRADES))
    other = [r._replace(p="2.00000000", a=r.a + 7) for r in TRADES[:2]]
    write(src / "ETHUSDT-aggTrades-2024-03-04.csv", spot(other))
    write(src / "SOLUSDT-aggTrades-2024-03-04.csv", futures(TRADES[3:]))
    summary = kline_rs.replay(src, tmp_path / "out", ["1m", "5m"])
    names = sorted(f"{s}-{i}.csv" for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT") for i in ("1m", "5m"))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == names
    assert sorted(p.name for p in summary.outputs) == names
    assert summary.files == 3 and summary.trades == len(TRADES) + 2 + 2
    assert read_lines(tmp_path / "out" / "BTCUSDT-1m.csv") == EXPECTED_1M
    (eth,) = read_lines(tmp_path / "out" / "ETHUSDT-1m.csv")
    assert eth.split(",")[1:5] == ["2.00000000"] * 4 and eth.split(",")[8] == "3"
    sol = read_lines(tmp_path / "out" / "SOLUSDT-1m.csv")
    assert sol == EXPECTED_1M[3:]


# --- the CLI (a real process) --------------------------------------------------------------


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "kline_rs.cli", "replay", *map(str, args), "--no-progress"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


def test_cli_replays_and_summarises_on_stderr(tmp_path: Path) -> None:
    src = write(tmp_path / "in" / "BTCUSDT-aggTrades-2024-03-04.csv", spot(TRADES))
    out = tmp_path / "out"
    done = run_cli(src.parent, "--out", out, "--intervals", "1m,5m")
    assert done.returncode == 0, done.stderr
    assert re.search(r"\b5 trades applied", done.stderr), done.stderr
    assert re.search(r"wrote 10 klines to 2 files", done.stderr), done.stderr
    assert read_lines(out / "BTCUSDT-1m.csv") == EXPECTED_1M
    assert read_lines(out / "BTCUSDT-5m.csv") == EXPECTED_5M


def test_the_replay_command_imports_neither_numpy_nor_the_live_pipeline(tmp_path: Path) -> None:
    """Their import (numpy alone ~0.2 s) took longer than replaying a small dump."""
    src = write(tmp_path / "in" / "BTCUSDT-aggTrades-2024-03-04.csv", spot(TRADES))
    probe = (
        "import sys; from kline_rs.cli import main; "
        f"code = main(['replay', {str(src)!r}, '--out', {str(tmp_path / 'out')!r}]); "
        "heavy = sorted(m for m in ('numpy', 'asyncio', 'websockets', 'aiohttp', 'sqlite3') "
        "if m in sys.modules); print(code, heavy)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.strip() == "0 []", done.stdout + done.stderr


def test_cli_fails_with_exit_1_on_a_bad_row_and_skip_bad_goes_on(tmp_path: Path) -> None:
    text = spot(TRADES[:2]) + "101.5,oops\n" + spot(TRADES[2:])
    src = write(tmp_path / "in" / "BTCUSDT-aggTrades-2024-03-04.csv", text)
    failed = run_cli(src, "--out", tmp_path / "out")
    assert failed.returncode == 1
    assert failed.stderr.startswith("kline-rs: error:"), failed.stderr
    assert "BTCUSDT-aggTrades-2024-03-04.csv:3:" in failed.stderr
    assert "2 columns" in failed.stderr
    assert "Traceback" not in failed.stderr

    skipped = run_cli(src, "--out", tmp_path / "out2", "--skip-bad")
    assert skipped.returncode == 0, skipped.stderr
    assert "1 bad rows" in skipped.stderr
    assert read_lines(tmp_path / "out2" / "BTCUSDT-1m.csv") == EXPECTED_1M


def test_cli_refuses_an_unknown_interval(tmp_path: Path) -> None:
    src = write(tmp_path / "in" / "BTCUSDT-aggTrades-2024-03-04.csv", spot(TRADES))
    done = run_cli(src, "--out", tmp_path / "out", "--intervals", "1m,7x")
    assert done.returncode == 2
    assert "7x" in done.stderr
    assert not (tmp_path / "out").exists()


# --- an independent exact reference --------------------------------------------------------


@pytest.mark.parametrize(("seed", "time_unit"), [(11, "ms"), (12, "us")])
def test_replay_equals_the_plain_python_reference(
    tmp_path: Path, seed: int, time_unit: str
) -> None:
    src = tmp_path / "in"
    paths = generate_day(src, symbols=5, trades=20_000, seed=seed, time_unit=time_unit)
    intervals = ["1m", "5m", "1h", "1d"]
    summary = kline_rs.replay(src, tmp_path / "ours", intervals)
    assert summary.trades == 20_000 and summary.files == len(paths) == 5
    subprocess.run(
        [
            sys.executable,
            str(PYTHON_LOOP),
            str(src),
            str(tmp_path / "ref"),
            "--intervals",
            "1m,5m,1h,1d",
        ],
        check=True,
        timeout=120,
    )
    ours, ref = outputs(tmp_path / "ours"), outputs(tmp_path / "ref")
    assert len(ref) == 5 * len(intervals)
    assert sorted(ours) == sorted(ref)
    for name in ref:
        assert ours[name] == ref[name], name
    first = int(ours["BTCUSDT-1m.csv"].split(b",", 1)[0])
    assert (first > 10**14) == (time_unit == "us")


# --- the 3d anchor on real Binance rows ----------------------------------------------------


def fixture_symbols() -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] = json.loads((FIXTURES / "klines_3d_anchor.json").read_text())[
        "symbols"
    ]
    return data


def csv_line(row: Sequence[object]) -> str:
    return ",".join(str(v) for v in row)


def consecutive_runs(lines: Sequence[str]) -> list[list[str]]:
    """1d lines split where a day is missing (the fixture holds two separate stretches)."""
    runs: list[list[str]] = []
    for line in lines:
        if runs and int(line.split(",")[0]) == int(runs[-1][-1].split(",")[0]) + DAY:
            runs[-1].append(line)
        else:
            runs.append([line])
    return runs


def rolled_3d(days: Sequence[str], anchor: int | None) -> list[str]:
    return [
        line
        for run in consecutive_runs(days)
        for line in kline_rs.rollup_csv(run, "3d", anchor_3d_ms=anchor)
    ]


@pytest.mark.parametrize(
    ("symbol", "residue_days"), [("BTCUSDT", 1), ("SOLUSDT", 2), ("XRPUSDT", 0)]
)
def test_3d_rolls_up_from_the_listing_day_like_binance(symbol: str, residue_days: int) -> None:
    rows = fixture_symbols()[symbol]
    days = [csv_line(r) for r in rows["rows_1d"]]
    recorded = [csv_line(r) for r in rows["rows_3d"]]
    assert len(days) == 18 and len(recorded) == 6
    anchor = int(rows["first_1d_open"])
    assert anchor == int(days[0].split(",")[0])
    assert anchor % THREE_DAYS == residue_days * DAY

    assert rolled_3d(days, anchor) == recorded

    with pytest.warns(kline_rs.Anchor3dWarning):  # no anchor: the epoch grid, said out loud
        epoch = rolled_3d(days, None)
    assert all(t % THREE_DAYS == 0 for t in open_times(epoch))
    if residue_days:
        assert epoch != recorded
        assert not set(open_times(epoch)) & set(open_times(recorded))
    else:
        assert epoch == recorded


def test_3d_anchor_also_applies_in_replay(tmp_path: Path) -> None:
    anchor = 1_502_928_000_000  # BTCUSDT's first 1d kline, 2017-08-17
    t = anchor + 100 * THREE_DAYS + DAY + 5  # one day into a 3d bucket of that grid
    rows = [Row(1, "1.00000000", "1.00000000", 1, 1, t, False)]
    src = write(tmp_path / "in" / "BTCUSDT-aggTrades-2018-05-26.csv", spot(rows))
    anchored = kline_rs.replay(src, tmp_path / "a", ["3d"], anchor_3d="2017-08-17")
    assert anchored.warnings == []
    assert open_times(read_lines(tmp_path / "a" / "BTCUSDT-3d.csv")) == [t - DAY - 5]
    plain = kline_rs.replay(src, tmp_path / "b", ["3d"])
    assert any("3d" in w for w in plain.warnings)
    (epoch_open,) = open_times(read_lines(tmp_path / "b" / "BTCUSDT-3d.csv"))
    assert epoch_open % THREE_DAYS == 0 and epoch_open <= t < epoch_open + THREE_DAYS
