"""Closed klines and snapshots from the engine into a store, acknowledged only after commit.

Each write takes a snapshot first, then drains the outbox: everything that closed before the
snapshot is in the same transaction as the snapshot's open slots and checkpoints, so a crash at
any moment restarts from a consistent point (records closed after the snapshot are stored
twice at worst, which placement makes harmless). While the store fails, the polled records stay
pending in memory (never acknowledged, never dropped) and the write is retried with backoff;
past ``max_backlog`` records the pipeline stops with :class:`BacklogFullError` — the checkpoints
already stored let a restart rebuild what was not written, exactly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from kline_rs.engine import RECORD_DTYPE, Batch, ClosedKline, Engine, closed_kline
from kline_rs.storage.base import BacklogFullError, Placement, Sink, StorageError
from kline_rs.storage.read import periods

log = logging.getLogger("kline_rs.store")

#: Polls per write at most; a busier outbox is drained by the next write.
MAX_POLLS = 64

#: Flat periods of one run handed to ``on_stored`` one by one at most (a day of 1s klines);
#: a longer quiet stretch is stored whole and only its latest periods are handed on.
MAX_ON_STORED_PERIODS = 86_400


@dataclass
class PersistStats:
    writes: int = 0
    records: int = 0
    failures: int = 0
    stale: int = 0
    #: Records polled and not yet committed (held while the store is down).
    backlog: int = 0
    peak_backlog: int = 0
    last_error: str = ""
    #: time.monotonic() when the store started failing (0: healthy).
    down_since: float = 0.0
    #: Seconds spent in committed writes, in all and the latest one.
    write_seconds: float = 0.0
    last_write_seconds: float = 0.0


class Persister:
    """Runs beside the engine: ``await persister.run()`` until cancelled, ``flush()`` at the end.

    ``on_stored`` gets each stored kline (flat runs expanded) after its commit;
    ``before_write`` each write's records before it.
    """

    def __init__(
        self,
        engine: Engine,
        sink: Sink,
        *,
        every: float = 1.0,
        min_interval: float = 0.2,
        max_backlog: int = 2_000_000,
        on_stored: Callable[[ClosedKline], None] | None = None,
        tz_offset: str | None = None,
        before_write: Callable[[npt.NDArray[np.void]], Awaitable[None]] | None = None,
    ) -> None:
        self.engine = engine
        self.sink = sink
        self.every = every
        self.min_interval = min_interval
        self.max_backlog = max_backlog
        self.on_stored = on_stored
        #: Called with each write's records before the store has them (a klines stream): a
        #: StorageError from it fails the write as the store's would.
        self.before_write = before_write
        self.tz_offset = tz_offset
        self.stats = PersistStats()
        self._held: list[Batch] = []
        self._extra: list[npt.NDArray[np.void]] = []
        self._forget: set[str] = set()
        self._backoff = 0.0
        self._last_write = 0.0
        #: Whether the last committed write held a snapshot (every record before it drained).
        self.snapshot_stored = False

    def add(self, records: npt.NDArray[np.void]) -> None:
        """Records from elsewhere (REST kline history) to store with the next write."""
        self._extra.append(records)

    def forget(self, symbols: list[str]) -> None:
        """Symbols no longer followed: their open slots go with the next write."""
        self._forget.update(symbols)

    async def run(self) -> None:
        while True:
            # The engine's one reader per loop: closed() consumers beside us are woken too.
            self.engine.arm()
            await self.engine.wait_for_records(self.every + self._backoff)
            wait = self._last_write + self.min_interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)  # batch what closes meanwhile into one commit
            await self.flush()

    async def flush(self, *, snapshot: bool = True) -> bool:
        """One write of everything closed so far, with a snapshot (unless ``snapshot`` is
        False: the engine's state is not one to restart from); True once committed."""
        snap = self.engine.snapshot() if snapshot else None
        drained = False
        for _ in range(MAX_POLLS):
            batch = self.engine.poll_records()
            if len(batch.klines) == 0:
                drained = True
                break
            self._held.append(batch)
        # The snapshot settled first: every record before it was polled.
        complete = drained and snap is not None
        # Records added while the write is in flight wait for the next one.
        extra, self._extra = self._extra, []
        records = _concat([*extra, *(b.klines for b in self._held)])
        forget = sorted(self._forget)
        self._last_write = began = time.monotonic()
        try:
            if self.before_write is not None:
                await self.before_write(records)
            done = await self.sink.write(records, snap if complete else None, forget=forget)
        except BaseException as e:
            self._extra = extra + self._extra  # not stored: kept, in order
            if not isinstance(e, StorageError):
                raise
            self._failed(e, len(records))
            return False
        for b in self._held:
            self.engine.ack(b.token)
        self._held.clear()
        if complete and snap is not None:
            self.engine.ack_snapshot(snap.token)
        self._forget.difference_update(forget)
        self.snapshot_stored = complete
        self._recovered(done, len(records), time.monotonic() - began)
        if self.on_stored is not None:
            for k in self._klines(records):
                self.on_stored(k)
        return True

    def release(self) -> int:
        """Hands what is held back to the engine (shutting down with the store still down);
        returns how many records were not stored."""
        for b in reversed(self._held):
            self.engine.nack(b.token)
        lost = sum(len(b.klines) for b in self._held)
        self._held.clear()
        return lost

    def _failed(self, e: StorageError, held: int) -> None:
        s = self.stats
        s.failures += 1
        s.backlog = held
        s.peak_backlog = max(s.peak_backlog, held)
        if not s.down_since:
            s.down_since = time.monotonic()
            log.error("store failed, holding %d records and retrying: %s", held, e)
        elif str(e) != s.last_error:
            log.error("store still failing (%d records held): %s", held, e)
        s.last_error = str(e)
        self._backoff = min(max(self._backoff * 2, 0.25), 5.0)
        if held > self.max_backlog:
            raise BacklogFullError(
                f"store down for {time.monotonic() - s.down_since:.0f} s and {held} closed "
                f"records waiting (bound {self.max_backlog}); stopping — the stored "
                f"checkpoints let a restart rebuild them exactly. Last error: {e}"
            ) from e

    def _recovered(self, done: Placement, n: int, took: float) -> None:
        s = self.stats
        if s.down_since:
            log.warning(
                "store back after %.1f s: %d records committed",
                time.monotonic() - s.down_since,
                n,
            )
        s.down_since = 0.0
        s.backlog = 0
        s.last_error = ""
        s.writes += 1
        s.records += n
        s.stale += done.stale
        s.write_seconds += took
        s.last_write_seconds = took
        self._backoff = 0.0

    def _klines(self, records: npt.NDArray[np.void]) -> list[ClosedKline]:
        out = []
        for r in records:
            k = closed_kline(r)
            if not r["flat"]:
                out.append(k)
                continue
            got = periods(
                k.interval, k.open_time, k.close_time, self.tz_offset, last=MAX_ON_STORED_PERIODS
            )
            if got and got[0][0] != k.open_time:
                log.warning(
                    "%s %s: quiet from %d to %d, stored as one flat run; only its latest %d "
                    "periods are handed on one by one",
                    k.symbol, k.interval, k.open_time, k.close_time, len(got),
                )  # fmt: skip
            out.extend(k._replace(open_time=a, close_time=b) for a, b in got)
        return out


def _concat(parts: list[npt.NDArray[np.void]]) -> npt.NDArray[np.void]:
    if not parts:
        return np.empty(0, dtype=RECORD_DTYPE)
    return np.concatenate(parts) if len(parts) > 1 else parts[0]
