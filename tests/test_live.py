"""The live pipeline against the fake exchange on loopback (real sockets, real servers).

Every fault ends with klines identical to a fault-free aggregation of the exchange's own tape:
what was dropped, duplicated, reordered or lost in a disconnect is found by its aggTrade id,
fetched over REST and replayed, and the affected klines come again exact (revision 1).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import kline_rs
import numpy as np
import pytest
from kline_rs.live.pipeline import LivePipeline, PipelineConfig
from kline_rs.live.symbols import Selection
from kline_rs.live.trades import agg_trade_arrays
from kline_rs.testing import FakeExchange, Faults, SimulatedMarket

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT"]
FIELDS = [
    "open_time", "close_time", "open", "high", "low", "close", "volume", "quote_volume",
    "trades", "taker_buy_volume", "taker_buy_quote_volume", "first_trade_id", "last_trade_id",
]  # fmt: skip

Table = dict[tuple[str, int], tuple[int, bool, dict[str, Any]]]


def upsert(table: Table, k: kline_rs.ClosedKline) -> None:
    """What an idempotent sink keeps: per (symbol, open time) the newest revision."""
    key = (k.symbol, k.open_time)
    if key not in table or k.revision >= table[key][0]:
        table[key] = (k.revision, k.gap, {f: getattr(k, f) for f in FIELDS})


async def follow(market: SimulatedMarket, faults: Faults, seconds: float) -> Table:
    """Runs the pipeline for ``seconds`` under ``faults``, then one clean second."""
    table: Table = {}
    clock = kline_rs.ManualClock(market.clock_ms())
    async with FakeExchange(market, faults=faults) as fx:
        config = PipelineConfig(
            selection=Selection(symbols=frozenset(SYMBOLS)),
            intervals=["1m"],
            ws_url=fx.ws_url,
            rest_url=fx.rest_url,
            partitions=2,
            grace_ms=30_000,  # market time: 0.5 s of real time at speed 60
        )
        pipeline = LivePipeline(config, lambda k: upsert(table, k), engine_kwargs={"clock": clock})

        async def drive_clock() -> None:
            while True:
                clock.set(market.clock_ms())
                await asyncio.sleep(0.01)

        async def heal() -> None:
            await asyncio.sleep(seconds)
            for name in ("drop_rate", "duplicate_rate"):
                setattr(fx.faults, name, 0.0)
            fx.faults.reorder_window = 0
            fx.faults.disconnect_every = 0

        helpers = [asyncio.create_task(drive_clock()), asyncio.create_task(heal())]
        try:
            await pipeline.run(seconds + 1.5)
        finally:
            for t in helpers:
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
    return table


def truth(market: SimulatedMarket, symbol: str) -> dict[int, dict[str, Any]]:
    """1m klines of everything the exchange traded, by open time."""
    history = market.history(symbol)
    ids, price, qty, first, last, times, maker = agg_trade_arrays(history)
    agg = kline_rs.aggregate(
        agg_id=ids, price=price, qty=qty, first_id=first, last_id=last, time=times,
        buyer_is_maker=maker, intervals=["1m"],
    )  # fmt: skip
    return {int(row["open_time"]): {f: _py(row[f]) for f in FIELDS} for row in agg.klines["1m"]}


def _py(v: Any) -> Any:
    return int(v) if isinstance(v, np.integer) else v


FAULTS = {
    "none": Faults(),
    "drops": Faults(drop_rate=0.05, seed=1),
    "duplicates": Faults(duplicate_rate=0.2, seed=2),
    "reorder": Faults(reorder_window=6, seed=3),
    "disconnects": Faults(disconnect_every=400, seed=4),
    "delays+drops": Faults(delay_ms=30, drop_rate=0.02, seed=5),
    "abrupt disconnects + 429s": Faults(disconnect_every=500, abrupt_disconnect=True, rest_429=2),
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_klines_equal_the_exchange_tape_whatever_the_fault(name: str) -> None:
    market = SimulatedMarket(SYMBOLS, seed=11, speed=60.0, trades_per_second=60.0)
    table = asyncio.run(follow(market, FAULTS[name], seconds=3.0))
    compared = 0
    for symbol in SYMBOLS:
        want = truth(market, symbol)
        got = sorted((t, v) for (s, t), v in table.items() if s == symbol)
        assert got, f"{symbol}: no kline closed"
        for open_time, (_rev, gap, fields) in got[1:]:  # the first minute was joined midway
            assert not gap, f"{symbol} {open_time}: still marked gap"
            assert fields == want[open_time], f"{symbol} {open_time}"
            compared += 1
    assert compared >= 2 * len(SYMBOLS)
