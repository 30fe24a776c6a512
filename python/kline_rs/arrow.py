"""Klines as Arrow, polars and pandas tables: exact decimals, UTC times.

The table is built in Rust (``kline_core::arrow``) from a kline structured array
(:data:`~kline_rs.KLINE_DTYPE`, an engine batch, :func:`~kline_rs.read_klines`'s result) and
handed over through the Arrow PyCapsule interface, without a copy. Prices and base volumes are
``decimal128(38, 8)``, quote volumes ``decimal128(38, 16)``: sums stay exact. Open and close
times are ``timestamp[ms|us, UTC]``. pyarrow, polars and pandas are optional: each function
needs only its own library (``pip install kline-rs[polars]``, ``[arrow]``, ``[pandas]``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from kline_rs import _core

if TYPE_CHECKING:
    import pandas
    import polars
    import pyarrow

TimeUnit = Literal["ms", "us"]


def arrow_klines(
    klines: npt.NDArray[np.void], *, time_unit: TimeUnit | None = None
) -> _core.ArrowKlines:
    """The klines as an Arrow batch any PyCapsule reader takes (``pyarrow.table(…)``,
    ``polars.DataFrame(…)``, DuckDB, …). ``time_unit``: the times' unit (default: detected)."""
    names = klines.dtype.names
    if not names:
        raise TypeError(f"expected a structured array of klines, got dtype {klines.dtype}")
    # Contiguous columns: a field of a structured array is a strided view whose stride need
    # not be a multiple of its item size (a bool field makes rows 129 bytes).
    columns = [(name, np.ascontiguousarray(klines[name])) for name in names]
    return _core.kline_arrow(columns, time_unit=time_unit)


def _library(module: str, extra: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"{module} is not installed: pip install {module} (or kline-rs[{extra}])"
        ) from e


def to_arrow(klines: npt.NDArray[np.void], *, time_unit: TimeUnit | None = None) -> pyarrow.Table:
    """A ``pyarrow.Table`` of the klines (needs pyarrow)."""
    pa = _library("pyarrow", "arrow")
    table: pyarrow.Table = pa.table(arrow_klines(klines, time_unit=time_unit))
    return table


def to_polars(
    klines: npt.NDArray[np.void], *, time_unit: TimeUnit | None = None
) -> polars.DataFrame:
    """A polars DataFrame of the klines: ``Decimal`` columns, ``Datetime(…, "UTC")`` times
    (needs polars only)."""
    pl = _library("polars", "polars")
    frame: polars.DataFrame = pl.DataFrame(arrow_klines(klines, time_unit=time_unit))
    return frame


def to_pandas(
    klines: npt.NDArray[np.void], *, time_unit: TimeUnit | None = None
) -> pandas.DataFrame:
    """A pandas DataFrame of the klines: decimals as exact ``ArrowDtype(decimal128)`` columns,
    times as ``datetime64[…, UTC]`` (needs pandas and pyarrow)."""
    pa = _library("pyarrow", "pandas")
    pd = _library("pandas", "pandas")
    table = to_arrow(klines, time_unit=time_unit)

    def exact(t: pyarrow.DataType) -> Any:
        return pd.ArrowDtype(t) if pa.types.is_decimal(t) else None

    frame: pandas.DataFrame = table.to_pandas(types_mapper=exact)
    return frame


#: ccxt's OHLCV order and freqtrade's price/volume columns, by their names in the klines.
OHLCV = ("open", "high", "low", "close", "volume")


def _ohlcv_floats(klines: npt.NDArray[np.void], time_unit: str) -> pyarrow.Table:
    """open_time in ``time_unit`` (UTC) and open…volume as float64, from the Arrow table."""
    pa = _library("pyarrow", "arrow")
    table = to_arrow(klines)
    columns = {"open_time": table.column("open_time").cast(pa.timestamp(time_unit, tz="UTC"))}
    for name in OHLCV:
        # Through the exact text: Arrow's decimal → float64 cast is not correctly rounded
        # (62000.84 came out 62000.840000000004); its text → float64 parse is, as ccxt's float().
        columns[name] = table.column(name).cast(pa.string()).cast(pa.float64())
    out: pyarrow.Table = pa.table(columns)
    return out


def to_ccxt_ohlcv(klines: npt.NDArray[np.void]) -> list[list[float]]:
    """ccxt's OHLCV list, ``[[open ms, open, high, low, close, volume], …]``, oldest first:
    the time an int in ms (µs klines are cut to their ms), the rest floats as ccxt's
    ``fetch_ohlcv`` returns them. A float view, NOT exact (needs pyarrow)."""
    pa = _library("pyarrow", "arrow")
    table = _ohlcv_floats(klines, "ms")
    times = table.column("open_time").cast(pa.int64()).to_pylist()
    values = [table.column(name).to_pylist() for name in OHLCV]
    return [[t, *row] for t, *row in zip(times, *values, strict=True)]


def to_freqtrade(klines: npt.NDArray[np.void]) -> pandas.DataFrame:
    """A freqtrade-style candle DataFrame: columns ``date, open, high, low, close, volume``,
    ``date`` the open time as ``datetime64[ns, UTC]``, the rest float64, as freqtrade's
    ``ohlcv_to_dataframe`` makes them. A float view, NOT exact (needs pandas and pyarrow)."""
    _library("pandas", "pandas")
    table = _ohlcv_floats(klines, "ns").rename_columns(["date", *OHLCV])
    frame: pandas.DataFrame = table.to_pandas()
    return frame
