"""PostgresSink on a real throwaway server: the same rows as SQLite, placement rules, restarts."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import kline_rs
import numpy as np
import numpy.typing as npt
import pytest
from kline_rs.engine import SNAPSHOT_DTYPE, Engine, Snapshot
from kline_rs.storage import STORED_DTYPE, SqliteSink, StoreUnavailableError, read_klines
from kline_rs.storage.base import rows_from_records
from test_placement import record, records

if TYPE_CHECKING:
    from postgres_server import PostgresServer

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed")

from kline_rs.storage.postgres import (  # noqa: E402 (needs psycopg)
    COPY_FROM_ROWS,
    SCHEMA,
    PostgresSink,
    _Table,
    copy_text,
)

#: The server fixtures, registered once (a session-wide server shared by all modules).
pytest_plugins = ["postgres_server"]

T = TypeVar("T")
T0 = 1_577_836_800_000
MINUTE = 60_000


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 60))


def engine_output() -> tuple[npt.NDArray[np.void], Snapshot]:
    """Closed records (with flat runs: a quiet hour, then three) and the snapshot after."""
    clock = kline_rs.ManualClock(0)
    with Engine(["1m", "5m"], partitions=1, clock=clock, max_ahead_ms=None) as engine:
        engine.add_symbol("AAA")
        ids = np.arange(1, 51)
        t = T0 + ids * 7000
        t[30:] += 3_600_000
        engine.push_trades(
            "AAA",
            kline_rs.trades(
                agg_id=ids,
                price=100_00000000 + ids,
                qty=ids * 1000,
                first_id=ids,
                last_id=ids,
                time=t,
                buyer_is_maker=ids % 2 == 0,
            ),
        )
        clock.set(int(t[-1]) + 3 * 3_600_000)
        engine.sync()
        snapshot = engine.snapshot()
        records = engine.poll_records().klines
    assert records["flat"].sum() >= 2 and len(snapshot.slots) == 2
    return records, snapshot


def assert_same(got: npt.NDArray[np.void], want: npt.NDArray[np.void]) -> None:
    assert got.dtype == want.dtype == STORED_DTYPE
    assert len(got) == len(want)
    for name in STORED_DTYPE.names or ():
        assert got[name].tolist() == want[name].tolist(), name


def stored_rows(url: str, symbol: str) -> list[tuple[Any, ...]]:
    """The raw rows (flat runs not expanded) of ``symbol``'s 1m series."""
    with psycopg.connect(url) as db:
        got: list[tuple[Any, ...]] = db.execute(
            "SELECT open_time, close_time, close, revision, flat FROM klines "
            "WHERE symbol = %s AND interval = '1m' ORDER BY open_time",
            (symbol,),
        ).fetchall()
    return got


async def write_all(sink: PostgresSink | SqliteSink, batches: list[Any]) -> list[Any]:
    await sink.open()
    try:
        return [await sink.write(r, s) for r, s in batches]
    finally:
        await sink.close()


def test_postgres_stores_what_sqlite_stores(postgres_url: str, tmp_path: Path) -> None:
    got, snapshot = engine_output()
    path = tmp_path / "k.sqlite"
    run(write_all(PostgresSink(postgres_url), [(got, snapshot)]))
    run(write_all(SqliteSink(path), [(got, snapshot)]))
    quiet_start = T0 + 4 * MINUTE  # inside the first flat run of 1m
    for interval in ("1m", "5m"):
        pg = read_klines(postgres_url, "AAA", interval)
        lite = read_klines(path, "AAA", interval)
        assert len(pg) > int((got["interval"] == interval).sum())  # flat runs expanded
        assert_same(pg, lite)
        assert pg["close_time"][-1] == snapshot.slots["open_time"][0] - 1
    # A range starting inside a flat run includes its periods from there, in both stores.
    pg = read_klines(postgres_url, "AAA", "1m", quiet_start + 5 * MINUTE, quiet_start + 9 * MINUTE)
    assert pg["open_time"].tolist() == [quiet_start + k * MINUTE for k in range(5, 9)]
    assert_same(
        pg, read_klines(path, "AAA", "1m", quiet_start + 5 * MINUTE, quiet_start + 9 * MINUTE)
    )
    assert len(stored_rows(postgres_url, "AAA")) == int((got["interval"] == "1m").sum())


