"""Reading stored klines back: numpy structured arrays, flat runs expanded into periods."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import numpy.typing as npt

from kline_rs._core import interval_name
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

#: A stored kline: :data:`KLINE_DTYPE` plus its revision and whether it covers a feed gap.
STORED_DTYPE = np.dtype([*KLINE_DTYPE.descr, ("revision", "<i8"), ("gap", "?")])

UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def offset_ms(tz_offset: str | None) -> int:
    """``"+08:00"`` → 28 800 000."""
    if not tz_offset:
        return 0
    sign = -1 if tz_offset.startswith("-") else 1
    hours, _, minutes = tz_offset.lstrip("+-").partition(":")
    return sign * (int(hours) * 3_600_000 + int(minutes or 0) * 60_000)


def period_starts(interval: str, start: int, end: int, tz_offset_ms: int = 0) -> Iterator[int]:
    """Open times of the periods of ``interval`` from ``start`` (a period's open) to ``end``
    (inclusive, a close time)."""
    if interval.endswith("M"):
        months = int(interval[:-1] or 1)
        t = start
        while t <= end:
            yield t
            local = EPOCH + timedelta(milliseconds=t + tz_offset_ms)
            year, month = divmod(local.month - 1 + months, 12)
            following = datetime(local.year + year, month + 1, 1, tzinfo=timezone.utc)
            t = (following - EPOCH) // timedelta(milliseconds=1) - tz_offset_ms
        return
    step = int(interval[:-1]) * UNIT_MS[interval[-1]]
    yield from range(start, end + 1, step)


def periods(
    interval: str, open_time: int, close_time: int, tz_offset_ms: int = 0
) -> Iterator[tuple[int, int]]:
    """(open, close) of each period of a flat run ``open_time .. close_time``."""
    starts = list(period_starts(interval, open_time, close_time, tz_offset_ms))
    for a, b in zip(starts, [*starts[1:], close_time + 1], strict=True):
        yield a, b - 1


def _expand(row: Row, tz_offset_ms: int) -> Iterator[tuple[int, int]]:
    """(open, close) of each period a stored row covers."""
    if row.flat:
        yield from periods(row.interval, row.open_time, row.close_time, tz_offset_ms)
    else:
        yield row.open_time, row.close_time


def to_array(rows: list[Row], tz_offset_ms: int = 0) -> npt.NDArray[np.void]:
    """Stored rows → :data:`STORED_DTYPE`, one element per period (flat runs expanded)."""
    out = []
    for r in rows:
        prices = [parse_fixed_text(v, PRICE_DIGITS) for v in (r.open, r.high, r.low, r.close)]
        vol = parse_fixed_text(r.volume, VOLUME_DIGITS)
        quote = parse_fixed_text(r.quote_volume, QUOTE_DIGITS)
        tvol = parse_fixed_text(r.taker_buy_volume, VOLUME_DIGITS)
        tquote = parse_fixed_text(r.taker_buy_quote_volume, QUOTE_DIGITS)
        for a, b in _expand(r, tz_offset_ms):
            out.append(
                (a, b, *prices, vol, quote, r.trades, tvol, tquote,
                 r.first_trade_id, r.last_trade_id, r.revision, r.gap)
            )  # fmt: skip
    arr = np.empty(len(out), dtype=STORED_DTYPE)
    for i, values in enumerate(out):
        arr[i] = values
    return arr


def read_klines(
    db: str | Path,
    symbol: str,
    interval: str,
    start: int | None = None,
    end: int | None = None,
    *,
    venue: str = "spot",
) -> npt.NDArray[np.void]:
    """Stored klines of ``symbol``/``interval`` with ``start <= open_time < end`` (ms; None:
    unbounded), oldest first, as :data:`STORED_DTYPE` with flat periods expanded.

    ``db`` is an SQLite file written by :class:`~kline_rs.storage.SqliteSink`, or a
    ``postgresql://`` URL.
    """
    interval = interval_name(interval)
    lo = -(2**62) if start is None else start
    hi = 2**62 if end is None else end
    if is_postgres_url(db):
        from kline_rs.storage.postgres import fetch_rows

        rows, tz = fetch_rows(str(db), venue, symbol, interval, lo, hi)
    else:
        rows, tz = _sqlite_rows(Path(db), venue, symbol, interval, lo, hi)
    got = to_array(rows, offset_ms(tz))
    if len(got):
        got = got[(got["open_time"] >= lo) & (got["open_time"] < hi)]
    return got


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection to an existing SQLite store; its errors as StorageError."""
    if not path.exists():
        raise StorageError(f"{path}: no such database")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error as e:
        raise StorageError(f"{path}: {e}") from e
    try:
        yield db
    except sqlite3.Error as e:
        raise StorageError(f"{path}: {e}") from e
    finally:
        db.close()


def _sqlite_rows(
    path: Path, venue: str, symbol: str, interval: str, lo: int, hi: int
) -> tuple[list[Row], str | None]:
    cols = ", ".join(ROW_COLUMNS)
    key = "venue = ? AND symbol = ? AND interval = ?"
    with read_only(path) as db:
        # The row holding `lo` may start before it (a flat run): start from the last row <= lo.
        first = db.execute(
            f"SELECT max(open_time) FROM klines WHERE {key} AND open_time <= ?",
            (venue, symbol, interval, lo),
        ).fetchone()[0]
        got = db.execute(
            f"SELECT {cols} FROM klines WHERE {key} AND open_time >= ? AND open_time < ? "
            "ORDER BY open_time",
            (venue, symbol, interval, lo if first is None else first, hi),
        ).fetchall()
        tz = db.execute("SELECT value FROM meta WHERE key = 'tz_offset'").fetchone()
    return [row_from_db(r) for r in got], (tz[0] if tz else None)
