"""Time the storage layer against the peers users would run instead (issue 6).

Two parts, each against a peer measured in the same run on the same data; prints markdown
tables ready for BENCHMARKS.md.

a. Klines/s committed: the same closed 1m records (from a real Engine, as ``poll_records``
   gives them, plus a snapshot) written through ``SqliteSink.write`` in Persister-sized
   batches, versus a plain ``sqlite3`` ``executemany`` upsert of the same rows (same text,
   one transaction per batch, same PRAGMAs); the same for ``PostgresSink`` versus psycopg
   ``executemany`` on a throwaway server (skipped, saying why, where none can start).
b. Restart to caught up after 1 h down: a LivePipeline with ``db=`` follows a fake exchange
   until every symbol has a stored checkpoint and stops; the market moves 1 h on; a new
   pipeline on the same db is timed until every symbol's stored 1m klines reach the present.
   Peer (the floor): fetching the same aggTrades with ``BinanceRest.agg_trades_from``.

    python benchmarks/bench_storage.py [--quick] [--repeat N] [--part a|b]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import shlex
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kline_rs
import numpy as np
import numpy.typing as npt
from benchinfo import machine as machine_info
from kline_rs.engine import Engine, Snapshot
from kline_rs.fake import FakeExchange, SimulatedMarket
from kline_rs.live.pipeline import LivePipeline, PipelineConfig
from kline_rs.live.symbols import Selection
from kline_rs.rest import BinanceRest
from kline_rs.storage import SqliteSink
from kline_rs.storage import sqlite as lite
from kline_rs.storage.base import (
    ROW_COLUMNS,
    SLOT_COLUMNS,
    TEXT_DIGITS,
    Placer,
    Row,
    fixed_text,
    rows_from_records,
)

MINUTE, HOUR = 60_000, 3_600_000
#: 2024-01-01 00:00 UTC.
T0 = 1_704_067_200_000
VENUE = "spot"
Records = npt.NDArray[np.void]

#: How each RECORD_DTYPE field becomes a stored value (decimals as exact text).
#: The store's own text columns and their decimals (what the peer writes as text too).
DIGITS = TEXT_DIGITS


# ---------------------------------------------------------------- timing


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@dataclass
class Split:
    """Seconds of a run of writes, by step (summed over batches)."""

    convert: float = 0.0  # records -> rows of exact text
    place: float = 0.0  # placement logic in Python (tails, merges), SQL time excluded
    sql: float = 0.0  # kline statements (upserts, and placement's reads)
    snapshot: float = 0.0  # open slots + checkpoints: text conversion and upserts
    commit: float = 0.0

    @property
    def total(self) -> float:
        return self.convert + self.place + self.sql + self.snapshot + self.commit


class Stopwatch:
    """Accumulates seconds into a Split field: ``with sw("sql"): ...``."""

    def __init__(self, split: Split) -> None:
        self.split = split

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            setattr(self.split, name, getattr(self.split, name) + time.perf_counter() - t)


class TimedTable:
    """A RowTable that times its SQL (reads and flushes) into ``sql``; the rest of
    ``Placer.place`` is placement logic."""

    def __init__(self, table: Any, sw: Stopwatch) -> None:
        self.table = table
        self.sw = sw

    def last(self, key: tuple[str, str]) -> Row | None:
        with self.sw("sql"):
            got: Row | None = self.table.last(key)
            return got

    def before(self, key: tuple[str, str], t: int) -> Row | None:
        with self.sw("sql"):
            got: Row | None = self.table.before(key, t)
            return got

    def between(self, key: tuple[str, str], start: int, end: int) -> list[Row]:
        with self.sw("sql"):
            got: list[Row] = self.table.between(key, start, end)
            return got

    def delete(self, row: Row) -> None:
        with self.sw("sql"):
            self.table.delete(row)

    def put(self, row: Row) -> None:
        self.table.put(row)  # buffered: the SQL runs in flush

    def flush(self) -> None:
        with self.sw("sql"):
            self.table.flush()


# ---------------------------------------------------------------- a. data


def engine_records(n_symbols: int, minutes: int, seed: int) -> tuple[Records, Snapshot]:
    """Closed 1m records of ``n_symbols`` over ``minutes`` (3 trades a minute on average, so
    ~5 % of minutes are quiet: flat runs), as ``Engine.poll_records`` gives them, and the
    snapshot after (one open kline and one checkpoint per symbol)."""
    clock = kline_rs.ManualClock(0)
    rng = np.random.default_rng(seed)
    names = [f"S{i:03d}USDT" for i in range(n_symbols)]
    with Engine(["1m"], partitions=1, clock=clock, max_ahead_ms=None) as engine:
        engine.add_symbols(names)
        for symbol in names:
            n = (minutes + 1) * 3
            ids = np.arange(1, n + 1, dtype=np.int64)
            t = T0 + np.sort(rng.integers(0, (minutes + 1) * MINUTE, n))
            price = 100 * 10**8 + np.cumsum(rng.integers(-3, 4, n)) * 10**6
            qty = rng.integers(1, 2_000_000, n) * 100
            engine.push_trades(
                symbol,
                kline_rs.trades(
                    agg_id=ids,
                    price=price,
                    qty=qty,
                    first_id=ids,
                    last_id=ids,
                    time=t,
                    buyer_is_maker=rng.random(n) < 0.5,
                ),
            )
        clock.set(T0 + minutes * MINUTE + 1_000)  # inside the last minute: it stays open
        engine.sync()
        snapshot = engine.snapshot()
        parts = []
        while True:
            batch = engine.poll_records()
            if len(batch.klines) == 0:
                break
            parts.append(batch.klines)
            engine.ack(batch.token)
        engine.ack_snapshot(snapshot.token)
    return np.concatenate(parts), snapshot


def batches_of(records: Records, size: int) -> list[Records]:
    return [records[i : i + size] for i in range(0, len(records), size)]


# ---------------------------------------------------------------- a. the peer's conversion


def peer_rows(records: Records) -> list[tuple[Any, ...]]:
    """Records -> (venue, *ROW_COLUMNS) tuples, column by column: each column becomes Python
    values once (``tolist``), decimals through the same ``fixed_text``."""
    columns: list[list[Any]] = [[VENUE] * len(records)]
    for name in ROW_COLUMNS:
        values = records[name].tolist()
        if name in DIGITS:
            digits = DIGITS[name]
            values = [fixed_text(v, digits) for v in values]
        columns.append(values)
    return list(zip(*columns, strict=True))


def peer_slots(snapshot: Snapshot) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The snapshot's open slots as (venue, *SLOT_COLUMNS) and its checkpoints as rows."""
    slots = snapshot.slots
    columns: list[list[Any]] = [[VENUE] * len(slots)]
    for name in SLOT_COLUMNS:
        values = slots[name].tolist()
        if name in DIGITS:
            digits = DIGITS[name]
            values = [fixed_text(v, digits) for v in values]
        columns.append(values)
    checkpoints = [(VENUE, s, i) for s, i in snapshot.checkpoints.items()]
    return list(zip(*columns, strict=True)), checkpoints


