"""What each Binance venue's REST API costs and allows, as Binance documents it.

Request weights and limits (checked 2026-11-25 against the pages below; Binance changes them,
and the limiter adopts the server's ``X-MBX-USED-WEIGHT-1M`` count anyway):

- Spot, ``https://api.binance.com/api/v3``:
  ``exchangeInfo`` weight 20 (developers.binance.com/docs/binance-spot-api-docs/rest-api/
  general-endpoints); ``aggTrades`` limit ≤ 1000 (default 500), weight 2 on the stored copy of
  …/rest-api/market-data-endpoints but 4 on the spot testnet copy of that page and in a
  connector's docs (hexdocs.pm/binance_spot_rest), so we charge 4; ``klines`` limit ≤ 1000
  (default 500), weight 2 (hexdocs.pm/binance_spot_rest, Klines.Query). IP limit: the docs'
  ``rateLimits`` examples show ``REQUEST_WEIGHT`` 6000 per minute (…/web-socket-api/
  market-data-requests); the long-standing figure, 1200, is our default until
  ``exchange_info()`` reports the real one.
- USD-M futures, ``https://fapi.binance.com/fapi/v1`` (developers.binance.com/docs/derivatives/
  usds-margined-futures/market-data/rest-api/…): ``exchangeInfo`` weight 1, ``rateLimits``
  ``REQUEST_WEIGHT`` 2400 per minute; ``aggTrades`` weight 20, limit ≤ 1000; ``klines`` limit
  ≤ 1500 (default 500), weight by limit: [1, 100) → 1, [100, 500) → 2, [500, 1000] → 5,
  > 1000 → 10. So 1000 klines cost 5 and 1500 cost 10: paging uses 1000.
- COIN-M futures, ``https://dapi.binance.com/dapi/v1`` (developers.binance.com/docs/derivatives/
  coin-margined-futures/market-data/…): ``aggTrades`` weight 20, limit ≤ 1000; ``klines`` as
  USD-M (limit ≤ 1500, same weight table), but startTime..endTime may span at most 200 days
  and a window holding more than ``limit`` klines returns the *latest* ``limit`` of them, so
  forward paging must use windows that hold at most ``limit`` klines. ``exchangeInfo`` weight:
  not found in the stored pages; charged 1 as on USD-M.
- Limits (developers.binance.com/docs/binance-spot-api-docs/rest-api/limits; the futures
  general-info page was not among the stored pages, and we assume the same rules there): every
  response carries ``X-MBX-USED-WEIGHT-(intervalNum)(intervalLetter)``, the weight used by the
  IP in that window (spot sends ``…-1M``; futures are said to send ``…-1m``; HTTP header names
  are case-insensitive, so one lookup serves both). A 1-minute window starts on each wall-clock
  minute (…/web-socket-api/connection-limits). Over the limit: HTTP 429 with ``Retry-After``
  (seconds); "failing to back off after receiving 429s will result in an automated IP ban",
  HTTP 418 with ``Retry-After`` until the ban ends, "from 2 minutes to 3 days". Limits are per
  IP, not per API key. Errors come as JSON ``{"code": -1121, "msg": "Invalid symbol."}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

VenueName = Literal["spot", "usdm", "coinm"]

#: Where 1 MINUTE windows begin and how long each is, in seconds of wall-clock time.
MINUTE = 60.0


@dataclass(frozen=True)
class Venue:
    """One Binance REST API: its address, paths and costs."""

    name: VenueName
    base_url: str
    prefix: str
    #: REQUEST_WEIGHT per minute assumed until the server's exchangeInfo says otherwise.
    weight_per_minute: int
    exchange_info_weight: int
    agg_trades_weight: int
    agg_trades_max: int
    #: ``historicalTrades`` (raw trades by ``fromId``): weight and largest ``limit``, as
    #: Binance's docs give them (spot 25 / 1000, futures 20 / 500; not checked live here).
    historical_trades_weight: int
    historical_trades_max: int
    klines_max: int
    #: Futures charge klines by ``limit``; spot charges a flat weight.
    klines_flat_weight: int | None
    #: COIN-M only: the widest startTime..endTime span, in ms (None: unbounded).
    klines_max_span_ms: int | None

    def klines_weight(self, limit: int | None) -> int:
        """The weight of one klines request with this ``limit`` (None: the default 500)."""
        if self.klines_flat_weight is not None:
            return self.klines_flat_weight
        n = 500 if limit is None else limit
        if n < 100:
            return 1
        if n < 500:
            return 2
        if n <= 1000:
            return 5
        return 10


_DAY_MS = 86_400_000

VENUES: dict[VenueName, Venue] = {
    "spot": Venue(
        name="spot",
        base_url="https://api.binance.com",
        prefix="/api/v3",
        weight_per_minute=1200,
        exchange_info_weight=20,
        agg_trades_weight=4,
        agg_trades_max=1000,
        historical_trades_weight=25,
        historical_trades_max=1000,
        klines_max=1000,
        klines_flat_weight=2,
        klines_max_span_ms=None,
    ),
    "usdm": Venue(
        name="usdm",
        base_url="https://fapi.binance.com",
        prefix="/fapi/v1",
        weight_per_minute=2400,
        exchange_info_weight=1,
        agg_trades_weight=20,
        agg_trades_max=1000,
        historical_trades_weight=20,
        historical_trades_max=500,
        klines_max=1500,
        klines_flat_weight=None,
        klines_max_span_ms=None,
    ),
    "coinm": Venue(
        name="coinm",
        base_url="https://dapi.binance.com",
        prefix="/dapi/v1",
        weight_per_minute=2400,
        exchange_info_weight=1,
        agg_trades_weight=20,
        agg_trades_max=1000,
        historical_trades_weight=20,
        historical_trades_max=500,
        klines_max=1500,
        klines_flat_weight=None,
        klines_max_span_ms=200 * _DAY_MS,
    ),
}

#: Klines per page when paging: on futures 1000 cost 5 and 1500 cost 10, so 1000 is cheaper.
KLINES_PAGE = 1000
