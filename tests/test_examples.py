"""The example scripts run as a user would run them."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import oracle

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_embed_in_asyncio_prints_closed_klines() -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "embed_in_asyncio.py"), "1.5"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert re.search(r"^BTCUSDT\s+1s\s+\d{13} close \d+\.\d{8} trades \d+$", out, re.M), out
    frames, trades = map(
        int, re.findall(r"^(\d+) frames, (\d+) trades applied, 0 malformed", out, re.M)[0]
    )
    assert frames == trades > 0


def test_replay_generated_day_summarises(tmp_path: Path) -> None:
    cmd = [sys.executable, str(EXAMPLES / "replay_generated_day.py"), "--dir", str(tmp_path)]
    out = subprocess.run(
        [*cmd, "--symbols", "3", "--trades", "20000"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "20,000 trades applied" in out
    assert (tmp_path / "klines" / "BTCUSDT-1h.csv").exists()


def test_replay_recorded_frames_gives_the_oracles_klines(binance_data: Path) -> None:
    """Recorded futures frames through the Engine in event time: every 1m and 5m kline with
    trades that it prints equals the independent reference over the capture's aggTrades."""
    capture = binance_data / "cryptofeed" / "BINANCE_FUTURES.ws.1.0"
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "replay_recorded_frames.py"), str(capture)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    trades: dict[str, list[dict[str, Any]]] = {}
    for line in capture.read_text().splitlines()[1:]:
        _, _, frame = line.partition(": ")
        if '"aggTrade"' in frame:
            event = json.loads(frame)["data"]
            trades.setdefault(event["s"], []).append(event)
    printed = re.findall(
        r"^(\w+) +(1m|5m) +(\d+) close (\S+) volume (\S+) trades (\d+)$", out, re.M
    )
    want = set()
    for symbol, events in trades.items():
        for interval in ("1m", "5m"):
            for k in oracle.klines(events, interval):
                if k.trades:
                    want.add((symbol, interval, str(k.open_time), f"{k.close:.8f}",
                              f"{k.volume:.8f}", str(k.trades)))  # fmt: skip
    assert len(printed) == len(want) > 10
    assert set(printed) == want
    assert re.search(r"^1535 frames, 1535 pushed, \d+ klines closed", out, re.M), out


def test_the_fake_exchange_prints_the_run_command_that_follows_it() -> None:
    """`python -m kline_rs.fake.fake_exchange` prints a `kline-rs run` line; run as printed
    (plus a duration), it prints closed 1s klines of the exchange's symbols as JSON lines."""
    cmd = [sys.executable, "-m", "kline_rs.fake.fake_exchange", "--symbols", "5", "--speed", "1"]
    exchange = subprocess.Popen([*cmd, "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        assert exchange.stdout is not None
        follow = ""
        while not follow:
            line = exchange.stdout.readline()
            assert line, "the fake exchange ended without printing the run command"
            if line.startswith("follow it: "):
                follow = line.removeprefix("follow it: ").strip()
        argv = shlex.split(follow)
        assert argv[:2] == ["kline-rs", "run"], follow
        cli = Path(sys.executable).parent / "kline-rs"
        run = subprocess.run(
            [str(cli), *argv[1:], "--duration", "4"], capture_output=True, text=True, timeout=60
        )
        assert run.returncode == 0, run.stderr[-3000:]
        out = run.stdout
    finally:
        exchange.terminate()
        exchange.communicate(timeout=10)  # waits, and closes its stdout
    klines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    symbols = set(argv[argv.index("--symbols") + 1].split(","))
    assert any(k["interval"] == "1s" for k in klines), out
    assert {k["symbol"] for k in klines} <= symbols


def test_live_binance_follows_an_exchange_and_stores_its_klines(tmp_path: Path) -> None:
    """The live example pointed at the fake exchange (market time = real time): it prints
    closed 1s klines and stores them in its SQLite file."""
    cmd = [sys.executable, "-m", "kline_rs.fake.fake_exchange", "--symbols", "3", "--speed", "1"]
    exchange = subprocess.Popen([*cmd, "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        assert exchange.stdout is not None
        urls: dict[str, str] = {}
        while len(urls) < 2:
            line = exchange.stdout.readline()
            assert line, "the fake exchange ended before printing its URLs"
            if m := re.search(r"(ws://[\d.:]+)", line):
                urls["ws"] = m.group(1)
            if m := re.search(r"(http://[\d.:]+)", line):
                urls["rest"] = m.group(1)
        db = tmp_path / "live.sqlite"
        run = subprocess.run(
            [sys.executable, str(EXAMPLES / "live_binance.py"), "BTCUSDT", "--intervals", "1s",
             "--db", str(db), "--ws-url", urls["ws"], "--rest-url", urls["rest"],
             "--duration", "5"],
            capture_output=True, text=True, timeout=90,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr[-3000:]
    finally:
        exchange.terminate()
        exchange.communicate(timeout=10)
    printed = re.findall(
        r"^BTCUSDT 1s (\d{13}) close \d+\.\d{8} volume \d+\.\d{8}", run.stdout, re.M
    )
    assert printed, run.stdout
    from kline_rs.storage import read_klines

    stored = read_klines(db, "BTCUSDT", "1s")["open_time"].tolist()
    assert {int(t) for t in printed} <= set(stored)
