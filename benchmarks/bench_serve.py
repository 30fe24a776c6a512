"""Time ``kline-rs serve``'s REST klines against the floors a user would compare it with
(issue 16), all in one run on the same klines:

a. a bare ``sqlite3`` query of the same 1 000 stored rows in the same process (an open
   connection, ``SELECT … LIMIT 1000``, ``fetchall``: no HTTP, no text, no JSON);
b. the package's fake exchange answering the same ``GET /api/v3/klines`` (its rows are built
   once and cached: what is left is aiohttp and JSON, the floor for any aiohttp server);
c. ``kline-rs serve`` on a SQLite store of those klines: 1 000 1m klines as stored, and
   1 000 5m klines rolled up on request from 5 000 stored minutes.

The store holds exactly the fake exchange's own 1m klines (its rows, through the package's
sink), so b and c answer the same bytes for 1m. Requests go one after another over one
keep-alive connection from an aiohttp client in the same process (client and server share
the event loop, as they share the CPU in both b and c); p50/p99 per request and requests/s
over the timed requests. Prints a markdown table.

    python benchmarks/bench_serve.py [--requests N] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from benchinfo import machine as machine_info
from kline_rs.fake import FakeExchange, SimulatedMarket
from kline_rs.fake.kline_rows import KlineBook
from kline_rs.live.kline_history import records
from kline_rs.serve import ServeOptions, Server
from kline_rs.storage import SqliteSink
from kline_rs.venues import SPOT

SYMBOL = "BTCUSDT"
MINUTE = 60_000
#: 2024-01-01 00:00 UTC.
T0 = 1_704_067_200_000
#: Minutes of market: enough for 1 000 5m klines from a start with room after it.
MINUTES = 5_400
LIMIT = 1_000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def timed(call: Callable[[], Awaitable[int]], n: int, warm: int) -> dict[str, float]:
    """p50/p99 (ms) and calls/s of ``n`` calls after ``warm`` untimed ones; each returns how
    many klines it got (checked by the caller)."""
    for _ in range(warm):
        await call()
    lat: list[float] = []
    start = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        got = await call()
        lat.append((time.perf_counter() - t) * 1e3)
        assert got == LIMIT, got
    total = time.perf_counter() - start
    return {"p50": statistics.median(lat), "p99": percentile(lat, 0.99), "rps": n / total}


async def main(n: int, warm: int) -> None:
    market = SimulatedMarket([SYMBOL], start_ms=T0, speed=0, trades_per_second=2.0)
    market.advance(T0 + MINUTES * MINUTE)
    inst, tape = market.instruments[SYMBOL], market.tape(SYMBOL)
    rows, _ = KlineBook(SPOT).traded_rows(inst, tape, "1m")
    assert len(rows) >= MINUTES - 1, len(rows)
    start_1m = rows[len(rows) // 2][0]  # 1 000 minutes from the middle
    start_5m = rows[100][0] // (5 * MINUTE) * (5 * MINUTE) + 5 * MINUTE

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.sqlite"
        sink = SqliteSink(db)
        await sink.open()
        await sink.write(records(SYMBOL, "1m", rows, 0), None)
        await sink.close()

        con = sqlite3.connect(db)
        sql = (
            "SELECT * FROM klines WHERE venue = ? AND symbol = ? AND interval = ? "
            "AND open_time >= ? ORDER BY open_time LIMIT ?"
        )

        async def bare() -> int:
            return len(con.execute(sql, ("spot", SYMBOL, "1m", start_1m, LIMIT)).fetchall())

        results: dict[str, dict[str, float]] = {"a. bare sqlite3 query": await timed(bare, n, warm)}
        con.close()

        options = ServeOptions(weight_per_minute=10**9, max_in_flight=10**6)
        async with (
            FakeExchange(market, weight_limit=10**9) as fx,
            Server(db, options=options) as served,
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as http,
        ):

            def getter(base: str, interval: str, start: int) -> Callable[[], Awaitable[int]]:
                url = f"{base}/api/v3/klines"
                params = {"symbol": SYMBOL, "interval": interval, "startTime": str(start),
                          "limit": str(LIMIT)}  # fmt: skip

                async def call() -> int:
                    async with http.get(url, params=params) as resp:
                        assert resp.status == 200, await resp.text()
                        return len(await resp.json())

                return call

            fake_url = fx.rest_url
            # The same bytes for 1m: the store holds the fake's own rows.
            async with (
                http.get(f"{fake_url}/api/v3/klines?symbol={SYMBOL}&interval=1m"
                         f"&startTime={start_1m}&limit={LIMIT}") as a,
                http.get(f"{served.url}/api/v3/klines?symbol={SYMBOL}&interval=1m"
                         f"&startTime={start_1m}&limit={LIMIT}") as b,
            ):  # fmt: skip
                assert await a.json() == await b.json()
            results["b. fake exchange /api/v3/klines 1m"] = await timed(
                getter(fake_url, "1m", start_1m), n, warm
            )
            results["c. kline-rs serve 1m (as stored)"] = await timed(
                getter(served.url, "1m", start_1m), n, warm
            )
            results["b. fake exchange /api/v3/klines 5m"] = await timed(
                getter(fake_url, "5m", start_5m), n, warm
            )
            results["c. kline-rs serve 5m (rolled up from 5 000 1m)"] = await timed(
                getter(served.url, "5m", start_5m), n, warm
            )

    floor_sql = results["a. bare sqlite3 query"]
    floor_http = results["b. fake exchange /api/v3/klines 1m"]
    print(f"\n`{shlex.join(['python', *sys.argv])}`\n")
    print(machine_info(["aiohttp"]), "\n")
    print(f"{n} timed requests of {LIMIT} klines each (after {warm} untimed), one at a time\n")
    print("| what | p50 ms | p99 ms | requests/s | p99 vs sqlite3 | p99 vs fake 1m |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(
            f"| {name} | {r['p50']:.2f} | {r['p99']:.2f} | {r['rps']:,.0f} | "
            f"{r['p99'] / floor_sql['p99']:.1f}x | {r['p99'] / floor_http['p99']:.2f}x |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="timed requests per row")
    parser.add_argument("--quick", action="store_true", help="50 requests, 5 untimed")
    args = parser.parse_args()
    n, warm = (50, 5) if args.quick else (args.requests, 20)
    asyncio.run(main(n, warm))
