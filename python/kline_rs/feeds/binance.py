"""Binance combined-stream websocket feed: frames go unparsed to ``Engine.push_raw`` (or any
:class:`FrameSink`: capture's publisher).

One feed keeps as many connections as its streams need (at most ``max_streams`` each, 1024
on Binance), subscribes with paced SUBSCRIBE messages (Binance closes a connection that sends
more than 5 messages a second on spot, 10 on futures), reconnects with jittered exponential
backoff, rotates each connection before Binance's 24 h cut-off with an overlap (the engine's
aggTrade-id dedupe makes the overlap harmless), and treats ``serverShutdown`` as a reason to
rotate now. The websocket client is aiohttp's: its compiled frame reader halves the
pipeline's CPU per frame against the pure-Python ``websockets`` (issue 14, BENCHMARKS.md). It
answers the server's pings while the feed reads, and pings a silent server itself. A server
that keeps refusing the handshake (or cannot be reached) ends the feed with
:class:`FeedError` after a bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from aiohttp import WSMsgType

from kline_rs import _core
from kline_rs.venues import VENUES, VenueName

log = logging.getLogger("kline_rs.feed")


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
    #: The exchange's latest event time seen (``"E"`` of the last frame of a push; 0: none
    #: yet) and ``time.monotonic()`` when it came: the exchange's clock, for the lag.
    exchange_ms: int = 0
    exchange_seen: float = 0.0


SUBSCRIBE_CHUNK = 200  # streams per SUBSCRIBE message
_EVENT_TIME = re.compile(rb'"E":(\d{1,17})[,}]')
#: Handshakes refused in a row (HTTP 4xx, a bad URL) before the feed gives up: a wrong URL
#: never starts working by itself.
MAX_FAILED_HANDSHAKES = 6
#: Connection attempts in a row that reach no server (network, timeouts, HTTP 5xx) before the
#: feed gives up: about 15 minutes at the 30 s backoff cap.
MAX_UNREACHABLE = 36
#: Seconds a handshake may take (connect, TLS, the HTTP upgrade); none once it is open.
OPEN_TIMEOUT = 10.0
#: A connection silent this many seconds is pinged, and dropped if no pong comes in half that.
HEARTBEAT = 20.0
#: The largest frame taken (Binance's are far smaller; a bigger one drops the connection).
MAX_FRAME = 2**24
#: Seconds a close waits for the server's close frame (frames still arriving meanwhile are
#: dropped, the overlap or a reconnect refetches them), then the socket is cut.
CLOSE_TIMEOUT = 10.0


class Pushed(Protocol):
    """What a sink says of one hand-over: how many frames it took, and whether it is full."""

    @property
    def consumed(self) -> int: ...
    @property
    def backpressure(self) -> bool: ...


class FrameSink(Protocol):
    """Where the feed's frames go: the engine (``run``), or a publisher (``capture``)."""

    def push_raw(self, frames: list[bytes]) -> Pushed: ...


class FeedError(_core.KlineError):
    """The feed cannot go on: a bad websocket URL, or handshakes failing past the bound."""


class ConnectionLostError(Exception):
    """An open websocket ended (closed by the server, an error, no pong): the feed reconnects."""


#: Not a symbol name: only A-Z, 0-9 and _ (at most 32) after upper-casing (the core's rule).
SymbolNameError = _core.SymbolError


def symbol_name(symbol: str) -> str:
    """``"btcusdt"`` → ``"BTCUSDT"``; anything else than ``[A-Z0-9_]{1,32}`` is refused
    (a name could otherwise break out of a stream name)."""
    return _core.symbol_name(symbol.strip())


