"""Binance's kline streams, served from a :class:`~kline_rs.serve.source.KlineSource`.

Endpoints, as on Binance's stream servers: ``/ws/<stream>`` (raw events; any path, even one
that is not a stream, connects, as ccxt's ``/ws/0`` does), ``/ws`` and
``/stream?streams=<a>/<b>`` (combined: ``{"stream": ..., "data": ...}``), with live
``SUBSCRIBE`` / ``UNSUBSCRIBE`` / ``LIST_SUBSCRIPTIONS`` and the ``combined`` property
(:mod:`kline_rs.serve.requests`). A stream is ``<symbol>@kline_<interval>``, optionally
``@<offset>`` (Binance's ``@+08:00``): the symbol in lower case, any interval the core knows
(``7m``, ``2d`` …, rolled up by the source), any offset Binance's ``timeZone`` takes.

Events are Binance's kline event (:func:`kline_rs.live.output.kline_event`). Every stream is
polled at Binance's pace (:data:`PACE_1S_S` for 1s, :data:`PACE_S` for the rest): the open kline
is sent when it changed (``x`` false), a kline once closed is sent with ``x`` true. A closed
kline that changes afterwards (a repaired gap: the source's ``revision`` goes up) is sent again
with ``x`` true and the same ``t``: a client tells a revision by a second closed event for one
open time (the ``/krs/v1/klines`` REST extension gives the revision number and the gap mark).
:meth:`StreamHub.notify` makes a symbol's streams look back for revisions at once.

Bounds (each a constant; past it a specific error or a close): streams per connection
(Binance's 1024), connections per client and in all, incoming messages per second (the
venue's, as Binance: then the connection is closed), frames waiting for a slow consumer
(:data:`MAX_OUTBOX`: past it the consumer is dropped, never buffered without bound), a
connection's age (24 h, as Binance). The server pings every :data:`PING_S` seconds; a client
that does not answer within the next ping is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import socket
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import WSCloseCode, WSMsgType, web

from kline_rs._core import KlineError, interval_name, symbol_name, tz_offset_name
from kline_rs.live.output import kline_event
from kline_rs.serve.requests import MessageRate, Subscriptions
from kline_rs.serve.served import ServeError

if TYPE_CHECKING:
    from kline_rs.serve.source import KlineSource, ServedKline

log = logging.getLogger("kline_rs.serve")

#: Seconds between polls of a stream: Binance updates 1s klines every second, others every 2 s.
PACE_1S_S = 1.0
PACE_S = 2.0
#: Streams one connection may hold (Binance's limit).
MAX_STREAMS = 1024
#: Open connections from one client (remote address, or token) and in all.
MAX_CONNECTIONS_PER_CLIENT = 300
MAX_CONNECTIONS = 10_000
#: Frames queued for one connection: a consumer this far behind is closed.
MAX_OUTBOX = 2_000
#: The kernel's send buffer of one connection (Linux lets it grow to 4 MB otherwise): what a
#: stalled consumer can hold beyond its outbox.
SEND_BUFFER_BYTES = 256 * 1024
#: Binance closes a connection after 24 hours.
MAX_AGE_S = 24 * 3600.0
#: Server pings; a pong must come before the next one.
PING_S = 20.0
#: Seconds a closing connection may take to send what was queued for it.
CLOSE_TIMEOUT_S = 5.0
#: Incoming messages per second before the connection is closed (Binance spot's 5).
MAX_MESSAGES_PER_S = 5
#: Closed klines per stream whose revision is remembered (to send a revision again).
MAX_TRACKED = 1_000
#: Periods a stream looks back for revisions after :meth:`StreamHub.notify` (REST's limit).
LOOKBACK = 1_000
#: Seconds a new open kline waits for the closed event of the one before it.
MAX_HOLD_S = 5.0
#: Longest text of a stream name or an incoming message.
MAX_STREAM_NAME = 64
MAX_MESSAGE_BYTES = 64 * 1024

STREAM_RE = re.compile(r"([a-z0-9_]{1,32})@kline_([0-9]{1,6}[smhdwM])(?:@([+-]?[0-9:]{1,6}))?")


@dataclass(frozen=True)
class Stream:
    """A parsed stream name: its symbol (upper case), interval and time-zone offset."""

    name: str
    symbol: str
    interval: str
    tz: str | None

    @property
    def pace_s(self) -> float:
        return PACE_1S_S if self.interval == "1s" else PACE_S


class StreamNameError(ValueError):
    pass


def parse_stream(name: str) -> Stream:
    """``btcusdt@kline_1m`` (``@+08:00`` optional) → :class:`Stream`; ``StreamNameError`` says
    what is wrong."""
    if len(name) > MAX_STREAM_NAME:
        raise StreamNameError(f"stream name longer than {MAX_STREAM_NAME} characters")
    m = STREAM_RE.fullmatch(name)
    if m is None:
        raise StreamNameError(
            f"invalid stream {name!r}: expected <symbol>@kline_<interval>[@<offset>], the symbol "
            "in lower case"
        )
    try:
        symbol = symbol_name(m[1].upper())
        interval = interval_name(m[2])
        tz = tz_offset_name(m[3]) if m[3] is not None else None
    except (KlineError, ValueError) as e:
        raise StreamNameError(f"invalid stream {name!r}: {e}") from e
    return Stream(name, symbol, interval, tz)


@dataclass
class StreamState:
    """What one stream has sent: the open kline's last update and each closed kline's
    revision (the latest :data:`MAX_TRACKED`)."""

    stream: Stream
    clients: set[Client] = field(default_factory=set)
    #: The last open kline sent: (open time, last trade id, trades, close).
    open_sent: tuple[int, int, int, int] | None = None
    #: A client came since: the open kline goes out again even if unchanged.
    resend: bool = False
    #: Since when a new open kline waits for the closed one before it (monotonic seconds).
    holding_since: float | None = None
    closed_sent: OrderedDict[int, int] = field(default_factory=OrderedDict)
    due: float = 0.0
    look_back_from: int | None = None
    #: Its last poll failed (said once in the log).
    failed: bool = False

    def events(self, rows: list[ServedKline], now: float) -> list[tuple[ServedKline, bool]]:
        """The klines of ``rows`` (oldest first) to send, each with its ``x``.

        As on Binance, a kline's closed event comes before the next kline's first one: a new
        open kline is held back while the one before it, sent open, has not come closed yet
        (a live source's engine opens the next kline before its consumer has the closed one),
        for :data:`MAX_HOLD_S` at most.
        """
        out: list[tuple[ServedKline, bool]] = []
        for k in rows:
            if k.closed:
                if self.closed_sent.get(k.open_time, -1) >= k.revision:
                    continue
                if not self.closed_sent and self.open_sent is None and k is not rows[-1]:
                    continue  # a new subscriber: from the latest kline on
                self.closed_sent[k.open_time] = k.revision
                self.closed_sent.move_to_end(k.open_time)
                while len(self.closed_sent) > MAX_TRACKED:
                    self.closed_sent.popitem(last=False)
                out.append((k, True))
            else:
                mark = (k.open_time, k.last_trade_id, k.trades, k.close)
                if mark == self.open_sent and not self.resend:
                    continue
                before = None if self.open_sent is None else self.open_sent[0]
                if before is not None and before < k.open_time and before not in self.closed_sent:
                    self.holding_since = self.holding_since or now
                    if now - self.holding_since < MAX_HOLD_S:
                        continue
                self.holding_since = None
                self.open_sent, self.resend = mark, False
                out.append((k, False))
        return out


class Client:
    """One websocket connection: its subscriptions and the frames queued for it."""

    def __init__(
        self,
        hub: StreamHub,
        ws: web.WebSocketResponse,
        key: str,
        subs: Subscriptions,
        transport: asyncio.Transport | None,
    ) -> None:
        self.hub = hub
        self.ws = ws
        self.transport = transport
        self.key = key
        self.subs = subs
        self.closing = False
        self.sender: asyncio.Task[None] | None = None
        self._outbox: asyncio.Queue[str] = asyncio.Queue(hub.max_outbox)
        self.rate = MessageRate(MAX_MESSAGES_PER_S)

    def send(self, text: str) -> None:
        """Queues a frame; a consumer :data:`MAX_OUTBOX` frames behind is dropped."""
        if self.closing:
            return
        try:
            self._outbox.put_nowait(text)
        except asyncio.QueueFull:
            self.hub.stats["slow_consumers_dropped"] += 1
            log.warning("dropping a slow websocket consumer (%s): %d frames behind",
                        self.key, self.hub.max_outbox)  # fmt: skip
            # It reads nothing, so a close handshake would wait on it too: the TCP connection
            # is dropped (as Binance drops a slow consumer).
            self.closing = True
            if self.transport is not None:
                self.transport.abort()

    def send_event(self, raw: str, combined: str) -> None:
        """An event, as its raw and its combined (``{"stream":…,"data":…}``) text."""
        self.send(combined if self.subs.combined else raw)

    def close_soon(self, code: int, message: str) -> None:
        """:meth:`finish` in a task of its own."""
        if not self.closing:
            asyncio.get_running_loop().create_task(self.finish(code, message))

    async def finish(self, code: int, message: str) -> None:
        """Sends what is queued (within :data:`CLOSE_TIMEOUT_S`), then closes."""
        if self.closing:
            return
        self.closing = True
        if self.sender is not None:
            self.sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.sender

        async def flush() -> None:
            while not self._outbox.empty():
                await self.ws.send_str(self._outbox.get_nowait())

        with contextlib.suppress(ConnectionError, RuntimeError, asyncio.TimeoutError):
            await asyncio.wait_for(flush(), CLOSE_TIMEOUT_S)
        await self._close(code, message)

    async def _close(self, code: int, message: str) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.close(code=code, message=message.encode())

    async def send_loop(self) -> None:
        while not self.closing:
            text = await self._outbox.get()
            try:
                await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return
            self.hub.stats["frames_sent"] += 1


class StreamHub:
    """Every open stream connection, and the poll that feeds them from ``source``.

    ``authorize(request)``: the client's key (its remote address, or its token), raising an
    ``aiohttp`` HTTP error to refuse it; ``now_ms``: the event time ``E``; ``pace_s``: seconds
    between polls of every stream instead of Binance's pace (tests).
    """

    def __init__(
        self,
        source: KlineSource,
        *,
        authorize: Callable[[web.Request], str] | None = None,
        now_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        max_connections_per_client: int = MAX_CONNECTIONS_PER_CLIENT,
        max_connections: int = MAX_CONNECTIONS,
        max_age_s: float = MAX_AGE_S,
        ping_s: float = PING_S,
        max_outbox: int = MAX_OUTBOX,
        pace_s: float | None = None,
    ) -> None:
        self.source = source
        self.authorize = authorize or (lambda r: r.remote or "")
        self.now_ms = now_ms
        self.max_connections_per_client = max_connections_per_client
        self.max_connections = max_connections
        self.max_age_s = max_age_s
        self.ping_s = ping_s
        self.max_outbox = max_outbox
        self.pace_s = pace_s
        self.clients: set[Client] = set()
        self.streams: dict[str, StreamState] = {}
        self.stats: dict[str, int] = {
            "connections": 0,
            "frames_sent": 0,
            "slow_consumers_dropped": 0,
            "aged_out": 0,
        }
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- routes and lifetime ------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/ws", self.handle_raw),
            web.get("/ws/{path:.*}", self.handle_raw),
            web.get("/stream", self.handle_combined),
        ]

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._poll_loop(), name="kline-rs streams")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for c in list(self.clients):
            await c._close(WSCloseCode.GOING_AWAY, "server shutdown")

    def notify(self, symbol: str, since_ms: int) -> None:
        """``symbol``'s klines from ``since_ms`` on changed (closed, or revised): its streams
        poll now, looking back to the period holding ``since_ms``."""
        for state in self.streams.values():
            if state.stream.symbol == symbol:
                lb = state.look_back_from
                state.look_back_from = since_ms if lb is None else min(lb, since_ms)
                state.due = 0.0
        self._wake.set()

    # -- connections --------------------------------------------------------------------------

    async def handle_raw(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info.get("path", "")
        # Binance connects any path; the names in it that are streams are subscribed.
        names = [n for n in path.split("/") if n and _is_stream(n)]
        return await self._serve(request, names, combined=False)

    async def handle_combined(self, request: web.Request) -> web.StreamResponse:
        names = [n for n in request.query.get("streams", "").split("/") if n]
        for n in names:
            try:
                parse_stream(n)
            except StreamNameError as e:
                raise web.HTTPBadRequest(text=json.dumps({"code": -1100, "msg": str(e)}),
                                         content_type="application/json") from e  # fmt: skip
        return await self._serve(request, names, combined=True)

    async def _serve(
        self, request: web.Request, names: list[str], *, combined: bool
    ) -> web.StreamResponse:
        key = self.authorize(request)
        await self.source.refresh()
        if len(self.clients) >= self.max_connections:
            raise web.HTTPServiceUnavailable(text="too many connections")
        if sum(1 for c in self.clients if c.key == key) >= self.max_connections_per_client:
            raise web.HTTPTooManyRequests(
                text=f"at most {self.max_connections_per_client} connections per client"
            )
        if len(names) > MAX_STREAMS:
            raise web.HTTPBadRequest(text=f"at most {MAX_STREAMS} streams per connection")
        ws = web.WebSocketResponse(heartbeat=self.ping_s, max_msg_size=MAX_MESSAGE_BYTES)
        await ws.prepare(request)
        sock = request.transport.get_extra_info("socket") if request.transport else None
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        subs = Subscriptions([], combined=combined, max_streams=MAX_STREAMS, check=self._check)
        client = Client(self, ws, key, subs, request.transport)
        self.clients.add(client)
        self.stats["connections"] += 1
        self._subscribe(client, names)
        sender = client.sender = asyncio.create_task(client.send_loop())
        ager = asyncio.get_running_loop().call_later(self.max_age_s, self._age_out, client)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                if client.rate.exceeded():
                    await client.finish(WSCloseCode.POLICY_VIOLATION, "Too many messages")
                    break
                reply, added, removed = subs.answer(msg.data)
                client.send(json.dumps(reply, separators=(",", ":")))
                self._subscribe(client, added, already=True)
                self._unsubscribe(client, removed)
        finally:
            ager.cancel()
            client.closing = True
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            self._unsubscribe(client, list(subs.streams))
            self.clients.discard(client)
        return ws

    def _age_out(self, client: Client) -> None:
        self.stats["aged_out"] += 1
        client.close_soon(WSCloseCode.GOING_AWAY, "connection older than 24 h")

    def _check(self, name: str) -> str | None:
        """Why ``name`` cannot be subscribed: not a kline stream, or a symbol not served."""
        try:
            stream = parse_stream(name)
        except StreamNameError as e:
            return str(e)
        if stream.symbol not in {s.symbol for s in self.source.symbols()}:
            return f"{stream.symbol} is not served ({name})"
        return None

    def _subscribe(self, client: Client, names: list[str], *, already: bool = False) -> None:
        if not already:
            client.subs.streams.update(dict.fromkeys(names))
        for n in names:
            state = self.streams.get(n)
            if state is None:
                state = self.streams[n] = StreamState(parse_stream(n))
            state.clients.add(client)
            state.due = 0.0  # the current kline goes to the new subscriber at once
            state.resend = True
        if names:
            self._wake.set()

    def _unsubscribe(self, client: Client, names: list[str]) -> None:
        for n in names:
            state = self.streams.get(n)
            if state is None:
                continue
            state.clients.discard(client)
            if not state.clients:
                del self.streams[n]

    # -- the poll -----------------------------------------------------------------------------

    async def _poll_loop(self) -> None:
        while True:
            now = time.monotonic()
            due = [s for s in list(self.streams.values()) if s.due <= now]
            if due:
                await self.source.refresh()
            for state in due:
                state.due = now + (self.pace_s or state.stream.pace_s)
                try:
                    await self.poll(state)
                except ServeError as e:  # e.g. an interval no kept one rolls up into
                    if not state.failed:
                        log.warning("%s: %s", state.stream.name, e)
                    state.failed = True
                except Exception:  # one stream's failure must not stop the others
                    log.exception("polling %s failed", state.stream.name)
                # Its clients' frames go out now, not after every other stream's poll (a live
                # source answers without waiting: the loop would not run them till the end).
                await asyncio.sleep(0)
            nearest = min((s.due for s in self.streams.values()), default=now + PACE_S)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, nearest - time.monotonic()))

    async def poll(self, state: StreamState) -> None:
        """Reads the stream's latest klines (and, after :meth:`notify`, the ones since then)
        and sends what changed to its clients."""
        s = state.stream
        since, state.look_back_from = state.look_back_from, None
        # From the last kline sent closed on (several may have closed since the last poll,
        # a store gets them in batches), at most LOOKBACK; at first the latest two.
        last_sent = max(state.closed_sent, default=None)
        rows = await self.source.klines(
            s.symbol, s.interval, start_ms=last_sent, end_ms=None,
            limit=2 if last_sent is None else LOOKBACK, tz_offset=s.tz,
        )  # fmt: skip
        if since is not None and state.closed_sent:
            older = await self.source.klines(
                s.symbol, s.interval, start_ms=since, end_ms=None, limit=LOOKBACK, tz_offset=s.tz
            )
            known = [k for k in older if k.closed and k.open_time in state.closed_sent]
            latest = {k.open_time for k in rows}
            rows = [k for k in known if k.open_time not in latest] + rows
        events = state.events(rows, time.monotonic())
        if not events or not state.clients:
            return
        event_ms = self.now_ms()
        for k, closed in events:
            event = kline_event(k, symbol=s.symbol, interval=s.interval, closed=closed,
                                event_ms=event_ms)  # fmt: skip
            raw = json.dumps(event, separators=(",", ":"))
            combined = f'{{"stream":{json.dumps(s.name)},"data":{raw}}}'
            for c in list(state.clients):
                c.send_event(raw, combined)


def _is_stream(name: str) -> bool:
    try:
        parse_stream(name)
    except StreamNameError:
        return False
    return True
