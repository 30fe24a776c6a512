"""Lag to a closed kline in the scale-out mode while the cluster ingests at a steady rate.

A 3-node JetStream cluster on loopback (Debian's nats-server), a throwaway PostgreSQL, the fake
exchange trading in real time, one ``kline-rs capture`` and two ``kline-rs aggregate``
processes. After ``--seconds`` the aggregators stop (SIGTERM) and print their summary: the lag
of each stored kline, from its close time to the commit that stored it (wall clock), p50 and
p99, printed beside its two fixed parts (the grace and the write interval): a ratio to what
the mode cannot avoid, not a bare time.

    .venv/bin/python benchmarks/bench_scale_lag.py [--seconds 40] [--rate 50]

A kline closes when the stream's trades pass its end by ``--grace``; it is stored with the
next write (``--flush-every``, 1 s). What is left over is the capture → JetStream → consumer
path and the store's commit.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from kline_rs.fake import FakeExchange, SimulatedMarket  # noqa: E402
from kline_rs.testing.postgres import PostgresServer  # noqa: E402
from nats_cluster import start_or_skip  # noqa: E402

SYMBOLS = [f"S{i:02d}USDT" for i in range(12)]
LAG = re.compile(r"lag p50 (-?\d+) ms p99 (-?\d+) ms")


async def spawn(args: list[str], log: Path) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "python")}
    with log.open("ab") as err:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "kline_rs.cli", *args, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=err, env=env,
        )  # fmt: skip


async def stop(procs: list[asyncio.subprocess.Process]) -> None:
    for p in procs:
        if p.returncode is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            await asyncio.wait_for(p.wait(), 60)
        except asyncio.TimeoutError:
            p.kill()
            await p.wait()


async def main(seconds: float, rate: float, grace: int, tmp: Path) -> None:
    market = SimulatedMarket(SYMBOLS, seed=5, trades_per_second=rate)
    with PostgresServer.throwaway() as pg, start_or_skip(tmp / "nats") as cluster:
        db_scale = pg.create_database()
        async with FakeExchange(market) as fx:
            common = ["--ws-url", fx.ws_url, "--rest-url", fx.rest_url]
            nats = ["--nats", cluster.url_list]
            capture = await spawn(["capture", *nats, "--symbols", ",".join(SYMBOLS), *common,
                                   "--max-bytes", str(2**28)], tmp / "capture.log")  # fmt: skip
            aggs = []
            for i in range(2):
                args = ["aggregate", *nats, "--db", db_scale, "--intervals", "1s,1m",
                        "--rest-url", fx.rest_url, "--grace", str(grace),
                        "--klines-max-bytes", str(2**28), "--log-level", "info"]  # fmt: skip
                aggs.append(await spawn(args, tmp / f"aggregate{i}.log"))
            await asyncio.sleep(seconds)
            await stop(aggs)
            await stop([capture])
    print(f"{len(SYMBOLS)} symbols, {rate:.0f} trades/s, {seconds:.0f} s, grace {grace} ms")
    print("close-to-store lag (wall clock, ms):")
    for i in range(2):
        found = LAG.findall((tmp / f"aggregate{i}.log").read_text())
        p50, p99 = found[-1] if found else ("?", "?")
        print(f"  aggregate {i}: p50 {p50}  p99 {p99}")
    print(f"  (the grace alone is {grace} ms, the write interval 1000 ms)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--rate", type=float, default=50.0, help="trades/s over all symbols")
    ap.add_argument("--grace", type=int, default=2000, help="ms, both modes")
    ap.add_argument("--logs", type=Path, help="keep the processes' logs in this directory")
    a = ap.parse_args()
    if a.logs is not None:
        a.logs.mkdir(parents=True, exist_ok=True)
        asyncio.run(main(a.seconds, a.rate, a.grace, a.logs))
    else:
        with tempfile.TemporaryDirectory(prefix="kline-rs-lag-") as d:
            asyncio.run(main(a.seconds, a.rate, a.grace, Path(d)))
