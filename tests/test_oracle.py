"""The independent reference (tests/oracle.py) against Binance's own klines, and against
hand-written cases for what real data here does not cover (1w, 1M, offsets, µs)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import oracle

DAY = 86_400_000


def test_the_oracle_reproduces_binances_official_minutes(binance_data: Path) -> None:
    trades = json.loads((binance_data / "btcusdt_aggtrades_202790190.json").read_text())
    with zipfile.ZipFile(binance_data / "BTCUSDT-1m-2020-01-02.zip") as z:
        official = {
            line.split(",")[0]: line for line in z.read(z.namelist()[0]).decode().splitlines()
        }
    got = [k.csv() for k in oracle.klines(trades, "1m")]
    assert len(got) == 9
    for line in got[1:-1]:  # the first and last minutes hold only part of their trades
        assert line == official[line.split(",")[0]]


def test_buckets_follow_binances_grid() -> None:
    monday = 1_578_268_800_000  # 2020-01-06 00:00 UTC
    assert oracle.bucket(monday - 1, "1w") == (monday - 7 * DAY, monday)
    assert oracle.bucket(monday, "1w") == (monday, monday + 7 * DAY)
    eight = 8 * 3_600_000
    assert oracle.bucket(monday - eight, "1w", tz_ms=eight)[0] == monday - eight
    assert oracle.bucket(monday - eight, "1d", tz_ms=eight)[0] == monday - eight
    assert oracle.bucket(monday + 5, "1h", tz_ms=eight)[0] == monday  # under 1d: no shift
    feb_29 = 1_582_934_400_000  # 2020-02-29 00:00 UTC
    assert oracle.bucket(feb_29 + 5, "1M") == (1_580_515_200_000, 1_583_020_800_000)
    assert oracle.bucket((feb_29 + 5) * 1000, "1m", per_ms=1000)[0] == feb_29 * 1000


def test_flat_minutes_quote_truncation_and_the_taker_side() -> None:
    t0 = 1_578_268_800_000
    trades = [
        {"a": 1, "p": "0.005773", "q": "0.042", "f": 1, "l": 1, "T": t0 + 1, "m": True},
        {"a": 2, "p": "0.00578", "q": "0.07", "f": 2, "l": 4, "T": t0 + 2, "m": False},
        {"a": 3, "p": "0.005773", "q": "0.228", "f": 5, "l": 5, "T": t0 + 3 * 60_000, "m": True},
        {"a": 2, "p": "9", "q": "9", "f": 2, "l": 2, "T": t0 + 4, "m": True},  # duplicate id
    ]
    got = oracle.klines(trades, "1m")
    assert [k.open_time for k in got] == [t0 + i * 60_000 for i in range(4)]
    first = got[0]
    # Each trade's p·q cut to 8 decimals, then summed: 0.00024246 + 0.00040460.
    assert f"{first.quote_volume:.8f}" == "0.00064706"
    assert f"{first.taker_buy_quote_volume:.8f}" == "0.00040460"
    assert (first.trades, first.first_trade_id, first.last_trade_id) == (4, 1, 4)
    for flat in got[1:3]:
        assert (flat.trades, flat.volume, flat.open, flat.close) == (0, 0, first.close, first.close)
        assert (flat.first_trade_id, flat.last_trade_id) == (-1, -1)
