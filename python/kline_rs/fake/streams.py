"""One websocket client of the fake exchange: its streams, its live requests, its outbox.

Frames leave through one ordered outbox per connection, so replies, data and the
``serverShutdown`` event keep their order; only data frames are dropped, duplicated or
reordered by the faults, and every frame can be delayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from enum import Enum
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from kline_rs.fake.events import dumps
from kline_rs.fake.faults import Faults, FrameFaults
from kline_rs.fake.stats import ExchangeStats
from kline_rs.serve.requests import MessageRate, Subscriptions
from kline_rs.venues import Venue


class Kind(Enum):
    DATA = "data"
    REPLY = "reply"
    CLOSE = "close"


class Connection:
    """A ``/stream`` (combined) or ``/ws`` (raw) client and what is queued for it."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        request: web.Request,
        *,
        number: int,
        streams: list[str],
        combined: bool,
        venue: Venue,
        faults: Faults,
        stats: ExchangeStats,
        opened_ms: int,
    ) -> None:
        self.ws = ws
        self.request = request
        self.number = number
        self.subs = Subscriptions(streams, combined=combined, max_streams=venue.max_streams)
        self.venue = venue
        self.faults = faults
        self.stats = stats
        self.opened_ms = opened_ms
        self.frame_faults = FrameFaults(faults, number)
        self.data_sent = 0
        self.closing = False
        self._outbox: deque[tuple[float, Kind, str]] = deque()
        self._wake = asyncio.Event()
        self.rate = MessageRate(venue.ws_messages_per_second)

    # -- what the exchange puts in ----------------------------------------------------------

    def send_data(self, frames: list[str]) -> None:
        if self.closing:
            return
        now = time.monotonic()
        before = self.frame_faults.counts.dropped, self.frame_faults.counts.duplicated
        out = self.frame_faults.apply(frames, now)
        self.stats.frames_dropped += self.frame_faults.counts.dropped - before[0]
        self.stats.frames_duplicated += self.frame_faults.counts.duplicated - before[1]
        self._enqueue(Kind.DATA, out, now)

    def flush_held(self) -> None:
        """Lets a partly filled reorder window out once it has waited long enough."""
        if not self.closing:
            now = time.monotonic()
            self._enqueue(Kind.DATA, self.frame_faults.flush(now), now)

    def send_reply(self, obj: Any) -> None:
        """A reply that faults never drop (it is still delayed)."""
        self.send_control(dumps(obj))

    def send_control(self, text: str) -> None:
        """A serialised frame that faults never drop (it is still delayed)."""
        if not self.closing:
            self._enqueue(Kind.REPLY, [text], time.monotonic())

    def close_after_outbox(self, code: int, message: str, after_ms: int = 0) -> None:
        """Closes once everything queued so far has gone out, ``after_ms`` later."""
        if not self.closing:
            due = time.monotonic() + (self.faults.delay_ms + after_ms) / 1000
            self._outbox.append((due, Kind.CLOSE, f"{code} {message}"))
            self._wake.set()

    def _enqueue(self, kind: Kind, texts: list[str], now: float) -> None:
        if texts:
            due = now + self.faults.delay_ms / 1000
            self._outbox.extend((due, kind, text) for text in texts)
            self._wake.set()

    async def close_now(
        self, code: int = WSCloseCode.GOING_AWAY, message: str = "", *, abrupt: bool = False
    ) -> None:
        """Closes at once (queued frames are lost); ``abrupt`` drops TCP without a close frame."""
        if self.closing:
            return
        self.closing = True
        self.stats.server_closes += 1
        self._outbox.clear()
        self._wake.set()
        transport = self.request.transport
        if abrupt and transport is not None:
            transport.abort()
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.close(code=code, message=message.encode())

    # -- the connection's life --------------------------------------------------------------

    async def run(self) -> None:
        """Serves the connection until it closes."""
        sender = asyncio.create_task(self._send_loop())
        try:
            async for msg in self.ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    await self._on_message(msg.data if msg.type == WSMsgType.TEXT else "")
        finally:
            self.closing = True
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender

    async def _send_loop(self) -> None:
        while not self.closing:
            if not self._outbox:
                self._wake.clear()
                await self._wake.wait()
                continue
            due, kind, text = self._outbox[0]
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            self._outbox.popleft()
            if kind is Kind.CLOSE:
                code, _, message = text.partition(" ")
                await self.close_now(int(code), message, abrupt=self.faults.abrupt_disconnect)
                return
            try:
                await self.ws.send_str(text)
            except ConnectionError:
                return
            if kind is Kind.DATA:
                self.data_sent += 1
                self.stats.frames_sent += 1
                every = self.faults.disconnect_every
                if every and self.data_sent % every == 0:
                    abrupt = self.faults.abrupt_disconnect
                    await self.close_now(WSCloseCode.GOING_AWAY, "disconnect_every", abrupt=abrupt)
                    return

    async def _on_message(self, text: str) -> None:
        """Binance counts every incoming message; past the venue's rate it disconnects."""
        if self.rate.exceeded():
            await self.close_now(WSCloseCode.POLICY_VIOLATION, "Too many messages")
            return
        self.send_reply(self.answer(text))

    def answer(self, text: str) -> dict[str, Any]:
        """The reply to one live request (SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS, …)."""
        return self.subs.answer(text)[0]

    @property
    def streams(self) -> dict[str, None]:
        return self.subs.streams

    @property
    def combined(self) -> bool:
        return self.subs.combined
