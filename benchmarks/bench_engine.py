"""Time the streaming engine (kline_rs.Engine) against the peers users would run instead.

Four benchmarks, each feeding the same data to kline_rs and its peer in the same run (best of
--repeat): numpy batch ingest, raw websocket JSON ingest, rollover sweeps, and memory per
symbol x interval. Prints markdown tables ready for BENCHMARKS.md.

    python benchmarks/bench_engine.py [--quick] [--repeat N]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import functools
import gc
import importlib.metadata
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kline_rs
import numpy as np
import numpy.typing as npt
from benchinfo import machine as machine_info

INTERVALS = [
    "1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h",
    "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M",
]  # fmt: skip
E8 = 10**8
SECOND, MINUTE, HOUR, DAY = 1_000, 60_000, 3_600_000, 86_400_000
#: 2024-01-01 00:00 UTC: a Monday and the 1st of a month (not a 3d boundary on the epoch grid).
MONDAY_JAN_1 = 1_704_067_200_000
#: (name, length ms, offset ms) for the Python peer: bucket = t - (t - offset) % length.
#: 3d is epoch-aligned (as kline_rs without an anchor), 1w starts on Monday (exact), 1M is
#: approximated by epoch-aligned 30-day buckets.
PEER_GRID = [
    *((n, ms, 0) for n, ms in [("1s", SECOND), ("1m", MINUTE), ("3m", 3 * MINUTE)]),
    *((n, ms, 0) for n, ms in [("5m", 5 * MINUTE), ("15m", 15 * MINUTE), ("30m", 30 * MINUTE)]),
    *((f"{h}h", h * HOUR, 0) for h in (1, 2, 4, 6, 8, 12)),
    ("1d", DAY, 0),
    ("3d", 3 * DAY, 0),
    ("1w", 7 * DAY, 4 * DAY),
    ("1M", 30 * DAY, 0),
]
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT"]
BASE_PRICE = {"BTCUSDT": 42_000, "ETHUSDT": 2_300, "SOLUSDT": 100, "BNBUSDT": 310}
NAUTILUS_SPECS = [
    "1-SECOND", "1-MINUTE", "3-MINUTE", "5-MINUTE", "15-MINUTE", "30-MINUTE", "1-HOUR",
    "2-HOUR", "4-HOUR", "6-HOUR", "8-HOUR", "12-HOUR", "1-DAY", "3-DAY", "1-WEEK", "1-MONTH",
]  # fmt: skip

I64 = npt.NDArray[np.int64]
State = dict[tuple[str, str, int], list[int]]


@dataclass(frozen=True)
class Trades:
    """One symbol's aggTrades as parallel arrays (prices and quantities int64 at 1e-8)."""

    agg_id: I64
    price: I64
    qty: I64
    first_id: I64
    last_id: I64
    time: I64
    maker: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.agg_id)

    def part(self, start: int, stop: int) -> Trades:
        """Rows [start, stop) as views."""
        r = slice(start, stop)
        return Trades(self.agg_id[r], self.price[r], self.qty[r], self.first_id[r],
                      self.last_id[r], self.time[r], self.maker[r])  # fmt: skip

    def columns(self) -> tuple[I64, I64, I64, I64, I64, I64, npt.NDArray[np.bool_]]:
        """The arrays in Engine.push_trades order."""
        return (self.agg_id, self.price, self.qty, self.first_id, self.last_id, self.time,
                self.maker)  # fmt: skip

    def trade_array(self) -> npt.NDArray[np.void]:
        """The trades as one :data:`kline_rs.TRADE_DTYPE` array (what Engine.push_trades takes)."""
        c = self.columns()
        return kline_rs.trades(agg_id=c[0], price=c[1], qty=c[2], first_id=c[3], last_id=c[4],
                               time=c[5], buyer_is_maker=c[6])  # fmt: skip

    def rows(self) -> Iterator[tuple[int, int, int, int, int, int, bool]]:
        """(agg_id, price, qty, first_id, last_id, time, buyer_is_maker) as Python values."""
        return zip(*(c.tolist() for c in self.columns()), strict=True)


@dataclass(frozen=True)
class Timing:
    """Seconds of a timed region: wall, CPU of the whole process, of the calling thread, and
    of the engine's worker threads (kline-worker-*)."""

    wall: float
    cpu: float
    caller: float
    workers: float


