"""Embed the kline engine in an existing asyncio app.

The app already has its own event loop and a source of Binance websocket frames (here a
small simulated feed; in a real app, your websocket client). It hands the raw bytes to the
engine, which parses and aggregates them on its own threads, and consumes closed klines with
``async for`` — woken through a file descriptor, so the loop never polls.

    python examples/embed_in_asyncio.py
"""

from __future__ import annotations

import asyncio
import json
import random
import time

import kline_rs

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


async def feed(engine: kline_rs.Engine, seconds: float) -> None:
    """Stands in for your websocket client: pushes combined-stream aggTrade frames."""
    rng = random.Random(7)
    prices = {"BTCUSDT": 6_200_000, "ETHUSDT": 340_000, "SOLUSDT": 13_000}  # in cents
    agg_id = dict.fromkeys(SYMBOLS, 0)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        frames = []
        for _ in range(200):
            s = rng.choice(SYMBOLS)
            prices[s] += rng.randint(-3, 3)
            agg_id[s] += 1
            now = int(time.time() * 1000)
            data = {
                "e": "aggTrade", "E": now, "s": s, "a": agg_id[s],
                "p": f"{prices[s] // 100}.{prices[s] % 100:02d}", "q": "0.01000000",
                "f": agg_id[s], "l": agg_id[s], "T": now, "m": rng.random() < 0.5, "M": True,
            }  # fmt: skip
            frames.append(json.dumps({"stream": f"{s.lower()}@aggTrade", "data": data}).encode())
        engine.push_many(frames)
        await asyncio.sleep(0.01)


async def consume(engine: kline_rs.Engine) -> None:
    """Your app's side: closed klines as they close (prices are integers at 1e-8)."""
    async for k in engine.klines():
        close = kline_rs.format_fixed8(k.close)
        print(f"{k.symbol:8} {k.interval:3} {k.open_time} close {close} trades {k.trades}")


async def main(seconds: float = 3.0) -> None:
    # 1s klines so the demo shows some within seconds; grace: wait 200 ms for stragglers.
    with kline_rs.Engine(["1s", "1m"], grace=200) as engine:
        engine.add_symbols(SYMBOLS)
        consumer = asyncio.create_task(consume(engine))
        await feed(engine, seconds)
        await asyncio.sleep(1.5)  # let the last second close on the clock
        consumer.cancel()
        m = engine.metrics()
        trades = sum(p["trades"] for p in m["partitions"])
        print(f"{m['messages']} frames, {trades} trades applied, {m['malformed']} malformed")


if __name__ == "__main__":
    import sys

    asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 3.0))
