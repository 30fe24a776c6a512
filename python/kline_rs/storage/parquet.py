"""Stored klines out to one file, flat periods expanded: Parquet (exact values as decimal128)
or Binance's kline CSV, chosen by the file's extension."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from kline_rs._core import interval_name, kline_csv_line
from kline_rs.storage.base import (
    PRICE_DIGITS,
    QUOTE_DIGITS,
    VOLUME_DIGITS,
    StorageError,
    fixed_text,
)
from kline_rs.storage.read import STORED_DTYPE, read_klines, stored_series
from kline_rs.times import TimeLike

#: Decimal digits of each exact column (38: the most decimal128 holds; 22 integer digits left
#: for quote volumes at 1e-16).
PRECISION = 38
DECIMALS = {
    "open": PRICE_DIGITS, "high": PRICE_DIGITS, "low": PRICE_DIGITS, "close": PRICE_DIGITS,
    "volume": VOLUME_DIGITS, "quote_volume": QUOTE_DIGITS, "taker_buy_volume": VOLUME_DIGITS,
    "taker_buy_quote_volume": QUOTE_DIGITS, "quote_volume_exact": QUOTE_DIGITS,
}  # fmt: skip


class ExportFormatError(StorageError):
    """The output file's extension names no format, or the format cannot hold the selection."""


def export_format(out_path: str | Path) -> str:
    """``"parquet"`` for ``*.parquet``, ``"csv"`` for ``*.csv``; anything else is refused."""
    suffix = Path(out_path).suffix.lower()
    formats = {".parquet": "parquet", ".csv": "csv"}
    if suffix not in formats:
        raise ExportFormatError(
            f"{out_path}: unknown extension {suffix or '(none)'!r}: use .parquet (exact "
            "decimals) or .csv (Binance's kline CSV)"
        )
    return formats[suffix]


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as e:
        raise ImportError("Parquet export needs pyarrow: pip install 'kline_rs[parquet]'") from e
    return pa, pq


def _schema(pa: Any) -> Any:
    """symbol, interval, then :data:`STORED_DTYPE`'s columns in its order."""
    fields = [("symbol", pa.string()), ("interval", pa.string())]
    for name in STORED_DTYPE.names or ():
        if name.endswith("_time"):
            kind = pa.timestamp("ms", tz="UTC")
        elif name in DECIMALS:
            kind = pa.decimal128(PRECISION, DECIMALS[name])
        else:
            kind = pa.bool_() if name == "gap" else pa.int64()
        fields.append((name, kind))
    return pa.schema(fields)


def _table(pa: Any, schema: Any, symbol: str, interval: str, got: npt.NDArray[np.void]) -> Any:
    columns: dict[str, Any] = {"symbol": [symbol] * len(got), "interval": [interval] * len(got)}
    for name in STORED_DTYPE.names or ():
        if name in DECIMALS:
            # Decimal(text) is exact whatever the size (arithmetic would round at 28 digits).
            columns[name] = [Decimal(fixed_text(int(v), DECIMALS[name])) for v in got[name]]
        else:
            columns[name] = got[name]
    try:
        return pa.table({f.name: pa.array(columns[f.name], type=f.type) for f in schema})
    except pa.ArrowInvalid as e:
        raise StorageError(f"{symbol} {interval}: a value does not fit in Parquet ({e})") from e


def export_parquet(
    db: str | Path,
    out_path: str | Path,
    *,
    venue: str = "spot",
    symbols: Iterable[str] | None = None,
    intervals: Iterable[str] | None = None,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
) -> int:
    """Writes the stored klines of ``venue`` with ``start <= open_time < end`` (all series, or
    those of ``symbols`` and ``intervals``) to one Parquet file; returns the rows written.

    Prices and volumes are ``decimal128(38, 8)``, quote volumes ``decimal128(38, 16)``: the
    stored values exactly. Times are UTC timestamps in ms.
    """
    pa, pq = _pyarrow()
    schema = _schema(pa)
    written = 0
    with pq.ParquetWriter(str(out_path), schema) as out:
        for symbol, interval in _selected(db, venue, symbols, intervals):
            got = read_klines(db, symbol, interval, start, end, venue=venue)
            if len(got):
                out.write_table(_table(pa, schema, symbol, interval, got))
                written += len(got)
    return written


def _selected(
    db: str | Path, venue: str, symbols: Iterable[str] | None, intervals: Iterable[str] | None
) -> list[tuple[str, str]]:
    want_symbols = None if symbols is None else set(symbols)
    want_intervals = None if intervals is None else {interval_name(i) for i in intervals}
    return [
        (s, i)
        for s, i in stored_series(db, venue)
        if (want_symbols is None or s in want_symbols)
        and (want_intervals is None or i in want_intervals)
    ]


def csv_line(k: np.void) -> str:
    """One stored kline as a line of Binance's kline CSV (the core's text), no newline."""
    return kline_csv_line(*(int(k[n]) for n in _CSV_FIELDS))


_CSV_FIELDS = (
    "open_time", "close_time", "open", "high", "low", "close", "volume", "quote_volume",
    "trades", "taker_buy_volume", "taker_buy_quote_volume",
)  # fmt: skip


def export_csv(
    db: str | Path,
    out_path: str | Path,
    *,
    venue: str = "spot",
    symbols: Iterable[str] | None = None,
    intervals: Iterable[str] | None = None,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
) -> int:
    """Writes the stored klines of one symbol and interval with ``start <= open_time < end``
    as Binance's kline CSV (no header, no symbol column: one series per file); returns the
    lines written."""
    series = _selected(db, venue, symbols, intervals)
    if len(series) > 1:
        raise ExportFormatError(
            f"{out_path}: a kline CSV holds one symbol and interval and {len(series)} are "
            "stored: choose one with --symbols and --intervals, or write .parquet"
        )
    written = 0
    with open(out_path, "w", encoding="ascii", newline="") as out:
        for symbol, interval in series:
            got = read_klines(db, symbol, interval, start, end, venue=venue)
            out.writelines(csv_line(k) + "\n" for k in got)
            written += len(got)
    return written


def export_klines(db: str | Path, out_path: str | Path, **options: Any) -> int:
    """:func:`export_parquet` or :func:`export_csv`, by ``out_path``'s extension."""
    if export_format(out_path) == "csv":
        return export_csv(db, out_path, **options)
    return export_parquet(db, out_path, **options)
