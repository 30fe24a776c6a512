"""REST kline rows made from a tape by the package's own aggregator (``kline_rs.aggregate``).

Binance keeps making klines while a symbol is quiet: after the last trade, flat klines at the
last close (0 trades, zero volumes) run up to the period holding the market's time, or up to
the time the symbol stopped trading.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from kline_rs.fake.tape import SCALE, Instrument, Tape, fixed8
from kline_rs.klines import aggregate
from kline_rs.venues import Venue

KlineRow = list[Any]
"""Binance's 12-field kline array: times and trade count as ints, the rest as text."""

UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
DAY_MS = UNIT_MS["d"]
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
ZERO = fixed8(0)
CACHE_SIZE = 64


def interval_ms(interval: str) -> int | None:
    """Length of a fixed interval in ms; None for months."""
    if interval.endswith("M"):
        return None
    return int(interval[:-1]) * UNIT_MS[interval[-1]]


def next_open(open_ms: int, interval: str) -> int:
    step = interval_ms(interval)
    if step is not None:
        return open_ms + step
    start = EPOCH + timedelta(milliseconds=open_ms)
    year, month = divmod(start.month - 1 + int(interval[:-1]), 12)
    following = datetime(start.year + year, month + 1, 1, tzinfo=timezone.utc)
    return (following - EPOCH) // timedelta(milliseconds=1)


def to_row(k: np.void) -> KlineRow:
    """One ``KLINE_DTYPE`` record as a REST row (quote volumes truncated to 8 decimals)."""
    return [
        int(k["open_time"]),
        fixed8(int(k["open"])),
        fixed8(int(k["high"])),
        fixed8(int(k["low"])),
        fixed8(int(k["close"])),
        fixed8(int(k["volume"])),
        int(k["close_time"]),
        fixed8(int(k["quote_volume"]) // SCALE),
        int(k["trades"]),
        fixed8(int(k["taker_buy_volume"])),
        fixed8(int(k["taker_buy_quote_volume"]) // SCALE),
        "0",
    ]


def flat_row(open_ms: int, close: str, interval: str) -> KlineRow:
    close_ms = next_open(open_ms, interval) - 1
    return [open_ms, close, close, close, close, ZERO, close_ms, ZERO, 0, ZERO, ZERO, "0"]


class KlineBook:
    """Rows per (symbol, interval), rebuilt only when the tape has grown."""

    def __init__(self, venue: Venue) -> None:
        self.venue = venue
        self._cache: dict[tuple[str, str], tuple[int, list[KlineRow], list[int]]] = {}

    def traded_rows(
        self, inst: Instrument, tape: Tape, interval: str
    ) -> tuple[list[KlineRow], list[int]]:
        """Rows from the first trade's period to the last's, and their open times."""
        key = (inst.symbol, interval)
        cached = self._cache.get(key)
        if cached is not None and cached[0] == len(tape):
            return cached[1], cached[2]
        rows: list[KlineRow] = []
        if len(tape):
            anchor = inst.listed_ms // DAY_MS * DAY_MS  # 3d steps from the listing day
            c = tape.columns()
            result = aggregate(
                agg_id=c["agg_id"],
                price=c["price"],
                qty=c["qty"],
                first_id=c["first_id"],
                last_id=c["last_id"],
                time=c["time"],
                buyer_is_maker=c["buyer_is_maker"],
                intervals=[interval],
                anchor_3d_ms=anchor,
                time_unit="ms",
                quote_rule=self.venue.symbol_quote_rule(inst.contract_size),
            )
            rows = [to_row(k) for k in result.klines[interval]]
        if len(self._cache) >= CACHE_SIZE:
            self._cache.clear()
        opens = [r[0] for r in rows]
        self._cache[key] = (len(tape), rows, opens)
        return rows, opens

    def select(
        self,
        inst: Instrument,
        tape: Tape,
        interval: str,
        *,
        until_ms: int,
        start: int | None,
        end: int | None,
        limit: int,
    ) -> list[KlineRow]:
        """Binance's window: open times in [start, end]; the first ``limit`` from ``start``,
        else the last ``limit`` up to ``end`` (or now); nothing opens after ``until_ms``."""
        rows, opens = self.traded_rows(inst, tape, interval)
        if not rows:
            return []
        hi = until_ms if end is None else min(end, until_ms)
        lo_i = 0 if start is None else bisect_left(opens, start)
        hi_i = bisect_right(opens, hi)
        first_flat, close = rows[-1][6] + 1, rows[-1][4]
        if start is not None:
            out = rows[lo_i : min(hi_i, lo_i + limit)]
            flats = self._flat_opens(first_flat, interval, start, hi, limit - len(out), head=True)
            return out + [flat_row(o, close, interval) for o in flats]
        flats = self._flat_opens(first_flat, interval, None, hi, limit, head=False)
        traded = rows[max(lo_i, hi_i - (limit - len(flats))) : hi_i] if len(flats) < limit else []
        return traded + [flat_row(o, close, interval) for o in flats]

    @staticmethod
    def _flat_opens(
        first: int, interval: str, lo: int | None, hi: int, count: int, *, head: bool
    ) -> list[int]:
        """Open times of the flat klines after the last trade within [lo, hi], ``count`` at
        most, from the start (``head``) or the end."""
        if count <= 0 or hi < first:
            return []
        step = interval_ms(interval)
        if step is None:
            opens = [first]
            while next_open(opens[-1], interval) <= hi:
                opens.append(next_open(opens[-1], interval))
            opens = [o for o in opens if lo is None or o >= lo]
            return opens[:count] if head else opens[-count:]
        last = (hi - first) // step
        if head:
            k0 = 0 if lo is None or lo <= first else -((first - lo) // step)
            return [first + k * step for k in range(k0, min(last, k0 + count - 1) + 1)]
        return [first + k * step for k in range(max(0, last - count + 1), last + 1)]
