"""The example scripts run as a user would run them."""

from __future__ import annotations

import json
import re
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
