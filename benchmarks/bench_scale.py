"""The scale-out mode (``kline-rs capture`` → NATS JetStream → ``kline-rs aggregate`` →
PostgreSQL) against the single-process pipeline (``kline-rs run`` → PostgreSQL), on one
machine, every part a real process:

a. **Drain.** A 1-node JetStream (``nats-server -js``, file storage, 1 replica) is filled with
   ``--trades`` synthetic aggTrade events over ``--symbols`` symbols, shaped as Binance sends
   them (subjects, shards and ``Nats-Msg-Id`` headers as capture writes them, ids contiguous
   per symbol, times increasing, spread over ``--span`` seconds ending an hour ago). Then
   ``kline-rs aggregate`` processes, 1 and then 2 (``--aggregators``), each time a fresh
   database and a fresh lease bucket, read it all: messages/s and CPU µs per message from the
   moment the first shard's progress is stored until every shard's stored progress covers its
   last message (the store's ``fences`` table, polled); CPU from ``/proc/<pid>/stat``, of the
   aggregators and, separately, of nats-server and of PostgreSQL (postmaster, its backends and
   the backends it reaped).
b. **Capture alone.** The fake exchange (its own process, ``--rate`` trades/s over 20
   symbols, market time = wall time; it counts the frames it sends) followed by one
   ``kline-rs capture``, nothing reading the stream: over ``--seconds`` of steady streaming
   (from 3 s after the first frame) the frames/s that reached the stream (what capture
   sustained: past it, it stops reading the websocket) and capture's CPU per frame stored.
c. **The peer.** At ``--peer-rate`` (a rate all of them keep up with), one ``kline-rs
   capture`` with one ``kline-rs aggregate`` following the stream, then, on the same
   market, ``kline-rs run --db`` (the single-process pipeline, the same PostgreSQL): each
   process's CPU per frame sent over the same window, and the ratio of capture + aggregate
   to run, processes only and with the servers they use (nats-server; PostgreSQL for both).

Intervals ``--intervals`` (default 1s,1m,1h) everywhere; the aggregators' lease TTL is the
default 10 s. The aggregators also publish each closed kline to the klines stream, if the
code has one (``kline_rs.scale.kline_stream``): it is made here with a 1 GiB bound. 2 cores:
the parts share them, so a second aggregator helps only as far as the others leave a core
free; the ratios are measured in the same run, compare them rather than bare times.
``--profile FILE`` runs the 1-aggregator drain once more under cProfile (the event-loop
thread; PostgreSQL writes run in a worker thread) and writes its stats there (slower; not
in the tables).

    python benchmarks/bench_scale.py [--trades 200000] [--symbols 100] [--span 600]
        [--aggregators 1,2] [--rate 20000] [--peer-rate 3000] [--seconds 10] [--profile FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path

import nats
import psycopg
from benchinfo import machine
from kline_rs.fake import SimulatedMarket
from kline_rs.scale.leases import LEASE_BUCKET
from kline_rs.scale.trade_stream import STREAM, ensure_stream, message_id, shard_of, subject
from kline_rs.testing.postgres import PostgresServer

ROOT = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")
VENUE = "spot"
NATS_BIN = shutil.which("nats-server") or "/usr/sbin/nats-server"
STREAM_BYTES = 2**30
#: The default; 4 s lost a busy aggregator its leases mid-drain (renewals starved).
LEASE_TTL_S = 10.0
#: The fake exchange in its own process, printing how many frames it has sent, 4 times a second.
EXCHANGE = """
import asyncio, sys
from kline_rs.fake import FakeExchange, SimulatedMarket
async def main(rate):
    market = SimulatedMarket(20, speed=1.0, trades_per_second=rate)
    async with FakeExchange(market) as fx:
        print(fx.rest_url, fx.ws_url, flush=True)
        while True:
            await asyncio.sleep(0.25)
            print(fx.stats.frames_sent, flush=True)
asyncio.run(main(float(sys.argv[1])))
"""


def cpu_s(pid: int, children: bool = False) -> float:
    """utime + stime (+ reaped children's) of a live process, seconds; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # fields 14, 15 of stat(5)
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICK


def tree_cpu_s(pid: int) -> float:
    """A postmaster's CPU: its own, its reaped children's and its live children's."""
    total = cpu_s(pid, children=True)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rpartition(")")[2].split()[1]) == pid:
                total += cpu_s(int(stat.parent.name))
    return total


