"""SqliteSink on a real file: engine records read back exact, one transaction per write, idempotent.

Placement rules are covered against PostgreSQL in test_postgres.py; here only a stale-revision
smoke test.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import kline_rs
import numpy as np
import numpy.typing as npt
import pytest
from kline_rs.engine import SNAPSHOT_DTYPE, Engine, Snapshot
from kline_rs.storage import SqliteSink, StoreUnavailableError, read_klines
from test_live import FIELDS

T = TypeVar("T")
T0 = 1_577_836_800_000  # 2020-01-01 00:00 UTC
HOUR = 3_600_000
DAY = 86_400_000

Trades = tuple[list[str], list[int], int]
#: 1m/5m: 30 trades, a quiet hour, 20 trades, then three quiet hours (flat runs).
QUIET_HOUR: Trades = (
    ["1m", "5m"],
    [T0 + k * 7000 for k in range(30)] + [T0 + HOUR + k * 7000 for k in range(20)],
    T0 + 4 * HOUR,
)
#: 1d/1M: trades on 1 January and 10 April, February and March quiet (one flat 1M run).
QUIET_MONTHS: Trades = (
    ["1d", "1M"],
    [T0 + 5 * HOUR + k * 1000 for k in range(10)] + [T0 + 100 * DAY + k * 1000 for k in range(10)],
    T0 + 105 * DAY,
)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 30))


@contextlib.contextmanager
def fed(trades: Trades) -> Iterator[Engine]:
    """An engine of one symbol AAA after ``trades``, its clock past the last close."""
    intervals, times, end = trades
    clock = kline_rs.ManualClock(0)
    with Engine(intervals, partitions=1, clock=clock, max_ahead_ms=None) as engine:
        engine.add_symbol("AAA")
        ids = np.arange(1, len(times) + 1)
        t = np.array(times, dtype=np.int64)
        engine.push_trades(
            "AAA",
            kline_rs.trades(
                agg_id=ids,
                price=100_00000000 + ids * 1000,
                qty=ids * 1000,
                first_id=ids,
                last_id=ids,
                time=t,
                buyer_is_maker=ids % 2 == 0,
            ),
        )
        clock.set(end)
        engine.sync()
        yield engine


def closed(trades: Trades) -> tuple[npt.NDArray[np.void], Snapshot, npt.NDArray[np.void]]:
    """What the persister writes (snapshot, then records) and the same klines expanded."""
    with fed(trades) as engine:
        snapshot = engine.snapshot()
        records = engine.poll_records().klines
    with fed(trades) as twin:
        klines = twin.poll_klines().klines
    return records, snapshot, klines


async def write(path: Path, *batches: tuple[npt.NDArray[np.void], Snapshot | None]) -> list[Any]:
    sink = SqliteSink(path)
    await sink.open()
    try:
        return [await sink.write(records, snapshot) for records, snapshot in batches]
    finally:
        await sink.close()


def stored(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the three tables, in key order."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        return {
            table: db.execute(f"SELECT * FROM {table} ORDER BY {key}").fetchall()
            for table, key in [
                ("klines", "venue, symbol, interval, open_time"),
                ("open_klines", "venue, symbol, interval"),
                ("checkpoints", "venue, symbol"),
            ]
        }


def sorted_slots(slots: npt.NDArray[np.void]) -> dict[str, list[Any]]:
    slots = slots[np.argsort(slots["interval"])]
    return {name: slots[name].tolist() for name in SNAPSHOT_DTYPE.names or ()}


@pytest.mark.parametrize("trades", [QUIET_HOUR, QUIET_MONTHS], ids=["quiet hour", "quiet months"])
def test_stored_records_read_back_as_the_engine_klines(tmp_path: Path, trades: Trades) -> None:
    records, snapshot, klines = closed(trades)
    assert records["flat"].any()
    if trades is QUIET_MONTHS:  # a 1M run over February and March, expanded at month starts
        monthly = records[records["flat"] & (records["interval"] == "1M")]
        assert monthly["open_time"].tolist() == [1_580_515_200_000]
        assert monthly["close_time"].tolist() == [1_585_699_200_000 - 1]
    path = tmp_path / "k.sqlite"
    run(write(path, (records, snapshot)))
    for interval in trades[0]:
        want = klines[klines["interval"] == interval]
        want = want[np.argsort(want["open_time"])]
        got = read_klines(path, "AAA", interval)
        assert len(got) == len(want) > int((records["interval"] == interval).sum())
        for name in [*FIELDS, "revision", "gap"]:
            assert got[name].tolist() == want[name].tolist(), (interval, name)
    assert len(stored(path)["klines"]) == len(records)  # flat runs stay one row


@contextlib.contextmanager
def locked(path: Path) -> Iterator[str]:
    """Another connection holds the write lock."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as other:
        other.execute("BEGIN EXCLUSIVE")
        try:
            yield "database is locked by another connection"
        finally:
            other.execute("ROLLBACK")


