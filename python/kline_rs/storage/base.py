"""What every store shares: the sink interface, exact decimal text, and the row placement rules.

A store keeps one row per (venue, symbol, interval, open_time). A row is a closed kline, or
(``flat``) a whole run of quiet periods ``open_time .. close_time`` at one price, expanded by
readers. Placement keeps three rules whatever order records arrive in:

- a record replaces what it overlaps only if its revision is not older (a revision replaces an
  older one, never the reverse); a flat run it cuts into keeps the parts outside it;
- adjacent flat runs with the same price, revision and gap flag are merged, so the stored rows
  do not depend on when the engine happened to sweep;
- everything of one write (klines, open slots, checkpoints) is one transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from kline_rs._core import DecimalError, KlineError, format_fixed, format_fixed_many, parse_fixed
from kline_rs.engine import SNAPSHOT_DTYPE, Snapshot

T = TypeVar("T")

PRICE_DIGITS = 8
VOLUME_DIGITS = 8
QUOTE_DIGITS = 16


class StorageError(KlineError):
    """The store failed; what was being written stays pending in the engine."""


class StoreUnavailableError(StorageError):
    """The store refused a write for now (locked, read-only, full, down); retried."""


class FencedOutError(KlineError):
    """A newer writer of the same shard has taken over: this writer must stop (not a store
    failure to retry)."""


class BacklogFullError(StorageError):
    """The store has been down so long that the records waiting for it passed the bound."""


def is_postgres_url(db: object) -> bool:
    """A ``postgresql://`` URL (else: an SQLite path)."""
    return str(db).startswith(("postgresql://", "postgres://"))


def fixed_text(value: int, digits: int) -> str:
    """An exact integer mantissa as decimal text with ``digits`` decimals (the core's rule)."""
    return format_fixed(int(value), digits)


def parse_fixed_text(text: str, digits: int) -> int:
    """The inverse of :func:`fixed_text`: stored text that is not a decimal is a
    :class:`StorageError` naming it."""
    try:
        return parse_fixed(text, digits)
    except DecimalError as e:
        raise StorageError(f"stored decimal {text!r}: {e}") from e


class Row(NamedTuple):
    """One stored row; decimals as exact text (prices/volumes 8 decimals, quotes 16)."""

    symbol: str
    interval: str
    open_time: int
    close_time: int
    open: str
    high: str
    low: str
    close: str
    volume: str
    quote_volume: str
    trades: int
    taker_buy_volume: str
    taker_buy_quote_volume: str
    first_trade_id: int
    last_trade_id: int
    revision: int
    gap: bool
    flat: bool
    #: aggTrades whose quote value may differ from Binance's (0: the quote volumes are exact).
    inexact_trades: int = 0
    #: The exact Σ p·q (16 decimals); rows stored before it existed hold their quote volume.
    quote_volume_exact: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.symbol, self.interval)

    def continues(self, other: Row) -> bool:
        """Both are flat runs that may merge: same price, revision and gap flag, and ``self``
        starts where ``other`` ends."""
        return (
            self.flat
            and other.flat
            and other.close_time + 1 == self.open_time
            and (self.close, self.revision, self.gap) == (other.close, other.revision, other.gap)
        )


#: Column order of the ``klines`` table after ``venue``.
ROW_COLUMNS: tuple[str, ...] = Row._fields

#: Decimal columns and their digits.
TEXT_DIGITS = {
    "open": PRICE_DIGITS, "high": PRICE_DIGITS, "low": PRICE_DIGITS, "close": PRICE_DIGITS,
    "volume": VOLUME_DIGITS, "quote_volume": QUOTE_DIGITS, "taker_buy_volume": VOLUME_DIGITS,
    "taker_buy_quote_volume": QUOTE_DIGITS, "quote_volume_exact": QUOTE_DIGITS,
}  # fmt: skip


def rows_from_records(records: npt.NDArray[np.void]) -> list[Row]:
    """Engine records (:data:`kline_rs.engine.RECORD_DTYPE`) → rows with exact text
    (column by column: one ``tolist`` per column, decimals formatted a column at a time)."""
    columns = [text_column(records, name) for name in ROW_COLUMNS]
    return [Row._make(values) for values in zip(*columns, strict=True)]


def text_column(array: npt.NDArray[np.void], name: str) -> list[Any]:
    """One column as Python values; a decimal column (:data:`TEXT_DIGITS`) as exact text."""
    values: list[Any] = array[name].tolist()
    digits = TEXT_DIGITS.get(name)
    return values if digits is None else format_fixed_many(values, digits)