async def _quiet(e: Exception) -> None:
    """nats-py's error callback: nothing printed (the server is not up yet)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NatsServer:
    """One nats-server with JetStream (file storage) on loopback, in a temp dir."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        (root / "js").mkdir(parents=True)
        self.log = (root / "nats.log").open("wb")
        self.proc: asyncio.subprocess.Process | None = None
        self.root = root
        self.url = f"nats://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            NATS_BIN, "-js", "-sd", str(self.root / "js"), "-a", "127.0.0.1",
            "-p", str(self.port), stdout=self.log, stderr=self.log,
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while True:
            try:
                nc = await nats.connect(self.url, max_reconnect_attempts=0,
                                        allow_reconnect=False, error_cb=_quiet)  # fmt: skip
                await nc.jetstream().account_info()
                await nc.close()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            await self.proc.wait()


async def spawn(args: list[str], log: Path, *, module: str = "kline_rs.cli",
                profile: str | None = None) -> asyncio.subprocess.Process:  # fmt: skip
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'python'}{os.pathsep}"
           f"{os.environ.get('PYTHONPATH', '')}"}  # fmt: skip
    pre = ["-m", "cProfile", "-o", profile] if profile else []
    with log.open("ab") as err:
        return await asyncio.create_subprocess_exec(
            sys.executable, *pre, "-m", module, *args, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=err, env=env,
        )  # fmt: skip


async def stop(proc: asyncio.subprocess.Process, timeout: float = 30.0,
               sig: int = signal.SIGTERM) -> None:  # fmt: skip
    if proc.returncode is None:
        proc.send_signal(sig)
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()


def summary(log: Path, kind: str) -> str:
    prefix = "kline-rs: " if kind == "run" else f"kline-rs: {kind}"
    lines = [ln for ln in log.read_text(errors="replace").splitlines()
             if ln.startswith(prefix)]  # fmt: skip
    return lines[-1] if lines else f"(no summary line; log tail: {log.read_text()[-500:]!r})"


def counted(line: str, name: str) -> int:
    """The number after ``name`` in a summary line (``messages 200000, …``)."""
    for part in line.split(", "):
        if part.startswith(name + " "):
            with contextlib.suppress(ValueError):
                return int(part.split()[-1])
    return -1


# -- a. the drain -----------------------------------------------------------------------------


@dataclass
class Tape:
    """Per shard, the stream sequences of its messages, ascending."""

    by_shard: dict[int, list[int]]
    total: int

    def covered(self, progress: dict[int, int]) -> int:
        return sum(bisect_right(seqs, progress.get(s, 0)) for s, seqs in self.by_shard.items())


def symbol_names(n: int) -> list[str]:
    """The fake market's ``n`` symbols (BTCUSDT, PEPEUSDT, ETHUSDT, …: names as Binance's)."""
    return list(SimulatedMarket(n, speed=0.0).tapes)


async def fill(url: str, trades: int, symbols: int, span_s: float) -> tuple[Tape, float]:
    """The stream, made afresh, holding ``trades`` aggTrade events; returns the sequences per
    shard and the seconds the publishing took."""
    names = symbol_names(symbols)
    end = int(time.time() * 1000) - 3_600_000
    start = end - int(span_s * 1000)
    step = (end - start) / trades
    nc = await nats.connect(url)
    js = nc.jetstream(timeout=10.0)
    with contextlib.suppress(Exception):
        await js.delete_stream(STREAM)
    await ensure_stream(js, 1, STREAM_BYTES)
    by_shard: dict[int, list[int]] = {}
    began = time.monotonic()
    for i in range(trades):
        sym = names[i % symbols]
        agg_id = 1_000_000 + i // symbols
        t = start + int(i * step)
        first = agg_id * 3
        event = {"e": "aggTrade", "E": t + 1, "s": sym, "a": agg_id,
                 "p": f"{100 + (i * 7919 % 1000) / 100:.8f}", "q": f"{(i % 97 + 1) / 1000:.8f}",
                 "f": first, "l": first + i % 3, "T": t, "m": bool(i & 1), "M": True}  # fmt: skip
        await nc.publish(subject(VENUE, sym), json.dumps(event, separators=(",", ":")).encode(),
                         headers={"Nats-Msg-Id": message_id(VENUE, sym, agg_id)})  # fmt: skip
        by_shard.setdefault(shard_of(sym), []).append(i + 1)  # stream sequence: publish order
        if i % 2000 == 1999:
            await nc.flush()
    await nc.flush()
    deadline = time.monotonic() + 60
    while (info := await js.stream_info(STREAM)).state.messages < trades:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the stream holds {info.state.messages} of {trades} messages")
        await asyncio.sleep(0.1)
    took = time.monotonic() - began
    print(f"stream: {info.state.bytes / max(1, info.state.messages):.0f} bytes per message "
          "stored (subject, Nats-Msg-Id header, event JSON; file store, 1 replica)",
          flush=True)  # fmt: skip
    if info.state.messages != trades or info.state.last_seq != trades:
        raise RuntimeError(f"stream state {info.state}: not one message per trade in order")
    await nc.close()
    return Tape(by_shard, trades), took