#: A table row: label, items, timing, and kline-rs's timing on the same items (for the ratio).
Row = tuple[str, int, Timing, Timing | None]


# ---------------------------------------------------------------- data


def make_trades(n: int, start_ms: int, span_ms: int, seed: int) -> dict[str, Trades]:
    """`n` trades split over SYMBOLS in [start, start + span): random-walk prices on a 0.01
    tick, quantities on a 1e-6 step, 1-3 raw trades per aggTrade, half buyer-is-maker."""
    rng = np.random.default_rng(seed)
    out: dict[str, Trades] = {}
    for k, symbol in enumerate(SYMBOLS):
        m = n // len(SYMBOLS) + (k < n % len(SYMBOLS))
        steps = np.cumsum(rng.integers(-3, 4, m, dtype=np.int64)) * 10**6
        price = np.maximum(BASE_PRICE[symbol] * E8 + steps, 10**6)
        raw = rng.integers(1, 4, m, dtype=np.int64)
        last = 1_000_000 + np.cumsum(raw)
        out[symbol] = Trades(
            agg_id=np.arange(1, m + 1, dtype=np.int64),
            price=price,
            qty=rng.integers(1, 2_000_000, m, dtype=np.int64) * 100,
            first_id=last - raw + 1,
            last_id=last,
            time=np.sort(rng.integers(start_ms, start_ms + span_ms, m, dtype=np.int64)),
            maker=rng.random(m) < 0.5,
        )
    return out


def fixed8(value: int) -> str:
    """Binance's 8-decimal text of a positive value at 1e-8."""
    return f"{value // E8}.{value % E8:08d}"


def frames_of(data: dict[str, Trades]) -> list[bytes]:
    """Combined-stream aggTrade frames of all symbols, interleaved in time order."""
    rows = [(t, s, a, p, q, f, last, m) for s, tr in data.items()
            for a, p, q, f, last, t, m in tr.rows()]  # fmt: skip
    rows.sort(key=lambda r: r[0])
    return [
        (
            f'{{"stream":"{s.lower()}@aggTrade","data":{{"e":"aggTrade","E":{t + 3},'
            f'"s":"{s}","a":{a},"p":"{fixed8(p)}","q":"{fixed8(q)}","f":{f},"l":{last},'
            f'"T":{t},"m":{"true" if m else "false"},"M":true}}}}'
        ).encode()
        for t, s, a, p, q, f, last, m in rows
    ]


def one_trade_frames(symbols: Sequence[str], start_ms: int, span_ms: int) -> list[bytes]:
    """One aggTrade frame per symbol, spread over [start, start + span)."""
    one = np.ones(1, dtype=np.int64)
    no = np.zeros(1, dtype=np.bool_)
    data = {
        s: Trades(
            one, one * 100 * E8, one * E8, one, one, one * (start_ms + i * 7919 % span_ms), no
        )
        for i, s in enumerate(symbols)
    }
    return frames_of(data)


def realistic_frames(symbols: Sequence[str], start_ms: int, per_symbol: int = 20) -> list[bytes]:
    """``per_symbol`` aggTrades per symbol within one minute at BTC-like magnitudes (price
    ~60 000, quantities to 1e-8, ids past 3e9): what the acknowledged copy has to encode."""
    rng = np.random.default_rng(5)
    data = {}
    for i, s in enumerate(symbols):
        ids = 3_300_000_000 + i * 10_000 + np.arange(per_symbol, dtype=np.int64)
        price = 6_000_000_000_000 + rng.integers(-5_000_000_000, 5_000_000_000, per_symbol)
        qty = rng.integers(100_000, 500_000_000, per_symbol)
        times = start_ms + np.sort(rng.integers(0, 59_000, per_symbol))
        maker = rng.random(per_symbol) < 0.5
        data[s] = Trades(ids, price, qty, ids, ids, times, maker)
    return frames_of(data)


def symbol_names(n: int) -> list[str]:
    return [f"S{i:05d}USDT" for i in range(n)]


# ---------------------------------------------------------------- timing and peers


