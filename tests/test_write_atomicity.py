"""A store write is one transaction: when the klines of a write fail to land, the checkpoint of
the same write must not land either (a checkpoint ahead of the stored klines would make a
restart skip trades whose klines were never stored). The failure is a real SQLite trigger
that aborts kline inserts (issue 11: the mutant committing the checkpoint first survived)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import kline_rs
import numpy as np
from kline_rs.engine import Engine
from kline_rs.live.persist import Persister
from kline_rs.storage import SqliteSink, read_klines

T0 = 1_577_836_800_000
E8 = 10**8


def push(e: Engine, first: int, last: int) -> None:
    ids = np.arange(first, last + 1, dtype=np.int64)
    trades = kline_rs.trades(
        agg_id=ids, price=ids * 0 + 100 * E8, qty=ids * 0 + E8, first_id=ids, last_id=ids,
        time=T0 + ids * 20_000, buyer_is_maker=ids % 2 == 0,
    )  # fmt: skip
    e.push_trades("BTCUSDT", trades)


def stored(db: Path) -> tuple[dict[str, int], int]:
    with sqlite3.connect(db) as c:
        checkpoints = dict(c.execute("SELECT symbol, last_id FROM checkpoints").fetchall())
    return checkpoints, len(read_klines(db, "BTCUSDT", "1m"))


def test_a_checkpoint_never_lands_without_the_klines_of_its_write(tmp_path: Path) -> None:
    db = tmp_path / "k.sqlite"

    async def go() -> list[tuple[dict[str, int], int]]:
        clock = kline_rs.ManualClock(T0)
        seen = []
        with Engine(["1m"], partitions=1, clock=clock, max_ahead_ms=None) as e:
            e.add_symbol("BTCUSDT")
            sink = SqliteSink(db)
            await sink.open()
            persister = Persister(e, sink)
            push(e, 1, 30)  # a trade every 20 s: minutes 0-9 close, 10 opens
            e.sync()
            assert await persister.flush()
            seen.append(stored(db))
            with sqlite3.connect(db) as c:  # every kline insert now aborts its transaction
                c.execute(
                    "CREATE TRIGGER no_klines BEFORE INSERT ON klines "
                    "BEGIN SELECT RAISE(ABORT, 'kline insert refused'); END"
                )
            push(e, 31, 60)  # minutes 10-19 close, and the checkpoint moves to 60
            e.sync()
            assert not await persister.flush(), "the write failed"
            seen.append(stored(db))
            with sqlite3.connect(db) as c:
                c.execute("DROP TRIGGER no_klines")
            assert await persister.flush()
            seen.append(stored(db))
            await sink.close()
        return seen

    first, failed, healed = asyncio.run(go())
    assert first == ({"BTCUSDT": 30}, 10)
    assert failed == first, "a failed write stored its checkpoint (or some of its klines)"
    assert healed == ({"BTCUSDT": 60}, 20)