async def reset_leases(url: str) -> None:
    """No lease bucket (the aggregators make it), and an empty klines stream where the
    aggregators publish closed klines (made here: 1 GiB, not its 16 GiB, for this disk)."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    with contextlib.suppress(Exception):
        await js.delete_key_value(LEASE_BUCKET)
    try:
        from kline_rs.scale import kline_stream
    except ImportError:  # aggregators that publish no klines
        pass
    else:
        with contextlib.suppress(Exception):
            await js.delete_stream(kline_stream.STREAM)
        config = kline_stream.config(1)
        config.max_bytes = STREAM_BYTES
        await js.add_stream(config)
    await nc.close()


async def progress(db: str) -> dict[int, int]:
    try:
        async with await psycopg.AsyncConnection.connect(db, autocommit=True) as conn:
            cur = await conn.execute("SELECT name, progress FROM fences WHERE venue = %s", (VENUE,))
            rows = await cur.fetchall()
    except psycopg.Error:  # no table yet
        return {}
    return {int(name.rpartition(".")[2]): int(p) for name, p in rows if name.startswith("shard.")}


async def klines_stored(db: str) -> int:
    async with await psycopg.AsyncConnection.connect(db, autocommit=True) as conn:
        with contextlib.suppress(psycopg.Error):
            cur = await conn.execute("SELECT count(*) FROM klines")
            return int((await cur.fetchone())[0])
    return -1


@dataclass
class Drain:
    aggregators: int
    messages: int
    seconds: float
    whole_s: float
    agg_cpu: float
    agg_cpu_whole: float
    nats_cpu: float
    pg_cpu: float
    summaries: list[str]
    klines: int

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    def us(self, cpu: float) -> float:
        return cpu / self.messages * 1e6


async def drain(n: int, tape: Tape, ns: NatsServer, pg: PostgresServer, pg_pid: int,
                intervals: str, tmp: Path, timeout: float,
                profile: str | None = None) -> Drain:  # fmt: skip
    await reset_leases(ns.url)
    db = pg.create_database("bench_scale")
    procs = []
    logs = [tmp / f"aggregate-{n}-{i}.log" for i in range(n)]
    t0 = time.monotonic()
    for i in range(n):
        procs.append(await spawn(
            ["aggregate", "--nats", ns.url, "--db", db, "--intervals", intervals,
             "--rest-url", "http://127.0.0.1:9", "--lease-ttl", str(LEASE_TTL_S),
             "--name", f"bench-{n}-{i}"], logs[i], profile=profile,
        ))  # fmt: skip
    first: tuple[float, int, float, float, float] | None = None
    done = 0
    deadline = t0 + timeout
    try:
        while True:
            await asyncio.sleep(0.1)
            done = tape.covered(await progress(db))
            now = time.monotonic()
            sample = (now, done, sum(cpu_s(p.pid) for p in procs), cpu_s(ns.pid),
                      tree_cpu_s(pg_pid))  # fmt: skip
            if first is None and done > 0:
                first = sample
            if done >= tape.total or now > deadline:
                break
            for p in procs:
                if p.returncode is not None:
                    raise RuntimeError(f"an aggregator stopped: {logs[0].read_text()[-2000:]}")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            await stop(p)
    last = sample
    assert first is not None, "no progress stored"
    if done < tape.total:
        print(f"(drain with {n}: only {done} of {tape.total} covered in {timeout:.0f} s)")
    return Drain(
        aggregators=n,
        messages=last[1] - first[1],
        seconds=last[0] - first[0],
        whole_s=last[0] - t0,
        agg_cpu=last[2] - first[2],
        agg_cpu_whole=last[2],
        nats_cpu=last[3] - first[3],
        pg_cpu=last[4] - first[4],
        summaries=[summary(lg, "aggregate") for lg in logs],
        klines=await klines_stored(db),
    )


# -- b. live ----------------------------------------------------------------------------------


class Exchange:
    """The fake exchange's process and its latest frames-sent count."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.frames = 0

    async def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": f"{ROOT / 'python'}"}
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", EXCHANGE, str(self.rate), stdout=asyncio.subprocess.PIPE,
            env=env,
        )  # fmt: skip
        assert self.proc.stdout is not None
        self.rest_url, self.ws_url = (await self.proc.stdout.readline()).decode().split()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.frames = int(line)

    async def stop(self) -> None:
        self.proc.terminate()
        await self.proc.wait()
        self._reader.cancel()


