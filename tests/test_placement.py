"""Placement rules on a real SQLite file, one hand-made write at a time: what each write stores
(the raw rows, flat runs not expanded) and what it counts. Found by mutmut (TESTING.md): the
flat-run cutting and merging, the counts, the gap listing and the restore filters.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from kline_rs.engine import RECORD_DTYPE, SNAPSHOT_DTYPE
from kline_rs.storage import SqliteSink, StorageError, StoredState
from kline_rs.storage.base import Placement, fixed_text, is_postgres_url, parse_fixed_text

T0 = 1_577_836_800_000
M = 60_000  # one minute

#: (open_time, close_time, close, revision, flat) of a stored row.
Raw = tuple[int, int, str, int, bool]


def record(
    open_time: int,
    price: int,
    *,
    periods: int = 1,
    revision: int = 0,
    flat: bool = False,
    symbol: str = "BBB",
    interval: str = "1m",
    gap: bool = False,
) -> dict[str, Any]:
    """One 1m record; ``flat``: ``periods`` quiet minutes at ``price``."""
    return {
        "symbol": symbol, "interval": interval, "open_time": open_time,
        "close_time": open_time + periods * M - 1, "open": price, "high": price, "low": price,
        "close": price, "volume": 0 if flat else 3 * 10**8,
        "quote_volume": 0 if flat else 3 * price * 10**8, "trades": 0 if flat else 1,
        "taker_buy_volume": 0, "taker_buy_quote_volume": 0,
        "first_trade_id": -1 if flat else 7, "last_trade_id": -1 if flat else 7,
        "revision": revision, "gap": gap, "flat": flat,
    }  # fmt: skip


def records(*rows: dict[str, Any]) -> npt.NDArray[np.void]:
    out = np.zeros(len(rows), dtype=RECORD_DTYPE)
    for i, row in enumerate(rows):
        for name, value in row.items():
            out[i][name] = value
    return out


def price(p: int) -> str:
    return f"0.{p:08d}"


def write(path: Path, *batches: npt.NDArray[np.void]) -> list[Placement]:
    """Each batch one write of a fresh sink (the placer's memory starts empty each time)."""

    async def go() -> list[Placement]:
        out = []
        for batch in batches:
            sink = SqliteSink(path)
            await sink.open()
            try:
                out.append(await sink.write(batch, None))
            finally:
                await sink.close()
        return out

    return asyncio.run(go())


def write_one_sink(path: Path, *batches: npt.NDArray[np.void]) -> list[Placement]:
    """All batches through one sink (its placer remembers the tails between writes)."""

    async def go() -> list[Placement]:
        sink = SqliteSink(path)
        await sink.open()
        try:
            return [await sink.write(batch, None) for batch in batches]
        finally:
            await sink.close()

    return asyncio.run(go())


def raw(path: Path, symbol: str = "BBB", interval: str = "1m") -> list[Raw]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        got = db.execute(
            "SELECT open_time, close_time, close, revision, flat FROM klines "
            "WHERE symbol = ? AND interval = ? ORDER BY open_time",
            (symbol, interval),
        ).fetchall()
    return [(a, b, c, d, bool(e)) for a, b, c, d, e in got]


def counts(done: list[Placement]) -> list[tuple[int, int, int, int]]:
    return [(d.stored, d.merged, d.replaced, d.stale) for d in done]


def test_a_kline_inside_a_flat_run_cuts_it_in_two_and_keeps_both_parts(tmp_path: Path) -> None:
    path = tmp_path / "k.sqlite"
    done = write(
        path,
        records(record(T0, 100, periods=10, flat=True)),
        records(record(T0 + 3 * M, 105)),
    )
    assert counts(done) == [(1, 0, 0, 0), (1, 0, 1, 0)]
    assert raw(path) == [
        (T0, T0 + 3 * M - 1, price(100), 0, True),
        (T0 + 3 * M, T0 + 4 * M - 1, price(105), 0, False),
        (T0 + 4 * M, T0 + 10 * M - 1, price(100), 0, True),
    ]


@pytest.mark.parametrize("minute", [0, 9], ids=["first", "last"])
def test_a_kline_on_the_first_or_last_minute_of_a_flat_run_leaves_one_part(
    tmp_path: Path, minute: int
) -> None:
    path = tmp_path / "k.sqlite"
    later = records(record(T0 + 20 * M, 200))  # keeps the run from being the tail
    run = records(record(T0, 100, periods=10, flat=True))
    done = write(path, run, later, records(record(T0 + minute * M, 105)))
    assert counts(done) == [(1, 0, 0, 0), (1, 0, 0, 0), (1, 0, 1, 0)]
    kline = (T0 + minute * M, T0 + (minute + 1) * M - 1, price(105), 0, False)
    rest = (
        (T0 + M, T0 + 10 * M - 1, price(100), 0, True)
        if minute == 0
        else (T0, T0 + 9 * M - 1, price(100), 0, True)
    )
    assert raw(path) == sorted([kline, rest, (T0 + 20 * M, T0 + 21 * M - 1, price(200), 0, False)])


def test_revisions_replace_older_or_equal_and_never_newer(tmp_path: Path) -> None:
    path = tmp_path / "k.sqlite"
    done = write(
        path,
        records(record(T0, 100), record(T0 + M, 101)),
        records(record(T0, 102)),  # same revision: replaces
        records(record(T0, 103, revision=2)),  # newer: replaces
        records(record(T0, 104, revision=1)),  # older: stale, nothing changes
        records(record(T0, 105, revision=1), record(T0 + M, 106, revision=1)),  # one of two
    )
    assert counts(done) == [(2, 0, 0, 0), (1, 0, 1, 0), (1, 0, 1, 0), (0, 0, 0, 1), (1, 0, 1, 1)]
    assert raw(path) == [
        (T0, T0 + M - 1, price(103), 2, False),
        (T0 + M, T0 + 2 * M - 1, price(106), 1, False),
    ]


def test_a_stale_flat_run_leaves_the_newer_rows_it_overlaps_untouched(tmp_path: Path) -> None:
    path = tmp_path / "k.sqlite"
    done = write(
        path,
        records(record(T0, 100), record(T0 + M, 101, revision=1), record(T0 + 2 * M, 102)),
        records(record(T0, 100, periods=3, flat=True)),
    )
    assert counts(done) == [(3, 0, 0, 0), (0, 0, 0, 1)]
    assert [r[2:4] for r in raw(path)] == [(price(100), 0), (price(101), 1), (price(102), 0)]


def test_a_flat_run_merges_with_the_runs_on_both_sides(tmp_path: Path) -> None:
    path = tmp_path / "k.sqlite"
    done = write(
        path,
        records(record(T0, 100, periods=5, flat=True)),
        records(record(T0 + 10 * M, 100, periods=5, flat=True)),
        records(record(T0 + 5 * M, 100, periods=5, flat=True)),  # fills the hole between
    )
    assert counts(done) == [(1, 0, 0, 0), (1, 0, 0, 0), (1, 2, 0, 0)]
    assert raw(path) == [(T0, T0 + 15 * M - 1, price(100), 0, True)]


@pytest.mark.parametrize(
    "neighbour",
    [{"revision": 1}, {"gap": True}, {"price": 101}],
    ids=["revision", "gap", "price"],
)
def test_flat_runs_that_differ_do_not_merge(tmp_path: Path, neighbour: dict[str, Any]) -> None:
    path = tmp_path / "k.sqlite"
    kind = {k: v for k, v in neighbour.items() if k != "price"}
    p = neighbour.get("price", 100)
    done = write(
        path,
        records(record(T0, p, periods=5, flat=True, **kind)),
        records(record(T0 + 10 * M, p, periods=5, flat=True, **kind)),
        records(record(T0 + 5 * M, 100, periods=5, flat=True)),
    )
    assert counts(done) == [(1, 0, 0, 0), (1, 0, 0, 0), (1, 0, 0, 0)]
    assert [(r[0], r[1]) for r in raw(path)] == [
        (T0, T0 + 5 * M - 1),
        (T0 + 5 * M, T0 + 10 * M - 1),
        (T0 + 10 * M, T0 + 15 * M - 1),
    ]


def test_a_flat_run_only_merges_with_a_run_it_touches(tmp_path: Path) -> None:
    path = tmp_path / "k.sqlite"
    done = write(
        path,
        records(record(T0, 100, periods=4, flat=True)),  # ends a minute before the next run
        records(record(T0 + 11 * M, 100, periods=5, flat=True)),  # starts a minute after
        records(record(T0 + 5 * M, 100, periods=5, flat=True)),
    )
    assert counts(done) == [(1, 0, 0, 0), (1, 0, 0, 0), (1, 0, 0, 0)]
    assert [(r[0], r[1]) for r in raw(path)] == [
        (T0, T0 + 4 * M - 1),
        (T0 + 5 * M, T0 + 10 * M - 1),
        (T0 + 11 * M, T0 + 16 * M - 1),
    ]


def test_a_revised_flat_run_replaces_the_rows_it_covers_and_keeps_the_run_it_cuts(
    tmp_path: Path,
) -> None:
    path = tmp_path / "k.sqlite"
    done = write(
        path,
        records(
            record(T0, 100, periods=4, flat=True),
            record(T0 + 4 * M, 104),
            record(T0 + 5 * M, 100, periods=5, flat=True),
        ),
        records(record(T0 + 2 * M, 100, periods=5, flat=True, revision=1)),
    )
    # The new run covers minutes 2-6: it cuts both runs and replaces the kline between.
    assert counts(done) == [(3, 0, 0, 0), (1, 0, 3, 0)]
    assert raw(path) == [
        (T0, T0 + 2 * M - 1, price(100), 0, True),
        (T0 + 2 * M, T0 + 7 * M - 1, price(100), 1, True),
        (T0 + 7 * M, T0 + 10 * M - 1, price(100), 0, True),
    ]


def test_later_flat_runs_extend_the_tail_and_a_kline_after_them_does_not(tmp_path: Path) -> None:
    path = tmp_path / "k.sqlite"
    done = write_one_sink(
        path,
        records(
            record(T0, 100, periods=2, flat=True), record(T0 + 2 * M, 100, periods=3, flat=True)
        ),
        records(record(T0 + 5 * M, 100, periods=1, flat=True), record(T0 + 6 * M, 100)),
        records(record(T0 + 7 * M, 100, periods=2, flat=True)),
    )
    assert counts(done) == [(2, 1, 0, 0), (2, 1, 0, 0), (1, 0, 0, 0)]
    assert raw(path) == [
        (T0, T0 + 6 * M - 1, price(100), 0, True),
        (T0 + 6 * M, T0 + 7 * M - 1, price(100), 0, False),
        (T0 + 7 * M, T0 + 9 * M - 1, price(100), 0, True),
    ]


def test_series_are_placed_apart(tmp_path: Path) -> None:
    """Two symbols and two intervals in one write, one of them overlapping what is stored: each
    series keeps its own tail."""
    path = tmp_path / "k.sqlite"
    first = records(
        record(T0, 100, periods=10, flat=True),
        record(T0, 300, periods=5, flat=True, symbol="CCC"),
        record(T0, 400, interval="5m"),
    )
    second = records(
        record(T0 + 10 * M, 100, periods=2, flat=True),  # extends BBB's tail
        record(T0 + 2 * M, 301, symbol="CCC"),  # cuts CCC's run
        record(T0 + 5 * M, 300, periods=2, flat=True, symbol="CCC"),  # after CCC's run
        record(T0 + M, 401, interval="5m"),  # opens after BBB 5m's first row: a later row
    )
    done = write_one_sink(path, first, second)
    assert counts(done) == [(3, 0, 0, 0), (4, 2, 1, 0)]
    assert raw(path) == [(T0, T0 + 12 * M - 1, price(100), 0, True)]
    assert raw(path, "CCC") == [
        (T0, T0 + 2 * M - 1, price(300), 0, True),
        (T0 + 2 * M, T0 + 3 * M - 1, price(301), 0, False),
        (T0 + 3 * M, T0 + 7 * M - 1, price(300), 0, True),
    ]
    assert raw(path, "BBB", "5m") == [
        (T0, T0 + M - 1, price(400), 0, False),
        (T0 + M, T0 + 2 * M - 1, price(401), 0, False),
    ]


def test_gaps_lists_the_rows_marked_gap_of_this_venue_in_key_order(tmp_path: Path) -> None:
    path = tmp_path / "k.sqlite"
    write(
        path,
        records(
            record(T0 + 5 * M, 100, gap=True, revision=2, symbol="CCC"),
            record(T0, 100, periods=3, flat=True, gap=True, revision=1),
            record(T0 + 3 * M, 100),
            record(T0 + 5 * M, 100, gap=True, interval="5m"),
            record(T0, 100, gap=True, symbol="CCC"),
        ),
    )

    async def gaps(venue: str) -> list[tuple[str, str, int, int, int]]:
        sink = SqliteSink(path, venue=venue)
        await sink.open()
        try:
            await sink.write(records(record(T0 + 9 * M, 9, gap=True, symbol="ZZZ")), None)
            return await sink.gaps()
        finally:
            await sink.close()

    assert asyncio.run(gaps("futures")) == [("ZZZ", "1m", T0 + 9 * M, T0 + 10 * M - 1, 0)]
    assert asyncio.run(gaps("spot")) == [
        ("BBB", "1m", T0, T0 + 3 * M - 1, 1),
        ("BBB", "5m", T0 + 5 * M, T0 + 6 * M - 1, 0),
        ("CCC", "1m", T0, T0 + M - 1, 0),
        ("CCC", "1m", T0 + 5 * M, T0 + 6 * M - 1, 2),
        ("ZZZ", "1m", T0 + 9 * M, T0 + 10 * M - 1, 0),
    ]


def slots(*keys: tuple[str, str]) -> npt.NDArray[np.void]:
    out = np.zeros(len(keys), dtype=SNAPSHOT_DTYPE)
    for i, (symbol, interval) in enumerate(keys):
        out[i]["symbol"], out[i]["interval"], out[i]["state"] = symbol, interval, "open"
        out[i]["open_time"] = T0 + i
    return out


def test_stored_state_splits_by_symbol_and_keeps_the_anchors() -> None:
    state = StoredState(
        slots(("AAA", "1m"), ("BBB", "1m"), ("AAA", "5m"), ("CCC", "1m")),
        {"AAA": 10, "BBB": 20, "CCC": 30, "DDD": 40},
        {"AAA": 7, "EEE": 8},
    )
    now = state.only(["AAA", "CCC", "XXX"])
    rest = state.without(["AAA", "CCC", "XXX"])
    kept = now.slots
    assert list(zip(kept["symbol"], kept["interval"], kept["open_time"], strict=True)) == [
        ("AAA", "1m", T0), ("AAA", "5m", T0 + 2), ("CCC", "1m", T0 + 3)
    ]  # fmt: skip
    assert now.checkpoints == {"AAA": 10, "CCC": 30}
    assert list(zip(rest.slots["symbol"], rest.slots["interval"], strict=True)) == [("BBB", "1m")]
    assert rest.checkpoints == {"BBB": 20, "DDD": 40}
    assert now.anchors == rest.anchors == {"AAA": 7, "EEE": 8}
    assert len(state.slots) == 4 and len(state.checkpoints) == 4  # the whole is unchanged
    empty = StoredState(slots(), {"AAA": 1})
    assert len(empty.only(["AAA"]).slots) == len(empty.without(["AAA"]).slots) == 0
    assert empty.only(["AAA"]).slots.dtype == SNAPSHOT_DTYPE
    assert (empty.only(["AAA"]).checkpoints, empty.without(["AAA"]).checkpoints) == ({"AAA": 1}, {})


def test_counts_add_up_over_the_rows_of_one_write(tmp_path: Path) -> None:
    path = tmp_path / "k.sqlite"
    first = records(
        record(T0, 100, periods=5, flat=True, revision=1),
        record(T0 + 5 * M, 101, periods=5, flat=True),
        record(T0 + 20 * M, 102),
        record(T0, 300, periods=5, flat=True, symbol="CCC"),
        record(T0 + 5 * M, 301, periods=5, flat=True, symbol="CCC"),
        record(T0 + 20 * M, 302, symbol="CCC"),
    )
    second = records(
        record(T0 + M, 9),  # stale (the run it falls in is revision 1)
        record(T0 + 2 * M, 9),  # stale too
        # A run at the first run's price over the start of the second: it joins the first.
        record(T0 + 5 * M, 100, periods=3, flat=True, revision=1),
        record(T0 + 5 * M, 300, periods=3, flat=True, symbol="CCC"),
    )
    done = write(path, first, second)
    assert counts(done) == [(6, 0, 0, 0), (2, 2, 2, 2)]
    assert raw(path) == [
        (T0, T0 + 8 * M - 1, price(100), 1, True),
        (T0 + 8 * M, T0 + 10 * M - 1, price(101), 0, True),
        (T0 + 20 * M, T0 + 21 * M - 1, price(102), 0, False),
    ]
    assert raw(path, "CCC") == [
        (T0, T0 + 8 * M - 1, price(300), 0, True),
        (T0 + 8 * M, T0 + 10 * M - 1, price(301), 0, True),
        (T0 + 20 * M, T0 + 21 * M - 1, price(302), 0, False),
    ]


def test_saved_anchors_come_back_on_open(tmp_path: Path) -> None:
    path = tmp_path / "k.sqlite"

    async def go() -> dict[str, int]:
        sink = SqliteSink(path)
        await sink.open()
        await sink.save_anchors({"AAA": T0, "BBB": T0 + 86_400_000})
        await sink.save_anchors({})  # nothing to keep: no write
        await sink.save_anchors({"AAA": T0 - 86_400_000})
        await sink.close()
        again = SqliteSink(path)
        try:
            return (await again.open()).anchors
        finally:
            await again.close()

    assert asyncio.run(go()) == {"AAA": T0 - 86_400_000, "BBB": T0 + 86_400_000}


def test_decimals_are_stored_as_exact_text_of_their_digits(tmp_path: Path) -> None:
    path = tmp_path / "k.sqlite"
    write(path, records(record(T0, 100, periods=2, flat=True), record(T0 + 2 * M, 12345)))
    with contextlib.closing(sqlite3.connect(path)) as db:
        got = db.execute(
            "SELECT close, volume, quote_volume FROM klines ORDER BY open_time"
        ).fetchall()
    assert got == [
        ("0.00000100", "0.00000000", "0.0000000000000000"),
        ("0.00012345", "3.00000000", "0.0003703500000000"),
    ]
    for value, text in [(-1, "-0.00000001"), (-(10**8) - 5, "-1.00000005"), (0, "0.00000000")]:
        assert fixed_text(value, 8) == text
        assert parse_fixed_text(text, 8) == value
    assert parse_fixed_text("1.5", 8) == 150_000_000  # fewer decimals: still exact
    assert parse_fixed_text("-0.0000000000000001", 16) == -1
    assert fixed_text(10**30 + 1, 16) == "100000000000000.0000000000000001"
    with pytest.raises(StorageError, match=r"stored decimal '1\.5x': malformed number"):
        parse_fixed_text("1.5x", 8)
    with pytest.raises(StorageError, match=r"stored decimal '0\.000000001': more than 8 decimals"):
        parse_fixed_text("0.000000001", 8)


def test_a_postgresql_url_in_either_scheme_is_not_a_file() -> None:
    assert is_postgres_url("postgresql://u@localhost/k")
    assert is_postgres_url("postgres://u@localhost/k")
    assert not is_postgres_url(Path("postgres/k.sqlite"))
