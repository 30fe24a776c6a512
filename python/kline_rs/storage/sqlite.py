"""SQLite storage (the default): one file, WAL, exact decimal text, idempotent placement.

All database work runs on one thread of its own (sqlite3 connections belong to a thread), off
the event loop. A write is one ``BEGIN IMMEDIATE`` … ``COMMIT``: closed klines, the open slots
of the snapshot and the per-symbol checkpoints land together or not at all.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from kline_rs.engine import Snapshot
from kline_rs.storage.base import (
    ROW_COLUMNS,
    SLOT_COLUMNS,
    Placement,
    Placer,
    SqlTable,
    StoredState,
    StoreUnavailableError,
    ThreadedSink,
    column_additions,
    rows_from_records,
    slot_rows,
    slots_from_db,
)

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS klines (
    venue TEXT NOT NULL, symbol TEXT NOT NULL, interval TEXT NOT NULL,
    open_time INTEGER NOT NULL, close_time INTEGER NOT NULL,
    open TEXT NOT NULL, high TEXT NOT NULL, low TEXT NOT NULL, close TEXT NOT NULL,
    volume TEXT NOT NULL, quote_volume TEXT NOT NULL, trades INTEGER NOT NULL,
    taker_buy_volume TEXT NOT NULL, taker_buy_quote_volume TEXT NOT NULL,
    first_trade_id INTEGER NOT NULL, last_trade_id INTEGER NOT NULL,
    revision INTEGER NOT NULL, gap INTEGER NOT NULL, flat INTEGER NOT NULL,
    inexact_trades INTEGER NOT NULL DEFAULT 0, quote_volume_exact TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (venue, symbol, interval, open_time)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS open_klines (
    venue TEXT NOT NULL, symbol TEXT NOT NULL, interval TEXT NOT NULL, state TEXT NOT NULL,
    open_time INTEGER NOT NULL, close_time INTEGER NOT NULL,
    open TEXT NOT NULL, high TEXT NOT NULL, low TEXT NOT NULL, close TEXT NOT NULL,
    volume TEXT NOT NULL, quote_volume TEXT NOT NULL, trades INTEGER NOT NULL,
    taker_buy_volume TEXT NOT NULL, taker_buy_quote_volume TEXT NOT NULL,
    first_trade_id INTEGER NOT NULL, last_trade_id INTEGER NOT NULL,
    inexact_trades INTEGER NOT NULL DEFAULT 0, quote_volume_exact TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (venue, symbol, interval)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    venue TEXT NOT NULL, symbol TEXT NOT NULL, last_id INTEGER NOT NULL,
    PRIMARY KEY (venue, symbol)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS anchors (
    venue TEXT NOT NULL, symbol TEXT NOT NULL, anchor_3d_ms INTEGER NOT NULL,
    PRIMARY KEY (venue, symbol)
) WITHOUT ROWID;
"""

_COLS = ", ".join(ROW_COLUMNS)


def add_columns(db: sqlite3.Connection) -> None:
    """Brings a database written by an older kline_rs to today's columns."""
    for table in ("klines", "open_klines"):
        have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        for statement in column_additions(table, have, "INTEGER"):
            db.execute(statement)


_KEY = "venue = ? AND symbol = ? AND interval = ?"


def describe(e: sqlite3.Error) -> str:
    """What an sqlite3 error means for the user."""
    text = str(e)
    low = text.lower()
    if "locked" in low or "busy" in low:
        return f"database is locked by another connection ({text})"
    if "readonly" in low or "read-only" in low or "unable to open" in low:
        return f"database is read-only ({text})"
    if "full" in low:
        return f"disk or database is full ({text})"
    return text


class _Table(SqlTable):
    """:class:`~kline_rs.storage.base.RowTable` on an open sqlite3 transaction."""

    mark = "?"

    def upsert(self, rows: list[tuple[Any, ...]]) -> None:
        marks = ", ".join("?" * (len(ROW_COLUMNS) + 1))
        self.db.executemany(
            f"INSERT OR REPLACE INTO klines (venue, {_COLS}) VALUES ({marks})", rows
        )


