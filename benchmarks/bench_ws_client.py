"""Websocket clients side by side: CPU time per received Binance aggTrade frame (issue 14).

    python benchmarks/bench_ws_client.py [--frames 200000] [--rate 0] [--repeat 3]

A server in its own process (so its CPU is not counted) writes pre-built websocket frames of
combined-stream aggTrades (the shape of bench_engine.py's ``realistic_frames``) to each client
over loopback: all at once (``--rate 0``) or ``--rate`` frames a second in 1 ms ticks, as a
live market does. Each client receives every frame as ``bytes`` (what ``Engine.push_raw``
takes) into a list, as the feed does; measured is this process's CPU time
(``time.process_time``) from before the connect to the close, divided by the frames. The
clients take turns, ``--repeat`` rounds; the table gives each one's median and best.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import hashlib
import importlib.metadata
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

E8 = 10**8
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


# ---------------------------------------------------------------- the server (own process)


def aggtrade_frames(n: int, symbols: int = 20, seed: int = 5) -> list[bytes]:
    """``n`` combined-stream aggTrade payloads at BTC-like magnitudes, symbols interleaved."""
    rng = random.Random(seed)
    out = []
    t = 1_764_460_800_000
    for i in range(n):
        s = f"S{i % symbols:05d}USDT"
        a = 3_300_000_000 + i
        p = 6_000_000_000_000 + rng.randrange(-5_000_000_000, 5_000_000_000)
        q = rng.randrange(100_000, 500_000_000)
        t += rng.randrange(0, 2)
        m = "true" if rng.random() < 0.5 else "false"
        out.append(
            f'{{"stream":"{s.lower()}@aggTrade","data":{{"e":"aggTrade","E":{t + 3},'
            f'"s":"{s}","a":{a},"p":"{p // E8}.{p % E8:08d}","q":"{q // E8}.{q % E8:08d}",'
            f'"f":{a},"l":{a},"T":{t},"m":{m},"M":true}}}}'.encode()
        )
    return out


@functools.cache
def wire_bytes(frames: int) -> int:
    """What the server writes after the handshake: the frames and the close frame."""
    return sum(len(wire(f)) for f in aggtrade_frames(frames)) + 4


def wire(payload: bytes, opcode: int = 0x1) -> bytes:
    """One unmasked, unfragmented server frame."""
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, n])
    elif n < 1 << 16:
        head = bytes([0x80 | opcode, 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 127]) + n.to_bytes(8, "big")
    return head + payload


async def serve(frames: int, rate: float) -> None:
    data = [wire(f) for f in aggtrade_frames(frames)]
    close = wire((1000).to_bytes(2, "big"), 0x8)

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b":", 1)[1].strip()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        start = time.monotonic()
        sent = 0
        while sent < len(data):
            due = len(data) if rate <= 0 else min(len(data), int((time.monotonic() - start) * rate))
            if due > sent:
                writer.write(b"".join(data[sent:due]))
                sent = due
                await writer.drain()
            if rate > 0:
                await asyncio.sleep(0.001)
        writer.write(close)
        await writer.drain()
        with contextlib.suppress(TimeoutError, asyncio.TimeoutError, ConnectionError):
            await asyncio.wait_for(reader.read(), 10)  # the client's close frame, then EOF
        writer.close()

    server = await asyncio.start_server(client, "127.0.0.1", 0)
    print(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/stream", flush=True)
    async with server:
        await server.serve_forever()


# ---------------------------------------------------------------- the clients (this process)


async def with_websockets(url: str, frames: int) -> int:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    got: list[bytes] = []
    n = 0
    async with connect(url, max_size=2**24, compression=None) as ws:
        try:
            while True:
                got.append(await ws.recv(decode=False))
                if len(got) >= 4096:
                    n += len(got)
                    got.clear()
        except ConnectionClosed:
            pass
    return n + len(got)


async def with_aiohttp(url: str, frames: int, *, decode_text: bool = True) -> int:
    import aiohttp

    got: list[bytes] = []
    n = 0
    text, binary = aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY
    options = {} if decode_text else {"decode_text": False}  # aiohttp >= 3.13
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, max_msg_size=2**24, compress=0, **options) as ws,
    ):
        while True:
            msg = await ws.receive()
            if msg.type is text:
                got.append(msg.data.encode() if decode_text else msg.data)
            elif msg.type is binary:
                got.append(msg.data)
            else:
                break
            if len(got) >= 4096:
                n += len(got)
                got.clear()
    return n + len(got)


async def with_picows(url: str, frames: int) -> int:
    import picows

    class Listener(picows.WSListener):  # type: ignore[misc]
        def __init__(self) -> None:
            self.got: list[bytes] = []
            self.n = 0

        def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
            if frame.msg_type in (picows.WSMsgType.TEXT, picows.WSMsgType.BINARY):
                self.got.append(frame.get_payload_as_bytes())
                if len(self.got) >= 4096:
                    self.n += len(self.got)
                    self.got.clear()
            elif frame.msg_type == picows.WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()

    transport, listener = await picows.ws_connect(Listener, url, max_frame_size=2**24)
    await transport.wait_disconnected()
    return listener.n + len(listener.got)


async def with_raw_socket(url: str, frames: int) -> int:
    """The floor: the event loop and the socket reads alone (frames counted by their bytes)."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    key = base64.b64encode(b"0123456789abcdef")
    writer.write(
        b"GET /stream HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await reader.readuntil(b"\r\n\r\n")
    want = wire_bytes(frames)
    total = 0
    while total < want and (chunk := await reader.read(1 << 18)):
        total += len(chunk)
    writer.close()
    return frames if total == want else -total


CLIENTS: dict[str, tuple[str, Callable[[str, int], Awaitable[int]]]] = {
    "websockets": ("websockets", with_websockets),
    "aiohttp": ("aiohttp", with_aiohttp),
    "aiohttp, decode_text=False": ("aiohttp", functools.partial(with_aiohttp, decode_text=False)),
    "picows": ("picows", with_picows),
    "raw socket reads (floor)": ("", with_raw_socket),
}


def version(dist: str) -> str:
    if not dist:
        return "-"
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return ""


def aiohttp_reader() -> str:
    try:
        from aiohttp._websocket import reader

        return "C" if "reader_c" in reader.WebSocketReader.__module__ else "Python"
    except ImportError:
        return "?"


async def measure(url: str, run: Callable[[str, int], Awaitable[int]], frames: int) -> float:
    wire_bytes(frames)  # the floor's check, made before the clock starts
    cpu = time.process_time()
    got = await run(url, frames)
    cpu = time.process_time() - cpu
    if got != frames:
        raise RuntimeError(f"received {got} frames of {frames}")
    return cpu / frames * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200_000)
    ap.add_argument("--rate", type=float, default=0.0, help="frames/s; 0: all at once")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        asyncio.run(serve(args.frames, args.rate))
        return

    cmd = [sys.executable, __file__, "--serve", "--frames", str(args.frames)]
    server = subprocess.Popen([*cmd, "--rate", str(args.rate)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        clients = {k: v for k, v in CLIENTS.items() if version(v[0])}
        runs: dict[str, list[float]] = {k: [] for k in clients}
        for _ in range(args.repeat):
            for name, (_dist, run) in clients.items():
                runs[name].append(asyncio.run(measure(url, run, args.frames)))
    finally:
        server.terminate()
        server.wait()

    how = "all at once" if args.rate <= 0 else f"{args.rate:,.0f} frames/s in 1 ms ticks"
    print(
        f"command: python benchmarks/bench_ws_client.py --frames {args.frames} "
        f"--rate {args.rate:g} --repeat {args.repeat}"
    )
    print(f"{args.frames:,} aggTrade frames ({how}); aiohttp reader: {aiohttp_reader()}")
    print("| client | version | CPU µs per frame, median | best |")
    print("|---|---|---:|---:|")
    for name, xs in runs.items():
        v = version(clients[name][0])
        print(f"| {name} | {v} | {statistics.median(xs):.2f} | {min(xs):.2f} |")


if __name__ == "__main__":
    main()
