"""Shapes other tools read (issue 15): ``run --format`` (Binance's websocket kline events and
REST kline arrays), replay ``--format parquet`` / ``--header``, ccxt's OHLCV list and a
freqtrade DataFrame, ISO times in and out, ``--version``. The CLI runs as a subprocess."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aiohttp
import kline_rs
import numpy as np
import oracle
import pytest
from kline_rs.fake import FakeExchange, SimulatedMarket
from kline_rs.klines import structured
from kline_rs.live.output import JsonLines, OutputFormat, kline_line
from kline_rs.storage import read_klines
from test_cli_fail_loud import DAY, T0, acli, at, cli, dump, store

#: A real closed kline event, from a Binance US capture (cryptofeed's BINANCE_US.ws.1.0).
REAL_EVENT = json.loads(
    '{"e":"kline","E":1633998301755,"s":"OMGBUSD","k":{"t":1633998240000,"T":1633998299999,'
    '"s":"OMGBUSD","i":"1m","f":439572,"L":439585,"o":"13.72120000","c":"13.76640000",'
    '"h":"13.80760000","l":"13.72120000","v":"536.51000000","n":14,"x":true,'
    '"q":"7387.12073500","V":"231.60000000","Q":"3187.75743000","B":"0"}}'
)
#: A real REST kline row (``btcusdt_klines_5m_rest.json``'s shape): ints at 0, 6, 8.
PLUS_8 = timedelta(hours=8)
REST_TYPES = [int, str, str, str, str, str, int, str, int, str, str, str]


def shape(value: Any) -> Any:
    """The keys and value types of a JSON value, recursively."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    return type(value).__name__


# -- quote volumes at 1e-16 ------------------------------------------------------------------


