"""PostgreSQL storage: the same tables, placement and one-transaction writes as SQLite.

A sync psycopg 3 connection on one thread of its own, as :class:`~kline_rs.storage.SqliteSink`
does: placement (:class:`~kline_rs.storage.base.Placer`) calls its table synchronously between
reads and writes, so an async connection would need a second, async copy of it.

Decimals are exact TEXT, as in SQLite: rows read back compare and merge on the very text that
was written (NUMERIC would come back as ``Decimal`` and need formatting again). Where the
``timescaledb`` extension can be created, ``klines`` becomes a hypertable on ``open_time``
(best effort: without it, a plain table).

A lost connection (server down, restarted, network) is a :class:`StoreUnavailableError`; the next
write connects again, and a write that finds its connection gone since the last one retries
once on a new connection (placement is idempotent, so a repeat is harmless).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

try:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict
    from psycopg.rows import TupleRow
except ImportError as e:  # pragma: no cover - depends on the installation
    raise ImportError("PostgreSQL storage needs psycopg 3: pip install 'kline_rs[postgres]'") from e

from kline_rs.engine import Snapshot
from kline_rs.storage.base import (
    ROW_COLUMNS,
    SLOT_COLUMNS,
    FencedOutError,
    Placement,
    Placer,
    Row,
    SqlTable,
    StorageError,
    StoredState,
    StoreUnavailableError,
    ThreadedSink,
    column_additions,
    row_from_db,
    rows_from_records,
    slot_rows,
    slots_from_db,
)

T = TypeVar("T")
Connection = psycopg.Connection[TupleRow]

SCHEMA = """
CREATE TABLE IF NOT EXISTS klines (
    venue TEXT NOT NULL, symbol TEXT NOT NULL, interval TEXT NOT NULL,
    open_time BIGINT NOT NULL, close_time BIGINT NOT NULL,
    open TEXT NOT NULL, high TEXT NOT NULL, low TEXT NOT NULL, close TEXT NOT NULL,
    volume TEXT NOT NULL, quote_volume TEXT NOT NULL, trades BIGINT NOT NULL,
    taker_buy_volume TEXT NOT NULL, taker_buy_quote_volume TEXT NOT NULL,
    first_trade_id BIGINT NOT NULL, last_trade_id BIGINT NOT NULL,
    revision BIGINT NOT NULL, gap BOOLEAN NOT NULL, flat BOOLEAN NOT NULL,
    inexact_trades BIGINT NOT NULL DEFAULT 0, quote_volume_exact TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (venue, symbol, interval, open_time)
);
CREATE TABLE IF NOT EXISTS open_klines (
    venue TEXT NOT NULL, symbol TEXT NOT NULL, interval TEXT NOT NULL, state TEXT NOT NULL,
    open_time BIGINT NOT NULL, close_time BIGINT NOT NULL,
    open TEXT NOT NULL, high TEXT NOT NULL, low TEXT NOT NULL, close TEXT NOT NULL,
    volume TEXT NOT NULL, quote_volume TEXT NOT NULL, trades BIGINT NOT NULL,
    taker_buy_volume TEXT NOT NULL, taker_buy_quote_volume TEXT NOT NULL,
    first_trade_id BIGINT NOT NULL, last_trade_id BIGINT NOT NULL,
    inexact_trades BIGINT NOT NULL DEFAULT 0, quote_volume_exact TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (venue, symbol, interval)
);
CREATE TABLE IF NOT EXISTS checkpoints (
    venue TEXT NOT NULL, symbol TEXT NOT NULL, last_id BIGINT NOT NULL,
    PRIMARY KEY (venue, symbol)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS fences (
    venue TEXT NOT NULL, name TEXT NOT NULL, token BIGINT NOT NULL,
    progress BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (venue, name)
);
CREATE TABLE IF NOT EXISTS anchors (
    venue TEXT NOT NULL, symbol TEXT NOT NULL, anchor_3d_ms BIGINT NOT NULL,
    PRIMARY KEY (venue, symbol)
);
"""


def add_columns(db: Connection) -> None:
    """Brings a database written by an older kline_rs to today's columns (under the schema
    lock, in the schema's transaction)."""
    for table in ("klines", "open_klines"):
        have = {
            r[0]
            for r in db.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s",
                (table,),
            )
        }
        for statement in column_additions(table, have, "BIGINT"):
            db.execute(statement)


