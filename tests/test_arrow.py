"""Klines as Arrow, polars and pandas (issue 13, section 5): exact decimal columns, UTC times,
the values checked against Binance's own kline file text."""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import kline_rs
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from kline_rs.engine import CLOSED_DTYPE
from kline_rs.storage.read import STORED_DTYPE

#: Binance's kline CSV columns we carry, by their position in the file.
CSV_FIELDS = {
    "open_time": 0, "open": 1, "high": 2, "low": 3, "close": 4, "volume": 5, "close_time": 6,
    "quote_volume": 7, "trades": 8, "taker_buy_volume": 9, "taker_buy_quote_volume": 10,
}  # fmt: skip


def real_minutes(data: Path) -> tuple[np.ndarray, dict[int, list[str]]]:
    """1 000 real BTCUSDT aggTrades of 2020-01-02 aggregated, and Binance's own 1m rows of that
    day (by open time) for the minutes they cover whole."""
    trades = json.loads((data / "btcusdt_aggtrades_202790190.json").read_text())
    col = {k: [t[k] for t in trades] for k in "aflm"}
    result = kline_rs.aggregate(
        agg_id=col["a"],
        price=[kline_rs.parse_fixed8(t["p"]) for t in trades],
        qty=[kline_rs.parse_fixed8(t["q"]) for t in trades],
        first_id=col["f"],
        last_id=col["l"],
        time=[t["T"] for t in trades],
        buyer_is_maker=col["m"],
        intervals=["1m"],
    )
    with zipfile.ZipFile(data / "BTCUSDT-1m-2020-01-02.zip") as z:
        rows = [line.split(",") for line in z.read(z.namelist()[0]).decode().splitlines()]
    klines = result.klines["1m"][1:-1]  # the first and last minutes are partial
    assert len(klines) == 7
    return klines, {int(r[0]): r for r in rows}


def as_text(value: object) -> str:
    if isinstance(value, datetime):
        return str(int(value.timestamp() * 1000))
    return str(value)


def test_polars_pandas_and_arrow_carry_binances_text_exactly(binance_data: Path) -> None:
    klines, official = real_minutes(binance_data)
    frames = {
        "polars": kline_rs.to_polars(klines).to_dicts(),
        "pandas": kline_rs.to_pandas(klines).to_dict("records"),
        "arrow": kline_rs.to_arrow(klines).to_pylist(),
    }
    for name, rows in frames.items():
        assert len(rows) == len(klines), name
        for row in rows:
            want = official[int(as_text(row["open_time"]))]
            for field, i in CSV_FIELDS.items():
                got = row[field]
                if field.startswith(("quote", "taker_buy_quote")):
                    got = Decimal(got).quantize(Decimal("1e-8"))  # Binance prints 8 decimals
                assert as_text(got) == want[i], (name, field, row["open_time"])
            assert row["first_trade_id"] <= row["last_trade_id"]
    total = sum(Decimal(official[int(k["open_time"])][5]) for k in klines)
    assert kline_rs.to_polars(klines)["volume"].sum() == total
    assert kline_rs.to_pandas(klines)["volume"].sum() == total
    assert pa.compute.sum(kline_rs.to_arrow(klines)["volume"]).as_py() == total


def test_times_are_utc_datetimes_and_decimals_keep_their_scale(binance_data: Path) -> None:
    klines, _ = real_minutes(binance_data)
    df = kline_rs.to_polars(klines)
    assert df.schema["open_time"] == pl.Datetime("ms", "UTC")
    assert df.schema["close_time"] == pl.Datetime("ms", "UTC")
    assert df.schema["open"] == pl.Decimal(38, 8)
    assert df.schema["quote_volume"] == pl.Decimal(38, 16)
    assert df.schema["trades"] == pl.Int64
    first = df["open_time"][0]
    assert first == datetime.fromtimestamp(int(klines["open_time"][0]) / 1000, UTC)
    pdf = kline_rs.to_pandas(klines)
    assert str(pdf["open_time"].dtype) == "datetime64[ms, UTC]"
    assert isinstance(pdf["volume"].dtype, pd.ArrowDtype)
    assert pa.types.is_decimal(pdf["volume"].dtype.pyarrow_dtype)
    table = kline_rs.to_arrow(klines)
    assert table.schema.field("close_time").type == pa.timestamp("ms", tz="UTC")
    assert table.schema.field("taker_buy_quote_volume").type == pa.decimal128(38, 16)


