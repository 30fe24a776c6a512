"""Raw trades live (issue 12, section 2): ``stream="trade"`` follows ``<symbol>@trade``; every
quote volume is then exact, and lost frames are fetched by trade id from REST
``historicalTrades``. Truth: the independent reference over the exchange's own raw trades."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

import oracle
import pytest
from kline_rs.fake import FakeExchange, Faults, SimulatedMarket
from kline_rs.fake.events import raw_trade_events
from kline_rs.venues import SPOT
from test_live import SYMBOLS, Table, compare, follow

E8 = 10**8


def raw_truth(market: SimulatedMarket, symbol: str) -> dict[int, dict[str, int]]:
    """1m klines of the raw trades the exchange sent (each aggTrade split as its @trade
    stream splits it), by open time."""
    inst = market.instruments[symbol]
    raw = [
        {"a": e["t"], "p": e["p"], "q": e["q"], "f": e["t"], "l": e["t"], "T": e["T"], "m": e["m"]}
        for t in market.history(symbol)
        for e in raw_trade_events(SPOT, inst, t, 0)
    ]
    return oracle.by_open_time(raw, "1m")


def check_raw(market: SimulatedMarket, table: Table) -> None:
    compare(table, {s: raw_truth(market, s) for s in SYMBOLS})


@pytest.mark.parametrize(
    "faults",
    [Faults(), Faults(drop_rate=0.05, seed=1), Faults(disconnect_every=400, seed=4)],
    ids=["clean", "drops", "disconnects"],
)
def test_raw_trade_streams_give_the_exchanges_klines_whatever_the_fault(faults: Faults) -> None:
    market = SimulatedMarket(SYMBOLS, seed=31, speed=60.0, trades_per_second=60.0)
    stats: list[Any] = []

    async def watch(fx: FakeExchange, pipeline: Any) -> None:
        stats.append(fx.stats)

    expect = partial(check_raw, market)
    table = asyncio.run(
        follow(
            market, faults, 3.0, during=watch, expect=expect, stream="trade", lookback_ms=120_000
        )
    )
    check_raw(market, table)
    asked = list(stats[0].recent_requests)
    if faults.drop_rate:  # lost frames were fetched by trade id, never as aggTrades
        assert any("historicalTrades" in q for q in asked)
    assert not any("/aggTrades?" in q and "fromId" in q for q in asked)