def ws_base(url: str) -> str:
    """The streams' base URL: ``ws[s]://host[:port][/prefix]``; a full stream URL (ending in
    ``/stream`` or ``/ws``) is cut back to it."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        raise FeedError(f"websocket URL {url[:200]!r}: expected ws://host:port or wss://host:port")
    if parts.query or parts.fragment:
        raise FeedError(
            f"websocket URL {url[:200]!r}: give it without ?streams=… (symbols come from "
            "--symbols, --quote or --pattern)"
        )
    path = parts.path.rstrip("/")
    for tail in ("/stream", "/ws"):
        if path.endswith(tail):
            path = path[: -len(tail)]
            break
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


class BinanceFeed:
    """Keeps the engine's symbols streamed from Binance (or a fake exchange)."""

    def __init__(
        self,
        engine: FrameSink,
        *,
        venue: VenueName = "spot",
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
        self.ws_url = ws_base(ws_url or v.ws_url)
        self.stream = stream
        self.max_streams = max_streams
        self.interval = 1.0 / (messages_per_second or v.ws_messages_per_second)
        self.rotate_after = rotate_after
        self.backoff = backoff
        self.rng = random.Random(seed)
        self.clock = clock
        self.stats = FeedStats()
        self._conns: list[_Connection] = []
        self._stopping = asyncio.Event()
        self._failed = asyncio.Event()
        #: Why a connection gave up (the first one), once one has.
        self.error: BaseException | None = None

    def stream_name(self, symbol: str) -> str:
        """``BTCUSDT`` → ``btcusdt@aggTrade``."""
        return f"{symbol_name(symbol).lower()}@{self.stream}"

    async def failure(self) -> None:
        """Raises, once a connection has given up, why it did (run it as a task to watch)."""
        await self._failed.wait()
        assert self.error is not None
        raise self.error

    @property
    def connections(self) -> int:
        """Websocket connections open now."""
        return sum(c.ws is not None for c in self._conns)

    @property
    def connected(self) -> bool:
        """Every connection of the feed is open (and there is one)."""
        return bool(self._conns) and all(c.ws is not None for c in self._conns)

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
        conn.task.add_done_callback(self._task_done)
        return conn

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        if self.error is None:
            self.error = task.exception()
        self._failed.set()

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

    def push(self, frames: list[bytes]) -> int:
        """Hands frames to the engine; returns how many it took (fewer on backpressure)."""
        report = self.engine.push_raw(frames)
        taken = int(report.consumed)
        self.stats.frames += taken
        if taken:
            event = _EVENT_TIME.search(frames[taken - 1])
            if event is not None:
                self.stats.exchange_ms = max(self.stats.exchange_ms, int(event[1]))
                self.stats.exchange_seen = time.monotonic()
        if report.backpressure:
            self.stats.backpressure_waits += 1
        return taken

    def delay(self, attempt: int) -> float:
        """Jittered exponential backoff for reconnect attempt ``attempt`` (0-based)."""
        low, high = self.backoff
        return float(min(high, low * 2**attempt) * self.rng.uniform(0.5, 1.0))


#: Frames a connection may hold for the engine before it stops reading the socket.
MAX_PENDING = 1 << 16


class _Connection:
    """One websocket and the streams it carries; reconnects until the feed stops."""

    def __init__(self, feed: BinanceFeed, streams: set[str]) -> None:
        self.feed = feed
        self.streams = set(streams)
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()  # set at the first data frame of a connection
        self._next_send = 0.0
        self._ids = 0
        # Frames received and not yet in the engine: handed over in one push_raw once the
        # socket has nothing more buffered (a callback runs when the reader has to wait).
        self._pending: list[bytes] = []
        self._flush_scheduled = False
        self.successor: _Connection | None = None

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
            msg = json.dumps({"method": method, "params": chunk, "id": self._ids})
            self.feed.stats.subscribe_messages += 1
            # A connection that closed meanwhile resends everything when it reconnects.
            with contextlib.suppress(ConnectionError, aiohttp.ClientConnectionError):
                await ws.send_str(msg)

    async def subscribe(self, streams: list[str]) -> None:
        self.streams.update(streams)
        await self._send("SUBSCRIBE", streams)

    async def unsubscribe(self, streams: list[str]) -> None:
        self.streams.difference_update(streams)
        await self._send("UNSUBSCRIBE", streams)

    async def drop(self) -> None:
        if self.ws is not None:
            await _close(self.ws)

    async def run(self) -> None:
        feed = self.feed
        url = f"{feed.ws_url}/stream"
        attempt = refused = unreachable = 0
        # No total timeout: it would hold for the whole life of the websocket.
        timeout = aiohttp.ClientTimeout(
            total=None, connect=OPEN_TIMEOUT, sock_connect=OPEN_TIMEOUT, sock_read=OPEN_TIMEOUT
        )
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                while not feed._stopping.is_set():
                    try:
                        ws = await session.ws_connect(
                            url,
                            max_msg_size=MAX_FRAME,
                            heartbeat=HEARTBEAT,
                            autoping=True,
                            timeout=aiohttp.ClientWSTimeout(ws_close=CLOSE_TIMEOUT),
                        )
                        try:
                            if feed._stopping.is_set():
                                break  # stop() came during the handshake: nothing to drop then
                            self.ws = ws
                            feed.stats.connects += 1
                            attempt = refused = unreachable = 0
                            await self._send("SUBSCRIBE", sorted(self.streams))
                            if await self._pump(ws):
                                return  # rotated: the successor carries the streams
                        finally:
                            self.ws = None
                            await _close(ws)
                    except (
                        OSError, TimeoutError, asyncio.TimeoutError, aiohttp.ClientError,
                        ConnectionLostError,
                    ) as e:  # fmt: skip
                        if feed._stopping.is_set():
                            break
                        if _refused(e):
                            refused += 1
                        else:
                            unreachable += 1
                        if refused >= MAX_FAILED_HANDSHAKES or unreachable >= MAX_UNREACHABLE:
                            raise FeedError(
                                f"websocket {url}: {refused + unreachable} failed handshakes in "
                                f"a row, giving up; the last: {_describe(e)}"
                            ) from e
                        log.warning("websocket %s: %s; reconnecting", url, _describe(e))
                    if feed._stopping.is_set():
                        break
                    feed.stats.disconnects += 1
                    # Waits for the backoff, or less when the feed stops meanwhile.
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(feed._stopping.wait(), feed.delay(attempt))
                    attempt += 1
        finally:
            feed._retire(self)

    async def _pump(self, ws: aiohttp.ClientWebSocketResponse) -> bool:
        """Reads frames into the engine; True when a successor has taken over (rotation)."""
        feed = self.feed
        self.successor = None
        watcher = asyncio.create_task(self._watch(ws))
        loop = asyncio.get_running_loop()
        # Locals: this loop runs once per frame.
        pending, receive, ready = self._pending, ws.receive, self.ready.is_set()
        try:
            while True:
                msg = await receive()  # pings are answered in there
                if msg.type is WSMsgType.TEXT:
                    frame = msg.data.encode()
                elif msg.type is WSMsgType.BINARY:
                    frame = msg.data
                else:  # CLOSE, CLOSING, CLOSED or ERROR: this websocket is over
                    if self.successor is not None and self.successor.ready.is_set():
                        feed.stats.rotations += 1
                        feed._retire(self)
                        return True
                    raise ConnectionLostError(_ended(ws, msg))
                if b'"serverShutdown"' in frame:
                    feed.stats.server_shutdowns += 1
                    if self.successor is None:
                        self.successor = self._rotate()
                elif not ready and b'"e":' in frame:
                    self.ready.set()
                    ready = True
                pending.append(frame)
                if not self._flush_scheduled:
                    self._flush_scheduled = True
                    loop.call_soon(self._flush)
                while len(pending) >= MAX_PENDING:
                    await asyncio.sleep(0.001)  # the engine is behind: stop reading
        finally:
            watcher.cancel()
            self._flush(final=True)

    def _flush(self, *, final: bool = False) -> None:
        """Hands what was received to the engine; on backpressure, tries again shortly."""
        self._flush_scheduled = False
        tries = 0
        while self._pending:
            taken = self.feed.push(self._pending)
            del self._pending[:taken]
            if self._pending and not final:
                self._flush_scheduled = True
                asyncio.get_running_loop().call_later(0.001, self._flush)
                return
            tries += 1
            if self._pending and tries > 2000:
                # Closing and the engine takes nothing for 2 s: these trades come back by id
                # (a restart or a reconnect finds the hole); say so instead of hanging.
                log.error("%d frames not handed to the engine at close", len(self._pending))
                self._pending.clear()
            elif self._pending:
                time.sleep(0.001)

    async def _watch(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Rotates before the cut-off: a successor connects, and once it delivers, this closes."""
        feed = self.feed
        due = feed.clock() + feed.rotate_after
        while self.successor is None:
            await asyncio.sleep(max(0.0, min(1.0, due - feed.clock())))
            if feed.clock() >= due and self.successor is None:
                self.successor = self._rotate()
        await self.successor.ready.wait()
        await _close(ws)

    def _rotate(self) -> _Connection:
        """A new connection for the same streams; this one closes once it delivers."""
        return self.feed._spawn(self.streams)


async def _close(ws: aiohttp.ClientWebSocketResponse) -> None:
    """The close handshake, within CLOSE_TIMEOUT in all (aiohttp bounds each read, not the
    whole: a server still streaming would hold it); past it the socket is cut."""
    with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
        await asyncio.wait_for(ws.close(), CLOSE_TIMEOUT)  # cancelled, close() cuts the socket


def _refused(e: Exception) -> bool:
    """The server answered and refused (a wrong URL or path), not a passing outage."""
    if isinstance(e, aiohttp.WSServerHandshakeError):
        return e.status < 500 and e.status != 429  # 101 too: not a websocket server
    return isinstance(e, aiohttp.InvalidURL)


def _describe(e: BaseException) -> str:
    """One line on why a connection failed or ended."""
    if isinstance(e, aiohttp.WSServerHandshakeError):
        return f"the server refused the websocket handshake: HTTP {e.status} ({e.message})"
    return str(e) or type(e).__name__


def _ended(ws: aiohttp.ClientWebSocketResponse, msg: aiohttp.WSMessage) -> str:
    """Why a websocket ended, from the message that ended it."""
    if msg.type is WSMsgType.ERROR:
        return f"connection lost: {_describe(msg.data)}"
    problem = ws.exception()
    if problem is not None:
        return f"connection lost: {_describe(problem)}"
    code = ws.close_code
    reason = f" {msg.extra}" if msg.type is WSMsgType.CLOSE and msg.extra else ""
    return f"connection closed (code {code}{reason})"
