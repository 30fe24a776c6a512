"""Exact restart: `kline-rs run --db` killed with SIGKILL at random moments and restarted.

Two real subprocesses follow the same fake exchange (loopback, market in real time): one runs
uninterrupted, the other is killed with SIGKILL ``KILLS`` times (20 here, more with
``KLINE_RS_KILLS=200 make soak``) and restarted each time; it resumes from its stored
checkpoints over REST. At the end both databases hold the same klines, row for row (revision
and gap flag included), and they equal the klines of the exchange's own tape.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import oracle
from kline_rs.fake import FakeExchange, SimulatedMarket
from kline_rs.storage import read_klines

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT"]
INTERVALS = ["1s", "1m"]
KILLS = int(os.environ.get("KLINE_RS_KILLS", "20"))
#: The first kills may land before anything is stored (a fresh start); from this one on, every
#: restart resumes from stored checkpoints.
RESUMING_FROM = 2


async def spawn(fx: FakeExchange, db: Path, log: Path) -> asyncio.subprocess.Process:
    args = [
        "-m", "kline_rs.cli", "run", "--symbols", ",".join(SYMBOLS),
        "--intervals", ",".join(INTERVALS), "--ws-url", fx.ws_url, "--rest-url", fx.rest_url,
        "--db", str(db), "--lookback", "2m", "--flush-every", "0.2", "--grace", "2000",
        "--partitions", "1",
    ]  # fmt: skip
    with log.open("ab") as err:
        return await asyncio.create_subprocess_exec(
            sys.executable, *args, stdout=asyncio.subprocess.DEVNULL, stderr=err
        )


def checkpoints(db: Path) -> int:
    """Symbols with a stored checkpoint (a restart resumes them over REST)."""
    if not db.exists():
        return 0
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as c:
        try:
            return int(c.execute("SELECT count(*) FROM checkpoints").fetchone()[0])
        except sqlite3.Error:
            return 0


def stored_until(db: Path) -> int:
    """The earliest, over symbols, of the latest stored 1s close time (-1: none yet)."""
    if not db.exists():
        return -1
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as c:
        try:
            got = c.execute(
                "SELECT symbol, max(close_time) FROM klines WHERE interval = '1s' GROUP BY symbol"
            ).fetchall()
        except sqlite3.Error:
            return -1
    return min((t for _, t in got), default=-1) if len(got) == len(SYMBOLS) else -1


async def until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.2)


async def wait_stored(db: Path, cutoff: int, timeout: float) -> None:
    await until(lambda: stored_until(db) >= cutoff, timeout)


async def scenario(tmp: Path) -> tuple[SimulatedMarket, int, list[tuple[float, int]]]:
    now = int(time.time() * 1000)
    # The exchange has traded for 65 s (so a minute closes, whatever the wall clock says);
    # from now on its time is real time, as the subprocesses' clocks expect.
    market = SimulatedMarket(SYMBOLS, seed=21, start_ms=now - 65_000, trades_per_second=60.0)
    market.advance(now)
    rng = random.Random(2026)
    ref_db, killed_db = tmp / "uninterrupted.sqlite", tmp / "killed.sqlite"
    async with FakeExchange(market) as fx:
        ref = await spawn(fx, ref_db, tmp / "uninterrupted.log")
        killed = await spawn(fx, killed_db, tmp / "killed.log")
        moments = []
        try:
            for i in range(KILLS):
                if i == RESUMING_FROM:
                    # However slow the machine, the kills from here on find checkpoints stored
                    # (they are never removed): they exercise the resume, not a fresh start.
                    await until(lambda: checkpoints(killed_db) == len(SYMBOLS), 120.0)
                # Anywhere: while starting, resuming over REST, committing, or idle.
                wait = rng.uniform(0.1, 1.8)
                await asyncio.sleep(wait)
                assert killed.returncode is None, "the pipeline died by itself (see killed.log)"
                killed.send_signal(signal.SIGKILL)
                await killed.wait()
                moments.append((wait, checkpoints(killed_db)))
                if len(moments) % 5 == 0:
                    await asyncio.sleep(3.0)  # down longer than the grace: klines closed meanwhile
                killed = await spawn(fx, killed_db, tmp / "killed.log")
            cutoff = market.clock_ms() - 1_000
            await wait_stored(killed_db, cutoff, 60.0)
            await wait_stored(ref_db, cutoff, 60.0)
            assert ref.returncode is None, "the uninterrupted run died (see uninterrupted.log)"
        finally:
            for p in (ref, killed):
                if p.returncode is None:
                    p.send_signal(signal.SIGKILL)
                    await p.wait()
    return market, cutoff, moments


def rows(db: Path, symbol: str, interval: str, cutoff: int) -> list[tuple[object, ...]]:
    got = read_klines(db, symbol, interval)
    return [tuple(r.tolist()) for r in got[got["close_time"] < cutoff]]


def tape_klines(market: SimulatedMarket, symbol: str, interval: str) -> dict[int, dict[str, int]]:
    """The tape's klines from the independent reference (tests/oracle.py)."""
    return oracle.by_open_time(market.history(symbol), interval)


def test_sigkill_at_random_moments_then_restart_ends_with_the_uninterrupted_database(
    tmp_path: Path,
) -> None:
    market, cutoff, moments = asyncio.run(scenario(tmp_path))
    assert len(moments) == KILLS
    resumed = sum(1 for _, stored in moments if stored == len(SYMBOLS))
    assert resumed >= KILLS - RESUMING_FROM, f"restarts must resume from checkpoints: {moments}"
    ref_db, killed_db = tmp_path / "uninterrupted.sqlite", tmp_path / "killed.sqlite"
    compared = 0
    for symbol in SYMBOLS:
        for interval in INTERVALS:
            want = rows(ref_db, symbol, interval, cutoff)
            got = rows(killed_db, symbol, interval, cutoff)
            assert len(want) > 0, f"{symbol} {interval}: nothing stored"
            assert got == want, f"{symbol} {interval}: the killed run's rows differ"
            # …and both are the exchange's own klines: exact, final, none marked gap.
            tape = tape_klines(market, symbol, interval)
            for row in got:
                *fields, _inexact, _exact, revision, gap = row
                assert (revision, gap) == (0, False), f"{symbol} {interval} {row}"
                if int(fields[8]) > 0:  # traded periods (quiet ones are flat runs after)
                    mine = oracle.printed(dict(zip(oracle.FIELDS, fields, strict=True)))
                    assert mine == tape[int(fields[0])], f"{symbol} {interval} {row}"
            compared += len(got)
    assert compared > len(SYMBOLS) * 10
    trades_stored = 0
    for symbol in SYMBOLS:
        got = read_klines(killed_db, symbol, "1m")
        trades_stored += int(np.sum(got["trades"]))
    assert trades_stored > 0
