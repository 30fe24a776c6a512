"""Every row of the performance table (issue 14) in one run, each against its peer measured in
the same run, on the reference data (``../shared/bench``) wherever a row takes trades.

    python benchmarks/bench_goals.py [--quick] [--repeat N]

Rows and where they come from:

- replay → 1m+5m+1h, ``--threads 1``, 1m only, and ``cat``: ``bench_replay_reference.py`` run as
  its own process (it checks the output's sha256), its table read back;
- numpy ingest, 16 intervals, 1 partition: the reference trades (``npy/``, 10 M, 200 symbols)
  pushed per symbol; peer: the plain-Python exact loop on the first trades of the same stream;
- raw JSON ingest: the first reference trades as combined-stream aggTrade frames; peer:
  ``orjson.loads`` of the same frames, nothing else;
- live pipeline CPU per frame: ``bench_live.py`` (the fake exchange, loopback) as its own process;
- rollover of 10 k symbols x 16 intervals, 1 partition, at a minute boundary (over the baseline);
- SQLite / PostgreSQL sink: the sink's ``write`` against a bare ``executemany`` of the same rows
  (``bench_storage.py``'s peers);
- bytes per symbol x interval with the acknowledged copy (``bench_engine.py``'s probe).

Prints one markdown table (ready for BENCHMARKS.md) with each goal and whether it is met.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from bench_engine import (
    INTERVALS,
    MINUTE,
    MONDAY_JAN_1,
    Trades,
    best,
    best_sweeps,
    frames_of,
    numpy_ingest,
    one_trade_frames,
    orjson_only,
    python_loop,
    raw_ingest,
    sweep_after,
    symbol_names,
    timed,
)
from bench_replay_reference import reference_data
from benchinfo import machine

HERE = Path(__file__).resolve().parent


@dataclass
class Goal:
    """One row of the table: our figure, the peer's, the ratio and the goal."""

    work: str
    ours: str
    peer: str = ""
    ratio: str = ""
    goal: str = ""
    met: bool | None = None

    def line(self) -> str:
        verdict = "" if self.met is None else ("met" if self.met else "**not met**")
        return (
            f"| {self.work} | {self.ours} | {self.peer} | {self.ratio} | {self.goal} | {verdict} |"
        )


def run_script(args: list[str]) -> str:
    """A benchmark script as its own process; its output echoed and returned."""
    cmd = [sys.executable, str(HERE / args[0]), *args[1:]]
    print(f"$ {shlex.join(['python', 'benchmarks/' + args[0], *args[1:]])}", flush=True)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    print(out, flush=True)
    return out


def cell(out: str, row: str, column: int) -> float:
    """A number from the markdown table row whose first cell starts with ``row`` (column 1 =
    the first value)."""
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0].startswith(row):
            return float(cells[column].replace(",", "").rstrip("x"))
    raise ValueError(f"no row {row!r} in the output")


# ---------------------------------------------------------------- the reference trades


def reference_trades(limit: int | None = None) -> dict[str, Trades]:
    """The reference stream (``npy/``, time order), the first ``limit`` trades, per symbol,
    prices and quantities as exact integers at 1e-8 (each symbol's tick and step from
    ``symbols.json``: the floats are the generator's values rounded to those)."""
    data = reference_data().parent
    names = ("sym", "agg_trade_id", "price", "quantity", "first_trade_id", "last_trade_id",
             "transact_time", "is_buyer_maker")  # fmt: skip
    cols = {name: np.load(data / "npy" / f"{name}.npy", mmap_mode="r")[:limit] for name in names}
    order = np.argsort(cols["sym"], kind="stable")  # per symbol, time order kept
    sym = np.asarray(cols["sym"])[order]
    cut = np.searchsorted(sym, np.arange(sym.max() + 2))
    out: dict[str, Trades] = {}
    for s in json.loads((data / "symbols.json").read_text()):
        rows = order[cut[s["id"]] : cut[s["id"] + 1]]
        if len(rows) == 0:
            continue
        price = np.rint(cols["price"][rows] * 10 ** s["price_prec"]).astype(np.int64)
        qty = np.rint(cols["quantity"][rows] * 10 ** s["qty_prec"]).astype(np.int64)
        out[s["symbol"]] = Trades(
            agg_id=np.asarray(cols["agg_trade_id"][rows], dtype=np.int64),
            price=price * 10 ** (8 - s["price_prec"]),
            qty=qty * 10 ** (8 - s["qty_prec"]),
            first_id=np.asarray(cols["first_trade_id"][rows], dtype=np.int64),
            last_id=np.asarray(cols["last_trade_id"][rows], dtype=np.int64),
            time=np.asarray(cols["transact_time"][rows], dtype=np.int64),
            maker=np.asarray(cols["is_buyer_maker"][rows], dtype=np.bool_),
        )
    return out


