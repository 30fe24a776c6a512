"""Several consumers of one engine: closed() readers, waiters on the wake fd, a persister;
leaving closed() mid-batch; draining after sync(); push_many's bounds."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from pathlib import Path

import kline_rs
import numpy as np
import pytest

E8 = 10**8
T0 = 1_600_000_020_000 - 1_600_000_020_000 % 60_000
#: Minutes with trades: 4..7 are quiet (one flat run of four klines per symbol).
MINUTES = [0, 1, 2, 3, 8, 9, 10]
SYMBOLS = [("SOLUSDT", 30), ("ETHUSDT", 2000)]


def closed_engine_with_klines() -> kline_rs.Engine:
    """Two symbols, 11 closed minutes each (22 klines in 16 records: flat runs whole)."""
    clock = kline_rs.ManualClock(T0)
    engine = kline_rs.Engine(["1m"], partitions=1, clock=clock, grace=0)
    engine.add_symbols([s for s, _ in SYMBOLS])
    times = np.array([T0 + m * 60_000 + s * 1000 for m in MINUTES for s in (5, 30)], np.int64)
    ids = np.arange(1, len(times) + 1, dtype=np.int64)
    clock.set(int(times[-1]))
    for symbol, base in SYMBOLS:
        price = (base + ids) * E8
        engine.push_trades(
            symbol,
            kline_rs.trades(
                agg_id=ids,
                price=price,
                qty=ids * 0 + E8,
                first_id=ids,
                last_id=ids,
                time=times,
                buyer_is_maker=ids % 2 == 0,
            ),
        )
    clock.set(T0 + 11 * 60_000)
    engine.sync()
    return engine


def key(k: kline_rs.ClosedKline) -> tuple[str, int]:
    return k.symbol, k.open_time


def everything() -> list[tuple[str, int]]:
    """The closed klines in the order one consumer gets them."""
    with closed_engine_with_klines() as engine:
        batch = engine.poll_klines()  # 16 records fit the outbox: one poll takes them all
        assert engine.poll_klines().klines.size == 0
    assert len(batch.klines) == 22
    return rows(batch)


def rows(batch: kline_rs.Batch) -> list[tuple[str, int]]:
    return [(str(r["symbol"]), int(r["open_time"])) for r in batch.klines]


# -- several consumers on one engine (the wake fd) ------------------------------------------


def test_two_closed_consumers_share_the_klines_and_both_end_on_close() -> None:
    """Today's add_reader per consumer: the second replaced the first, which then waited for
    ever, even through close()."""
    clock = kline_rs.ManualClock(T0)

    async def main() -> list[list[kline_rs.ClosedKline]]:
        engine = kline_rs.Engine(["1m"], partitions=1, clock=clock, grace=0)
        engine.add_symbol("SOLUSDT")
        seen: list[list[kline_rs.ClosedKline]] = [[], []]

        async def read(into: list[kline_rs.ClosedKline]) -> None:
            async for k in engine.klines(batch=1):
                into.append(k)
                await asyncio.sleep(0.01)  # the other consumer takes the next one meanwhile

        readers = [asyncio.create_task(read(s)) for s in seen]
        await asyncio.sleep(0.05)
        assert not any(seen)  # both wait on the fd
        ids = np.arange(1, 61, dtype=np.int64)
        times = T0 + ids * 1000  # one trade a second for a minute
        engine.push_trades(
            "SOLUSDT",
            kline_rs.trades(
                agg_id=ids,
                price=ids * E8,
                qty=ids * 0 + E8,
                first_id=ids,
                last_id=ids,
                time=times,
                buyer_is_maker=ids > 30,
            ),
        )
        clock.set(T0 + 5 * 60_000)
        engine.sync()
        for _ in range(200):
            if sum(map(len, seen)) >= 5:
                break
            await asyncio.sleep(0.01)
        engine.close()
        await asyncio.wait_for(asyncio.gather(*readers), 5)  # both end on close()
        return seen

    seen = asyncio.run(main())
    got = sorted(k.open_time for s in seen for k in s)
    assert got == [T0 + m * 60_000 for m in range(5)]  # each kline once, none lost
    assert all(seen), "one consumer was never woken"


def test_a_waiter_beside_a_closed_consumer_is_woken_by_records_and_by_close() -> None:
    """What a persister waits through (arm, then wait_for_records) beside closed()."""

    async def main() -> tuple[bool, bool, int]:
        clock = kline_rs.ManualClock(T0)
        engine = kline_rs.Engine(["1m"], partitions=1, clock=clock, grace=0)
        engine.add_symbol("SOLUSDT")
        seen: list[kline_rs.ClosedKline] = []

        async def read() -> None:
            async for k in engine.klines():
                seen.append(k)

        async def wait() -> bool:
            engine.arm()
            return await engine.wait_for_records(timeout=5)

        reader = asyncio.create_task(read())
        waiter = asyncio.create_task(wait())
        await asyncio.sleep(0.05)
        assert not waiter.done()
        one = np.ones(1, dtype=np.int64)
        engine.push_trades(
            "SOLUSDT",
            kline_rs.trades(
                agg_id=one,
                price=one * E8,
                qty=one * E8,
                first_id=one,
                last_id=one,
                time=one * T0,
                buyer_is_maker=one == 0,
            ),
        )
        clock.set(T0 + 2 * 60_000)
        engine.sync()
        by_records = await asyncio.wait_for(waiter, 5)
        waiter = asyncio.create_task(wait())
        await asyncio.sleep(0.05)
        engine.close()
        by_close = await asyncio.wait_for(waiter, 5)
        await asyncio.wait_for(reader, 5)
        return by_records, by_close, len(seen)

    assert asyncio.run(main()) == (True, True, 2)  # the minute traded, then one flat


def test_arming_does_not_swallow_a_wake_another_consumer_waits_for() -> None:
    """A consumer arming (which drains the fd) passes a pending wake on to the others."""

    async def main() -> bool:
        with closed_engine_with_klines() as engine:
            held = engine.poll_klines(4)

            async def wait() -> bool:
                engine.arm()
                return await engine.wait_for_records(timeout=3)

            waiter = asyncio.create_task(wait())
            await asyncio.sleep(0.05)
            engine.nack(held.token)  # the fd turns readable: records are waiting again
            engine.arm()  # another consumer arms before the loop runs the waiter's reader
            return await asyncio.wait_for(waiter, 5)

    assert asyncio.run(main())


def test_a_closed_consumer_beside_the_persister_is_woken_and_ends_on_close(
    tmp_path: Path,
) -> None:
    from kline_rs.live.persist import Persister
    from kline_rs.storage import open_sink

    async def main() -> list[kline_rs.ClosedKline]:
        sink = open_sink(str(tmp_path / "k.sqlite"))
        await sink.open()
        engine = kline_rs.Engine(["1m"], partitions=1, clock=kline_rs.ManualClock(T0))
        persister = Persister(engine, sink, every=0.2, min_interval=0.0)
        seen: list[kline_rs.ClosedKline] = []

        async def read() -> None:
            async for k in engine.klines():
                seen.append(k)

        writer = asyncio.create_task(persister.run())
        await asyncio.sleep(0.05)
        reader = asyncio.create_task(read())
        await asyncio.sleep(0.5)  # the persister's wait times out and it waits again
        engine.close()
        try:
            await asyncio.wait_for(reader, 2)
        finally:
            writer.cancel()
            # Woken by close() too, its next write finds the engine shut down.
            with contextlib.suppress(asyncio.CancelledError, kline_rs.EngineError):
                await writer
            await sink.close()
        return seen

    assert asyncio.run(main()) == []


# -- leaving closed() mid-batch ---------------------------------------------------------------


@pytest.mark.parametrize("leave", ["break", "raise"])
def test_the_next_consumer_starts_where_one_left_mid_batch(leave: str) -> None:
    """Today the batch in hand stayed with the abandoned generator: the next consumer got the
    batch after it, and the abandoned one came back later, whole (twice, out of order)."""
    want = everything()

    async def main() -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
        with closed_engine_with_klines() as engine:
            first: list[tuple[str, int]] = []
            with contextlib.suppress(LookupError):
                async for k in engine.klines(batch=5):
                    first.append(key(k))
                    if len(first) == 3:
                        if leave == "break":
                            break
                        raise LookupError("the consumer failed")
            second: list[tuple[str, int]] = []
            async for k in engine.klines(batch=5):
                second.append(key(k))
                if len(first) + len(second) == len(want):
                    break
            await asyncio.sleep(0.05)  # the abandoned generators are finalized meanwhile
            assert engine.poll_klines().klines.size == 0  # nothing comes again
            return first, second

    first, second = asyncio.run(main())
    assert first + second == want  # in order, nothing lost, nothing twice


@pytest.mark.parametrize(
    ("taken", "again_from"),
    [(3, 3), (8, 8), (6, 4)],
    ids=["after a kline", "after a whole flat run", "inside a flat run: it comes again whole"],
)
def test_when_the_last_consumer_leaves_the_rest_goes_back_to_the_engine(
    taken: int, again_from: int
) -> None:
    """What closed() handed out is acknowledged, the rest is polled next, in order."""
    want = everything()

    async def main() -> tuple[list[tuple[str, int]], list[tuple[str, int]], int]:
        with closed_engine_with_klines() as engine:
            first: list[tuple[str, int]] = []
            async with contextlib.aclosing(engine.klines(batch=100)) as stream:
                async for k in stream:
                    first.append(key(k))
                    if len(first) == taken:
                        break
            batch = engine.poll_klines()
            engine.ack(batch.token)
            return first, rows(batch), engine.metrics()["unacked"]

    first, rest, unacked = asyncio.run(main())
    assert first == want[:taken]
    assert rest == want[again_from:]
    assert unacked == 0


# -- everything closed after sync() -----------------------------------------------------------


def test_drain_finds_records_behind_a_full_outbox_of_small_chunks() -> None:
    """Each removal seals its klines in a chunk of their own; the outbox holds four chunks.
    One empty poll after sync() does not mean all is seen: drain() syncs again until it is."""
    symbols = [f"S{i:02d}USDT" for i in range(40)]
    with kline_rs.Engine(
        ["1m"], partitions=1, clock=kline_rs.ManualClock(T0), outbox_capacity=256
    ) as engine:
        engine.add_symbols(symbols)
        one = np.ones(1, dtype=np.int64)
        for s in symbols:
            engine.push_trades(
                s,
                kline_rs.trades(
                    agg_id=one,
                    price=one * E8,
                    qty=one * E8,
                    first_id=one,
                    last_id=one,
                    time=one * T0,
                    buyer_is_maker=one == 0,
                ),
            )
        for s in symbols:
            engine.remove_symbol(s)  # its open kline leaves as final, in a chunk of its own
        got = []
        for batch in engine.drain(max_records=3):
            got += rows(batch)
            engine.ack(batch.token)
        assert sorted(got) == [(s, T0) for s in symbols]


# -- push_many ----------------------------------------------------------------------------------


def frame(symbol: str, agg_id: int, time_ms: int) -> bytes:
    data = {
        "e": "aggTrade", "E": time_ms, "s": symbol, "a": agg_id, "p": "1.5", "q": "2",
        "f": agg_id, "l": agg_id, "T": time_ms, "m": False, "M": True,
    }  # fmt: skip
    return json.dumps({"stream": f"{symbol.lower()}@aggTrade", "data": data}).encode()


def test_push_many_on_a_closed_engine_raises_instead_of_spinning() -> None:
    engine = kline_rs.Engine(["1m"], partitions=1, clock=kline_rs.ManualClock(T0))
    engine.add_symbol("BTCUSDT")
    engine.close()
    raised: list[BaseException] = []

    def push() -> None:
        try:
            engine.push_many([frame("BTCUSDT", 1, T0)])
        except kline_rs.EngineError as e:
            raised.append(e)

    # A thread: today's push_many spins for ever here (daemon: it cannot keep the test alive).
    pusher = threading.Thread(target=push, daemon=True)
    pusher.start()
    pusher.join(5)
    assert not pusher.is_alive(), "push_many still spinning on a closed engine"
    assert len(raised) == 1 and "closed" in str(raised[0])


def test_push_many_gives_up_with_backpressure_error_past_its_time_bound() -> None:
    """Nobody polls: closed klines pass the outbox and the spill bound, so the worker takes no
    more items and the ring (four items) fills. However fast or slow the machine, sixteen
    symbols' frames then find no room, and push_many gives up after its 5 ms bound; once the
    klines are polled there is room again."""
    symbols = [f"S{i:02d}USDT" for i in range(16)]
    engine = kline_rs.Engine(
        ["1m"],
        partitions=1,
        clock=kline_rs.ManualClock(T0 + 3_600_000),
        ring_capacity=4,
        outbox_capacity=16,
        max_spill=16,
        push_wait_ms=1,
        spin_us=0,
        max_ahead_ms=None,
    )
    with engine:
        for s in [*symbols, "BIGUSDT"]:
            engine.add_symbol(s)

        # One trade a minute: each closes the previous minute's kline. Once the spill bound
        # is reached the worker takes nothing more; four more items fill the ring.
        def push(batch: int) -> bool:
            ids = np.arange(batch * 10 + 1, batch * 10 + 11, dtype=np.int64)
            one = ids * 0 + E8
            try:
                engine.push_trades(
                    "BIGUSDT",
                    kline_rs.trades(
                        agg_id=ids,
                        price=one,
                        qty=one,
                        first_id=ids,
                        last_id=ids,
                        time=T0 + ids * 60_000,
                        buyer_is_maker=ids % 2 == 0,
                    ),
                )
            except kline_rs.BackpressureError:
                return False
            return True

        def spilled() -> int:
            return int(engine.metrics()["partitions"][0]["spilled"])

        batch, deadline = 0, time.monotonic() + 30
        while spilled() < 16:
            assert time.monotonic() < deadline, "the spill bound was never reached"
            batch += push(batch)
        while push(batch):
            batch += 1
            assert batch < 10_000
        (part,) = engine.metrics()["partitions"]
        assert part["ring_depth"] == 4 and part["spilled"] >= 16
        frames = [frame(s, 1, T0) for s in symbols]
        with pytest.raises(kline_rs.BackpressureError, match="found no room"):
            engine.push_many(frames, timeout=0.005)
        polled = 0
        for b in engine.drain():
            polled += len(b.klines)
            engine.ack(b.token)
        assert polled >= 32  # past outbox + spill
        assert engine.push_many(frames) <= len(symbols)  # room again: the rest goes in