def worker_cpu() -> float:
    """CPU seconds used so far by this process's live kline-worker threads (schedstat, ns)."""
    total = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            if (task / "comm").read_text().startswith("kline-worker"):
                total += int((task / "schedstat").read_text().split()[0])
        except OSError:  # the thread ended meanwhile
            continue
    return total / 1e9


def timed(run: Callable[[], Any]) -> tuple[Timing, Any]:
    """Timing of `run()` (gc off meanwhile), and its result."""
    gc.collect()
    gc.disable()
    try:
        k = worker_cpu()
        w, c, t = time.perf_counter(), time.process_time(), time.thread_time()
        result = run()
        wall, cpu, caller = time.perf_counter() - w, time.process_time() - c, time.thread_time() - t
        return Timing(wall, cpu, caller, worker_cpu() - k), result
    finally:
        gc.enable()


def best(runs: Sequence[Timing]) -> Timing:
    """The run with the least wall time."""
    return min(runs, key=lambda t: t.wall)


def apply_trade(state: State, s: str, p: int, q: int, f: int, last: int, t: int, m: bool) -> None:
    """The plain-Python peer: exact integer OHLCV state per (symbol, interval, bucket)."""
    pq = p * q
    n = last - f + 1
    taker_q, taker_pq = (0, 0) if m else (q, pq)
    for name, length, offset in PEER_GRID:
        key = (s, name, t - (t - offset) % length)
        k = state.get(key)
        if k is None:
            state[key] = [p, p, p, p, q, pq, n, taker_q, taker_pq, f, last]
        else:
            if p > k[1]:
                k[1] = p
            if p < k[2]:
                k[2] = p
            k[3] = p
            k[4] += q
            k[5] += pq
            k[6] += n
            k[7] += taker_q
            k[8] += taker_pq
            k[10] = last


def python_loop(data: dict[str, Trades]) -> State:
    state: State = {}
    for s, tr in data.items():
        for _a, p, q, f, last, t, m in tr.rows():
            apply_trade(state, s, p, q, f, last, t, m)
    return state


def orjson_loop(frames: Sequence[bytes]) -> State:
    import orjson

    state: State = {}
    for frame in frames:
        d = orjson.loads(frame)["data"]
        p, q = parse8(d["p"]), parse8(d["q"])
        apply_trade(state, d["s"], p, q, d["f"], d["l"], d["T"], d["m"])
    return state


def orjson_only(frames: Sequence[bytes]) -> int:
    import orjson

    loads = orjson.loads
    for frame in frames:
        loads(frame)
    return len(frames)


def parse8(text: str) -> int:
    """Exact decimal text → int at 1e-8 (the Python peer's parse)."""
    whole, _, frac = text.partition(".")
    return int(whole) * E8 + int((frac + "00000000")[:8])


def engine(clock: kline_rs.ManualClock, symbols: Sequence[str]) -> kline_rs.Engine:
    """A one-partition engine over all 16 intervals with the symbols added. Ingest is timed
    alone (no consumer), so the closed records wait behind the outbox: the spill bound is
    raised to hold them all, as the engine held them before it had one."""
    e = kline_rs.Engine(INTERVALS, partitions=1, clock=clock, max_ahead_ms=None, max_spill=1 << 24)
    e.add_symbols(list(symbols))
    e.sync()
    return e


def partition(e: kline_rs.Engine) -> dict[str, Any]:
    part: dict[str, Any] = e.metrics()["partitions"][0]
    return part


# ---------------------------------------------------------------- 1. numpy ingest


def numpy_ingest(data: dict[str, Trades], chunk: int) -> Timing:
    """push_trades per symbol in chunks, timed until sync() returns."""
    arrays = {symbol: tr.trade_array() for symbol, tr in data.items()}  # built before timing
    with engine(kline_rs.ManualClock(0), list(data)) as e:

        def run() -> None:
            for symbol, rows in arrays.items():
                for start in range(0, len(rows), chunk):
                    e.push_trades(symbol, rows[start : start + chunk])
            e.sync()

        timing, _ = timed(run)
        applied = partition(e)["trades"]
    expected = sum(len(t) for t in data.values())
    assert applied == expected, f"engine applied {applied} of {expected} trades"
    return timing


