"""Replay recorded Binance websocket frames through the Engine in event time.

    python examples/replay_recorded_frames.py CAPTURE [--intervals 1m,5m]

CAPTURE is a recording of a combined stream, one ``<receive time>: <frame>`` line per frame
after a ``<url> <-> <connect time>`` line (cryptofeed's ``*.ws.*`` files; the shared test data
has some under ``../shared/data/binance/cryptofeed``). The engine's clock is a
:class:`kline_rs.ManualClock` set to each frame's event time (``E``) before the frame is
pushed, so klines close as they did live, however fast the file is read; nothing waits on the
wall clock, so the loop never stalls. At the end the clock moves past the last period, ``sync()``
makes the workers finish, and every closed kline is printed. Where the capture also holds
Binance's own ``@kline_1m`` events, each closed 1m kline is compared with Binance's (``x: true``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import kline_rs
from kline_rs._core import interval_ms
from kline_rs.records import closed_kline


def frames(path: Path) -> list[tuple[int, bytes]]:
    """(event time ms, frame) of every data frame, in file order."""
    out = []
    with open(path, "rb") as f:
        next(f)  # "<url> <-> <connect time>"
        for line in f:
            _, _, frame = line.strip().partition(b": ")
            if not frame.startswith(b"{"):
                continue  # a blank line, or a line that is not a frame
            event = json.loads(frame).get("data", {})
            if "E" in event:
                out.append((int(event["E"]), frame))
    return out


def binance_klines(recorded: list[tuple[int, bytes]]) -> dict[tuple[str, int], dict[str, str]]:
    """Binance's closed 1m klines in the capture: (symbol, open time) → its kline object."""
    out = {}
    for _, frame in recorded:
        event = json.loads(frame)["data"]
        if event.get("e") == "kline" and event["k"]["x"] and event["k"]["i"] == "1m":
            out[(event["s"], int(event["k"]["t"]))] = event["k"]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("capture", type=Path)
    p.add_argument("--intervals", default="1m,5m")
    args = p.parse_args()
    recorded = frames(args.capture)
    symbols = sorted({json.loads(f)["data"]["s"] for _, f in recorded
                      if b'"aggTrade"' in f})  # fmt: skip
    intervals = args.intervals.split(",")
    # After the last frame the clock moves on by the longest period: every one it opened closes.
    settle = max(interval_ms(i)[1] for i in intervals)
    clock = kline_rs.ManualClock(recorded[0][0])
    with kline_rs.Engine(intervals, partitions=1, clock=clock) as engine:
        engine.add_symbols(symbols)
        for event_ms, frame in recorded:
            clock.set(max(event_ms, clock.now()))  # event time only moves forward
            engine.push_raw(frame)  # other streams (depth, klines) are counted and skipped
        clock.set(recorded[-1][0] + settle)
        engine.sync()
        closed = []
        for batch in engine.drain():
            closed += [closed_kline(row) for row in batch.klines]
            engine.ack(batch.token)
        metrics = engine.metrics()
    assert engine.closed
    theirs = binance_klines(recorded)
    same, differ, partial = 0, 0, 0
    for k in closed:
        if k.trades == 0:
            continue  # a quiet period: Binance sends no kline event for it here
        print(f"{k.symbol:10} {k.interval:3} {k.open_time} close {kline_rs.format_fixed8(k.close)}"
              f" volume {kline_rs.format_fixed8(k.volume)} trades {k.trades}")  # fmt: skip
        b = theirs.get((k.symbol, k.open_time)) if k.interval == "1m" else None
        if b is None:
            continue
        if (k.first_trade_id, k.last_trade_id) != (int(b["f"]), int(b["L"])):
            partial += 1  # the capture starts or ends inside this minute: not all of it seen
            continue
        mine = (k.open, k.high, k.low, k.close, k.volume, k.trades)
        binance = (*(kline_rs.parse_fixed8(b[f]) for f in "ohlcv"), int(b["n"]))
        if mine == binance:
            same += 1
        else:
            differ += 1
            print(f"  differs from Binance's: {b}")
    print(f"{len(recorded)} frames, {metrics['messages']} pushed, {len(closed)} klines closed; "
          f"Binance's own 1m klines in the capture: {same} equal, {differ} differ, {partial} "
          "seen in part")  # fmt: skip


if __name__ == "__main__":
    main()