def row_from_db(values: Sequence[Any]) -> Row:
    """A row as selected (``ROW_COLUMNS`` order) back into a :class:`Row`."""
    v = list(values)
    v[16], v[17] = bool(v[16]), bool(v[17])
    return Row(*v)


class RowTable(Protocol):
    """The few statements placement needs, run inside the store's open transaction."""

    def last(self, key: tuple[str, str]) -> Row | None:
        """The row with the greatest open time."""

    def before(self, key: tuple[str, str], t: int) -> Row | None:
        """The row with the greatest open time < ``t``."""

    def between(self, key: tuple[str, str], start: int, end: int) -> list[Row]:
        """Rows with ``start <= open_time <= end``."""

    def delete(self, row: Row) -> None: ...

    def put(self, row: Row) -> None:
        """Insert, or replace the row at the same open time."""

    def flush(self) -> None:
        """Sends puts buffered so far (before any read)."""


class SqlTable:
    """:class:`RowTable` over an open transaction of a DB-API style connection (``execute``
    returning rows). Subclasses give the placeholder and how buffered rows are upserted."""

    #: The driver's placeholder: ``?`` (sqlite3) or ``%s`` (psycopg).
    mark = "?"

    def __init__(self, db: Any, venue: str) -> None:
        self.db = db
        self.venue = venue
        self.puts: list[tuple[Any, ...]] = []
        m = self.mark
        cols = ", ".join(ROW_COLUMNS)
        key = f"venue = {m} AND symbol = {m} AND interval = {m}"
        self._last = f"SELECT {cols} FROM klines WHERE {key} ORDER BY open_time DESC LIMIT 1"
        self._before = (
            f"SELECT {cols} FROM klines WHERE {key} AND open_time < {m} "
            "ORDER BY open_time DESC LIMIT 1"
        )
        self._between = (
            f"SELECT {cols} FROM klines WHERE {key} AND open_time BETWEEN {m} AND {m} "
            "ORDER BY open_time"
        )
        self._delete = f"DELETE FROM klines WHERE {key} AND open_time = {m}"

    def _one(self, sql: str, args: tuple[Any, ...]) -> Row | None:
        got = self.db.execute(sql, args).fetchone()
        return None if got is None else row_from_db(got)

    def last(self, key: tuple[str, str]) -> Row | None:
        return self._one(self._last, (self.venue, *key))

    def before(self, key: tuple[str, str], t: int) -> Row | None:
        return self._one(self._before, (self.venue, *key, t))

    def between(self, key: tuple[str, str], start: int, end: int) -> list[Row]:
        got = self.db.execute(self._between, (self.venue, *key, start, end))
        return [row_from_db(r) for r in got]

    def delete(self, row: Row) -> None:
        self.db.execute(self._delete, (self.venue, row.symbol, row.interval, row.open_time))

    def put(self, row: Row) -> None:
        self.puts.append((self.venue, *row))

    def pending(self) -> list[tuple[Any, ...]]:
        """The buffered puts, the last put per (symbol, interval, open_time) only (a merged
        flat run is put again under its first row's key), in key order (a B-tree takes sorted
        keys fastest)."""
        last = {(p[1], p[2], p[3]): p for p in self.puts}
        return [last[k] for k in sorted(last)]

    def gap_rows(self) -> list[tuple[str, str, int, int, int]]:
        """(symbol, interval, open_time, close_time, revision) of every row marked gap."""
        got = self.db.execute(
            "SELECT symbol, interval, open_time, close_time, revision FROM klines "
            f"WHERE venue = {self.mark} AND gap ORDER BY symbol, interval, open_time",
            (self.venue,),
        )
        return [(str(a), str(b), int(c), int(d), int(e)) for a, b, c, d, e in got]

    def flush(self) -> None:
        if self.puts:
            self.upsert(self.pending())
            self.puts.clear()

    def upsert(self, rows: list[tuple[Any, ...]]) -> None:
        """Inserts ``(venue, *Row)`` tuples, replacing rows at the same key."""
        raise NotImplementedError


@dataclass
class Placement:
    """Counts of one write."""

    stored: int = 0
    merged: int = 0
    replaced: int = 0
    stale: int = 0