def test_volumes_past_64_bits_stay_exact() -> None:
    n, qty = 4, 9 * 10**18 - 1  # four trades of ~9e10 coins: past 2**63 at 1e-8
    t = 1_700_000_000_000 + np.arange(n) * 1_000
    ids = np.arange(1, n + 1)
    agg = kline_rs.aggregate(
        agg_id=ids, price=np.full(n, 3), qty=np.full(n, qty), first_id=ids, last_id=ids,
        time=t, buyer_is_maker=np.zeros(n, dtype=bool),
    )  # fmt: skip
    (k,) = agg.klines["1m"]
    assert int(k["volume"]) == n * qty > 2**63
    df = kline_rs.to_polars(agg.klines["1m"])
    assert df["volume"][0] == Decimal(n * qty).scaleb(-8)
    per_trade = 3 * qty // 10**8 * 10**8  # each p·q truncated to 8 decimals (spot's rule)
    assert df["quote_volume"][0] == Decimal(n * per_trade).scaleb(-16)
    assert df["quote_volume_exact"][0] == Decimal(n * qty * 3).scaleb(-16)


def test_microsecond_klines_keep_their_unit() -> None:
    t_us = 1_735_689_600_000_000 + np.arange(3) * 20_000_000  # 2025-01-01, µs
    ids = np.arange(1, 4)
    agg = kline_rs.aggregate(
        agg_id=ids, price=np.full(3, 10**8), qty=np.full(3, 10**8), first_id=ids, last_id=ids,
        time=t_us, buyer_is_maker=np.zeros(3, dtype=bool),
    )  # fmt: skip
    df = kline_rs.to_polars(agg.klines["1m"])
    assert df.schema["open_time"] == pl.Datetime("us", "UTC")
    assert df["close_time"][0] == datetime(2025, 1, 1, 0, 0, 59, 999999, tzinfo=UTC)


def test_engine_and_stored_dtypes_carry_names_revisions_and_flags() -> None:
    for dtype in (CLOSED_DTYPE, STORED_DTYPE):
        rows = np.zeros(2, dtype=dtype)
        rows["open_time"] = [0, 60_000]
        rows["close_time"] = rows["open_time"] + 59_999
        rows["volume"] = [10**20, 1]
        for name in ("quote_volume", "taker_buy_volume", "taker_buy_quote_volume",
                     "quote_volume_exact"):  # fmt: skip
            rows[name] = 0
        if "symbol" in (dtype.names or ()):
            rows["symbol"] = ["BTCUSDT", "ETHUSDT"]
            rows["interval"] = "1m"
        rows["gap"] = [False, True]
        rows["revision"] = [0, 2]
        df = kline_rs.to_polars(rows)
        assert df["volume"].to_list() == [Decimal(10**12), Decimal("0.00000001")]
        assert df["gap"].to_list() == [False, True]
        assert df["revision"].to_list() == [0, 2]
        if "symbol" in df.columns:
            assert df["symbol"].to_list() == ["BTCUSDT", "ETHUSDT"]


def test_what_does_not_fit_says_which_column_and_row() -> None:
    rows = np.zeros(2, dtype=kline_rs.KLINE_DTYPE)
    for name in ("volume", "quote_volume", "taker_buy_volume", "taker_buy_quote_volume",
                 "quote_volume_exact"):  # fmt: skip
        rows[name] = 0
    rows["quote_volume"] = [0, 10**38]
    with pytest.raises(ValueError, match=r"column quote_volume, row 1: .* decimal128\(38\)"):
        kline_rs.to_arrow(rows)
    with pytest.raises(TypeError, match="structured array"):
        kline_rs.arrow_klines(np.zeros(3))
    arrow = kline_rs.arrow_klines(rows[:1])
    assert len(arrow) == 1 and arrow.column_names[:2] == ["open_time", "close_time"]


def test_a_strided_column_is_refused_not_misread() -> None:
    rows = np.zeros(2, dtype=STORED_DTYPE)  # 129-byte rows: a field's stride is not 8·k
    rows["revision"] = [0, 2]
    with pytest.raises(ValueError, match="revision: expected a contiguous 1-d int64 array"):
        kline_rs._core.kline_arrow([("revision", rows["revision"])])
    batch = kline_rs._core.kline_arrow([("revision", np.ascontiguousarray(rows["revision"]))])
    assert pl.DataFrame(batch)["revision"].to_list() == [0, 2]
