"""What the Python-side consumers of one engine share: one reader of its wake fd per event
loop, and the batch in hand of :meth:`Engine.klines <kline_rs.Engine.klines>`."""

from __future__ import annotations

import asyncio
import select
import threading
import weakref
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from kline_rs.records import CLOSED_DTYPE, ClosedKline, closed_kline

if TYPE_CHECKING:
    from kline_rs.engine import Engine


def readable(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class Waker:
    """The one reader of an engine's wake fd on one loop (``add_reader`` keeps one callback
    per fd: a second would silence the first); wakes every consumer waiting there."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int) -> None:
        self.loop = loop
        self.fd = fd
        self.waiting: set[asyncio.Future[None]] = set()
        self.reading = False

    async def wait(self, timeout: float | None) -> bool:
        woken: asyncio.Future[None] = self.loop.create_future()
        self.waiting.add(woken)
        if not self.reading:
            self.loop.add_reader(self.fd, self.wake_all)
            self.reading = True
        try:
            done, _ = await asyncio.wait({woken}, timeout=timeout)
            return bool(done)
        finally:
            woken.cancel()
            self.waiting.discard(woken)
            if not self.waiting:
                self._stop_reading()

    def wake_all(self) -> None:
        # The fd stays readable until the next arm(): read it again only for new waiters.
        self._stop_reading()
        for woken in self.waiting:
            if not woken.done():
                woken.set_result(None)

    def _stop_reading(self) -> None:
        if self.reading:
            self.loop.remove_reader(self.fd)
            self.reading = False


class Consumers:
    """What the Python-side consumers of one engine share: the wake fd's readers, and the
    batch in hand of :meth:`Engine.klines` (each kline handed out once, the rest where the
    next consumer starts)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.wakers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Waker] = (
            weakref.WeakKeyDictionary()
        )
        self.readers = 0
        self.token = 0
        self.klines = np.empty(0, dtype=CLOSED_DTYPE)
        self.pos = 0

    def waker(self, loop: asyncio.AbstractEventLoop, engine: Engine) -> Waker:
        with self.lock:
            found = self.wakers.get(loop)
            if found is None:
                found = self.wakers[loop] = Waker(loop, engine.wake_fd())
            return found

    def waiting(self) -> bool:
        with self.lock:
            return any(w.waiting for w in self.wakers.values())

    def wake_all(self) -> None:
        with self.lock:
            wakers = list(self.wakers.values())
        for w in wakers:
            if not w.loop.is_closed():
                w.loop.call_soon_threadsafe(w.wake_all)

    def enter(self) -> None:
        with self.lock:
            self.readers += 1

    def take(self, engine: Engine, batch: int) -> ClosedKline | None:
        """The next kline of the shared batch (polling a new one when it is all handed out)."""
        with self.lock:
            if self.pos == len(self.klines):
                if self.token:
                    engine.ack(self.token)
                got = engine.poll_klines(batch)
                self.token, self.klines, self.pos = got.token, got.klines, 0
                if len(got.klines) == 0:
                    return None
            row = self.klines[self.pos]
            self.pos += 1
        return closed_kline(row)

    def leave(self, engine: Engine) -> None:
        """The last reader gone, what it did not take goes back to the engine, in front."""
        with self.lock:
            self.readers -= 1
            if self.readers or not self.token:
                return
            token, klines, pos = self.token, self.klines, self.pos
            self.token, self.klines, self.pos = 0, klines[:0], 0
            _hand_back(engine, token, klines, pos)


def _hand_back(engine: Engine, token: int, klines: npt.NDArray[np.void], pos: int) -> None:
    """Acknowledges the records of a batch whose first ``pos`` klines were handed out; the
    rest comes first on the next poll."""
    if pos == len(klines):
        engine.ack(token)
        return
    engine.nack(token)
    if pos == 0:
        return
    # The batch leads the redelivery now: look at it as records to see how many were handed
    # out in full, put it back, and take (and acknowledge) only those.
    token, records = engine.poll_records(pos)
    done = _handed_out(records, klines, pos)
    engine.nack(token)
    if done == 0:
        return
    token, again = engine.poll_records(done)
    if again.tolist() == records[:done].tolist():
        engine.ack(token)
    else:
        engine.nack(token)  # another consumer polled in between: at least once, not lost


def _handed_out(records: npt.NDArray[np.void], klines: npt.NDArray[np.void], pos: int) -> int:
    """How many leading ``records`` the first ``pos`` of ``klines`` (their expansion) cover in
    full; counting stops at a flat run covered in part, or at anything that does not match."""
    i = 0
    for n, r in enumerate(records):
        if i >= pos:
            return n
        if not _covers(r, klines[i], first=True):
            return n
        end = i + 1
        if r["flat"]:
            while end < len(klines) and _covers(r, klines[end], first=False):
                end += 1
        if end > pos:
            return n
        i = end
    return len(records)


def _covers(record: np.void, kline: np.void, *, first: bool) -> bool:
    """Whether ``kline`` is (part of the expansion of) ``record``."""
    if (record["symbol"], record["interval"], record["revision"]) != (
        kline["symbol"],
        kline["interval"],
        kline["revision"],
    ):
        return False
    if not record["flat"]:
        return bool(record["open_time"] == kline["open_time"])
    opens = (
        kline["open_time"] == record["open_time"]
        if first
        else kline["open_time"] > record["open_time"]
    )
    return bool(opens and kline["close_time"] <= record["close_time"])