def test_a_write_of_many_rows_goes_through_copy_and_stores_what_sqlite_stores(
    postgres_url: str, tmp_path: Path
) -> None:
    # Per symbol: 100 klines, then three flat runs at one price that merge into one row
    # within the same write (its first row put, then put again longer: one row per key must
    # reach the staging table), then a kline; then a second write revising BBB from minute 40.
    rows = []
    for symbol in ("AAA", "BBB"):
        rows += [record(T0 + k * MINUTE, 100 + k, symbol=symbol) for k in range(100)]
        rows += [
            record(T0 + (100 + 3 * k) * MINUTE, 199, periods=3, flat=True, symbol=symbol)
            for k in range(3)
        ]
        rows.append(record(T0 + 109 * MINUTE, 300, symbol=symbol))
    first = records(*rows)
    second = records(*[record(T0 + k * MINUTE, 500 + k, revision=1) for k in range(40, 110)])
    assert len(first) >= COPY_FROM_ROWS and len(second) >= COPY_FROM_ROWS
    batches = [(first, None), (second, None)]
    done = run(write_all(PostgresSink(postgres_url), batches))
    assert [(d.stored, d.merged) for d in done[:1]] == [(len(first), 4)]
    path = tmp_path / "k.sqlite"
    run(write_all(SqliteSink(path), batches))
    aaa = stored_rows(postgres_url, "AAA")
    assert len(aaa) == 102  # 100 klines, one merged flat run, one kline
    assert aaa[100] == (T0 + 100 * MINUTE, T0 + 109 * MINUTE - 1, "0.00000199", 0, True)
    assert len(stored_rows(postgres_url, "BBB")) == 110  # the flat run revised into klines
    for symbol in ("AAA", "BBB"):
        assert_same(read_klines(postgres_url, symbol, "1m"), read_klines(path, symbol, "1m"))
    bbb = read_klines(postgres_url, "BBB", "1m")
    assert bbb["close"].tolist()[38:42] == [138, 139, 540, 541]
    assert bbb["revision"].tolist()[38:42] == [0, 0, 1, 1]


def test_copy_text_is_tab_separated_lines_and_refuses_what_the_format_escapes() -> None:
    rows = [("spot", "AAA", 1, True, "0.10000000"), ("spot", "BBB", -2, False, "3.00000000")]
    assert copy_text(rows) == b"spot\tAAA\t1\tt\t0.10000000\nspot\tBBB\t-2\tf\t3.00000000\n"
    for odd in ("A\tB", "A\nB", "A\\B", "A\rB"):
        assert copy_text([*rows, ("spot", odd, 1, True, "1")]) is None, odd


def test_a_copy_of_rows_the_text_format_would_escape_stores_them_as_given(
    postgres_url: str,
) -> None:
    # A venue with a backslash and a tab: COPY goes row by row (psycopg escapes), same rows.
    venue = "odd\\venue\t1"
    klines = records(*[record(T0 + k * MINUTE, 100 + k) for k in range(70)])
    rows = [(venue, *r) for r in rows_from_records(klines)]
    with psycopg.connect(postgres_url) as db:
        db.execute(SCHEMA)
        with db.transaction():
            _Table(db, venue).upsert(rows)
        got = db.execute(
            "SELECT venue, open_time, close FROM klines WHERE venue = %s ORDER BY open_time",
            (venue,),
        ).fetchall()
    assert got == [(venue, T0 + k * MINUTE, f"0.{100 + k:08d}") for k in range(70)]