@contextlib.contextmanager
def refusing_checkpoints(path: Path) -> Iterator[str]:
    """The write fails after its klines went in (before its checkpoints)."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as other:
        other.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON checkpoints "
            "BEGIN SELECT RAISE(ABORT, 'checkpoint refused'); END"
        )
        try:
            yield "checkpoint refused"
        finally:
            other.execute("DROP TRIGGER refuse")


@pytest.mark.parametrize("fault", [locked, refusing_checkpoints], ids=["locked", "mid-write"])
def test_a_failed_write_leaves_nothing_and_the_retry_stores_all(tmp_path: Path, fault: Any) -> None:
    records, snapshot, _ = closed(QUIET_HOUR)
    first, rest = records[:10], records[10:]
    path = tmp_path / "k.sqlite"

    async def main() -> None:
        sink = SqliteSink(path, busy_timeout=0.1)
        assert len((await sink.open()).slots) == 0
        await sink.write(first, None)
        before = stored(path)
        with fault(path) as message:
            with pytest.raises(StoreUnavailableError, match=message) as failed:
                await sink.write(rest, snapshot)
            assert str(path) in str(failed.value)
        assert stored(path) == before  # neither klines nor slots nor checkpoints
        await sink.write(rest, snapshot)
        await sink.close()

    run(main())
    state = run(SqliteSink(path).open())
    assert state.checkpoints == snapshot.checkpoints == {"AAA": 50}
    assert sorted_slots(state.slots) == sorted_slots(snapshot.slots)
    whole = tmp_path / "whole.sqlite"
    run(write(whole, (records, snapshot)))
    assert stored(path) == stored(whole)


def test_writing_the_same_records_again_stores_nothing_twice(tmp_path: Path) -> None:
    records, snapshot, _ = closed(QUIET_HOUR)
    path = tmp_path / "k.sqlite"
    run(write(path, (records, snapshot)))
    once = stored(path)
    done = run(write(path, (records, snapshot), (records[::2], None), (records[5:], snapshot)))
    assert stored(path) == once
    assert len(once["klines"]) == len(records) and all(d.stale == 0 for d in done)


def test_an_older_revision_does_not_replace_a_newer_one(tmp_path: Path) -> None:
    records, _, _ = closed(QUIET_HOUR)
    kline = records[~records["flat"]][:1]
    newer = kline.copy()
    newer["revision"], newer["close"] = 1, kline["close"] + 7
    path = tmp_path / "k.sqlite"
    done = run(write(path, (newer, None), (kline, None)))
    assert [(d.stored, d.stale) for d in done] == [(1, 0), (0, 1)]
    got = read_klines(path, "AAA", str(kline["interval"][0]))
    assert got["revision"].tolist() == [1] and got["close"].tolist() == newer["close"].tolist()


def test_inexact_counts_survive_the_store_and_an_older_database_gains_the_column(
    tmp_path: Path,
) -> None:
    """A kline whose quote volume may differ from Binance's (an aggTrade of three raw trades,
    p·q past 8 decimals) says so in the store, closed and open (restored from its slot); a
    database written before the column existed is brought up to date, its rows read as 0."""
    from kline_rs.storage.sqlite import SCHEMA

    path = tmp_path / "k.sqlite"
    old_schema = "\n".join(x for x in SCHEMA.splitlines() if "inexact_trades" not in x)
    assert old_schema != SCHEMA
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.executescript(old_schema)
        db.execute(
            "INSERT INTO klines VALUES ('spot', 'OLD', '1m', 0, 59999, '1.00000000', "
            "'1.00000000', '1.00000000', '1.00000000', '1.00000000', "
            "'1.0000000000000000', 1, '0.00000000', '0.0000000000000000', 1, 1, 0, 0, 0)"
        )
        db.commit()
    p, q = kline_rs.parse_fixed8("0.00577300"), kline_rs.parse_fixed8("0.04200000")
    ids = np.array([1, 2, 3], dtype=np.int64)
    clock = kline_rs.ManualClock(T0)
    with Engine(["1m"], partitions=1, clock=clock, max_ahead_ms=None) as engine:
        engine.add_symbol("AAA")
        # 1: one raw trade; 2: raw 2..4 (inexact); 3: raw 5..7, next minute, stays open.
        first, last = np.array([1, 2, 5]), np.array([1, 4, 7])
        times = np.array([T0 + 1, T0 + 2, T0 + 60_001])
        engine.push_trades(
            "AAA",
            kline_rs.trades(
                agg_id=ids,
                price=ids * 0 + p,
                qty=ids * 0 + q,
                first_id=first,
                last_id=last,
                time=times,
                buyer_is_maker=ids > 0,
            ),
        )
        clock.set(T0 + 61_000)
        engine.sync()
        snapshot = engine.snapshot()
        records = engine.poll_records().klines
    assert records["inexact_trades"].tolist() == [1]
    run(write(path, (records, snapshot)))
    (aaa,) = read_klines(path, "AAA", "1m")
    assert aaa["inexact_trades"] == 1
    # Binance's figure (each trade cut to 8 decimals) and the exact sum, side by side.
    assert aaa["quote_volume"] == 2 * (p * q - p * q % 10**8)
    assert aaa["quote_volume_exact"] == 2 * p * q != aaa["quote_volume"]
    (old,) = read_klines(path, "OLD", "1m")
    assert old["inexact_trades"] == 0
    assert old["quote_volume_exact"] == old["quote_volume"] == 10**16
    state = run(SqliteSink(path).open())
    with Engine(["1m"], partitions=1, clock=clock, max_ahead_ms=None) as again:
        again.add_symbol("AAA")
        again.restore(state.slots, state.checkpoints)
        clock.set(T0 + 121_000)
        again.sync()
        got = again.poll_klines().klines
    assert got["open_time"].tolist() == [T0 + 60_000]
    assert got["inexact_trades"].tolist() == [1] and got["trades"].tolist() == [3]


def test_an_older_database_brought_up_to_date_has_the_columns_of_a_new_one(
    tmp_path: Path,
) -> None:
    """The columns added to a database written before them have the type, NOT NULL and
    default a new database declares (types compared as SQL compares them, whatever the case)."""
    from kline_rs.storage.sqlite import SCHEMA

    def columns(path: Path) -> dict[str, list[tuple[Any, ...]]]:
        with contextlib.closing(sqlite3.connect(path)) as db:
            return {
                table: [
                    (name, kind.upper(), notnull, default)
                    for _, name, kind, notnull, default, _ in db.execute(
                        f"PRAGMA table_info({table})"
                    )
                ]
                for table in ("klines", "open_klines")
            }

    async def opened(path: Path) -> None:
        sink = SqliteSink(path)
        await sink.open()
        await sink.close()

    new, old = tmp_path / "new.sqlite", tmp_path / "old.sqlite"
    run(opened(new))
    with contextlib.closing(sqlite3.connect(old)) as db:
        db.executescript("\n".join(x for x in SCHEMA.splitlines() if "inexact_trades" not in x))
    added = [("inexact_trades", "INTEGER", 1, "0"), ("quote_volume_exact", "TEXT", 1, "''")]
    for table, cols in columns(new).items():
        assert cols[-2:] == added, table
        assert columns(old)[table] == cols[:-2], table
    run(opened(old))
    assert columns(old) == columns(new)
