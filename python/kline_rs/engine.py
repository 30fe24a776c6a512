"""The streaming engine: live trades in, closed klines out, embeddable in any asyncio app."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from types import TracebackType
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from kline_rs import _core
from kline_rs.anchor import warn_epoch_3d
from kline_rs.consumers import Consumers, readable
from kline_rs.klines import QuoteRule, structured
from kline_rs.records import (
    CLOSED_DTYPE,
    RECORD_DTYPE,
    SNAPSHOT_DTYPE,
    Batch,
    ClosedKline,
    Snapshot,
    closed_kline,
)

__all__ = [
    "CLOSED_DTYPE",
    "RECORD_DTYPE",
    "SNAPSHOT_DTYPE",
    "Batch",
    "ClosedKline",
    "Engine",
    "PushReport",
    "Snapshot",
    "closed_kline",
]

#: Longest :meth:`Engine.push_many` retries frames that find no room, in all (s).
PUSH_TIMEOUT = 60.0

#: sync() rounds :meth:`Engine.drain` makes at most (producers pushing meanwhile keep it going).
MAX_DRAIN_ROUNDS = 10_000

#: What one :meth:`Engine.push_raw` call did with its frames.
PushReport = _core.PushReport

LatePolicy = Literal["drop", "amend"]
TimeUnit = Literal["ms", "us"]


class Engine:
    """Partitioned kline engine (Rust threads); a context manager that closes on exit.

    ``Engine(["1m", "1h"], partitions=0, grace=250, ...)``: ``partitions=0`` means one per
    usable CPU; ``grace`` is how long (ms) after a bucket's close time the clock waits for
    stragglers before closing it. With 3d among the intervals, give each symbol its anchor
    (``add_symbol(s, anchor_3d_ms=...)``, its listing day): without one its 3d klines are on
    the epoch grid and an :class:`~kline_rs.Anchor3dWarning` says so.

    Trades go in as one :data:`~kline_rs.TRADE_DTYPE` array (:func:`kline_rs.trades`), or as
    Binance websocket frames (:meth:`push_raw`, :meth:`push_many`).
    """

    def __init__(
        self,
        intervals: Sequence[str],
        *,
        partitions: int = 0,
        grace: int = 250,
        ring_capacity: int = 65536,
        outbox_capacity: int = 65536,
        tz_offset: str | None = None,
        time_unit: TimeUnit = "ms",
        pin_threads: bool = True,
        auto_add: bool = False,
        push_wait_ms: int = 100,
        clock: _core.ManualClock | None = None,
        late_policy: LatePolicy = "drop",
        allowed_lateness: int = 0,
        detect_id_gaps: bool = False,
        mark_partial_start: bool = False,
        spin_us: int = 50,
        max_ahead_ms: int | None = _core.DEFAULT_MAX_AHEAD_MS,
        max_jump_ms: int | None = None,
        max_spill: int = 262144,
        quote_rule: QuoteRule = "per-trade",
    ) -> None:
        if auto_add:
            warn_epoch_3d(intervals, None)  # symbols added by their first trade have no anchor
        self._core = _core.Engine(
            list(intervals),
            partitions=partitions,
            grace=grace,
            ring_capacity=ring_capacity,
            outbox_capacity=outbox_capacity,
            tz_offset=tz_offset,
            time_unit=time_unit,
            pin_threads=pin_threads,
            auto_add=auto_add,
            push_wait_ms=push_wait_ms,
            clock=clock,
            late_policy=late_policy,
            allowed_lateness=allowed_lateness,
            detect_id_gaps=detect_id_gaps,
            mark_partial_start=mark_partial_start,
            spin_us=spin_us,
            max_ahead_ms=max_ahead_ms,
            max_jump_ms=max_jump_ms,
            max_spill=max_spill,
            quote_rule=quote_rule,
        )
        self._consumers = Consumers()

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def intervals(self) -> list[str]:
        return self._core.intervals

    @property
    def partitions(self) -> int:
        return self._core.partitions

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._core.closed_engine

    def close(self) -> None:
        """Stops the workers after they apply what is on their rings; closed klines stay
        pollable."""
        self._core.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- symbols --------------------------------------------------------------------------

    def add_symbol(
        self, symbol: str, *, anchor_3d_ms: int | None = None, contract_size: int | None = None
    ) -> None:
        """Adds ``symbol``; ``contract_size``: a COIN-M symbol's (exchangeInfo's
        ``contractSize``), which makes its quote volumes base-asset volume."""
        warn_epoch_3d(self.intervals, anchor_3d_ms)
        self._core.add_symbol(symbol, anchor_3d_ms=anchor_3d_ms, contract_size=contract_size)

    def add_symbols(
        self,
        symbols: Sequence[str],
        *,
        anchors_3d_ms: dict[str, int] | None = None,
        contract_sizes: dict[str, int] | None = None,
    ) -> None:
        """Adds ``symbols`` at once; ``anchors_3d_ms``: each one's 3d anchor (listing day);
        ``contract_sizes``: each COIN-M symbol's contract size (see :meth:`add_symbol`)."""
        anchors = anchors_3d_ms or {}
        if any(s not in anchors for s in symbols):
            warn_epoch_3d(self.intervals, None)
        self._core.add_symbols(list(symbols), anchors_3d_ms=anchors, contract_sizes=contract_sizes)

    def remove_symbol(self, symbol: str) -> None:
        """Emits the symbol's open klines as final and frees its slots."""
        self._core.remove_symbol(symbol)

    def symbols(self) -> list[str]:
        return self._core.symbols()

    def halt(self, symbol: str) -> None:
        """The exchange halted ``symbol``: no quiet period is emitted as flat until
        :meth:`resume` (Binance writes no rows while trading is halted)."""
        self._core.halt(symbol)

    def resume(self, symbol: str) -> None:
        self._core.resume(symbol)

    # -- trades in ------------------------------------------------------------------------

    def push_trades(self, symbol: str, trades: npt.NDArray[np.void]) -> int:
        """One symbol's trades in aggTrade id order, as a :data:`~kline_rs.TRADE_DTYPE`
        array (see :func:`kline_rs.trades`); returns how many."""
        return self._core.push_trades(symbol, trades)

    def push_raw(self, frames: bytes | Sequence[bytes]) -> PushReport:
        """Binance websocket frames (aggTrade / trade, plain or combined): parsed and routed
        in Rust. On backpressure ``consumed`` says where to resume."""
        return self._core.push_raw(frames)

    def push_many(self, frames: Sequence[bytes], *, timeout: float = PUSH_TIMEOUT) -> int:
        """Pushes websocket frames, retrying the rest while backpressure lasts; returns trades.

        Raises :class:`EngineError` once the engine is closed, and :class:`BackpressureError`
        when frames still find no room after ``timeout`` seconds in all.
        """
        trades = 0
        rest = list(frames)
        deadline = time.monotonic() + timeout
        while rest:
            if self.closed:
                raise _core.EngineError(
                    f"push_many: the engine is closed ({len(rest)} of {len(frames)} frames "
                    "not pushed)"
                )
            report = self.push_raw(rest)
            trades += report.trades
            rest = rest[report.consumed :]
            if rest and time.monotonic() >= deadline:
                raise _core.BackpressureError(
                    f"push_many: {len(rest)} of {len(frames)} frames found no room in "
                    f"{timeout} s (consume closed klines faster, or use more partitions)"
                )
        return trades

    def sync(self) -> None:
        """Returns once everything pushed before has been applied (and the clock looked at)."""
        self._core.sync()

    # -- klines out -----------------------------------------------------------------------

    def poll_klines(self, max_records: int = 65536) -> Batch:
        """Closed klines (flat runs expanded) as a structured array, pending until acked."""
        token, columns = self._core.poll(max_records)
        return Batch(token, structured(columns, CLOSED_DTYPE))

    def poll_records(self, max_records: int = 65536) -> Batch:
        """Closed records with flat runs kept whole (:data:`RECORD_DTYPE`), pending until acked:
        what a store keeps compactly."""
        token, columns = self._core.poll(max_records, expand=False)
        return Batch(token, structured(columns, RECORD_DTYPE))

    def ack(self, token: int) -> bool:
        """The batch of ``token`` is durably handled: it will not come again."""
        return self._core.ack(token)

    def nack(self, token: int) -> bool:
        """The batch of ``token`` could not be handled: it comes again on the next poll."""
        return self._core.nack(token)

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

    def arm(self) -> None:
        """Call before waiting (:meth:`wait_for_records`), then poll once more: the next closed
        record wakes the waiters. A wake still pending is passed on to them, not swallowed."""
        if self._consumers.waiting() and readable(self.wake_fd()):
            self._consumers.wake_all()
        self._core.arm()

    def wake_fd(self) -> int:
        """A file descriptor that turns readable when closed records may wait (after
        :meth:`arm`)."""
        return self._core.wake_fd()

    async def wait_for_records(self, timeout: float | None = None) -> bool:
        """Waits until closed records may be waiting (or :meth:`close`); False after ``timeout``.

        Call :meth:`arm` first, then poll once more. Any number of consumers, on any loops, may
        wait on one engine at once: one reader per loop on the wake fd wakes them all.
        """
        return await self._consumers.waker(asyncio.get_running_loop(), self).wait(timeout)

    async def klines(self, *, batch: int = 4096) -> AsyncIterator[ClosedKline]:
        """Closed klines as they come, woken through a file descriptor (no polling loop).

        Several consumers may read one engine, beside others waiting through
        :meth:`wait_for_records`: each kline goes to one of them, once. A consumer that leaves
        mid-batch (break, return or an exception) leaves the rest to the next one, in order,
        at once; when the last one leaves, the rest goes back to the engine for any poll (a
        flat run handed out in part comes again whole). Ends after ``close()``.
        """
        shared = self._consumers
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
                if self.closed:
                    return
                await self.wait_for_records()
        finally:
            shared.leave(self)

    # -- state, durability, repair ---------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """Open slots and checkpoints changed since the last acknowledged snapshot.

        Until :meth:`ack_snapshot` is called with its token, every later snapshot carries
        these entries again (a failed store loses nothing).
        """
        token, columns, checkpoints = self._core.snapshot_columns()
        return Snapshot(token, structured(columns, SNAPSHOT_DTYPE), checkpoints)

    def ack_snapshot(self, token: int) -> bool:
        """The snapshot is durably stored; False if superseded by a newer one or unknown."""
        return self._core.ack_snapshot(token)

    def read(self, symbol: str) -> npt.NDArray[np.void]:
        """The symbol's current state per interval (open klines), after all earlier pushes."""
        return structured(self._core.read_columns(symbol), SNAPSHOT_DTYPE)

    def last_id(self, symbol: str) -> int | None:
        """The symbol's last applied aggTrade id (None before its first trade)."""
        return self._core.last_id(symbol)

    def restore(
        self, slots: npt.NDArray[np.void], checkpoints: dict[str, int], *, hold: bool = False
    ) -> int:
        """Puts stored slots (as :meth:`snapshot` gave them) and checkpoints back.

        With ``hold``, each restored symbol then waits for the trades after its checkpoint:
        its live trades are held and nothing of it closes until :meth:`backfill` and
        :meth:`feed_up`, so what was missed while down comes out once, exact, at revision 0.
        """
        columns = {name: slots[name].tolist() for name in SNAPSHOT_DTYPE.names or ()}
        return self._core.restore_columns(columns, checkpoints, hold=hold)

    def feed_down(self, symbol: str | None, since: int, *, hold: bool = False) -> None:
        """The feed of ``symbol`` (None: all) is down since ``since``: klines closing meanwhile
        are marked gap and live trades wait for :meth:`backfill` + :meth:`feed_up`."""
        self._core.feed_down(symbol, since, hold=hold)

    def backfill(self, symbol: str, trades: npt.NDArray[np.void]) -> bool:
        """Older trades (a :data:`~kline_rs.TRADE_DTYPE` array) of a symbol whose feed is
        down; False if it is not."""
        return self._core.backfill(symbol, trades)

    def feed_up(
        self,
        symbol: str | None = None,
        *,
        accept_holes: bool = False,
        impossible_from: int | None = None,
    ) -> None:
        """The feed is back: replays backfill and held trades, re-emitting what changed."""
        self._core.feed_up(symbol, accept_holes=accept_holes, impossible_from=impossible_from)

    def poll_gaps(self, max_gaps: int = 65536) -> list[tuple[str, int, int, int]]:
        """Holes in aggTrade ids found live: ``(symbol, from_id, to_id, since)``."""
        return self._core.poll_gaps(max_gaps)

    def poll_late(
        self, max_trades: int = 65536
    ) -> list[tuple[str, int, int, int, int, int, int, bool]]:
        """Late trades (their kline had closed): ``(symbol, id, price, qty, first, last,
        time, buyer_is_maker)``."""
        return self._core.poll_late(max_trades)

    # -- health ---------------------------------------------------------------------------

    def metrics(self) -> dict[str, Any]:
        """Producer counters and, under ``partitions``, each partition's counters and gauges."""
        return self._core.metrics()

    def take_errors(self) -> list[str]:
        """Errors reported by workers (caught panics), oldest first; taking clears them."""
        return self._core.take_errors()

    def inject_panic(self, symbol: str) -> None:
        """Makes the symbol's worker panic as if applying a trade (supervision tests)."""
        self._core.inject_panic(symbol)