def squeeze(tr: Trades, start: int, factor: int) -> Trades:
    """The same trades with their times `factor` times closer to `start` (fewer rollovers)."""
    time_ = start + (tr.time - start) // factor
    return Trades(tr.agg_id, tr.price, tr.qty, tr.first_id, tr.last_id, time_, tr.maker)


def nautilus_ticks(tr: Trades) -> tuple[Any, list[Any], float]:
    """BTCUSDT instrument and TradeTick objects of `tr`, and the seconds building them took."""
    from nautilus_trader.model.data import TradeTick
    from nautilus_trader.model.enums import AggressorSide
    from nautilus_trader.model.identifiers import TradeId
    from nautilus_trader.model.objects import FIXED_SCALAR
    from nautilus_trader.test_kit.providers import TestInstrumentProvider

    inst = TestInstrumentProvider.btcusdt_binance()
    scale = int(FIXED_SCALAR) // E8
    sides = {True: AggressorSide.SELLER, False: AggressorSide.BUYER}
    from_raw = TradeTick.from_raw
    start = time.perf_counter()
    ticks = [
        from_raw(
            inst.id, p * scale, 2, q * scale, 6, sides[m], TradeId(str(a)), t * 10**6, t * 10**6
        )
        for a, p, q, _f, _l, t, m in tr.rows()
    ]
    return inst, ticks, time.perf_counter() - start


def nautilus_run(inst: Any, ticks: list[Any], specs: Sequence[str]) -> int:
    """TimeBarAggregators (one per spec) on a TestClock advanced to each tick; returns bars."""
    from nautilus_trader.common.component import TestClock
    from nautilus_trader.data.aggregation import TimeBarAggregator
    from nautilus_trader.model.data import BarType

    clock = TestClock()
    clock.set_time(ticks[0].ts_event)
    bars: list[Any] = []
    aggs = [
        TimeBarAggregator(
            inst, BarType.from_str(f"{inst.id}-{s}-LAST-INTERNAL"), bars.append, clock
        )
        for s in specs
    ]
    for tick in ticks:
        for event in clock.advance_time(tick.ts_event):
            event.handle()
        for agg in aggs:
            agg.handle_trade_tick(tick)
    return len(bars)


def bench_numpy(n: int, peer_n: int, repeat: int) -> list[str]:
    data = make_trades(n, MONDAY_JAN_1, DAY, seed=1)
    peer = {"BTCUSDT": data["BTCUSDT"].part(0, peer_n)}
    chunk = 100_000
    ours = best([numpy_ingest(data, chunk) for _ in range(repeat)])
    ours_peer = best([numpy_ingest(peer, chunk) for _ in range(repeat)])
    rows: list[Row] = [("kline-rs push_trades + sync", n, ours, None)]
    rows.append(("kline-rs push_trades + sync (peer subset)", peer_n, ours_peer, None))
    hour = {s: squeeze(tr, MONDAY_JAN_1, 24) for s, tr in data.items()}
    dense = best([numpy_ingest(hour, chunk) for _ in range(repeat)])
    rows.append(("kline-rs, same trades squeezed into 1 h (diagnostic)", n, dense, None))
    loop = best([timed(lambda: python_loop(peer))[0] for _ in range(repeat)])
    rows.append(("python loop, dict of exact int state", peer_n, loop, ours_peer))
    notes = [
        f"- Data: {n:,} trades over {len(SYMBOLS)} symbols in one day (2024-01-01 UTC), "
        f"pushed per symbol in chunks of {chunk:,}; the peers and the 'peer subset' row use the "
        f"first {peer_n:,} BTCUSDT trades. Engine(partitions=1, clock=ManualClock(0)): the "
        "clock closes nothing; klines close as later trades arrive (records stay in the outbox).",
        "- The 'squeezed' row replays the same trades with times compressed 24x into one hour, so "
        "the 1s klines roll ~24x less often: the gap to the first row is the cost of rolling "
        "over (closing a kline, emitting it and its flat run) on the trade path.",
        "- python loop: 16 intervals, exact ints; 3d epoch-aligned, 1w Monday-aligned, 1M "
        "approximated by epoch-aligned 30-day buckets; no flat klines for empty periods.",
    ]
    rows_n, note = nautilus_rows(peer["BTCUSDT"], ours_peer, repeat)
    return table_ingest(rows + rows_n, "trades") + notes + note + goal_line(ours, n, 10.0)