@dataclass
class Live:
    frames: int  # sent by the exchange in the window
    stored: int  # reached the stream in the window (capture), -1 for run
    seconds: float
    cpu: dict[str, float]
    summaries: list[str]

    def us(self, name: str) -> float:
        return self.cpu[name] / self.frames * 1e6


async def live(fx: Exchange, parts: dict[str, list[str]], watch: dict[str, int],
               seconds: float, tmp: Path, js_url: str | None) -> Live:  # fmt: skip
    """Starts ``parts`` (name → kline-rs arguments), measures over ``seconds`` of steady
    frames; ``watch``: other processes to count CPU of (name → pid; ``postgres``: a tree)."""
    procs = {name: await spawn(args, tmp / f"{name}.log") for name, args in parts.items()}
    nc = await nats.connect(js_url) if js_url else None

    async def stored() -> int:
        if nc is None:
            return -1
        with contextlib.suppress(Exception):
            return int((await nc.jetstream().stream_info(STREAM)).state.messages)
        return -1

    def sample() -> tuple[float, int, dict[str, float]]:
        cpu = {name: cpu_s(p.pid) for name, p in procs.items()}
        cpu |= {name: (tree_cpu_s(pid) if name == "postgres" else cpu_s(pid))
                for name, pid in watch.items()}  # fmt: skip
        return time.monotonic(), fx.frames, cpu

    try:
        base = fx.frames
        deadline = time.monotonic() + 60
        while fx.frames <= base + 10:
            if time.monotonic() > deadline:
                raise RuntimeError("no frames sent within 60 s")
            for name, p in procs.items():
                if p.returncode is not None:
                    raise RuntimeError(f"{name} stopped: {(tmp / f'{name}.log').read_text()}")
            await asyncio.sleep(0.1)
        await asyncio.sleep(3.0)
        (w0, f0, c0), s0 = sample(), await stored()
        await asyncio.sleep(seconds)
        (w1, f1, c1), s1 = sample(), await stored()
        for name, p in procs.items():
            if p.returncode is not None:
                raise RuntimeError(f"{name} stopped: {(tmp / f'{name}.log').read_text()}")
    finally:
        for name, p in procs.items():  # run stops on SIGINT (Ctrl-C), the others on SIGTERM
            await stop(p, sig=signal.SIGINT if name == "run" else signal.SIGTERM)
        if nc is not None:
            await nc.close()
    return Live(
        frames=f1 - f0,
        stored=s1 - s0 if s0 >= 0 else -1,
        seconds=w1 - w0,
        cpu={k: c1[k] - c0[k] for k in c1},
        summaries=[summary(tmp / f"{n}.log", n.rstrip("0123456789")) for n in procs],
    )


# -- the run ----------------------------------------------------------------------------------


def postmaster_pid(pg: PostgresServer) -> int:
    return int((pg.data / "postmaster.pid").read_text().split()[0])