#: Serialises schema creation between sinks starting together (any fixed 64-bit number).
SCHEMA_LOCK = 0x6B6C696E655F7273
#: Hypertable chunk width on ``open_time`` (ms): one week.
CHUNK_MS = 7 * 86_400_000

_COLS = ", ".join(ROW_COLUMNS)
_KEY = "venue = %s AND symbol = %s AND interval = %s"
_UPSERT_KLINE = (
    f"INSERT INTO klines (venue, {_COLS}) VALUES ({', '.join(['%s'] * (len(ROW_COLUMNS) + 1))}) "
    "ON CONFLICT (venue, symbol, interval, open_time) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in ROW_COLUMNS if c not in ("symbol", "interval"))
)
#: Rows from which an upsert goes through ``COPY`` and a staging table (fewer: ``executemany``).
COPY_FROM_ROWS = 64
#: The staging table: temporary (one per session, no WAL), emptied after each upsert.
_STAGE = "kline_rs_klines_stage"
_CREATE_STAGE = (
    f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (LIKE klines INCLUDING DEFAULTS) "
    "ON COMMIT DELETE ROWS"
)
_UPSERT_STAGED = (
    f"INSERT INTO klines (venue, {_COLS}) SELECT venue, {_COLS} FROM {_STAGE} "
    + _UPSERT_KLINE[_UPSERT_KLINE.index("ON CONFLICT") :]
)
_SLOT_NAMES = ", ".join(SLOT_COLUMNS)
_UPSERT_SLOT = (
    f"INSERT INTO open_klines (venue, {_SLOT_NAMES}) "
    f"VALUES ({', '.join(['%s'] * (len(SLOT_COLUMNS) + 1))}) "
    "ON CONFLICT (venue, symbol, interval) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in SLOT_COLUMNS if c not in ("symbol", "interval"))
)


