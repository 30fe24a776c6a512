"""Bad input never corrupts storage, and the demo and the storage commands work end to end."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import kline_rs
import numpy as np
import oracle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kline_rs.engine import Engine
from kline_rs.live.persist import Persister
from kline_rs.storage import SqliteSink, read_klines

T0 = 1_700_000_000_000 - 1_700_000_000_000 % 60_000 + 17_000  # joins 17 s into a minute


def tape(n: int = 400) -> list[dict[str, object]]:
    out = []
    t = T0
    for i in range(n):
        t += 150 + (i * 7919) % 900
        out.append(
            {"a": 1000 + i, "p": 100 + (i * 37) % 50, "q": 1 + i % 7, "T": t, "m": i % 3 == 0}
        )
    return out


def frame(tr: dict[str, object], symbol: str = "BTCUSDT") -> bytes:
    data = {
        "e": "aggTrade", "E": tr["T"], "s": symbol, "a": tr["a"], "p": f"{tr['p']}.25",
        "q": f"{tr['q']}.5", "f": tr["a"], "l": tr["a"], "T": tr["T"], "m": tr["m"], "M": True,
    }  # fmt: skip
    return json.dumps({"stream": f"{symbol.lower()}@aggTrade", "data": data}).encode()


def junk_frames() -> st.SearchStrategy[bytes]:
    good = json.loads(frame(tape(1)[0]))
    field = st.sampled_from(["a", "p", "q", "T", "s", "m", "f", "l"])
    # Values no real trade has (a plausible id, time or price would be another trade, not bad
    # input): out of range, wrong type, not a decimal, more than 8 decimals.
    bad_value = st.one_of(
        st.none(), st.integers(2**63, 2**70), st.integers(-(2**70), -(2**63) - 1),
        st.text(alphabet="xyz{}[] ,:", max_size=10), st.lists(st.integers(), max_size=3),
        st.sampled_from(["-1.0", "1e308", "NaN", "99999999999999999999.9", "", "0.000000001"]),
    )  # fmt: skip

    def mutate(pair: tuple[str, object]) -> bytes:
        name, value = pair
        d = json.loads(json.dumps(good))
        d["data"][name] = value
        return json.dumps(d).encode()

    def drop(name: str) -> bytes:
        d = json.loads(json.dumps(good))
        del d["data"][name]
        return json.dumps(d).encode()

    return st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200).map(str.encode),
        st.tuples(field, bad_value).map(mutate),
        field.map(drop),
        st.just(b"{" * 5000),
        st.just(frame(tape(1)[0], symbol="NOSUCHUSDT")),
    )


def stored(frames: list[bytes], db: Path) -> tuple[np.ndarray, dict[str, object]]:
    """Pushes ``frames`` into an engine with a persister on ``db``; returns the 1m klines."""

    async def go() -> dict[str, object]:
        clock = kline_rs.ManualClock(T0)
        with Engine(
            ["1m"], partitions=1, clock=clock, max_ahead_ms=None, mark_partial_start=True
        ) as e:
            e.add_symbol("BTCUSDT")
            sink = SqliteSink(db)
            await sink.open()
            persister = Persister(e, sink)
            for f in frames:
                e.push_raw(f)
            clock.set(T0 + 3_600_000)
            e.sync()
            assert await persister.flush()
            await sink.close()
            return e.metrics()

    metrics = asyncio.run(go())
    return read_klines(db, "BTCUSDT", "1m"), metrics


@settings(
    max_examples=int(os.environ.get("KLINE_RS_FUZZ", "20")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(junk=st.lists(junk_frames(), min_size=1, max_size=40), data=st.data())
def test_fuzzed_frames_are_counted_and_skipped_and_the_store_holds_only_exact_klines(
    tmp_path_factory: object, junk: list[bytes], data: st.DataObject
) -> None:
    trades = tape()
    frames = [frame(t) for t in trades]
    for j in junk:  # anywhere in the stream
        frames.insert(data.draw(st.integers(0, len(frames))), j)
    db = Path(tmp_path_factory.mktemp("fuzz")) / "k.sqlite"  # type: ignore[attr-defined]
    got, metrics = stored(frames, db)

    # The truth from the independent reference (tests/oracle.py), not from kline_rs.
    want = oracle.klines(
        [{**t, "p": f"{t['p']}.25", "q": f"{t['q']}.5", "f": t["a"], "l": t["a"]} for t in trades],
        "1m",
    )
    assert len(got) >= len(want)
    for row, k in zip(got, want, strict=False):
        assert oracle.printed(row) == k.ints(), k.open_time
    # The first minute was joined 17 s in: stored, but marked gap (partial), never as exact.
    assert got["gap"].tolist() == [True] + [False] * (len(got) - 1)
    assert set(got["revision"].tolist()) == {0}
    parts = metrics["partitions"]  # type: ignore[index]
    skipped = (
        metrics["malformed"] + metrics["unknown_symbol"] + metrics["other_events"]  # type: ignore[operator]
        + sum(p["invalid"] + p["duplicates"] + p["late"] for p in parts)
    )  # fmt: skip
    assert skipped >= 1


def test_demo_stores_into_sqlite_and_the_show_and_export_commands_read_it(tmp_path: Path) -> None:
    db = tmp_path / "demo.sqlite"
    kline_rs_cmd = [sys.executable, "-m", "kline_rs.cli"]
    out = subprocess.run(
        [*kline_rs_cmd, "demo", "--duration", "8", "--speed", "60", "--db", str(db)],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert "# stored in" in out, out
    rows = {m[0]: int(m[1]) for m in re.findall(r"^  (1m|5m) +(\d+) rows", out, re.M)}
    assert rows.get("1m", 0) > 0, out
    top = re.search(r"^# (\w+) 1m: the latest (\d+) klines in", out, re.M)
    assert top is not None, out
    symbol, n = top[1], int(top[2])
    stored = read_klines(db, symbol, "1m")
    assert len(stored) >= n > 0
    shown = re.findall(r"^  (\S+Z) O ", out.split(top[0])[1], re.M)
    shown_times = [kline_rs.parse_time(t) for t in shown]
    assert shown_times == stored["open_time"][-n:].tolist()
    n = len(stored)

    shown = subprocess.run(
        [*kline_rs_cmd, "show", str(db), symbol, "1m", "--last", "3"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert len(re.findall(r"^  \d{4}-\d\d-\d\dT\S+Z O ", shown, re.M)) == min(3, n)

    import pyarrow.parquet as pq

    parquet = tmp_path / "k.parquet"
    subprocess.run(
        [*kline_rs_cmd, "export", str(db), str(parquet), "--symbols", symbol, "--intervals", "1m"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    table = pq.read_table(parquet)
    assert table.num_rows == n
    assert set(table.column("symbol").to_pylist()) == {symbol}


def test_a_full_outbox_hides_nothing_from_a_write_and_its_checkpoint(tmp_path: Path) -> None:
    """With the outbox full, closed records wait behind it in the overflow, where a poll finds
    them: the snapshot's checkpoint is stored with every kline it includes, never ahead."""
    db = tmp_path / "k.sqlite"

    async def go() -> list[tuple[int, dict[str, int]]]:
        clock = kline_rs.ManualClock(T0)
        with Engine(["1s"], partitions=1, clock=clock, max_ahead_ms=None, outbox_capacity=1) as e:
            e.add_symbol("BTCUSDT")
            n = 3_000  # one trade a second: 2 999 klines close, the outbox holds 1 024
            ids = np.arange(1, n + 1, dtype=np.int64)
            e.push_trades(
                "BTCUSDT",
                kline_rs.trades(
                    agg_id=ids,
                    price=ids * 10**8,
                    qty=ids,
                    first_id=ids,
                    last_id=ids,
                    time=T0 + ids * 1000,
                    buyer_is_maker=ids % 2 == 0,
                ),
            )
            e.sync()
            assert e.metrics()["partitions"][0]["spilled"] > 0, "records wait behind the outbox"
            sink = SqliteSink(db)
            await sink.open()
            persister = Persister(e, sink)
            seen = []
            for _ in range(3):
                assert await persister.flush()
                stored = len(read_klines(db, "BTCUSDT", "1s"))
                seen.append((stored, (await sink.open()).checkpoints))
                e.sync()
            await sink.close()
            return seen

    seen = asyncio.run(go())
    for stored, checkpoints in seen:
        assert not checkpoints or stored == 2_999, (stored, checkpoints)
    assert seen[-1] == (2_999, {"BTCUSDT": 3_000})
