"""The live pipeline finds each symbol's 3d anchor itself (issue 12, section 5): its first 1d
kline over REST, one request per symbol, kept in the store so a restart asks again for none."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from pathlib import Path

from kline_rs.fake import FakeExchange, SimulatedMarket
from kline_rs.live.pipeline import LivePipeline, PipelineConfig
from kline_rs.live.symbols import Selection

DAY = 86_400_000
THREE_DAYS = 3 * DAY
SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def market() -> tuple[SimulatedMarket, int]:
    """Listed at a midnight one day past the epoch's 3d grid, trading slowly since; frozen now."""
    now = int(time.time() * 1000)
    listed = now - 5 * DAY
    listed -= listed % DAY
    if listed % THREE_DAYS != DAY:
        listed -= (listed % THREE_DAYS - DAY) % THREE_DAYS
    m = SimulatedMarket(SYMBOLS, seed=9, start_ms=listed, speed=0, trades_per_second=0.01)
    m.advance(now - 10_000)
    return m, listed


async def follow(fx: FakeExchange, db: Path) -> dict[str, int]:
    """Runs until every symbol has an open 3d kline; returns their open times."""
    config = PipelineConfig(
        selection=Selection(symbols=frozenset(SYMBOLS)), ws_url=fx.ws_url, rest_url=fx.rest_url,
        intervals=["1d", "3d"], lookback_ms=2 * DAY, db=str(db), flush_every=0.2,
    )  # fmt: skip
    pipeline = LivePipeline(config, lambda k: None)
    run = asyncio.create_task(pipeline.run())
    opens: dict[str, int] = {}
    try:
        await pipeline.started()
        deadline = asyncio.get_running_loop().time() + 30
        while len(opens) < len(SYMBOLS):
            assert asyncio.get_running_loop().time() < deadline, opens
            assert pipeline.engine is not None and not run.done()
            for s in SYMBOLS:
                slots = pipeline.engine.read(s)
                three = slots[(slots["interval"] == "3d") & (slots["state"] == "open")]
                if len(three):
                    opens[s] = int(three["open_time"][0])
            await asyncio.sleep(0.1)
    finally:
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
    return opens


def first_day_requests(fx: FakeExchange) -> list[str]:
    return [q for q in fx.stats.recent_requests if "interval=1d" in q and "startTime=0" in q]


def test_the_live_3d_grid_starts_at_each_symbols_listing_day(tmp_path: Path) -> None:
    m, listed = market()
    assert listed % THREE_DAYS == DAY  # the epoch grid would be a day off
    db = tmp_path / "k.sqlite"

    async def scenario() -> None:
        async with FakeExchange(m) as fx:
            opens = await follow(fx, db)
            for s in SYMBOLS:
                assert (opens[s] - listed) % THREE_DAYS == 0, s
            assert len(first_day_requests(fx)) == len(SYMBOLS)
            with contextlib.closing(sqlite3.connect(db)) as c:
                stored = dict(c.execute("SELECT symbol, anchor_3d_ms FROM anchors"))
            assert stored == {s: listed for s in SYMBOLS}
            # A restart takes the anchors from the store: no request for them.
            asked = len(first_day_requests(fx))
            again = await follow(fx, db)
            assert again == opens and len(first_day_requests(fx)) == asked

    asyncio.run(scenario())
