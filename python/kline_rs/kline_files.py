"""Binance kline CSV files (what ``replay`` writes) read back as klines, and written again as
Parquet with the Arrow output's exact types.

Lines are parsed by the core (``parse_kline_rows``); a header line with Binance's column
names (``--header``) is skipped. Parquet columns are Binance's eleven (``ignore`` left out),
named as in :data:`~kline_rs.KLINE_DTYPE`: prices and base volumes ``decimal128(38, 8)``,
quote volumes ``decimal128(38, 16)``, times ``timestamp[ms|us, UTC]``, ``trades`` int64.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from kline_rs import _core
from kline_rs.klines import structured

#: The Binance columns of a kline CSV line, by their names in the Arrow output.
CSV_COLUMNS = (
    "open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume",
    "trades", "taker_buy_volume", "taker_buy_quote_volume",
)  # fmt: skip
#: Lines parsed and written at a time: bounds memory whatever the file's length.
CHUNK_LINES = 200_000


def pyarrow_parquet() -> tuple[Any, Any]:
    """``(pyarrow, pyarrow.parquet)``, or ImportError saying how to install them."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as e:
        raise ImportError(
            "Parquet output needs pyarrow: pip install pyarrow (or 'kline-rs[parquet]')"
        ) from e
    return pa, pq


def _chunks(path: Path, size: int) -> Iterator[npt.NDArray[np.void]]:
    header = _core.kline_csv_header()
    with open(path, encoding="ascii") as f:
        lines = (line.rstrip("\r\n") for line in f)
        first = True
        while chunk := list(islice(lines, size)):
            if first and chunk[0] == header:
                chunk = chunk[1:]
            first = False
            rows = [line.split(",") for line in chunk if line]
            if rows:
                yield structured(_core.parse_kline_rows(rows))


def read_kline_csv(path: str | os.PathLike[str]) -> npt.NDArray[np.void]:
    """A Binance kline CSV file (with or without a header) as a :data:`KLINE_DTYPE` array;
    trade ids are -1 and ``inexact_trades`` 0 (the file holds neither)."""
    from kline_rs.klines import KLINE_DTYPE

    parts = list(_chunks(Path(path), CHUNK_LINES))
    return np.concatenate(parts) if parts else np.empty(0, dtype=KLINE_DTYPE)


def kline_csv_to_parquet(
    csv_path: str | os.PathLike[str], parquet_path: str | os.PathLike[str]
) -> int:
    """Writes a Binance kline CSV file as Parquet (see the module); returns the rows."""
    from kline_rs.arrow import arrow_klines

    pa, pq = pyarrow_parquet()
    rows = 0
    writer: Any = None
    try:
        for klines in _chunks(Path(csv_path), CHUNK_LINES):
            table = pa.table(arrow_klines(klines)).select(list(CSV_COLUMNS))
            if writer is None:
                writer = pq.ParquetWriter(os.fspath(parquet_path), table.schema)
            writer.write_table(table)
            rows += len(klines)
        if writer is None:  # an empty file: the schema of an empty kline array
            from kline_rs.klines import KLINE_DTYPE

            empty = pa.table(arrow_klines(np.empty(0, dtype=KLINE_DTYPE), time_unit="ms"))
            pq.write_table(empty.select(list(CSV_COLUMNS)), os.fspath(parquet_path))
    finally:
        if writer is not None:
            writer.close()
    return rows
