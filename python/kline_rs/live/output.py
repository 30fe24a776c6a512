"""Closed klines as JSON lines (what ``kline-rs run`` prints until a store is configured)."""

from __future__ import annotations

import json
from typing import TextIO

from kline_rs._core import format_fixed8, format_quote
from kline_rs.engine import ClosedKline


def kline_json(k: ClosedKline) -> str:
    """One closed kline as a JSON object with Binance's 8-decimal text for exact values."""
    return json.dumps(
        {
            "symbol": k.symbol,
            "interval": k.interval,
            "open_time": k.open_time,
            "close_time": k.close_time,
            "open": format_fixed8(k.open),
            "high": format_fixed8(k.high),
            "low": format_fixed8(k.low),
            "close": format_fixed8(k.close),
            "volume": format_fixed8(k.volume),
            "quote_volume": format_quote(k.quote_volume),
            "trades": k.trades,
            "taker_buy_volume": format_fixed8(k.taker_buy_volume),
            "taker_buy_quote_volume": format_quote(k.taker_buy_quote_volume),
            "revision": k.revision,
            "gap": k.gap,
            "inexact_trades": k.inexact_trades,
        },
        separators=(",", ":"),
    )


class JsonLines:
    """Writes each closed kline as a line of JSON and flushes."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def __call__(self, k: ClosedKline) -> None:
        self.out.write(kline_json(k) + "\n")
        self.out.flush()
