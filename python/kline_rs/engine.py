"""The streaming engine: live trades in, closed klines out, embeddable in any asyncio app."""

from __future__ import annotations

import asyncio
import select
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterator, Sequence
from types import TracebackType
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from kline_rs import _core
from kline_rs.anchor import warn_epoch_3d
from kline_rs.klines import KLINE_DTYPE, structured

#: Longest :meth:`Engine.push_many` retries frames that find no room, in all (s).
PUSH_TIMEOUT = 60.0

#: sync() rounds :meth:`Engine.drain` makes at most (producers pushing meanwhile keep it going).
MAX_DRAIN_ROUNDS = 10_000

#: A closed kline as :meth:`Engine.poll` returns it: :data:`KLINE_DTYPE` plus where it
#: belongs (symbol, interval), its revision (> 0: amended) and whether it covers a feed gap.
CLOSED_DTYPE = np.dtype(
    [*KLINE_DTYPE.descr, ("symbol", "O"), ("interval", "O"), ("revision", "<i8"), ("gap", "?")]
)


#: A slot of a snapshot: state "open" (a kline), "flat" (quiet since ``open_time`` at
#: ``close``) or "empty", for (symbol, interval).
SNAPSHOT_DTYPE = np.dtype([*KLINE_DTYPE.descr, ("symbol", "O"), ("interval", "O"), ("state", "O")])


#: A closed record as :meth:`Engine.poll_records` returns it: a kline, or with ``flat`` set one
#: row for a whole run of quiet periods ``open_time .. close_time`` at price ``close``.
RECORD_DTYPE = np.dtype([*CLOSED_DTYPE.descr, ("flat", "?")])


class Snapshot(NamedTuple):
    """What changed since the last acknowledged snapshot; ``ack_snapshot(token)`` when stored."""

    token: int
    slots: npt.NDArray[np.void]
    #: Last applied aggTrade id per symbol: replay resumes after it.
    checkpoints: dict[str, int]
    #: Closed records emitted before the snapshot that no poll can see yet (the outbox was
    #: full). Store the snapshot with polled records only when this is 0.
    behind: int = 0


class ClosedKline(NamedTuple):
    """One closed kline; prices at 1e-8, volumes at 1e-8, quote volumes at 1e-16."""

    symbol: str
    interval: str
    open_time: int
    close_time: int
    open: int
    high: int
    low: int
    close: int
    volume: int
    quote_volume: int
    trades: int
    taker_buy_volume: int
    taker_buy_quote_volume: int
    first_trade_id: int
    last_trade_id: int
    revision: int
    gap: bool
    #: aggTrades whose quote value may differ from Binance's (0: quote volumes exact).
    inexact_trades: int = 0
    #: The exact Σ p·q at 1e-16 (``quote_volume`` is Binance's, by the venue's rule).
    quote_volume_exact: int = 0


class Batch(NamedTuple):
    """Closed klines and the token that acknowledges them (:meth:`Engine.ack`)."""

    token: int
    klines: npt.NDArray[np.void]


