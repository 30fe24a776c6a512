"""``kline-rs capture``: Binance's trades into a JetStream stream, each once, nothing aggregated.

The feed, the symbol manager and the REST client are ``run``'s; instead of the engine the
frames go to a :class:`Capture`, which checks each trade with the core's parser, keeps each
symbol's ids complete (a hole is fetched with REST ``aggTrades?fromId=`` in the background,
so one symbol's repair never stops the others: its trades reach the stream after the later
ones, and consumers order by id) and publishes it with an acknowledged publish, at most
:data:`MAX_IN_FLIGHT` unacknowledged at a time. At start, a symbol the stream already holds
goes on from its last stored id: what came meanwhile is fetched over REST.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import nats
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.errors import (
    APIError,
    NotFoundError,
)

from kline_rs import _core
from kline_rs.feeds.binance import BinanceFeed
from kline_rs.live.symbols import Selection, SymbolManager
from kline_rs.rest import BinanceRest, VenueName
from kline_rs.scale.trade_stream import (
    MAX_BYTES,
    STREAM,
    TRANSIENT,
    cluster_servers,
    ensure_stream,
    message_id,
    retried,
    subject,
)
from kline_rs.venues import VENUES

log = logging.getLogger("kline_rs.capture")

#: Frames held for the publisher before the feed is told to wait (it stops reading).
MAX_QUEUED = 1 << 16
#: Publishes sent and not yet acknowledged, at most (back-pressure on the feed past it).
MAX_IN_FLIGHT = 256
#: Seconds one publish waits for its PubAck; it is retried (same message id) until
#: PUBLISH_DEADLINE_S, then capture stops: JetStream has had no quorum for that long.
PUBLISH_TIMEOUT_S = 2.0
PUBLISH_DEADLINE_S = 60.0
#: Pause before a publish is sent again, doubled up to the cap.
RETRY_PAUSE_S = 0.1
RETRY_PAUSE_MAX_S = 1.0
#: Trades fetched for one hole at most; past it the hole is given up (logged, counted).
MAX_REPAIR_TRADES = 1_000_000
#: Fetches of one hole before it is given up.
REPAIR_ATTEMPTS = 5
#: Holes repaired at once, at most; past it the publish loop waits for one to end.
MAX_REPAIRS = 32


class CaptureError(_core.KlineError):
    """Capture cannot go on: JetStream refuses or does not acknowledge trades."""


class StreamFullError(CaptureError):
    """The stream is at its size bound (discard new): consumers are behind, or it is too
    small for the symbols captured."""


@dataclass
class CaptureStats:
    """What capture did, counted as ``run`` counts its frames."""

    frames: int = 0
    published: int = 0
    #: Publishes the stream already had (the other replica's copy): stored once.
    stored_twice_refused: int = 0
    #: Trades this replica had already published (duplicated or overlapping frames).
    duplicates: int = 0
    malformed: int = 0
    implausible: int = 0
    unknown_symbol: int = 0
    gaps: int = 0
    repaired: int = 0
    given_up: int = 0
    trades_fetched: int = 0
    publish_retries: int = 0
    #: Publishes nats-py neither sent nor timed out in time (bounded here, then retried).
    publish_stalls: int = 0
    backpressure_waits: int = 0

    def line(self) -> str:
        return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in vars(self).items())


@dataclass
class Taken:
    """The answer to the feed's ``push_raw``."""

    consumed: int
    backpressure: bool


@dataclass
class CaptureConfig:
    nats: Sequence[str]
    venue: VenueName = "spot"
    selection: Selection = field(default_factory=Selection)
    ws_url: str | None = None
    rest_url: str | None = None
    exchange_info_every: float = 60.0
    #: The stream's size bound, if capture creates it.
    max_bytes: int = MAX_BYTES


