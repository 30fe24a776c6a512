"""The whole live job: symbols from exchangeInfo, the websocket feed, gap repair, the engine,
and closed klines handed to a consumer — one asyncio task tree, embeddable in any app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np
import numpy.typing as npt

from kline_rs._core import KlineError, format_time
from kline_rs.anchor import first_days
from kline_rs.engine import ClosedKline, Engine, closed_kline
from kline_rs.feeds.binance import BinanceFeed
from kline_rs.live.history import load_history, resume
from kline_rs.live.kline_history import KlineHistory, gap_spans, heal
from kline_rs.live.persist import Persister
from kline_rs.live.repair import GapRepairer
from kline_rs.live.status import RunSummary
from kline_rs.live.store import check_db_target, open_store
from kline_rs.live.symbols import MAX_HALT_S, Selection, SymbolManager
from kline_rs.live.trades import RawTradeRest
from kline_rs.rest import BinanceRest, RestError, VenueName
from kline_rs.storage import Sink, StorageError, StoredState, open_sink
from kline_rs.venues import VENUES

log = logging.getLogger("kline_rs.live")


class BackgroundTaskError(KlineError):
    """A task of the pipeline beside the main ones (history, a seam, healing) failed."""


class StartTimeoutError(KlineError):
    """``duration`` ended before the first exchangeInfo answered: nothing was followed."""


@dataclass
class PipelineConfig:
    """What to follow and where from."""

    venue: VenueName = "spot"
    selection: Selection = field(default_factory=Selection)
    intervals: list[str] = field(default_factory=lambda: ["1m"])
    ws_url: str | None = None
    rest_url: str | None = None
    partitions: int = 0
    grace_ms: int = 250
    exchange_info_every: float = 60.0
    #: Seconds a symbol may stay BREAK/HALT (state kept) before it counts as delisted.
    max_halt: float = MAX_HALT_S
    rotate_after: float = 23.5 * 3600
    max_streams: int = 1024
    #: History for each new symbol (ms, market time before it joins).
    lookback_ms: int = 0
    #: From REST "aggtrades" (rebuilt exactly, held until done) or "klines" (Binance's own,
    #: one request per 1000; the seam with live is replaced once closed).
    history: str = "aggtrades"
    #: Follow ``aggTrade`` streams, or ``trade`` (raw trades: every quote volume exact, one
    #: message per trade); history, resume and id-gap repair then use REST historicalTrades.
    stream: str = "aggTrade"
    #: At start, replace stored klines marked gap (closed ones) with the exchange's own.
    heal_gaps: bool = True
    #: Store closed klines here (SQLite path or ``postgresql://`` URL) and resume from it.
    db: str | None = None
    #: Seconds between commits at most (a commit also follows closes, batched).
    flush_every: float = 1.0
    #: Closed records held while the store is down before the pipeline stops with an error.
    max_backlog: int = 2_000_000
    #: Seconds to wait at start for a store that does not answer, then stop with an error.
    store_wait: float = 60.0
    #: Websocket reconnect backoff (first, cap) in seconds.
    ws_backoff: tuple[float, float] = (0.25, 30.0)


@dataclass
class Status:
    """One look at the pipeline, for the status line."""

    frames: int
    frames_per_s: float
    symbols: int
    lag_ms: int
    gaps: int
    repaired: int
    late: int
    queue: int
    reconnects: int
    klines: int
    #: Holes REST could not fill (the klines over them stay gap).
    given_up: int = 0
    #: The lag is the exchange's time now (its latest event time, plus the time since it
    #: came) minus the newest trade applied: the engine's own clock (wall time, or a market's
    #: time in a demo) is not the exchange's, and a clock behind it made the lag negative.
    #: Trades refused for an implausible time or id (counted, never applied).
    implausible: int = 0
    #: "" without a store; else "ok" or what is wrong and how much is held.
    store: str = ""
    #: Close time (ms) of the latest kline closed; None before the first.
    latest_ms: int | None = None

    def line(self) -> str:
        store = f" | store {self.store}" if self.store else ""
        latest = "" if self.latest_ms is None else f" to {format_time(self.latest_ms)}"
        return (
            f"{self.frames_per_s:8.0f} msg/s | {self.symbols} symbols | lag {self.lag_ms} ms | "
            f"gaps {self.gaps} (repaired {self.repaired}, given up {self.given_up}) | "
            f"late {self.late} | implausible {self.implausible} | "
            f"queue {self.queue} | reconnects {self.reconnects} | klines {self.klines}{latest}"
            f"{store}"
        )


class LivePipeline:
    """Binance (or the fake exchange) → engine → ``on_kline`` for every closed kline."""

    def __init__(
        self,
        config: PipelineConfig,
        on_kline: Callable[[ClosedKline], None],
        *,
        engine_kwargs: dict[str, Any] | None = None,
        now_ms: Callable[[], int] | None = None,
    ) -> None:
        self.config = config
        self.on_kline = on_kline
        self.engine_kwargs = engine_kwargs or {}
        self.engine: Engine | None = None
        self.feed: BinanceFeed | None = None
        self.manager: SymbolManager | None = None
        self.repairer: GapRepairer | None = None
        self.klines = 0
        self.latest_ms: int | None = None
        self.rest: BinanceRest | None = None
        #: Where history, resume and repair get trades: aggTrades, or raw trades (``trade``).
        self.trades_rest: BinanceRest | RawTradeRest | None = None
        self.now_ms: Callable[[], int] = now_ms or (lambda: int(time.time() * 1000))
        self._history: set[asyncio.Task[int]] = set()
        self._seams: set[asyncio.Task[int]] = set()
        self.persister: Persister | None = None
        self.kline_history: KlineHistory | None = None
        self._stored: StoredState | None = None
        self._sink: Sink | None = None
        #: 3d anchors known (stored, or found over REST this run).
        self._anchors: dict[str, int] = {}
        self._redo_from: dict[str, int] = {}
        self._started = asyncio.Event()
        self._last = (time.monotonic(), 0)
        self._side_failed = asyncio.Event()
        self._side_error: BackgroundTaskError | None = None
        #: The engine's metrics as it closed, for the summary after the run.
        self._final_metrics: dict[str, Any] | None = None
        self._began = self._ended = 0.0

    def anchor_of(self, symbol: str) -> int | None:
        """The symbol's 3d anchor (its first 1d kline's open time), if found."""
        return self._anchors.get(symbol)

    async def started(self) -> None:
        """Returns once symbols are followed and the feed is connecting."""
        await self._started.wait()

    @property
    def has_started(self) -> bool:
        """Symbols were followed (the run got past its start)."""
        return self._started.is_set()

    async def run(self, duration: float | None = None) -> None:
        """Runs until cancelled (or for ``duration`` seconds, whatever it is doing then), then
        shuts everything down. A part that fails stops it with that part's error."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        deadline = None if duration is None else loop.time() + duration
        self._began = time.monotonic()
        sink = open_sink(check_db_target(cfg.db), venue=cfg.venue) if cfg.db else None
        try:
            if sink is not None:
                # Nothing is followed before the checkpoints are known (a fresh start would
                # overwrite exact klines): wait for the store, within bounds.
                wait = cfg.store_wait
                if deadline is not None:
                    wait = max(0.0, min(wait, deadline - loop.time()))
                self._stored = await open_store(sink, wait)
                self._sink, self._anchors = sink, dict(self._stored.anchors)
                # A restored symbol replays everything from its stored open klines on,
                # exactly: only what lies before them is left to heal from REST.
                for row in self._stored.slots:
                    if row["state"] != "empty":
                        sym, t = str(row["symbol"]), int(row["open_time"])
                        self._redo_from[sym] = min(self._redo_from.get(sym, t), t)
                log.info("resuming %d symbols from %s", len(self._stored.checkpoints), cfg.db)
            await self._run(sink, deadline)
        finally:
            self._ended = time.monotonic()
            if sink is not None:
                await sink.close()

    async def _run(self, sink: Sink | None, deadline: float | None) -> None:
        cfg = self.config
        venue = VENUES[cfg.venue]
        async with BinanceRest(cfg.venue, base_url=cfg.rest_url or venue.rest_url) as rest:
            self.rest = rest
            if cfg.stream not in ("aggTrade", "trade"):
                raise ValueError(f"stream: 'aggTrade' or 'trade', not {cfg.stream!r}")
            self.trades_rest = rest if cfg.stream == "aggTrade" else RawTradeRest(rest)
            with Engine(
                cfg.intervals,
                partitions=cfg.partitions,
                grace=cfg.grace_ms,
                detect_id_gaps=True,
                mark_partial_start=True,
                push_wait_ms=5,
                quote_rule=venue.quote_rule,
                **self.engine_kwargs,
            ) as engine:
                self.engine = engine
                feed = BinanceFeed(
                    engine,
                    venue=cfg.venue,
                    ws_url=cfg.ws_url,
                    rotate_after=cfg.rotate_after,
                    max_streams=cfg.max_streams,
                    backoff=cfg.ws_backoff,
                    stream=cfg.stream,
                )
                self.feed = feed
                manager = SymbolManager(
                    rest.exchange_info,
                    cfg.selection,
                    add=self._add,
                    remove=self._remove,
                    halt=self._halt,
                    resume=self._resume,
                    every=cfg.exchange_info_every,
                    max_halt=cfg.max_halt,
                )
                self.manager = manager
                self.repairer = GapRepairer(engine, self.trades_rest)
                if cfg.history == "klines":
                    self.kline_history = KlineHistory(rest, cfg.intervals, self._emit)
                elif cfg.history != "aggtrades":
                    raise ValueError(f"history: 'aggtrades' or 'klines', not {cfg.history!r}")
                if sink is not None:
                    self.persister = Persister(
                        engine,
                        sink,
                        every=cfg.flush_every,
                        max_backlog=cfg.max_backlog,
                        on_stored=self._count,
                    )
                tasks: list[asyncio.Task[None]] = []
                try:
                    try:
                        await asyncio.wait_for(manager.refresh(strict=True), _left(deadline))
                    except asyncio.TimeoutError:
                        raise StartTimeoutError(
                            "the run's duration ended before exchangeInfo answered: nothing "
                            "was followed"
                        ) from None
                    if sink is not None and cfg.heal_gaps:
                        self._heal(sink, rest)
                    output = self.persister.run() if self.persister else self._consume(engine)
                    tasks = [
                        asyncio.create_task(manager.run(), name="kline-rs symbols"),
                        asyncio.create_task(self.repairer.run(), name="kline-rs repair"),
                        asyncio.create_task(output, name="kline-rs klines"),
                        asyncio.create_task(feed.failure(), name="kline-rs feed"),
                        asyncio.create_task(self._side_failure(), name="kline-rs side tasks"),
                    ]
                    self._started.set()
                    left = _left(deadline)
                    timer = asyncio.create_task(
                        asyncio.sleep(left) if left is not None else asyncio.Event().wait()
                    )
                    await asyncio.wait([timer, *tasks], return_when=asyncio.FIRST_COMPLETED)
                    timer.cancel()
                    for t in tasks:
                        if t.done() and not t.cancelled() and t.exception() is not None:
                            raise t.exception()  # type: ignore[misc]
                finally:
                    await feed.stop()
                    ending: list[asyncio.Task[Any]] = [*tasks, *self._history, *self._seams]
                    for task in ending:
                        task.cancel()
                    for task in ending:
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await task
                    await self._last_write()
                    self._final_metrics = engine.metrics()
                    # What is still open stays open: a restart resumes it from the store.

    async def _last_write(self) -> None:
        p = self.persister
        if p is None:
            return
        try:
            stored = await p.flush()
        except StorageError:
            stored = False
        if not stored:
            lost = p.release()
            log.error(
                "stopping with the store down: %d closed records not written; a restart "
                "rebuilds them from the stored checkpoints",
                lost,
            )

    def _heal(self, sink: Sink, rest: BinanceRest) -> None:
        """Stored gap klines of the symbols followed, closed before now: the exchange's own."""
        following = self.manager.following if self.manager is not None else set()

        redo_from = self._redo_from

        async def job() -> int:
            rows = [
                r
                for r in await sink.gaps()
                if r[0] in following and r[3] < redo_from.get(r[0], 2**62)
            ]
            spans = gap_spans(rows, self.now_ms())
            return await heal(rest, spans, self._emit) if spans else 0

        self._side_task(job(), "kline-rs heal", self._seams)

    def _side_task(
        self, job: Coroutine[Any, Any, int], name: str, group: set[asyncio.Task[int]]
    ) -> None:
        """Runs ``job`` beside the main tasks; if it fails, the pipeline stops saying so."""
        task = asyncio.create_task(job, name=name)
        group.add(task)
        task.add_done_callback(group.discard)
        task.add_done_callback(self._side_done)

    def _side_done(self, task: asyncio.Task[int]) -> None:
        e = None if task.cancelled() else task.exception()
        if e is None or self._side_error is not None:
            return
        why = " ".join(str(e).split()) or type(e).__name__
        self._side_error = BackgroundTaskError(f"{task.get_name()} failed: {why}")
        self._side_error.__cause__ = e
        self._side_failed.set()

    async def _side_failure(self) -> None:
        await self._side_failed.wait()
        assert self._side_error is not None
        raise self._side_error

    async def _anchors_of(self, symbols: list[str]) -> dict[str, int]:
        """With 3d among the intervals, each symbol's 3d anchor: stored, else its first 1d
        kline over REST (one request per symbol, then stored). A symbol whose anchor cannot
        be found goes on with the epoch grid, and the engine warns."""
        if "3d" not in self.config.intervals or self.rest is None:
            return {}
        missing = [s for s in symbols if s not in self._anchors]
        if missing:
            try:
                found = await first_days(self.rest, missing)
            except (RestError, aiohttp.ClientError) as e:
                log.warning("3d anchors of %d symbols not found (%s)", len(missing), e)
                found = {}
            self._anchors |= found
            if self._sink is not None and found:
                await self._sink.save_anchors(found)
        return {s: self._anchors[s] for s in symbols if s in self._anchors}

    def _contract_sizes(self, symbols: list[str]) -> dict[str, int] | None:
        """COIN-M: each symbol's contractSize (its quote volumes are base-asset volume)."""
        if not VENUES[self.config.venue].contract_sized:
            return None
        assert self.manager is not None
        sizes = self.manager.contract_sizes
        missing = [s for s in symbols if s not in sizes]
        if missing:
            raise ValueError(f"exchangeInfo gives no contractSize for {', '.join(missing)}")
        return {s: sizes[s] for s in symbols}

    async def _add(self, symbols: list[str]) -> None:
        assert self.engine is not None and self.feed is not None and self.manager is not None
        self.engine.add_symbols(
            symbols,
            anchors_3d_ms=await self._anchors_of(symbols),
            contract_sizes=self._contract_sizes(symbols),
        )
        resumed: dict[str, int | None] = {}
        if self._stored is not None:
            # Stored state of these symbols: restored held, then the trades after each
            # checkpoint come from REST before anything of theirs closes.
            part = self._stored.only(symbols)
            self._stored = self._stored.without(symbols)
            resumed = {str(s): None for s in part.slots["symbol"]} | dict(part.checkpoints)
            if resumed:
                self.engine.restore(part.slots, part.checkpoints, hold=True)
        fresh = [s for s in symbols if s not in resumed]
        jobs = [
            (f"kline-rs resume {s}", resume(self.engine, self.trades_rest, s, last))
            for s, last in resumed.items()
        ]
        rest, lookback = self.trades_rest, self.config.lookback_ms
        if lookback and rest is not None and fresh:
            now = self.now_ms()
            start = now - lookback
            if self.kline_history is not None:
                jobs += [
                    (f"kline-rs history {s}", self.kline_history.load(s, start, now)) for s in fresh
                ]
            else:
                start -= start % 60_000
                for s in fresh:
                    self.engine.feed_down(s, start, hold=True)  # live trades wait for it
                jobs += [
                    (f"kline-rs history {s}", load_history(self.engine, rest, s, start, now))
                    for s in fresh
                ]
        await self.feed.set_symbols(self.manager.following | set(symbols))
        for name, job in jobs:
            self._side_task(job, name, self._history)

    async def _remove(self, symbols: list[str]) -> None:
        assert self.engine is not None and self.feed is not None and self.manager is not None
        await self.feed.set_symbols(self.manager.following - set(symbols))
        for s in symbols:
            self.engine.remove_symbol(s)  # open klines leave as final
        if self.persister is not None:
            self.persister.forget(symbols)

    async def _halt(self, symbols: list[str]) -> None:
        """Halted by the exchange: the engine keeps their state and makes no flat klines; the
        streams stay subscribed for when trading resumes."""
        assert self.engine is not None
        for s in symbols:
            self.engine.halt(s)

    async def _resume(self, symbols: list[str]) -> None:
        assert self.engine is not None
        for s in symbols:
            self.engine.resume(s)

    async def _consume(self, engine: Engine) -> None:
        async for k in engine.klines():
            self._count(k)

    def _count(self, k: ClosedKline) -> None:
        self.klines += 1
        self.latest_ms = max(self.latest_ms or k.close_time, k.close_time)
        self.on_kline(k)
        seam = self.kline_history.owed(k) if self.kline_history is not None else None
        if seam is not None and self.kline_history is not None:
            name = f"kline-rs seam {seam[0]} {seam[1]}"
            self._side_task(self.kline_history.close_seam(*seam), name, self._seams)

    async def _emit(self, records: npt.NDArray[np.void]) -> None:
        """Klines from REST history: stored with the next commit, or handed on."""
        if self.persister is not None:
            self.persister.add(records)
        else:
            for r in records:
                self._count(closed_kline(r))

    def exchange_now_ms(self) -> int | None:
        """The exchange's time now: its latest event time seen plus the time since (None
        before its first frame)."""
        s = self.feed.stats if self.feed is not None else None
        if s is None or not s.exchange_ms:
            return None
        return s.exchange_ms + int((time.monotonic() - s.exchange_seen) * 1000)

    def lags_ms(self, partitions: list[dict[str, int]]) -> list[int | None]:
        """Per partition, how far its newest applied trade is behind the exchange's time now
        (None: no trade yet, or no frame from the exchange)."""
        now = self.exchange_now_ms()
        return [
            None if now is None or not p["watermark"] else max(0, now - p["watermark"])
            for p in partitions
        ]

    def health(self) -> tuple[bool, str]:
        """(True, what is followed) once every followed symbol is caught up: symbols known,
        history and resume done, every websocket connected, the store taking writes; else
        (False, why not)."""
        if not self._started.is_set():
            return False, "starting: symbols not known yet"
        if self._ended or self.engine is None or self.engine.closed:
            return False, "stopped"
        if self._history:
            return False, f"history or resume of {len(self._history)} symbols in progress"
        if self.feed is None or not self.feed.connected:
            return False, "websocket not connected"
        if self.repairer is not None and self.repairer.stats.open:
            return False, f"repairing {self.repairer.stats.open} holes in aggTrade ids"
        if self.persister is not None and self.persister.stats.down_since:
            return False, f"store down: {self.persister.stats.last_error}"
        following = len(self.manager.following) if self.manager is not None else 0
        return True, f"{following} symbols followed, caught up"

    def summary(self) -> RunSummary:
        """What the run did, for the end-of-run line (also while it runs)."""
        m = self._final_metrics
        if m is None and self.engine is not None and not self.engine.closed:
            m = self.engine.metrics()
        parts: list[dict[str, int]] = m["partitions"] if m is not None else []
        feed, repair, store = self.feed, self.repairer, self.persister
        return RunSummary(
            seconds=(self._ended or time.monotonic()) - self._began if self._began else 0.0,
            frames=feed.stats.frames if feed is not None else 0,
            closed=sum(p["closed"] for p in parts),
            flat_runs=sum(p["flat_runs"] for p in parts),
            stored=store.stats.records if store is not None else None,
            handed_on=self.klines,
            gaps=repair.stats.gaps if repair is not None else 0,
            repaired=repair.stats.repaired if repair is not None else 0,
            given_up=repair.stats.given_up if repair is not None else 0,
            reconnects=feed.stats.disconnects if feed is not None else 0,
            late=sum(p["late"] for p in parts),
            duplicates=sum(p["duplicates"] for p in parts),
        )

    def status(self) -> Status:
        """Counters for the status line (call from the running loop)."""
        assert self.engine is not None and self.feed is not None and self.repairer is not None
        m = self.engine.metrics()
        parts = m["partitions"]
        now = time.monotonic()
        then, frames_then = self._last
        frames = self.feed.stats.frames
        rate = (frames - frames_then) / max(now - then, 1e-6)
        self._last = (now, frames)
        return Status(
            frames=frames,
            frames_per_s=rate,
            symbols=sum(p["symbols"] for p in parts),
            lag_ms=max((lag for lag in self.lags_ms(parts) if lag is not None), default=0),
            gaps=self.repairer.stats.gaps,
            repaired=self.repairer.stats.repaired,
            given_up=self.repairer.stats.given_up,
            late=sum(p["late"] for p in parts),
            implausible=sum(p[k] for p in parts for k in p if k.startswith("implausible_")),
            queue=sum(p["ring_depth"] for p in parts),
            reconnects=self.feed.stats.disconnects,
            klines=self.klines,
            latest_ms=self.latest_ms,
            store=self._store_status(),
        )

    def _store_status(self) -> str:
        if self.persister is None:
            return ""
        s = self.persister.stats
        if not s.down_since:
            return "ok"
        return f"DOWN {time.monotonic() - s.down_since:.0f} s, {s.backlog} held ({s.last_error})"


def _left(deadline: float | None) -> float | None:
    """Seconds to ``deadline`` (a loop time; None: no deadline)."""
    if deadline is None:
        return None
    return max(0.0, deadline - asyncio.get_running_loop().time())
