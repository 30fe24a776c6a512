"""The scale-out mode's rules one by one: the id order an aggregator puts trades in, and the
store's fence that stops a shard's previous owner from writing after a new one took over."""

from __future__ import annotations

import asyncio

import numpy as np
import numpy.typing as npt
import pytest
from kline_rs import Engine, _core, trades
from kline_rs.scale.leases import fair_share
from kline_rs.scale.trade_stream import SHARDS, shard_of, shard_subjects, subject, symbol_of
from kline_rs.storage import read_klines
from kline_rs.storage.base import FencedOutError

pytest_plugins = ["postgres_server"]

T0 = 1_700_000_000_000


def row(agg_id: int, t: int = T0) -> npt.NDArray[np.void]:
    return trades(agg_id=[agg_id], price=[1.5], qty=[2.0], first_id=[agg_id], last_id=[agg_id],
                  time=[t], buyer_is_maker=[False])  # fmt: skip


def rows(*ids: int) -> npt.NDArray[np.void]:
    return trades(agg_id=list(ids), price=[1.5] * len(ids), qty=[2.0] * len(ids),
                  first_id=list(ids), last_id=list(ids), time=[T0 + i for i in ids],
                  buyer_is_maker=[False] * len(ids))  # fmt: skip


def take(o: _core.IdOrder, symbol: str, *ids: int, seq: int = 0) -> list[int]:
    by, out, overflowed = o.take([symbol] * len(ids), rows(*ids), [seq] * len(ids), 0.0)
    assert len(by) == len(out) and overflowed == []
    return [int(x) for x in out["agg_id"]]


def test_trades_come_out_in_id_order_per_symbol_held_across_a_hole_until_it_fills() -> None:
    """The core's rule (its own tests: kline_core::id_order) through the bindings."""
    o = _core.IdOrder()
    o.start({"BTCUSDT": 10})
    assert take(o, "BTCUSDT", 11, seq=1) == [11]
    assert take(o, "BTCUSDT", 13, seq=2) == [] and take(o, "BTCUSDT", 14, seq=3) == []
    assert o.hole("BTCUSDT") == (12, 12) and o.first_held_seq() == 2 and o.held == 2
    got = o.take(["BTCUSDT", "ETHUSDT"], rows(12, 100), [4, 5], 0.0)
    assert list(got[0]) == [0, 0, 0, 1] and list(got[1]["agg_id"]) == [12, 13, 14, 100]
    assert got[1]["time"][-1] == T0 + 100 and got[2] == []  # the rows come out whole
    assert o.hole("BTCUSDT") is None and o.first_held_seq() is None
    assert take(o, "BTCUSDT", 12) == [] and o.duplicates == 1
    o.pushed("ETHUSDT", T0 + 5)
    assert take(o, "ETHUSDT", 104, 103) == [] and o.time_bound() == T0 + 5
    assert o.waiting() == ["ETHUSDT"] and o.overdue(1.0) == ["ETHUSDT"] and o.overdue(0.0) == []
    assert list(o.release("ETHUSDT")["agg_id"]) == [103, 104]
    assert take(o, "ETHUSDT", 105) == [105] and o.time_bound() is None and o.held == 0
    with pytest.raises(ValueError, match="one of each per trade"):
        o.take(["BTCUSDT"], rows(1, 2), [0, 0], 0.0)
    assert _core.MAX_HELD_TRADES == 100_000


def test_a_symbols_shard_is_stable_and_in_its_subject() -> None:
    assert all(0 <= shard_of(s) < SHARDS for s in ("BTCUSDT", "ETHUSDT", "X"))
    assert shard_of("BTCUSDT") == shard_of("BTCUSDT") == 2  # the core's hash, pinned there
    s = subject("spot", "BTCUSDT")
    assert s == "kline_rs.trades.spot.2.BTCUSDT" and symbol_of(s) == "BTCUSDT"
    with pytest.raises(ValueError, match="at least 1"):
        _core.shard_of("BTCUSDT", 0)
    assert shard_subjects("spot", 3) == "kline_rs.trades.spot.3.*"
    assert [fair_share(16, n) for n in (1, 2, 3, 5, 16, 40)] == [16, 8, 6, 4, 1, 1]


async def fence_run(url: str) -> None:
    from kline_rs.storage.postgres import PostgresSink

    engine = Engine(["1m"], partitions=1, pin_threads=False)
    engine.add_symbol("BTCUSDT")
    engine.push_trades("BTCUSDT", row(1, T0 + 1_000))
    engine.push_trades("BTCUSDT", row(2, T0 + 61_000))  # closes the first minute
    engine.sync()
    closed = engine.poll_records()
    old, new = PostgresSink(url), PostgresSink(url)
    try:
        assert await old.take_fence("shard.3", 5) == 0  # no progress stored yet
        old.fence_progress = 41
        await old.write(closed.klines, engine.snapshot())
        assert await new.take_fence("shard.3", 7) == 41  # the progress came with the snapshot
        # The previous owner, still writing after its lease ran out, is refused: nothing of
        # that write is stored.
        later = np.copy(closed.klines)
        later["open_time"] += 60_000
        later["close_time"] += 60_000
        with pytest.raises(FencedOutError, match="newer writer"):
            await old.write(later, None)
        assert len(read_klines(url, "BTCUSDT", "1m")) == 1
        await new.write(later, None)
        assert len(read_klines(url, "BTCUSDT", "1m")) == 2
        with pytest.raises(FencedOutError):  # an older token cannot take it back
            await old.take_fence("shard.3", 6)
    finally:
        await old.close()
        await new.close()
        engine.close()


def test_a_new_owners_fence_refuses_the_previous_owners_writes(postgres_url: str) -> None:
    asyncio.run(fence_run(postgres_url))


def test_aggregate_refuses_a_store_other_than_postgresql_and_an_empty_server_list(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from kline_rs.cli import main

    with pytest.raises(SystemExit, match="--db must be a postgresql:// URL"):
        main(["aggregate", "--nats", "nats://127.0.0.1:4222", "--db", "klines.sqlite"])
    with pytest.raises(SystemExit):
        main(["aggregate", "--nats", " , ", "--db", "postgresql://u@h/db"])
    assert "no NATS server given" in capsys.readouterr().err