def test_open_returns_stored_slots_and_checkpoints(postgres_url: str) -> None:
    got, snapshot = engine_output()

    async def main() -> None:
        sink = PostgresSink(postgres_url, tz_offset="+08:00")
        first = await sink.open()
        assert len(first.slots) == 0 and first.checkpoints == {}
        await sink.write(got, snapshot)
        await sink.close()
        with psycopg.connect(postgres_url) as db:
            tz = db.execute("SELECT value FROM meta WHERE key = 'tz_offset'").fetchone()
        assert tz == ("+08:00",)

        again = PostgresSink(postgres_url)
        state = await again.open()
        assert state.checkpoints == {"AAA": 50}
        assert state.slots.dtype == SNAPSHOT_DTYPE
        want = snapshot.slots[np.argsort(snapshot.slots["interval"])]
        slots = state.slots[np.argsort(state.slots["interval"])]
        for name in SNAPSHOT_DTYPE.names or ():
            assert slots[name].tolist() == want[name].tolist(), name
        # An emptied slot is dropped; a forgotten symbol loses its slots but keeps its checkpoint.
        empty = want[:1].copy()
        empty["state"] = "empty"
        await again.write(records(), Snapshot(0, empty, {"AAA": 60}))
        state = await again.open()
        assert state.slots["interval"].tolist() == ["5m"] and state.checkpoints == {"AAA": 60}
        await again.write(records(), None, forget=["AAA"])
        state = await again.open()
        assert len(state.slots) == 0 and state.checkpoints == {"AAA": 60}
        await again.close()

    run(main())


def test_revisions_and_flat_run_splitting(postgres_url: str, tmp_path: Path) -> None:
    batches = [
        records(record(T0, 100, periods=10, flat=True)),
        records(record(T0 + 3 * MINUTE, 105)),  # a real kline inside the run splits it
        records(record(T0 + 3 * MINUTE, 106, revision=1)),  # revision 1 replaces 0
        records(record(T0 + 3 * MINUTE, 107)),  # revision 0 after 1: stale
    ]
    done = run(write_all(PostgresSink(postgres_url), [(b, None) for b in batches]))
    assert [(d.stored, d.replaced, d.stale) for d in done] == [
        (1, 0, 0),
        (1, 1, 0),
        (1, 1, 0),
        (0, 0, 1),
    ]
    assert stored_rows(postgres_url, "BBB") == [
        (T0, T0 + 3 * MINUTE - 1, "0.00000100", 0, True),
        (T0 + 3 * MINUTE, T0 + 4 * MINUTE - 1, "0.00000106", 1, False),
        (T0 + 4 * MINUTE, T0 + 10 * MINUTE - 1, "0.00000100", 0, True),
    ]
    got = read_klines(postgres_url, "BBB", "1m")
    assert got["open_time"].tolist() == [T0 + k * MINUTE for k in range(10)]
    assert got["close"].tolist() == [100] * 3 + [106] + [100] * 6
    assert got["revision"].tolist() == [0] * 3 + [1] + [0] * 6
    path = tmp_path / "k.sqlite"
    run(write_all(SqliteSink(path), [(b, None) for b in batches]))
    assert_same(got, read_klines(path, "BBB", "1m"))
    # A revised flat run over all three replaces them; the quiet minutes after it, written
    # later in two parts, extend that one row (adjacent flat runs merge).
    later = [
        records(record(T0, 100, periods=10, flat=True, revision=1)),
        records(record(T0 + 10 * MINUTE, 100, periods=2, flat=True, revision=1)),
        records(record(T0 + 12 * MINUTE, 100, periods=3, flat=True, revision=1)),
    ]
    done = run(write_all(PostgresSink(postgres_url), [(b, None) for b in later]))
    assert [(d.replaced, d.merged) for d in done] == [(3, 0), (0, 1), (0, 1)]
    assert stored_rows(postgres_url, "BBB") == [(T0, T0 + 15 * MINUTE - 1, "0.00000100", 1, True)]


def test_server_restart_between_writes(
    postgres_server: PostgresServer, postgres_url: str, tmp_path: Path
) -> None:
    got, snapshot = engine_output()
    parts = np.array_split(got, 3)

    async def main() -> None:
        sink = PostgresSink(postgres_url, connect_timeout=2)
        await sink.open()
        await sink.write(parts[0], None)
        postgres_server.stop()
        try:
            with pytest.raises(StoreUnavailableError, match="unreachable or connection lost"):
                await sink.write(parts[1], None)
            with pytest.raises(StoreUnavailableError, match="unreachable or connection lost"):
                await sink.write(parts[1], None)  # still down: fails again, nothing hangs
        finally:
            postgres_server.start()
        await sink.write(parts[1], None)  # the same sink connects again
        postgres_server.restart()  # kills the sink's connection; no write sees it down
        await sink.write(parts[2], snapshot)
        postgres_server.restart()
        state = await sink.open()
        assert state.checkpoints == {"AAA": 50} and len(state.slots) == 2
        await sink.close()

    run(main())
    assert_same_as_one_sqlite_write(postgres_url, tmp_path, got, snapshot)


