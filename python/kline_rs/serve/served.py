"""What a source serves: klines and symbols as values, and why it may refuse a request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from kline_rs._core import KlineError


class ServeError(KlineError):
    """A request the source cannot answer (the message says why)."""


class SymbolNotServedError(ServeError):
    """The source has no klines of this symbol."""


class IntervalNotServedError(ServeError):
    """No kept interval rolls up into the one asked for (or the name is no interval)."""


class ServedKline(NamedTuple):
    """One kline as served: exact integers (prices and volumes at 1e-8, quote volumes at
    1e-16 as the store keeps them), its revision, whether it covers a feed gap or a span the
    source does not hold, and whether its period is over and the kline final (``closed``).

    Immutable, like :class:`~kline_rs.engine.ClosedKline` (a tuple: a response holds
    thousands, made five times faster than a frozen dataclass); ``k._replace(closed=False)``
    for a changed copy."""

    open_time: int
    close_time: int
    open: int
    high: int
    low: int
    close: int
    volume: int
    quote_volume: int
    trades: int
    taker_buy_volume: int
    taker_buy_quote_volume: int
    first_trade_id: int
    last_trade_id: int
    gap: bool = False
    revision: int = 0
    closed: bool = True


@dataclass(frozen=True, slots=True)
class ServedSymbol:
    """A symbol in exchangeInfo: its status and assets (COIN-M: its contract size)."""

    symbol: str
    status: str = "TRADING"
    base_asset: str = ""
    quote_asset: str = ""
    contract_size: int | None = None
