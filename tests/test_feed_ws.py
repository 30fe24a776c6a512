"""The feed's websocket client against real servers on loopback: pings, refusals, bounds."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from aiohttp import web
from kline_rs.engine import Engine
from kline_rs.fake import FakeExchange, SimulatedMarket
from kline_rs.feeds import binance
from kline_rs.feeds.binance import BinanceFeed, FeedError


def run(coro: Any, timeout: float = 60.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def until(check: Any, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_the_servers_pings_are_answered_and_the_connection_stays_up() -> None:
    """The fake exchange pings every 0.6 s and drops a connection without a pong in 0.3 s
    (aiohttp's server heartbeat), as Binance does every 3 min with 10 min to answer."""

    async def scenario() -> None:
        market = SimulatedMarket(["BTCUSDT"], trades_per_second=20.0)
        async with FakeExchange(market, ping_interval_s=0.6) as fx:
            with Engine(["1m"], partitions=1) as engine:
                engine.add_symbol("BTCUSDT")
                feed = BinanceFeed(engine, ws_url=fx.ws_url)
                await feed.set_symbols(["BTCUSDT"])
                await until(lambda: feed.stats.frames > 0)
                await asyncio.sleep(3.0)  # about five pings
                assert (feed.stats.connects, feed.stats.disconnects) == (1, 0)
                assert fx.stats.connections_opened == 1
                await feed.stop()

    run(scenario())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_port_nobody_listens_on_is_an_outage_retried_up_to_its_bound() -> None:
    async def scenario() -> None:
        with Engine(["1m"], partitions=1) as engine:
            url = f"ws://127.0.0.1:{free_port()}"
            feed = BinanceFeed(engine, ws_url=url, backoff=(0.001, 0.002))
            await feed.set_symbols(["BTCUSDT"])
            with pytest.raises(FeedError, match=r"36 failed handshakes in a row.*Cannot connect"):
                await feed.failure()
            assert feed.stats.disconnects == binance.MAX_UNREACHABLE - 1
            await feed.stop()

    run(scenario())


@pytest.mark.parametrize(
    ("status", "attempts"),
    [(404, binance.MAX_FAILED_HANDSHAKES), (400, binance.MAX_FAILED_HANDSHAKES),
     (429, binance.MAX_UNREACHABLE), (503, binance.MAX_UNREACHABLE)],
)  # fmt: skip
def test_a_refused_handshake_gives_up_soon_an_overloaded_server_later(
    status: int, attempts: int
) -> None:
    """4xx is a wrong URL (it never starts working by itself); 429 and 5xx pass."""
    hits: list[int] = []

    async def answer(request: web.Request) -> web.Response:
        hits.append(1)
        return web.Response(status=status, text="no")

    async def scenario() -> None:
        app = web.Application()
        app.router.add_get("/stream", answer)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            with Engine(["1m"], partitions=1) as engine:
                feed = BinanceFeed(engine, ws_url=f"ws://127.0.0.1:{port}", backoff=(0.001, 0.002))
                await feed.set_symbols(["BTCUSDT"])
                pattern = rf"{attempts} failed handshakes in a row.*HTTP {status}"
                with pytest.raises(FeedError, match=pattern):
                    await feed.failure()
                await feed.stop()
        finally:
            await runner.cleanup()
        assert len(hits) == attempts

    run(scenario())


class SlowEngine:
    """Takes nothing (backpressure) until ``open`` is set, then everything."""

    def __init__(self) -> None:
        self.open = False
        self.taken = 0

    def push_raw(self, frames: list[bytes]) -> Any:
        n = len(frames) if self.open else 0
        self.taken += n
        return type("Report", (), {"consumed": n, "backpressure": not self.open})()


def test_an_engine_taking_nothing_stops_the_reads_at_the_bound_then_all_flows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(binance, "MAX_PENDING", 40)

    async def scenario() -> None:
        market = SimulatedMarket(["BTCUSDT"], trades_per_second=200.0)
        async with FakeExchange(market) as fx:
            engine = SlowEngine()
            feed = BinanceFeed(engine, ws_url=fx.ws_url)  # type: ignore[arg-type]
            await feed.set_symbols(["BTCUSDT"])
            await until(lambda: feed._conns and len(feed._conns[0]._pending) >= 40)
            held = []
            for _ in range(50):
                held.append(len(feed._conns[0]._pending))
                await asyncio.sleep(0.02)
            assert max(held) == 40  # reading stopped at the bound
            assert feed.stats.backpressure_waits > 0 and engine.taken == 0
            engine.open = True
            await until(lambda: engine.taken > 200)  # the held frames and those after
            assert feed.stats.frames == engine.taken
            assert (feed.stats.connects, feed.stats.disconnects) == (1, 0)
            await feed.stop()

    run(scenario())
