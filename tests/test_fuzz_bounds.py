"""Fuzz: implausible times, ids and names in among real trades, through ``push_raw`` (into a
real SQLite store) and through replay. Nothing implausible is applied, nothing valid is lost,
and memory stays bounded (issue 10). Examples: ``KLINE_RS_FUZZ`` (default 15)."""

from __future__ import annotations

import asyncio
import json
import os
import resource
from pathlib import Path

import kline_rs
import oracle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kline_rs.engine import Engine
from kline_rs.live.persist import Persister
from kline_rs.storage import SqliteSink, read_klines

T0 = 1_700_000_040_000  # a minute boundary, 2023-11-14
N = 600
FUZZ = settings(
    max_examples=int(os.environ.get("KLINE_RS_FUZZ", "15")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def tape() -> list[dict[str, int | bool]]:
    out, t = [], T0
    for i in range(N):
        t += 150 + (i * 7919) % 900
        out.append(
            {"a": 1000 + i, "p": 100 + (i * 37) % 50, "q": 1 + i % 7, "T": t, "m": i % 3 == 0}
        )
    return out


def frame(tr: dict[str, int | bool], symbol: str = "BTCUSDT") -> bytes:
    data = {"e": "aggTrade", "E": tr["T"], "s": symbol, "a": tr["a"], "p": f"{tr['p']}.5",
            "q": f"{tr['q']}.25", "f": tr["a"], "l": tr["a"], "T": tr["T"],
            "m": tr["m"]}  # fmt: skip
    return json.dumps({"stream": "btcusdt@aggTrade", "data": data}).encode()


#: Times no real trade has, next to a real one: far future, µs, days ahead, grid-breaking.
BAD_TIMES = (
    st.sampled_from([32_503_680_000_000, 2**62, 2**63 - 1, -(2**63), -1, 10**14 + 5])
    | st.integers(T0 * 1_000, T0 * 1_000 + 10**12)
    | st.integers(T0 + 3 * 86_400_000, 10**14 - 1)
)

#: What a replay (no clock) can tell: the unit's range, and jumps past its week bound.
BAD_REPLAY_TIMES = (
    st.sampled_from([32_503_680_000_000, 2**62, 2**63 - 1, -(2**63), -1, 10**14 + 5])
    | st.integers(T0 * 1_000, T0 * 1_000 + 10**12)
    | st.integers(T0 + 8 * 86_400_000, 10**14 - 1)
)

BAD_NAMES = st.sampled_from(["../../X", "", "BTC\u0000USDT", 'BTC","x', "X" * 100_000, "ÄBC"])


def junk(real: list[dict[str, int | bool]]) -> st.SearchStrategy[bytes]:
    """A real trade's frame with an implausible time (its id free or taken), or a bad name."""
    pick = st.sampled_from(real)
    bad_time = st.tuples(pick, BAD_TIMES, st.booleans()).map(
        lambda x: frame({**x[0], "T": x[1], "a": x[0]["a"] if x[2] else 10**12 + x[0]["a"]})
    )
    bad_name = st.tuples(pick, BAD_NAMES).map(lambda x: frame(x[0], symbol=x[1]))
    # A plausible time with an id no market reaches in the time (a corrupt `a`).
    bad_id = st.tuples(pick, st.integers(10**11, 2**62)).map(lambda x: frame({**x[0], "a": x[1]}))
    return bad_time | bad_name | bad_id


def truth(trades: list[dict[str, int | bool]]) -> list[oracle.Kline]:
    """The clean tape's 1m klines from the independent reference (tests/oracle.py)."""
    text = [
        {**t, "p": f"{t['p']}.5", "q": f"{t['q']}.25", "f": t["a"], "l": t["a"]} for t in trades
    ]
    return oracle.klines(text, "1m")


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@FUZZ
@given(data=st.data())
def test_push_raw_refuses_implausible_times_and_names_and_stores_the_rest_exactly(
    tmp_path_factory: object, data: st.DataObject
) -> None:
    trades = tape()
    frames = [frame(t) for t in trades]
    bad = data.draw(st.lists(junk(trades), min_size=1, max_size=30))
    # Anywhere after the symbol's first trade (the reference a far-ahead id is measured
    # from); a bad copy may come before or after its real trade.
    for b in bad:
        frames.insert(data.draw(st.integers(1, len(frames))), b)
    db = Path(tmp_path_factory.mktemp("fuzz")) / "k.sqlite"  # type: ignore[attr-defined]
    before = rss_mb()

    async def go() -> dict[str, object]:
        clock = kline_rs.ManualClock(T0)
        # A 1s interval too: a single applied bad time would make ~1e9 flat seconds.
        with Engine(["1s", "1m"], partitions=1, clock=clock, max_jump_ms=86_400_000) as e:
            e.add_symbol("BTCUSDT")
            sink = SqliteSink(db)
            await sink.open()
            persister = Persister(e, sink)
            for i, f in enumerate(frames):
                if i % 50 == 0:  # the clock follows the tape, as live
                    clock.set(max(int(t["T"]) for t in trades[: max(1, i - len(bad))]))
                e.push_raw(f)
            clock.set(int(trades[-1]["T"]) + 120_000)
            e.sync()
            assert await persister.flush()
            await sink.close()
            return e.metrics()

    metrics = asyncio.run(go())
    got = read_klines(db, "BTCUSDT", "1m")
    want = truth(trades)
    for row, k in zip(got, want, strict=False):
        assert oracle.printed(row) == k.ints(), k.open_time
    assert len(got) >= len(want)
    assert set(got["trades"][len(want) :].tolist()) <= {0}, "after the tape: quiet minutes only"
    parts = metrics["partitions"]  # type: ignore[index]
    assert sum(p["trades"] for p in parts) == N, "every valid trade applied, once"
    assert sum(p["late"] for p in parts) == 0, "nothing poisoned"
    assert rss_mb() - before < 300, "memory bounded"


@FUZZ
@given(data=st.data())
def test_replay_refuses_implausible_times_and_writes_the_clean_klines(
    tmp_path_factory: object, data: st.DataObject
) -> None:
    trades = tape()
    rows = [f"{t['a']},{t['p']}.5,{t['q']}.25,{t['a']},{t['a']},{t['T']},{t['m']},True"
            for t in trades]  # fmt: skip
    # A bad time on a row of its own id: the real row is not there (a corrupted dump). Rows
    # apart: two corrupt rows in a row agreeing with each other would pass for a halt.
    hit = [
        2 * i + 1 for i in data.draw(st.sets(st.integers(0, N // 2 - 1), min_size=1, max_size=5))
    ]
    for i in hit:
        rows[i] = rows[i].replace(f",{trades[i]['T']},", f",{data.draw(BAD_REPLAY_TIMES)},")
    for k in range(data.draw(st.integers(0, 3))):  # raw-trade ids that would wrap the count
        row = f"{10**9 + k},1.0,1.0,0,{2**63 - 1},{T0 + 1},True,True"
        rows.insert(data.draw(st.integers(1, len(rows))), row)
    tmp = Path(tmp_path_factory.mktemp("replay"))  # type: ignore[attr-defined]
    src = tmp / "BTCUSDT-aggTrades-2023-11-14.csv"
    src.write_text("\n".join(rows) + "\n")
    before = rss_mb()
    summary = kline_rs.replay([src], tmp / "out", ["1s", "1m"], skip_bad=True)
    kept = [t for i, t in enumerate(trades) if i not in hit]
    lines = (tmp / "out" / "BTCUSDT-1m.csv").read_text().splitlines()
    assert lines == [k.csv() for k in truth(kept)], "Binance's lines, byte for byte"
    assert summary.trades == len(kept)
    assert summary.late == 0
    assert rss_mb() - before < 300