class SqliteSink(ThreadedSink):
    """The default store: ``SqliteSink("klines.sqlite", venue="spot")``.

    ``busy_timeout`` (s) is how long a write waits for a lock held by another connection
    before it fails (the caller keeps the records and retries). ``tz_offset``: the engine's
    (it places 1M periods; readers expanding monthly flat runs read it back).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        venue: str = "spot",
        busy_timeout: float = 2.0,
        synchronous: str = "NORMAL",
        tz_offset: str | None = None,
    ) -> None:
        self.path = Path(path)
        super().__init__("kline-rs sqlite")
        self.venue = venue
        self.tz_offset = tz_offset
        self.busy_timeout = busy_timeout
        self.synchronous = synchronous
        self._db: sqlite3.Connection | None = None
        self._placer = Placer()

    # -- on the store's thread -------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            db = None
            try:
                db = sqlite3.connect(
                    self.path, timeout=self.busy_timeout, isolation_level=None,
                    check_same_thread=False,
                )  # fmt: skip
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(f"PRAGMA synchronous={self.synchronous}")
                db.executescript(SCHEMA)
                add_columns(db)
                # Given: it is the engine's now. Not given: keep what is stored, else UTC.
                verb = "INSERT OR REPLACE" if self.tz_offset else "INSERT OR IGNORE"
                db.execute(
                    f"{verb} INTO meta (key, value) VALUES ('tz_offset', ?)",
                    (self.tz_offset or "+00:00",),
                )
            except sqlite3.Error as e:
                if db is not None:
                    db.close()
                raise StoreUnavailableError(f"{self.path}: {describe(e)}") from e
            self._db = db
        return self._db

    def _drop(self) -> None:
        """After a failure: the next use connects afresh (a file that was read-only or on a
        filesystem remounted meanwhile is opened read-write again)."""
        self._placer.forget()
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None

    def _open(self) -> StoredState:
        db = self._connect()
        try:
            slots = db.execute(
                f"SELECT {', '.join(SLOT_COLUMNS)} FROM open_klines WHERE venue = ?",
                (self.venue,),
            ).fetchall()
            checkpoints = dict(
                db.execute("SELECT symbol, last_id FROM checkpoints WHERE venue = ?", (self.venue,))
            )
            anchors = dict(
                db.execute(
                    "SELECT symbol, anchor_3d_ms FROM anchors WHERE venue = ?", (self.venue,)
                )
            )
        except sqlite3.Error as e:
            self._drop()
            raise StoreUnavailableError(f"{self.path}: {describe(e)}") from e
        return StoredState(slots_from_db(slots), checkpoints, anchors)

    def _save_anchors(self, anchors: dict[str, int]) -> None:
        db = self._connect()
        try:
            with db:
                db.executemany(
                    "INSERT OR REPLACE INTO anchors (venue, symbol, anchor_3d_ms) VALUES (?, ?, ?)",
                    [(self.venue, s, t) for s, t in anchors.items()],
                )
        except sqlite3.Error as e:
            self._drop()
            raise StoreUnavailableError(f"{self.path}: {describe(e)}") from e

    def _write(
        self, records: npt.NDArray[np.void], snapshot: Snapshot | None, forget: Sequence[str]
    ) -> Placement:
        rows = rows_from_records(records)
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            done = self._placer.place(_Table(db, self.venue), rows)
            for symbol in forget:
                db.execute(
                    "DELETE FROM open_klines WHERE venue = ? AND symbol = ?", (self.venue, symbol)
                )
            if snapshot is not None:
                self._put_snapshot(db, snapshot)
            db.execute("COMMIT")
        except sqlite3.Error as e:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            self._drop()
            raise StoreUnavailableError(f"{self.path}: {describe(e)}") from e
        return done

    def _put_snapshot(self, db: sqlite3.Connection, snapshot: Snapshot) -> None:
        slots = slot_rows(snapshot)
        keep = [s for s in slots if s[2] != "empty"]
        gone = [(self.venue, s[0], s[1]) for s in slots if s[2] == "empty"]
        marks = ", ".join("?" * (len(SLOT_COLUMNS) + 1))
        db.executemany(
            f"INSERT OR REPLACE INTO open_klines (venue, {', '.join(SLOT_COLUMNS)}) "
            f"VALUES ({marks})",
            [(self.venue, *s) for s in keep],
        )
        db.executemany(f"DELETE FROM open_klines WHERE {_KEY}", gone)
        db.executemany(
            "INSERT OR REPLACE INTO checkpoints (venue, symbol, last_id) VALUES (?, ?, ?)",
            [(self.venue, s, i) for s, i in snapshot.checkpoints.items()],
        )

    def _gaps(self) -> list[tuple[str, str, int, int, int]]:
        try:
            return _Table(self._connect(), self.venue).gap_rows()
        except sqlite3.Error as e:
            self._drop()
            raise StoreUnavailableError(f"{self.path}: {describe(e)}") from e

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
