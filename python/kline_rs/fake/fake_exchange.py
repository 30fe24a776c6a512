"""A fake Binance on loopback: REST, websocket and public-data zips on one port, fed by a market.

    async with FakeExchange(SimulatedMarket(20, speed=60)) as fx:
        fx.rest_url   # http://127.0.0.1:<port>        (+ /api/v3/aggTrades?…)
        fx.ws_url     # ws://127.0.0.1:<port>          (+ /stream?streams=btcusdt@aggTrade/…)
        fx.data_url   # http://127.0.0.1:<port>        (+ /data/spot/daily/aggTrades/…)

A background task moves the market clock every ``tick_ms`` and pushes the new trades to the
subscribed websockets; ``pump(t)`` does the same at once for a given market time (tests use it
with ``speed=0`` to move time themselves). ``python -m kline_rs.fake.fake_exchange`` runs
one standalone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from aiohttp import WSCloseCode, web

from kline_rs.fake.events import (
    SHUTDOWN_STREAM,
    agg_trade_event,
    combined,
    dumps,
    raw_trade_events,
    shutdown_event,
)
from kline_rs.fake.faults import Faults
from kline_rs.fake.market import DAY_MS, Market, SimulatedMarket
from kline_rs.fake.public_data import PublicData
from kline_rs.fake.ratelimit import WeightLimiter
from kline_rs.fake.recorded import RecordedMarket
from kline_rs.fake.rest import RestApi
from kline_rs.fake.stats import ExchangeStats
from kline_rs.fake.streams import Connection
from kline_rs.fake.tape import Trade
from kline_rs.venues import Venue, venue_named

#: Websocket paths: Binance's own, and the USD-M ``/public`` and ``/market`` routes.
WS_PREFIXES = ("", "/public", "/market")


class FakeExchange:
    """Binance's REST and websocket endpoints over ``market``, with ``faults`` on demand."""

    def __init__(
        self,
        market: Market,
        *,
        venue: str | Venue = "spot",
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        weight_limit: int | None = None,
        ban_seconds: int = 120,
        clock: Callable[[], float] = time.monotonic,
        tick_ms: int = 25,
        connection_lifetime_ms: int = DAY_MS,
        ping_interval_s: float | None = None,
        files_dir: str | Path | None = None,
    ) -> None:
        self.market = market
        self.venue = venue if isinstance(venue, Venue) else venue_named(venue)
        self.faults = faults if faults is not None else Faults()
        self.host = host
        self.port = port
        self.tick_ms = tick_ms
        self.connection_lifetime_ms = connection_lifetime_ms
        self.ping_interval_s = ping_interval_s or self.venue.ping_interval_s
        self.stats = ExchangeStats()
        self.limiter = WeightLimiter(weight_limit or self.venue.weight_limit, clock, ban_seconds)
        self.rest = RestApi(market, self.venue, self.faults, self.limiter, self.stats, self.pump)
        self.public_data = PublicData(market, self.venue, self.faults, self.stats, files_dir)
        self._connections: dict[int, Connection] = {}
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> FakeExchange:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        app = web.Application()
        app.add_routes(self.rest.routes())
        app.add_routes(self.public_data.routes())
        for prefix in WS_PREFIXES:
            app.add_routes(
                [
                    web.get(f"{prefix}/stream", self._websocket),
                    web.get(f"{prefix}/ws", self._websocket),
                    web.get(f"{prefix}/ws/{{streams:.*}}", self._websocket),
                ]
            )
        sock = socket.create_server((self.host, self.port))
        self.port = sock.getsockname()[1]
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=1.0
        )
        try:
            await self._runner.setup()
            await web.SockSite(self._runner, sock).start()
        except BaseException:
            sock.close()
            raise
        self._ticker = asyncio.create_task(self._tick_loop())

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        for conn in list(self._connections.values()):
            await conn.close_now(WSCloseCode.GOING_AWAY, "server stopping")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def rest_url(self) -> str:
        """Base URL of the REST API (Binance's ``https://api.binance.com``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def data_url(self) -> str:
        """Base URL of the public-data zips (Binance's ``https://data.binance.vision``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """Base URL of the streams (Binance's ``wss://stream.binance.com:9443``)."""
        return f"ws://{self.host}:{self.port}"

    @property
    def connections(self) -> list[Connection]:
        return list(self._connections.values())

    # -- market time --------------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        while True:
            self.pump()
            await asyncio.sleep(self.tick_ms / 1000)

    def pump(self, now_ms: int | None = None) -> int:
        """Moves the market to ``now_ms`` (default: its clock), queues the new trades to the
        subscribers and closes connections past their lifetime; returns the number of trades."""
        trades = self.market.advance(self.market.clock_ms() if now_ms is None else now_ms)
        if not self._connections:
            return len(trades)
        if trades:
            self._distribute(trades)
        now = self.market.now_ms
        for conn in self.connections:
            conn.flush_held()
            if now - conn.opened_ms >= self.connection_lifetime_ms:
                conn.close_after_outbox(WSCloseCode.OK, "connection lifetime reached")
        return len(trades)

    def _distribute(self, trades: list[tuple[str, Trade]]) -> None:
        wanted = set().union(*(c.streams for c in self.connections))
        event_ms = self.market.now_ms
        rendered: list[list[tuple[str, str]]] = []  # per trade: (stream, payload text)
        for symbol, trade in trades:
            inst = self.market.instruments[symbol]
            lower = symbol.lower()
            out = []
            if f"{lower}@aggTrade" in wanted:
                out.append(
                    (f"{lower}@aggTrade", dumps(agg_trade_event(self.venue, inst, trade, event_ms)))
                )
            if f"{lower}@trade" in wanted:
                out += [
                    (f"{lower}@trade", dumps(e))
                    for e in raw_trade_events(self.venue, inst, trade, event_ms)
                ]
            rendered.append(out)
        for conn in self.connections:
            frames = [
                combined(stream, payload) if conn.combined else payload
                for per_trade in rendered
                for stream, payload in per_trade
                if stream in conn.streams
            ]
            if frames:
                conn.send_data(frames)

    # -- faults that are actions ------------------------------------------------------------

    async def disconnect_all(self, *, abrupt: bool | None = None) -> int:
        """Closes every websocket now (``abrupt``: no close frame); returns how many."""
        conns = self.connections
        hard = self.faults.abrupt_disconnect if abrupt is None else abrupt
        for conn in conns:
            await conn.close_now(WSCloseCode.GOING_AWAY, "disconnected", abrupt=hard)
        return len(conns)

    async def server_shutdown(self, grace_ms: int | None = None) -> int:
        """Sends Binance's ``serverShutdown`` event to every websocket, then closes each
        ``grace_ms`` later (default ``faults.shutdown_grace_ms``); returns how many."""
        grace = self.faults.shutdown_grace_ms if grace_ms is None else grace_ms
        event = shutdown_event(self.market.clock_ms())
        conns = self.connections
        payload = dumps(event)
        for conn in conns:
            conn.send_control(combined(SHUTDOWN_STREAM, payload) if conn.combined else payload)
            conn.close_after_outbox(WSCloseCode.GOING_AWAY, "serverShutdown", grace)
        return len(conns)

    # -- websocket endpoint -------------------------------------------------------------------

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        is_combined = request.path.endswith("/stream")
        text = (
            request.query.get("streams", "")
            if is_combined
            else request.match_info.get("streams", "")
        )
        streams = [s for s in text.split("/") if s]
        if len(streams) > self.venue.max_streams:
            msg = f"Too many streams: {len(streams)} > {self.venue.max_streams}"
            return web.json_response({"code": -1, "msg": msg}, status=400)
        ws = web.WebSocketResponse(autoping=True, heartbeat=self.ping_interval_s, timeout=2.0)
        await ws.prepare(request)
        self.stats.connections_opened += 1
        number = self.stats.connections_opened
        conn = Connection(
            ws,
            request,
            number=number,
            streams=streams,
            combined=is_combined,
            venue=self.venue,
            faults=self.faults,
            stats=self.stats,
            opened_ms=self.market.now_ms,
        )
        self._connections[number] = conn
        try:
            await conn.run()
        finally:
            del self._connections[number]
        return ws


def _market_from_args(args: argparse.Namespace) -> Market:
    if args.recorded:
        return RecordedMarket(args.recorded, speed=args.speed)
    symbols: list[str] | int = (
        int(args.symbols) if args.symbols.isdigit() else args.symbols.split(",")
    )
    return SimulatedMarket(symbols, seed=args.seed, speed=args.speed, trades_per_second=args.tps)


def follow_command(fx: FakeExchange, market: Market) -> str:
    """The ``kline-rs run`` command line that follows this exchange (1s klines: output within
    seconds), its first symbols printed as JSON lines."""
    symbols = ",".join(market.symbols()[:3])
    return (
        f"kline-rs run --venue {fx.venue.name} --ws-url {fx.ws_url} --rest-url {fx.rest_url} "
        f"--symbols {symbols} --intervals 1s,1m"
    )


async def _serve(args: argparse.Namespace) -> None:
    market = _market_from_args(args)
    faults = Faults(seed=args.seed, drop_rate=args.drop_rate, duplicate_rate=args.duplicate_rate)
    async with FakeExchange(
        market,
        venue=args.venue,
        faults=faults,
        host=args.host,
        port=args.port,
        files_dir=args.files_dir,
    ) as fx:
        prefix = fx.venue.rest_prefix
        first = "/".join(s.lower() + "@aggTrade" for s in market.symbols()[:2])
        print(
            f"venue     {fx.venue.name}, {len(market.symbols())} symbols, speed x{market.speed:g}"
        )
        print(f"REST      {fx.rest_url}{prefix}/exchangeInfo")
        print(f"          {fx.rest_url}{prefix}/aggTrades?symbol={market.symbols()[0]}&limit=5")
        print(f"websocket {fx.ws_url}/stream?streams={first}")
        print(f"dumps     kline-rs download --base-url {fx.data_url} …")
        print(f"follow it: {follow_command(fx, market)}")
        if market.speed != 1:
            print(
                f"           (market time runs x{market.speed:g} the wall clock's: `kline-rs "
                "run` follows it on the wall clock, so start this with --speed 1 for that)"
            )
        print("Ctrl-C stops it.", flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    """Command line: python -m kline_rs.fake.fake_exchange [--symbols 20] [--speed 10] …"""
    ap = argparse.ArgumentParser(description="A fake Binance exchange on loopback.")
    ap.add_argument("--symbols", default="20", help="a count, or names: BTCUSDT,ETHUSDT")
    ap.add_argument("--recorded", nargs="+", metavar="CAPTURE", help="replay cryptofeed captures")
    ap.add_argument("--venue", default="spot", choices=["spot", "usdm", "coinm"])
    ap.add_argument("--speed", type=float, default=1.0, help="market seconds per real second")
    ap.add_argument("--tps", type=float, default=50.0, help="trades per market second")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--drop-rate", type=float, default=0.0)
    ap.add_argument("--duplicate-rate", type=float, default=0.0)
    ap.add_argument("--files-dir", help="serve the public-data zips found here as they are")
    args = ap.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
