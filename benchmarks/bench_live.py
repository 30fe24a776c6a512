"""The whole live pipeline on loopback: frames/s through it and the lag to a closed kline.

    python benchmarks/bench_live.py [--seconds 8] [--rate 20000] [--profile FILE]

The fake exchange (``python -m kline_rs.fake.fake_exchange``) runs in its own process and
serves a simulated market of 20 symbols at ``--rate`` trades per second (market time is real
time); this process runs only the pipeline (1 partition, 1s + 1m klines) and measures: frames
received per second, this process's CPU time per frame (websocket client, push_raw, engine
threads, consumer), and for each closed 1s kline the delay from the end of its period to the
moment the consumer had it (p50 / p99): a busy symbol's kline closes on its next trade, a
quiet one's when the clock passes the end + grace (250 ms).

CPU and frames are counted over ``--seconds`` of steady streaming (from 1 s after the first
frame), split into the event-loop thread (websocket client, ``push_raw``, consumer) and the
engine's worker threads; the whole run (start-up and shut-down included) is given too.
``--profile FILE`` writes a cProfile (CPU time) of the event-loop thread over that window.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import re
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

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


def process_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def worker_cpu() -> float:
    """CPU seconds of this process's engine threads (``kline-worker-*``), from schedstat."""
    total = 0
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):  # the thread ended meanwhile
            if (task / "comm").read_text().startswith("kline-worker"):
                total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


@dataclass
class Sample:
    wall: float
    frames: int
    process: float
    loop_thread: float
    workers: float

    @staticmethod
    def now(pipeline: LivePipeline) -> Sample:
        frames = pipeline.feed.stats.frames if pipeline.feed is not None else 0
        return Sample(time.monotonic(), frames, process_cpu(), time.thread_time(), worker_cpu())


async def steady(
    pipeline: LivePipeline, seconds: float, profiler: cProfile.Profile | None
) -> tuple[Sample, Sample, Sample]:
    """Samples at the first frame, 1 s later and ``seconds`` after that (event-loop thread),
    profiling in between."""
    deadline = time.monotonic() + 60
    while pipeline.feed is None or pipeline.feed.stats.frames == 0:
        if time.monotonic() > deadline:
            raise RuntimeError("no frame within 60 s")
        await asyncio.sleep(0.01)
    first = Sample.now(pipeline)
    await asyncio.sleep(1.0)
    start = Sample.now(pipeline)
    if profiler is not None:
        profiler.enable()
    await asyncio.sleep(seconds)
    if profiler is not None:
        profiler.disable()
    return first, start, Sample.now(pipeline)


async def measure(seconds: float, rate: float, profile: str | None) -> None:
    proc, rest_url, ws_url = start_exchange(rate)
    lags: list[float] = []

    def on_kline(k: kline_rs.ClosedKline) -> None:
        if k.interval == "1s" and not k.revision:
            lags.append(time.time() * 1000 - (k.close_time + 1))

    # CPU time, not wall time: on a loaded machine a preempted thread would count as busy.
    profiler = cProfile.Profile(time.thread_time) if profile else None
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
        cpu0, wall0 = process_cpu(), time.monotonic()
        run = asyncio.create_task(pipeline.run())
        try:
            first, start, end = await steady(pipeline, seconds, profiler)
        finally:
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run
        if profiler is not None:
            profiler.dump_stats(profile)
        cpu1, wall1 = process_cpu(), time.monotonic()
    finally:
        proc.terminate()
        proc.wait()
    assert pipeline.feed is not None
    frames = end.frames - start.frames
    span = end.wall - start.wall
    total_frames = pipeline.feed.stats.frames
    lags.sort()
    # A busy symbol's kline closes on its next trade (before the grace is over); a quiet
    # one's only when the clock passes the end + grace: two populations.
    by_trade = [x for x in lags if x < GRACE_MS]
    by_clock = [x - GRACE_MS for x in lags if x >= GRACE_MS]

    def p(q: float, xs: list[float] = lags) -> float:
        return xs[int((len(xs) - 1) * q)] if xs else float("nan")

    def per_frame(cpu: float) -> str:
        return f"{cpu / max(frames, 1) * 1e6:.1f}"

    loop_cpu, workers = end.loop_thread - start.loop_thread, end.workers - start.workers
    cpu, whole = end.process - start.process, (cpu1 - cpu0) / max(total_frames, 1) * 1e6
    print(f"command: python benchmarks/bench_live.py --seconds {seconds:g} --rate {rate:g}")
    print("| measure | value |")
    print("|---|---:|")
    print(f"| frames received per second (steady {span:.1f} s) | {frames / span:,.0f} |")
    print(f"| pipeline process CPU per frame, µs | {per_frame(cpu)} |")
    print(f"| … event-loop thread (websocket client, push_raw, consumer) | {per_frame(loop_cpu)} |")
    print(f"| … engine worker threads | {per_frame(workers)} |")
    print(f"| pipeline process CPU, share of one core | {cpu / span * 100:.0f} % |")
    print(
        f"| whole run with start-up and shut-down ({wall1 - wall0:.1f} s, {total_frames:,} "
        f"frames): CPU per frame, µs | {whole:.1f} |"
    )
    print(f"| start-up: the first frame after, s | {first.wall - wall0:.1f} |")
    print(f"| shut-down: the pipeline stopped after, s | {wall1 - end.wall:.1f} |")
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
    ap.add_argument("--profile", help="write a cProfile of the steady window here")
    args = ap.parse_args()
    asyncio.run(measure(args.seconds, args.rate, args.profile))


if __name__ == "__main__":
    main()
