"""The pipeline's counters and gauges in Prometheus's terms, read at each scrape.

Nothing is counted twice: every value is read from where it is kept (the engine's metrics,
the feed's, the REST limiter's, the persister's and the repairer's stats) when Prometheus
asks. Names start with ``kline_rs_``; every sample has a ``venue`` label, the engine's
per-partition ones a ``partition`` label too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from kline_rs.live.pipeline import LivePipeline

#: Engine gauges per partition (every other per-partition value is a counter), with help.
PARTITION_GAUGES = {
    "ring_depth": "Items waiting on the partition's ring",
    "spilled": "Closed records waiting behind the partition's full outbox",
    "symbols": "Symbols the partition owns",
    "allocated": "Symbol x interval slots allocated",
}
#: Help of the engine's per-partition counters; a counter not listed gets a generic one.
PARTITION_COUNTERS = {
    "trades": "Trades applied",
    "duplicates": "Trades at or below the symbol's last applied id (skipped)",
    "placeholders": "Binance placeholder rows skipped",
    "invalid": "Trades no kline can use (price <= 0, first id > last id)",
    "late": "Trades whose kline had closed",
    "late_amended": "Late trades taken into a re-emitted kline",
    "late_overflow": "Late trades that did not fit the side output",
    "stale_symbol": "Items for a symbol removed meanwhile",
    "closed": "Klines closed",
    "flat_runs": "Flat runs (quiet stretches) closed",
    "gap_overflow": "Trades past the bound a symbol in a gap may hold",
    "id_gaps": "Holes in aggTrade ids found",
    "panics": "Panics caught while applying a trade",
}
#: Engine values that are neither (the watermark is exported as the lag to the exchange).
PARTITION_SKIP = frozenset({"watermark", "lag"})
#: The engine's producer counters, with help.
PRODUCER_COUNTERS = {
    "messages": "Websocket messages pushed",
    "unknown_symbol": "Messages of symbols not followed",
    "malformed": "Messages that did not parse",
    "other_events": "Messages that are not trades (replies, serverShutdown)",
    "backpressure": "Pushes that found a ring full",
}


class PipelineCollector(Collector):
    """Collects ``pipeline``'s metrics at each scrape (from the loop the pipeline runs in)."""

    def __init__(self, pipeline: LivePipeline) -> None:
        self.pipeline = pipeline

    def collect(self) -> Iterator[Metric]:
        p = self.pipeline
        venue = p.config.venue
        ok, _ = p.health()
        yield _gauge(
            "caught_up", "1 once every followed symbol is caught up (see /healthz)", venue, int(ok)
        )
        if p.manager is not None:
            yield _gauge("symbols_followed", "Symbols followed", venue, len(p.manager.following))
        yield _counter("klines", "Closed klines handed on (stored, or printed)", venue, p.klines)
        yield from self._engine(venue)
        yield from self._feed(venue)
        yield from self._rest(venue)
        yield from self._store(venue)
        yield from self._repair(venue)

    def _engine(self, venue: str) -> Iterator[Metric]:
        engine = self.pipeline.engine
        if engine is None or engine.closed:
            return
        m = engine.metrics()
        for name, help_ in PRODUCER_COUNTERS.items():
            yield _counter(f"engine_{name}", help_, venue, m[name])
        yield _gauge(
            "outbox_unacked",
            "Closed records handed out and not yet acknowledged",
            venue,
            m["unacked"],
        )
        parts: list[dict[str, int]] = m["partitions"]
        names = [k for k in (parts[0] if parts else {}) if k not in PARTITION_SKIP]
        labels = ["venue", "partition"]
        for name in names:
            if name in PARTITION_GAUGES:
                family: GaugeMetricFamily | CounterMetricFamily = GaugeMetricFamily(
                    f"kline_rs_engine_{name}", PARTITION_GAUGES[name], labels=labels
                )
            else:
                help_ = PARTITION_COUNTERS.get(name, f"Engine counter {name}")
                if name.startswith("implausible_"):
                    why = name.removeprefix("implausible_")
                    help_ = f"Trades refused as implausible ({why})"
                family = CounterMetricFamily(f"kline_rs_engine_{name}", help_, labels=labels)
            for i, part in enumerate(parts):
                family.add_metric([venue, str(i)], part[name])
            yield family
        lag = GaugeMetricFamily(
            "kline_rs_exchange_lag_seconds",
            "The exchange's time now (its latest event time, plus the time since it came) "
            "minus the partition's latest applied trade time",
            labels=labels,
        )
        for i, ms in enumerate(self.pipeline.lags_ms(parts)):
            if ms is not None:
                lag.add_metric([venue, str(i)], ms / 1000)
        yield lag

    def _feed(self, venue: str) -> Iterator[Metric]:
        feed = self.pipeline.feed
        if feed is None:
            return
        s = feed.stats
        yield _gauge("feed_connections", "Websocket connections open", venue, feed.connections)
        yield _counter("feed_connects", "Websocket connections made", venue, s.connects)
        yield _counter(
            "feed_reconnects", "Websocket connections lost (then reconnected)", venue, s.disconnects
        )
        yield _counter(
            "feed_rotations", "Connections rotated before the 24 h cut-off", venue, s.rotations
        )
        yield _counter("feed_frames", "Websocket frames handed to the engine", venue, s.frames)
        yield _counter(
            "feed_backpressure_waits",
            "Pushes the engine took only part of",
            venue,
            s.backpressure_waits,
        )

    def _rest(self, venue: str) -> Iterator[Metric]:
        rest = self.pipeline.rest
        if rest is None:
            return
        limiter = rest.limiter
        yield _gauge(
            "rest_weight_used",
            "REST request weight used in the current minute",
            venue,
            limiter.used,
        )
        yield _gauge(
            "rest_weight_limit", "REST request weight allowed per minute", venue, limiter.limit
        )

    def _store(self, venue: str) -> Iterator[Metric]:
        persister = self.pipeline.persister
        if persister is None:
            return
        s = persister.stats
        yield _gauge(
            "store_up",
            "1 while the store takes writes, 0 while it fails",
            venue,
            0 if s.down_since else 1,
        )
        yield _gauge(
            "store_backlog_records", "Closed records held while the store is down", venue, s.backlog
        )
        yield _counter("store_records", "Records committed", venue, s.records)
        yield _counter("store_failures", "Writes that failed (retried)", venue, s.failures)
        latency = SummaryMetricFamily(
            "kline_rs_store_write_seconds", "Time of each committed write", labels=["venue"]
        )
        latency.add_metric([venue], count_value=s.writes, sum_value=s.write_seconds)
        yield latency
        yield _gauge(
            "store_last_write_seconds",
            "Time of the latest committed write",
            venue,
            s.last_write_seconds,
        )

    def _repair(self, venue: str) -> Iterator[Metric]:
        repairer = self.pipeline.repairer
        if repairer is None:
            return
        s = repairer.stats
        yield _counter("gaps", "Holes in aggTrade ids reported by the engine", venue, s.gaps)
        yield _gauge("gaps_open", "Holes reported and not yet filled or given up", venue, s.open)
        yield _counter(
            "gaps_repaired", "Holes filled from REST (klines re-emitted exact)", venue, s.repaired
        )
        yield _counter(
            "gaps_given_up", "Holes REST could not fill (klines stay gap)", venue, s.given_up
        )
        yield _counter(
            "gap_trades_fetched", "Trades fetched over REST to fill holes", venue, s.trades_fetched
        )


def _gauge(name: str, help_: str, venue: str, value: float) -> GaugeMetricFamily:
    g = GaugeMetricFamily(f"kline_rs_{name}", help_, labels=["venue"])
    g.add_metric([venue], value)
    return g


def _counter(name: str, help_: str, venue: str, value: float) -> CounterMetricFamily:
    c = CounterMetricFamily(f"kline_rs_{name}", help_, labels=["venue"])
    c.add_metric([venue], value)
    return c