def trades_in(data: dict[str, Trades]) -> int:
    return sum(len(t) for t in data.values())


# ---------------------------------------------------------------- rows


def replay_rows(repeat: int) -> list[Goal]:
    out = run_script(["bench_replay_reference.py", "--repeat", str(repeat)])
    ours = cell(out, "kline-rs replay → 1m+5m+1h", 1)
    peer = cell(out, "polars peer (../shared/bench/polars_replay.py)", 1)
    mb = cell(out, "kline-rs replay → 1m+5m+1h", 3)
    peer_mb = cell(out, "polars peer (../shared/bench/polars_replay.py)", 3)
    one = cell(out, "kline-rs replay, --threads 1", 1)
    only_1m = cell(out, "kline-rs replay → 1m only", 1)
    cat = cell(out, "cat > /dev/null (I/O floor)", 1)
    return [
        Goal("replay → 1m+5m+1h (reference CSVs)", f"{ours:.2f} s, {mb:.0f} MB",
             f"polars {peer:.2f} s, {peer_mb:.0f} MB", f"{peer / ours:.1f}x", "≥ 10x",
             peer / ours >= 10),
        Goal("replay, `--threads 1` / 1m only", f"{one:.2f} s / {only_1m:.2f} s",
             f"`cat` {cat:.2f} s"),
        Goal("replay peak memory", f"{mb:.0f} MB", "", "", "≤ 200 MB", mb <= 200),
    ]  # fmt: skip


def numpy_rows(data: dict[str, Trades], peer: dict[str, Trades], repeat: int) -> list[Goal]:
    n, peer_n = trades_in(data), trades_in(peer)
    ours = best([numpy_ingest(data, 100_000) for _ in range(repeat)])
    loop = best([timed(lambda: python_loop(peer))[0] for _ in range(repeat)])
    rate, loop_rate = n / ours.wall / 1e6, peer_n / loop.wall / 1e6
    return [
        Goal(f"numpy ingest, {len(INTERVALS)} intervals, 1 partition ({n / 1e6:.0f} M trades)",
             f"{rate:.2f} M/s", f"Python loop, exact ints: {loop_rate:.3f} M/s",
             f"{rate / loop_rate:.0f}x", "≥ 15 M/s/core, ≥ 100x the loop",
             rate >= 15 and rate / loop_rate >= 100),
    ]  # fmt: skip


def raw_rows(frames: list[bytes], symbols: list[str], repeat: int) -> list[Goal]:
    n = len(frames)
    ours = best([raw_ingest(frames, symbols, 10_000) for _ in range(repeat)])
    loads = best([timed(lambda: orjson_only(frames))[0] for _ in range(repeat)])
    rate, peer = n / ours.wall / 1e6, n / loads.wall / 1e6
    return [
        Goal(f"raw JSON ingest, 1 partition ({n / 1e6:.1f} M frames)", f"{rate:.2f} M msg/s",
             f"`orjson.loads` alone: {peer:.2f} M/s", f"{rate / peer:.1f}x", "≥ 4x orjson-only",
             rate / peer >= 4),
    ]  # fmt: skip


def live_rows(seconds: float) -> list[Goal]:
    out = run_script(["bench_live.py", "--seconds", f"{seconds:g}", "--rate", "20000"])
    us = cell(out, "pipeline process CPU per frame, µs", 1)
    fps = cell(out, "frames received per second", 1)
    return [
        Goal("live pipeline, CPU per frame (20 k frames/s offered)",
             f"{us:.1f} µs ({fps:,.0f} frames/s)", "", "", "≤ 2 µs", us <= 2),
    ]  # fmt: skip


def rollover_rows(n_symbols: int, repeat: int) -> list[Goal]:
    start = MONDAY_JAN_1 + MINUTE
    names = symbol_names(n_symbols)
    frames = one_trade_frames(names, start, MINUTE)
    runs = [sweep_after(names, frames, start, [start + MINUTE + 250]) for _ in range(repeat)]
    baseline, sweeps = best_sweeps(runs)
    ms = (sweeps[0].seconds - min(baseline)) * 1e3
    return [
        Goal(f"rollover {n_symbols:,} symbols x {len(INTERVALS)}, 1 partition, minute boundary",
             f"{ms:.2f} ms over the baseline", "", "", "≤ 1 ms on one core", ms <= 1),
    ]  # fmt: skip


