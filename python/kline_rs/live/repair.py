"""Gap repair: holes in aggTrade ids (found by the engine) are fetched over REST and replayed.

The engine puts a symbol in a gap by itself when its aggTrade ids jump (after a reconnect or
a dropped frame): klines keep closing marked ``gap`` and live trades wait. The repairer
fetches the missing ids (``aggTrades?fromId=``, paged by 1000), hands them to
``Engine.backfill`` and calls ``feed_up``: the affected klines come again exact (revision 1).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from kline_rs import _core
from kline_rs.live.trades import agg_trade_arrays

log = logging.getLogger("kline_rs.repair")


class AggTradeSource(Protocol):
    """What the repairer needs from a REST client."""

    def agg_trades_from(
        self, symbol: str, from_id: int, *, until_id: int | None = None
    ) -> Any: ...  # an async iterator of pages (lists of aggTrade dicts)


@dataclass
class RepairStats:
    gaps: int = 0
    repaired: int = 0
    failed: int = 0
    trades_fetched: int = 0


class GapRepairer:
    """Polls the engine for id gaps and repairs each from REST."""

    def __init__(
        self,
        engine: _core.Engine,
        rest: AggTradeSource,
        *,
        poll_every: float = 0.1,
        attempts: int = 5,
        retry_delay: float = 0.5,
    ) -> None:
        self.engine = engine
        self.rest = rest
        self.poll_every = poll_every
        self.attempts = attempts
        self.retry_delay = retry_delay
        self.stats = RepairStats()

    async def run(self) -> None:
        """Repairs gaps as the engine reports them, until cancelled."""
        while True:
            for symbol, from_id, to_id, _since in self.engine.poll_gaps():
                self.stats.gaps += 1
                await self.repair(symbol, from_id, to_id)
            await asyncio.sleep(self.poll_every)

    async def repair(self, symbol: str, from_id: int, to_id: int) -> bool:
        """Fetches ids ``from_id..=to_id`` and replays them; on failure the klines stay gap."""
        for attempt in range(self.attempts):
            try:
                trades: list[dict[str, Any]] = []
                async for page in self.rest.agg_trades_from(symbol, from_id, until_id=to_id):
                    trades.extend(t for t in page if t["a"] <= to_id)
                self.stats.trades_fetched += len(trades)
                if trades:
                    self.engine.backfill(symbol, *agg_trade_arrays(trades))
                self.engine.feed_up(symbol)
                self.stats.repaired += 1
                log.info(
                    "%s: backfilled ids %d..%d (%d trades)", symbol, from_id, to_id, len(trades)
                )
                return True
            except _core.UnknownSymbolError:
                return False  # removed meanwhile: nothing to repair
            except Exception as e:  # any REST failure: retry, then give up
                log.warning("%s: backfill of ids %d..%d failed (%s)", symbol, from_id, to_id, e)
                await asyncio.sleep(self.retry_delay * 2**attempt)
        self.stats.failed += 1
        self.engine.feed_up(symbol, accept_holes=True)  # go on live; the span stays marked gap
        return False
