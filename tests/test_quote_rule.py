"""Binance's spot quote-volume rule, pinned by a real minute, through every path that builds
klines: ``aggregate``, ``replay`` and the ``Engine``.

Spot XMRBTC, 2021-08-14 14:46 UTC (kline open 1628952360000), from a cryptofeed sample capture of
Binance's combined stream (github.com/bmoscon/cryptofeed, ``sample_data``; see issue 12 and
docs/quote-volume-rounding.md). The capture holds three ``kline_1m`` updates of the minute and
its aggTrades; the first trade is pinned by the kline itself (price = open, qty = v - 0.07, a
taker sell since V excludes it; its time was not captured, only that it is in the minute).
After the 2nd, 3rd and 4th trade Binance printed q = 0.00064706, 0.00196330, 0.00222308 and
Q = 0.00040460: each trade's p*q truncated to 8 decimals, then summed. The exact sum truncated
once prints 0.00196331 and 0.00222309, which is what COIN-M's rule (``exact-sum``) gives.
"""

from __future__ import annotations

import json
from pathlib import Path

import kline_rs
import numpy as np
import oracle
import pytest

OPEN = 1628952360000
#: (a, p, q, f = l, T, m)
TRADES = [
    (28437172, "0.00577300", "0.04200000", 36387150, OPEN + 40_000, True),  # T not captured
    (28437173, "0.00578000", "0.07000000", 36387151, 1628952417150, False),
    (28437174, "0.00577300", "0.22800000", 36387152, 1628952419696, True),
    (28437175, "0.00577300", "0.04500000", 36387153, 1628952419759, True),
]
#: Binance's q after the 2nd, 3rd and 4th trade (and Q throughout), as printed.
BINANCE_Q = ["0.00064706", "0.00196330", "0.00222308"]
BINANCE_TAKER_Q = "0.00040460"
#: The exact sum truncated once (COIN-M's rule), for the same prefixes.
EXACT_SUM_Q = ["0.00064706", "0.00196331", "0.00222309"]

RULES = {"per-trade": BINANCE_Q, "exact-sum": EXACT_SUM_Q}


def text8(value_1e16: int) -> str:
    """A 1e-16 quote volume printed as Binance prints it (8 decimals, truncated)."""
    return kline_rs.format_quote(int(value_1e16))


def columns(trades: list[tuple[int, str, str, int, int, bool]]) -> dict[str, np.ndarray]:
    a, p, q, f, t, m = zip(*trades, strict=True)
    ints = lambda v: np.array(v, dtype=np.int64)  # noqa: E731
    fixed = lambda v: ints([kline_rs.parse_fixed8(x) for x in v])  # noqa: E731
    return {
        "agg_id": ints(a),
        "price": fixed(p),
        "qty": fixed(q),
        "first_id": ints(f),
        "last_id": ints(f),
        "time": ints(t),
        "buyer_is_maker": np.array(m, dtype=bool),
    }


@pytest.mark.parametrize("rule", list(RULES))
def test_aggregate_prints_binances_q_after_each_trade(rule: str) -> None:
    for n, want in zip(range(2, 5), RULES[rule], strict=True):
        k = kline_rs.aggregate(**columns(TRADES[:n]), quote_rule=rule).klines["1m"]  # type: ignore[arg-type]
        assert len(k) == 1 and k[0]["open_time"] == OPEN
        assert text8(k[0]["quote_volume"]) == want, n
        assert text8(k[0]["quote_volume_exact"]) == EXACT_SUM_Q[n - 2], n  # kept beside it
        assert text8(k[0]["taker_buy_quote_volume"]) == BINANCE_TAKER_Q


@pytest.mark.parametrize("rule", list(RULES))
def test_replay_prints_binances_q_after_each_trade(rule: str, tmp_path: Path) -> None:
    for n, want in zip(range(2, 5), RULES[rule], strict=True):
        src = tmp_path / f"in{n}"
        src.mkdir()
        rows = [f"{a},{p},{q},{f},{f},{t},{m},True" for a, p, q, f, t, m in TRADES[:n]]
        (src / "XMRBTC-aggTrades-2021-08-14.csv").write_text("\n".join(rows) + "\n")
        out = tmp_path / f"out{n}"
        kline_rs.replay(src, out, ["1m"], quote_rule=rule, progress=False)  # type: ignore[arg-type]
        (line,) = (out / "XMRBTC-1m.csv").read_text().splitlines()
        fields = line.split(",")
        assert (fields[0], fields[7], fields[10]) == (str(OPEN), want, BINANCE_TAKER_Q), n


def frame(a: int, p: str, q: str, f: int, t: int, m: bool) -> bytes:
    data = {"e": "aggTrade", "E": t, "s": "XMRBTC", "a": a, "p": p, "q": q, "f": f, "l": f}
    return json.dumps({"stream": "xmrbtc@aggTrade", "data": data | {"T": t, "m": m}}).encode()


@pytest.mark.parametrize("rule", list(RULES))
def test_the_engine_prints_binances_q_after_each_trade_and_at_close(rule: str) -> None:
    clock = kline_rs.ManualClock(OPEN)
    with kline_rs.Engine(["1m"], partitions=1, clock=clock, quote_rule=rule) as engine:
        engine.add_symbol("XMRBTC")
        seen = []
        for i, trade in enumerate(TRADES):
            assert engine.push_raw([frame(*trade)]).trades == 1
            engine.sync()
            if i:
                (slot,) = engine.read("XMRBTC")
                seen.append(text8(slot["quote_volume"]))
        assert seen == RULES[rule]
        clock.set(OPEN + 60_000 + 1_000)
        engine.sync()
        (closed,) = [k for b in engine.drain() for k in b.klines]
    assert text8(closed["quote_volume"]) == RULES[rule][-1]
    assert text8(closed["taker_buy_quote_volume"]) == BINANCE_TAKER_Q


def test_the_oracle_agrees_with_binance_on_this_minute() -> None:
    """The independent reference (tests/oracle.py) writes the same rule from the same facts."""
    trades = [
        {"a": a, "p": p, "q": q, "f": f, "l": f, "T": t, "m": m} for a, p, q, f, t, m in TRADES
    ]
    (k,) = oracle.klines(trades, "1m")
    assert k.csv().split(",")[7] == BINANCE_Q[-1]


def test_an_unknown_quote_rule_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="half-up"):
        kline_rs.Engine(["1m"], quote_rule="half-up")
    with pytest.raises(ValueError, match="half-up"):
        kline_rs.aggregate(**columns(TRADES), quote_rule="half-up")  # type: ignore[arg-type]
