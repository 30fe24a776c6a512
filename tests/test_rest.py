"""The Binance REST client against a fake Binance on loopback (real HTTP, virtual time).

The fake counts request weight per minute as Binance does, answers 429 over its limit and
418 to anything sent during a 429's Retry-After, so a client that does not obey fails here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import socket
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import kline_rs
import numpy as np
import pytest
from aiohttp import web
from kline_rs import KlineError
from kline_rs.rest import (
    VENUES,
    BinanceApiError,
    BinanceRest,
    IpBannedError,
    RateLimitedError,
    RestError,
    VenueName,
)

T0 = 1_700_000_040.0 + 10  # 10 s into a wall-clock minute
K0 = 1_577_836_800_000  # 2020-01-01 00:00 UTC, first kline's open time
PREFIX: dict[VenueName, str] = {"spot": "/api/v3", "usdm": "/fapi/v1", "coinm": "/dapi/v1"}


class VirtualTime:
    """An injectable clock and sleep: sleeping moves the clock, nobody waits for real."""

    def __init__(self, start: float) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        wake = self.now + seconds
        await asyncio.sleep(0)  # let other tasks run at the frozen time
        self.now = max(self.now, wake)


@dataclass
class Fault:
    """What the fake answers to the next request instead of the data."""

    kind: str  # "429", "418", "error", "status", "cut"
    retry_after: float | None = None
    status: int = 0
    code: int = 0
    msg: str = ""


@dataclass
class Hit:
    time: float
    endpoint: str
    query: dict[str, str]
    status: int = 0


def _weight(venue: VenueName, endpoint: str, query: dict[str, str]) -> int:
    """The fake's own copy of Binance's published weights."""
    if venue == "spot":
        return {"exchangeInfo": 20, "aggTrades": 4, "klines": 2}[endpoint]
    if endpoint == "klines":
        n = int(query.get("limit", "500"))
        return 1 if n < 100 else 2 if n < 500 else 5 if n <= 1000 else 10
    return {"exchangeInfo": 1, "aggTrades": 20}[endpoint]


@dataclass
class FakeBinance:
    """A loopback Binance for one venue: aggTrades by fromId, 1m klines, exchangeInfo."""

    clock: VirtualTime
    venue: VenueName = "spot"
    limit: int = 1200
    trades: list[dict[str, Any]] = field(default_factory=list)
    kline_count: int = 0
    rate_limits: list[dict[str, Any]] = field(default_factory=list)
    #: Weight used in a window by other processes on the same IP.
    external: dict[int, int] = field(default_factory=dict)
    script: list[Fault] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    used: defaultdict[int, int] = field(default_factory=lambda: defaultdict(int))
    penalty_until: float = -math.inf

    @property
    def header(self) -> str:
        return "X-MBX-USED-WEIGHT-1M" if self.venue == "spot" else "X-MBX-USED-WEIGHT-1m"

    def statuses(self) -> list[int]:
        return [h.status for h in self.hits]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        now = self.clock()
        endpoint = request.match_info["endpoint"]
        hit = Hit(now, endpoint, dict(request.query))
        self.hits.append(hit)
        resp = self._answer(hit, now)
        hit.status = resp.status
        if resp.status == 599:  # the connection breaks halfway through the reply
            cut = web.StreamResponse(headers={"Content-Length": "100"})
            await cut.prepare(request)
            await cut.write(b"[{")
            assert request.transport is not None
            request.transport.close()
            return cut
        return resp

    def _answer(self, hit: Hit, now: float) -> web.Response:
        if now < self.penalty_until:  # Binance bans clients that ignore a 429
            return web.Response(status=418, headers={"Retry-After": "120"})
        window = math.floor(now / 60)
        if window not in self.used:
            self.used[window] = self.external.get(window, 0)
        self.used[window] += _weight(self.venue, hit.endpoint, hit.query)
        headers = {self.header: str(self.used[window])}
        fault = self.script.pop(0) if self.script else None
        if fault is None and self._coinm_span_too_wide(hit):
            fault = Fault("error", status=400, code=-1130, msg="Data sent is invalid.")
        if fault is None and self.used[window] > self.limit:
            fault = Fault("429", retry_after=(window + 1) * 60 - now)
        if fault is not None:
            if fault.kind == "cut":
                return web.Response(status=599)
            if fault.retry_after is not None:
                headers["Retry-After"] = str(int(fault.retry_after))
            if fault.kind == "429":
                self.penalty_until = now + (fault.retry_after or (window + 1) * 60 - now)
                return web.Response(status=429, headers=headers)
            if fault.kind == "418":
                return web.Response(status=418, headers=headers)
            if fault.kind == "error":
                body = {"code": fault.code, "msg": fault.msg}
                return web.json_response(body, status=fault.status, headers=headers)
            return web.Response(status=fault.status, text="busy", headers=headers)
        return web.json_response(self._data(hit), headers=headers)

    def _coinm_span_too_wide(self, hit: Hit) -> bool:
        """COIN-M klines allow at most 200 days between startTime and endTime."""
        if self.venue != "coinm" or hit.endpoint != "klines":
            return False
        return int(hit.query["endTime"]) - int(hit.query["startTime"]) > 200 * 86_400_000

    def _data(self, hit: Hit) -> Any:
        q = hit.query
        if hit.endpoint == "exchangeInfo":
            return {"timezone": "UTC", "rateLimits": self.rate_limits, "symbols": []}
        if hit.endpoint == "aggTrades":
            start = int(q["fromId"])
            return [t for t in self.trades if t["a"] >= start][: int(q["limit"])]
        start, end, limit = int(q["startTime"]), int(q["endTime"]), int(q["limit"])
        opens = [K0 + i * 60_000 for i in range(self.kline_count)]
        rows = [_kline(t) for t in opens if start <= t <= end]
        # COIN-M gives the newest `limit` of the window; spot and USD-M the oldest.
        return rows[-limit:] if self.venue == "coinm" else rows[:limit]


def _trade(agg_id: int) -> dict[str, Any]:
    return {
        "a": agg_id,
        "p": f"{7000 + agg_id % 97}.{agg_id % 13:08d}",
        "q": "0.00100000",
        "f": 2 * agg_id,
        "l": 2 * agg_id + 1,
        "T": 1_577_977_823_305 + agg_id,
        "m": agg_id % 2 == 0,
        "M": True,
    }


def _kline(open_time: int) -> list[Any]:
    return [open_time, "1.10", "1.20", "1.00", "1.15", "10.0", open_time + 59_999, "11.5", 5]


@contextlib.asynccontextmanager
async def serving(fake: FakeBinance) -> AsyncIterator[str]:
    """Run ``fake`` on a free loopback port; yield its base URL."""
    app = web.Application()
    app.router.add_get("/{api}/{version}/{endpoint}", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    site = web.SockSite(runner, sock)
    await site.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        await runner.cleanup()


Scenario = Callable[[FakeBinance, BinanceRest, VirtualTime], Awaitable[Any]]


def run(scenario: Scenario, *, venue: VenueName = "spot", **kwargs: Any) -> tuple[FakeBinance, Any]:
    """Serve a fake ``venue`` and run ``scenario`` with a client on virtual time."""
    fake_args = {
        k: kwargs.pop(k) for k in ("limit", "trades", "kline_count", "rate_limits") if k in kwargs
    }
    setup: Callable[[FakeBinance], None] = kwargs.pop("setup", lambda fake: None)

    async def main() -> tuple[FakeBinance, Any]:
        clock = VirtualTime(T0)
        fake = FakeBinance(clock, venue, **fake_args)
        setup(fake)
        async with (
            serving(fake) as url,
            BinanceRest(venue, base_url=url, clock=clock, sleep=clock.sleep, **kwargs) as rest,
        ):
            return fake, await scenario(fake, rest, clock)

    return asyncio.run(main())


async def _collect(pages: AsyncIterator[Any]) -> list[Any]:
    return [page async for page in pages]


# ---- paging ---------------------------------------------------------------------------------


@pytest.mark.parametrize("venue", ["spot", "usdm", "coinm"])
def test_agg_trades_from_pages_every_trade_once_in_order(venue: VenueName) -> None:
    trades = [_trade(i) for i in range(100, 2600)]

    async def scenario(fake: FakeBinance, rest: BinanceRest, clock: VirtualTime) -> Any:
        return await _collect(rest.agg_trades_from("BTCUSDT", 100))

    fake, pages = run(scenario, venue=venue, trades=trades, limit=10_000)
    assert [len(p) for p in pages] == [1000, 1000, 500]  # the short page ends it
    got = np.concatenate(pages)
    assert got["agg_id"].tolist() == list(range(100, 2600))
    # Parsed by the core from the exchange's decimal strings, exactly.
    assert got.tolist() == kline_rs.parse_agg_trades(json.dumps(trades).encode()).tolist()
    assert got["price"][0] == kline_rs.parse_fixed8(trades[0]["p"])
    assert [h.query["fromId"] for h in fake.hits] == ["100", "1100", "2100"]
    assert {h.query["limit"] for h in fake.hits} == {"1000"}


def test_agg_trades_from_stops_at_until_id_and_at_an_empty_page() -> None:
    trades = [_trade(i) for i in range(1, 2001)]

    async def scenario(fake: FakeBinance, rest: BinanceRest, clock: VirtualTime) -> Any:
        upto = await _collect(rest.agg_trades_from("BTCUSDT", 5, until_id=1234))
        requests_upto = len(fake.hits)
        everything = await _collect(rest.agg_trades_from("BTCUSDT", 1))
        return upto, requests_upto, everything

    fake, (upto, requests_upto, everything) = run(scenario, trades=trades)
    assert [a for p in upto for a in p["agg_id"].tolist()] == list(range(5, 1235))
    assert requests_upto == 2
    # 2000 trades: two full pages, then an empty one says the history ends there.
    assert [a for p in everything for a in p["agg_id"].tolist()] == list(range(1, 2001))
    assert [h.query["fromId"] for h in fake.hits[requests_upto:]] == ["1", "1001", "2001"]


@pytest.mark.parametrize("venue", ["spot", "usdm", "coinm"])
def test_klines_range_pages_forward_by_open_time(venue: VenueName) -> None:
    last = K0 + 2499 * 60_000

    async def scenario(fake: FakeBinance, rest: BinanceRest, clock: VirtualTime) -> Any:
        return await _collect(rest.klines_range("BTCUSD_PERP", "1m", K0 + 30_000, last))

    fake, pages = run(scenario, venue=venue, kline_count=2600, limit=10_000)
    opens = [row[0] for page in pages for row in page]
    assert opens == [K0 + i * 60_000 for i in range(1, 2500)]
    assert pages[0][0][1] == "1.10"  # decimal text untouched
    assert len(fake.hits) == 3
    # On futures 1000 klines cost 5 and 1500 cost 10: paging asks for 1000.
    assert {h.query["limit"] for h in fake.hits} == {"1000"}


def test_klines_weight_follows_the_published_tables() -> None:
    usdm, coinm, spot = VENUES["usdm"], VENUES["coinm"], VENUES["spot"]
    table = {1: 1, 99: 1, 100: 2, 499: 2, 500: 5, 1000: 5, 1001: 10, 1500: 10, None: 5}
    assert {n: usdm.klines_weight(n) for n in table} == table
    assert {n: coinm.klines_weight(n) for n in table} == table
    assert {spot.klines_weight(n) for n in table} == {2}


# ---- the weight limiter ---------------------------------------------------------------------


def test_limiter_waits_for_the_next_minute_when_the_budget_is_spent() -> None:
    async def scenario(fake: FakeBinance, rest: BinanceRest, clock: VirtualTime) -> Any:
        for _ in range(30):
            await rest.agg_trades("BTCUSDT", from_id=1)

    # Budget 90 % of 100 = 90 = 22 requests of weight 4; the 23rd waits for the next minute.
    fake, _ = run(scenario, limit=100, max_weight_per_minute=100, trades=[_trade(1)])
    next_minute = (math.floor(T0 / 60) + 1) * 60
    assert [h.time for h in fake.hits[:22]] == [T0] * 22
    assert all(h.time >= next_minute for h in fake.hits[22:])
    assert fake.clock.sleeps == [pytest.approx(next_minute + 1 - T0)]
    assert set(fake.statuses()) == {200}  # never a 429


@pytest.mark.parametrize(("venue", "weight"), [("spot", 4), ("usdm", 20)])
def test_limiter_adopts_the_servers_used_weight(venue: VenueName, weight: int) -> None:
    window = math.floor(T0 / 60)
    external = 90 - 2 * weight  # other processes on the IP: room left for two requests

    async def scenario(fake: FakeBinance, rest: BinanceRest, clock: VirtualTime) -> Any:
        await rest.agg_trades("BTCUSDT", from_id=1)
        after_first = rest.limiter.used
        for _ in range(2):
            await rest.agg_trades("BTCUSDT", from_id=1)
        return after_first

    fake, after_first = run(
        scenario,
        venue=venue,
        limit=100,
        max_weight_per_minute=100,
        trades=[_trade(1)],
        setup=lambda f: f.external.update({window: external}),
    )
    assert after_first == external + weight  # the header, not our own count of `weight`
    assert [h.time for h in fake.hits[:2]] == [T0, T0]
    assert fake.hits[2].time >= (window + 1) * 60  # waited, though our own count had room
    assert fake.clock.sleeps == [pytest.approx((window + 1) * 60 + 1 - T0)]
    assert set(fake.statuses()) == {200}


def test_exchange_info_adopts_the_published_weight_limit() -> None:
    rules = [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    ]

    async def scenario(fake: FakeBinance, rest: BinanceRest, clock: VirtualTime) -> Any:
        before = rest.limiter.limit
        info = await rest.exchange_info()
        return before, rest.limiter.limit, info

    _, (before, after, info) = run(scenario, rate_limits=rules)
    assert (before, after) == (1200, 6000)
    assert info["rateLimits"] == rules
    _, (before, after, _) = run(scenario, rate_limits=rules, max_weight_per_minute=500)
    assert (before, after) == (500, 500)  # a limit the user set stays


# ---- 429, 418 and errors --------------------------------------------------------------------


@pytest.mark.parametrize("retry_after", [7.0, None])
def test_429_waits_retry_after_and_nobody_sends_meanwhile(retry_after: float | None) -> None:
    async def scenario(fake: FakeBinance, rest: BinanceRest, clock: VirtualTime) -> Any:
        first = asyncio.create_task(rest.agg_trades("BTCUSDT", from_id=1))
        while not clock.sleeps and not first.done():  # the first call had its 429: waiting
            await asyncio.sleep(0.001)
        second = asyncio.create_task(rest.agg_trades("BTCUSDT", from_id=2))
        return await asyncio.gather(first, second, return_exceptions=True)

    wait = retry_after if retry_after is not None else (math.floor(T0 / 60) + 1) * 60 + 1 - T0
    fake, (first, second) = run(
        scenario,
        trades=[_trade(1), _trade(2)],
        setup=lambda f: f.script.append(Fault("429", retry_after=retry_after)),
    )
    assert fake.statuses() == [429, 200, 200]  # any request in the back-off would get 418
    assert [h.time for h in fake.hits] == [T0, T0 + wait, T0 + wait]
    assert fake.clock.sleeps == [pytest.approx(wait)]
    assert [t["a"] for t in first] == [1, 2] and [t["a"] for t in second] == [2]


def test_429_again_and_again_raises_rate_limited() -> None:
    async def scenario(fake: FakeBinance, rest: BinanceRest, clock: VirtualTime) -> Any:
        with pytest.raises(RateLimitedError) as err:
            await rest.agg_trades("BTCUSDT", from_id=1)
        return err.value

    fake, err = run(
        scenario,
        max_rate_limited=2,
        setup=lambda f: f.script.extend(Fault("429", retry_after=5) for _ in range(3)),
    )
    assert err.retry_after == 5
    assert fake.statuses() == [429, 429, 429]
    assert [h.time for h in fake.hits] == [T0, T0 + 5, T0 + 10]


def test_418_raises_ip_banned_and_sends_nothing_until_the_ban_ends() -> None:
    async def scenario(fake: FakeBinance, rest: BinanceRest, clock: VirtualTime) -> Any:
        with pytest.raises(IpBannedError) as first:
            await rest.agg_trades("BTCUSDT", from_id=1)
        clock.now += 119
        with pytest.raises(IpBannedError) as second:
            await rest.agg_trades("BTCUSDT", from_id=1)
        requests_while_banned = len(fake.hits)
        clock.now += 1
        after = await rest.agg_trades("BTCUSDT", from_id=1)
        return first.value, second.value, requests_while_banned, after

    _, (first, second, requests_while_banned, after) = run(
        scenario,
        trades=[_trade(1)],
        setup=lambda f: f.script.append(Fault("418", retry_after=120)),
    )
    assert first.retry_after == 120
    assert second.retry_after == pytest.approx(1)
    assert requests_while_banned == 1  # the second call never reached the exchange
    assert [t["a"] for t in after] == [1]
    assert isinstance(first, KlineError)


def test_binance_error_json_raises_binance_api_error() -> None:
    async def scenario(fake: FakeBinance, rest: BinanceRest, clock: VirtualTime) -> Any:
        with pytest.raises(BinanceApiError) as err:
            await rest.klines("NOPE", "1m", start_time=K0, end_time=K0, limit=10)
        return err.value

    fake, err = run(
        scenario,
        setup=lambda f: f.script.append(
            Fault("error", status=400, code=-1121, msg="Invalid symbol.")
        ),
    )
    assert (err.status, err.code, err.msg) == (400, -1121, "Invalid symbol.")
    assert isinstance(err, RestError) and isinstance(err, KlineError)
    assert len(fake.hits) == 1  # a refused request is not retried


# ---- network errors -------------------------------------------------------------------------


def test_broken_connections_and_5xx_are_retried_with_growing_backoff() -> None:
    async def scenario(fake: FakeBinance, rest: BinanceRest, clock: VirtualTime) -> Any:
        return await rest.agg_trades("BTCUSDT", from_id=1)

    faults = [Fault("cut"), Fault("status", status=503), Fault("cut")]
    fake, trades = run(
        scenario, trades=[_trade(1)], retries=3, setup=lambda f: f.script.extend(faults)
    )
    assert [t["a"] for t in trades] == [1]
    assert len(fake.hits) == 4
    sleeps = fake.clock.sleeps
    assert len(sleeps) == 3
    for attempt, delay in enumerate(sleeps, 1):  # base 0.5 s doubling, jitter in [½, 1)
        full = 0.5 * 2 ** (attempt - 1)
        assert full / 2 <= delay < full


def test_network_errors_are_retried_a_bounded_number_of_times_then_raised() -> None:
    async def scenario(fake: FakeBinance, rest: BinanceRest, clock: VirtualTime) -> Any:
        with pytest.raises(RestError, match="after 4 attempts"):
            await rest.agg_trades("BTCUSDT", from_id=1)

    fake, _ = run(scenario, retries=3, setup=lambda f: f.script.extend([Fault("cut")] * 9))
    assert len(fake.hits) == 4
    assert len(fake.clock.sleeps) == 3


def test_a_closed_server_is_retried_then_raised() -> None:
    async def main() -> list[float]:
        clock = VirtualTime(T0)
        async with serving(FakeBinance(clock)) as url:
            pass  # the server is gone: connections are refused
        async with BinanceRest(base_url=url, clock=clock, sleep=clock.sleep, retries=2) as rest:
            with pytest.raises(RestError, match="after 3 attempts"):
                await rest.exchange_info()
        return clock.sleeps

    assert len(asyncio.run(main())) == 2
