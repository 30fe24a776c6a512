"""Reading stored klines back: numpy structured arrays, flat runs expanded into periods."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

from kline_rs._core import KlineError, flat_periods, interval_name
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


Span = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]


def _flat_span(
    interval: str, open_time: int, close_time: int, tz_offset: str | None,
    lo: int, hi: int, last: int | None,
) -> Span:  # fmt: skip
    try:
        return flat_periods(interval, open_time, close_time, lo, hi, tz_offset=tz_offset, last=last)
    except KlineError as e:
        raise StorageError(f"{interval} flat run from {open_time}: {e}") from e


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
    return list(zip(opens.tolist(), closes.tolist(), strict=True))


def _spans(
    rows: list[Row], tz_offset: str | None, lo: int, hi: int, last: int | None
) -> list[tuple[Row, Span]]:
    """Each row with the periods it contributes: in ``[lo, hi)``, the latest ``last`` overall."""
    out: list[tuple[Row, Span]] = []
    total = 0
    for r in reversed(rows):
        want = None if last is None else last - total
        if want is not None and want <= 0:
            break
        if r.flat:
            span = _flat_span(r.interval, r.open_time, r.close_time, tz_offset, lo, hi, want)
        else:
            keep = lo <= r.open_time < hi
            span = (np.array([r.open_time][:keep], dtype=np.int64),
                    np.array([r.close_time][:keep], dtype=np.int64))  # fmt: skip
        total += len(span[0])
        if total > MAX_READ_KLINES:
            raise StorageError(
                f"{r.symbol} {r.interval}: more than {MAX_READ_KLINES:,} klines in the range "
                "asked for; give a narrower start/end (or last=)"
            )
        out.append((r, span))
    out.reverse()
    return out


def to_array(
    rows: list[Row],
    tz_offset: str | None = None,
    *,
    lo: int = -(2**62),
    hi: int = 2**62,
    last: int | None = None,
) -> npt.NDArray[np.void]:
    """Stored rows → :data:`STORED_DTYPE`, one element per period opening in ``[lo, hi)``
    (flat runs expanded, only as far as asked)."""
    spans = _spans(rows, tz_offset, lo, hi, last)
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
    last: int | None = None,
) -> npt.NDArray[np.void]:
    """Stored klines of ``symbol``/``interval`` with ``start <= open_time < end`` (ms, ISO
    text such as ``"2024-01-02T10:00"`` or a ``datetime``, UTC unless an offset is given; None:
    unbounded), oldest first, as :data:`STORED_DTYPE` with flat periods expanded; with
    ``last``, only the latest ``last`` of them. Flat runs are cut to the range before they are
    expanded; a range of more than :data:`MAX_READ_KLINES` klines is refused.

    ``db`` is an SQLite file written by :class:`~kline_rs.storage.SqliteSink`, or a
    ``postgresql://`` URL.
    """
    interval = interval_name(interval)
    lo = -(2**62) if start is None else to_ms(start)
    hi = 2**62 if end is None else to_ms(end)
    if is_postgres_url(db):
        from kline_rs.storage.postgres import fetch_rows

        rows, tz = fetch_rows(str(db), venue, symbol, interval, lo, hi, last=last)
    else:
        rows, tz = _sqlite_rows(Path(db), venue, symbol, interval, lo, hi, last)
    return to_array(rows, tz, lo=lo, hi=hi, last=last)


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection to an existing SQLite store; its errors as StorageError. Never
    creates a file (``mode=ro``; the path is quoted, so ``#``, ``?`` and ``%`` stay in it)."""
    if not path.is_file():
        raise StorageError(f"{path}: no such database")
    try:
        db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error as e:
        raise StorageError(f"{path}: {e}") from e
    try:
        yield db
    except sqlite3.Error as e:
        raise StorageError(f"{path}: {e}") from e
    finally:
        db.close()


def _sqlite_rows(
    path: Path, venue: str, symbol: str, interval: str, lo: int, hi: int, last: int | None = None
) -> tuple[list[Row], str | None]:
    cols = ", ".join(ROW_COLUMNS)
    key = "venue = ? AND symbol = ? AND interval = ?"
    with read_only(path) as db:
        # The row holding `lo` may start before it (a flat run): start from the last row <= lo.
        first = db.execute(
            f"SELECT max(open_time) FROM klines WHERE {key} AND open_time <= ?",
            (venue, symbol, interval, lo),
        ).fetchone()[0]
        # Every row holds at least one period: the latest `last` rows hold the latest klines.
        newest = "ORDER BY open_time DESC LIMIT ?" if last is not None else "ORDER BY open_time"
        got = db.execute(
            f"SELECT {cols} FROM klines WHERE {key} AND open_time >= ? AND open_time < ? {newest}",
            (venue, symbol, interval, lo if first is None else first, hi)
            + (() if last is None else (max(last, 0),)),
        ).fetchall()
        tz = db.execute("SELECT value FROM meta WHERE key = 'tz_offset'").fetchone()
    if last is not None:
        got.reverse()
    return [row_from_db(r) for r in got], (tz[0] if tz else None)