# ---------------------------------------------------------------- a. SQLite

_MARKS = ", ".join("?" * (len(ROW_COLUMNS) + 1))
SQLITE_UPSERT = f"INSERT OR REPLACE INTO klines (venue, {', '.join(ROW_COLUMNS)}) VALUES ({_MARKS})"
SQLITE_SLOT = (
    f"INSERT OR REPLACE INTO open_klines (venue, {', '.join(SLOT_COLUMNS)}) "
    f"VALUES ({', '.join('?' * (len(SLOT_COLUMNS) + 1))})"
)
SQLITE_CHECKPOINT = "INSERT OR REPLACE INTO checkpoints (venue, symbol, last_id) VALUES (?, ?, ?)"


def sqlite_sink(path: Path, batches: list[Records], snapshot: Snapshot) -> float:
    """Seconds of ``SqliteSink.write`` for every batch (each with the snapshot, as the
    Persister writes), schema created before."""

    async def main() -> float:
        sink = SqliteSink(path)
        await sink.open()
        try:
            with no_gc():
                t = time.perf_counter()
                for batch in batches:
                    await sink.write(batch, snapshot)
                return time.perf_counter() - t
        finally:
            await sink.close()

    return asyncio.run(main())


def sqlite_connect(path: Path) -> sqlite3.Connection:
    """The sink's connection settings: autocommit mode, WAL, synchronous=NORMAL, its schema."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(lite.SCHEMA)
    return db


def sqlite_peer(path: Path, batches: list[Records], snapshot: Snapshot) -> Split:
    """The peer: per batch, rows converted column by column, then BEGIN IMMEDIATE, one
    ``executemany`` upsert of the klines, the snapshot's slots and checkpoints, COMMIT."""
    db = sqlite_connect(path)
    split = Split()
    sw = Stopwatch(split)
    try:
        with no_gc():
            for batch in batches:
                with sw("convert"):
                    rows = peer_rows(batch)
                with sw("sql"):
                    db.execute("BEGIN IMMEDIATE")
                    db.executemany(SQLITE_UPSERT, rows)
                with sw("snapshot"):
                    slots, checkpoints = peer_slots(snapshot)
                    db.executemany(SQLITE_SLOT, slots)
                    db.executemany(SQLITE_CHECKPOINT, checkpoints)
                with sw("commit"):
                    db.execute("COMMIT")
    finally:
        db.close()
    return split


