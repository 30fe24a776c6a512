"""The CLI fails loud, as a new user would try it (issue 10, "Fail loud in the CLI").

Real parts only: ``kline-rs`` in a subprocess against the fake exchange on loopback, real
SQLite files, a closed port for an unreachable PostgreSQL.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import kline_rs
import numpy as np
import pytest
from kline_rs.engine import Engine
from kline_rs.fake import FakeExchange, Faults, SimulatedMarket
from kline_rs.feeds.binance import BinanceFeed, FeedError, SymbolNameError
from kline_rs.live.pipeline import BackgroundTaskError, LivePipeline, PipelineConfig
from kline_rs.live.store import DbTargetError
from kline_rs.live.symbols import Selection
from kline_rs.storage import open_sink

T0 = 1_577_836_800_000  # 2020-01-01 00:00 UTC
MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
#: A quantity near the top of i64 at 1e-8: two of them overflow a REST kline's volume.
HUGE_QTY = 9_000_000_000_000_000_000


def run(coro: Any, timeout: float = 30.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def cli(*args: str | Path, cwd: Path | None = None, timeout: float = 20.0) -> tuple[int, str, str]:
    """``kline-rs ARGS`` in a subprocess: (exit status, stdout, stderr)."""
    cmd = [sys.executable, "-m", "kline_rs.cli", *map(str, args)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    return done.returncode, done.stdout, done.stderr


async def acli(*args: str | Path, timeout: float = 20.0) -> tuple[int, str, str, float]:
    """:func:`cli` from inside a running loop (the fake exchange serves meanwhile); also the
    seconds it took."""
    start = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kline_rs.cli", *map(str, args),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"kline-rs {args[0]} still running after {timeout} s") from None
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode(), time.monotonic() - start


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def at(fx: FakeExchange) -> list[str]:
    return ["--ws-url", fx.ws_url, "--rest-url", fx.rest_url]


# -- 1. unknown symbols ------------------------------------------------------------------------


def test_run_refuses_unknown_symbols_naming_the_nearest() -> None:
    async def scenario() -> None:
        async with FakeExchange(SimulatedMarket(["BTCUSDT", "ETHUSDT"])) as fx:
            code, out, err, _ = await acli(
                "run", "--symbols", "BTCUSTD", *at(fx), "--duration", "5"
            )
            assert code == 2 and out == ""
            assert "BTCUSTD" in err and "did you mean BTCUSDT" in err
            # A typo in one of two is not dropped: nothing is followed at all.
            code, out, err, _ = await acli(
                "run", "--symbols", "btcusdt,ETHUSTD", *at(fx), "--duration", "5"
            )
            assert code == 2 and out == ""
            assert "ETHUSTD (did you mean ETHUSDT?)" in err and "BTCUSDT" not in err
            # A quote asset or pattern that matches nothing listed says so too.
            code, out, err, _ = await acli("run", "--quote", "USTD", *at(fx), "--duration", "5")
            assert code == 2 and "--quote 'USTD' matches no symbol" in err
            code, out, err, _ = await acli("run", "--pattern", "^X.*", *at(fx), "--duration", "5")
            assert code == 2 and "--pattern '^X.*' matches no symbol" in err
            assert fx.stats.connections_opened == 0

    run(scenario())


# -- 2. --db ------------------------------------------------------------------------------------


def test_db_with_an_unknown_scheme_or_a_missing_directory_fails_at_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with FakeExchange(SimulatedMarket(["BTCUSDT"])) as fx:
            args = ["run", "--symbols", "BTCUSDT", *at(fx), "--duration", "5", "--db"]
            code, _, err, took = await acli(*args, "mysql://user:secret@db.example/klines")
            assert code == 2 and took < 4
            assert "unknown database URL scheme 'mysql'" in err and "secret" not in err
            code, _, err, took = await acli(*args, tmp_path / "missing" / "k.sqlite")
            assert code == 2 and took < 4
            assert "missing does not exist" in err and "read-only" not in err
            assert fx.stats.connections_opened == 0
        # The library refuses them too, before anything is opened.
        for db in ("mysql://h/x", str(tmp_path / "missing" / "k.sqlite")):
            pipeline = LivePipeline(PipelineConfig(db=db), lambda k: None)
            with pytest.raises(DbTargetError):
                await pipeline.run(5)

    run(scenario())
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_waiting_for_an_unreachable_postgres_is_bounded() -> None:
    pytest.importorskip("psycopg", reason="psycopg is not installed")

    async def scenario() -> None:
        async with FakeExchange(SimulatedMarket(["BTCUSDT"])) as fx:
            url = f"postgresql://kline@127.0.0.1:{closed_port()}/klines"
            base = ["run", "--symbols", "BTCUSDT", *at(fx), "--db", url]
            code, _, err, took = await acli(*base, "--store-wait", "1")
            assert code == 1 and took < 6
            assert "store unavailable at start, gave up after 1.0 s" in err
            # --duration bounds the wait as well (the default wait is a minute).
            code, _, err, took = await acli(*base, "--duration", "1")
            assert code == 1 and took < 6
            assert "gave up after" in err
            assert fx.stats.connections_opened == 0

    run(scenario())


# -- 3. a dying background task, --duration in every state -----------------------------------


def frozen_market() -> SimulatedMarket:
    """BTCUSDT traded from 5 minutes ago until 100 s ago, then time stands still."""
    now = int(time.time() * 1000)
    market = SimulatedMarket(["BTCUSDT"], seed=3, start_ms=now - 300_000, speed=0)
    market.advance(now - 100_000)
    return market


def huge_trades(market: SimulatedMarket, symbol: str) -> None:
    """Two trades whose kline volume is PEPE-sized (past 2**63 at 1e-8)."""
    tape = market.tapes[symbol]
    a = tape.a[-1] + 1 if len(tape) else 1
    f = tape.l[-1] + 1 if len(tape) else 1
    t = market.now_ms
    for i in range(2):
        tape.append(a + i, 100_000_000, HUGE_QTY, f + i, f + i, t, False)


def bad_history(symbol: str) -> Faults:
    """REST klines of ``symbol`` carry a volume that is not a decimal: its history fails."""
    return Faults(bad_klines=frozenset({symbol}))


def test_a_dying_background_task_stops_run_with_one_line() -> None:
    async def scenario() -> None:
        market = frozen_market()
        async with FakeExchange(market, faults=bad_history("BTCUSDT")) as fx:
            code, _, err, took = await acli(
                "run", "--symbols", "BTCUSDT", *at(fx), "--history", "klines",
                "--lookback", "3m", "--duration", "8",
            )  # fmt: skip
            assert code == 1 and took < 6, err
            errors = [line for line in err.splitlines() if line.startswith("kline-rs: error:")]
            assert len(errors) == 1 and "kline-rs history BTCUSDT failed" in errors[0]
            assert 'field 5: malformed number "1e9"' in errors[0]
            assert "Traceback" not in err and "never retrieved" not in err

    run(scenario())


def test_a_symbol_listed_later_whose_history_fails_stops_the_pipeline() -> None:
    async def scenario() -> None:
        market = frozen_market()
        async with FakeExchange(market, faults=bad_history("PEPEUSDT")) as fx:
            config = PipelineConfig(
                selection=Selection(quote="USDT"), ws_url=fx.ws_url, rest_url=fx.rest_url,
                lookback_ms=5 * MINUTE, history="klines", exchange_info_every=0.2,
            )  # fmt: skip
            pipeline = LivePipeline(config, lambda k: None)

            async def list_pepe() -> None:
                await pipeline.started()
                market.list_symbol("PEPEUSDT")
                huge_trades(market, "PEPEUSDT")

            lister = asyncio.create_task(list_pepe())
            start = time.monotonic()
            with pytest.raises(BackgroundTaskError, match="history PEPEUSDT failed"):
                await pipeline.run(8)
            assert time.monotonic() - start < 5
            await lister

    run(scenario())


def test_duration_ends_the_run_while_exchange_info_does_not_answer() -> None:
    port = closed_port()
    start = time.monotonic()
    code, _, err = cli(
        "run", "--symbols", "BTCUSDT", "--rest-url", f"http://127.0.0.1:{port}",
        "--ws-url", f"ws://127.0.0.1:{port}", "--duration", "1",
    )  # fmt: skip
    assert time.monotonic() - start < 4
    assert code == 1 and "duration ended before exchangeInfo answered" in err


# -- 4. --ws-url ----------------------------------------------------------------------------------


def test_a_ws_url_ending_in_stream_is_accepted() -> None:
    async def scenario() -> None:
        async with FakeExchange(SimulatedMarket(["BTCUSDT"], trades_per_second=40.0)) as fx:
            code, out, err, _ = await acli(
                "run", "--symbols", "BTCUSDT", "--intervals", "1s", "--ws-url",
                f"{fx.ws_url}/stream/", "--rest-url", fx.rest_url, "--duration", "3",
            )  # fmt: skip
            assert code == 0, err
            assert '"symbol":"BTCUSDT","interval":"1s"' in out
            assert "404" not in err

    run(scenario())


def test_refused_handshakes_end_the_feed_after_a_bound() -> None:
    async def scenario() -> None:
        async with FakeExchange(SimulatedMarket(["BTCUSDT"])) as fx:
            config = PipelineConfig(
                selection=Selection(symbols=frozenset({"BTCUSDT"})), ws_url=f"{fx.ws_url}/nope",
                rest_url=fx.rest_url, ws_backoff=(0.01, 0.02),
            )  # fmt: skip
            start = time.monotonic()
            with pytest.raises(FeedError, match=r"failed handshakes in a row.*HTTP 404"):
                await LivePipeline(config, lambda k: None).run(20)
            assert time.monotonic() - start < 5
        with pytest.raises(FeedError, match="expected ws://"):
            BinanceFeed(None, ws_url="http://127.0.0.1:1")  # type: ignore[arg-type]

    run(scenario())


# -- 5. --tz and export formats -------------------------------------------------------------------


def trade_rows() -> list[tuple[int, int, int, int]]:
    """(id, price, qty, time) over two days and a quiet stretch; one huge quantity."""
    rows = []
    for i in range(1, 61):
        t = T0 + i * 45_000 + (0 if i <= 30 else 20 * MINUTE) + (0 if i <= 50 else DAY)
        qty = HUGE_QTY if i == 40 else 1_000 * i
        rows.append((i, 7_000_00000000 + 137 * i * (-1) ** i, qty, t))
    return rows


def dump(tmp_path: Path) -> Path:
    path = tmp_path / "dumps" / "BTCUSDT-aggTrades-2020-01-01.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(
            f"{a},{kline_rs.format_fixed8(p)},{kline_rs.format_fixed8(q)},{a},{a},{t},"
            f"{a % 3 == 0},True\n"
            for a, p, q, t in trade_rows()
        )
    )
    return path


@pytest.mark.parametrize(
    ("tz", "day_start"),
    [(["--tz", "-05:00"], 5 * HOUR), (["--tz=-05:00"], 5 * HOUR), (["--tz", "8"], 16 * HOUR),
     (["--tz", "+05:45"], 18 * HOUR + 15 * MINUTE), (["--tz", "-1:00"], HOUR)],
)  # fmt: skip
def test_tz_takes_binances_forms(tz: list[str], day_start: int, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, _, err = cli("replay", dump(tmp_path), "--intervals", "1d", "--out", out, *tz)
    assert code == 0, err
    opens = [int(line.split(",")[0]) for line in (out / "BTCUSDT-1d.csv").read_text().split()]
    assert len(opens) >= 2 and {t % DAY for t in opens} == {day_start}


@pytest.mark.parametrize("tz", ["Z", "UTC", "+15:00", "-13:00", "8:60", "+0800", "x"])
def test_tz_refuses_anything_else_as_a_time_zone(tz: str, tmp_path: Path) -> None:
    code, _, err = cli("replay", dump(tmp_path), "--out", tmp_path / "out", f"--tz={tz}")
    said = err.strip().splitlines()[-1]
    assert code == 2
    assert "is not a time-zone offset" in said and "interval" not in said.lower()
    assert not (tmp_path / "out").exists()


def store(path: Path, intervals: list[str]) -> Path:
    """The trades of :func:`trade_rows` through the engine into an SQLite store."""
    clock = kline_rs.ManualClock(T0)
    with Engine(intervals, partitions=1, clock=clock) as engine:
        engine.add_symbol("BTCUSDT")
        for a, p, q, t in trade_rows():  # on the engine's clock, as live
            clock.set(t)
            a1, p1, q1, t1 = (np.array([v], dtype=np.int64) for v in (a, p, q, t))
            engine.push_trades(
                "BTCUSDT",
                kline_rs.trades(
                    agg_id=a1,
                    price=p1,
                    qty=q1,
                    first_id=a1,
                    last_id=a1,
                    time=t1,
                    buyer_is_maker=np.array([a % 3 == 0]),
                ),
            )
        clock.set(trade_rows()[-1][3] + DAY)
        engine.sync()
        parts = []
        while len(batch := engine.poll_records().klines):
            parts.append(batch)
        records = np.concatenate(parts)

    async def write() -> None:
        sink = open_sink(str(path))
        await sink.open()
        await sink.write(records, None)
        await sink.close()

    run(write())
    return path


def test_export_chooses_the_format_by_extension(tmp_path: Path) -> None:
    src = dump(tmp_path)
    kline_rs.replay([src], tmp_path / "replayed", ["1m"], progress=False)
    want = (tmp_path / "replayed" / "BTCUSDT-1m.csv").read_text()
    first, last = int(want.split(",", 1)[0]), int(want.splitlines()[-1].split(",", 1)[0])
    db = store(tmp_path / "k.sqlite", ["1m", "5m"])
    span = ["--symbols", "btcusdt", "--intervals", "1m", "--start", first, "--end", last + 1]
    code, _, err = cli("export", db, tmp_path / "k.csv", *map(str, span))
    assert code == 0, err
    # Byte for byte what replay writes from the same trades: Binance's kline CSV.
    assert (tmp_path / "k.csv").read_text() == want
    assert len(want.splitlines()) > 60  # quiet minutes expanded; the huge quote cut as Binance
    code, _, err = cli("export", db, tmp_path / "k.txt")
    assert code == 2 and "unknown extension '.txt'" in err
    code, _, err = cli("export", db, tmp_path / "all.csv")
    assert code == 2 and "one symbol and interval" in err
    assert not (tmp_path / "k.txt").exists() and not (tmp_path / "all.csv").exists()
    pytest.importorskip("pyarrow", reason="pyarrow is not installed")
    code, _, err = cli("export", db, tmp_path / "k.parquet")
    assert code == 0, err
    assert (tmp_path / "k.parquet").read_bytes()[:4] == b"PAR1"


# -- 6. show never creates files ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["x#y.sqlite", "a?b.sqlite", "p%41.sqlite"])
def test_show_opens_names_with_uri_characters_and_creates_nothing(
    name: str, tmp_path: Path
) -> None:
    store(tmp_path / name, ["1m"])
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = cli("show", name, "BTCUSDT", "1m", "--last", "2", cwd=tmp_path)
    assert code == 0, err
    assert out.startswith("# BTCUSDT 1m: ") and out.count("\n") == 3
    # SQLite's own -wal/-shm beside the database at most; never a file named after a prefix.
    after = sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(("-wal", "-shm")))
    assert after == before
    code, _, err = cli("show", "missing#x.sqlite", "BTCUSDT", "1m", cwd=tmp_path)
    assert code == 1 and "no such database" in err
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(("-wal", "-shm"))) == (
        before
    )


# -- 7. SUBSCRIBE messages ------------------------------------------------------------------------


def test_subscriptions_are_json_and_refuse_names_that_are_not_symbols() -> None:
    async def scenario() -> None:
        async with FakeExchange(SimulatedMarket(["BTCUSDT", "ETHUSDT"])) as fx:
            with Engine(["1m"], partitions=1) as engine:
                feed = BinanceFeed(engine, ws_url=fx.ws_url)
                await feed.set_symbols(["ethusdt"])
                while not fx.connections or not fx.connections[0].streams:
                    await asyncio.sleep(0.01)
                for bad in ['ETHUSDT","btcusdt@aggTrade', "ETH USDT", "", "A" * 33]:
                    with pytest.raises(SymbolNameError):
                        await feed.set_symbols([bad])
                await asyncio.sleep(0.2)  # what a message would have done by now
                assert list(fx.connections[0].streams) == ["ethusdt@aggTrade"]
                assert feed.streams == {"ethusdt@aggTrade"}
                await feed.stop()

    run(scenario())
    code, _, err = cli("run", "--symbols", 'BTCUSDT","x', "--duration", "5")
    assert code == 2 and "has a character other than A-Z, 0-9 and _" in err