async def measure(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    os.chmod(tmp, 0o755)
    ns = NatsServer(tmp / "nats")
    await ns.start()
    pg = PostgresServer.throwaway()
    try:
        pg_pid = postmaster_pid(pg)
        tape, fill_s = await fill(ns.url, args.trades, args.symbols, args.span)
        sizes = sorted((len(v) for v in tape.by_shard.values()), reverse=True)
        print(f"stream filled: {tape.total:,} messages, {args.symbols} symbols in "
              f"{len(tape.by_shard)} shards, {fill_s:.1f} s to publish; messages per shard "
              f"{', '.join(f'{n:,}' for n in sizes)}")  # fmt: skip
        drains = []
        for n in args.aggregators:
            d = await drain(n, tape, ns, pg, pg_pid, args.intervals, tmp, args.timeout)
            drains.append(d)
            print(f"drain, {n} aggregator(s): {d.rate:,.0f} msg/s; " + " | ".join(d.summaries))
        if args.profile:
            await drain(1, tape, ns, pg, pg_pid, args.intervals, tmp, args.timeout * 3,
                        profile=args.profile)  # fmt: skip
            print(f"cProfile of one aggregator's drain: {args.profile}")

        async def fresh_stream() -> None:
            nc = await nats.connect(ns.url)
            with contextlib.suppress(Exception):
                await nc.jetstream().delete_stream(STREAM)
            await nc.close()
            await reset_leases(ns.url)

        def capture(fx: Exchange) -> list[str]:
            return ["capture", "--nats", ns.url, "--quote", "USDT", "--ws-url", fx.ws_url,
                    "--rest-url", fx.rest_url, "--max-bytes", str(STREAM_BYTES)]  # fmt: skip

        fx = Exchange(args.rate)
        await fx.start()
        try:
            await fresh_stream()
            alone = await live(fx, {"capture": capture(fx)}, {"nats": ns.pid}, args.seconds,
                               tmp, ns.url)  # fmt: skip
            print("capture alone: " + " | ".join(alone.summaries))
        finally:
            await fx.stop()
        fx = Exchange(args.peer_rate)
        await fx.start()
        try:
            await fresh_stream()
            scale_db = pg.create_database("bench_scale_live")
            scale = await live(fx, {
                "capture": capture(fx),
                "aggregate": ["aggregate", "--nats", ns.url, "--db", scale_db, "--intervals",
                              args.intervals, "--rest-url", fx.rest_url,
                              "--lease-ttl", str(LEASE_TTL_S)],
            }, {"nats": ns.pid, "postgres": pg_pid}, args.seconds, tmp, ns.url)  # fmt: skip
            print("capture + aggregate: " + " | ".join(scale.summaries))
            run_db = pg.create_database("bench_scale_run")
            run = await live(fx, {
                "run": ["run", "--quote", "USDT", "--ws-url", fx.ws_url, "--rest-url",
                        fx.rest_url, "--db", run_db, "--intervals", args.intervals],
            }, {"postgres": pg_pid}, args.seconds, tmp, None)  # fmt: skip
            print("run: " + " | ".join(run.summaries))
        finally:
            await fx.stop()
    finally:
        await ns.stop()
        pg.close()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"logs kept in {tmp}")

    cmd = " ".join(["python benchmarks/bench_scale.py", *sys.argv[1:]])
    print()
    print(f"command: {cmd}")
    print(machine(["nats-py", "psycopg"], f"{Path(NATS_BIN).name} {nats_version()}, "))
    print()
    print(f"a. drain of {tape.total:,} aggTrades ({args.symbols} symbols, 16 shards, "
          f"intervals {args.intervals}), 1-node JetStream, PostgreSQL")  # fmt: skip
    print()
    print(
        "| aggregators | msg/s | x 1 aggr. | aggr. CPU µs/msg | whole process¹ | "
        "nats-server µs/msg | PostgreSQL µs/msg | s to drain² | klines stored | "
        "messages per aggregator |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for d in drains:
        split = " / ".join(f"{counted(x, 'messages'):,}" for x in d.summaries)
        print(f"| {d.aggregators} | {d.rate:,.0f} | {d.rate / drains[0].rate:.2f} | "
              f"{d.us(d.agg_cpu):.1f} | {d.agg_cpu_whole / tape.total * 1e6:.1f} | "
              f"{d.us(d.nats_cpu):.1f} | {d.us(d.pg_cpu):.1f} | {d.whole_s:.1f} | "
              f"{d.klines:,} | {split} |")  # fmt: skip
    print()
    print(
        "¹ all the aggregators' CPU from start (imports, leases) to drained, per message "
        "of the stream. ² from start, lease wait (TTL/2) included."
    )
    print()
    print(f"b. capture alone, fake exchange at {args.rate:g} trades/s (20 symbols), "
          f"{args.seconds:g} s steady window: frames sent {alone.frames / alone.seconds:,.0f}/s, "
          f"stored in the stream {alone.stored / alone.seconds:,.0f}/s; capture CPU "
          f"{alone.cpu['capture'] / alone.seconds * 100:.0f} % of a core, "
          f"{alone.cpu['capture'] / max(alone.stored, 1) * 1e6:.1f} µs per frame stored; "
          f"nats-server {alone.cpu['nats'] / max(alone.stored, 1) * 1e6:.1f} µs")  # fmt: skip
    print()
    print(
        f"c. live, fake exchange at {args.peer_rate:g} trades/s (20 symbols), "
        f"{args.seconds:g} s steady window each, intervals {args.intervals}"
    )
    print()
    ratio_proc = (scale.us("capture") + scale.us("aggregate")) / run.us("run")
    ratio_all = (scale.us("capture") + scale.us("aggregate") + scale.us("nats")
                 + scale.us("postgres")) / (run.us("run") + run.us("postgres"))  # fmt: skip
    print("| process | frames sent/s | stored in the stream/s | CPU µs per frame sent |")
    print("|---|---:|---:|---:|")
    print(
        f"| capture | {scale.frames / scale.seconds:,.0f} | "
        f"{scale.stored / scale.seconds:,.0f} | {scale.us('capture'):.1f} |"
    )
    print(f"| aggregate (1 process, following) | | | {scale.us('aggregate'):.1f} |")
    print(f"| nats-server | | | {scale.us('nats'):.1f} |")
    print(f"| PostgreSQL (scale-out) | | | {scale.us('postgres'):.1f} |")
    print(f"| **run** (the peer) | {run.frames / run.seconds:,.0f} | | {run.us('run'):.1f} |")
    print(f"| PostgreSQL (run) | | | {run.us('postgres'):.1f} |")
    print()
    print(
        f"capture + aggregate vs run, processes: {ratio_proc:.2f}x; with nats-server and "
        f"PostgreSQL: {ratio_all:.2f}x"
    )
    d0 = drains[0]
    backlog = (scale.us("capture") + d0.us(d0.agg_cpu)) / run.us("run")
    print(f"capture (live) + aggregate (drain, 1 process) vs run: {backlog:.2f}x")


def nats_version() -> str:
    import subprocess

    out = subprocess.run([NATS_BIN, "--version"], capture_output=True, text=True).stdout
    return out.strip().rpartition(" ")[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trades", type=int, default=200_000, help="messages in the stream (a)")
    ap.add_argument("--symbols", type=int, default=100, help="symbols they are over (a)")
    ap.add_argument("--span", type=float, default=600.0, help="market seconds they span (a)")
    ap.add_argument("--aggregators", type=lambda s: [int(x) for x in s.split(",")],
                    default=[1, 2], help="drains, e.g. 1,2")  # fmt: skip
    ap.add_argument("--intervals", default="1s,1m,1h")
    ap.add_argument("--timeout", type=float, default=120.0, help="bound on one drain, s")
    ap.add_argument("--rate", type=float, default=20000.0, help="trades/s, capture alone (b)")
    ap.add_argument("--peer-rate", type=float, default=3000.0,
                    help="trades/s, capture + aggregate vs run (c)")  # fmt: skip
    ap.add_argument("--seconds", type=float, default=10.0, help="steady window (b)")
    ap.add_argument("--profile", help="write a cProfile of a 1-aggregator drain here")
    ap.add_argument("--keep", action="store_true", help="keep the logs (printed where)")
    args = ap.parse_args()
    asyncio.run(measure(args))


if __name__ == "__main__":
    main()