class Capture:
    """The feed's sink: frames → checked trades → JetStream, in id order per symbol."""

    def __init__(self, config: CaptureConfig) -> None:
        self.config = config
        self.venue = config.venue
        self.stats = CaptureStats()
        self.following: set[str] = set()
        #: Per symbol, the last aggTrade id published (or found in the stream at start).
        self.last_id: dict[str, int] = {}
        self._queue: deque[bytes] = deque()
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._repairs: set[asyncio.Task[None]] = set()
        self._repair_slots = asyncio.Semaphore(MAX_REPAIRS)
        self._failed: BaseException | None = None
        self._js: JetStreamContext | None = None
        self._rest: BinanceRest | None = None
        self.feed: BinanceFeed | None = None

    # -- the feed's side ---------------------------------------------------------------------

    def push_raw(self, frames: list[bytes]) -> Taken:
        room = MAX_QUEUED - len(self._queue)
        taken = max(0, min(room, len(frames)))
        self._queue.extend(frames[:taken])
        if taken:
            self._wake.set()
        if taken < len(frames):
            self.stats.backpressure_waits += 1
        return Taken(taken, taken < len(frames))

    # -- running ------------------------------------------------------------------------------

    async def run(self, duration: float | None = None) -> None:
        """Follows the selection until cancelled (or ``duration`` seconds), then publishes what
        was received and waits for its acknowledgements."""
        cfg = self.config
        nc: NatsClient

        async def disconnected() -> None:
            log.warning("NATS: disconnected (publishes wait, then are sent again)")

        async def reconnected() -> None:
            log.warning("NATS: reconnected to %s", _where(nc))

        nc = await nats.connect(
            list(cfg.nats),
            name="kline-rs capture",
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
        )
        try:
            js = self._js = nc.jetstream(timeout=PUBLISH_TIMEOUT_S)
            replicas = await retried(
                lambda: ensure_stream(js, cluster_servers(nc), cfg.max_bytes),
                f"the stream {STREAM}", PUBLISH_DEADLINE_S,
            )  # fmt: skip
            log.info("publishing to stream %s (%d replicas)", STREAM, replicas)
            venue = VENUES[cfg.venue]
            async with BinanceRest(cfg.venue, base_url=cfg.rest_url or venue.rest_url) as rest:
                self._rest = rest
                self.feed = feed = BinanceFeed(self, venue=cfg.venue, ws_url=cfg.ws_url)
                manager = SymbolManager(
                    rest.exchange_info,
                    cfg.selection,
                    add=self._add,
                    remove=self._remove,
                    halt=_nothing,
                    resume=_nothing,
                    every=cfg.exchange_info_every,
                )
                await manager.refresh(strict=True)
                self.manager = manager
                tasks = [
                    asyncio.create_task(manager.run(), name="kline-rs symbols"),
                    asyncio.create_task(feed.failure(), name="kline-rs feed"),
                    asyncio.create_task(self._publish_loop(), name="kline-rs publish"),
                ]
                try:
                    done, _ = await asyncio.wait(
                        tasks, timeout=duration, return_when=asyncio.FIRST_COMPLETED
                    )
                    for t in done:
                        t.result()
                finally:
                    await feed.stop()
                    tasks[0].cancel()
                    tasks[1].cancel()
                    self._wake.set()
                    await self._drain(tasks[2])
        finally:
            with contextlib.suppress(Exception):
                await nc.close()

    async def _drain(self, publisher: asyncio.Task[None]) -> None:
        """What the feed handed over goes out and is acknowledged (bounded), then stops."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PUBLISH_DEADLINE_S
        while (self._queue or self._in_flight or self._repairs) and not publisher.done():
            if loop.time() > deadline:
                log.error("stopping with %d frames not published", len(self._queue))
                break
            await asyncio.sleep(0.01)
        publisher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await publisher
        for r in self._repairs:
            r.cancel()
        if self._in_flight:
            await asyncio.wait(self._in_flight, timeout=PUBLISH_DEADLINE_S)
        if self._failed is not None:
            raise self._failed

    async def _add(self, symbols: list[str]) -> None:
        assert self._js is not None and self.feed is not None
        for s in symbols:
            last = await self._stored_last(s)
            if last is not None:
                self.last_id[s] = last
        self.following.update(symbols)
        await self.feed.set_symbols(self.following)

    async def _remove(self, symbols: list[str]) -> None:
        assert self.feed is not None
        self.following.difference_update(symbols)
        await self.feed.set_symbols(self.following)

    async def _stored_last(self, symbol: str) -> int | None:
        """The last aggTrade id the stream holds for ``symbol`` (None: none yet)."""
        assert self._js is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PUBLISH_DEADLINE_S
        while True:  # a stream just created, or electing a leader, answers after a while
            try:
                msg = await self._js.get_last_msg(STREAM, subject(self.venue, symbol))
            except NotFoundError:
                return None
            except TRANSIENT as e:
                if loop.time() > deadline:
                    raise CaptureError(
                        f"stream {STREAM}: no answer for {symbol}'s last trade in "
                        f"{PUBLISH_DEADLINE_S:.0f} s ({type(e).__name__})"
                    ) from e
                await asyncio.sleep(0.1)
                continue
            return int(json.loads(msg.data or b"{}")["a"])

    # -- trades -------------------------------------------------------------------------------

    async def _publish_loop(self) -> None:
        queue = self._queue
        while True:
            if self._failed is not None:
                raise self._failed
            if not queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            frame = queue.popleft()
            self.stats.frames += 1
            trade = self._trade(frame)
            if trade is not None:
                await self._take(*trade)

    def _trade(self, frame: bytes) -> tuple[str, int, bytes] | None:
        """(symbol, aggTrade id, the event's raw JSON) of a data frame; None for a reply or
        control frame, and for a frame that is not a valid aggTrade (counted)."""
        head = b'{"stream":'
        at = frame.find(b'"data":')
        if not frame.startswith(head) or at < 0:
            if not (frame.startswith(b'{"result"') or b'"serverShutdown"' in frame):
                self.stats.malformed += 1
            return None
        data = frame[at + 7 : frame.rstrip().rfind(b"}")].strip()
        try:
            event = json.loads(data)
            trades = _core.parse_agg_trades(b"[" + data + b"]")  # the core's checks
            symbol = str(event["s"])
            refusal = _core.relayed_time_refusal(int(trades["time"][0]), int(event["E"]))
        except (ValueError, KeyError, TypeError, _core.KlineError):
            self.stats.malformed += 1
            return None
        if event.get("e") != "aggTrade" or symbol not in self.following:
            self.stats.unknown_symbol += 1
            return None
        if refusal is not None:  # the core's rule; the real trade comes by id (REST)
            self.stats.implausible += 1
            log.debug("%s: trade refused: %s", symbol, refusal)
            return None
        return symbol, int(trades["agg_id"][0]), data

    async def _take(self, symbol: str, agg_id: int, data: bytes) -> None:
        last = self.last_id.get(symbol)
        if last is not None and agg_id <= last:
            self.stats.duplicates += 1
            return
        if last is not None and agg_id > last + 1:
            await self._repair_slots.acquire()
            task = asyncio.create_task(
                self._repair(symbol, last + 1, agg_id - 1), name=f"kline-rs repair {symbol}"
            )
            self._repairs.add(task)
            task.add_done_callback(self._repaired)
        await self._publish(symbol, agg_id, data)

    def _repaired(self, task: asyncio.Task[None]) -> None:
        self._repairs.discard(task)
        self._repair_slots.release()
        e = None if task.cancelled() else task.exception()
        if e is not None and self._failed is None:  # a publish failure (stops capture)
            self._failed = e
            self._wake.set()

    async def _repair(self, symbol: str, from_id: int, to_id: int) -> None:
        """Publishes ids ``from_id..=to_id`` from REST; gives up (logged) after bounds."""
        assert self._rest is not None
        self.stats.gaps += 1
        log.info("%s: ids %d..%d missing, fetching them over REST", symbol, from_id, to_id)
        next_id, why = from_id, ""
        for attempt in range(REPAIR_ATTEMPTS):
            if attempt:
                await asyncio.sleep(0.5 * 2 ** (attempt - 1))
            while next_id <= to_id:
                if next_id - from_id > MAX_REPAIR_TRADES:
                    why = f"more than {MAX_REPAIR_TRADES} trades"
                    break
                try:
                    page = await self._rest.agg_trades(symbol, from_id=next_id, limit=1000)
                except Exception as e:  # any REST failure: retry, then give up
                    why = f"{type(e).__name__}: {e}"
                    log.warning("%s: fetch of ids %d..%d failed (%s)", symbol, next_id, to_id, e)
                    break
                page = [t for t in page if next_id <= int(t["a"]) <= to_id]
                if not page:
                    why = f"REST has ids up to {next_id - 1} only"
                    break
                self.stats.trades_fetched += len(page)
                # A publish failure is not the fetch's: it stops capture (raised here).
                for t in page:
                    await self._publish(symbol, int(t["a"]), _event(symbol, t), repair=True)
                next_id = int(page[-1]["a"]) + 1
            if next_id > to_id:
                self.stats.repaired += 1
                return
            if why.startswith("more than"):
                break
        self.stats.given_up += 1
        log.warning("%s: aggTrade ids %d..%d given up (%s)", symbol, next_id, to_id, why)

    async def _publish(
        self, symbol: str, agg_id: int, data: bytes, *, repair: bool = False
    ) -> None:
        """Sends one trade, acknowledged in the background; waits while MAX_IN_FLIGHT are.
        A repair's trade is older than the symbol's last id, which stays."""
        if self._failed is not None:
            raise self._failed
        if not repair:
            self.last_id[symbol] = agg_id
        await self._slots.acquire()
        task = asyncio.create_task(self._send(symbol, agg_id, data))
        self._in_flight.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._slots.release()
        e = None if task.cancelled() else task.exception()
        if e is not None and self._failed is None:
            if not isinstance(e, CaptureError):
                wrapped = CaptureError(f"stream {STREAM}: publish failed: {type(e).__name__} {e}")
                wrapped.__cause__ = e
                e = wrapped
            log.error("%s", e)
            self._failed = e
            self._wake.set()

    async def _send(self, symbol: str, agg_id: int, data: bytes) -> None:
        assert self._js is not None
        headers = {"Nats-Msg-Id": message_id(self.venue, symbol, agg_id)}
        to = subject(self.venue, symbol)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PUBLISH_DEADLINE_S
        pause = RETRY_PAUSE_S
        while True:
            try:
                # nats-py's timeout covers the wait for the ack only: after a reconnect its
                # publish itself was seen to block for good (buffered, never flushed), so the
                # whole call is bounded here too.
                ack = await asyncio.wait_for(
                    self._js.publish(to, data, headers=headers, timeout=PUBLISH_TIMEOUT_S),
                    PUBLISH_TIMEOUT_S + 1.0,
                )
            except TRANSIENT as e:  # nats-py's TimeoutError first: an asyncio.TimeoutError
                why = f"{type(e).__name__} {e}"
            except asyncio.TimeoutError:
                self.stats.publish_stalls += 1
                why = "the NATS client neither sent it nor timed out"
            except APIError as e:
                text = str(e)
                if "maximum bytes" in text or "maximum messages" in text:
                    raise StreamFullError(f"stream {STREAM} is full: {text}") from e
                why = text
                if e.code is not None and 400 <= e.code < 500 and e.code != 408:
                    raise CaptureError(f"stream {STREAM} refused {to} id {agg_id}: {text}") from e
            else:
                self.stats.published += 1
                if ack.duplicate:
                    self.stats.stored_twice_refused += 1
                return
            if loop.time() > deadline:
                raise CaptureError(
                    f"stream {STREAM}: no acknowledgement for {to} id {agg_id} in "
                    f"{PUBLISH_DEADLINE_S:.0f} s ({why})"
                )
            self.stats.publish_retries += 1
            log.debug("%s id %d: publish again in %.1f s (%s)", to, agg_id, pause, why)
            await asyncio.sleep(pause)
            pause = min(RETRY_PAUSE_MAX_S, 2 * pause)


def _event(symbol: str, trade: dict[str, Any]) -> bytes:
    """A REST aggTrade as the websocket's event (its event time: the trade's)."""
    event = {"e": "aggTrade", "E": trade["T"], "s": symbol, **trade}
    return json.dumps(event, separators=(",", ":")).encode()


def _where(nc: NatsClient) -> str:
    url = nc.connected_url
    return url.netloc if url is not None else "(none)"


async def _nothing(symbols: list[str]) -> None:
    """A halt or resume: the stream stays subscribed, nothing to publish meanwhile."""
