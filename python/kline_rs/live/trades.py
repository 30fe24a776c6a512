"""Raw trades seen as aggTrades of one trade, so a ``@trade`` feed is repaired and resumed as
an ``@aggTrade`` feed is (the core parses both REST replies into the same trade arrays)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from kline_rs.rest import BinanceRest


class RawTradeRest:
    """A REST client seen through aggTrade-shaped pages of raw trades, so history, resume and
    id-gap repair of a ``@trade`` feed work as they do for aggTrades (ids are trade ids)."""

    def __init__(self, rest: BinanceRest) -> None:
        self.rest = rest

    async def agg_trades(
        self, symbol: str, *, start_time: int | None = None, end_time: int | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Where raw trades start in a time window: each aggTrade there as its first raw trade
        (``a`` = its ``f``): raw trades cannot be asked for by time."""
        page = await self.rest.agg_trades(
            symbol, start_time=start_time, end_time=end_time, limit=limit
        )
        return [t | {"a": t["f"]} for t in page]

    async def agg_trades_from(
        self, symbol: str, from_id: int, *, until_id: int | None = None
    ) -> AsyncIterator[npt.NDArray[np.void]]:
        async for page in self.rest.historical_trades_from(symbol, from_id, until_id=until_id):
            yield page
