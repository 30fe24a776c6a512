"""The engine under hostile input and while idle: counted, never fatal, never busy."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import kline_rs
from hypothesis import given, settings
from hypothesis import strategies as st

GOOD = {
    "stream": "btcusdt@aggTrade",
    "data": {
        "e": "aggTrade",
        "E": 1,
        "s": "BTCUSDT",
        "a": 5,
        "p": "7139.89000000",
        "q": "0.06702300",
        "f": 9,
        "l": 9,
        "T": 1_577_977_823_305,
        "m": False,
        "M": True,
    },
}
ENGINE = kline_rs.Engine(
    ["1m", "1h"], partitions=2, clock=kline_rs.ManualClock(0), max_ahead_ms=None
)
ENGINE.add_symbol("BTCUSDT")

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.sampled_from(["1e9", "-0.5", "0.000000001", "NaN", "99999999999999999999", "7.1.2"]),
)


@st.composite
def mangled(draw: st.DrawFn) -> bytes:
    data = dict(GOOD["data"])  # type: ignore[call-overload]
    for key in draw(st.lists(st.sampled_from(sorted(data)), max_size=4)):
        if draw(st.booleans()):
            data[key] = draw(scalars)
        else:
            data.pop(key, None)
    frame = json.dumps({"stream": GOOD["stream"], "data": data}).encode()
    cut = draw(st.integers(min_value=0, max_value=len(frame)))
    return frame[:cut] if draw(st.booleans()) else frame


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=200), mangled()), max_size=20))
def test_any_frames_are_counted_never_fatal(frames: list[bytes]) -> None:
    report = ENGINE.push_raw(frames)
    assert report.consumed == len(frames)
    counted = report.trades + report.malformed + report.other_events
    assert counted + report.unknown_symbol == len(frames)
    assert len(report.errors) == min(report.malformed, 8)


def test_huge_message_is_counted() -> None:
    frame = json.dumps({**GOOD, "pad": "x" * 5_000_000}).encode()
    assert ENGINE.push_raw([frame]).consumed == 1
    ENGINE.sync()
    assert ENGINE.take_errors() == []


def worker_cpu_seconds() -> float:
    """CPU time of the engine's own threads (kline-worker-N), from /proc: what the rest of
    the process (pytest, the GC) does is not the engine's."""
    ticks = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            if not (task / "comm").read_text().startswith("kline-worker"):
                continue
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended meanwhile
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def test_an_idle_engine_uses_almost_no_cpu() -> None:
    with kline_rs.Engine(["1s", "1m"], partitions=2) as engine:
        engine.add_symbols([f"S{i}USDT" for i in range(100)])
        time.sleep(0.2)  # past start-up
        before = worker_cpu_seconds()
        time.sleep(1.0)
        used = worker_cpu_seconds() - before
    assert used < 0.05, f"idle engine used {used * 100:.1f} % of a core"


def test_interpreter_exit_with_a_live_engine_does_not_hang() -> None:
    import subprocess
    import sys

    script = (
        "import kline_rs, numpy as np\n"
        "e = kline_rs.Engine(['1s', '1m'], partitions=2)\n"
        "e.add_symbols(['A', 'B'])\n"
        "one = np.ones(1000, dtype=np.int64)\n"
        "e.push_trades('A', kline_rs.trades(agg_id=np.arange(1, 1001), price=one, qty=one,"
        " first_id=one, last_id=one, time=one, buyer_is_maker=one == 0))\n"
        "GLOBAL = e  # never closed\n"
    )
    done = subprocess.run([sys.executable, "-c", script], timeout=30, capture_output=True)
    assert done.returncode == 0, done.stderr
