"""Follow real Binance symbols live, store 1m klines in SQLite and print them as they are
committed (needs internet).

    python examples/live_binance.py BTCUSDT ETHUSDT
    python examples/live_binance.py BTCUSDT --ws-url ws://… --rest-url http://… --intervals 1s
        --duration 10    # another exchange (the fake one: python -m kline_rs.fake.fake_exchange)

The same as ``kline-rs run --symbols BTCUSDT,ETHUSDT --intervals 1m --db live-klines.sqlite
--lookback 5m --print``: symbols are checked against exchangeInfo, trades come from the
combined aggTrade stream, holes in aggTrade ids are repaired over REST, and every closed kline
is exact to the last decimal. Stop it (Ctrl-C) and start it again: it resumes from the
checkpoints in the file, and what happened meanwhile is fetched and stored as if it had never
stopped. ``kline-rs show live-klines.sqlite BTCUSDT 1m`` reads it back.
"""

from __future__ import annotations

import argparse
import asyncio

import kline_rs
from kline_rs.live.pipeline import LivePipeline, PipelineConfig
from kline_rs.live.symbols import Selection


def show(k: kline_rs.ClosedKline) -> None:
    close = kline_rs.format_fixed8(k.close)
    volume = kline_rs.format_fixed8(k.volume)
    mark = " (gap)" if k.gap else f" (revision {k.revision})" if k.revision else ""
    print(f"{k.symbol} {k.interval} {k.open_time} close {close} volume {volume}{mark}")


async def main(args: argparse.Namespace) -> None:
    config = PipelineConfig(
        venue="spot",
        selection=Selection(symbols=frozenset(s.upper() for s in args.symbols)),
        intervals=args.intervals.split(","),
        lookback_ms=5 * 60_000,  # the last five minutes from REST first (new symbols)
        db=args.db,
        ws_url=args.ws_url,
        rest_url=args.rest_url,
    )
    await LivePipeline(config, show).run(args.duration)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("symbols", nargs="*", default=["BTCUSDT", "ETHUSDT"])
    p.add_argument("--intervals", default="1m")
    p.add_argument("--db", default="live-klines.sqlite")
    p.add_argument("--ws-url", help="default: Binance spot's")
    p.add_argument("--rest-url", help="default: Binance spot's")
    p.add_argument("--duration", type=float, help="seconds (default: until Ctrl-C)")
    asyncio.run(main(p.parse_args()))