def test_format_quote_prints_a_1e16_sum_as_binance_does() -> None:
    # 3.123456789 at 1e-16: Binance's 8 decimals, the rest cut (not rounded).
    assert kline_rs.format_quote(31_234_567_890_000_000) == "3.12345678"
    assert kline_rs.format_quote(10**16) == "1.00000000"
    assert kline_rs.format_fixed8(10**16) == "100000000.00000000"  # the 1e8-too-large misuse
    assert kline_rs.format_quote(2**100) == kline_rs.format_fixed8(2**100 // 10**8)


# -- ISO times ---------------------------------------------------------------------------------


def test_times_are_taken_as_ms_iso_text_or_datetimes_all_utc() -> None:
    from kline_rs.times import to_ms

    t = 1_577_934_000_000  # 2020-01-02T03:00:00Z
    same = [
        t, np.int64(t), "1577934000000", "2020-01-02T03:00", "2020-01-02 03:00:00Z",
        "2020-01-02T11:00:00+08:00", datetime(2020, 1, 2, 3, 0),  # naive: UTC, not local
        datetime(2020, 1, 2, 11, 0, tzinfo=timezone(PLUS_8)),
    ]  # fmt: skip
    assert [to_ms(v) for v in same] == [t] * len(same)
    assert to_ms(date(2020, 1, 2)) == to_ms("2020-01-02") == t - 3 * 3_600_000
    assert to_ms(datetime(2020, 1, 2, 3, 0, 0, 250_999)) == t + 250
    assert kline_rs.format_time(t) == "2020-01-02T03:00:00Z"
    assert kline_rs.format_time(t + 59_999) == "2020-01-02T03:00:59.999Z"
    assert kline_rs.format_time(t * 1000 + 1) == "2020-01-02T03:00:00.000001Z"  # µs: detected
    assert datetime.fromisoformat(kline_rs.format_time(t).replace("Z", "+00:00")).timestamp() == (
        t / 1000
    )
    with pytest.raises(kline_rs.TimeError, match=r"2021-02 has no day 29.*ISO"):
        to_ms("2021-02-29")
    with pytest.raises(kline_rs.KlineError, match="yesterday"):
        kline_rs.parse_time("yesterday")
    with pytest.raises(TypeError):
        to_ms(True)


def test_read_klines_takes_iso_and_datetime_bounds(tmp_path: Path) -> None:
    db = store(tmp_path / "k.sqlite", ["1m"])
    by_ms = read_klines(db, "BTCUSDT", "1m", T0 + 600_000, T0 + 1_200_000)
    assert len(by_ms) == 10
    for start, end in [
        ("2020-01-01T00:10", "2020-01-01T00:20:00Z"),
        (datetime(2020, 1, 1, 0, 10), datetime(2020, 1, 1, 8, 20, tzinfo=timezone(PLUS_8))),
        ("2020-01-01T01:10+01:00", T0 + 1_200_000),
    ]:  # fmt: skip
        got = read_klines(db, "BTCUSDT", "1m", start, end)
        assert got.tolist() == by_ms.tolist(), (start, end)
    assert len(read_klines(db, "BTCUSDT", "1m", "2020-01-02", None)) == len(
        read_klines(db, "BTCUSDT", "1m", T0 + DAY)
    )


def test_export_start_end_take_iso_and_show_prints_iso(tmp_path: Path) -> None:
    db = store(tmp_path / "k.sqlite", ["1m"])
    ms = ["--start", str(T0 + 600_000), "--end", str(T0 + 1_200_000)]
    iso = ["--start", "2020-01-01T00:10", "--end", "2020-01-01T08:20+08:00"]
    code, _, err = cli("export", db, tmp_path / "ms.csv", *ms)
    assert code == 0, err
    code, _, err = cli("export", db, tmp_path / "iso.csv", *iso)
    assert code == 0, err
    lines = (tmp_path / "iso.csv").read_text().splitlines()
    assert lines == (tmp_path / "ms.csv").read_text().splitlines() and len(lines) == 10
    assert lines[0].startswith(f"{T0 + 600_000},")
    code, _, err = cli("export", db, tmp_path / "x.csv", "--start", "2020-13-01")
    assert code == 2 and "month 13" in err
    code, out, err = cli("show", db, "BTCUSDT", "1m", "--last", "2")
    assert code == 0, err
    last = read_klines(db, "BTCUSDT", "1m", last=2)
    shown = [line.split()[0] for line in out.splitlines()[1:]]
    assert shown == [kline_rs.format_time(int(t)) for t in last["open_time"]]
    assert [kline_rs.parse_time(s) for s in shown] == last["open_time"].tolist()


def test_version_is_the_package_version() -> None:
    code, out, err = cli("--version")
    assert code == 0, err
    assert out.strip() == f"kline-rs {version('kline_rs')}" == f"kline-rs {kline_rs.__version__}"


# -- replay --header / --format parquet -------------------------------------------------------


def test_replay_header_line_names_binances_columns(tmp_path: Path) -> None:
    src = dump(tmp_path)
    code, _, err = cli("replay", src, "--intervals", "1m,1h", "--out", tmp_path / "plain")
    assert code == 0, err
    code, _, err = cli("replay", src, "--intervals", "1m,1h", "--out", tmp_path / "h", "--header")
    assert code == 0, err
    for name in ("BTCUSDT-1m.csv", "BTCUSDT-1h.csv"):
        plain = (tmp_path / "plain" / name).read_text()
        header, rest = (tmp_path / "h" / name).read_text().split("\n", 1)
        assert header == (
            "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
            "taker_buy_volume,taker_buy_quote_volume,ignore"
        )
        assert rest == plain
        # Read back as Binance's files with a header are read: the same klines.
        from kline_rs.kline_files import read_kline_csv

        with_header = read_kline_csv(tmp_path / "h" / name)
        assert with_header.tolist() == read_kline_csv(tmp_path / "plain" / name).tolist()
        assert len(with_header) == len(plain.splitlines())


def test_replay_parquet_keeps_exact_decimals(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    src = dump(tmp_path)
    code, _, err = cli("replay", src, "--intervals", "1m,1d", "--out", tmp_path / "csv")
    assert code == 0, err
    out = tmp_path / "pq"
    code, _, err = cli("replay", src, "--intervals", "1m,1d", "--out", out, "--format", "parquet")
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["BTCUSDT-1d.parquet", "BTCUSDT-1m.parquet"]
    for interval in ("1m", "1d"):
        table = pq.read_table(out / f"BTCUSDT-{interval}.parquet")
        schema = dict(zip(table.schema.names, table.schema.types, strict=True))
        assert list(schema) == [
            "open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume",
            "trades", "taker_buy_volume", "taker_buy_quote_volume",
        ]  # fmt: skip
        assert schema["open"] == pa.decimal128(38, 8) and schema["volume"] == pa.decimal128(38, 8)
        assert schema["quote_volume"] == pa.decimal128(38, 16)
        assert schema["open_time"] == pa.timestamp("ms", tz="UTC")
        rows = table.to_pylist()
        lines = (tmp_path / "csv" / f"BTCUSDT-{interval}.csv").read_text().splitlines()
        assert len(rows) == len(lines) > 1
        for row, line in zip(rows, lines, strict=True):
            f = line.split(",")
            epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
            assert row["open_time"] == epoch + timedelta(milliseconds=int(f[0]))
            assert row["close_time"] == epoch + timedelta(milliseconds=int(f[6]))
            got = [row[k] for k in ("open", "high", "low", "close", "volume")]
            assert got == [Decimal(x) for x in f[1:6]]
            assert row["quote_volume"] == Decimal(f[7]) and row["trades"] == int(f[8])
            assert [row["taker_buy_volume"], row["taker_buy_quote_volume"]] == [
                Decimal(f[9]),
                Decimal(f[10]),
            ]
    day = pq.read_table(out / "BTCUSDT-1d.parquet").to_pylist()
    assert max(r["volume"] for r in day) > Decimal("9e10")  # the huge quantity, to the last digit
    code, _, err = cli("replay", src, "--out", out, "--format", "parquet", "--header")
    assert code == 2 and "--header is for CSV" in err


def test_replay_parquet_without_pyarrow_says_what_to_install(tmp_path: Path) -> None:
    src, out = dump(tmp_path), tmp_path / "out"
    hide = (
        "import sys; sys.modules['pyarrow'] = None; sys.modules['pyarrow.parquet'] = None\n"
        "from kline_rs.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", hide, "replay", str(src), "--out", str(out), "--format", "parquet"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "needs pyarrow: pip install pyarrow" in done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists() or not any(out.iterdir())


# -- ccxt and freqtrade ------------------------------------------------------------------------


def real_klines(binance_data: Path) -> tuple[np.ndarray, list[list[Any]]]:
    """Binance's own 1m file of 2020-01-02 as klines, and as REST rows."""
    import zipfile

    with zipfile.ZipFile(binance_data / "BTCUSDT-1m-2020-01-02.zip") as z:
        text = z.read(z.namelist()[0]).decode()
    rows: list[list[Any]] = []
    for line in text.split():
        f = line.split(",")
        rows.append([int(f[0]), *f[1:6], int(f[6]), f[7], int(f[8]), *f[9:]])
    return structured(kline_rs._core.parse_kline_rows(rows)), rows


def test_ccxt_ohlcv_is_what_ccxt_parses_from_binances_rows(binance_data: Path) -> None:
    klines, rows = real_klines(binance_data)
    got = kline_rs.to_ccxt_ohlcv(klines)
    assert len(got) == 1440
    assert all(type(r[0]) is int and all(type(v) is float for v in r[1:]) for r in got)
    ccxt = pytest.importorskip("ccxt")
    exchange = ccxt.binance()
    want = [exchange.parse_ohlcv(r) for r in rows]
    assert got == want
    assert got[0][:2] == [1577923200000, float(rows[0][1])]


def test_freqtrade_frame_has_its_columns_and_utc_dates(binance_data: Path) -> None:
    klines, rows = real_klines(binance_data)
    frame = kline_rs.to_freqtrade(klines)
    assert list(frame.columns) == ["date", "open", "high", "low", "close", "volume"]
    assert str(frame["date"].dtype) == "datetime64[ns, UTC]"
    assert all(str(frame[c].dtype) == "float64" for c in ["open", "high", "low", "close", "volume"])
    assert frame["date"].iloc[0].isoformat() == "2020-01-02T00:00:00+00:00"
    assert frame["close"].tolist() == [float(r[4]) for r in rows]
    assert frame["volume"].tolist() == [float(r[5]) for r in rows]


# -- run --format ------------------------------------------------------------------------------


def quiet_market() -> SimulatedMarket:
    """BTCUSDT traded from 6 minutes ago until 3.5 minutes ago, then time stands still: the
    minutes after the last trade are flat and closed by the wall clock."""
    now = int(time.time() * 1000)
    market = SimulatedMarket(["BTCUSDT"], seed=5, start_ms=now - 360_000, speed=0)
    market.advance(now - 210_000)
    return market


async def rest_rows(fx: FakeExchange, symbol: str, interval: str) -> list[list[Any]]:
    url = f"{fx.rest_url}/api/v3/klines?symbol={symbol}&interval={interval}&limit=1000"
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        got: list[list[Any]] = await r.json()
    return got


def test_run_binance_ws_events_match_the_stored_klines_and_binances_shape(
    tmp_path: Path,
) -> None:
    db = tmp_path / "k.sqlite"

    async def scenario() -> tuple[SimulatedMarket, str, float]:
        market = quiet_market()
        async with FakeExchange(market) as fx:
            before = time.time() * 1000
            code, out, err, _ = await acli(
                "run", "--symbols", "BTCUSDT", *at(fx), "--lookback", "6m", "--db", db,
                "--print", "--format", "binance-ws", "--duration", "4",
            )  # fmt: skip
            assert code == 0, err
        return market, out, before

    market, out, before = asyncio.run(scenario())
    events = [json.loads(line) for line in out.splitlines()]
    for e in events:
        assert shape(e) == shape(REAL_EVENT), e  # Binance's field names and JSON types
    latest = {e["k"]["t"]: e for e in events}  # a revision is the same event again
    assert len(latest) >= 4
    stored = {int(r["open_time"]): r for r in read_klines(db, "BTCUSDT", "1m")}
    want = oracle.by_open_time(market.history("BTCUSDT"), "1m")
    flat = 0
    for e in latest.values():
        k = e["k"]
        assert (e["e"], e["s"], k["s"], k["i"], k["x"], k["B"]) == (
            "kline", "BTCUSDT", "BTCUSDT", "1m", True, "0",
        )  # fmt: skip
        assert before <= e["E"] <= time.time() * 1000 and e["E"] >= k["T"]
        row = stored[k["t"]]
        assert k["T"] == int(row["close_time"])
        names = ("open", "high", "low", "close", "volume")
        assert [k[c] for c in "ohlcv"] == [kline_rs.format_fixed8(int(row[n])) for n in names]
        assert k["q"] == kline_rs.format_quote(int(row["quote_volume"]))
        assert k["Q"] == kline_rs.format_quote(int(row["taker_buy_quote_volume"]))
        assert k["V"] == kline_rs.format_fixed8(int(row["taker_buy_volume"]))
        assert k["n"] == int(row["trades"])
        w = want.get(k["t"])
        # Traded: Binance's values and the raw trade ids.
        if w is not None and w["trades"] and not row["gap"]:
            ids = (w["first_trade_id"], w["last_trade_id"], w["trades"])
            assert (k["f"], k["L"], k["n"]) == ids
            assert k["q"] == kline_rs.format_fixed8(w["quote_volume"])
        if k["n"] == 0:
            flat += 1
            assert (k["f"], k["L"]) == (-1, -1)  # as Binance sends a quiet minute
            assert k["o"] == k["h"] == k["l"] == k["c"] and k["v"] == k["q"] == "0.00000000"
    assert flat >= 1 and len(latest) > flat


def test_run_binance_rest_rows_equal_the_exchanges_own(tmp_path: Path) -> None:
    async def scenario() -> tuple[str, list[list[Any]]]:
        async with FakeExchange(quiet_market()) as fx:
            code, out, err, _ = await acli(
                "run", "--symbols", "BTCUSDT", *at(fx), "--lookback", "6m",
                "--format", "binance-rest", "--duration", "4",
            )  # fmt: skip
            assert code == 0, err
            return out, await rest_rows(fx, "BTCUSDT", "1m")

    out, rest = asyncio.run(scenario())
    printed = [json.loads(line) for line in out.splitlines()]
    latest = {r[0]: r for r in printed}  # a revision repeats its openTime
    by_open = {r[0]: r for r in rest}
    assert len(set(latest) & set(by_open)) >= 3
    for row in printed:
        assert [type(v) for v in row] == REST_TYPES
    for t, row in latest.items():
        if t in by_open:
            assert row == by_open[t]  # field for field, text for text
        else:  # after the frozen market's time: quiet minutes at the last close
            assert row[8] == 0 and row[1] == row[2] == row[3] == row[4] == rest[-1][4]
    ccxt = pytest.importorskip("ccxt")
    klines = np.concatenate([structured(kline_rs._core.parse_kline_rows([r])) for r in printed])
    assert kline_rs.to_ccxt_ohlcv(klines) == [ccxt.binance().parse_ohlcv(r) for r in printed]


def test_binance_rest_needs_one_symbol_and_one_interval() -> None:
    async def scenario() -> None:
        async with FakeExchange(SimulatedMarket(["BTCUSDT", "ETHUSDT"])) as fx:
            for which in (["--symbols", "BTCUSDT,ETHUSDT"], ["--quote", "USDT"]):
                code, out, err, _ = await acli(
                    "run", *which, *at(fx), "--format", "binance-rest", "--duration", "2"
                )
                assert code == 2 and out == "" and "binance-ws" in err, err
            code, out, err, _ = await acli(
                "run", "--symbols", "BTCUSDT", "--intervals", "1m,5m", *at(fx),
                "--format", "binance-rest", "--duration", "2",
            )  # fmt: skip
            assert code == 2 and "one interval" in err

    asyncio.run(scenario())


def test_a_revision_comes_again_in_every_format() -> None:
    """A repaired kline is sent again: jsonl says ``revision``; binance-ws repeats the closed
    event (same ``t``, ``x`` true, a later ``E``); binance-rest repeats the row's openTime."""
    from kline_rs.engine import ClosedKline

    first = ClosedKline(
        "BTCUSDT", "1m", T0, T0 + 59_999, 7_000 * 10**8, 7_001 * 10**8, 6_999 * 10**8,
        7_000 * 10**8, 10**8, 7_000 * 10**16, 3, 0, 0, 11, 13, 0, True,
    )  # fmt: skip
    fixed = first._replace(trades=4, last_trade_id=14, revision=1, gap=False)
    lines: dict[str, list[Any]] = {}
    formats: tuple[OutputFormat, ...] = ("jsonl", "binance-ws", "binance-rest")
    for fmt in formats:
        out = io.StringIO()
        times = iter([T0 + 61_000, T0 + 400_000])
        printer = JsonLines(out, fmt, now_ms=times.__next__)
        printer(first)
        printer(fixed)
        lines[fmt] = [json.loads(s) for s in out.getvalue().splitlines()]
    j0, j1 = lines["jsonl"]
    assert (j0["revision"], j0["gap"], j1["revision"], j1["gap"]) == (0, True, 1, False)
    w0, w1 = lines["binance-ws"]
    assert (w0["k"]["t"], w0["k"]["x"], w0["E"]) == (T0, True, T0 + 61_000)
    assert (w1["k"]["t"], w1["k"]["x"], w1["E"], w1["k"]["n"]) == (T0, True, T0 + 400_000, 4)
    assert w0["k"]["q"] == "7000.00000000"  # 1e-16 printed as Binance's text, not 1e8 larger
    r0, r1 = lines["binance-rest"]
    assert r0[0] == r1[0] == T0 and (r0[8], r1[8]) == (3, 4)
    assert kline_line(first, "binance-rest") == json.dumps(r0, separators=(",", ":"))


def test_status_line_shows_the_latest_close_as_iso() -> None:
    from kline_rs.live.pipeline import Status

    status = Status(0, 0.0, 1, 0, 0, 0, 0, 0, 0, 3, latest_ms=T0 + 59_999)
    assert "klines 3 to 2020-01-01T00:00:59.999Z" in status.line()
    assert " to " not in Status(0, 0.0, 1, 0, 0, 0, 0, 0, 0, 0).line()
