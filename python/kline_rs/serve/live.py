"""The klines of a running engine as a :class:`~kline_rs.serve.source.KlineSource`:
``kline-rs run … --serve``.

Closed klines come from the pipeline (:meth:`LiveSource.on_closed`, its ``on_kline``): the
latest :data:`MAX_RECENT` of each symbol and interval are kept here, older ones are read from
the run's store (if it has one); the open kline of each interval is read from the engine. A
revised kline (a repaired gap) replaces the one it revises and tells the stream hub, which
sends it again. Intervals the engine does not make are rolled up on request from one it makes,
as a store's are (:func:`~kline_rs.serve.source.rolled_window`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from kline_rs.serve.rollup import plan_rollup
from kline_rs.serve.source import (
    Columns,
    KlineSource,
    ServedKline,
    ServedSymbol,
    SymbolNotServedError,
    rolled_window,
    window,
)
from kline_rs.venues import split_assets

if TYPE_CHECKING:
    from kline_rs.engine import Engine
    from kline_rs.live.pipeline import LivePipeline
    from kline_rs.records import ClosedKline
    from kline_rs.serve.ws import StreamHub
    from kline_rs.venues import Venue

#: Closed klines kept in memory per symbol and interval (REST's largest page, and then some).
MAX_RECENT = 1_500


def _kline(get: Callable[[str], Any], *, gap: bool, revision: int, closed: bool) -> ServedKline:
    """A :class:`ServedKline` from a getter of the kline's fields by name."""
    return ServedKline(
        open_time=int(get("open_time")),
        close_time=int(get("close_time")),
        open=int(get("open")),
        high=int(get("high")),
        low=int(get("low")),
        close=int(get("close")),
        volume=int(get("volume")),
        quote_volume=int(get("quote_volume")),
        trades=int(get("trades")),
        taker_buy_volume=int(get("taker_buy_volume")),
        taker_buy_quote_volume=int(get("taker_buy_quote_volume")),
        first_trade_id=int(get("first_trade_id")),
        last_trade_id=int(get("last_trade_id")),
        gap=gap,
        revision=revision,
        closed=closed,
    )


def served(k: ClosedKline) -> ServedKline:
    """A closed kline as served (its revision and gap mark kept)."""
    return _kline(partial(getattr, k), gap=bool(k.gap), revision=int(k.revision), closed=True)