class Engine(_core.Engine):
    """Partitioned kline engine (Rust threads); a context manager that closes on exit.

    ``Engine(["1m", "1h"], partitions=0, grace=250, ...)``: ``partitions=0`` means one per
    usable CPU; ``grace`` is how long (ms) after a bucket's close time the clock waits for
    stragglers before closing it. With 3d among the intervals, give each symbol its anchor
    (``add_symbol(s, anchor_3d_ms=...)``, its listing day): without one its 3d klines are on
    the epoch grid and an :class:`~kline_rs.Anchor3dWarning` says so.
    """

    def __init__(self, intervals: list[str], **kwargs: Any) -> None:
        if kwargs.get("auto_add"):
            warn_epoch_3d(intervals, None)  # symbols added by their first trade have no anchor

    def add_symbol(self, symbol: str, *, anchor_3d_ms: int | None = None) -> None:
        warn_epoch_3d(self.intervals, anchor_3d_ms)
        super().add_symbol(symbol, anchor_3d_ms=anchor_3d_ms)

    def add_symbols(
        self, symbols: list[str], *, anchors_3d_ms: dict[str, int] | None = None
    ) -> None:
        """Adds ``symbols`` at once; ``anchors_3d_ms``: each one's 3d anchor (listing day)."""
        anchors = anchors_3d_ms or {}
        if any(s not in anchors for s in symbols):
            warn_epoch_3d(self.intervals, None)
        super().add_symbols(symbols, anchors_3d_ms=anchors)

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def snapshot(self) -> Snapshot:
        """Open slots and checkpoints changed since the last acknowledged snapshot.

        Until :meth:`ack_snapshot` is called with its token, every later snapshot carries
        these entries again (a failed store loses nothing).
        """
        token, columns, checkpoints, behind = self.snapshot_columns()
        return Snapshot(token, structured(columns, SNAPSHOT_DTYPE), checkpoints, behind)

    def read(self, symbol: str) -> npt.NDArray[np.void]:
        """The symbol's current state per interval (open klines), after all earlier pushes."""
        return structured(self.read_columns(symbol), SNAPSHOT_DTYPE)

    def restore(
        self, slots: npt.NDArray[np.void], checkpoints: dict[str, int], *, hold: bool = False
    ) -> int:
        """Puts stored slots (as :meth:`snapshot` gave them) and checkpoints back.

        With ``hold``, each restored symbol then waits for the trades after its checkpoint:
        its live trades are held and nothing of it closes until :meth:`backfill` and
        :meth:`feed_up`, so what was missed while down comes out once, exact, at revision 0.
        """
        columns = {name: slots[name].tolist() for name in SNAPSHOT_DTYPE.names or ()}
        return self.restore_columns(columns, checkpoints, hold=hold)

    def poll_klines(self, max_records: int = 65536) -> Batch:
        """Closed klines (flat runs expanded) as a structured array, pending until acked."""
        token, columns = self.poll(max_records)
        return Batch(token, structured(columns, CLOSED_DTYPE))

    def poll_records(self, max_records: int = 65536) -> Batch:
        """Closed records with flat runs kept whole (:data:`RECORD_DTYPE`), pending until acked:
        what a store keeps compactly."""
        token, columns = self.poll(max_records, expand=False)
        return Batch(token, structured(columns, RECORD_DTYPE))

    def arm(self) -> None:
        """Call before waiting (:meth:`wait_for_records`), then poll once more: the next closed
        record wakes the waiters. A wake still pending is passed on to them, not swallowed."""
        consumers = self._consumers()
        if consumers.waiting() and _readable(self.wake_fd()):
            consumers.wake_all()
        super().arm()

    async def wait_for_records(self, timeout: float | None = None) -> bool:
        """Waits until closed records may be waiting (or :meth:`close`); False after ``timeout``.

        Call :meth:`arm` first, then poll once more. Any number of consumers, on any loops, may
        wait on one engine at once: one reader per loop on the wake fd wakes them all.
        """
        return await self._consumers().waker(asyncio.get_running_loop(), self).wait(timeout)

    async def closed(self, *, batch: int = 4096) -> AsyncIterator[ClosedKline]:
        """Closed klines as they come, woken through a file descriptor (no polling loop).

        Several consumers may read one engine, beside others waiting through
        :meth:`wait_for_records`: each kline goes to one of them, once. A consumer that leaves
        mid-batch (break, return or an exception) leaves the rest to the next one, in order,
        at once; when the last one leaves, the rest goes back to the engine for any poll (a
        flat run handed out in part comes again whole). Ends after ``close()``.
        """
        shared = self._consumers()
        shared.enter()
        try:
            while True:
                k = shared.take(self, batch)
                if k is None:
                    self.arm()
                    k = shared.take(self, batch)  # one may have closed before arming
                if k is not None:
                    yield k
                    continue
                if self.closed_engine:
                    return
                await self.wait_for_records()
        finally:
            shared.leave(self)

    def drain(self, max_records: int = 65536, *, expand: bool = True) -> Iterator[Batch]:
        """Every record closed by what was pushed before the call, in batches pending until
        acked (:meth:`poll_klines`, or :meth:`poll_records` without ``expand``).

        One empty poll after :meth:`sync` does not prove it: records may still wait behind a
        full outbox (small chunks sealed by removals fill it early) until the worker moves
        them. This syncs again after each empty poll and ends when a poll right after a sync
        finds nothing.
        """
        for rounds in range(MAX_DRAIN_ROUNDS + 1):
            found = False
            while True:
                got = self.poll_klines(max_records) if expand else self.poll_records(max_records)
                if len(got.klines) == 0:
                    break
                found = True
                yield got
            if rounds and not found:
                return
            # Polled first: a worker held at its spill bound answers a sync only once polled.
            if rounds < MAX_DRAIN_ROUNDS:
                self.sync()
        raise _core.EngineError(
            f"drain: records still closing after {MAX_DRAIN_ROUNDS} sync rounds "
            "(are producers pushing meanwhile?)"
        )

    def push_many(self, frames: Sequence[bytes], *, timeout: float = PUSH_TIMEOUT) -> int:
        """Pushes websocket frames, retrying the rest while backpressure lasts; returns trades.

        Raises :class:`EngineError` once the engine is closed, and :class:`BackpressureError`
        when frames still find no room after ``timeout`` seconds in all.
        """
        trades = 0
        rest = list(frames)
        deadline = time.monotonic() + timeout
        while rest:
            if self.closed_engine:
                raise _core.EngineError(
                    f"push_many: the engine is closed ({len(rest)} of {len(frames)} frames "
                    "not pushed)"
                )
            report = self.push_raw(rest)
            trades += report["trades"]
            rest = rest[report["consumed"] :]
            if rest and time.monotonic() >= deadline:
                raise _core.BackpressureError(
                    f"push_many: {len(rest)} of {len(frames)} frames found no room in "
                    f"{timeout} s (consume closed klines faster, or use more partitions)"
                )
        return trades

    def _consumers(self) -> _Consumers:
        found: _Consumers | None = self.__dict__.get("_shared_consumers")
        if found is None:  # setdefault: two threads asking first still share one
            found = self.__dict__.setdefault("_shared_consumers", _Consumers())
        return found