def nautilus_rows(tr: Trades, ours: Timing, repeat: int) -> tuple[list[Row], list[str]]:
    """nautilus_trader TimeBarAggregator rows (1 and 16 intervals), or why there are none."""
    try:
        version = importlib.metadata.version("nautilus_trader")
        inst, ticks, build = nautilus_ticks(tr)
    except Exception as e:  # not installed or API changed: say why in one line
        return [], [f"- nautilus_trader: not run ({type(e).__name__}: {e})."]
    rows: list[Row] = []
    for specs in (["1-MINUTE"], NAUTILUS_SPECS):
        run = functools.partial(nautilus_run, inst, ticks, specs)
        t = best([timed(run)[0] for _ in range(repeat)])
        label = f"nautilus_trader {version} TimeBarAggregator, {len(specs)} interval(s)"
        rows.append((label, len(tr), t, ours))
    note = (
        f"- nautilus_trader: one TimeBarAggregator per interval on a TestClock advanced to each "
        f"trade (timer events handled), aggregation only; building the {len(tr):,} TradeTick "
        f"objects took {build:.2f} s more. Its 1-interval row is compared with kline-rs doing "
        "all 16."
    )
    return rows, [note]


# ---------------------------------------------------------------- 2. raw JSON ingest


def raw_ingest(frames: Sequence[bytes], symbols: Sequence[str], batch: int) -> Timing:
    """push_raw in batches (retrying on backpressure), timed until sync() returns. With no
    symbols added, every frame is parsed and counted as an unknown symbol (nothing applied)."""
    with engine(kline_rs.ManualClock(0), symbols) as e:

        def run() -> int:
            trades = 0
            for start in range(0, len(frames), batch):
                trades += e.push_many(frames[start : start + batch])
            e.sync()
            return trades

        timing, trades = timed(run)
        applied = partition(e)["trades"]
        unknown = e.metrics()["unknown_symbol"]
    want = len(frames) if symbols else 0
    assert trades == applied == want and unknown == len(frames) - want, (trades, applied, unknown)
    return timing


def bench_raw(n: int, peer_n: int, repeat: int) -> list[str]:
    frames = frames_of(make_trades(n, MONDAY_JAN_1, DAY, seed=2))
    sub = frames[:peer_n]
    batch = 10_000
    ours = best([raw_ingest(frames, SYMBOLS, batch) for _ in range(repeat)])
    ours_sub = best([raw_ingest(sub, SYMBOLS, batch) for _ in range(repeat)])
    parse = best([raw_ingest(frames, [], batch) for _ in range(repeat)])
    loads = best([timed(lambda: orjson_only(frames))[0] for _ in range(repeat)])
    loop = best([timed(lambda: orjson_loop(sub))[0] for _ in range(repeat)])
    rows: list[Row] = [
        ("kline-rs push_raw + sync", n, ours, None),
        ("kline-rs push_raw + sync (peer subset)", peer_n, ours_sub, None),
        ("kline-rs push_raw, no symbols added: parse + lookup only (diagnostic)", n, parse, None),
        ("orjson.loads only (no klines)", n, loads, ours),
        ("orjson.loads + python loop, 16 intervals", peer_n, loop, ours_sub),
    ]
    size = sum(map(len, frames)) / len(frames)
    notes = [
        f"- Data: {n:,} combined-stream aggTrade frames (avg {size:.0f} B) of {len(SYMBOLS)} "
        f"symbols interleaved in time, pushed with push_raw in batches of {batch:,}; the python "
        f"loop and the subset row use the first {peer_n:,} frames. Same python loop as above, "
        "plus an exact decimal-text parse of p and q. The 'no symbols added' row parses every "
        "frame in Rust and looks its symbol up, then drops it (counted as unknown): the parse "
        "and routing floor.",
    ]
    return table_ingest(rows, "msgs") + notes + goal_line(ours, n, 2.0)