class Placer:
    """Applies rows to a :class:`RowTable` under the placement rules, keeping the newest row
    per (symbol, interval) in memory so the common case (a later period) is one buffered put."""

    def __init__(self) -> None:
        self._tails: dict[tuple[str, str], Row | None] = {}

    def forget(self) -> None:
        """After a rolled-back transaction the remembered tails may be wrong."""
        self._tails.clear()

    def place(self, table: RowTable, rows: Iterable[Row]) -> Placement:
        done = Placement()
        for row in rows:
            key = row.key
            if key not in self._tails:
                # No put of `key` is buffered: it has none since it was last read (`_overlap`
                # flushes before it forgets a tail), so the read needs no flush.
                self._tails[key] = table.last(key)
            tail = self._tails[key]
            if tail is None or row.open_time > tail.close_time:
                if tail is not None and row.continues(tail):
                    row = tail._replace(close_time=row.close_time)
                    done.merged += 1
                table.put(row)
                self._tails[key] = row
                done.stored += 1
            elif self._overlap(table, row, done):
                done.stored += 1
        table.flush()
        return done

    def _overlap(self, table: RowTable, row: Row, done: Placement) -> bool:
        key = row.key
        table.flush()
        over = table.between(key, row.open_time, row.close_time)
        prev = table.before(key, row.open_time)
        if prev is not None and prev.close_time >= row.open_time:
            over.insert(0, prev)
        if any(o.revision > row.revision for o in over):
            done.stale += 1
            return False
        for o in over:
            table.delete(o)
            done.replaced += 1
            if o.flat and o.open_time < row.open_time:
                table.put(o._replace(close_time=row.open_time - 1))
            if o.flat and o.close_time > row.close_time:
                table.put(o._replace(open_time=row.close_time + 1))
        table.flush()
        if row.flat:
            left = table.before(key, row.open_time)
            if left is not None and row.continues(left):
                row = left._replace(close_time=row.close_time)
                done.merged += 1
            right = table.between(key, row.close_time + 1, row.close_time + 1)
            if right and right[0].continues(row):
                table.delete(right[0])
                row = row._replace(close_time=right[0].close_time)
                done.merged += 1
        table.put(row)
        table.flush()
        self._tails.pop(key, None)  # read again when next needed
        return True


@dataclass
class StoredState:
    """What a store gives back on start: open slots, per-symbol checkpoints and 3d anchors."""

    slots: npt.NDArray[np.void]
    checkpoints: dict[str, int]
    #: Each symbol's 3d anchor (its first 1d kline's open time), as found once over REST.
    anchors: dict[str, int] = field(default_factory=dict)

    def only(self, symbols: Iterable[str]) -> StoredState:
        """The part for ``symbols`` (the ones followed now)."""
        keep = set(symbols)
        mask = np.array([s in keep for s in self.slots["symbol"]], dtype=bool)
        return StoredState(
            self.slots[mask] if len(self.slots) else self.slots,
            {s: i for s, i in self.checkpoints.items() if s in keep},
            self.anchors,
        )

    def without(self, symbols: Iterable[str]) -> StoredState:
        """The rest (what is left to restore for symbols added later)."""
        drop = set(symbols)
        mask = np.array([s not in drop for s in self.slots["symbol"]], dtype=bool)
        return StoredState(
            self.slots[mask] if len(self.slots) else self.slots,
            {s: i for s, i in self.checkpoints.items() if s not in drop},
            self.anchors,
        )


SLOT_COLUMNS: tuple[str, ...] = (
    "symbol", "interval", "state", "open_time", "close_time", "open", "high", "low", "close",
    "volume", "quote_volume", "trades", "taker_buy_volume", "taker_buy_quote_volume",
    "first_trade_id", "last_trade_id", "inexact_trades", "quote_volume_exact",
)  # fmt: skip

#: Columns added since the first schema: (name, "int" or "text", the column older rows take
#: it from, or None for 0). Each store adds the missing ones to both tables when it opens a
#: database (SQLite and PostgreSQL alike). Before the per-trade rule, ``quote_volume`` was the
#: exact sum, so older rows' exact sum is their quote volume.
ADDED_COLUMNS: tuple[tuple[str, str, str | None], ...] = (
    ("inexact_trades", "int", None),
    ("quote_volume_exact", "text", "quote_volume"),
)