def _readable(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class _Waker:
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


class _Consumers:
    """What the Python-side consumers of one engine share: the wake fd's readers, and the
    batch in hand of :meth:`Engine.closed` (each kline handed out once, the rest where the
    next consumer starts)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.wakers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Waker] = (
            weakref.WeakKeyDictionary()
        )
        self.readers = 0
        self.token = 0
        self.klines = np.empty(0, dtype=CLOSED_DTYPE)
        self.pos = 0

    def waker(self, loop: asyncio.AbstractEventLoop, engine: Engine) -> _Waker:
        with self.lock:
            found = self.wakers.get(loop)
            if found is None:
                found = self.wakers[loop] = _Waker(loop, engine.wake_fd())
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
    token, columns = engine.poll(pos, expand=False)
    records = structured(columns, RECORD_DTYPE)
    done = _handed_out(records, klines, pos)
    engine.nack(token)
    if done == 0:
        return
    token, columns = engine.poll(done, expand=False)
    if structured(columns, RECORD_DTYPE).tolist() == records[:done].tolist():
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


def closed_kline(row: np.void) -> ClosedKline:
    """One element of a :data:`CLOSED_DTYPE` (or :data:`RECORD_DTYPE`) array as a tuple."""
    return ClosedKline(
        symbol=row["symbol"],
        interval=row["interval"],
        open_time=int(row["open_time"]),
        close_time=int(row["close_time"]),
        open=int(row["open"]),
        high=int(row["high"]),
        low=int(row["low"]),
        close=int(row["close"]),
        volume=row["volume"],
        quote_volume=row["quote_volume"],
        trades=int(row["trades"]),
        taker_buy_volume=row["taker_buy_volume"],
        taker_buy_quote_volume=row["taker_buy_quote_volume"],
        first_trade_id=int(row["first_trade_id"]),
        last_trade_id=int(row["last_trade_id"]),
        revision=int(row["revision"]),
        gap=bool(row["gap"]),
        inexact_trades=int(row["inexact_trades"]),
        quote_volume_exact=row["quote_volume_exact"],
    )
