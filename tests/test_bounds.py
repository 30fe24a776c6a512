"""One bad trade must not take anything down: implausible times refused and counted, flat runs
never expanded without bound (engine polls, the persister, readers), settings and names
checked with clear errors (issue 10)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import kline_rs
import numpy as np
import pytest
from kline_rs.engine import Engine
from kline_rs.live.persist import Persister
from kline_rs.storage import SqliteSink, StorageError, read_klines

T0 = 1_577_836_800_000  # 2020-01-01 00:00 UTC
DAY = 86_400_000
E8 = 10**8


def frame(a: int, t: int, symbol: str = "BTCUSDT") -> bytes:
    data = {"e": "aggTrade", "E": t, "s": symbol, "a": a, "p": "100.5", "q": "2.25",
            "f": a, "l": a, "T": t, "m": False}  # fmt: skip
    return json.dumps({"stream": f"{symbol.lower()}@aggTrade", "data": data}).encode()


def totals(e: Engine) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in e.metrics()["partitions"]:
        for k, v in p.items():
            out[k] = out.get(k, 0) + v
    return out


def push(e: Engine, symbol: str, ids: list[int], times: list[int]) -> None:
    a = np.array(ids, dtype=np.int64)
    t = np.array(times, dtype=np.int64)
    e.push_trades(
        symbol,
        kline_rs.trades(
            agg_id=a,
            price=a * 0 + 100 * E8,
            qty=a * 0 + E8,
            first_id=a,
            last_id=a,
            time=t,
            buyer_is_maker=np.zeros(len(a), dtype=bool),
        ),
    )


def test_a_frame_from_the_year_3000_or_in_microseconds_is_refused_and_counted() -> None:
    now = int(time.time() * 1000)
    with Engine(["1s", "1m"], partitions=1) as e:  # the system clock
        e.add_symbol("BTCUSDT")
        frames = [
            frame(1, now - 1_000),
            frame(2, 32_503_680_000_000),  # 3000-01-01
            frame(3, now * 1_000),  # µs in an ms engine
            frame(4, now),
        ]
        assert e.push_raw(frames).trades == 4
        e.sync()
        t = totals(e)
        assert (t["trades"], t["implausible_ahead"], t["implausible_unit"]) == (2, 1, 1)
        assert t["late"] == 0, "the bad frame did not poison the symbol"
        assert e.last_id("BTCUSDT") == 4


def test_a_poll_is_bounded_whatever_the_flat_run() -> None:
    """A 1s engine on the system clock given one real trade from 2020: the clock closes ~2e8
    quiet seconds as one run, and every poll hands out at most what it was asked for."""
    with Engine(["1s"], partitions=1, grace=0) as e:
        e.add_symbol("BTCUSDT")
        push(e, "BTCUSDT", [1], [T0])
        time.sleep(1.2)  # the sweep passes at least one second boundary
        e.sync()
        batch = e.poll_klines(1_000)
        assert 0 < len(batch.klines) <= 1_000
        assert batch.klines["open_time"][0] == T0
        assert np.all(np.diff(batch.klines["open_time"]) == 1_000)
        e.ack(batch.token)
        nxt = e.poll_klines(1_000)
        assert nxt.klines["open_time"][0] == T0 + 1_000 * len(batch.klines), "the rest, in order"
        records = e.poll_records(10)  # kept whole, the rest of the run is one record
        assert records.klines["flat"].any()


def test_closed_and_ack_lose_nothing_when_a_run_is_cut() -> None:
    clock = kline_rs.ManualClock(T0)
    with Engine(["1m"], partitions=1, clock=clock) as e:
        e.add_symbol("ETHUSDT")
        push(e, "ETHUSDT", [1, 2], [T0, T0 + 3 * 60_000])
        clock.set(T0 + 300 * 60_000)  # 296 quiet minutes close as one run
        push(e, "ETHUSDT", [3], [T0 + 300 * 60_000 + 5])
        e.sync()
        got = []
        while True:
            b = e.poll_klines(7)
            if len(b.klines) == 0:
                break
            assert len(b.klines) <= 7
            got.extend(int(t) for t in b.klines["open_time"])
            e.ack(b.token)
        assert got == [T0 + i * 60_000 for i in range(300)]


def test_reads_filter_before_they_expand(tmp_path: Path) -> None:
    """A one-minute read after a 30-day quiet 1s stretch expands that minute, not the month."""
    db = tmp_path / "k.sqlite"
    clock = kline_rs.ManualClock(T0)

    async def store() -> None:
        with Engine(["1s"], partitions=1, clock=clock) as e:
            e.add_symbol("BTCUSDT")
            push(e, "BTCUSDT", [1], [T0])
            clock.set(T0 + 30 * DAY + 500)
            push(e, "BTCUSDT", [2], [T0 + 30 * DAY + 1])
            e.sync()
            sink = SqliteSink(db)
            await sink.open()
            assert await Persister(e, sink).flush()
            await sink.close()

    asyncio.run(store())
    start = T0 + 10 * DAY + 17_000
    minute = read_klines(db, "BTCUSDT", "1s", start, start + 60_000)
    assert list(minute["open_time"]) == list(range(start, start + 60_000, 1_000))
    assert set(minute["trades"].tolist()) == {0}
    last = read_klines(db, "BTCUSDT", "1s", last=3)
    assert list(last["open_time"]) == [T0 + 30 * DAY - k * 1_000 for k in (3, 2, 1)]
    assert len(read_klines(db, "BTCUSDT", "1s")) == 30 * 86_400  # the whole month, at once
    with pytest.raises(StorageError, match="narrower"):
        read_only_bound(db)
    shown = subprocess.run(
        [sys.executable, "-m", "kline_rs.cli", "show", str(db), "BTCUSDT", "1s", "--last", "2"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert shown.count(" O 100.00000000 H 100.00000000") == 2, shown


def read_only_bound(db: Path) -> None:
    """A read over the bound (the bound lowered for the test: 2.6 M klines are fine)."""
    from kline_rs.storage import read as reader

    saved = reader.MAX_READ_KLINES
    reader.MAX_READ_KLINES = 1_000_000
    try:
        read_klines(db, "BTCUSDT", "1s")
    finally:
        reader.MAX_READ_KLINES = saved


def test_engine_settings_and_names_are_checked() -> None:
    for kwargs, words in [
        ({"ring_capacity": 2**62}, "ring_capacity"),
        ({"ring_capacity": 10**11}, "ring_capacity"),
        ({"outbox_capacity": 0}, "outbox_capacity"),
        ({"max_ahead_ms": 0}, "max_ahead_ms"),
    ]:
        with pytest.raises(kline_rs.EngineError, match=words):
            Engine(["1m"], **kwargs)  # type: ignore[arg-type]
    with pytest.raises(kline_rs.EngineError, match="given twice"):
        Engine(["1m", "5m", "1m"])
    with Engine(["1m"], partitions=1) as e:
        e.add_symbols(["ethusdt"])
        assert e.symbols() == ["ETHUSDT"]
        now = int(time.time() * 1000)
        assert e.push_raw([frame(1, now, "ETHUSDT")]).unknown_symbol == 0
        for bad in ["../../X", "", "A\0B", 'BTC","x', "X" * 1_000_000]:
            with pytest.raises(kline_rs.EngineError) as err:
                e.add_symbol(bad)
            assert len(str(err.value)) < 200
    with pytest.raises(kline_rs.EngineError, match="shut down"):
        e.push_raw([frame(2, now, "ETHUSDT")])


def test_replay_max_jump_from_the_command_line(tmp_path: Path) -> None:
    """A time 20 days ahead stops the replay by default; --max-jump 30d lets it through, and
    the late trades it then causes are warned about, not passed over in silence."""
    rows = [
        f"{1000 + i},100.5,1.25,{1000 + i},{1000 + i},{T0 + i * 700},True,True" for i in range(600)
    ]
    rows[300] = rows[300].replace(f",{T0 + 300 * 700},", f",{T0 + 20 * DAY},")
    src = tmp_path / "BTCUSDT-aggTrades-2020-01-01.csv"
    src.write_text("\n".join(rows) + "\n")

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "kline_rs.cli", "replay", str(src), "--out",
               str(tmp_path / "out"), "--no-progress", *extra]  # fmt: skip
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)

    refused = run()
    assert refused.returncode == 1 and "aggTrade 1300" in refused.stderr
    assert "--max-jump" in refused.stderr
    assert run("--skip-bad").returncode == 0
    let_through = run("--max-jump", "30d")
    assert let_through.returncode == 0
    assert "299 trades were late" in let_through.stdout + let_through.stderr
