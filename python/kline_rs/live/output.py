"""Closed klines as lines of text (what ``kline-rs run`` prints), in one of three shapes:

- ``jsonl``: our JSON object per kline, with ``revision``, ``gap`` and ``inexact_trades``;
- ``binance-ws``: Binance's websocket kline event (``<symbol>@kline_<interval>``) with
  ``"x": true``, as Binance sends when a kline closes;
- ``binance-rest``: Binance's REST kline array (``/api/v3/klines``), one per line.

Every decimal is Binance's 8-decimal text from the core (quote volumes truncated from 1e-16).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any, Literal, Protocol, TextIO

from kline_rs._core import format_fixed8, format_fixed_many, format_quote
from kline_rs.engine import ClosedKline

OutputFormat = Literal["jsonl", "binance-ws", "binance-rest"]
FORMATS: tuple[OutputFormat, ...] = ("jsonl", "binance-ws", "binance-rest")


class KlineValues(Protocol):
    """The exact values of a kline (a :class:`ClosedKline`, a served kline): prices and
    volumes at 1e-8, quote volumes at 1e-16."""

    @property
    def open_time(self) -> int: ...
    @property
    def close_time(self) -> int: ...
    @property
    def open(self) -> int: ...
    @property
    def high(self) -> int: ...
    @property
    def low(self) -> int: ...
    @property
    def close(self) -> int: ...
    @property
    def volume(self) -> int: ...
    @property
    def quote_volume(self) -> int: ...
    @property
    def trades(self) -> int: ...
    @property
    def taker_buy_volume(self) -> int: ...
    @property
    def taker_buy_quote_volume(self) -> int: ...
    @property
    def first_trade_id(self) -> int: ...
    @property
    def last_trade_id(self) -> int: ...


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def kline_fields(k: KlineValues) -> dict[str, Any]:
    """A kline's values under our JSON keys, decimals as Binance's 8-decimal text."""
    return {
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
    }


def kline_json(k: ClosedKline) -> str:
    """One closed kline as a JSON object with Binance's 8-decimal text for exact values."""
    return _dumps(
        {
            "symbol": k.symbol,
            "interval": k.interval,
            **kline_fields(k),
            "revision": k.revision,
            "gap": k.gap,
            "inexact_trades": k.inexact_trades,
        }
    )


def kline_event(
    k: KlineValues, *, symbol: str, interval: str, closed: bool, event_ms: int
) -> dict[str, Any]:
    """Binance's websocket kline event (``<symbol>@kline_<interval>``), sent at ``event_ms``;
    ``x`` says whether the kline is closed. A period without trades has ``f`` = ``L`` = -1,
    as Binance sends it."""
    return {
        "e": "kline",
        "E": event_ms,
        "s": symbol,
        "k": {
            "t": k.open_time,
            "T": k.close_time,
            "s": symbol,
            "i": interval,
            "f": k.first_trade_id,
            "L": k.last_trade_id,
            "o": format_fixed8(k.open),
            "c": format_fixed8(k.close),
            "h": format_fixed8(k.high),
            "l": format_fixed8(k.low),
            "v": format_fixed8(k.volume),
            "n": k.trades,
            "x": closed,
            "q": format_quote(k.quote_volume),
            "V": format_fixed8(k.taker_buy_volume),
            "Q": format_quote(k.taker_buy_quote_volume),
            "B": "0",
        },
    }


def binance_ws_event(k: ClosedKline, event_ms: int) -> dict[str, Any]:
    """Binance's websocket kline event for a closed kline (``x`` true), sent at ``event_ms``."""
    return kline_event(k, symbol=k.symbol, interval=k.interval, closed=True, event_ms=event_ms)


def binance_rest_row(k: KlineValues) -> list[Any]:
    """Binance's REST kline array: times and the trade count as numbers, the rest as text."""
    return [
        k.open_time,
        format_fixed8(k.open),
        format_fixed8(k.high),
        format_fixed8(k.low),
        format_fixed8(k.close),
        format_fixed8(k.volume),
        k.close_time,
        format_quote(k.quote_volume),
        k.trades,
        format_fixed8(k.taker_buy_volume),
        format_quote(k.taker_buy_quote_volume),
        "0",
    ]


def binance_rest_rows(klines: Sequence[KlineValues]) -> list[list[Any]]:
    """:func:`binance_rest_row` of each kline, its decimals formatted a column at a time."""
    if not klines:
        return []

    def column(name: str) -> list[Any]:
        return list(map(attrgetter(name), klines))

    eights = [
        format_fixed_many(column(name))
        for name in ("open", "high", "low", "close", "volume", "taker_buy_volume")
    ]
    quotes = [
        list(map(format_quote, column(n))) for n in ("quote_volume", "taker_buy_quote_volume")
    ]
    return [
        [t, o, h, lo, c, v, ct, q, n, tv, tq, "0"]
        for t, o, h, lo, c, v, ct, q, n, tv, tq in zip(
            column("open_time"), *eights[:5], column("close_time"), quotes[0],
            column("trades"), eights[5], quotes[1], strict=True,
        )
    ]  # fmt: skip


def kline_line(k: ClosedKline, fmt: OutputFormat = "jsonl", *, event_ms: int = 0) -> str:
    """One closed kline as one line (no newline) of ``fmt``."""
    if fmt == "binance-ws":
        return _dumps(binance_ws_event(k, event_ms))
    if fmt == "binance-rest":
        return _dumps(binance_rest_row(k))
    return kline_json(k)


class JsonLines:
    """Writes each closed kline as a line of ``fmt`` and flushes; ``now_ms`` gives Binance's
    event time ``E`` (the wall clock by default)."""

    def __init__(
        self,
        out: TextIO,
        fmt: OutputFormat = "jsonl",
        *,
        now_ms: Callable[[], int] | None = None,
    ) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"output format {fmt!r} is not one of {', '.join(FORMATS)}")
        self.out = out
        self.fmt: OutputFormat = fmt
        self.now_ms = now_ms or (lambda: time.time_ns() // 1_000_000)

    def __call__(self, k: ClosedKline) -> None:
        event_ms = self.now_ms() if self.fmt == "binance-ws" else 0
        self.out.write(kline_line(k, self.fmt, event_ms=event_ms) + "\n")
        self.out.flush()