def sink_split(
    sink: Any, table: Any, begin: str, batches: list[Records], snapshot: Snapshot
) -> Split:
    """Diagnostic: a sink's ``_write`` steps one by one, each timed (the same calls; the
    transaction opened and committed by hand to time the commit alone)."""
    db = sink._connect()
    placer = Placer()
    split = Split()
    sw = Stopwatch(split)
    try:
        with no_gc():
            for batch in batches:
                with sw("convert"):
                    rows = rows_from_records(batch)
                db.execute(begin)
                with sw("place"):
                    placer.place(TimedTable(table(db, VENUE), sw), rows)
                with sw("snapshot"):
                    sink._put_snapshot(db, snapshot)
                with sw("commit"):
                    db.execute("COMMIT")
    finally:
        db.close()
    split.place -= split.sql  # the SQL ran inside place()
    return split


def sqlite_sink_split(path: Path, batches: list[Records], snapshot: Snapshot) -> Split:
    return sink_split(SqliteSink(path), lite._Table, "BEGIN IMMEDIATE", batches, snapshot)


def sqlite_klines(path: Path) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute("SELECT * FROM klines ORDER BY symbol, interval, open_time").fetchall()


# ---------------------------------------------------------------- a. PostgreSQL


def pg_statements() -> tuple[str, str, str]:
    from kline_rs.storage import postgres

    checkpoint = (
        "INSERT INTO checkpoints (venue, symbol, last_id) VALUES (%s, %s, %s) "
        "ON CONFLICT (venue, symbol) DO UPDATE SET last_id = EXCLUDED.last_id"
    )
    return postgres._UPSERT_KLINE, postgres._UPSERT_SLOT, checkpoint


def pg_sink(url: str, batches: list[Records], snapshot: Snapshot) -> float:
    from kline_rs.storage.postgres import PostgresSink

    async def main() -> float:
        sink = PostgresSink(url)
        await sink.open()
        try:
            with no_gc():
                t = time.perf_counter()
                for batch in batches:
                    await sink.write(batch, snapshot)
                return time.perf_counter() - t
        finally:
            await sink.close()

    return asyncio.run(main())


def pg_peer(url: str, batches: list[Records], snapshot: Snapshot) -> Split:
    """The peer: per batch, rows converted column by column, one transaction: ``executemany``
    of the same upsert statements as the sink (klines, slots, checkpoints), commit."""
    import psycopg
    from kline_rs.storage import postgres

    upsert, slot, checkpoint = pg_statements()
    split = Split()
    sw = Stopwatch(split)
    with psycopg.connect(url) as db:
        db.execute(postgres.SCHEMA)
        db.commit()
        with no_gc():
            for batch in batches:
                with sw("convert"):
                    rows = peer_rows(batch)
                with db.cursor() as cur:
                    with sw("sql"):
                        cur.executemany(upsert, rows)
                    with sw("snapshot"):
                        slots, checkpoints = peer_slots(snapshot)
                        cur.executemany(slot, slots)
                        cur.executemany(checkpoint, checkpoints)
                with sw("commit"):
                    db.commit()
    return split


