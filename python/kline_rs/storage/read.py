"""Reading stored klines back: numpy structured arrays, flat runs expanded into periods."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from kline_rs._core import KlineError, flat_periods, interval_ms, interval_name
from kline_rs.klines import KLINE_DTYPE
from kline_rs.storage.base import (
    PRICE_DIGITS,
    QUOTE_DIGITS,
    ROW_COLUMNS,
    VOLUME_DIGITS,
    Row,
    StorageError,
    is_postgres_url,
    parse_fixed_text,
    row_from_db,
)
from kline_rs.times import TimeLike, to_ms

#: A stored kline: :data:`KLINE_DTYPE` plus its revision and whether it covers a feed gap.
STORED_DTYPE = np.dtype([*KLINE_DTYPE.descr, ("revision", "<i8"), ("gap", "?")])

#: The most klines one read expands into (flat runs included); past it the read says to
#: narrow the range instead of filling memory.
MAX_READ_KLINES = 10_000_000
#: The most (symbol, interval) series listed from one store.
MAX_SERIES = 1_000_000


#: (open times, close times) of the periods a stored row holds.
Span = tuple[list[int], list[int]]


def _flat_span(
    interval: str, open_time: int, close_time: int, tz_offset: str | None,
    lo: int, hi: int, last: int | None,
) -> Span:  # fmt: skip
    try:
        opens, closes = flat_periods(
            interval, open_time, close_time, lo, hi, tz_offset=tz_offset, last=last
        )
    except KlineError as e:
        raise StorageError(f"{interval} flat run from {open_time}: {e}") from e
    return opens.tolist(), closes.tolist()


def periods(
    interval: str,
    open_time: int,
    close_time: int,
    tz_offset: str | None = None,
    *,
    lo: int = -(2**62),
    hi: int = 2**62,
    last: int | None = None,
) -> list[tuple[int, int]]:
    """(open, close) of each period of a flat run ``open_time .. close_time`` that opens in
    ``[lo, hi)`` (the latest ``last`` of them if given): filtered by the core's grid before
    anything is expanded."""
    opens, closes = _flat_span(interval, open_time, close_time, tz_offset, lo, hi, last)
    return list(zip(opens, closes, strict=True))


def row_spans(
    rows: list[Row],
    tz_offset: str | None,
    lo: int,
    hi: int,
    *,
    first: int | None = None,
    last: int | None = None,
) -> list[tuple[Row, Span]]:
    """Each row with the periods it contributes: those opening in ``[lo, hi)``, only the
    earliest ``first`` or the latest ``last`` overall if given. A flat run is expanded only
    as far as asked."""
    if first is not None and last is not None:
        raise ValueError("give first or last, not both")
    out: list[tuple[Row, Span]] = []
    total = 0
    for r in rows if first is not None else reversed(rows):
        count = first if first is not None else last
        want = None if count is None else count - total
        if want is not None and want <= 0:
            break
        if r.flat and want is not None and first is not None:
            # The earliest `want` periods of the run end before `want` of its longest periods
            # have passed from where the range starts in it.
            reach = max(lo, r.open_time) + want * interval_ms(r.interval)[1]
            opens, closes = _flat_span(
                r.interval, r.open_time, r.close_time, tz_offset, lo, min(hi, reach), None
            )
            span = (opens[:want], closes[:want])
        elif r.flat:
            span = _flat_span(r.interval, r.open_time, r.close_time, tz_offset, lo, hi, want)
        elif lo <= r.open_time < hi:
            span = ([r.open_time], [r.close_time])
        else:
            span = ([], [])
        total += len(span[0])
        if total > MAX_READ_KLINES:
            raise StorageError(
                f"{r.symbol} {r.interval}: more than {MAX_READ_KLINES:,} klines in the range "
                "asked for; give a narrower start/end (or last=)"
            )
        out.append((r, span))
    if first is None:
        out.reverse()
    return out


def to_array(
    rows: list[Row],
    tz_offset: str | None = None,
    *,
    lo: int = -(2**62),
    hi: int = 2**62,
    first: int | None = None,
    last: int | None = None,
) -> npt.NDArray[np.void]:
    """Stored rows → :data:`STORED_DTYPE`, one element per period opening in ``[lo, hi)``
    (flat runs expanded, only as far as asked)."""
    spans = row_spans(rows, tz_offset, lo, hi, first=first, last=last)
    arr = np.empty(sum(len(opens) for _, (opens, _) in spans), dtype=STORED_DTYPE)
    i = 0
    for r, (opens, closes) in spans:
        if not len(opens):
            continue
        part = arr[i : i + len(opens)]
        i += len(opens)
        part["open_time"], part["close_time"] = opens, closes
        for name, text, digits in [
            ("open", r.open, PRICE_DIGITS), ("high", r.high, PRICE_DIGITS),
            ("low", r.low, PRICE_DIGITS), ("close", r.close, PRICE_DIGITS),
            ("volume", r.volume, VOLUME_DIGITS), ("quote_volume", r.quote_volume, QUOTE_DIGITS),
            ("taker_buy_volume", r.taker_buy_volume, VOLUME_DIGITS),
            ("taker_buy_quote_volume", r.taker_buy_quote_volume, QUOTE_DIGITS),
            ("quote_volume_exact", r.quote_volume_exact or r.quote_volume, QUOTE_DIGITS),
        ]:  # fmt: skip
            part[name] = parse_fixed_text(text, digits)
        for name, value in [
            ("trades", r.trades), ("first_trade_id", r.first_trade_id),
            ("last_trade_id", r.last_trade_id), ("revision", r.revision), ("gap", r.gap),
            ("inexact_trades", r.inexact_trades),
        ]:  # fmt: skip
            part[name] = value
    return arr


def read_klines(
    db: str | Path,
    symbol: str,
    interval: str,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    *,
    venue: str = "spot",
    first: int | None = None,
    last: int | None = None,
) -> npt.NDArray[np.void]:
    """Stored klines of ``symbol``/``interval`` with ``start <= open_time < end`` (ms, ISO
    text such as ``"2024-01-02T10:00"`` or a ``datetime``, UTC unless an offset is given; None:
    unbounded), oldest first, as :data:`STORED_DTYPE` with flat periods expanded; with
    ``first`` / ``last``, only the earliest / latest that many of them. Flat runs are cut to
    the range before they are expanded; a range of more than :data:`MAX_READ_KLINES` klines
    is refused.

    ``db`` is an SQLite file written by :class:`~kline_rs.storage.SqliteSink`, or a
    ``postgresql://`` URL.
    """
    interval = interval_name(interval)
    lo = -(2**62) if start is None else to_ms(start)
    hi = 2**62 if end is None else to_ms(end)
    rows, tz = read_rows(db, venue, symbol, interval, lo, hi, first=first, last=last)
    return to_array(rows, tz, lo=lo, hi=hi, first=first, last=last)


def read_rows(
    db: str | Path,
    venue: str,
    symbol: str,
    interval: str,
    lo: int,
    hi: int,
    *,
    first: int | None = None,
    last: int | None = None,
) -> tuple[list[Row], str | None]:
    """The stored rows holding periods of one series that open in ``[lo, hi)`` (the row holding
    ``lo`` may start before it: a flat run), oldest first, and the store's tz_offset. With
    ``first`` / ``last``: only as many rows as can hold the earliest / latest that many
    periods (each row holds at least one). Expand them with :func:`row_spans`."""
    if first is not None and last is not None:
        raise ValueError("give first or last, not both")
    if is_postgres_url(db):
        from kline_rs.storage.postgres import fetch_rows

        return fetch_rows(str(db), venue, symbol, interval, lo, hi, first=first, last=last)
    return _sqlite_rows(Path(db), venue, symbol, interval, lo, hi, first=first, last=last)


def open_read_only(path: Path, *, check_same_thread: bool = True) -> sqlite3.Connection:
    """A read-only connection to an existing SQLite store, or StorageError. Never creates a
    file (``mode=ro``; the path is quoted, so ``#``, ``?`` and ``%`` stay in it)."""
    if not path.is_file():
        raise StorageError(f"{path}: no such database")
    try:
        return sqlite3.connect(
            f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=10,
            check_same_thread=check_same_thread,
        )  # fmt: skip
    except sqlite3.Error as e:
        raise StorageError(f"{path}: {e}") from e


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[sqlite3.Connection]:
    """:func:`open_read_only` for one block; its errors as StorageError."""
    db = open_read_only(path)
    try:
        yield db
    except sqlite3.Error as e:
        raise StorageError(f"{path}: {e}") from e
    finally:
        db.close()


def _sqlite_rows(
    path: Path,
    venue: str,
    symbol: str,
    interval: str,
    lo: int,
    hi: int,
    *,
    first: int | None = None,
    last: int | None = None,
) -> tuple[list[Row], str | None]:
    with read_only(path) as db:
        return sqlite_rows(db, venue, symbol, interval, lo, hi, first=first, last=last)


def sqlite_rows(
    db: sqlite3.Connection,
    venue: str,
    symbol: str,
    interval: str,
    lo: int,
    hi: int,
    *,
    first: int | None = None,
    last: int | None = None,
) -> tuple[list[Row], str | None]:
    """:func:`read_rows` on an open SQLite connection (a reader that keeps one)."""
    cols = ", ".join(ROW_COLUMNS)
    key = "venue = ? AND symbol = ? AND interval = ?"
    # The row holding `lo` may start before it (a flat run): start from the last row <= lo.
    start = db.execute(
        f"SELECT max(open_time) FROM klines WHERE {key} AND open_time <= ?",
        (venue, symbol, interval, lo),
    ).fetchone()[0]
    # Every row holds at least one period: the latest `last` rows hold the latest klines;
    # the earliest `first` + 1 the earliest (the row before `lo` may hold none of them).
    limit: tuple[int, ...] = ()
    order = "ORDER BY open_time"
    if last is not None:
        order, limit = "ORDER BY open_time DESC LIMIT ?", (max(last, 0),)
    elif first is not None:
        order, limit = "ORDER BY open_time LIMIT ?", (max(first, 0) + 1,)
    got = db.execute(
        f"SELECT {cols} FROM klines WHERE {key} AND open_time >= ? AND open_time < ? {order}",
        (venue, symbol, interval, lo if start is None else start, hi, *limit),
    ).fetchall()
    tz = db.execute("SELECT value FROM meta WHERE key = 'tz_offset'").fetchone()
    if last is not None:
        got.reverse()
    return [row_from_db(r) for r in got], (tz[0] if tz else None)


@dataclass(frozen=True)
class StoreContents:
    """What a store holds for one venue: its series, its symbols' 3d anchors and the offset
    its 1d-and-up klines were made at."""

    #: symbol → the intervals stored for it.
    series: dict[str, tuple[str, ...]]
    anchors: dict[str, int]
    tz_offset: str | None


def store_contents(db: str | Path, venue: str = "spot") -> StoreContents:
    """The series, 3d anchors and tz_offset stored for ``venue`` (SQLite file or PostgreSQL
    URL)."""
    if is_postgres_url(db):
        from kline_rs.storage.postgres import fetch_contents

        pairs, anchors, tz = fetch_contents(str(db), venue)
    else:
        with read_only(Path(db)) as con:
            pairs = _sqlite_series(con, venue)
            anchors = dict(
                con.execute("SELECT symbol, anchor_3d_ms FROM anchors WHERE venue = ?", (venue,))
            )
            got = con.execute("SELECT value FROM meta WHERE key = 'tz_offset'").fetchone()
            tz = got[0] if got else None
    series: dict[str, tuple[str, ...]] = {}
    for symbol, interval in pairs:
        series[symbol] = (*series.get(symbol, ()), interval)
    return StoreContents(series, {str(s): int(t) for s, t in anchors.items()}, tz)


def stored_series(db: str | Path, venue: str = "spot") -> list[tuple[str, str]]:
    """The (symbol, interval) pairs stored for ``venue`` in an SQLite file or PostgreSQL URL."""
    if is_postgres_url(db):
        from kline_rs.storage.postgres import fetch_series

        return fetch_series(str(db), venue)
    with read_only(Path(db)) as con:
        return _sqlite_series(con, venue)


def _sqlite_series(con: sqlite3.Connection, venue: str) -> list[tuple[str, str]]:
    """Distinct (symbol, interval) by one primary-key seek each (a skip scan): DISTINCT would
    read every row of the table."""
    out: list[tuple[str, str]] = []
    after: tuple[str, str] = ("", "")
    while len(out) < MAX_SERIES:
        got = con.execute(
            "SELECT symbol, interval FROM klines WHERE venue = ? AND (symbol, interval) > (?, ?) "
            "ORDER BY symbol, interval LIMIT 1",
            (venue, *after),
        ).fetchone()
        if got is None:
            return out
        after = (str(got[0]), str(got[1]))
        out.append(after)
    raise StorageError(f"more than {MAX_SERIES:,} (symbol, interval) series stored for {venue}")
