"""Meme-coin-sized values (issue 12, section 4): a day's volume past 1e13 coins at prices of
1e-8 passes 2**63 at 1e-8. Every path keeps it exact: REST kline history (parsed by the core),
the store, numpy, Parquet and the printed outputs."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path

import kline_rs
import oracle
import pytest
from kline_rs.fake import FakeExchange, SimulatedMarket
from kline_rs.storage import read_klines
from test_cli_fail_loud import acli, at, cli, frozen_market

#: 89 999 999 999.99999999 coins in one trade (the largest i64 mantissa is 92 233 720 368.5…).
HUGE_QTY = 9 * 10**18 - 1
E8 = 10**8


def meme_trades(market: SimulatedMarket, symbol: str, n: int) -> int:
    """``n`` trades of HUGE_QTY at 1e-8 after the tape's last; returns their minute."""
    tape = market.tapes[symbol]
    a, f, t = tape.a[-1] + 1, tape.l[-1] + 1, market.now_ms
    for i in range(n):
        tape.append(a + i, 1, HUGE_QTY, f + i, f + i, t, i % 2 == 0)
    return t - t % 60_000


def test_pepe_sized_volumes_pass_rest_history_the_store_show_and_parquet(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    db = tmp_path / "k.sqlite"

    async def scenario() -> tuple[SimulatedMarket, int]:
        market = frozen_market()
        minute = meme_trades(market, "BTCUSDT", 3)
        async with FakeExchange(market) as fx:
            code, _, err, _ = await acli(
                "run", "--symbols", "BTCUSDT", *at(fx), "--history", "klines",
                "--lookback", "5m", "--db", db, "--duration", "4",
            )  # fmt: skip
            assert code == 0, err
        return market, minute

    market, minute = asyncio.run(scenario())
    want = oracle.by_open_time(market.history("BTCUSDT"), "1m")[minute]
    # The minute may hold only the meme trades (the wall clock decides where it falls).
    assert want["volume"] >= 3 * HUGE_QTY > 2**63  # past i64 at 1e-8
    stored = read_klines(db, "BTCUSDT", "1m")
    (row,) = stored[stored["open_time"] == minute]
    assert int(row["volume"]) == want["volume"]
    assert int(row["quote_volume"]) // E8 == want["quote_volume"]
    assert int(row["taker_buy_volume"]) == want["taker_buy_volume"]
    # `show` prints Binance's text.
    code, out, err = cli("show", db, "BTCUSDT", "1m", "--last", "10")
    assert code == 0, err
    assert kline_rs.format_fixed8(want["volume"]) in out
    # Parquet holds the exact decimal.
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    code, _, err = cli("export", db, tmp_path / "k.parquet")
    assert code == 0, err
    table = pq.read_table(tmp_path / "k.parquet").to_pylist()
    at_minute = [r for r in table if r["open_time"].timestamp() * 1000 == minute]
    (got,) = [r for r in at_minute if r["interval"] == "1m"]
    assert got["volume"] == Decimal(kline_rs.format_fixed8(want["volume"]))


def test_pepe_sized_volumes_are_exact_in_json_lines_and_numpy() -> None:
    market = SimulatedMarket(["PEPEUSDT"], seed=5, start_ms=1_700_000_000_000, speed=0)
    market.advance(1_700_000_000_000 + 90_000)
    minute = meme_trades(market, "PEPEUSDT", 4)
    trades = market.history("PEPEUSDT")
    want = oracle.by_open_time(trades, "1m")[minute]
    from kline_rs.live.output import kline_json

    clock = kline_rs.ManualClock(market.now_ms)
    with kline_rs.Engine(["1m"], partitions=1, clock=clock) as engine:
        engine.add_symbol("PEPEUSDT")
        engine.push_trades(
            "PEPEUSDT", kline_rs.parse_agg_trades(json.dumps(trades, default=str).encode())
        )
        clock.set(minute + 120_000)
        engine.sync()
        klines = [k for b in engine.drain() for k in b.klines]
    (k,) = [k for k in klines if k["open_time"] == minute]
    assert int(k["volume"]) == want["volume"] > 2**63
    line = json.loads(kline_json(kline_rs.engine.closed_kline(k)))
    assert line["volume"] == kline_rs.format_fixed8(want["volume"])
    assert line["quote_volume"] == kline_rs.format_fixed8(want["quote_volume"])