def column_additions(table: str, have: set[str], int_type: str) -> list[str]:
    """The statements that bring ``table``, whose columns are ``have``, to today's columns
    (``int_type``: the store's 64-bit integer type)."""
    out = []
    for name, kind, source in ADDED_COLUMNS:
        if name not in have:
            default = "0" if kind == "int" else "''"
            sql_type = int_type if kind == "int" else "TEXT"
            out.append(
                f"ALTER TABLE {table} ADD COLUMN {name} {sql_type} NOT NULL DEFAULT {default}"
            )
            if source is not None:
                out.append(f"UPDATE {table} SET {name} = {source}")
    return out


def slot_rows(snapshot: Snapshot) -> list[tuple[Any, ...]]:
    """A snapshot's slots as rows (``SLOT_COLUMNS`` order), decimals as exact text."""
    columns = [text_column(snapshot.slots, name) for name in SLOT_COLUMNS]
    return list(zip(*columns, strict=True))


def slots_from_db(rows: Sequence[Sequence[Any]]) -> npt.NDArray[np.void]:
    """Stored slot rows (``SLOT_COLUMNS`` order) → a :data:`SNAPSHOT_DTYPE` array."""
    out = np.empty(len(rows), dtype=SNAPSHOT_DTYPE)
    digits = {
        "open": PRICE_DIGITS, "high": PRICE_DIGITS, "low": PRICE_DIGITS, "close": PRICE_DIGITS,
        "volume": VOLUME_DIGITS, "quote_volume": QUOTE_DIGITS,
        "taker_buy_volume": VOLUME_DIGITS, "taker_buy_quote_volume": QUOTE_DIGITS,
        "quote_volume_exact": QUOTE_DIGITS,
    }  # fmt: skip
    for i, row in enumerate(rows):
        for name, value in zip(SLOT_COLUMNS, row, strict=True):
            out[i][name] = parse_fixed_text(value, digits[name]) if name in digits else value
    return out


class ThreadedSink:
    """A store whose driver is synchronous: every call runs on one thread of its own (a
    connection belongs to one thread), off the event loop. Subclasses implement ``_open``,
    ``_write`` and ``_close``; this gives the async :class:`Sink` interface."""

    venue: str

    def __init__(self, thread_name: str) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=thread_name)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _open(self) -> StoredState:
        raise NotImplementedError

    def _write(
        self, records: npt.NDArray[np.void], snapshot: Snapshot | None, forget: Sequence[str]
    ) -> Placement:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    def _gaps(self) -> list[tuple[str, str, int, int, int]]:
        raise NotImplementedError

    def _save_anchors(self, anchors: dict[str, int]) -> None:
        raise NotImplementedError

    async def save_anchors(self, anchors: dict[str, int]) -> None:
        """Keeps symbols' 3d anchors (found over REST) for the next start."""
        if anchors:
            await self._run(self._save_anchors, dict(anchors))

    async def open(self) -> StoredState:
        return await self._run(self._open)

    async def gaps(self) -> list[tuple[str, str, int, int, int]]:
        """Stored rows marked gap: (symbol, interval, open_time, close_time, revision)."""
        return await self._run(self._gaps)

    async def write(
        self,
        records: npt.NDArray[np.void],
        snapshot: Snapshot | None,
        *,
        forget: Sequence[str] = (),
    ) -> Placement:
        return await self._run(self._write, records, snapshot, list(forget))

    async def close(self) -> None:
        try:
            await self._run(self._close)
        finally:
            self._pool.shutdown(wait=True)


class Sink(Protocol):
    """Where closed klines and snapshots go. ``write`` returns only after a durable commit;
    the caller acknowledges the engine then, and only then."""

    venue: str

    async def open(self) -> StoredState:
        """Creates what is missing and returns the stored open slots and checkpoints."""

    async def gaps(self) -> list[tuple[str, str, int, int, int]]:
        """Stored rows marked gap: (symbol, interval, open_time, close_time, revision)."""

    async def save_anchors(self, anchors: dict[str, int]) -> None:
        """Keeps symbols' 3d anchors (found over REST) for the next start."""

    async def write(
        self,
        records: npt.NDArray[np.void],
        snapshot: Snapshot | None,
        *,
        forget: Sequence[str] = (),
    ) -> Placement:
        """Stores closed records (:data:`~kline_rs.engine.RECORD_DTYPE`) and, if given, the
        snapshot's open slots and checkpoints, in one transaction. ``forget``: symbols no longer
        followed, whose open slots are dropped (their checkpoints stay)."""

    async def close(self) -> None: ...
