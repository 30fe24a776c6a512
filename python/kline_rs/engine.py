"""The streaming engine: live trades in, closed klines out, embeddable in any asyncio app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from kline_rs import _core
from kline_rs.klines import KLINE_DTYPE, structured

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


class Batch(NamedTuple):
    """Closed klines and the token that acknowledges them (:meth:`Engine.ack`)."""

    token: int
    klines: npt.NDArray[np.void]


class Engine(_core.Engine):
    """Partitioned kline engine (Rust threads); a context manager that closes on exit.

    ``Engine(["1m", "1h"], partitions=0, grace=250, ...)``: ``partitions=0`` means one per
    usable CPU; ``grace`` is how long (ms) after a bucket's close time the clock waits for
    stragglers before closing it.
    """

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

    async def closed(self, *, batch: int = 4096) -> AsyncIterator[ClosedKline]:
        """Closed klines as they come, woken through a file descriptor (no polling loop).

        A batch is acknowledged once all its klines have been yielded; if the consumer stops
        in the middle, the batch is handed out again (at least once). Ends after ``close()``.
        """
        loop = asyncio.get_running_loop()
        fd = self.wake_fd()
        while True:
            got = self.poll_klines(batch)
            if len(got.klines) == 0:
                self.arm()
                got = self.poll_klines(batch)
            if len(got.klines) == 0:
                if self.closed_engine:
                    return
                woken = asyncio.Event()
                loop.add_reader(fd, woken.set)
                try:
                    await woken.wait()
                finally:
                    loop.remove_reader(fd)
                continue
            done = False
            try:
                for row in got.klines:
                    yield closed_kline(row)
                done = True
            finally:
                if done:
                    self.ack(got.token)
                else:
                    self.nack(got.token)

    def push_many(self, frames: Sequence[bytes]) -> int:
        """Pushes websocket frames, retrying the rest while backpressure lasts; returns trades."""
        trades = 0
        rest = list(frames)
        while rest:
            report = self.push_raw(rest)
            trades += report["trades"]
            rest = rest[report["consumed"] :]
        return trades


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
    )