def assert_same_as_one_sqlite_write(
    postgres_url: str, tmp_path: Path, got: npt.NDArray[np.void], snapshot: Snapshot
) -> None:
    """What PostgreSQL ended with reads the same as the records written once to SQLite."""
    path = tmp_path / "k.sqlite"
    run(write_all(SqliteSink(path), [(got, snapshot)]))
    for interval in ("1m", "5m"):
        assert_same(read_klines(postgres_url, "AAA", interval), read_klines(path, "AAA", interval))


def test_connection_lost_mid_write(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    got, snapshot = engine_output()
    parts = np.array_split(got, 2)
    flush = _Table.flush
    killed: list[int] = []

    def flush_then_lose(table: _Table) -> None:
        """Kills the sink's backend in the middle of its transaction, before the rows go."""
        if table.puts:
            killed.append(table.db.info.backend_pid)
            with psycopg.connect(postgres_url, autocommit=True) as other:
                other.execute("SELECT pg_terminate_backend(%s)", (killed[-1],))
        flush(table)

    async def main() -> None:
        sink = PostgresSink(postgres_url)
        await sink.open()
        await sink.write(parts[0], None)
        before = stored_rows(postgres_url, "AAA")
        monkeypatch.setattr(_Table, "flush", flush_then_lose)
        with pytest.raises(StoreUnavailableError, match=r"connection (ended by the server|lost)"):
            await sink.write(parts[1], snapshot)
        assert len(killed) == 2  # the old connection, then the one retried on
        assert stored_rows(postgres_url, "AAA") == before  # nothing of the write is kept
        other = PostgresSink(postgres_url)
        assert (await other.open()).checkpoints == {}
        await other.close()
        monkeypatch.setattr(_Table, "flush", flush)
        await sink.write(parts[1], snapshot)
        await sink.close()

    run(main())
    assert_same_as_one_sqlite_write(postgres_url, tmp_path, got, snapshot)


def test_unreachable_server_is_store_unavailable(tmp_path: Path) -> None:
    url = f"postgresql://nobody@/nothing?host={tmp_path}&port=5999"

    async def main() -> None:
        sink = PostgresSink(url, connect_timeout=1)
        with pytest.raises(
            StoreUnavailableError, match=r"'nothing' at .*:5999: server unreachable"
        ):
            await sink.write(records(record(T0, 100)), None)
        await sink.close()

    run(main())
    with pytest.raises(StoreUnavailableError, match="server unreachable"):
        read_klines(url, "BBB", "1m")


def test_the_live_pipeline_rides_out_a_postgresql_restart(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    """The server stopped for 2 s mid-run, then started again: the pipeline keeps ingesting,
    holds the closed klines, reconnects, and the stored series ends contiguous and exact."""
    from kline_rs.fake import SimulatedMarket
    from test_storage_faults import check_store, follow_with_fault

    async def restart(seconds: float) -> None:
        await asyncio.to_thread(postgres_server.stop)
        try:
            await asyncio.sleep(seconds)
        finally:
            await asyncio.to_thread(postgres_server.start)

    market = SimulatedMarket(["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT"], seed=24,
                             speed=60.0, trades_per_second=60.0)  # fmt: skip
    table, pipeline, recovered = follow_with_fault(market, postgres_url, restart, 2.0)  # type: ignore[arg-type]
    stats = pipeline.persister.stats  # type: ignore[union-attr]
    assert stats.failures > 0 and stats.peak_backlog > 0, "the store never failed"
    assert stats.down_since == 0 and stats.backlog == 0, "the store did not come back"
    check_store(market, postgres_url, table, recovered)  # type: ignore[arg-type]
