"""Gap repair: holes in aggTrade ids (found by the engine) are fetched over REST and replayed.

The engine puts a symbol in a gap by itself when its aggTrade ids jump (after a reconnect or
a dropped frame): klines keep closing marked ``gap`` and live trades wait. The repairer
fetches the missing ids (``aggTrades?fromId=``, paged by 1000), hands them to
``Engine.backfill`` and calls ``feed_up``: the affected klines come again exact (revision 1).

A hole REST cannot fill (it keeps failing, or it does not have those ids: one frame with a
far-ahead id) is given up after :data:`MAX_ATTEMPTS`: reported once, the symbol goes on from
the live stream and the klines over the hole stay marked gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from kline_rs import _core
from kline_rs.engine import Engine
from kline_rs.klines import TRADE_DTYPE

log = logging.getLogger("kline_rs.repair")

#: Fetches of one hole (and reports of the same hole again) before it is given up on.
MAX_ATTEMPTS = 5


class AggTradeSource(Protocol):
    """What the repairer needs from a REST client."""

    def agg_trades_from(
        self, symbol: str, from_id: int, *, until_id: int | None = None
    ) -> Any: ...  # an async iterator of pages (lists of aggTrade dicts)


@dataclass
class RepairStats:
    gaps: int = 0
    repaired: int = 0
    #: Holes given up on (REST failing, or without those ids): their klines stay marked gap.
    given_up: int = 0
    trades_fetched: int = 0
    #: Holes reported and not yet filled or given up (their symbols are not caught up).
    open: int = 0


class GapRepairer:
    """Polls the engine for id gaps and repairs each from REST."""

    def __init__(
        self,
        engine: Engine,
        rest: AggTradeSource,
        *,
        poll_every: float = 0.1,
        attempts: int = MAX_ATTEMPTS,
        retry_delay: float = 0.5,
    ) -> None:
        self.engine = engine
        self.rest = rest
        self.poll_every = poll_every
        self.attempts = attempts
        self.retry_delay = retry_delay
        self.stats = RepairStats()
        # Per symbol: where its last hole began and how often it was reported from there.
        self._reports: dict[str, tuple[int, int]] = {}

    async def run(self) -> None:
        """Repairs gaps as the engine reports them, until cancelled."""
        while True:
            holes = self.engine.poll_gaps()
            self.stats.open = len(holes)
            for symbol, from_id, to_id, _since in holes:
                self.stats.gaps += 1
                await self.repair(symbol, from_id, to_id)
                self.stats.open -= 1
            await asyncio.sleep(self.poll_every)

    async def repair(self, symbol: str, from_id: int, to_id: int) -> bool:
        """Fetches ids ``from_id..=to_id`` and replays them; False when given up (the klines
        over the hole stay gap)."""
        begun, reports = self._reports.get(symbol, (from_id, 0))
        reports = reports + 1 if begun == from_id else 1
        self._reports[symbol] = (from_id, reports)
        if reports > self.attempts:  # filled "in full" each time, yet the same hole again
            return self._give_up(symbol, from_id, to_id, "reported again after each fill")
        next_id, fetched, why, short = from_id, 0, "", False
        for attempt in range(self.attempts):
            if attempt:
                await asyncio.sleep(self.retry_delay * 2 ** (attempt - 1))
            try:
                pages = [
                    page[page["agg_id"] <= to_id]
                    async for page in self.rest.agg_trades_from(symbol, next_id, until_id=to_id)
                ]
                trades = np.concatenate(pages) if pages else np.empty(0, TRADE_DTYPE)
                self.stats.trades_fetched += len(trades)
                fetched += len(trades)
                if len(trades):
                    self.engine.backfill(symbol, trades)
                    next_id = int(trades["agg_id"].max()) + 1
                short = next_id <= to_id
                if short:  # REST's history ends before the hole does
                    why = f"REST has ids up to {next_id - 1} only"
                    log.info("%s: ids %d..%d not all there yet (%s)", symbol, from_id, to_id, why)
                    continue
                self.engine.feed_up(symbol)
                self.stats.repaired += 1
                log.info(
                    "%s: backfilled ids %d..%d (%d trades)", symbol, from_id, to_id, fetched,
                    extra={"symbol": symbol, "from_id": from_id, "to_id": to_id, "trades": fetched},
                )  # fmt: skip
                return True
            except _core.UnknownSymbolError:
                self._reports.pop(symbol, None)
                return False  # removed meanwhile: nothing to repair
            except Exception as e:  # any REST failure: retry, then give up
                why, short = f"{type(e).__name__}: {e}", False
                log.warning("%s: backfill of ids %d..%d failed (%s)", symbol, from_id, to_id, e)
        # The exchange has no ids past its history yet: the trade that opened the hole (id
        # to_id + 1) cannot be real, and is refused rather than made the symbol's last id.
        return self._give_up(
            symbol, from_id, to_id, why, impossible_from=to_id + 1 if short else None
        )

    def _give_up(
        self, symbol: str, from_id: int, to_id: int, why: str, *, impossible_from: int | None = None
    ) -> bool:
        self.stats.given_up += 1
        self._reports.pop(symbol, None)
        log.warning(
            "%s: aggTrade ids %d..%d given up after %d attempts (%s): going on from the live "
            "stream, the klines over them stay marked gap",
            symbol,
            from_id,
            to_id,
            self.attempts,
            why,
        )
        with contextlib.suppress(_core.UnknownSymbolError):  # removed meanwhile
            self.engine.feed_up(symbol, accept_holes=True, impossible_from=impossible_from)
        return False
