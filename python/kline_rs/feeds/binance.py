"""Binance combined-stream websocket feed: frames go to ``Engine.push_raw`` unparsed.

One feed keeps as many connections as its streams need (at most ``max_streams`` each, 1024
on Binance), subscribes with paced SUBSCRIBE messages (Binance closes a connection that sends
more than 5 messages a second on spot, 10 on futures), reconnects with jittered exponential
backoff, rotates each connection before Binance's 24 h cut-off with an overlap (the engine's
aggTrade-id dedupe makes the overlap harmless), and treats ``serverShutdown`` as a reason to
rotate now. Pings are answered by the websocket library.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from kline_rs import _core

log = logging.getLogger("kline_rs.feed")


@dataclass(frozen=True)
class Venue:
    """Where a Binance market lives and how fast it takes subscriptions."""

    name: str
    ws_url: str
    rest_url: str
    messages_per_second: int


VENUES = {
    "spot": Venue("spot", "wss://stream.binance.com:9443", "https://api.binance.com", 5),
    "usdm": Venue("usdm", "wss://fstream.binance.com", "https://fapi.binance.com", 10),
    "coinm": Venue("coinm", "wss://dstream.binance.com", "https://dapi.binance.com", 10),
}


@dataclass
class FeedStats:
    """What the feed has done, for the status line and tests."""

    connects: int = 0
    disconnects: int = 0
    rotations: int = 0
    server_shutdowns: int = 0
    frames: int = 0
    subscribe_messages: int = 0
    backpressure_waits: int = 0


SUBSCRIBE_CHUNK = 200  # streams per SUBSCRIBE message


class BinanceFeed:
    """Keeps the engine's symbols streamed from Binance (or a fake exchange)."""

    def __init__(
        self,
        engine: _core.Engine,
        *,
        venue: str = "spot",
        ws_url: str | None = None,
        stream: str = "aggTrade",
        max_streams: int = 1024,
        messages_per_second: int | None = None,
        rotate_after: float = 23.5 * 3600,
        backoff: tuple[float, float] = (0.25, 30.0),
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        v = VENUES[venue]
        self.engine = engine
        self.ws_url = (ws_url or v.ws_url).rstrip("/")
        self.stream = stream
        self.max_streams = max_streams
        self.interval = 1.0 / (messages_per_second or v.messages_per_second)
        self.rotate_after = rotate_after
        self.backoff = backoff
        self.rng = random.Random(seed)
        self.clock = clock
        self.stats = FeedStats()
        self._conns: list[_Connection] = []
        self._stopping = asyncio.Event()

    def stream_name(self, symbol: str) -> str:
        """``BTCUSDT`` → ``btcusdt@aggTrade``."""
        return f"{symbol.lower()}@{self.stream}"

    @property
    def streams(self) -> set[str]:
        """Every stream some connection carries."""
        return {s for c in self._conns for s in c.streams}

    async def set_symbols(self, symbols: Iterable[str]) -> None:
        """Streams exactly these symbols: unsubscribes the rest, subscribes the new ones."""
        wanted = {self.stream_name(s) for s in symbols}
        for old in self._conns:
            gone = old.streams - wanted
            if gone:
                await old.unsubscribe(sorted(gone))
        new = sorted(wanted - self.streams)
        while new:
            conn: _Connection | None = next(
                (c for c in self._conns if len(c.streams) < self.max_streams), None
            )
            if conn is None:
                conn = self._spawn(set())
            room = self.max_streams - len(conn.streams)
            take, new = new[:room], new[room:]
            await conn.subscribe(take)

    def _spawn(self, streams: set[str]) -> _Connection:
        conn = _Connection(self, streams)
        self._conns.append(conn)
        conn.task = asyncio.create_task(conn.run(), name=f"kline-rs feed {len(self._conns)}")
        return conn

    def _retire(self, conn: _Connection) -> None:
        if conn in self._conns:
            self._conns.remove(conn)

    async def disconnect_all(self) -> None:
        """Drops every connection now (they reconnect): for tests and operators."""
        for conn in list(self._conns):
            await conn.drop()

    async def stop(self) -> None:
        """Closes every connection and waits for their tasks."""
        self._stopping.set()
        conns = list(self._conns)
        for conn in conns:
            await conn.drop()
        for conn in conns:
            if conn.task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await conn.task

    def push(self, frame: bytes) -> None:
        """Hands one frame to the engine, waiting (without blocking the loop) on backpressure."""
        self.stats.frames += 1
        report = self.engine.push_raw([frame])
        if report["backpressure"]:
            self.stats.backpressure_waits += 1
            raise _Backpressure

    def delay(self, attempt: int) -> float:
        """Jittered exponential backoff for reconnect attempt ``attempt`` (0-based)."""
        low, high = self.backoff
        return float(min(high, low * 2**attempt) * self.rng.uniform(0.5, 1.0))


class _Backpressure(Exception):
    pass


class _Connection:
    """One websocket and the streams it carries; reconnects until the feed stops."""

    def __init__(self, feed: BinanceFeed, streams: set[str]) -> None:
        self.feed = feed
        self.streams = set(streams)
        self.ws: ClientConnection | None = None
        self.task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()  # set at the first data frame of a connection
        self._next_send = 0.0
        self._ids = 0

    async def _send(self, method: str, params: list[str]) -> None:
        ws = self.ws
        if ws is None:
            return  # sent on (re)connect
        for i in range(0, len(params), SUBSCRIBE_CHUNK):
            wait = self._next_send - self.feed.clock()
            if wait > 0:
                await asyncio.sleep(wait)
            self._next_send = self.feed.clock() + self.feed.interval
            self._ids += 1
            chunk = params[i : i + SUBSCRIBE_CHUNK]
            msg = f'{{"method":"{method}","params":{_json_list(chunk)},"id":{self._ids}}}'
            self.feed.stats.subscribe_messages += 1
            with contextlib.suppress(ConnectionClosed):
                await ws.send(msg)

    async def subscribe(self, streams: list[str]) -> None:
        self.streams.update(streams)
        await self._send("SUBSCRIBE", streams)

    async def unsubscribe(self, streams: list[str]) -> None:
        self.streams.difference_update(streams)
        await self._send("UNSUBSCRIBE", streams)

    async def drop(self) -> None:
        if self.ws is not None:
            await self.ws.close()

    async def run(self) -> None:
        feed = self.feed
        attempt = 0
        while not feed._stopping.is_set():
            try:
                async with connect(
                    f"{feed.ws_url}/stream", max_size=2**24, open_timeout=10, compression=None
                ) as ws:
                    self.ws = ws
                    feed.stats.connects += 1
                    attempt = 0
                    await self._send("SUBSCRIBE", sorted(self.streams))
                    if await self._pump(ws):
                        return  # rotated: the successor carries the streams
            except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake, InvalidURI) as e:
                if not feed._stopping.is_set():
                    log.warning("websocket %s: %s; reconnecting", feed.ws_url, e)
            finally:
                self.ws = None
            if feed._stopping.is_set():
                break
            feed.stats.disconnects += 1
            await asyncio.sleep(feed.delay(attempt))
            attempt += 1
        feed._retire(self)

    async def _pump(self, ws: ClientConnection) -> bool:
        """Reads frames into the engine; True when a successor has taken over (rotation)."""
        feed = self.feed
        rotate_at = feed.clock() + feed.rotate_after
        successor: _Connection | None = None
        while True:
            if successor is None and feed.clock() >= rotate_at:
                successor = self._rotate()
            if successor is not None and successor.ready.is_set():
                feed.stats.rotations += 1
                feed._retire(self)
                await ws.close()
                return True
            try:
                frame = await asyncio.wait_for(ws.recv(decode=False), timeout=1.0)
            except TimeoutError:
                continue
            except ConnectionClosed:
                if successor is not None:
                    feed._retire(self)
                    return True
                raise
            if b'"serverShutdown"' in frame:
                feed.stats.server_shutdowns += 1
                if successor is None:
                    successor = self._rotate()
            elif not self.ready.is_set() and b'"e":' in frame:
                self.ready.set()
            while True:
                try:
                    feed.push(frame)
                    break
                except _Backpressure:
                    await asyncio.sleep(0.001)

    def _rotate(self) -> _Connection:
        """A new connection for the same streams; this one closes once it delivers."""
        return self.feed._spawn(self.streams)


def _json_list(items: list[str]) -> str:
    return "[" + ",".join(f'"{s}"' for s in items) + "]"
