"""Binance spot, USD-M and COIN-M futures as Binance documents them: where each lives, what its
REST calls cost and allow, how its streams behave. One table, read by the REST client
(``kline_rs.rest``), the websocket feed (``kline_rs.feeds``) and the fake exchange
(``kline_rs.fake``), so that the fake serves what the client expects.

Request weights and limits (checked 2026-11-25 against the pages below; Binance changes them,
and the client's limiter adopts the server's ``X-MBX-USED-WEIGHT-1M`` count anyway):

- Spot, ``https://api.binance.com/api/v3``:
  ``exchangeInfo`` weight 20 (developers.binance.com/docs/binance-spot-api-docs/rest-api/
  general-endpoints); ``aggTrades`` limit ≤ 1000 (default 500), weight 2 on the stored copy of
  …/rest-api/market-data-endpoints but 4 on the spot testnet copy of that page and in a
  connector's docs (hexdocs.pm/binance_spot_rest), so we charge 4; ``klines`` limit ≤ 1000
  (default 500), weight 2 (hexdocs.pm/binance_spot_rest, Klines.Query). IP limit: the docs'
  ``rateLimits`` examples show ``REQUEST_WEIGHT`` 6000 per minute (…/web-socket-api/
  market-data-requests), which the fake exchange enforces; the long-standing figure, 1200, is
  the client's default until ``exchange_info()`` reports the real one.
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
- ``historicalTrades`` (raw trades by ``fromId``): weight and largest ``limit`` as Binance's
  docs give them (spot 25 / 1000, futures 20 / 500; not checked live here).
- Limits (developers.binance.com/docs/binance-spot-api-docs/rest-api/limits; the futures
  general-info page was not among the stored pages, and we assume the same rules there): every
  response carries ``X-MBX-USED-WEIGHT-(intervalNum)(intervalLetter)``, the weight used by the
  IP in that window (spot sends ``…-1M``; futures are said to send ``…-1m``; HTTP header names
  are case-insensitive, so one lookup serves both). A 1-minute window starts on each wall-clock
  minute (…/web-socket-api/connection-limits). Over the limit: HTTP 429 with ``Retry-After``
  (seconds); "failing to back off after receiving 429s will result in an automated IP ban",
  HTTP 418 with ``Retry-After`` until the ban ends, "from 2 minutes to 3 days". Limits are per
  IP, not per API key. Errors come as JSON ``{"code": -1121, "msg": "Invalid symbol."}``.

Websocket: 5 incoming messages per second on spot, 10 on futures, 1024 streams per
connection; the server pings every 20 s (spot) or 3 min (futures). Futures serve no 1s klines.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from kline_rs.klines import QuoteRule

VenueName = Literal["spot", "usdm", "coinm"]


@dataclass(frozen=True)
class Venue:
    """One Binance market: its addresses, REST costs and limits, and stream rules."""

    name: VenueName
    rest_url: str
    #: The REST paths' prefix (``/api/v3``), after ``rest_url``.
    rest_prefix: str
    ws_url: str
    #: REQUEST_WEIGHT per minute Binance allows an IP (what the fake exchange enforces).
    weight_limit: int
    #: REQUEST_WEIGHT per minute the client assumes until the server's exchangeInfo says.
    assumed_weight_per_minute: int
    exchange_info_weight: int
    agg_trades_weight: int
    agg_trades_max: int
    historical_trades_weight: int
    historical_trades_max: int
    klines_max: int
    #: Futures charge klines by ``limit``; spot charges a flat weight.
    klines_flat_weight: int | None
    #: COIN-M only: the widest startTime..endTime span, in ms (None: unbounded).
    klines_max_span_ms: int | None
    #: Whether it serves 1s klines (spot only).
    klines_1s: bool
    ws_messages_per_second: int
    ping_interval_s: float
    #: How its klines sum quote volume (docs/quote-volume-rounding.md): spot's per-trade
    #: truncation (USD-M: no capture tells the rules apart; its REST trades carry the same
    #: per-trade quoteQty). COIN-M's is per symbol: see :meth:`symbol_quote_rule`.
    quote_rule: QuoteRule = "per-trade"
    #: Its quote volumes are base-asset volume, contracts x the symbol's exchangeInfo
    #: ``contractSize`` / price (COIN-M; real captures).
    contract_sized: bool = False
    max_streams: int = 1024
    #: Futures print p/q with the symbol's own decimals and carry no "M" field.
    futures: bool = False
    #: COIN-M names the exchangeInfo status ``contractStatus``.
    status_key: str = "status"

    def symbol_quote_rule(self, contract_size: int | None) -> QuoteRule:
        """The quote rule of a symbol with ``contract_size`` (``contracts:<size>`` on COIN-M)."""
        if not self.contract_sized:
            return self.quote_rule
        if contract_size is None:
            raise ValueError(f"{self.name}: quote volumes need the symbol's contractSize")
        return f"contracts:{contract_size}"

    @property
    def intervals(self) -> tuple[str, ...]:
        """The kline intervals its REST API serves."""
        from kline_rs.klines import INTERVALS  # numpy: only where klines are served

        return INTERVALS if self.klines_1s else tuple(i for i in INTERVALS if i != "1s")

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

SPOT = Venue(
    name="spot",
    rest_url="https://api.binance.com",
    rest_prefix="/api/v3",
    ws_url="wss://stream.binance.com:9443",
    weight_limit=6000,
    assumed_weight_per_minute=1200,
    exchange_info_weight=20,
    agg_trades_weight=4,
    agg_trades_max=1000,
    historical_trades_weight=25,
    historical_trades_max=1000,
    klines_max=1000,
    klines_flat_weight=2,
    klines_max_span_ms=None,
    klines_1s=True,
    ws_messages_per_second=5,
    ping_interval_s=20.0,
)
USDM = Venue(
    name="usdm",
    rest_url="https://fapi.binance.com",
    rest_prefix="/fapi/v1",
    ws_url="wss://fstream.binance.com",
    weight_limit=2400,
    assumed_weight_per_minute=2400,
    exchange_info_weight=1,
    agg_trades_weight=20,
    agg_trades_max=1000,
    historical_trades_weight=20,
    historical_trades_max=500,
    klines_max=1500,
    klines_flat_weight=None,
    klines_max_span_ms=None,
    klines_1s=False,
    ws_messages_per_second=10,
    ping_interval_s=180.0,
    futures=True,
)
#: USD-M's costs and limits, at its own addresses, with COIN-M's own rules.
COINM = replace(
    USDM,
    name="coinm",
    rest_url="https://dapi.binance.com",
    rest_prefix="/dapi/v1",
    ws_url="wss://dstream.binance.com",
    klines_max_span_ms=200 * _DAY_MS,
    contract_sized=True,
    status_key="contractStatus",
)
VENUES: dict[VenueName, Venue] = {v.name: v for v in (SPOT, USDM, COINM)}


#: Quote assets recognised at the end of a symbol name, longest first (where no exchangeInfo
#: says: ``BTCUSDT`` is BTC/USDT, ``ETHBTC`` ETH/BTC, ``BTCUSD_PERP`` BTC/USD).
QUOTE_ASSETS: tuple[str, ...] = (
    "FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USDP", "DAI", "EUR", "TRY", "BRL", "GBP", "AUD",
    "JPY", "RUB", "UAH", "ZAR", "IDR", "NGN", "PLN", "RON", "ARS", "MXN", "COP", "CZK", "BTC",
    "ETH", "BNB", "XRP", "TRX", "DOGE", "DOT", "SOL", "USD",
)  # fmt: skip


def split_assets(symbol: str) -> tuple[str, str]:
    """(base, quote) of a symbol name by its known quote-asset suffix (futures: of the pair
    before ``_``); ``("", "")`` when none fits."""
    pair = symbol.split("_")[0]
    for quote in QUOTE_ASSETS:
        if pair.endswith(quote) and len(pair) > len(quote):
            return pair[: -len(quote)], quote
    return "", ""


def venue_named(name: str) -> Venue:
    """``spot``, ``usdm`` (alias ``futures``) or ``coinm`` (alias ``delivery``)."""
    key = {"futures": "usdm", "delivery": "coinm"}.get(name, name)
    if key not in VENUES:
        raise ValueError(f"unknown venue {name!r}: expected spot, usdm or coinm")
    return VENUES[key]
