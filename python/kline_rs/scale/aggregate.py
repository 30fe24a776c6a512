"""``kline-rs aggregate --nats``: the trade stream into exact klines, the work shared by leases.

Each process takes a fair share of a venue's :data:`~kline_rs.scale.trade_stream.SHARDS`
shards (:mod:`kline_rs.scale.leases`) and runs one :class:`ShardRunner` per shard it holds:

* **Restore.** The shard's open slots and checkpoints come from the store (the symbols whose
  shard it is); its consumer starts after the stream sequence the store covers (the shard's
  progress). Trades before a checkpoint come again and are the engine's duplicates.
* **Order.** Capture replicas and their REST repairs may store a symbol's trades out of id
  order. The core's ``IdOrder`` holds a trade until the ids before it come from the stream;
  a hole the stream has not filled in :data:`HOLE_WAIT_S` is fetched over REST, and one REST
  cannot fill goes to the engine (``detect_id_gaps``), which marks and repairs it.
* **Time.** The engine's clock is the stream's: the trade times read so far (never ahead of
  the wall clock), so a backlog read after a takeover closes its klines as the trades say, not
  as the wall clock would. A shard with nothing to read for :data:`QUIET_CLOSE_S` moves its
  clock to the wall clock less that much, so quiet klines close anyway; a trade later than
  that still amends its kline (late policy ``amend``).
* **Write.** Closed klines, open slots and checkpoints go to the store in one transaction
  (:class:`~kline_rs.live.persist.Persister`); after a commit whose snapshot held no symbol
  waiting on a hole, the shard's progress moves to the last sequence pushed before it.
  Nothing is written once the lease may have run out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import nats
import numpy as np
import numpy.typing as npt
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from kline_rs import _core
from kline_rs.anchor import first_days
from kline_rs.engine import Engine
from kline_rs.klines import INTERVALS, TRADE_DTYPE
from kline_rs.live.persist import Persister
from kline_rs.live.repair import GapRepairer
from kline_rs.live.store import open_store
from kline_rs.live.symbols import contract_sizes_of
from kline_rs.records import ClosedKline
from kline_rs.rest import BinanceRest, VenueName
from kline_rs.scale import GRACE_MS, KLINES_MAX_BYTES, LEASE_TTL_S, QUIET_CLOSE_S, kline_stream
from kline_rs.scale.leases import (
    LEASE_BUCKET,
    Leases,
    bucket,
    fair_share,
)
from kline_rs.scale.trade_stream import (
    MAX_REPLICAS,
    SHARDS,
    STREAM,
    TRANSIENT,
    cluster_servers,
    retried,
    shard_of,
    shard_subjects,
    symbol_of,
)
from kline_rs.storage import StoredState
from kline_rs.storage.postgres import PostgresSink
from kline_rs.venues import VENUES

log = logging.getLogger("kline_rs.aggregate")

#: Messages fetched from the stream at once.
FETCH_BATCH = 1000
#: Seconds one fetch waits for messages.
FETCH_WAIT_S = 0.5
#: Seconds without messages after which the consumer is checked (a node that held it died).
CONSUMER_CHECK_S = 5.0
#: How late a trade may come and still amend its kline (ms).
ALLOWED_LATENESS_MS = 3_600_000
#: Seconds a hole may wait for its ids from the stream before they are fetched over REST.
HOLE_WAIT_S = 10.0
#: Seconds between retries of a hole's replay (its ids may have come meanwhile).
SETTLE_EVERY_S = 0.2
#: Seconds the store may take to answer when a shard is taken.
STORE_WAIT_S = 60.0
#: Half the engine's plausibility window: one push never spans more trade time than this.
CHUNK_SPAN_MS = _core.DEFAULT_MAX_AHEAD_MS // 2
#: Seconds a shard's last write and release, or the NATS connection's close, may take.
STOP_WAIT_S = 10.0
#: Seconds of that a stopping shard may spend repairing the engine's open holes (at most
#: half the time its lease has left).
STOP_REPAIR_S = 3.0
#: Trades one hole's REST fetch holds in memory, at most (past it the engine's own repair,
#: paged and bounded, takes the rest).
MAX_HOLE_FETCH = 100_000
#: Trades held in id order per shard, at most (past it a symbol goes on across its hole).
MAX_HELD = _core.MAX_HELD_TRADES
#: Close-to-store lags kept for the summary (the latest ones).
MAX_LAGS = 100_000


@dataclass
class AggregateStats:
    taken: int = 0
    lost: int = 0
    released: int = 0
    messages: int = 0
    malformed: int = 0
    wrong_shard: int = 0
    consumer_restarts: int = 0
    #: Trades the stream held twice (a copy outside the duplicate window, or re-read).
    duplicates: int = 0
    holes: int = 0
    holes_fetched: int = 0
    #: Trades applied to no kline: late past amending, or implausible.
    late: int = 0
    implausible: int = 0
    writes: int = 0
    records: int = 0
    progress_saved: int = 0
    #: Wall time at commit less close time of each kline stored (ms), the latest ones.
    lags_ms: deque[int] = field(default_factory=lambda: deque(maxlen=MAX_LAGS))

    def line(self) -> str:
        lags = sorted(self.lags_ms)
        p50 = lags[len(lags) // 2] if lags else 0
        p99 = lags[min(len(lags) - 1, len(lags) * 99 // 100)] if lags else 0
        fields = {k: v for k, v in vars(self).items() if k != "lags_ms"}
        text = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in fields.items())
        return f"{text}, close-to-store lag p50 {p50} ms p99 {p99} ms"


@dataclass
class AggregateConfig:
    nats: Sequence[str]
    db: str
    venue: VenueName = "spot"
    intervals: Sequence[str] = INTERVALS
    rest_url: str | None = None
    lease_ttl: float = LEASE_TTL_S
    flush_every: float = 1.0
    quiet_close: float = QUIET_CLOSE_S
    grace_ms: int = GRACE_MS
    name: str = ""
    #: The klines stream's size bound, if this process creates it.
    klines_max_bytes: int = KLINES_MAX_BYTES


def member_name() -> str:
    """``host-pid``: unique among live processes, readable in the lease bucket."""
    host = "".join(c if c.isalnum() or c in "-_" else "-" for c in socket.gethostname())
    return f"{host}-{os.getpid()}"


class Aggregator:
    """One ``kline-rs aggregate`` process: leases, and a runner per shard held."""

    def __init__(self, config: AggregateConfig) -> None:
        self.config = config
        self.me = config.name or member_name()
        self.stats = AggregateStats()
        self.runners: dict[int, ShardRunner] = {}
        self.leases: Leases | None = None
        self.js: JetStreamContext | None = None
        self.rest: BinanceRest | None = None
        self.anchors: dict[str, int] = {}
        self.contract_sizes: dict[str, int] = {}
        self._quit = asyncio.Event()
        self.publisher: kline_stream.KlinePublisher | None = None

    def request_stop(self) -> None:
        """Ends :meth:`run` after its round: each shard written once more and released."""
        self._quit.set()

    async def run(self, duration: float | None = None) -> None:
        cfg = self.config
        nc: NatsClient = await nats.connect(
            list(cfg.nats), name="kline-rs aggregate", max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
        )  # fmt: skip
        try:
            self.js = js = nc.jetstream(timeout=2.0)
            replicas = min(MAX_REPLICAS, cluster_servers(nc))
            kv = await retried(
                lambda: bucket(js, LEASE_BUCKET, ttl=cfg.lease_ttl, replicas=replicas),
                f"the bucket {LEASE_BUCKET}", STORE_WAIT_S,
            )  # fmt: skip
            ttl = (await retried(kv.status, "the lease bucket's status", STORE_WAIT_S)).ttl
            ttl = ttl or cfg.lease_ttl
            if ttl != cfg.lease_ttl:
                log.warning("the lease bucket's TTL is %.1f s: used instead of %.1f s",
                            ttl, cfg.lease_ttl)  # fmt: skip
            self.leases = Leases(kv, cfg.venue, self.me, ttl)
            await retried(
                lambda: kline_stream.ensure(js, replicas, cfg.klines_max_bytes),
                "the klines stream", STORE_WAIT_S,
            )  # fmt: skip

            self.publisher = kline_stream.KlinePublisher(js, cfg.venue)
            venue = VENUES[cfg.venue]
            async with BinanceRest(cfg.venue, base_url=cfg.rest_url or venue.rest_url) as rest:
                self.rest = rest
                loop = asyncio.get_running_loop()
                end = None if duration is None else loop.time() + duration
                try:
                    # Members started together see each other before taking shards.
                    with contextlib.suppress(*TRANSIENT):
                        await self.leases.join()
                    await asyncio.sleep(ttl / 2)
                    while not self._quit.is_set() and (end is None or loop.time() < end):
                        await self.balance()
                        with contextlib.suppress(asyncio.TimeoutError):
                            await asyncio.wait_for(self._quit.wait(), ttl / 8)
                finally:
                    await self.stop_all()
        finally:
            with contextlib.suppress(Exception, asyncio.TimeoutError):
                await asyncio.wait_for(nc.close(), STOP_WAIT_S)

    async def balance(self) -> None:
        """One round: renew what is held, drop what ran out, take or give up shards toward a
        fair share."""
        leases = self.leases
        assert leases is not None
        for shard, runner in list(self.runners.items()):
            if runner.task.done():  # failed by itself: give the shard up so others take it
                await self._stop(shard, release=True)
        # Renewed together, each bounded: one slow answer must not cost the others their time.
        bound = leases.ttl / 4
        held = list(leases.held)
        renewed = await asyncio.gather(
            *(asyncio.wait_for(leases.renew(s), bound) for s in held), return_exceptions=True
        )
        for shard, ok in zip(held, renewed, strict=True):
            if ok is False:
                log.warning("shard %d: lease lost to another process", shard)
                self.stats.lost += 1
                await self._stop(shard, release=False)
        try:
            await asyncio.wait_for(leases.join(), bound)
            share = fair_share(SHARDS, await asyncio.wait_for(leases.members(), bound))
        except (*TRANSIENT, nats.errors.Error, asyncio.TimeoutError) as e:
            log.warning("leases: no answer (%s)", type(e).__name__)
            share = len(self.runners)
        for shard in list(leases.held):
            if not leases.valid(shard):
                log.warning("shard %d: no renewal got through in time, stopping", shard)
                self.stats.lost += 1
                await self._stop(shard, release=False)
        if len(leases.held) > share:
            shard = max(leases.held)
            log.info("shard %d: given up (fair share %d)", shard, share)
            self.stats.released += 1
            await self._stop(shard, release=True)
            return
        start = hash(self.me) % SHARDS
        for i in range(SHARDS):
            if len(leases.held) >= share:
                break
            shard = (start + i) % SHARDS
            if shard in leases.held:
                continue
            try:
                took = await asyncio.wait_for(leases.claim(shard), bound)
            except (*TRANSIENT, nats.errors.Error, asyncio.TimeoutError):
                break
            if took:
                log.info("shard %d: taken", shard)
                self.stats.taken += 1
                self.runners[shard] = ShardRunner(self, shard)

    async def _stop(self, shard: int, *, release: bool) -> None:
        runner = self.runners.pop(shard, None)
        assert self.leases is not None
        if runner is not None:
            await runner.stop(flush=release and self.leases.valid(shard))
        if release:
            with contextlib.suppress(Exception):
                await self.leases.release(shard)
        else:
            self.leases.drop(shard)

    async def stop_all(self) -> None:
        """Each shard written one last time and released, then this member leaves."""
        log.info("stopping: %d shards to write and release", len(self.runners))
        leases = self.leases
        for shard in list(self.runners):
            # A fresh lease for the last write (repairs may come before it): renewals stop
            # with the balancing loop. Lost, the shard stops without writing.
            if leases is not None and shard in leases.held:
                with contextlib.suppress(*TRANSIENT, nats.errors.Error, asyncio.TimeoutError):
                    await asyncio.wait_for(leases.renew(shard), leases.ttl / 4)
            try:
                await asyncio.wait_for(self._stop(shard, release=True), STOP_WAIT_S)
            except (asyncio.TimeoutError, Exception) as e:
                log.warning("shard %d: not stopped cleanly (%s: %s): its lease runs out instead",
                            shard, type(e).__name__, e, exc_info=True)  # fmt: skip
        if leases is not None:
            with contextlib.suppress(Exception, asyncio.TimeoutError):
                await asyncio.wait_for(leases.leave(), STOP_WAIT_S)
        log.info("stopped")

    async def symbol_specs(
        self, symbols: list[str]
    ) -> tuple[dict[str, int], dict[str, int] | None]:
        """3d anchors (stored, else over REST) and COIN-M contract sizes of new symbols."""
        rest = self.rest
        assert rest is not None
        missing = [s for s in symbols if s not in self.anchors]
        if "3d" in self.config.intervals and missing:
            try:
                self.anchors |= await first_days(rest, missing)
            except Exception as e:  # the epoch grid then, and the engine warns
                log.warning("3d anchors of %d symbols not found (%s)", len(missing), e)
        sizes = None
        if VENUES[self.config.venue].contract_sized:
            if any(s not in self.contract_sizes for s in symbols):
                self.contract_sizes |= contract_sizes_of(await rest.exchange_info())
            sizes = {s: self.contract_sizes[s] for s in symbols if s in self.contract_sizes}
        return {s: self.anchors[s] for s in symbols if s in self.anchors}, sizes


class ShardRunner:
    """One shard held: engine, store writer and consumer, until stopped."""

    def __init__(self, agg: Aggregator, shard: int) -> None:
        self.agg = agg
        self.shard = shard
        cfg = agg.config
        self.clock = _core.ManualClock(0)
        self.engine = Engine(
            cfg.intervals, partitions=1, grace=cfg.grace_ms, clock=self.clock,
            pin_threads=False, spin_us=0, detect_id_gaps=True, late_policy="amend",
            allowed_lateness=ALLOWED_LATENESS_MS,
        )  # fmt: skip
        self.sink = PostgresSink(cfg.db, venue=cfg.venue)
        assert agg.publisher is not None
        self.persister = Persister(
            self.engine, self.sink, every=cfg.flush_every, on_stored=self._stored,
            before_write=agg.publisher,
        )  # fmt: skip
        assert agg.rest is not None
        self.repairer = GapRepairer(self.engine, agg.rest)
        #: The engine's holes: symbol → (first id, last id, when first seen).
        self.holes: dict[str, tuple[int, int, float]] = {}
        #: The stream sequence of the last message pushed, and the progress stored.
        self.pushed_seq = 0
        self.progress = 0
        self._sub: Any = None
        self._stopping = False
        self._settled = 0.0
        self.order = _core.IdOrder()
        self._late = self._implausible = 0
        #: The consumer's delivery count so far, and whether to make the consumer again.
        self._delivered = 0
        self._resubscribe = False
        self.task = asyncio.create_task(self._run(), name=f"kline-rs shard {shard}")

    async def stop(self, *, flush: bool) -> None:
        """Stops reading; with ``flush``, writes what closed and the progress first."""
        self._stopping = True
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task
        try:
            if flush:
                # A hole the engine reported just before the stop is repaired first, so the
                # last write stores its klines whole, not marked gap (bounded: past it the
                # marked klines are written and the next owner redoes them).
                leases = self.agg.leases
                bound = STOP_REPAIR_S if leases is None else leases.left(self.shard) / 2
                try:
                    self.engine.sync()
                    self._holes({})  # reported since the last read
                    if self.holes:
                        await asyncio.wait_for(self._repair_holes(), min(STOP_REPAIR_S, bound))
                except Exception as e:
                    log.warning("shard %d: holes not repaired before the stop (%s: %s)",
                                self.shard, type(e).__name__, e)  # fmt: skip
                await self.write()
        except Exception as e:
            log.warning("shard %d: last write failed (%s): the next owner redoes it", self.shard, e)
        finally:
            with contextlib.suppress(Exception):
                await self._unsubscribe()
            with contextlib.suppress(Exception):
                await self.sink.close()
            self.engine.close()

    async def _run(self) -> None:
        try:
            await self._restore()
            tasks = [
                asyncio.create_task(self._read_loop()),
                asyncio.create_task(self._write_loop()),
            ]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for t in done:  # a failed write (fenced out, backlog full) stops the shard
                    t.result()
            finally:
                for t in tasks:
                    t.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await t
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("shard %d stopped", self.shard)
            raise

    async def _restore(self) -> None:
        leases = self.agg.leases
        assert leases is not None
        # Fenced first: a previous owner's write either committed before (and is read below)
        # or fails from now on.
        lease = leases.held.get(self.shard)
        if lease is None:
            return
        progress = await self.sink.take_fence(f"shard.{self.shard}", lease.token)
        state: StoredState = await open_store(self.sink, STORE_WAIT_S)
        self.agg.anchors |= state.anchors
        mine = {str(s) for s in state.slots["symbol"]} | set(state.checkpoints)
        mine = {s for s in mine if shard_of(s) == self.shard}
        part = state.only(mine)
        if mine:
            await self._add(sorted(mine))
            self.engine.restore(part.slots, part.checkpoints)
        self.order.start(part.checkpoints)
        self.progress = self.pushed_seq = progress
        log.info("shard %d: %d symbols restored, reading from stream sequence %d",
                 self.shard, len(mine), self.progress + 1)  # fmt: skip

    async def _add(self, symbols: list[str]) -> None:
        anchors, sizes = await self.agg.symbol_specs(symbols)
        self.engine.add_symbols(symbols, anchors_3d_ms=anchors, contract_sizes=sizes)

    # -- reading ----------------------------------------------------------------------------

    async def _subscribe(self) -> None:
        js = self.agg.js
        assert js is not None
        await self._unsubscribe()
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE if self.pushed_seq
            else DeliverPolicy.ALL,
            opt_start_seq=self.pushed_seq + 1 if self.pushed_seq else None,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=30.0,
            mem_storage=True,
        )  # fmt: skip
        self._delivered = 0
        self._sub = await js.pull_subscribe(
            shard_subjects(self.agg.config.venue, self.shard), stream=STREAM, config=config
        )

    def _in_sequence(self, msgs: list[Msg]) -> list[Msg]:
        """The messages up to the first one the consumer skipped to (its delivery count jumps:
        a message it gave to a fetch that had already given up, without acknowledgement it
        is not given again). From there the consumer is made again, after the last pushed."""
        for i, m in enumerate(msgs):
            cseq = m.metadata.sequence.consumer
            if cseq != self._delivered + 1:
                log.info(
                    "shard %d: delivery %d after %d, reading again from sequence %d",
                    self.shard,
                    cseq,
                    self._delivered,
                    (msgs[i - 1].metadata.sequence.stream if i else self.pushed_seq) + 1,
                )
                self.agg.stats.consumer_restarts += 1
                self._resubscribe = True
                return msgs[:i]
            self._delivered = cseq
        return msgs

    async def _unsubscribe(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _read_loop(self) -> None:
        loop = asyncio.get_running_loop()
        idle_since = loop.time()
        pause = 0.1
        while not self._stopping:
            try:
                if self._sub is None or self._resubscribe:
                    self._resubscribe = False
                    await self._subscribe()
                msgs = await self._sub.fetch(FETCH_BATCH, timeout=FETCH_WAIT_S)
            except (NatsTimeoutError, asyncio.TimeoutError):
                msgs = []
            except Exception as e:  # the consumer's node died, the stream is electing…
                log.warning("shard %d: reading failed (%s: %s), again from sequence %d",
                            self.shard, type(e).__name__, e, self.pushed_seq + 1)  # fmt: skip
                self.agg.stats.consumer_restarts += 1
                await self._unsubscribe()
                await asyncio.sleep(pause)
                pause = min(2 * pause, 2.0)
                continue
            pause = 0.1
            now = loop.time()
            msgs = self._in_sequence(msgs)
            if msgs:
                await self.push(msgs)
                idle_since = now
            elif now - idle_since > self.agg.config.quiet_close:
                wall = int(time.time() * 1000)
                self.clock.set(
                    max(self.clock.now(), wall - int(self.agg.config.quiet_close * 1000))
                )
            if msgs == [] and now - idle_since > CONSUMER_CHECK_S:
                # Nothing for a while: is the consumer still there? (Its node may have died.)
                try:
                    await self._sub.consumer_info()
                except Exception:
                    self.agg.stats.consumer_restarts += 1
                    await self._unsubscribe()
            await self.settle()

    async def push(self, msgs: list[Msg]) -> None:
        """One fetched batch: parsed, put in id order per symbol, into the engine."""
        stats = self.agg.stats
        stats.messages += len(msgs)
        trades, ok = _parse([m.data for m in msgs])
        stats.malformed += int(len(msgs) - ok.sum())
        good = [m for m, k in zip(msgs, ok, strict=True) if k]
        names = [symbol_of(m.subject) for m in good]
        seqs = [m.metadata.sequence.stream for m in good]  # parsed from the reply subject
        mine = [shard_of(n) == self.shard for n in names]
        stats.wrong_shard += len(names) - sum(mine)
        new = sorted(
            {n for n, m in zip(names, mine, strict=True) if m} - set(self.engine.symbols())
        )
        if new:  # a new symbol's specs (anchor, contract size) are looked up once
            await self._add(new)
        keep = [i for i, m in enumerate(mine) if m]
        kept = [names[i] for i in keep]
        by, out, overflowed = self.order.take(
            kept, trades[keep], [seqs[i] for i in keep], asyncio.get_running_loop().time()
        )
        for i in overflowed:
            log.warning("%s: over %d trades held past holes: released across its hole",
                        kept[i], MAX_HELD)  # fmt: skip
        stats.duplicates = self.order.duplicates
        self.pushed_seq = max(self.pushed_seq, msgs[-1].metadata.sequence.stream)
        self._push(np.array(kept)[by] if kept else [], out)

    async def settle(self) -> None:
        """Waits on holes: the order's (ids not come yet) up to :data:`HOLE_WAIT_S`, then the
        trades after them go to the engine, which reports the hole; the engine's holes are
        filled over REST."""
        now = asyncio.get_running_loop().time()
        if now - self._settled < SETTLE_EVERY_S:
            return
        self._settled = now
        for name in self.order.overdue(now - HOLE_WAIT_S):
            await self._fetch_hole(name)
        await self._repair_holes()

    async def _repair_holes(self) -> None:
        """The engine's holes filled over REST. Each stays listed until repaired: meanwhile
        no snapshot is written (see write())."""
        if not self.holes:
            return
        before = dict(self.holes)
        for sym, (from_id, to_id, _seen) in before.items():
            self.agg.stats.holes_fetched += 1
            await self.repairer.repair(sym, from_id, to_id)
        self.engine.sync()
        for sym in before:
            self.holes.pop(sym, None)
        self._holes(before)  # a hole still there is reported again

    async def _fetch_hole(self, symbol: str) -> None:
        """The ids a symbol waits for, over REST, into the order: its held trades follow. If
        REST cannot give them all, the held trades go on across the hole and the engine marks
        it (its klines gap until a repair)."""
        hole = self.order.hole(symbol)
        if hole is None:
            return
        from_id, to_id = hole
        rest = self.agg.rest
        assert rest is not None
        log.info("%s: ids %d..%d not in the stream after %.0f s, fetched over REST",
                 symbol, from_id, to_id, HOLE_WAIT_S)  # fmt: skip
        self.agg.stats.holes_fetched += 1
        pages: list[npt.NDArray[np.void]] = []
        fetched_rows = 0
        try:
            async for page in rest.agg_trades_from(symbol, from_id, until_id=to_id):
                pages.append(page[page["agg_id"] <= to_id])
                fetched_rows += len(pages[-1])
                if fetched_rows >= MAX_HOLE_FETCH:
                    log.warning(
                        "%s: ids %d..%d: over %d, the rest of the hole goes to the engine's "
                        "repair", symbol, from_id, to_id, MAX_HOLE_FETCH,
                    )  # fmt: skip
                    break
        except Exception as e:  # any REST failure: the engine's repair takes the hole
            log.warning("%s: ids %d..%d not fetched (%s)", symbol, from_id, to_id, e)
        # From here to the push, nothing waits: a stop cannot fall between the order giving
        # trades up and the engine having them (the progress would pass them).
        fetched = np.concatenate(pages) if pages else np.empty(0, TRADE_DTYPE)
        _, out, _ = self.order.take(
            [symbol] * len(fetched), fetched, [0] * len(fetched), asyncio.get_running_loop().time()
        )
        if self.order.hole(symbol) == hole:
            out = np.concatenate([out, self.order.release(symbol)])
        self._push([symbol] * len(out), out)

    def _push(
        self, symbols: Sequence[str] | npt.NDArray[np.str_], trades: npt.NDArray[np.void]
    ) -> None:
        """Trades in order per symbol into the engine, a chunk of trade time at a time; the
        clock goes to each chunk's first time before it and its last after it, never past a
        trade still waiting on a hole (nor past the wall clock)."""
        if len(trades) == 0:
            return
        names = np.array(symbols)
        times = trades["time"]
        wall = int(time.time() * 1000)
        start = 0
        while start < len(trades):
            lo = int(times[start])
            end = start + 1
            while end < len(trades) and int(times[end]) - lo <= CHUNK_SPAN_MS:
                lo = min(lo, int(times[end]))
                end += 1
            chunk, who = trades[start:end], names[start:end]
            bound = self.order.time_bound()
            if bound is not None and int(chunk["time"].max()) > bound + CHUNK_SPAN_MS:
                # A symbol waiting on a hole holds the clock back, and the engine refuses a
                # trade too far ahead of its clock (a backlog read fast does this within the
                # hole's wait): the waiting trades go on across their holes first, and the
                # engine marks and repairs the holes.
                self._release_all()
            self._advance(min(int(chunk["time"].min()), wall))
            for sym in dict.fromkeys(who.tolist()):
                mine = chunk[who == sym]
                self.engine.push_trades(sym, mine)
                self.order.pushed(sym, int(mine["time"][-1]))
            self.engine.sync()
            self._holes({})
            self._advance(min(int(chunk["time"].max()), wall))
            start = end

    def _release_all(self) -> None:
        for name in self.order.waiting():
            log.info("%s: trades of others would outrun the clock, its hole goes to the engine",
                     name)  # fmt: skip
            rows = self.order.release(name)
            self._push([name] * len(rows), rows)

    def _advance(self, to: int) -> None:
        bound = self.order.time_bound()
        if bound is not None:
            to = min(to, bound)
        if to > self.clock.now():
            self.clock.set(to)

    def _holes(self, before: dict[str, tuple[int, int, float]]) -> None:
        now = asyncio.get_running_loop().time()
        for s, from_id, to_id, _since in self.engine.poll_gaps():
            if s not in self.holes:
                self.agg.stats.holes += s not in before
                seen = before[s][2] if s in before else now
                self.holes[s] = (from_id, to_id, seen)

    # -- writing ----------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        while True:
            await asyncio.sleep(self.agg.config.flush_every)
            await self.write()

    async def write(self) -> None:
        """Closed klines and a snapshot to the store; then the progress, if nothing waited on
        a hole when the snapshot was taken. Not at all once the lease may have run out."""
        leases = self.agg.leases
        assert leases is not None
        if not leases.valid(self.shard):
            return
        self.engine.sync()
        self._holes({})
        # While the engine has a symbol in a hole its slots may be past its checkpoint: no
        # snapshot then (a restart goes on from the one before, and redoes what closed since).
        # Trades waiting in the order are not in the engine: the progress stops before them.
        first_held = self.order.first_held_seq()
        covered = (
            None if self.holes
            else self.pushed_seq if first_held is None
            else min(self.pushed_seq, first_held - 1)
        )  # fmt: skip
        # The progress goes in the snapshot's transaction, fenced like it.
        self.sink.fence_progress = covered
        if not await self.persister.flush(snapshot=covered is not None):
            return
        stats = self.agg.stats
        stats.writes += 1
        self._count_refused()
        if covered is not None and self.persister.snapshot_stored:
            self.progress = covered
            stats.progress_saved += 1

    def _count_refused(self) -> None:
        """Trades the engine did not apply as they were (late past amending, implausible)
        since the last write: counted and logged, they are the mode's inexact klines."""
        part = self.engine.metrics()["partitions"][0]
        late = int(part["late"]) - int(part["late_amended"])
        implausible = sum(int(part[k]) for k in part if str(k).startswith("implausible"))
        new_late, new_implausible = late - self._late, implausible - self._implausible
        if new_late or new_implausible:
            log.warning("shard %d: %d trades late past amending, %d implausible (their klines "
                        "were closed before they came)", self.shard, new_late,
                        new_implausible)  # fmt: skip
        self.agg.stats.late += new_late
        self.agg.stats.implausible += new_implausible
        self._late, self._implausible = late, implausible

    def _stored(self, k: ClosedKline) -> None:
        stats = self.agg.stats
        stats.records += 1
        stats.lags_ms.append(int(time.time() * 1000) - k.close_time)


def _parse(datas: list[bytes]) -> tuple[npt.NDArray[np.void], npt.NDArray[np.bool_]]:
    """The messages' trades (one row each) and which messages were a valid aggTrade event."""
    try:
        rows = _core.parse_agg_trades(b"[" + b",".join(datas) + b"]")
        if len(rows) == len(datas):
            return rows, np.ones(len(datas), dtype=bool)
    except _core.KlineError:
        pass
    good: list[npt.NDArray[np.void]] = []
    ok = np.zeros(len(datas), dtype=bool)
    for i, d in enumerate(datas):  # one by one: which ones are bad
        try:
            one = _core.parse_agg_trades(b"[" + d + b"]")
        except _core.KlineError:
            continue
        if len(one) == 1:
            good.append(one)
            ok[i] = True
    return (np.concatenate(good) if good else np.empty(0, TRADE_DTYPE)), ok
