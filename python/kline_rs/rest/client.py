"""The async Binance REST client: exchangeInfo, aggTrades and klines, rate-limited.

aiohttp rather than httpx: one library for the client and for the fake exchange server the
tests run against, and mature websocket support for the feeds as well.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from decimal import Decimal
from types import TracebackType
from typing import Any

import aiohttp
import numpy as np
import numpy.typing as npt

from kline_rs import _core
from kline_rs.rest.errors import BinanceApiError, IpBannedError, RateLimitedError, RestError
from kline_rs.rest.limiter import Clock, Sleep, WeightLimiter
from kline_rs.venues import VENUES, Venue, VenueName

_WEIGHT_HEADER = "x-mbx-used-weight-1m"  # spot sends "-1M", futures "-1m"
#: Klines per page when paging: on futures 1000 cost 5 and 1500 cost 10, so 1000 is cheaper.
KLINES_PAGE = 1000


class BinanceRest:
    """Binance public market data over REST for one venue, within its weight limits.

    Use as ``async with BinanceRest("spot") as rest: ...``; it owns an
    ``aiohttp.ClientSession`` unless one is given (which is then left open). Results are the
    raw JSON: prices and quantities stay decimal strings, and any bare JSON fraction becomes
    a ``Decimal``, never a float.

    All calls of one client share one :class:`WeightLimiter`. ``max_weight_per_minute``
    fixes the IP's REQUEST_WEIGHT limit; left out, it starts at the venue's documented
    default and follows ``rateLimits`` from :meth:`exchange_info`. At most ``safety`` of it
    is spent. Network errors and 5XX are retried ``retries`` times with jittered exponential
    backoff; a 429 is waited out (``Retry-After``) up to ``max_rate_limited`` times.
    """

    def __init__(
        self,
        venue: VenueName = "spot",
        *,
        base_url: str | None = None,
        session: aiohttp.ClientSession | None = None,
        max_weight_per_minute: int | None = None,
        safety: float = 0.9,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        retries: int = 5,
        max_rate_limited: int = 5,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        timeout: float = 30.0,
    ) -> None:
        if venue not in VENUES:
            raise ValueError(f"unknown venue {venue!r}: expected one of {sorted(VENUES)}")
        self._venue: Venue = VENUES[venue]
        self._base = (base_url or self._venue.rest_url).rstrip("/") + self._venue.rest_prefix
        self._session = session
        self._owns_session = session is None
        self._limit_fixed = max_weight_per_minute is not None
        self._limiter = WeightLimiter(
            max_weight_per_minute or self._venue.assumed_weight_per_minute,
            safety=safety,
            clock=clock,
            sleep=sleep,
        )
        self._sleep = sleep
        self._retries = retries
        self._max_rate_limited = max_rate_limited
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    @property
    def venue(self) -> VenueName:
        return self._venue.name

    @property
    def limiter(self) -> WeightLimiter:
        """The weight budget every call of this client goes through."""
        return self._limiter

    async def __aenter__(self) -> BinanceRest:
        self._open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session if this client opened it."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def exchange_info(self) -> dict[str, Any]:
        """``GET exchangeInfo``: symbols, their status and filters, and the rate limits."""
        info = await self._get("exchangeInfo", {}, self._venue.exchange_info_weight)
        if not isinstance(info, dict):
            raise RestError(f"exchangeInfo: expected a JSON object, got {type(info).__name__}")
        if not self._limit_fixed:
            for rule in info.get("rateLimits", []):
                if (
                    rule.get("rateLimitType") == "REQUEST_WEIGHT"
                    and rule.get("interval") == "MINUTE"
                    and rule.get("intervalNum") == 1
                    and isinstance(rule.get("limit"), int)
                ):
                    self._limiter.set_limit(rule["limit"])
        return info

    async def agg_trades(
        self,
        symbol: str,
        *,
        from_id: int | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """``GET aggTrades``: up to ``limit`` (≤ 1000) aggregate trades, oldest first."""
        if not 1 <= limit <= self._venue.agg_trades_max:
            raise ValueError(f"aggTrades limit must be 1..{self._venue.agg_trades_max}: {limit}")
        params = _params(symbol=symbol, fromId=from_id, startTime=start_time, endTime=end_time)
        params["limit"] = str(limit)
        trades = await self._get("aggTrades", params, self._venue.agg_trades_weight)
        return _json_list(trades, "aggTrades")

    async def agg_trades_from(
        self, symbol: str, from_id: int, *, until_id: int | None = None
    ) -> AsyncIterator[npt.NDArray[np.void]]:
        """Pages of aggregate trades from id ``from_id`` on, 1000 at a time, in id order, as
        :data:`~kline_rs.TRADE_DTYPE` arrays parsed by the core (exact integers).

        Stops after ``until_id`` (inclusive; the last page is cut there) or at the first
        short page, which is where the exchange's history ends for now.
        """
        size = self._venue.agg_trades_max

        async def page(next_id: int) -> npt.NDArray[np.void]:
            params = _params(symbol=symbol, fromId=next_id, limit=size)
            weight = self._venue.agg_trades_weight
            parsed: npt.NDArray[np.void] = await self._get(
                "aggTrades", params, weight, parse=_core.parse_agg_trades
            )
            return parsed

        async for p in _pages(page, "aggTrades", from_id, until_id, size):
            yield p

    async def historical_trades(
        self, symbol: str, *, from_id: int | None = None, limit: int = 500
    ) -> list[dict[str, Any]]:
        """``GET historicalTrades``: up to ``limit`` raw trades from ``from_id`` (``id price qty
        quoteQty time isBuyerMaker``), oldest first."""
        if not 1 <= limit <= self._venue.historical_trades_max:
            top = self._venue.historical_trades_max
            raise ValueError(f"historicalTrades limit must be 1..{top}: {limit}")
        params = _params(symbol=symbol, fromId=from_id)
        params["limit"] = str(limit)
        trades = await self._get("historicalTrades", params, self._venue.historical_trades_weight)
        return _json_list(trades, "historicalTrades")

    async def historical_trades_from(
        self, symbol: str, from_id: int, *, until_id: int | None = None
    ) -> AsyncIterator[npt.NDArray[np.void]]:
        """Pages of raw trades from id ``from_id`` on, as :meth:`agg_trades_from` pages (each
        trade an aggTrade of one: its id is its first and last id)."""
        size = self._venue.historical_trades_max

        async def page(next_id: int) -> npt.NDArray[np.void]:
            params = _params(symbol=symbol, fromId=next_id, limit=size)
            weight = self._venue.historical_trades_weight
            parsed: npt.NDArray[np.void] = await self._get(
                "historicalTrades", params, weight, parse=_core.parse_trades
            )
            return parsed

        async for p in _pages(page, "historicalTrades", from_id, until_id, size):
            yield p

    async def klines(
        self,
        symbol: str,
        interval: str,
        *,
        start_time: int | None = None,
        end_time: int | None = None,
        limit: int | None = None,
    ) -> list[list[Any]]:
        """``GET klines``: rows of 12 fields (open time, OHLC strings, volumes, …)."""
        if limit is not None and not 1 <= limit <= self._venue.klines_max:
            raise ValueError(f"klines limit must be 1..{self._venue.klines_max}: {limit}")
        params = _params(
            symbol=symbol, interval=interval, startTime=start_time, endTime=end_time, limit=limit
        )
        rows = await self._get("klines", params, self._venue.klines_weight(limit))
        return _json_list(rows, "klines")

    async def klines_range(
        self, symbol: str, interval: str, start: int, end: int
    ) -> AsyncIterator[list[list[Any]]]:
        """Pages of klines whose open time is in ``start..end`` (ms, inclusive), in order."""
        span = self._venue.klines_max_span_ms
        if span is not None:
            # COIN-M answers a window holding more than `limit` klines with its newest ones.
            span = min(span, KLINES_PAGE * _core.interval_ms(interval)[0])
        cursor = start
        while cursor <= end:
            window_end = end if span is None else min(end, cursor + span - 1)
            page = await self.klines(
                symbol, interval, start_time=cursor, end_time=window_end, limit=KLINES_PAGE
            )
            if page:
                yield page
            if len(page) == KLINES_PAGE:
                last = int(page[-1][0])
                if last < cursor:
                    raise RestError(f"klines startTime={cursor} went back to {last}")
                cursor = last + 1
            elif window_end >= end:
                return
            else:
                cursor = window_end + 1

    async def _get(
        self,
        endpoint: str,
        params: dict[str, str],
        weight: int,
        *,
        parse: Callable[[bytes], Any] | None = None,
    ) -> Any:
        """One GET with the limiter, 429 waits and network retries; the reply as JSON, or as
        ``parse`` reads it (the core's parsers: a reply it refuses is a :class:`RestError`)."""
        url = f"{self._base}/{endpoint}"
        failures = 0
        rate_limited = 0
        while True:
            window = await self._limiter.acquire(weight)
            try:
                async with self._open().get(url, params=params) as resp:
                    status, headers, body = resp.status, resp.headers, await resp.read()
            except (
                aiohttp.ClientConnectionError,
                aiohttp.ClientPayloadError,
                asyncio.TimeoutError,
            ) as e:
                failures += 1
                if failures > self._retries:
                    raise RestError(f"GET {url}: {e!r} after {failures} attempts") from e
                await self._sleep(self._backoff(failures))
                continue
            used = _used_weight(headers)
            if used is not None:
                self._limiter.observe(used, window)
            if status == 200:
                if parse is None:
                    return _parse(body, url)
                try:
                    return parse(body)
                except _core.KlineError as e:
                    raise RestError(f"GET {url}: {e}") from e
            retry_after = _retry_after(headers)
            if status == 418:
                span = self._limiter.ban(retry_after)
                raise IpBannedError(f"GET {url}: IP banned by Binance (418) for {span:.0f} s", span)
            if status == 429:
                rate_limited += 1
                if rate_limited > self._max_rate_limited:
                    raise RateLimitedError(f"GET {url}: 429 {rate_limited} times", retry_after)
                self._limiter.back_off(retry_after)
                continue
            if status >= 500 and failures < self._retries:
                failures += 1
                await self._sleep(self._backoff(failures))
                continue
            raise _http_error(status, body, url)

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    def _backoff(self, attempt: int) -> float:
        """Exponential in the attempt, capped, times a random factor in [0.5, 1)."""
        full = min(self._backoff_cap, self._backoff_base * 2.0 ** (attempt - 1))
        return full * (0.5 + random.random() / 2)


async def _pages(
    fetch: Callable[[int], Awaitable[npt.NDArray[np.void]]],
    endpoint: str,
    from_id: int,
    until_id: int | None,
    page_size: int,
) -> AsyncIterator[npt.NDArray[np.void]]:
    """Pages of trades by id from ``from_id``: stops after ``until_id`` (inclusive; the last
    page cut there) or at the first short page, where the exchange's history ends for now."""
    next_id = from_id
    while until_id is None or next_id <= until_id:
        page = await fetch(next_id)
        if not len(page):
            return
        last = int(page["agg_id"][-1])
        if last < next_id:
            raise RestError(f"{endpoint} fromId={next_id} went back to id {last}")
        if until_id is not None and last >= until_id:
            head = page[page["agg_id"] <= until_id]
            if len(head):
                yield head
            return
        yield page
        if len(page) < page_size:
            return
        next_id = last + 1


def _params(**values: str | int | None) -> dict[str, str]:
    return {k: str(v) for k, v in values.items() if v is not None}


def _parse(body: bytes, url: str) -> Any:
    try:
        return json.loads(body, parse_float=Decimal)
    except ValueError as e:
        raise RestError(f"GET {url}: reply is not JSON: {body[:200]!r}") from e


def _json_list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise RestError(f"{what}: expected a JSON array, got {type(value).__name__}")
    return value


def _used_weight(headers: Mapping[str, str]) -> int | None:
    for name, value in headers.items():
        if name.lower() == _WEIGHT_HEADER:
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                return None
    return None


def _http_error(status: int, body: bytes, url: str) -> RestError:
    try:
        err = json.loads(body)
    except ValueError:
        err = None
    if isinstance(err, dict) and isinstance(err.get("code"), int) and "msg" in err:
        return BinanceApiError(status, err["code"], str(err["msg"]))
    return RestError(f"GET {url}: HTTP {status}: {body[:200]!r}")
