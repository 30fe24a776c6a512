"""Binance REST (spot, USD-M, COIN-M): exchangeInfo, aggTrades and klines, weight-limited.

``client`` is the API, ``limiter`` the per-minute weight budget, ``errors`` the exceptions;
what Binance documents about each API (weights, limits, with sources) is ``kline_rs.venues``.
"""

from kline_rs.rest.client import BinanceRest
from kline_rs.rest.errors import BinanceApiError, IpBannedError, RateLimitedError, RestError
from kline_rs.rest.limiter import WeightLimiter
from kline_rs.venues import VENUES, Venue, VenueName

__all__ = [
    "VENUES",
    "BinanceApiError",
    "BinanceRest",
    "IpBannedError",
    "RateLimitedError",
    "RestError",
    "Venue",
    "VenueName",
    "WeightLimiter",
]
