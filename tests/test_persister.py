"""The persister between a real engine and a real SQLite file, one ``flush`` at a time: what it
hands on after a commit, what it holds and counts while the store fails (a SQLite trigger that
aborts kline inserts), how it backs off, and where it stops. Found by mutmut (TESTING.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kline_rs
import numpy as np
import pytest
from kline_rs.engine import ClosedKline, Engine
from kline_rs.live.persist import MAX_ON_STORED_PERIODS, Persister
from kline_rs.storage import BacklogFullError, SqliteSink, read_klines
from test_placement import records

T0 = 1_577_836_800_000  # 2020-01-01 00:00 UTC
M = 60_000
E8 = 10**8


def push(e: Engine, first: int, last: int) -> None:
    """aggTrades ``first..last`` of AAA, one every 20 s from T0 (three a minute)."""
    ids = np.arange(first, last + 1, dtype=np.int64)
    trades = kline_rs.trades(
        agg_id=ids, price=ids * 0 + 100 * E8, qty=ids * 0 + E8, first_id=ids, last_id=ids,
        time=T0 + ids * 20_000, buyer_is_maker=ids % 2 == 0,
    )  # fmt: skip
    e.push_trades("AAA", trades)


def flat(interval: str, open_time: int, close_time: int, *, revision: int = 0) -> dict[str, Any]:
    """A flat run of BBB at price 5."""
    return {
        "symbol": "BBB", "interval": interval, "open_time": open_time, "close_time": close_time,
        "open": 5, "high": 5, "low": 5, "close": 5, "first_trade_id": -1, "last_trade_id": -1,
        "revision": revision, "flat": True,
    }  # fmt: skip


@contextlib.contextmanager
def refusing(db: Path, why: str = "kline insert refused") -> Iterator[None]:
    """Every kline insert aborts its transaction (a real SQLite trigger)."""
    with contextlib.closing(sqlite3.connect(db)) as c:
        c.execute(
            "CREATE TRIGGER no_klines BEFORE INSERT ON klines "
            f"BEGIN SELECT RAISE(ABORT, '{why}'); END"
        )
        c.commit()
    try:
        yield
    finally:
        with contextlib.closing(sqlite3.connect(db)) as c:
            c.execute("DROP TRIGGER no_klines")
            c.commit()


def spans(got: list[ClosedKline]) -> list[tuple[str, str, int, int]]:
    return [(k.symbol, k.interval, k.open_time, k.close_time) for k in got]


def test_a_write_hands_on_each_kline_flat_runs_expanded_and_counts_it(tmp_path: Path) -> None:
    db = tmp_path / "k.sqlite"
    seen: list[ClosedKline] = []

    async def go() -> None:
        clock = kline_rs.ManualClock(T0)
        with Engine(["1m"], partitions=1, clock=clock, max_ahead_ms=None) as e:
            e.add_symbol("AAA")
            sink = SqliteSink(db)
            await sink.open()
            p = Persister(e, sink, on_stored=seen.append)
            push(e, 1, 5)  # minutes 0 and 1 (2 trades), then quiet minutes 2-4, trade at 5
            push(e, 15, 15)
            e.sync()
            p.add(records(flat("1m", T0 + 10 * M, T0 + 12 * M - 1)))
            assert await p.flush()
            s = p.stats
            assert (s.writes, s.records, s.stale, s.failures, s.backlog) == (1, 4, 0, 0, 0)
            assert (s.last_error, s.down_since) == ("", 0.0)
            # Nothing new: an empty write still counts; an older revision is counted as stale.
            assert await p.flush()
            p.add(records(flat("1m", T0 + 10 * M, T0 + 12 * M - 1, revision=-1)))
            assert await p.flush()
            assert (s.writes, s.records, s.stale) == (3, 5, 1)
            await sink.close()

    asyncio.run(go())
    # The extra records go first, then the engine's: AAA 0, 1 and the flat run 2-4.
    assert spans(seen[:7]) == [
        ("BBB", "1m", T0 + 10 * M, T0 + 11 * M - 1),
        ("BBB", "1m", T0 + 11 * M, T0 + 12 * M - 1),
        ("AAA", "1m", T0, T0 + M - 1),
        ("AAA", "1m", T0 + M, T0 + 2 * M - 1),
        ("AAA", "1m", T0 + 2 * M, T0 + 3 * M - 1),
        ("AAA", "1m", T0 + 3 * M, T0 + 4 * M - 1),
        ("AAA", "1m", T0 + 4 * M, T0 + 5 * M - 1),
    ]
    assert [k.trades for k in seen[2:7]] == [2, 3, 0, 0, 0]
    assert [k.close for k in seen[4:7]] == [100 * E8] * 3
    assert len(read_klines(db, "AAA", "1m")) == 5


def test_monthly_flat_runs_are_handed_on_at_the_engines_month_starts(tmp_path: Path) -> None:
    # February and March 2020 at +08:00: months start at 16:00 UTC the day before.
    feb, mar, apr = 1_580_486_400_000, 1_582_992_000_000, 1_585_670_400_000
    seen: list[ClosedKline] = []

    async def go() -> None:
        with Engine(["1M"], partitions=1, max_ahead_ms=None, tz_offset="+08:00") as e:
            sink = SqliteSink(tmp_path / "k.sqlite", tz_offset="+08:00")
            await sink.open()
            p = Persister(e, sink, on_stored=seen.append, tz_offset="+08:00")
            p.add(records(flat("1M", feb, apr - 1)))
            assert await p.flush()
            await sink.close()

    asyncio.run(go())
    assert spans(seen) == [("BBB", "1M", feb, mar - 1), ("BBB", "1M", mar, apr - 1)]


def test_a_quiet_stretch_past_the_bound_hands_on_only_its_latest_periods(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[ClosedKline] = []
    n = MAX_ON_STORED_PERIODS
    end = T0 + 2000 + (n + 2) * 1000  # 2 quiet seconds, then n + 2

    async def go() -> None:
        with Engine(["1s"], partitions=1, max_ahead_ms=None) as e:
            sink = SqliteSink(tmp_path / "k.sqlite")
            await sink.open()
            p = Persister(e, sink, on_stored=seen.append)
            p.add(records(flat("1s", T0, T0 + 2000 - 1)))  # short: handed on whole, quietly
            assert await p.flush()
            assert not caplog.records
            p.add(records(flat("1s", T0 + 2000, end - 1)))
            assert await p.flush()
            await sink.close()

    with caplog.at_level(logging.WARNING, logger="kline_rs.store"):
        asyncio.run(go())
    assert len(seen) == 2 + n
    assert spans(seen[:3]) == [
        ("BBB", "1s", T0, T0 + 999),
        ("BBB", "1s", T0 + 1000, T0 + 1999),
        ("BBB", "1s", end - n * 1000, end - n * 1000 + 999),
    ]
    assert spans(seen[-1:]) == [("BBB", "1s", end - 1000, end - 1)]
    assert [r.getMessage() for r in caplog.records] == [
        f"BBB 1s: quiet from {T0 + 2000} to {end - 1}, stored as one flat run; only its latest "
        f"{n} periods are handed on one by one"
    ]


def test_a_failing_store_holds_counts_backs_off_and_stops_past_the_bound(tmp_path: Path) -> None:
    db = tmp_path / "k.sqlite"
    seen: list[ClosedKline] = []

    async def go() -> None:
        clock = kline_rs.ManualClock(T0)
        with Engine(["1m"], partitions=1, clock=clock, max_ahead_ms=None) as e:
            e.add_symbol("AAA")
            sink = SqliteSink(db)
            await sink.open()
            p = Persister(e, sink, max_backlog=3, on_stored=seen.append)
            s = p.stats
            push(e, 1, 6)  # minutes 0 and 1 close
            e.sync()
            with refusing(db):
                assert not await p.flush()
                assert (s.failures, s.backlog, s.peak_backlog, s.writes) == (1, 2, 2, 0)
                assert "kline insert refused" in s.last_error and str(db) in s.last_error
                down = s.down_since
                assert down > 0
                assert p._backoff == 0.25
                push(e, 7, 9)  # minute 2 closes: three held, at the bound
                e.sync()
                assert not await p.flush()
                assert (s.failures, s.backlog, s.peak_backlog, s.down_since) == (2, 3, 3, down)
                backoffs = [p._backoff]
                for _ in range(5):
                    assert not await p.flush()
                    backoffs.append(p._backoff)
                assert backoffs == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
                assert seen == []
                push(e, 10, 12)  # minute 3 closes: four held, past the bound
                e.sync()
                with pytest.raises(BacklogFullError, match=r"4 closed records waiting \(bound 3\)"):
                    await p.flush()
                assert (s.failures, s.backlog, s.peak_backlog) == (8, 4, 4)
            assert await p.flush()  # the store is back: everything held goes in one write
            assert (s.writes, s.records, s.backlog, s.peak_backlog, s.failures) == (1, 4, 0, 4, 8)
            assert (s.last_error, s.down_since, p._backoff) == ("", 0.0, 0.0)
            assert e.poll_records().klines.size == 0  # acknowledged: not handed out again
            await sink.close()

    asyncio.run(go())
    assert [k.open_time for k in seen] == [T0 + k * M for k in range(4)]
    assert read_klines(db, "AAA", "1m")["open_time"].tolist() == [T0 + k * M for k in range(4)]


def test_records_added_meanwhile_are_kept_in_order_across_a_failed_write(tmp_path: Path) -> None:
    db = tmp_path / "k.sqlite"
    seen: list[ClosedKline] = []

    async def go() -> None:
        with Engine(["1m"], partitions=1, max_ahead_ms=None) as e:
            sink = SqliteSink(db)
            await sink.open()
            p = Persister(e, sink, on_stored=seen.append)
            p.add(records(flat("1m", T0, T0 + M - 1)))
            with refusing(db):

                async def add_during_the_write() -> None:
                    p.add(records(flat("1m", T0 + 5 * M, T0 + 6 * M - 1)))

                adder = asyncio.ensure_future(add_during_the_write())
                assert not await p.flush()
                await adder
            p.add(records(flat("1m", T0 + 9 * M, T0 + 10 * M - 1)))
            assert await p.flush()
            await sink.close()

    asyncio.run(go())
    assert [k.open_time for k in seen] == [T0, T0 + 5 * M, T0 + 9 * M]


def test_an_error_that_is_not_the_stores_is_raised_and_the_records_kept(tmp_path: Path) -> None:
    async def go() -> None:
        with Engine(["1m"], partitions=1, max_ahead_ms=None) as e:
            sink = SqliteSink(tmp_path / "k.sqlite")
            await sink.open()
            p = Persister(e, sink)
            bad = np.zeros(1, dtype=[("symbol", "O")])  # not records: the sink cannot read it
            p.add(bad)
            with pytest.raises(ValueError):
                await p.flush()
            assert p.stats.failures == 0 and p._backoff == 0.0
            assert len(p._extra) == 1 and p._extra[0] is bad
            await sink.close()

    asyncio.run(go())


def test_release_hands_what_is_held_back_to_the_engine(tmp_path: Path) -> None:
    db = tmp_path / "k.sqlite"

    async def go() -> None:
        clock = kline_rs.ManualClock(T0)
        with Engine(["1m"], partitions=1, clock=clock, max_ahead_ms=None) as e:
            e.add_symbol("AAA")
            sink = SqliteSink(db)
            await sink.open()
            p = Persister(e, sink)
            push(e, 1, 9)  # minutes 0-2 close
            e.sync()
            with refusing(db):
                assert not await p.flush()
            assert p.release() == 3
            assert p.release() == 0
            again = e.poll_records().klines
            assert again["open_time"].tolist() == [T0, T0 + M, T0 + 2 * M]
            await sink.close()

    asyncio.run(go())


def test_forgotten_symbols_lose_their_open_slots_once_a_write_commits(tmp_path: Path) -> None:
    db = tmp_path / "k.sqlite"

    def slots() -> list[str]:
        with contextlib.closing(sqlite3.connect(db)) as c:
            return [s for (s,) in c.execute("SELECT symbol FROM open_klines ORDER BY symbol")]

    async def go() -> None:
        clock = kline_rs.ManualClock(T0)
        with Engine(["1m"], partitions=1, clock=clock, max_ahead_ms=None) as e:
            e.add_symbol("AAA")
            e.add_symbol("CCC")
            sink = SqliteSink(db)
            await sink.open()
            p = Persister(e, sink)
            push(e, 1, 2)
            ids = np.array([1], dtype=np.int64)
            e.push_trades(
                "CCC",
                kline_rs.trades(
                    agg_id=ids,
                    price=ids * E8,
                    qty=ids * E8,
                    first_id=ids,
                    last_id=ids,
                    time=ids * 0 + T0,
                    buyer_is_maker=ids > 0,
                ),
            )
            e.sync()
            assert await p.flush()
            assert slots() == ["AAA", "CCC"]
            p.forget(["CCC"])
            p.add(records(flat("1m", T0, T0 + M - 1)))
            with refusing(db):
                assert not await p.flush()
            assert slots() == ["AAA", "CCC"]
            assert await p.flush()  # the forget waited for this write
            assert slots() == ["AAA"]
            assert p._forget == set()
            await sink.close()

    asyncio.run(go())


def test_a_write_that_did_not_drain_the_outbox_stores_no_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The snapshot goes with a write only when every record closed before it is in the same
    write; else the stored checkpoint could run ahead of the stored klines. One poll per write
    here (the bound is 64), so the first write cannot know the outbox is empty."""
    db = tmp_path / "k.sqlite"
    monkeypatch.setattr("kline_rs.live.persist.MAX_POLLS", 1)

    def checkpoints() -> dict[str, int]:
        with contextlib.closing(sqlite3.connect(db)) as c:
            return dict(c.execute("SELECT symbol, last_id FROM checkpoints").fetchall())

    async def go() -> None:
        clock = kline_rs.ManualClock(T0)
        with Engine(["1m"], partitions=1, clock=clock, max_ahead_ms=None) as e:
            e.add_symbol("AAA")
            sink = SqliteSink(db)
            await sink.open()
            p = Persister(e, sink)
            push(e, 1, 9)  # minutes 0-2 close
            e.sync()
            assert await p.flush()
            assert len(read_klines(db, "AAA", "1m")) == 3
            assert checkpoints() == {}
            assert await p.flush()
            assert checkpoints() == {"AAA": 9}
            await sink.close()

    asyncio.run(go())


def test_a_failing_store_is_logged_once_per_error_and_once_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "k.sqlite"

    async def go() -> None:
        clock = kline_rs.ManualClock(T0)
        with Engine(["1m"], partitions=1, clock=clock, max_ahead_ms=None) as e:
            e.add_symbol("AAA")
            sink = SqliteSink(db)
            await sink.open()
            p = Persister(e, sink)
            push(e, 1, 6)  # minutes 0 and 1 close
            e.sync()
            with refusing(db, "disk says no"):
                assert not await p.flush()
                assert not await p.flush()  # the same error: not logged again
            with refusing(db, "disk still says no"):
                push(e, 7, 9)
                e.sync()
                assert not await p.flush()
            assert await p.flush()
            await sink.close()

    with caplog.at_level(logging.INFO, logger="kline_rs.store"):
        asyncio.run(go())
    got = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in got] == ["ERROR", "ERROR", "WARNING"]
    assert got[0][1] == f"store failed, holding 2 records and retrying: {db}: disk says no"
    assert got[1][1] == f"store still failing (3 records held): {db}: disk still says no"
    assert got[2][1].startswith("store back after ") and got[2][1].endswith(
        " s: 3 records committed"
    )
