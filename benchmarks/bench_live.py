"""The whole live pipeline on loopback: frames/s through it and the lag to a closed kline.

    python benchmarks/bench_live.py [--seconds 8] [--rate 20000]

The fake exchange (``python -m kline_rs.fake.fake_exchange``) runs in its own process and
serves a simulated market of 20 symbols at ``--rate`` trades per second (market time is real
time); this process runs only the pipeline (1 partition, 1s + 1m klines) and measures: frames
received per second, this process's CPU time per frame (websocket client, push_raw, engine
threads, consumer), and for each closed 1s kline the delay from the end of its period to the
moment the consumer had it (p50 / p99): a busy symbol's kline closes on its next trade, a
quiet one's when the clock passes the end + grace (250 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import resource
import subprocess
import sys
import time

import kline_rs
from kline_rs.live.pipeline import LivePipeline, PipelineConfig
from kline_rs.live.symbols import Selection

GRACE_MS = 250


def start_exchange(rate: float) -> tuple[subprocess.Popen[str], str, str]:
    cmd = [sys.executable, "-m", "kline_rs.fake.fake_exchange", "--symbols", "20"]
    cmd += ["--speed", "1", "--tps", str(rate), "--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    rest = ws = ""
    while not (rest and ws):
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("the fake exchange did not start")
        if m := re.search(r"(http://[\d.:]+)", line):
            rest = m.group(1)
        if m := re.search(r"(ws://[\d.:]+)", line):
            ws = m.group(1)
    return proc, rest, ws


async def measure(seconds: float, rate: float) -> None:
    proc, rest_url, ws_url = start_exchange(rate)
    lags: list[float] = []

    def on_kline(k: kline_rs.ClosedKline) -> None:
        if k.interval == "1s" and not k.revision:
            lags.append(time.time() * 1000 - (k.close_time + 1))

    try:
        config = PipelineConfig(
            selection=Selection(quote="USDT"),
            intervals=["1s", "1m"],
            ws_url=ws_url,
            rest_url=rest_url,
            partitions=1,
            grace_ms=GRACE_MS,
        )
        pipeline = LivePipeline(config, on_kline)
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        await pipeline.run(seconds)
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        proc.terminate()
        proc.wait()
    assert pipeline.feed is not None
    frames = pipeline.feed.stats.frames
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    lags.sort()
    # A busy symbol's kline closes on its next trade (before the grace is over); a quiet
    # one's only when the clock passes the end + grace: two populations.
    by_trade = [x for x in lags if x < GRACE_MS]
    by_clock = [x - GRACE_MS for x in lags if x >= GRACE_MS]

    def p(q: float, xs: list[float] = lags) -> float:
        return xs[int((len(xs) - 1) * q)] if xs else float("nan")

    print(f"command: python benchmarks/bench_live.py --seconds {seconds:g} --rate {rate:g}")
    print("| measure | value |")
    print("|---|---:|")
    print(f"| frames received by the pipeline per second | {frames / seconds:,.0f} |")
    print(f"| pipeline process CPU per frame, µs | {cpu / max(frames, 1) * 1e6:.1f} |")
    print(f"| pipeline process CPU, share of one core | {cpu / seconds * 100:.0f} % |")
    print(f"| 1s klines closed | {len(lags):,} |")
    print(f"| end of the 1s period → consumer has its kline, p50 ms | {p(0.5):.1f} |")
    print(f"| end of the 1s period → consumer has its kline, p99 ms | {p(0.99):.1f} |")
    print(
        f"| closed by a later trade ({len(by_trade):,}): p50 / p99 ms "
        f"| {p(0.5, by_trade):.1f} / {p(0.99, by_trade):.1f} |"
    )
    print(
        f"| closed by the clock ({len(by_clock):,}): beyond the {GRACE_MS} ms grace, p50 / p99 ms "
        f"| {p(0.5, by_clock):.1f} / {p(0.99, by_clock):.1f} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--rate", type=float, default=20000.0)
    args = ap.parse_args()
    asyncio.run(measure(args.seconds, args.rate))


if __name__ == "__main__":
    main()
