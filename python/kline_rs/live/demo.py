"""``kline-rs demo``: the whole live pipeline against a local fake exchange, offline.

A simulated market (time running ``speed`` times faster) is served on loopback with Binance's
REST and websocket endpoints; the pipeline follows its USDT symbols (each from its first trade,
through the history lookback: no partial first kline), a new symbol is listed and one delisted
during the run, and every connection is dropped once while REST answers 429 for over a market
minute, so the id-gap repair shows: klines that close before the hole is filled are stored
marked gap, then replaced by their exact values (``rev 1``). Klines are stored in SQLite and
printed as they are committed; at the end a query shows what the file holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sys
from pathlib import Path
from typing import TextIO

from kline_rs._core import ManualClock, format_fixed8, format_time
from kline_rs.engine import ClosedKline
from kline_rs.fake import FakeExchange, SimulatedMarket
from kline_rs.live.pipeline import LivePipeline, PipelineConfig
from kline_rs.live.symbols import Selection
from kline_rs.storage import read_klines
from kline_rs.storage.read import read_only


def _line(k: ClosedKline) -> str:
    flags = (" gap" if k.gap else "") + (f" rev {k.revision}" if k.revision else "")
    return (
        f"{k.symbol:12} {k.interval:3} {format_time(k.open_time)} O {format_fixed8(k.open)} "
        f"H {format_fixed8(k.high)} L {format_fixed8(k.low)} C {format_fixed8(k.close)} "
        f"V {format_fixed8(k.volume)} n {k.trades}{flags}"
    )


def print_stored(
    db: str, symbol: str, interval: str, *, venue: str = "spot", last: int = 10,
    out: TextIO = sys.stdout,
) -> None:  # fmt: skip
    """The latest stored klines of one symbol and interval (flat periods expanded), open times
    in ISO 8601 UTC."""
    rows = read_klines(db, symbol, interval, venue=venue, last=last)
    print(f"# {symbol} {interval}: the latest {len(rows)} klines in {db}:", file=out)
    for r in rows:
        flags = (" gap" if r["gap"] else "") + (f" rev {r['revision']}" if r["revision"] else "")
        print(
            f"  {format_time(int(r['open_time']))} O {format_fixed8(int(r['open']))}"
            f" H {format_fixed8(int(r['high']))}"
            f" L {format_fixed8(int(r['low']))} C {format_fixed8(int(r['close']))}"
            f" V {format_fixed8(int(r['volume']))} n {r['trades']}{flags}",
            file=out,
        )


def _summary(db: str, out: TextIO) -> str | None:
    """Rows per interval (flat runs are one row), checkpoints; returns the busiest symbol."""
    with read_only(Path(db)) as c:
        print(f"# stored in {db}:", file=out)
        q = "SELECT interval, count(*), sum(flat), sum(trades) FROM klines GROUP BY interval"
        for interval, n, flat, trades in c.execute(q):
            print(f"  {interval:3} {n} rows ({flat} flat runs), {trades} trades", file=out)
        (checkpoints,) = c.execute("SELECT count(*) FROM checkpoints").fetchone()
        print(f"  checkpoints for {checkpoints} symbols (a restart resumes there)", file=out)
        top = c.execute(
            "SELECT symbol FROM klines GROUP BY symbol ORDER BY sum(trades) DESC LIMIT 1"
        ).fetchone()
    return None if top is None else str(top[0])


async def run_demo(
    *,
    symbols: int = 24,
    speed: float = 30.0,
    duration: float = 20.0,
    db: str | None = None,
    out: TextIO = sys.stdout,
) -> LivePipeline:
    """Runs the demo (storing into ``db``, made afresh, if given); returns the finished
    pipeline (its counters) for callers and tests."""
    if db is not None:
        for suffix in ("", "-wal", "-shm"):
            Path(db + suffix).unlink(missing_ok=True)
    market = SimulatedMarket(symbols, seed=7, speed=speed, trades_per_second=40.0)
    clock = ManualClock(market.clock_ms())
    grace_ms = int(250 * speed)
    # REST blocked (429) after the drop for longer than a kline and its grace in market time,
    # plus 1.5 s for the reconnect to find the holes: they wait, so klines close marked gap
    # before the repair replaces them.
    blocked_s = math.ceil((60_000 + grace_ms) / 1000 / speed + 1.5)
    async with FakeExchange(market) as fx:
        config = PipelineConfig(
            selection=Selection(quote="USDT"),
            intervals=["1m", "5m"],
            ws_url=fx.ws_url,
            rest_url=fx.rest_url,
            exchange_info_every=1.0,
            max_halt=2.0,  # the delisted symbol shows as BREAK: halted, dropped after 2 s
            grace_ms=grace_ms,
            db=db,
            flush_every=0.5,
            # Longer than the market has run: every symbol's history from its first trade.
            lookback_ms=10 * 60_000,
        )
        pipeline = LivePipeline(
            config,
            lambda k: print(_line(k), file=out),
            engine_kwargs={"clock": clock},
            now_ms=market.clock_ms,
        )

        async def drive_clock() -> None:  # the engine closes klines on market time
            while True:
                clock.set(market.clock_ms())
                await asyncio.sleep(0.02)

        async def script() -> None:
            await pipeline.started()
            following = sorted(pipeline.manager.following) if pipeline.manager else []
            print(f"# following {len(following)} symbols on {fx.ws_url}", file=out)
            await asyncio.sleep(duration * 0.25)
            market.list_symbol("DEMOUSDT")
            print("# listed DEMOUSDT", file=out)
            await asyncio.sleep(duration * 0.25)
            dropped = await fx.disconnect_all()
            fx.faults.retry_after_s, fx.faults.rest_429 = blocked_s, 1
            print(
                f"# dropped {dropped} websocket connection(s); REST answers 429 (Retry-After "
                f"{blocked_s} s), so the holes wait over a market minute",
                file=out,
            )
            await asyncio.sleep(duration * 0.2)
            if following:
                market.delist(following[-1])
                print(f"# delisted {following[-1]}", file=out)

        helpers = [asyncio.create_task(drive_clock()), asyncio.create_task(script())]
        try:
            await pipeline.run(duration)
        finally:
            for t in helpers:
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
    if pipeline.has_started:
        print(f"# {pipeline.summary().line()}", file=out)
    if db is not None:
        top = _summary(db, out)
        if top is not None:
            print_stored(db, top, "1m", last=5, out=out)
    return pipeline
