"""The whole live pipeline on loopback: frames/s through it and the lag to a closed kline.

    python benchmarks/bench_live.py [--seconds 8] [--rate 4000]

A fake exchange (``kline_rs.testing``) serves a simulated market of 20 symbols at ``--rate``
trades per market second (speed 1: market time is real time); the pipeline (1 partition,
1m + 1s klines) follows them. Reported: frames the pipeline received per second, the CPU
time of the process per frame, and for each closed 1s kline the delay from the moment the
clock passed its close time + grace to the moment the consumer had it (p50 / p99). The fake
exchange runs in the same Python process and is the peer: its share of the CPU shows what
the pipeline itself costs.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time

import kline_rs
from kline_rs.live.pipeline import LivePipeline, PipelineConfig
from kline_rs.live.symbols import Selection
from kline_rs.testing import FakeExchange, SimulatedMarket

GRACE_MS = 250


async def measure(seconds: float, rate: float) -> None:
    market = SimulatedMarket(20, seed=3, speed=1.0, trades_per_second=rate)
    lags: list[float] = []

    def on_kline(k: kline_rs.ClosedKline) -> None:
        if k.interval == "1s" and not k.revision:
            lags.append(time.time() * 1000 - (k.close_time + 1 + GRACE_MS))

    async with FakeExchange(market) as fx:
        config = PipelineConfig(
            selection=Selection(quote="USDT"),
            intervals=["1s", "1m"],
            ws_url=fx.ws_url,
            rest_url=fx.rest_url,
            partitions=1,
            grace_ms=GRACE_MS,
        )
        pipeline = LivePipeline(config, on_kline)
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        await pipeline.run(seconds)
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    assert pipeline.feed is not None
    frames = pipeline.feed.stats.frames
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    lags.sort()

    def p(q: float) -> float:
        return lags[int((len(lags) - 1) * q)] if lags else float("nan")

    print(f"command: python benchmarks/bench_live.py --seconds {seconds:g} --rate {rate:g}")
    print("| measure | value |")
    print("|---|---:|")
    print(f"| frames received by the pipeline per second | {frames / seconds:,.0f} |")
    per_frame = cpu / max(frames, 1) * 1e6
    print(f"| process CPU (pipeline + fake exchange) per frame, µs | {per_frame:.1f} |")
    print(f"| 1s klines closed | {len(lags):,} |")
    print(f"| close time + grace → consumer has the kline, p50 ms | {p(0.5):.1f} |")
    print(f"| close time + grace → consumer has the kline, p99 ms | {p(0.99):.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--rate", type=float, default=4000.0)
    args = ap.parse_args()
    asyncio.run(measure(args.seconds, args.rate))


if __name__ == "__main__":
    main()
