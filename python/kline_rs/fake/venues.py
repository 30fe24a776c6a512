"""What differs between Binance spot, USD-M and COIN-M futures, as the fake exchange serves it.

Weights and limits are Binance's documented values (checked 2026-11): spot
``exchangeInfo`` 20, ``aggTrades`` 4, ``klines`` 2, 6000 weight per minute; USD-M and COIN-M
``exchangeInfo`` 1, ``aggTrades`` 20, ``klines`` 1/2/5/10 by ``limit`` ([1,100), [100,500),
[500,1000], >1000), 2400 per minute. Websocket: 5 incoming messages per second on spot, 10 on
futures, 1024 streams per connection; server pings every 20 s (spot) or 3 min (futures).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kline_rs.klines import INTERVALS


def _flat(weight: int) -> Callable[[int], int]:
    return lambda _limit: weight


def _futures_klines_weight(limit: int) -> int:
    return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10


@dataclass(frozen=True)
class Venue:
    """REST paths, weights, limits and stream rules of one Binance market."""

    name: str
    rest_prefix: str
    weight_limit: int
    exchange_info_weight: int
    agg_trades_weight: int
    #: ``historicalTrades`` (raw trades by ``fromId``): its weight and its largest ``limit``.
    historical_trades_weight: int
    historical_trades_max: int
    klines_weight: Callable[[int], int]
    klines_max: int
    intervals: tuple[str, ...]
    ws_messages_per_second: int
    ping_interval_s: float
    max_streams: int = 1024
    #: Futures print p/q with the symbol's own decimals and carry no "M" field.
    futures: bool = False
    #: COIN-M names the exchangeInfo status ``contractStatus``.
    status_key: str = "status"


SPOT = Venue(
    name="spot",
    rest_prefix="/api/v3",
    weight_limit=6000,
    exchange_info_weight=20,
    agg_trades_weight=4,
    historical_trades_weight=25,
    historical_trades_max=1000,
    klines_weight=_flat(2),
    klines_max=1000,
    intervals=INTERVALS,
    ws_messages_per_second=5,
    ping_interval_s=20.0,
)
USDM = Venue(
    name="usdm",
    rest_prefix="/fapi/v1",
    weight_limit=2400,
    exchange_info_weight=1,
    agg_trades_weight=20,
    historical_trades_weight=20,
    historical_trades_max=500,
    klines_weight=_futures_klines_weight,
    klines_max=1500,
    intervals=tuple(i for i in INTERVALS if i != "1s"),
    ws_messages_per_second=10,
    ping_interval_s=180.0,
    futures=True,
)
COINM = Venue(
    name="coinm",
    rest_prefix="/dapi/v1",
    weight_limit=2400,
    exchange_info_weight=1,
    agg_trades_weight=20,
    historical_trades_weight=20,
    historical_trades_max=500,
    klines_weight=_futures_klines_weight,
    klines_max=1500,
    intervals=USDM.intervals,
    ws_messages_per_second=10,
    ping_interval_s=180.0,
    futures=True,
    status_key="contractStatus",
)
VENUES = {v.name: v for v in (SPOT, USDM, COINM)}


def venue_named(name: str) -> Venue:
    """``spot``, ``usdm`` (alias ``futures``) or ``coinm`` (alias ``delivery``)."""
    aliases = {"futures": "usdm", "delivery": "coinm"}
    try:
        return VENUES[aliases.get(name, name)]
    except KeyError:
        raise ValueError(f"unknown venue {name!r}: expected spot, usdm or coinm") from None
