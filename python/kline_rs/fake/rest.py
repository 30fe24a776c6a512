"""The REST side: exchangeInfo, aggTrades and klines under the venue's prefix, weighted.

Every response carries ``X-MBX-USED-WEIGHT-1M`` (and the older ``X-MBX-USED-WEIGHT``); errors
are Binance's ``{"code": …, "msg": …}`` objects.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from kline_rs._core import format_fixed8, parse_fixed8
from kline_rs.fake.events import dumps, raw_trade_events, venue_trade
from kline_rs.fake.faults import Faults
from kline_rs.fake.kline_rows import KlineBook
from kline_rs.fake.market import Market
from kline_rs.fake.ratelimit import Verdict, WeightLimiter
from kline_rs.fake.stats import ExchangeStats
from kline_rs.fake.tape import TRADING, Instrument, decimals_of, fixed8, trim
from kline_rs.venues import Venue

AGG_TRADES_MAX = 1000
DEFAULT_LIMIT = 500
HOUR_MS = 3_600_000
INT_PATTERN = "^[0-9]{1,20}$"


@dataclass
class BinanceError(Exception):
    """A refused request, answered as Binance does."""

    status: int
    code: int
    msg: str


def mandatory(name: str) -> BinanceError:
    msg = f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    return BinanceError(400, -1102, msg)


def int_param(query: Mapping[str, str], name: str) -> int | None:
    text = query.get(name)
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        msg = f"Illegal characters found in parameter '{name}'; legal range is '{INT_PATTERN}'."
        raise BinanceError(400, -1100, msg) from None


def limit_param(query: Mapping[str, str], maximum: int) -> int:
    """``limit``: default 500; values outside [1, maximum] are clamped (assumed, see module)."""
    limit = int_param(query, "limit")
    return DEFAULT_LIMIT if limit is None else max(1, min(limit, maximum))


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RestApi:
    """The REST endpoints of one venue over one market."""

    def __init__(
        self,
        market: Market,
        venue: Venue,
        faults: Faults,
        limiter: WeightLimiter,
        stats: ExchangeStats,
        pump: Callable[[], object],
    ) -> None:
        self.market = market
        self.venue = venue
        self.faults = faults
        self.limiter = limiter
        self.stats = stats
        self._pump = pump
        self._klines = KlineBook(venue)

    def routes(self) -> list[web.RouteDef]:
        prefix = self.venue.rest_prefix
        endpoints: dict[str, tuple[Callable[[Mapping[str, str]], int], Callable[..., Any]]] = {
            "ping": (lambda _q: 1, lambda _q: {}),
            "time": (lambda _q: 1, lambda _q: {"serverTime": self.market.now_ms}),
            "exchangeInfo": (lambda _q: self.venue.exchange_info_weight, self.exchange_info),
            "aggTrades": (lambda _q: self.venue.agg_trades_weight, self.agg_trades),
            "historicalTrades": (
                lambda _q: self.venue.historical_trades_weight,
                self.historical_trades,
            ),
            "klines": (self._klines_weight, self.klines),
        }
        return [
            web.get(f"{prefix}/{name}", self._endpoint(weight, build))
            for name, (weight, build) in endpoints.items()
        ]

    def _klines_weight(self, query: Mapping[str, str]) -> int:
        try:
            return self.venue.klines_weight(limit_param(query, self.venue.klines_max))
        except BinanceError:
            return self.venue.klines_weight(DEFAULT_LIMIT)

    def _endpoint(
        self, weight: Callable[[Mapping[str, str]], int], build: Callable[[Mapping[str, str]], Any]
    ) -> Handler:
        async def handle(request: web.Request) -> web.Response:
            self.stats.rest_requests += 1
            self.stats.recent_requests.append(request.path_qs)
            forced = self.faults.retry_after_s if self.faults.rest_429 > 0 else None
            verdict = self.limiter.admit(weight(request.query), forced_retry_after=forced)
            if verdict.status == 429 and forced is not None:
                self.faults.rest_429 -= 1
            if verdict.status != 200:
                return self._refusal(verdict)
            self._pump()
            try:
                body = build(request.query)
            except BinanceError as err:
                return self._json({"code": err.code, "msg": err.msg}, verdict.used, err.status)
            return self._json(body, verdict.used)

        return handle

    def _json(self, body: Any, used: int, status: int = 200, **headers: str) -> web.Response:
        weight = str(used)
        return web.Response(
            text=dumps(body),
            status=status,
            content_type="application/json",
            headers={"X-MBX-USED-WEIGHT-1M": weight, "X-MBX-USED-WEIGHT": weight, **headers},
        )

    def _refusal(self, verdict: Verdict) -> web.Response:
        if verdict.status == 418:
            self.stats.rest_418 += 1
            until = int(verdict.banned_until * 1000)
            msg = (
                f"Way too much request weight used; IP banned until {until}. "
                "Please use WebSocket Streams for live updates to avoid bans."
            )
        else:
            self.stats.rest_429 += 1
            msg = (
                f"Too many requests; current limit of IP(127.0.0.1) request weight is "
                f"{self.limiter.limit} request weight per 1 MINUTE. Please use WebSocket "
                "Streams for live updates to avoid polling the API."
            )
        body = {"code": -1003, "msg": msg}
        return self._json(
            body, verdict.used, verdict.status, **{"Retry-After": str(verdict.retry_after)}
        )

    def _instrument(self, query: Mapping[str, str]) -> Instrument:
        symbol = query.get("symbol")
        if not symbol:
            raise mandatory("symbol")
        inst = self.market.instruments.get(symbol)
        if inst is None:
            raise BinanceError(400, -1121, "Invalid symbol.")
        return inst

    # -- endpoints ------------------------------------------------------------------------

    def exchange_info(self, query: Mapping[str, str]) -> dict[str, Any]:
        wanted = list(self.market.instruments.values())
        if not self.venue.futures and ("symbol" in query or "symbols" in query):
            names = [query["symbol"]] if "symbol" in query else _symbol_list(query["symbols"])
            if any(n not in self.market.instruments for n in names):
                raise BinanceError(400, -1121, "Invalid symbol.")
            wanted = [self.market.instruments[n] for n in names]
        info: dict[str, Any] = {"timezone": "UTC", "serverTime": self.market.now_ms}
        if self.venue.name == "usdm":
            info["futuresType"] = "U_MARGINED"
        info["rateLimits"] = self._rate_limits()
        info["exchangeFilters"] = []
        info["symbols"] = [self._symbol_info(inst) for inst in wanted]
        return info

    def _rate_limits(self) -> list[dict[str, Any]]:
        def limit(kind: str, interval: str, num: int, value: int) -> dict[str, Any]:
            return {"rateLimitType": kind, "interval": interval, "intervalNum": num, "limit": value}

        weight = limit("REQUEST_WEIGHT", "MINUTE", 1, self.limiter.limit)
        if self.venue.futures:
            return [weight, limit("ORDERS", "MINUTE", 1, 1200), limit("ORDERS", "SECOND", 10, 300)]
        return [
            weight,
            limit("ORDERS", "SECOND", 10, 100),
            limit("ORDERS", "DAY", 1, 200000),
            limit("RAW_REQUESTS", "MINUTE", 5, 61000),
        ]

    def _symbol_info(self, inst: Instrument) -> dict[str, Any]:
        tick, lot = self._step_text(inst.tick), self._step_text(inst.lot)
        filters = [
            {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": self._step_text(10**15),
             "tickSize": tick},
            {"filterType": "LOT_SIZE", "minQty": lot, "maxQty": self._step_text(9 * 10**16),
             "stepSize": lot},
        ]  # fmt: skip
        base, quote = inst.base_asset, inst.quote_asset
        if not self.venue.futures:
            return {
                "symbol": inst.symbol, "status": inst.status,
                "baseAsset": base, "baseAssetPrecision": 8,
                "quoteAsset": quote, "quotePrecision": 8, "quoteAssetPrecision": 8,
                "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
                "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
                "filters": filters, "permissions": ["SPOT"],
            }  # fmt: skip
        perpetual = "_" not in inst.symbol or inst.symbol.endswith("_PERP")
        info: dict[str, Any] = {
            "symbol": inst.symbol, "pair": inst.symbol.split("_")[0],
            "contractType": "PERPETUAL" if perpetual else "CURRENT_QUARTER",
            "deliveryDate": 4133404800000, "onboardDate": inst.listed_ms,
            self.venue.status_key: inst.status,
            "baseAsset": base, "quoteAsset": quote,
            "marginAsset": base if self.venue.name == "coinm" else quote,
            "pricePrecision": decimals_of(inst.tick), "quantityPrecision": decimals_of(inst.lot),
            "baseAssetPrecision": 8, "quotePrecision": 8,
            "filters": filters,
        }  # fmt: skip
        if self.venue.name == "coinm":
            info["contractSize"] = inst.contract_size
        return info

    def _step_text(self, step: int) -> str:
        text = fixed8(step)
        return trim(text, decimals_of(step)) if self.venue.futures else text

    def agg_trades(self, query: Mapping[str, str]) -> list[dict[str, Any]]:
        """Binance's selection: ``fromId`` pages by id (inclusive); a time window (inclusive,
        ≤ 1 h) gives its first ``limit`` trades; nothing gives the most recent ``limit``."""
        inst = self._instrument(query)
        from_id, start, end = (int_param(query, n) for n in ("fromId", "startTime", "endTime"))
        limit = limit_param(query, AGG_TRADES_MAX)
        if start is not None and end is not None:
            if start > end:
                raise BinanceError(400, -1023, "Start time is greater than end time.")
            if end - start > HOUR_MS:
                raise BinanceError(400, -1127, "More than 1 hours between startTime and endTime.")
        tape = self.market.tape(inst.symbol)
        lo = 0 if start is None else tape.index_of_time(start)
        hi = len(tape) if end is None else tape.index_of_time(end, after=True)
        if from_id is not None:
            lo = max(lo, tape.index_of_id(from_id))
        elif start is None:
            lo = max(lo, hi - limit)
        hi = min(hi, lo + limit)
        return [venue_trade(self.venue, inst, tape.trade(i)) for i in range(lo, hi)]

    def historical_trades(self, query: Mapping[str, str]) -> list[dict[str, Any]]:
        """Raw trades from ``fromId`` (the most recent without it), as the ``@trade`` stream
        sends them (each aggTrade's quantity split on lots), in REST's keys."""
        inst = self._instrument(query)
        limit = limit_param(query, self.venue.historical_trades_max)
        from_id = int_param(query, "fromId")
        tape = self.market.tape(inst.symbol)
        out: list[dict[str, Any]] = []
        i = max(0, len(tape) - limit) if from_id is None else tape.index_of_raw_id(from_id)
        while i < len(tape) and len(out) < limit:
            for e in raw_trade_events(self.venue, inst, tape.trade(i), 0):
                if from_id is not None and e["t"] < from_id:
                    continue
                p, q = e["p"], e["q"]
                quote = format_fixed8(parse_fixed8(p) * parse_fixed8(q) // 10**8)
                row = {"id": e["t"], "price": p, "qty": q, "quoteQty": quote, "time": e["T"],
                       "isBuyerMaker": e["m"]}  # fmt: skip
                out.append(row if self.venue.futures else row | {"isBestMatch": True})
            i += 1
        return out[-limit:] if from_id is None else out[:limit]

    def klines(self, query: Mapping[str, str]) -> list[list[Any]]:
        inst = self._instrument(query)
        interval = query.get("interval")
        if not interval:
            raise mandatory("interval")
        if interval not in self.venue.intervals:
            raise BinanceError(400, -1120, "Invalid interval.")
        start, end = int_param(query, "startTime"), int_param(query, "endTime")
        if start is not None and end is not None and start > end:
            raise BinanceError(400, -1023, "Start time is greater than end time.")
        now = self.market.now_ms
        until = now if inst.status == TRADING else min(now, inst.status_since_ms)
        rows = self._klines.select(
            inst,
            self.market.tape(inst.symbol),
            interval,
            until_ms=until,
            start=start,
            end=end,
            limit=limit_param(query, self.venue.klines_max),
        )
        if inst.symbol in self.faults.bad_klines:
            rows = [[*r[:5], "1e9", *r[6:]] for r in rows]
        return rows


def _symbol_list(text: str) -> list[str]:
    """``["BTCUSDT","ETHUSDT"]`` as Binance takes it in the query string."""
    return [s.strip().strip('"') for s in text.strip("[]").split(",") if s.strip()]
