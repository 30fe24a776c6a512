"""History at start-up: a new symbol's klines are rebuilt from aggTrades over a lookback.

The symbol starts in a gap (live trades wait in the engine), the aggTrades from the lookback's
start are fetched over REST (rate-limited by the client) and handed to the engine as backfill;
``feed_up`` then applies them and the held live trades in aggTrade id order. The seam cannot
double count: an id applied once is a duplicate the second time.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from kline_rs.engine import Engine

log = logging.getLogger("kline_rs.history")
HOUR_MS = 3_600_000


class AggTradeHistory(Protocol):
    async def agg_trades(
        self, symbol: str, *, start_time: int | None = None, end_time: int | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]: ...  # fmt: skip

    def agg_trades_from(self, symbol: str, from_id: int, *, until_id: int | None = None) -> Any: ...


async def first_id_since(rest: AggTradeHistory, symbol: str, start: int, end: int) -> int | None:
    """The id of the first aggTrade at or after ``start`` (before ``end``), hour by hour."""
    t = start
    while t < end:
        page = await rest.agg_trades(
            symbol, start_time=t, end_time=min(t + HOUR_MS, end) - 1, limit=1
        )
        if page:
            return int(page[0]["a"])
        t += HOUR_MS
    return None


async def backfill_from(engine: Engine, rest: AggTradeHistory, symbol: str, from_id: int) -> int:
    """Backfills the aggTrades from ``from_id`` up to the present (a short page: it overlaps the
    held live trades, deduplicated by id); returns how many."""
    fetched = 0
    async for page in rest.agg_trades_from(symbol, from_id):
        engine.backfill(symbol, page)
        fetched += len(page)
    return fetched


async def load_history(
    engine: Engine, rest: AggTradeHistory, symbol: str, start: int, now: int
) -> int:
    """Backfills ``symbol`` (already in a gap via ``feed_down``) from ``start`` to now and
    calls ``feed_up``; returns the number of aggTrades fetched."""
    fetched = 0
    try:
        first = await first_id_since(rest, symbol, start, now)
        if first is not None:
            fetched = await backfill_from(engine, rest, symbol, first)
    finally:
        engine.feed_up(symbol)  # a hole left (if any) is reported and repaired
    log.info("%s: %d aggTrades of history since %d", symbol, fetched, start)
    return fetched


async def resume(
    engine: Engine, rest: AggTradeHistory | None, symbol: str, last_id: int | None
) -> int:
    """A symbol restored held from a store: the aggTrades after its checkpoint (up to the
    present, overlapping the held live trades) are backfilled, then ``feed_up``; returns the
    number fetched. Without a checkpoint (or REST) there is nothing to fetch."""
    fetched = 0
    try:
        if last_id is not None and rest is not None:
            fetched = await backfill_from(engine, rest, symbol, last_id + 1)
    finally:
        engine.feed_up(symbol)  # a hole left (if any) is reported and repaired
    log.info("%s: resumed after aggTrade %s, %d fetched", symbol, last_id, fetched)
    return fetched
