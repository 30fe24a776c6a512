"""Parquet export: every stored period, flat runs expanded, exact values; SQLite and Postgres."""

from __future__ import annotations

import asyncio
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

import kline_rs
import numpy as np
import numpy.typing as npt
import pytest
from kline_rs.engine import Engine
from kline_rs.storage import STORED_DTYPE, open_sink, read_klines
from kline_rs.storage.parquet import export_parquet, stored_series

pa = pytest.importorskip("pyarrow", reason="pyarrow is not installed")
pq = pytest.importorskip("pyarrow.parquet")

#: The server fixtures, registered once (a session-wide server shared by all modules).
pytest_plugins = ["postgres_server"]

T0 = 1_577_836_800_000
SCALES = {
    "open": 8, "high": 8, "low": 8, "close": 8, "volume": 8, "quote_volume": 16,
    "taker_buy_volume": 8, "taker_buy_quote_volume": 16, "quote_volume_exact": 16,
}  # fmt: skip
#: A trade whose quote (price times qty, at 1e-16) has 33 digits: more than a float or the default
#: 28-digit Decimal context holds exactly.
HUGE_QTY = 9_123_456_789_012_345_678


def engine_records() -> npt.NDArray[np.void]:
    """Two symbols, 1m/5m/1h, quiet hours (flat runs), one huge trade."""
    clock = kline_rs.ManualClock(0)
    with Engine(["1m", "5m", "1h"], partitions=1, clock=clock, max_ahead_ms=None) as engine:
        for n, symbol in enumerate(("AAA", "BBB")):
            engine.add_symbol(symbol)
            ids = np.arange(1, 41)
            t = T0 + ids * 9000 + n * 1000
            t[20:] += 2 * 3_600_000
            qty = ids * 1000
            qty[-1] = HUGE_QTY
            price = 123_456_78901234 + ids * (n + 1)
            engine.push_trades(
                symbol,
                kline_rs.trades(
                    agg_id=ids,
                    price=price,
                    qty=qty,
                    first_id=ids,
                    last_id=ids,
                    time=t,
                    buyer_is_maker=ids % 3 == 0,
                ),
            )
        clock.set(T0 + 5 * 3_600_000)
        engine.sync()
        return engine.poll_records().klines


def store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An SQLite file or a PostgreSQL URL holding :func:`engine_records`."""
    target = (
        str(tmp_path / "k.sqlite") if kind == "sqlite" else request.getfixturevalue("postgres_url")
    )

    async def write() -> None:
        sink = open_sink(target)
        await sink.open()
        await sink.write(engine_records(), None)
        await sink.close()

    asyncio.run(write())
    return target


def unscaled(value: Decimal, scale: int) -> int:
    with localcontext() as ctx:
        ctx.prec = 80
        exact = value.scaleb(scale)
    assert exact == exact.to_integral_value()
    return int(exact)


def assert_matches(table: Any, want: npt.NDArray[np.void]) -> None:
    """The Parquet rows are ``want`` (read_klines' array), column for column, exactly."""
    assert table.num_rows == len(want)
    for name in STORED_DTYPE.names or ():
        column = table.column(name)
        if name in SCALES:
            assert column.type == pa.decimal128(38, SCALES[name])
            got: list[Any] = [unscaled(v, SCALES[name]) for v in column.to_pylist()]
        elif name.endswith("_time"):
            assert column.type == pa.timestamp("ms", tz="UTC")
            got = column.cast(pa.int64()).to_pylist()
        else:
            got = column.to_pylist()
        assert got == [int(v) if name != "gap" else bool(v) for v in want[name]], name


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_export_matches_read_klines(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    db = store(kind, request, tmp_path)
    series = stored_series(db)
    assert series == [(s, i) for s in ("AAA", "BBB") for i in ("1h", "1m", "5m")]
    out = tmp_path / "all.parquet"
    written = export_parquet(db, out)
    table = pq.read_table(out)
    assert written == table.num_rows > len(engine_records())  # flat runs expanded
    assert table.column("quote_volume").to_pylist().count(None) == 0
    for symbol, interval in series:
        mask = pa.compute.and_(
            pa.compute.equal(table.column("symbol"), symbol),
            pa.compute.equal(table.column("interval"), interval),
        )
        assert_matches(table.filter(mask), read_klines(db, symbol, interval))
    quotes = [unscaled(v, 16) for v in table.column("quote_volume").to_pylist()]
    assert len(str(max(quotes))) >= 33


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_export_filters(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    db = store(kind, request, tmp_path)
    start, end = T0 + 10 * 60_000, T0 + 3 * 3_600_000  # from inside a flat run
    out = tmp_path / "some.parquet"
    written = export_parquet(db, out, symbols=["BBB"], intervals=["1m"], start=start, end=end)
    want = read_klines(db, "BBB", "1m", start, end)
    assert written == len(want) > 0 and want["open_time"][0] == start
    table = pq.read_table(out)
    assert set(table.column("symbol").to_pylist()) == {"BBB"}
    assert_matches(table, want)
    empty = tmp_path / "none.parquet"
    assert export_parquet(db, empty, symbols=["ZZZ"]) == 0
    assert pq.read_table(empty).schema.names == ["symbol", "interval", *(STORED_DTYPE.names or ())]