def target(url: str) -> str:
    """Where a URL points, without its password: ``PostgreSQL 'db' at host:port``."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.Error as e:
        raise StorageError(f"not a valid PostgreSQL URL ({e})") from e
    name = info.get("dbname") or info.get("user") or ""
    return f"PostgreSQL {name!r} at {info.get('host') or 'localhost'}:{info.get('port') or 5432}"


def describe(e: psycopg.Error) -> str:
    """What a psycopg error means for the user."""
    text = " ".join(str(e).split()) or type(e).__name__
    state = e.sqlstate or ""
    if state.startswith("57P"):
        return f"connection ended by the server: shutdown, restart or terminated ({text})"
    if state.startswith("53"):
        return f"server is out of disk, memory or connections ({text})"
    if state == "25006":
        return f"database is read-only ({text})"
    if state.startswith("40") or state == "55P03":
        return f"conflict with another transaction ({text})"
    if isinstance(e, psycopg.OperationalError | psycopg.InterfaceError):
        return f"server unreachable or connection lost ({text})"
    return text


def copy_text(rows: list[tuple[Any, ...]]) -> bytes | None:
    """Rows (all of one length) of ints, bools and strings as COPY text: tab-separated lines,
    ``t``/``f``, built in one go (half the time of ``write_row`` per row). None if a string
    holds what the format escapes (a backslash, tab, newline or carriage return)."""
    lines = ["\t".join(["t" if v is True else "f" if v is False else str(v) for v in row])
             for row in rows]  # fmt: skip
    text = "\n".join(lines)
    fields = len(rows[0]) if rows else 0
    if (
        "\\" in text
        or "\r" in text
        or text.count("\t") != len(rows) * (fields - 1)
        or text.count("\n") != len(rows) - 1
    ):
        return None
    return (text + "\n").encode()


class _Table(SqlTable):
    """:class:`~kline_rs.storage.base.RowTable` on an open psycopg transaction."""

    mark = "%s"

    def upsert(self, rows: list[tuple[Any, ...]]) -> None:
        """A few rows: one ``executemany``. More: ``COPY`` into a session-local staging table,
        then one ``INSERT … SELECT … ON CONFLICT DO UPDATE`` (the rows are one per key)."""
        with self.db.cursor() as cur:
            if len(rows) < COPY_FROM_ROWS:
                cur.executemany(_UPSERT_KLINE, rows)
                return
            cur.execute(_CREATE_STAGE)
            with cur.copy(f"COPY {_STAGE} (venue, {_COLS}) FROM STDIN") as copy:
                text = copy_text(rows)
                if text is not None:
                    copy.write(text)
                else:
                    for row in rows:
                        copy.write_row(row)
            cur.execute(_UPSERT_STAGED)
            cur.execute(f"DELETE FROM {_STAGE}")


class PostgresSink(ThreadedSink):
    """``PostgresSink("postgresql://user@host/db", venue="spot")``.

    ``connect_timeout`` (s) bounds how long a write waits for an unreachable server before it
    fails (the caller keeps the records and retries). ``tz_offset``: the engine's (it places 1M
    periods; readers expanding monthly flat runs read it back).
    """

    def __init__(
        self,
        url: str,
        *,
        venue: str = "spot",
        connect_timeout: float = 5.0,
        tz_offset: str | None = None,
    ) -> None:
        self.url = url
        self.where = target(url)
        super().__init__("kline-rs postgres")
        self.venue = venue
        self.tz_offset = tz_offset
        self.connect_timeout = connect_timeout
        #: Whether ``klines`` is a TimescaleDB hypertable (known after the first connection).
        self.hypertable = False
        self._db: Connection | None = None
        self._placer = Placer()
        #: (name, token): each write first checks that no writer with a larger token of the
        #: same name has fenced this one out (see :meth:`take_fence`).
        self.fence: tuple[str, int] | None = None
        #: With a fence: the position in the writer's input its next snapshot covers, stored
        #: with it in one transaction (None: not known, the stored one stays).
        self.fence_progress: int | None = None

    # -- on the store's thread -------------------------------------------------------------

    def _connect(self) -> Connection:
        if self._db is not None and not (self._db.closed or self._db.broken):
            return self._db
        self._close()
        try:
            db = psycopg.connect(
                self.url, autocommit=True, connect_timeout=max(1, round(self.connect_timeout))
            )
        except psycopg.Error as e:
            raise StoreUnavailableError(f"{self.where}: {describe(e)}") from e
        try:
            with db.transaction():
                db.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                db.execute(SCHEMA)
                add_columns(db)
                # Given: it is the engine's now. Not given: keep what is stored, else UTC.
                db.execute(
                    "INSERT INTO meta (key, value) VALUES ('tz_offset', %s) ON CONFLICT (key) "
                    + ("DO UPDATE SET value = EXCLUDED.value" if self.tz_offset else "DO NOTHING"),
                    (self.tz_offset or "+00:00",),
                )
            self.hypertable = self._hypertable(db)
        except psycopg.Error as e:
            db.close()
            raise StoreUnavailableError(f"{self.where}: {describe(e)}") from e
        self._db = db
        return db

    @staticmethod
    def _hypertable(db: Connection) -> bool:
        """Makes ``klines`` a TimescaleDB hypertable where the extension can be created."""
        available = db.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
        ).fetchone()
        if available is None:
            return False
        try:
            with db.transaction():
                db.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
                db.execute(
                    "SELECT create_hypertable('klines', 'open_time', "
                    "chunk_time_interval => %s::bigint, if_not_exists => TRUE, "
                    "migrate_data => TRUE)",
                    (CHUNK_MS,),
                )
        except psycopg.Error:
            if db.broken:
                raise
            return False  # not preloaded, no privilege…: a plain table works the same
        return True

    def _on_connection(self, work: Callable[[Connection], T]) -> T:
        """``work`` on the connection; once more on a new one if the old one had died since it
        was last used (a server restart between writes fails nothing)."""
        stale = self._db is not None
        while True:
            db = self._connect()
            try:
                return work(db)
            except psycopg.Error as e:
                self._placer.forget()
                if db.broken and stale:
                    stale = False
                    continue
                raise StoreUnavailableError(f"{self.where}: {describe(e)}") from e

    def _open(self) -> StoredState:
        def read(db: Connection) -> StoredState:
            slots = db.execute(
                f"SELECT {_SLOT_NAMES} FROM open_klines WHERE venue = %s", (self.venue,)
            ).fetchall()
            checkpoints = db.execute(
                "SELECT symbol, last_id FROM checkpoints WHERE venue = %s", (self.venue,)
            ).fetchall()
            anchors = db.execute(
                "SELECT symbol, anchor_3d_ms FROM anchors WHERE venue = %s", (self.venue,)
            ).fetchall()
            return StoredState(slots_from_db(slots), dict(checkpoints), dict(anchors))

        return self._on_connection(read)

    def _save_anchors(self, anchors: dict[str, int]) -> None:
        def save(db: Connection) -> None:
            with db.transaction(), db.cursor() as cur:
                cur.executemany(
                    "INSERT INTO anchors (venue, symbol, anchor_3d_ms) VALUES (%s, %s, %s) "
                    "ON CONFLICT (venue, symbol) "
                    "DO UPDATE SET anchor_3d_ms = EXCLUDED.anchor_3d_ms",
                    [(self.venue, s, t) for s, t in anchors.items()],
                )

        self._on_connection(save)

    async def write(
        self,
        records: npt.NDArray[np.void],
        snapshot: Snapshot | None,
        *,
        forget: Sequence[str] = (),
    ) -> Placement:
        # The progress as it is now: a later write may change it before this one runs.
        fenced = None if self.fence is None else (self.fence[0], self.fence_progress)
        return await self._run(self._write, records, snapshot, list(forget), fenced)

    def _write(
        self,
        records: npt.NDArray[np.void],
        snapshot: Snapshot | None,
        forget: Sequence[str],
        fenced: tuple[str, int | None] | None = None,
    ) -> Placement:
        rows = rows_from_records(records)

        def transaction(db: Connection) -> Placement:
            with db.transaction():
                if self.fence is not None:
                    self._check_fence(db, *self.fence)
                done = self._placer.place(_Table(db, self.venue), rows)
                for symbol in forget:
                    db.execute(
                        "DELETE FROM open_klines WHERE venue = %s AND symbol = %s",
                        (self.venue, symbol),
                    )
                if snapshot is not None:
                    self._put_snapshot(db, snapshot)
                    if fenced is not None and fenced[1] is not None:
                        db.execute(
                            "UPDATE fences SET progress = %s WHERE venue = %s AND name = %s",
                            (fenced[1], self.venue, fenced[0]),
                        )
            return done

        return self._on_connection(transaction)

    async def take_fence(self, name: str, token: int) -> int:
        """Makes ``token`` the newest of ``name``: from its commit on, every write of a sink
        fenced with a smaller token of the same name fails with :class:`FencedOutError` (a
        shard's previous owner, still writing after its lease ran out). Raises it too when a
        larger token is already there. Returns the progress stored with the last snapshot."""
        self.fence = (name, token)

        def take(db: Connection) -> int:
            with db.transaction():
                return self._check_fence(db, name, token)

        return await self._run(self._on_connection, take)

    def _check_fence(self, db: Connection, name: str, token: int) -> int:
        row = db.execute(
            "INSERT INTO fences (venue, name, token) VALUES (%s, %s, %s) "
            "ON CONFLICT (venue, name) DO UPDATE SET token = EXCLUDED.token "
            "WHERE fences.token <= EXCLUDED.token RETURNING progress",
            (self.venue, name, token),
        ).fetchone()
        if row is None:
            raise FencedOutError(
                f"{self.where}: {self.venue} {name} has a newer writer than token {token}: "
                "this one stops writing"
            )
        return int(row[0])

    def _put_snapshot(self, db: Connection, snapshot: Snapshot) -> None:
        slots = slot_rows(snapshot)
        keep = [(self.venue, *s) for s in slots if s[2] != "empty"]
        gone = [(self.venue, s[0], s[1]) for s in slots if s[2] == "empty"]
        with db.cursor() as cur:
            if keep:
                cur.executemany(_UPSERT_SLOT, keep)
            if gone:
                cur.executemany(f"DELETE FROM open_klines WHERE {_KEY}", gone)
            if snapshot.checkpoints:
                cur.executemany(
                    "INSERT INTO checkpoints (venue, symbol, last_id) VALUES (%s, %s, %s) "
                    "ON CONFLICT (venue, symbol) DO UPDATE SET last_id = EXCLUDED.last_id",
                    [(self.venue, s, i) for s, i in snapshot.checkpoints.items()],
                )

    def _gaps(self) -> list[tuple[str, str, int, int, int]]:
        return self._on_connection(lambda db: _Table(db, self.venue).gap_rows())

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()  # never raises, even on a lost connection
            self._db = None


# -- reading (read_klines, export) ---------------------------------------------------------


def _read(url: str, *queries: tuple[str, tuple[Any, ...]]) -> list[list[TupleRow]]:
    """Each query's rows, on one short-lived connection."""
    where = target(url)
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as db:
            return [db.execute(sql, args).fetchall() for sql, args in queries]
    except psycopg.errors.UndefinedTable as e:
        raise StorageError(f"{where}: no klines stored there ({describe(e)})") from e
    except psycopg.Error as e:
        raise StoreUnavailableError(f"{where}: {describe(e)}") from e


def fetch_rows(
    url: str,
    venue: str,
    symbol: str,
    interval: str,
    lo: int,
    hi: int,
    *,
    first: int | None = None,
    last: int | None = None,
) -> tuple[list[Row], str | None]:
    """Stored rows of one series overlapping ``lo <= open_time < hi`` (the row holding ``lo``
    may start before it: a flat run), oldest first (only the latest ``last`` rows, or the
    earliest ``first`` + 1, if given), and the stored tz_offset."""
    key = (venue, symbol, interval)
    limit: tuple[int, ...] = ()
    order = "ORDER BY open_time"
    if last is not None:
        order, limit = "ORDER BY open_time DESC LIMIT %s", (max(last, 0),)
    elif first is not None:
        order, limit = "ORDER BY open_time LIMIT %s", (max(first, 0) + 1,)
    got, tz = _read(
        url,
        (
            f"SELECT {_COLS} FROM klines WHERE {_KEY} AND open_time < %s AND open_time >= "
            f"coalesce((SELECT max(open_time) FROM klines WHERE {_KEY} AND open_time <= %s), %s) "
            + order,
            (*key, hi, *key, lo, lo, *limit),
        ),
        ("SELECT value FROM meta WHERE key = 'tz_offset'", ()),
    )
    if last is not None:
        got.reverse()
    return [row_from_db(r) for r in got], (tz[0][0] if tz else None)


def fetch_contents(
    url: str, venue: str
) -> tuple[list[tuple[str, str]], dict[str, int], str | None]:
    """The stored (symbol, interval) pairs of ``venue``, its 3d anchors and the tz_offset."""
    series, anchors, tz = _read(
        url,
        ("SELECT DISTINCT symbol, interval FROM klines WHERE venue = %s ORDER BY 1, 2", (venue,)),
        ("SELECT symbol, anchor_3d_ms FROM anchors WHERE venue = %s", (venue,)),
        ("SELECT value FROM meta WHERE key = 'tz_offset'", ()),
    )
    return (
        [(s, i) for s, i in series],
        {s: int(t) for s, t in anchors},
        str(tz[0][0]) if tz else None,
    )


def fetch_series(url: str, venue: str) -> list[tuple[str, str]]:
    """The stored (symbol, interval) pairs of ``venue``."""
    (got,) = _read(
        url,
        ("SELECT DISTINCT symbol, interval FROM klines WHERE venue = %s ORDER BY 1, 2", (venue,)),
    )
    return [(s, i) for s, i in got]
