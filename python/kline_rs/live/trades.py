"""Binance aggTrade JSON objects → the engine's numpy trade arrays (exact integers); raw
trades seen as aggTrades of one trade."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from kline_rs import _core
from kline_rs.klines import trades as kline_trades

if TYPE_CHECKING:
    from kline_rs.rest import BinanceRest


def agg_trade_rows(trades: Sequence[dict[str, Any]]) -> npt.NDArray[np.void]:
    """REST/websocket aggTrades (``a p q f l T m``) → a :data:`~kline_rs.TRADE_DTYPE` array.

    Prices and quantities are parsed from their decimal text into integers at 1e-8.
    """
    n = len(trades)
    return kline_trades(
        agg_id=np.fromiter((t["a"] for t in trades), dtype=np.int64, count=n),
        price=np.fromiter((_core.parse_fixed8(t["p"]) for t in trades), dtype=np.int64, count=n),
        qty=np.fromiter((_core.parse_fixed8(t["q"]) for t in trades), dtype=np.int64, count=n),
        first_id=np.fromiter((t["f"] for t in trades), dtype=np.int64, count=n),
        last_id=np.fromiter((t["l"] for t in trades), dtype=np.int64, count=n),
        time=np.fromiter((t["T"] for t in trades), dtype=np.int64, count=n),
        buyer_is_maker=np.fromiter((bool(t["m"]) for t in trades), dtype=np.bool_, count=n),
    )


def raw_as_agg(t: Mapping[str, Any]) -> dict[str, Any]:
    """A REST raw trade (``id price qty time isBuyerMaker``) as an aggTrade of one trade."""
    i = t["id"]
    return {"a": i, "p": t["price"], "q": t["qty"], "f": i, "l": i, "T": t["time"],
            "m": t["isBuyerMaker"]}  # fmt: skip


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
    ) -> AsyncIterator[list[dict[str, Any]]]:
        async for page in self.rest.historical_trades_from(symbol, from_id, until_id=until_id):
            yield [raw_as_agg(t) for t in page]
