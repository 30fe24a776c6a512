"""Websocket fan-out of `kline-rs` streams: many subscribers while the engine ingests.

    python benchmarks/bench_serve_ws.py [--clients 1000] [--streams 100] [--rate 20000]
                                        [--seconds 15] [--pace 2.0]

A server process runs an engine (1m klines, one symbol per stream) fed ``--rate`` trades per
second in 10 ms batches, a :class:`~kline_rs.serve.live.LiveSource` and the
:class:`~kline_rs.serve.ws.StreamHub` on loopback; a second process opens ``--clients``
websocket connections, each subscribed to one of ``--streams`` streams
(``/ws/<symbol>@kline_1m``), and timestamps every event. An update's latency is the time from
the push of the trade its ``L`` names to the client's receipt of it: it includes waiting for
the stream's next poll, so at Binance's pace (``--pace 2``: an update every 2 s) it is mostly
that wait; ``--pace 0.1`` shows the server's own cost. Printed: events delivered per second,
latency p50 / p99 / max, and the server process's CPU time per delivered event.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import numpy as np

E8 = 10**8
BATCH_S = 0.01
#: Seconds after every client is connected before events are counted (the first poll of each
#: new subscription sends everyone on the stream the open kline again).
WARM_UP_S = 3.0


def symbols(n: int) -> list[str]:
    return [f"S{i:04d}USDT" for i in range(n)]


async def serve(args: argparse.Namespace) -> None:
    import kline_rs
    from aiohttp import web
    from kline_rs.serve.live import LiveSource
    from kline_rs.serve.ws import StreamHub
    from kline_rs.venues import SPOT

    names = symbols(args.streams)
    engine = kline_rs.Engine(["1m"], partitions=2, grace=250)
    engine.add_symbols(names)
    source = LiveSource(engine, SPOT)
    hub = StreamHub(source, pace_s=args.pace, max_connections_per_client=args.clients + 10)
    source.hub = hub
    app = web.Application()
    app.add_routes(hub.routes())
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port)
    await site.start()
    await hub.start()

    async def consume() -> None:
        async for k in engine.klines():
            source.on_closed(k)

    consumer = asyncio.create_task(consume())
    print("ready", flush=True)
    per_batch = max(1, int(args.rate * BATCH_S))
    pushed: dict[str, list[tuple[int, int]]] = {s: [] for s in names}
    next_id = dict.fromkeys(names, 1)
    rng = np.random.default_rng(1)
    start = time.monotonic()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    tick = 0
    while time.monotonic() - start < args.seconds + WARM_UP_S + 30:
        if Path(args.out + ".stop").exists():
            break
        tick += 1
        now_ms = time.time_ns() // 1_000_000
        frames = []
        last: dict[str, int] = {}
        for i in rng.integers(0, len(names), per_batch).tolist():
            sym = names[i]
            a = next_id[sym]
            next_id[sym] = a + 1
            last[sym] = a
            price = f"{100 + a % 1000 / 100:.2f}"
            maker = "true" if a % 2 else "false"
            frames.append(
                f'{{"e":"aggTrade","E":{now_ms},"s":"{sym}","a":{a},"p":"{price}",'
                f'"q":"1.00000000","f":{a},"l":{a},"T":{now_ms},"m":{maker},"M":true}}'.encode()
            )
        engine.push_many(frames)
        pushed_ns = time.time_ns()
        for sym, a in last.items():
            pushed[sym].append((a, pushed_ns))
        await asyncio.sleep(max(0.0, start + tick * BATCH_S - time.monotonic()))
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    Path(args.out).write_text(json.dumps({"pushed": pushed, "cpu_s": cpu, "stats": hub.stats}))
    await hub.stop()
    consumer.cancel()
    engine.close()
    await runner.cleanup()


async def clients(args: argparse.Namespace) -> list[tuple[str, int, int]]:
    names = symbols(args.streams)
    got: list[tuple[str, int, int]] = []
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as http:
        socks = []
        for i in range(args.clients):
            sym = names[i % len(names)]
            url = f"ws://127.0.0.1:{args.port}/ws/{sym.lower()}@kline_1m"
            socks.append(await http.ws_connect(url, max_msg_size=0))

        warm = time.time_ns() + int(WARM_UP_S * 1e9)

        async def read(ws: aiohttp.ClientWebSocketResponse) -> None:
            async for msg in ws:
                t = time.time_ns()
                e = json.loads(msg.data)
                if not e["k"]["x"] and t >= warm:
                    got.append((e["s"], e["k"]["L"], t))

        readers = [asyncio.create_task(read(ws)) for ws in socks]
        await asyncio.sleep(args.seconds + WARM_UP_S)
        for r in readers:
            r.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        for ws in socks:
            await ws.close()
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--streams", type=int, default=100)
    ap.add_argument("--rate", type=float, default=20_000)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--pace", type=float, default=2.0)
    ap.add_argument("--port", type=int, default=18_765)
    ap.add_argument("--role", choices=["main", "server"], default="main")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    if args.role == "server":
        asyncio.run(serve(args))
        return
    out = Path(f"/tmp/bench_serve_ws.{os.getpid()}.json")
    server = subprocess.Popen(
        [sys.executable, __file__, "--role", "server", "--out", str(out),
         *(f"--{k}={getattr(args, k)}" for k in ("clients", "streams", "rate", "seconds",
                                                 "pace", "port"))],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    got = asyncio.run(clients(args))
    Path(f"{out}.stop").touch()
    server.wait(timeout=60)
    Path(f"{out}.stop").unlink()
    result = json.loads(out.read_text())
    out.unlink()
    pushed = {s: dict(v) for s, v in result["pushed"].items()}
    lat = np.array([t - pushed[s][last] for s, last, t in got if last in pushed[s]]) / 1e6
    print(f"{args.clients} clients on {args.streams} streams, {args.rate:.0f} trades/s pushed, "
          f"poll every {args.pace} s, {args.seconds:.0f} s")  # fmt: skip
    print(f"events delivered: {len(got)} ({len(got) / args.seconds:,.0f}/s), "
          f"server frames {result['stats']['frames_sent']}, dropped slow consumers "
          f"{result['stats']['slow_consumers_dropped']}")  # fmt: skip
    if len(lat):
        p50, p99 = np.percentile(lat, [50, 99])
        print(f"update latency ms: p50 {p50:.1f}  p99 {p99:.1f}  max {lat.max():.1f}")
    per_event = result["cpu_s"] / max(1, result["stats"]["frames_sent"]) * 1e6
    print(
        f"server CPU {result['cpu_s']:.2f} s ({per_event:.1f} us per frame sent, engine "
        "ingest included)"
    )


if __name__ == "__main__":
    main()
