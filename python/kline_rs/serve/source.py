"""Where served klines come from: the :class:`KlineSource` protocol, and :class:`StoreSource`
over a store (an SQLite file or a PostgreSQL URL).

Every endpoint (REST here, the websocket streams, the chart) asks a source the same two
questions: which symbols it serves, and the klines of one symbol and interval in a window. A
source answers any interval: one it keeps is served as kept, another is rolled up on request
by the core from a kept one that refines it (:mod:`kline_rs.serve.rollup`). Nothing is made
up: a window the source does not cover gives fewer klines, or none.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from pathlib import Path
from typing import Any, Protocol, TypeVar

from kline_rs._core import interval_ms, parse_fixed_many
from kline_rs.serve.rollup import RollupPlan, plan_rollup, rolled_up
from kline_rs.serve.served import (
    IntervalNotServedError,
    ServedKline,
    ServedSymbol,
    ServeError,
    SymbolNotServedError,
)
from kline_rs.storage.base import (
    PRICE_DIGITS,
    QUOTE_DIGITS,
    VOLUME_DIGITS,
    Row,
    StorageError,
    is_postgres_url,
)
from kline_rs.storage.read import (
    StoreContents,
    open_read_only,
    read_rows,
    row_spans,
    sqlite_rows,
    store_contents,
)
from kline_rs.venues import Venue, split_assets, venue_named

T = TypeVar("T")

#: Seconds a store's list of series is reused before it is read again.
CONTENTS_TTL_S = 5.0
#: Threads reading the store (its driver blocks): at most this many reads run at once.
STORE_READERS = 4


class KlineSource(Protocol):
    """What REST, the websocket streams and the chart page read klines from."""

    @property
    def venue(self) -> Venue:
        """The market the klines are of."""

    async def refresh(self) -> None:
        """Brings :meth:`symbols` up to date (cheap when it is; a live source: nothing)."""

    def symbols(self) -> list[ServedSymbol]:
        """The symbols served, as of the last :meth:`refresh`."""

    async def klines(
        self,
        symbol: str,
        interval: str,
        start_ms: int | None,
        end_ms: int | None,
        limit: int,
        tz_offset: str | None,
    ) -> list[ServedKline]:
        """Klines of ``symbol`` at ``interval`` (a canonical name, custom ones included),
        oldest first, by Binance's rule: open times in ``[start_ms, end_ms]``; the earliest
        ``limit`` of them from ``start_ms``, else the latest ``limit`` up to ``end_ms`` (None:
        unbounded). ``tz_offset`` (``+HH:MM``, None: UTC) places 1d and longer periods.
        Raises :class:`SymbolNotServedError` or :class:`IntervalNotServedError`."""


#: The stored text columns and their decimals.
DECIMAL_COLUMNS: dict[str, int] = {
    "open": PRICE_DIGITS, "high": PRICE_DIGITS, "low": PRICE_DIGITS, "close": PRICE_DIGITS,
    "volume": VOLUME_DIGITS, "quote_volume": QUOTE_DIGITS, "taker_buy_volume": VOLUME_DIGITS,
    "taker_buy_quote_volume": QUOTE_DIGITS,
}  # fmt: skip


def served_columns(
    rows: list[Row],
    tz_offset: str | None,
    lo: int,
    hi: int,
    *,
    first: int | None = None,
    last: int | None = None,
) -> dict[str, list[Any]]:
    """Stored rows → :class:`ServedKline`'s fields as columns, one entry per period opening
    in ``[lo, hi)`` (flat runs expanded; only the earliest ``first`` / latest ``last`` if
    given). Stored klines are closed: open ones are kept elsewhere."""
    spans = [
        (row, opens, closes)
        for row, (opens, closes) in row_spans(rows, tz_offset, lo, hi, first=first, last=last)
        if len(opens)
    ]
    kept = [row for row, _, _ in spans]
    counts = [len(opens) for _, opens, _ in spans]

    def expand(values: list[Any]) -> list[Any]:
        if len(values) == sum(counts):
            return values
        return [v for v, n in zip(values, counts, strict=True) for _ in range(n)]

    columns: dict[str, list[Any]] = {
        "open_time": list(chain.from_iterable(o for _, o, _ in spans)),
        "close_time": list(chain.from_iterable(c for _, _, c in spans)),
    }
    stored = dict(zip(Row._fields, zip(*kept, strict=True), strict=True)) if kept else {}
    for name in ServedKline._fields[2:-1]:  # `closed` is not stored: True below
        column = list(stored.get(name, ()))
        if name in DECIMAL_COLUMNS:
            column = parse_fixed_many(column, DECIMAL_COLUMNS[name])
        columns[name] = expand(column)
    columns["closed"] = [True] * len(columns["open_time"])
    return columns


def served_klines(columns: dict[str, list[Any]]) -> list[ServedKline]:
    """Columns (:func:`served_columns`' form) → klines."""
    return [ServedKline(*k) for k in zip(*(columns[f] for f in ServedKline._fields), strict=True)]


def window(
    start_ms: int | None, end_ms: int | None, limit: int
) -> tuple[int, int, int | None, int | None]:
    """Binance's window as a read: ``(lo, hi, first, last)`` over open times ``[lo, hi)``."""
    hi = 2**62 if end_ms is None else end_ms + 1
    if start_ms is not None:
        return start_ms, hi, limit, None
    return -(2**62), hi, None, limit


#: A read of one kept interval: ``(lo, hi, first, last)`` (:func:`window`) → columns of
#: :class:`ServedKline`'s fields.
Columns = dict[str, list[Any]]
ReadColumns = Callable[[int, int, int | None, int | None], Awaitable[Columns]]


async def rolled_window(
    read: ReadColumns, plan: RollupPlan, start_ms: int | None, end_ms: int | None, limit: int
) -> list[ServedKline]:
    """Binance's window of ``plan.interval`` rolled up from the kept ``plan.finer`` that
    ``read`` gives (any source's)."""
    # Finer klines enough for `limit` coarse ones and those a read cuts into, within the
    # bound: a read that stops at it gives fewer (whole) coarse klines, never cut ones.
    want = min((limit + 3) * plan.parts_per_period, plan.max_parts)
    # The coarse period opening at or before `end_ms` runs past it: read to its end.
    reach = None if end_ms is None else end_ms + interval_ms(plan.interval)[1]
    parts = await read(*window(start_ms, reach, want))
    coarse = rolled_up(parts, plan)
    if len(parts["open_time"]) == want and coarse:
        # The read stopped at `want`: the coarse kline it cut into is not whole.
        coarse = coarse[:-1] if start_ms is not None else coarse[1:]
    if start_ms is not None:
        coarse = [k for k in coarse if k.open_time >= start_ms]
    if end_ms is not None:
        coarse = [k for k in coarse if k.open_time <= end_ms]
    return coarse[:limit] if start_ms is not None else coarse[-limit:]


class StoreSource:
    """Klines as a store holds them (``db``: an SQLite file or a ``postgresql://`` URL), for
    one venue. Symbols are the stored ones, each ``TRADING`` (a store keeps no status), with
    assets from the name (:func:`split_assets`) unless ``assets`` gives them."""

    def __init__(
        self,
        db: str | Path,
        *,
        venue: str | Venue = "spot",
        assets: dict[str, tuple[str, str]] | None = None,
        contents_ttl_s: float = CONTENTS_TTL_S,
    ) -> None:
        self.db = db
        self._venue = venue_named(venue) if isinstance(venue, str) else venue
        self._assets = dict(assets or {})
        self._ttl = contents_ttl_s
        self._contents = StoreContents({}, {}, None)
        self._read_at = -float("inf")
        self._lock = asyncio.Lock()
        self._pool = ThreadPoolExecutor(STORE_READERS, thread_name_prefix="kline-rs serve")
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()

    @property
    def venue(self) -> Venue:
        return self._venue

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    async def refresh(self) -> None:
        if time.monotonic() - self._read_at < self._ttl:
            return
        async with self._lock:
            if time.monotonic() - self._read_at < self._ttl:
                return
            self._contents = await self._run(lambda: store_contents(self.db, self._venue.name))
            self._read_at = time.monotonic()

    def symbols(self) -> list[ServedSymbol]:
        out = []
        for symbol in sorted(self._contents.series):
            base, quote = self._assets.get(symbol) or split_assets(symbol)
            out.append(ServedSymbol(symbol, "TRADING", base, quote))
        return out

    def stored_intervals(self, symbol: str) -> tuple[str, ...]:
        """The intervals kept for ``symbol`` (as of the last refresh)."""
        return self._contents.series.get(symbol, ())

    async def klines(
        self,
        symbol: str,
        interval: str,
        start_ms: int | None,
        end_ms: int | None,
        limit: int,
        tz_offset: str | None,
    ) -> list[ServedKline]:
        await self.refresh()
        stored = self._contents.series.get(symbol)
        if not stored:
            raise SymbolNotServedError(f"{symbol}: no klines stored")
        store_tz = self._contents.tz_offset
        plan = plan_rollup(
            stored, interval, store_tz, tz_offset, self._contents.anchors.get(symbol)
        )
        if plan.finer == interval:
            lo, hi, first, last = window(start_ms, end_ms, limit)
            return await self._read(symbol, interval, lo, hi, first, last)
        return await self._rolled(symbol, plan, start_ms, end_ms, limit)

    def _connection(self) -> sqlite3.Connection | None:
        """The calling reader thread's connection to an SQLite store, kept (None: PostgreSQL,
        whose reads connect each time)."""
        if is_postgres_url(self.db):
            return None
        con: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if con is None:
            con = open_read_only(Path(self.db), check_same_thread=False)
            self._local.connection = con
            with self._connections_lock:
                self._connections.append(con)
        return con

    def _rows(
        self, symbol: str, interval: str, lo: int, hi: int, first: int | None, last: int | None
    ) -> tuple[list[Row], str | None]:
        con = self._connection()
        if con is None:
            return read_rows(
                self.db, self._venue.name, symbol, interval, lo, hi, first=first, last=last
            )
        try:
            return sqlite_rows(
                con, self._venue.name, symbol, interval, lo, hi, first=first, last=last
            )
        except sqlite3.Error as e:
            self._local.connection = None  # the next read connects afresh
            raise StorageError(f"{self.db}: {e}") from e

    async def _columns(
        self, symbol: str, interval: str, lo: int, hi: int, first: int | None, last: int | None
    ) -> dict[str, list[Any]]:
        def read() -> dict[str, list[Any]]:
            rows, tz = self._rows(symbol, interval, lo, hi, first, last)
            return served_columns(rows, tz, lo, hi, first=first, last=last)

        return await self._run(read)

    async def _read(
        self, symbol: str, interval: str, lo: int, hi: int, first: int | None, last: int | None
    ) -> list[ServedKline]:
        return served_klines(await self._columns(symbol, interval, lo, hi, first, last))

    async def _rolled(
        self, symbol: str, plan: RollupPlan, start_ms: int | None, end_ms: int | None, limit: int
    ) -> list[ServedKline]:
        async def read(lo: int, hi: int, first: int | None, last: int | None) -> Columns:
            return await self._columns(symbol, plan.finer, lo, hi, first, last)

        return await rolled_window(read, plan, start_ms, end_ms, limit)

    async def close(self) -> None:
        self._pool.shutdown(wait=True)
        with self._connections_lock:
            for con in self._connections:
                con.close()
            self._connections.clear()


__all__ = [
    "IntervalNotServedError",
    "KlineSource",
    "ServeError",
    "ServedKline",
    "ServedSymbol",
    "StoreSource",
    "SymbolNotServedError",
]