class LiveSource:
    """``engine``'s open klines, the closed ones it handed on, and older ones from ``store``.

    ``describe``: the exchange's view of the symbols (status, assets, contract size), e.g.
    the pipeline's last exchangeInfo; without it every followed symbol is ``TRADING`` with
    assets from its name. ``anchors``: a symbol's 3d anchor, for 3d rolled up from 1d.
    """

    def __init__(
        self,
        engine: Engine,
        venue: Venue,
        *,
        store: KlineSource | None = None,
        tz_offset: str | None = None,
        describe: Callable[[], dict[str, ServedSymbol]] | None = None,
        anchors: Callable[[str], int | None] | None = None,
    ) -> None:
        self.engine = engine
        self._venue = venue
        self.store = store
        self.tz_offset = tz_offset
        self.describe = describe
        self.anchors = anchors or (lambda _s: None)
        self.hub: StreamHub | None = None
        self._recent: dict[tuple[str, str], OrderedDict[int, ServedKline]] = {}

    @property
    def venue(self) -> Venue:
        return self._venue

    async def refresh(self) -> None:
        if self.store is not None:
            await self.store.refresh()

    def symbols(self) -> list[ServedSymbol]:
        known = self.describe() if self.describe is not None else {}
        out = []
        for name in sorted(self.engine.symbols()):
            out.append(known.get(name) or ServedSymbol(name, "TRADING", *split_assets(name)))
        return out

    def on_closed(self, k: ClosedKline) -> None:
        """The pipeline's ``on_kline``: keeps ``k`` and tells the streams of its symbol."""
        series = self._recent.setdefault((k.symbol, k.interval), OrderedDict())
        old = series.get(k.open_time)
        if old is None or old.revision <= k.revision:
            series[k.open_time] = served(k)
            series.move_to_end(k.open_time)
        while len(series) > MAX_RECENT:
            series.popitem(last=False)
        if self.hub is not None:
            self.hub.notify(k.symbol, k.open_time)

    async def klines(
        self,
        symbol: str,
        interval: str,
        start_ms: int | None,
        end_ms: int | None,
        limit: int,
        tz_offset: str | None,
    ) -> list[ServedKline]:
        if symbol not in self.engine.symbols():
            if self.store is None:
                raise SymbolNotServedError(f"{symbol}: not followed")
            return await self.store.klines(symbol, interval, start_ms, end_ms, limit, tz_offset)
        kept = self.engine.intervals
        plan = plan_rollup(kept, interval, self.tz_offset, tz_offset, self.anchors(symbol))

        async def read(lo: int, hi: int, first: int | None, last: int | None) -> Columns:
            rows = await self._kept(symbol, plan.finer, lo, hi, first, last)
            return {f: [getattr(k, f) for k in rows] for f in ServedKline._fields}

        if plan.finer == interval:
            return await self._kept(symbol, interval, *window(start_ms, end_ms, limit))
        return await rolled_window(read, plan, start_ms, end_ms, limit)

    async def _kept(
        self, symbol: str, interval: str, lo: int, hi: int, first: int | None, last: int | None
    ) -> list[ServedKline]:
        """Klines of an interval the engine makes opening in ``[lo, hi)``: the earliest
        ``first`` or the latest ``last``; the store's, the ones handed on since, the open one."""
        by_open: dict[int, ServedKline] = {}
        recent = self._recent.get((symbol, interval), OrderedDict())
        held = [t for t in recent if lo <= t < hi]
        # The store has nothing newer than what is held here: it is read only for a window
        # reaching before the klines held (not on every poll of a stream's latest klines).
        if last is not None:
            covered = len(held) >= last
        else:
            covered = bool(recent) and lo >= next(iter(recent))
        if self.store is not None and not covered:
            start, end = (lo, None) if first is not None else (None, hi - 1)
            want = first if first is not None else (last or 0)
            stored = await self.store.klines(symbol, interval, start, end, want, self.tz_offset)
            by_open.update((k.open_time, k) for k in stored)
        for t in held:
            k = recent[t]
            if t not in by_open or by_open[t].revision <= k.revision:
                by_open[t] = k
        for slot in self.engine.read(symbol):
            if slot["interval"] == interval and slot["state"] == "open":
                k = _kline(slot.__getitem__, gap=False, revision=0, closed=False)
                if lo <= k.open_time < hi:
                    by_open.setdefault(k.open_time, k)
        rows = [by_open[t] for t in sorted(by_open)]
        if first is not None:
            return rows[:first]
        return rows[-last:] if last is not None else rows


def pipeline_source(pipeline: LivePipeline) -> LiveSource:
    """The klines of a started pipeline (``kline-rs run … --serve``): its engine's, and
    older ones from its store; the symbols as its last exchangeInfo described them. Give the
    source's :meth:`LiveSource.on_closed` the pipeline's closed klines."""
    from kline_rs.serve.source import StoreSource
    from kline_rs.venues import VENUES

    assert pipeline.engine is not None, "the pipeline has not started"
    config = pipeline.config
    venue = VENUES[config.venue]
    store = StoreSource(config.db, venue=venue) if config.db else None

    def describe() -> dict[str, ServedSymbol]:
        manager = pipeline.manager
        if manager is None:
            return {}
        return {
            name: ServedSymbol(name, status, *split_assets(name), manager.contract_sizes.get(name))
            for name, status in manager.statuses.items()
        }

    return LiveSource(
        pipeline.engine, venue, store=store, describe=describe, anchors=pipeline.anchor_of
    )