def sink_rows(n_symbols: int, minutes: int, repeat: int) -> list[Goal]:
    from bench_storage import batches_of, engine_records, sqlite_peer, sqlite_sink

    records, snapshot = engine_records(n_symbols, minutes, seed=1)
    batches = batches_of(records, 5_000)
    n = len(records)
    out: list[Goal] = []
    with tempfile.TemporaryDirectory(prefix="kline-rs-goals-") as tmp:
        paths = iter(Path(tmp) / f"{k}.sqlite" for k in range(10**6))
        sink = min(sqlite_sink(next(paths), batches, snapshot) for _ in range(repeat))
        peer = min(sqlite_peer(next(paths), batches, snapshot).total for _ in range(repeat))
    out.append(sink_goal("SQLite", n, sink, peer))
    pg = pg_times(batches, snapshot, repeat)
    if isinstance(pg, str):
        out.append(Goal("PostgreSQL sink", f"not run: {pg}"))
    else:
        out.append(sink_goal("PostgreSQL", n, *pg))
    return out


def sink_goal(store: str, n: int, sink: float, peer: float) -> Goal:
    return Goal(f"{store} sink, {n:,} records in batches of 5 000",
                f"{n / sink:,.0f} records/s", f"bare `executemany`: {n / peer:,.0f}/s",
                f"{peer / sink:.2f}x", "≥ 3x bare executemany", peer / sink >= 3)  # fmt: skip


def pg_times(batches: list[Any], snapshot: Any, repeat: int) -> tuple[float, float] | str:
    """(sink, peer) seconds on a throwaway PostgreSQL server, or why none could start."""
    from bench_storage import pg_peer, pg_sink

    try:
        from kline_rs.testing.postgres import PostgresServer, PostgresUnavailable
    except ImportError as e:
        return str(e)
    try:
        server = PostgresServer.throwaway(settings={})
    except PostgresUnavailable as e:
        return str(e)
    with server:
        sink = min(pg_sink(server.create_database("g"), batches, snapshot) for _ in range(repeat))
        peer = min(
            pg_peer(server.create_database("g"), batches, snapshot).total for _ in range(repeat)
        )
    return sink, peer


def memory_rows(n_symbols: int) -> list[Goal]:
    cmd = [sys.executable, str(HERE / "bench_engine.py"), "--memory-probe", str(n_symbols)]
    got = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    slots = n_symbols * len(INTERVALS)
    live = (got["table"] - got["before"]) / slots
    both = (got["both"] - got["before"]) / slots
    return [
        Goal(f"memory per symbol x interval ({n_symbols:,} x {len(INTERVALS)})",
             f"{live:.0f} B live, {both:.0f} B with the acknowledged copy", "", "",
             "≤ 256 B including both buffers", both <= 256),
    ]  # fmt: skip


# ---------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller data and runs, for a smoke run")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    q, repeat = args.quick, args.repeat
    data = reference_trades(1_000_000 if q else None)
    merged_head = reference_trades(200_000 if q else 2_000_000)
    peer = reference_trades(50_000 if q else 300_000)
    frames = frames_of(merged_head)
    steps: list[tuple[str, Callable[[], list[Goal]]]] = [
        ("replay", lambda: replay_rows(1 if q else repeat)),
        ("numpy ingest", lambda: numpy_rows(data, peer, repeat)),
        ("raw JSON ingest", lambda: raw_rows(frames, list(merged_head), repeat)),
        ("live pipeline", lambda: live_rows(3 if q else 8)),
        ("rollover", lambda: rollover_rows(10_000, repeat)),
        ("sinks", lambda: sink_rows(20 if q else 100, 500 if q else 2_000, repeat)),
        ("memory", lambda: memory_rows(1_000 if q else 10_000)),
    ]
    rows: list[Goal] = []
    for name, step in steps:
        print(f"## {name}", flush=True)
        rows += step()
    print(f"\ncommand: {shlex.join(['python', *sys.argv])}")
    print(f"machine: {machine(['polars', 'numpy', 'orjson', 'psycopg'])}\n")
    print("| work | kline-rs | peer | ratio | goal | |")
    print("|---|---|---|---:|---|---|")
    for row in rows:
        print(row.line())


if __name__ == "__main__":
    main()