def pg_sink_split(url: str, batches: list[Records], snapshot: Snapshot) -> Split:
    from kline_rs.storage import postgres

    return sink_split(postgres.PostgresSink(url), postgres._Table, "BEGIN", batches, snapshot)


def pg_klines(url: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url) as db:
        got: list[tuple[Any, ...]] = db.execute(
            "SELECT * FROM klines ORDER BY symbol, interval, open_time"
        ).fetchall()
    return got


# ---------------------------------------------------------------- a. tables

#: (store, writer, records, seconds, sink seconds for the ratio or None)
WriteRow = tuple[str, str, int, float, float | None]


def write_table(rows: list[WriteRow], n_batches: int) -> list[str]:
    out = [
        "| store | writer | records | batches | seconds | records/s | sink speed-up vs this |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for store, writer, n, seconds, sink in rows:
        ratio = "" if sink is None else f"{seconds / sink:.2f}x"
        out.append(
            f"| {store} | {writer} | {n:,} | {n_batches} | {seconds:.3f} | {n / seconds:,.0f} | "
            f"{ratio} |"
        )
    return out


def split_table(rows: list[tuple[str, str, Split]], n: int) -> list[str]:
    out = [
        "| store | writer | convert ms | placement (Python) ms | kline SQL ms | "
        "snapshot ms | commit ms | total ms | µs per record |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for store, writer, s in rows:
        cells = [s.convert, s.place, s.sql, s.snapshot, s.commit, s.total]
        out.append(
            f"| {store} | {writer} | "
            + " | ".join(f"{c * 1e3:,.0f}" for c in cells)
            + f" | {s.total / n * 1e6:.1f} |"
        )
    return out


def bench_writes(n_symbols: int, minutes: int, batch: int, repeat: int, tmp: Path) -> list[str]:
    records, snapshot = engine_records(n_symbols, minutes, seed=1)
    batches = batches_of(records, batch)
    n, flat = len(records), int(records["flat"].sum())
    covered = int(((records["close_time"] + 1 - records["open_time"]) // MINUTE).sum())
    runs = iter(range(10**6))

    def fresh() -> Path:
        return tmp / f"a{next(runs)}.sqlite"

    sink_s = min(sqlite_sink(fresh(), batches, snapshot) for _ in range(repeat))
    peer_splits = [sqlite_peer(fresh(), batches, snapshot) for _ in range(repeat)]
    peer = min(peer_splits, key=lambda s: s.total)
    sink_split = sqlite_sink_split(fresh(), batches, snapshot)
    a, b = fresh(), fresh()
    sqlite_sink(a, batches, snapshot)
    sqlite_peer(b, batches, snapshot)
    same = sqlite_klines(a) == sqlite_klines(b)
    rows: list[WriteRow] = [
        ("SQLite", "SqliteSink.write", n, sink_s, None),
        ("SQLite", "sqlite3 executemany upsert (peer)", n, peer.total, sink_s),
    ]
    splits = [
        ("SQLite", "SqliteSink (its steps timed one by one)", sink_split),
        ("SQLite", "sqlite3 executemany (peer)", peer),
    ]
    notes = [
        f"- Data: {n:,} records from `Engine.poll_records` ({n - flat:,} 1m klines and {flat:,} "
        f"flat runs covering {covered - (n - flat):,} quiet minutes), {n_symbols} symbols x "
        f"{minutes:,} minutes, written in {len(batches)} batches of {batch:,} records, each "
        f"with the snapshot ({len(snapshot.slots)} open slots, {len(snapshot.checkpoints)} "
        "checkpoints) as the Persister does; each run into an empty database; best of "
        f"{repeat}. SQLite {sqlite3.sqlite_version}: WAL, synchronous=NORMAL for both.",
        "- Peer: per batch, the records' columns to Python values once (`tolist`), decimals "
        "through the same `fixed_text`, then BEGIN IMMEDIATE, `executemany` of "
        "`INSERT OR REPLACE` (the sink's statement), the snapshot's slots and checkpoints, "
        f"COMMIT. Same stored rows as the sink's: {'yes' if same else 'NO'}.",
    ]
    pg_rows, pg_splits, pg_notes = bench_pg_writes(batches, snapshot, n, repeat)
    return [
        *write_table(rows + pg_rows, len(batches)),
        "",
        "Where the time goes (one more run of each, steps timed; the sink's steps replayed by "
        "hand from its own functions):",
        "",
        *split_table(splits + pg_splits, n),
        "",
        *notes,
        *pg_notes,
    ]


def bench_pg_writes(
    batches: list[Records], snapshot: Snapshot, n: int, repeat: int
) -> tuple[list[WriteRow], list[tuple[str, str, Split]], list[str]]:
    try:
        import psycopg
        from kline_rs.testing.postgres import PostgresServer, PostgresUnavailable
    except ImportError as e:
        return [], [], [f"- PostgreSQL: skipped ({e})."]
    try:
        # Server defaults (fsync on, synchronous_commit on): a commit is durable.
        server = PostgresServer.throwaway(settings={})
    except PostgresUnavailable as e:
        return [], [], [f"- PostgreSQL: skipped ({e})."]
    with server:
        sink_s = min(pg_sink(server.create_database("bench"), batches, snapshot)
                     for _ in range(repeat))  # fmt: skip
        peer_splits = [pg_peer(server.create_database("bench"), batches, snapshot)
                       for _ in range(repeat)]  # fmt: skip
        peer = min(peer_splits, key=lambda s: s.total)
        sink_split = pg_sink_split(server.create_database("bench"), batches, snapshot)
        a, b = server.create_database("bench"), server.create_database("bench")
        pg_sink(a, batches, snapshot)
        pg_peer(b, batches, snapshot)
        same = pg_klines(a) == pg_klines(b)
        version = server.version()
    rows: list[WriteRow] = [
        ("PostgreSQL", "PostgresSink.write", n, sink_s, None),
        ("PostgreSQL", "psycopg executemany upsert (peer)", n, peer.total, sink_s),
    ]
    splits = [
        ("PostgreSQL", "PostgresSink (its steps timed one by one)", sink_split),
        ("PostgreSQL", "psycopg executemany (peer)", peer),
    ]
    notes = [
        f"- PostgreSQL: {version}, a throwaway cluster (`kline_rs.testing.postgres`) on a Unix "
        f"socket, server defaults (fsync and synchronous_commit on); psycopg {psycopg.__version__} "
        f"({psycopg.pq.__impl__} libpq {psycopg.pq.version()}). Peer: the same conversion, "
        "`executemany` of the sink's own `INSERT … ON CONFLICT DO UPDATE` statements, one "
        f"transaction per batch. Same stored rows as the sink's: {'yes' if same else 'NO'}."
    ]
    return rows, splits, notes


# ---------------------------------------------------------------- b. restart


@dataclass
class Phase:
    """What the first run left: the db, and each symbol's stored checkpoint."""

    db: Path
    checkpoints: dict[str, int]
    resume_ms: int  # market time at the restart
    target: int  # close time every symbol's stored 1m klines must reach


@dataclass
class RestartRun:
    seconds: float
    started: float  # until LivePipeline.started(): store opened, exchangeInfo, restored
    requests: int
    rate_limited: tuple[int, int]
    weight: int
    stored: int  # klines handed to on_stored (flat runs expanded)
    records: int  # records committed
    writes: int


@dataclass
class FetchRun:
    seconds: float
    trades: int
    requests: int
    rate_limited: tuple[int, int]
    waited: float  # seconds the client's limiter slept
    weight: int
    counts: dict[str, int] = field(default_factory=dict)


def pipeline_config(fx: FakeExchange, symbols: Sequence[str], db: Path, lookback: int) -> Any:
    return PipelineConfig(
        selection=Selection(symbols=frozenset(symbols)),
        intervals=["1m"],
        ws_url=fx.ws_url,
        rest_url=fx.rest_url,
        db=str(db),
        lookback_ms=lookback,
    )


def stored_checkpoints(db: Path) -> dict[str, int]:
    if not db.exists():
        return {}
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as c:
        try:
            return dict(c.execute("SELECT symbol, last_id FROM checkpoints").fetchall())
        except sqlite3.Error:
            return {}


async def first_run(
    market: SimulatedMarket, symbols: list[str], db: Path, lookback: int
) -> dict[str, int]:
    """A pipeline (history over ``lookback``) until every symbol has a stored checkpoint."""
    clock = kline_rs.ManualClock(market.clock_ms())
    async with FakeExchange(market) as fx:
        pipeline = LivePipeline(
            pipeline_config(fx, symbols, db, lookback),
            lambda _k: None,
            engine_kwargs={"clock": clock},
            now_ms=market.clock_ms,
        )
        task = asyncio.create_task(pipeline.run())
        deadline = time.monotonic() + 60
        while len(stored_checkpoints(db)) < len(symbols):
            if task.done() or time.monotonic() > deadline:
                task.result()
                raise RuntimeError(f"checkpoints of {len(stored_checkpoints(db))} symbols only")
            await asyncio.sleep(0.1)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return stored_checkpoints(db)


async def restart(
    market: SimulatedMarket, symbols: list[str], phase: Phase, db: Path
) -> RestartRun:
    """A new pipeline on (a copy of) the first run's db, timed until every symbol's stored 1m
    klines reach ``phase.target`` (told by ``on_stored``, called after each commit)."""
    shutil.copy(phase.db, db)
    caught: set[str] = set()
    done = asyncio.Event()
    stored = 0

    def on_stored(k: kline_rs.ClosedKline) -> None:
        nonlocal stored
        stored += 1
        if k.close_time >= phase.target and k.symbol not in caught:
            caught.add(k.symbol)
            if len(caught) == len(symbols):
                done.set()

    clock = kline_rs.ManualClock(market.clock_ms())
    async with FakeExchange(market) as fx:
        pipeline = LivePipeline(
            pipeline_config(fx, symbols, db, 0),
            on_stored,
            engine_kwargs={"clock": clock},
            now_ms=market.clock_ms,
        )
        with no_gc():
            t = time.perf_counter()
            task = asyncio.create_task(pipeline.run())
            await pipeline.started()
            started = time.perf_counter() - t
            waiter = asyncio.create_task(done.wait())
            await asyncio.wait([task, waiter], timeout=150, return_when=asyncio.FIRST_COMPLETED)
            seconds = time.perf_counter() - t
        waiter.cancel()
        if not done.is_set():
            task.cancel()
            raise RuntimeError(f"not caught up: {len(caught)} of {len(symbols)} symbols")
        persisted = pipeline.persister.stats if pipeline.persister else None
        weight = fx.limiter.used()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        s = fx.stats
        return RestartRun(
            seconds, started, s.rest_requests, (s.rest_429, s.rest_418), weight, stored,
            persisted.records if persisted else 0, persisted.writes if persisted else 0,
        )  # fmt: skip


async def fetch(market: SimulatedMarket, checkpoints: dict[str, int], concurrent: bool) -> FetchRun:
    """The floor: every symbol's aggTrades after its checkpoint with ``agg_trades_from``, one
    symbol after another or all at once (as the pipeline's resume does), one client. Its
    weight limit is learnt from exchangeInfo first, untimed, as the pipeline's is (without it
    the client assumes spot's old 1,200 per minute)."""
    waited = 0.0

    async def sleep(seconds: float) -> None:
        nonlocal waited
        waited += seconds
        await asyncio.sleep(seconds)

    async with (
        FakeExchange(market) as fx,
        BinanceRest("spot", base_url=fx.rest_url, sleep=sleep) as rest,
    ):

        async def one(symbol: str) -> int:
            n = 0
            async for page in rest.agg_trades_from(symbol, checkpoints[symbol] + 1):
                n += len(page)
            return n

        await rest.exchange_info()
        with no_gc():
            t = time.perf_counter()
            if concurrent:
                counts = await asyncio.gather(*(one(s) for s in checkpoints))
            else:
                counts = [await one(s) for s in checkpoints]
            seconds = time.perf_counter() - t
        s = fx.stats
        return FetchRun(
            seconds, sum(counts), s.rest_requests, (s.rest_429, s.rest_418), waited,
            fx.limiter.used(), dict(zip(checkpoints, counts, strict=True)),
        )  # fmt: skip


def check_stored(db: Path, symbols: list[str], phase: Phase) -> tuple[int, int]:
    """Every symbol's stored 1m klines are contiguous up to the target, none marked gap;
    returns (klines of the downtime stored, traded ones among them)."""
    from kline_rs.storage import read_klines

    down, traded = 0, 0
    for s in symbols:
        k = read_klines(db, s, "1m")
        opens = k["open_time"]
        assert len(k) and int(k["close_time"][-1]) >= phase.target, f"{s}: not up to the target"
        assert (np.diff(opens) == MINUTE).all(), f"{s}: stored minutes not contiguous"
        assert not k["gap"].any(), f"{s}: a kline marked gap"
        hour = (opens > phase.resume_ms - HOUR - MINUTE) & (k["close_time"] <= phase.target)
        down += int(hour.sum())
        traded += int((k["trades"][hour] > 0).sum())
    return down, traded


def bench_restart(n_symbols: int, tps: float, repeat: int, tmp: Path) -> list[str]:
    lookback = 10 * MINUTE
    start = T0 + 30_000
    # Spare symbols: the ones quiet through the lookback (a quiet hour) have no checkpoint.
    market = SimulatedMarket(n_symbols + 30, seed=5, start_ms=start - lookback, speed=0.0,
                             trades_per_second=tps)  # fmt: skip
    market.advance(start)
    symbols = [s for s in market.symbols() if len(market.history(s)) > 0][:n_symbols]
    assert len(symbols) == n_symbols, "too few symbols traded in the lookback"
    base = tmp / "first.sqlite"
    w = time.perf_counter()
    checkpoints = asyncio.run(first_run(market, symbols, base, lookback))
    first_s = time.perf_counter() - w
    resume = start + HOUR
    w = time.perf_counter()
    market.advance(resume)  # the hour of downtime: its trades are on the exchange now
    gen_s = time.perf_counter() - w
    phase = Phase(base, checkpoints, resume, resume - resume % MINUTE - 1)
    due = {s: len(market.tape(s)) - market.tape(s).index_of_id(checkpoints[s] + 1)
           for s in symbols}  # fmt: skip
    trades = sum(due.values())

    runs = [
        asyncio.run(restart(market, symbols, phase, tmp / f"b{i}.sqlite")) for i in range(repeat)
    ]
    best = min(runs, key=lambda r: r.seconds)
    down, traded = check_stored(tmp / f"b{runs.index(best)}.sqlite", symbols, phase)
    seq = min((asyncio.run(fetch(market, checkpoints, False)) for _ in range(repeat)),
              key=lambda r: r.seconds)  # fmt: skip
    con = min((asyncio.run(fetch(market, checkpoints, True)) for _ in range(repeat)),
              key=lambda r: r.seconds)  # fmt: skip
    assert seq.counts == con.counts == due, "the peer fetched other trades than the tape holds"
    budget = int(6000 * 0.9)
    out = [
        "| run | seconds | aggTrades fetched | REST requests | weight | 429 / 418 | "
        "limiter waited s | pipeline time vs this |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        f"| pipeline restart → every symbol's 1m klines stored up to the present "
        f"| {best.seconds:.2f} | {trades:,} | {best.requests:,} | {best.weight:,} | "
        f"{best.rate_limited[0]} / {best.rate_limited[1]} | - | 1.00x |",
        f"| … of which start-up until `started()` (store opened, exchangeInfo, restore) "
        f"| {best.started:.2f} | | | | | | |",
    ]
    for label, r in (
        (f"peer: `agg_trades_from`, {n_symbols} symbols one after another", seq),
        (f"peer: `agg_trades_from`, {n_symbols} symbols at once (as the pipeline)", con),
    ):
        out.append(
            f"| {label} | {r.seconds:.2f} | {r.trades:,} | {r.requests:,} | {r.weight:,} | "
            f"{r.rate_limited[0]} / {r.rate_limited[1]} | {r.waited:.2f} | "
            f"{best.seconds / r.seconds:.2f}x |"
        )
    each = ", ".join(f"{r.seconds:.2f}" for r in runs)
    busiest = max(due.values())
    return [
        *out,
        f"- Market: `SimulatedMarket` ({n_symbols} symbols followed, Zipf-skewed, "
        f"{tps:g} aggTrades/s in all, quiet minutes and hours), market time stopped "
        "(`speed=0`) and moved by hand; the fake exchange runs in this process (its REST "
        "handlers share the event loop with the pipeline or the peer), a fresh one per run, "
        "so each starts with an empty weight window.",
        f"- First run: `LivePipeline(PipelineConfig(db=…, lookback_ms={lookback // MINUTE} min, "
        f"intervals=['1m']))` until every symbol had a stored checkpoint ({first_s:.1f} s), "
        f"then stopped; the market moved 1 h on ({trades:,} aggTrades due after the "
        f"checkpoints, the busiest symbol {busiest:,}; generating them took {gen_s:.1f} s, "
        "untimed). Restart: a new pipeline on a copy of that db, in-process with a ManualClock "
        "at market time (as tests/test_live.py: the 1 h jump is instant and the catch-up can be "
        "seen at each commit through `on_stored`), timed from `run()` until every symbol's "
        "stored 1m klines reached the restart's minute (every whole minute before it; the "
        f"restart is {(phase.resume_ms - phase.target - 1) // 1000} s into a minute). Runs: "
        f"{each} s (best shown).",
        f"- Stored by the best run: {best.stored:,} klines handed to `on_stored` in "
        f"{best.writes} commits ({best.records:,} records: flat runs kept whole); the db then "
        f"holds {down:,} 1m klines for the downtime ({traded:,} traded, the rest flat), "
        "contiguous, none marked gap.",
        f"- Weight: aggTrades costs 4, exchangeInfo 20; the client spends at most {budget:,} "
        f"of the 6,000 per minute ({budget // 4:,} pages of 1,000 aggTrades). 'weight': the "
        "exchange's count over the last 60 s at the end of the run (all of it, for runs under a "
        "minute); 'limiter waited': seconds the peer's client slept for its weight budget (the "
        "pipeline's client cannot be watched; with the weight under the budget and no 429 it "
        "cannot have waited).",
    ]


# ---------------------------------------------------------------- main


def machine() -> str:
    return machine_info(("numpy", "psycopg", "aiohttp"), f"SQLite {sqlite3.sqlite_version}, ")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="smaller data, for a smoke run")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--part", choices=["a", "b"], help="only this part")
    ap.add_argument("--tps", type=float, default=100.0, help="part b: aggTrades per second")
    args = ap.parse_args()
    q = args.quick
    sections: list[tuple[str, str, Callable[[Path], list[str]]]] = [
        ("a", "a. records/s committed, batched upserts",
         lambda tmp: bench_writes(20 if q else 100, 500 if q else 2_000, 5_000, args.repeat, tmp)),
        ("b", "b. restart to caught up after 1 h down",
         lambda tmp: bench_restart(20 if q else 100, args.tps, args.repeat, tmp)),
    ]  # fmt: skip
    print(f"command: {shlex.join(['python', *sys.argv])}")
    print(f"machine: {machine()}\n")
    for part, title, run in sections:
        if args.part not in (None, part):
            continue
        print(f"### {title}\n")
        with tempfile.TemporaryDirectory(prefix="kline-rs-bench-") as tmp:
            w = time.perf_counter()
            lines = run(Path(tmp))
        print("\n".join(lines))
        print(f"\n(part {part} took {time.perf_counter() - w:.0f} s)\n", flush=True)


if __name__ == "__main__":
    main()