def table_ingest(rows: Sequence[Row], unit: str) -> list[str]:
    """Rows (label, count, timing, kline-rs timing on the same data) as a markdown table."""
    out = [
        f"| tool | {unit} | seconds | M {unit}/s (wall) | M {unit}/CPU-s (all threads) "
        "| CPU s: caller / worker | kline-rs speed-up |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, count, t, ours in rows:
        ratio = "" if ours is None else f"{t.wall / ours.wall:.1f}x"
        worker = f"{t.workers:.3f}" if t.workers else "-"
        out.append(
            f"| {label} | {count:,} | {t.wall:.3f} | {count / t.wall / 1e6:.2f} | "
            f"{count / max(t.cpu, 1e-9) / 1e6:.2f} | {t.caller:.3f} / {worker} | {ratio} |"
        )
    return out


def goal_line(ours: Timing, n: int, goal: float) -> list[str]:
    """Verdict on the wall rate of one partition (one worker, fed by the calling thread)."""
    wall, cpu = n / ours.wall / 1e6, n / max(ours.cpu, 1e-9) / 1e6
    caller, worker = n / max(ours.caller, 1e-9) / 1e6, n / max(ours.workers, 1e-9) / 1e6
    verdict = "met" if wall >= goal else "NOT met"
    return [
        f"- Goal ≥ {goal:g} M/s per core: {verdict}: {wall:.2f} M/s wall with one partition "
        f"(the calling thread converts/parses, one worker applies); per CPU-second: "
        f"{caller:.2f} M on the calling thread, {worker:.2f} M on the worker (its CPU time "
        f"includes spinning while it waits), {cpu:.2f} M over all threads."
    ]


# ---------------------------------------------------------------- 3. rollover


@dataclass(frozen=True)
class Sweep:
    """sync() seconds after moving the clock, and the records the sweep emitted."""

    seconds: float
    closed: int
    flat_runs: int


#: Baseline sync() seconds (clock still) and one Sweep per clock move.
Sweeps = tuple[list[float], list[Sweep]]


def sweep_after(
    symbols: Sequence[str], frames: list[bytes], start: int, moves: list[int]
) -> Sweeps:
    """Engine with one trade per symbol, clock at `start`; baseline syncs, then clock moves."""
    clock = kline_rs.ManualClock(start)
    with engine(clock, symbols) as e:
        assert e.push_many(frames) == len(frames)
        e.sync()
        baseline = []
        for _ in range(30):
            w = time.perf_counter()
            e.sync()
            baseline.append(time.perf_counter() - w)
        sweeps = []
        for now in moves:
            before = partition(e)
            gc.disable()
            w = time.perf_counter()
            clock.set(now)
            e.sync()
            seconds = time.perf_counter() - w
            gc.enable()
            after = partition(e)
            closed, flat = (after[k] - before[k] for k in ("closed", "flat_runs"))
            sweeps.append(Sweep(seconds, closed, flat))
    return baseline, sweeps


def best_sweeps(runs: list[Sweeps]) -> Sweeps:
    """All baselines pooled; per move, the fastest sweep (records are the same every run)."""
    baseline = [b for base, _ in runs for b in base]
    sweeps = [min(col, key=lambda s: s.seconds) for col in zip(*(s for _, s in runs), strict=True)]
    return baseline, sweeps


def bench_rollover(n_symbols: int, n_silent: int, repeat: int) -> list[str]:
    grace = 250
    #: (symbols, start of the minute their trades fall in, [(label, where the clock moves)])
    cases: list[tuple[int, int, list[tuple[str, int]]]] = [
        (
            n_symbols,
            MONDAY_JAN_1 + MINUTE,
            [("minute boundary 00:02 (1s + 1m close)", MONDAY_JAN_1 + 2 * MINUTE + grace),
             ("then 1 s later, all quiet (1s flat runs only)",
              MONDAY_JAN_1 + 2 * MINUTE + SECOND + grace)],
        ),
        (
            n_symbols,
            MONDAY_JAN_1 - MINUTE,
            [("00:00 UTC Mon 1 Jan (15 of 16 intervals close)", MONDAY_JAN_1 + grace)],
        ),
        (
            n_silent,
            MONDAY_JAN_1 + MINUTE,
            [("clock jumps 1 h, all silent", MONDAY_JAN_1 + HOUR + MINUTE + grace)],
        ),
    ]  # fmt: skip
    out = [
        "| case | symbols | klines closed | flat runs | sync ms (best) | minus baseline ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    baselines: list[float] = []
    rows: list[tuple[str, int, Sweep]] = []
    for count, start, moves in cases:
        names = symbol_names(count)
        frames = one_trade_frames(names, start, MINUTE)
        runs = [sweep_after(names, frames, start, [m for _, m in moves]) for _ in range(repeat)]
        base, sweeps = best_sweeps(runs)
        baselines += base
        rows += [(label, count, s) for (label, _), s in zip(moves, sweeps, strict=True)]
    floor = min(baselines)
    med = statistics.median(baselines)
    out.append(f"| sync(), no boundary crossed (baseline) | | 0 | 0 | {floor * 1e3:.3f} | 0 |")
    for label, count, s in rows:
        out.append(
            f"| {label} | {count:,} | {s.closed:,} | {s.flat_runs:,} | {s.seconds * 1e3:.3f} | "
            f"{(s.seconds - floor) * 1e3:.3f} |"
        )
    minute = rows[0][2].seconds - floor
    _, quiet, silent = rows[-1]
    verdict = "met" if minute <= 2e-3 else "NOT met"
    return [
        *out,
        f"- Each symbol has one open kline per interval (one trade, in the minute before the "
        f"clock moves); Engine(partitions=1, grace={grace}, ManualClock). Timed: clock.set() "
        "then sync() (the sweep runs inside it); best of "
        f"{repeat} fresh engines. Baseline: {len(baselines)} syncs with the clock still, best "
        f"{floor * 1e3:.3f} ms, median {med * 1e3:.3f} ms.",
        f"- Goal ≤ 2 ms for rollover of {n_symbols:,} symbols x 16 intervals: {verdict} "
        f"({minute * 1e3:.3f} ms over baseline at the minute boundary).",
        f"- 1 h silence: {silent.closed + silent.flat_runs:,} records for {quiet:,} symbols "
        f"({silent.closed:,} klines closed, one per symbol x interval whose boundary passed; "
        f"{silent.flat_runs:,} flat runs): one flat run per symbol x interval, not one per "
        f"missing period (that would be {quiet * 3_600:,} for 1s alone).",
    ]


# ---------------------------------------------------------------- 4. memory


def rss_bytes() -> int:
    """Resident set size from /proc/self/statm, after a gc and glibc's malloc_trim (so freed
    memory the allocator still holds is not counted)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def memory_probe(n_symbols: int) -> dict[str, int]:
    """In a fresh interpreter: RSS before adding the symbols (the frames already built, and
    kept to the end), after 20 BTC-like trades each with the klines they closed consumed (the
    live table), and after a snapshot is taken and acknowledged (the engine then also holds
    the acknowledged copy it restores a panicked symbol from; our copy of it is dropped
    first)."""
    names = symbol_names(n_symbols)
    frames = realistic_frames(names, MONDAY_JAN_1 + MINUTE)
    with engine(kline_rs.ManualClock(MONDAY_JAN_1), ["WARMUP"]) as e:
        before = rss_bytes()
        w = time.perf_counter()
        e.add_symbols(names)
        added = time.perf_counter() - w
        assert e.push_many(frames) == len(frames)
        e.sync()
        # What the trades closed (1s klines) is output waiting for a consumer, not state: it is
        # consumed first, as a pipeline does.
        drained = 0
        while len((batch := e.poll_records()).klines):
            drained += len(batch.klines)
            e.ack(batch.token)
        del batch
        table = rss_bytes()
        snap = e.snapshot()
        copied = len(snap.slots)
        assert e.ack_snapshot(snap.token)
        del snap
        both = rss_bytes()
        del frames  # counted in `before`: kept until here
        open_slots = len(names) * len(INTERVALS)
    return {
        "before": before,
        "table": table,
        "both": both,
        "slots": open_slots,
        "copied": copied,
        "drained": drained,
        "add_us": int(added * 1e6),
    }


def bench_memory(n_symbols: int) -> list[str]:
    cmd = [sys.executable, __file__, "--memory-probe", str(n_symbols)]
    got = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    slots = n_symbols * len(INTERVALS)
    mb = {k: f"{got[k] / 2**20:.1f}" for k in ("before", "table", "both")}
    table = (got["table"] - got["before"]) / slots
    both = (got["both"] - got["before"]) / slots
    verdict = "met" if both <= 256 else "NOT met"
    return [
        "| state held | RSS before MB | RSS after MB | bytes per symbol x interval |",
        "|---|---:|---:|---:|",
        f"| live table ({n_symbols:,} x {len(INTERVALS)} slots, 20 BTC-like trades each) "
        f"| {mb['before']} | {mb['table']} | {table:.0f} |",
        f"| + acknowledged snapshot ({got['copied']:,} slots copied) "
        f"| {mb['before']} | {mb['both']} | {both:.0f} |",
        "- Fresh interpreter; RSS from /proc/self/statm (after gc and malloc_trim) before "
        f"add_symbols, after pushing 20 trades (price ~60 000, ids past 3e9) to each symbol "
        f"({got['slots']:,} open klines) and sync(), and after snapshot() + ack_snapshot(), our "
        "Python copy of the snapshot deleted (the engine keeps the acknowledged copy, one "
        "compact blob per symbol, to restore a panicked symbol from). Includes the registry "
        "and names. "
        f"add_symbols of {n_symbols:,} took {got['add_us'] / 1e3:.0f} ms.",
        f"- Goal ≤ 256 B including both buffers: {verdict} ({both:.0f} B).",
    ]


# ---------------------------------------------------------------- main


def machine() -> str:
    return machine_info(("numpy", "orjson", "nautilus_trader"))


# ---------------------------------------------------------------- 5. the cost of spinning


def bench_spin(seconds: float = 2.0) -> list[str]:
    """Worker CPU with one push per millisecond, for spin windows of 0, 20 and 50 µs: what
    the low-latency wake-up costs at a trickle (an idle engine parks whatever the spin)."""
    out = ["| spin before parking | pushes/s | worker CPU, % of a core |", "|---:|---:|---:|"]
    for spin in (0, 20, 50):
        with kline_rs.Engine(
            ["1m"], partitions=1, spin_us=spin, clock=kline_rs.ManualClock(0), max_ahead_ms=None
        ) as e:
            e.add_symbol("A")
            cpu0, t0, i = worker_cpu(), time.perf_counter(), 0
            while time.perf_counter() - t0 < seconds:
                i += 1
                a = np.array([i], dtype=np.int64)
                e.push_trades(
                    "A",
                    kline_rs.trades(
                        agg_id=a,
                        price=a * E8,
                        qty=a,
                        first_id=a,
                        last_id=a,
                        time=a + MONDAY_JAN_1,
                        buyer_is_maker=np.zeros(1, np.bool_),
                    ),
                )
                time.sleep(0.001)
            wall = time.perf_counter() - t0
            cpu = worker_cpu() - cpu0
        out.append(f"| {spin} µs | {i / wall:.0f} | {100 * cpu / wall:.1f} |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="smaller data, for a smoke run")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--memory-probe", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--only", type=int, help="run only this section (1-5)")
    args = ap.parse_args()
    if args.memory_probe:
        print(json.dumps(memory_probe(args.memory_probe)))
        return
    q = args.quick
    sections: list[tuple[str, Callable[[], list[str]]]] = [
        ("1. numpy batch ingest, 16 intervals",
         lambda: bench_numpy(500_000 if q else 5_000_000, 50_000 if q else 200_000, args.repeat)),
        ("2. raw websocket JSON ingest, 16 intervals",
         lambda: bench_raw(100_000 if q else 1_000_000, 50_000 if q else 200_000, args.repeat)),
        ("3. rollover and sweeps",
         lambda: bench_rollover(2_000 if q else 10_000, 1_000, args.repeat)),
        ("4. memory per symbol x interval", lambda: bench_memory(4_000 if q else 20_000)),
        ("5. worker CPU at a trickle, by spin window", lambda: bench_spin()),
    ]  # fmt: skip
    print(f"command: {shlex.join(['python', *sys.argv])}")
    print(f"machine: {machine()}")
    print(
        f"best of {args.repeat}; speed-up = peer seconds / kline-rs seconds on the same data; "
        "CPU-s = process CPU time over all threads\n"
    )
    for n, (title, run) in enumerate(sections, 1):
        if args.only and n != args.only:
            continue
        print(f"### {title}\n")
        print("\n".join(run()), end="\n\n", flush=True)
    print("Latency (trade → kline visible): `cargo bench -p kline_core --bench latency`.")


if __name__ == "__main__":
    main()
