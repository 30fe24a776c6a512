"""Binance's REST market-data paths over a :class:`~kline_rs.serve.source.KlineSource`.

Under each venue's prefix (spot ``/api/v3``, USD-M ``/fapi/v1``, COIN-M ``/dapi/v1``):
``klines`` (spot also ``uiKlines``, served the same), ``exchangeInfo``, ``time`` and ``ping``,
each path speaking its venue's dialect (limits, weights, errors; see :mod:`.query`) over the
one source. Values are Binance's strings: 8-decimal text from the core's formatter, quote
volumes truncated from 1e-16 (``kline_rs.live.output``). ``GET /krs/v1/klines`` (same
parameters, spot's rules) answers JSON objects that also carry ``first_trade_id``,
``last_trade_id``, ``revision``, ``gap`` and ``closed``: what a chart needs to mark klines.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any

from aiohttp import web

from kline_rs.live.output import binance_rest_rows, kline_fields
from kline_rs.serve.errors import (
    BinanceError,
    invalid_interval,
    invalid_symbol,
    invalid_value,
)
from kline_rs.serve.limits import Guard, refusal_response
from kline_rs.serve.query import (
    DEFAULT_LIMIT,
    KLINE_PARAMETERS,
    KlineQuery,
    check_length,
    kline_query,
    parameters,
    raw_limit,
)
from kline_rs.serve.served import (
    IntervalNotServedError,
    ServedKline,
    SymbolNotServedError,
)
from kline_rs.serve.source import KlineSource
from kline_rs.storage.base import StorageError
from kline_rs.venues import COINM, SPOT, USDM, Venue

log = logging.getLogger("kline_rs.serve")

#: The prefix of our own extension paths.
EXTENSION_PREFIX = "/krs/v1"
#: What an exchangeInfo request may filter by (other parameters are ignored, as the
#: permission filters are: everything served is spot-like market data).
EXCHANGE_INFO_PARAMETERS = frozenset({"symbol", "symbols", "permissions", "showPermissionSets"})
#: The tick and step exchangeInfo states: the resolution of the exact values served.
STEP_TEXT = "0.00000001"

Build = Callable[[Mapping[str, str]], Awaitable[Any]]
Weight = Callable[[Mapping[str, str]], int]


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def served_object(symbol: str, interval: str, k: ServedKline) -> dict[str, Any]:
    """A kline as the extension path answers it (our JSON keys, as ``kline-rs run`` prints)."""
    return {
        "symbol": symbol,
        "interval": interval,
        **kline_fields(k),
        "first_trade_id": k.first_trade_id,
        "last_trade_id": k.last_trade_id,
        "revision": k.revision,
        "gap": k.gap,
        "closed": k.closed,
    }


class RestApi:
    """The REST routes over one source, behind one :class:`Guard`."""

    def __init__(self, source: KlineSource, guard: Guard) -> None:
        self.source = source
        self.guard = guard

    def routes(self) -> list[web.RouteDef]:
        out: list[web.RouteDef] = []
        for venue in (SPOT, USDM, COINM):
            out += self._venue_routes(venue)
        out.append(
            self._get(
                f"{EXTENSION_PREFIX}/klines",
                partial(_klines_weight, SPOT),
                self._extension_klines,
                KLINE_PARAMETERS,
            )
        )
        return out

    def _venue_routes(self, venue: Venue) -> list[web.RouteDef]:
        p = venue.rest_prefix

        def one(_params: Mapping[str, str]) -> int:
            return 1

        def info_weight(_params: Mapping[str, str]) -> int:
            return venue.exchange_info_weight

        out = [
            self._get(f"{p}/ping", one, self._ping, frozenset()),
            self._get(f"{p}/time", one, self._time, frozenset()),
            self._get(
                f"{p}/exchangeInfo", info_weight, partial(self._exchange_info, venue=venue), None
            ),
        ]
        for name in ["klines", "uiKlines"] if venue is SPOT else ["klines"]:
            out.append(
                self._get(
                    f"{p}/{name}",
                    partial(_klines_weight, venue),
                    partial(self._binance_klines, venue=venue),
                    KLINE_PARAMETERS,
                )
            )
        return out

    def _get(
        self, path: str, weight: Weight, build: Build, allowed: frozenset[str] | None
    ) -> web.RouteDef:
        async def handle(request: web.Request) -> web.Response:
            try:
                check_length(request.query_string)
                key = self.guard.client(request)
            except BinanceError as e:
                return refusal_response(e)
            try:
                with self.guard.in_flight(key):
                    raw = dict(request.query)
                    used = self.guard.admit(key, weight(raw)).used
                    body = await build(parameters(request.query, allowed))
            except BinanceError as e:
                return refusal_response(e, self.guard.used(key))
            except StorageError as e:
                log.warning("%s: the store failed: %s", path, e)
                refusal = BinanceError(
                    503, -1001, "Internal error; unable to process your request. Please try again."
                )
                return refusal_response(refusal, self.guard.used(key))
            except Exception:  # a bug: logged, and still answered in Binance's form
                log.exception("%s?%s failed", path, request.query_string[:200])
                refusal = BinanceError(
                    500, -1000, "An unknown error occurred while processing the request."
                )
                return refusal_response(refusal, self.guard.used(key))
            return web.Response(
                text=_dumps(body),
                content_type="application/json",
                headers={"X-MBX-USED-WEIGHT-1M": str(used)},
            )

        return web.get(path, handle, allow_head=False)

    # -- endpoints ----------------------------------------------------------------------------

    async def _ping(self, _params: Mapping[str, str]) -> dict[str, Any]:
        return {}

    async def _time(self, _params: Mapping[str, str]) -> dict[str, Any]:
        return {"serverTime": now_ms()}

    async def _served(self, q: KlineQuery) -> list[ServedKline]:
        if q.empty:
            return []
        try:
            return await self.source.klines(
                q.symbol, q.interval, q.start_ms, q.end_ms, q.limit, q.tz_offset
            )
        except SymbolNotServedError:
            raise invalid_symbol() from None
        except IntervalNotServedError as e:
            raise invalid_interval(str(e)) from None

    async def _binance_klines(self, params: Mapping[str, str], venue: Venue) -> list[list[Any]]:
        return binance_rest_rows(await self._served(kline_query(params, venue)))

    async def _extension_klines(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        q = kline_query(params, SPOT)
        return [served_object(q.symbol, q.interval, k) for k in await self._served(q)]

    async def _exchange_info(self, params: Mapping[str, str], venue: Venue) -> dict[str, Any]:
        await self.source.refresh()
        served = self.source.symbols()
        names = _asked_symbols(params)
        if names is not None:
            by_name = {s.symbol: s for s in served}
            if any(n not in by_name for n in names):
                raise invalid_symbol()
            served = [by_name[n] for n in names]
        filters = [
            {"filterType": "PRICE_FILTER", "minPrice": STEP_TEXT, "maxPrice": "0",
             "tickSize": STEP_TEXT},
            {"filterType": "LOT_SIZE", "minQty": STEP_TEXT, "maxQty": "0", "stepSize": STEP_TEXT},
        ]  # fmt: skip
        symbols = []
        for s in served:
            entry: dict[str, Any] = {
                "symbol": s.symbol, venue.status_key: s.status,
                "baseAsset": s.base_asset, "quoteAsset": s.quote_asset,
            }  # fmt: skip
            if venue.futures:
                perpetual = "_" not in s.symbol or s.symbol.endswith("_PERP")
                entry |= {
                    "pair": s.symbol.split("_")[0],
                    "contractType": "PERPETUAL" if perpetual else "CURRENT_QUARTER",
                    "marginAsset": s.base_asset if venue is COINM else s.quote_asset,
                    "pricePrecision": 8, "quantityPrecision": 8,
                    "baseAssetPrecision": 8, "quotePrecision": 8,
                }  # fmt: skip
                if s.contract_size is not None:
                    entry["contractSize"] = s.contract_size
            else:
                entry |= {
                    "baseAssetPrecision": 8, "quotePrecision": 8, "quoteAssetPrecision": 8,
                    "orderTypes": [], "isSpotTradingAllowed": True,
                    "isMarginTradingAllowed": False, "permissions": ["SPOT"],
                }  # fmt: skip
            entry["filters"] = filters
            symbols.append(entry)
        weight = {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                  "limit": self.guard.weight_per_minute}  # fmt: skip
        info: dict[str, Any] = {"timezone": "UTC", "serverTime": now_ms(), "rateLimits": [weight],
                                "exchangeFilters": [], "symbols": symbols}  # fmt: skip
        if venue is USDM:
            info["futuresType"] = "U_MARGINED"
        return info


def _klines_weight(venue: Venue, params: Mapping[str, str]) -> int:
    return venue.klines_weight(raw_limit(params))


def _asked_symbols(params: Mapping[str, str]) -> list[str] | None:
    """``symbol=X`` or ``symbols=["X","Y"]`` as Binance takes them (None: all)."""
    if params.get("symbol"):
        return [params["symbol"]]
    text = params.get("symbols")
    if not text:
        return None
    try:
        names = json.loads(text)
    except ValueError:
        names = None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise invalid_value("symbols")
    return names


__all__ = ["DEFAULT_LIMIT", "EXTENSION_PREFIX", "RestApi", "served_object"]
