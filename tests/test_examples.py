"""The example scripts run as a user would run them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

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
