"""History at start-up from REST klines: cheap (one request per 1000 klines), Binance's own.

For a new symbol, every kline of the lookback that has closed comes from ``GET klines`` (all
configured intervals) and is handed on as revision 0. The engine takes over live: the kline its
first trade opens is partial (it joined mid-period) and comes out marked gap. When the first
kline of an interval comes out of the engine, the periods between the last REST kline and it
(closed at Binance by then) are fetched again and handed on as revision 1, replacing the
partial one — every period has exactly one final kline, none counted twice.

REST klines carry Binance's values: quote volumes at 8 decimals (not the exact Σ p·q kept for
the engine's own klines) and no trade ids (-1).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from kline_rs import _core
from kline_rs.engine import RECORD_DTYPE, ClosedKline
from kline_rs.klines import KLINE_DTYPE

log = logging.getLogger("kline_rs.history")

Emit = Callable[[npt.NDArray[np.void]], Awaitable[None]]


class KlineRest(Protocol):
    def klines_range(self, symbol: str, interval: str, start: int, end: int) -> Any: ...


def records(
    symbol: str, interval: str, rows: Sequence[Sequence[Any]], revision: int
) -> npt.NDArray[np.void]:
    """Binance REST kline rows → :data:`RECORD_DTYPE` records (exact decimals of any size,
    ids -1), parsed by the core; :class:`kline_rs.ParseError` names the row and field."""
    columns = _core.parse_kline_rows([list(r) for r in rows])
    out = np.empty(len(rows), dtype=RECORD_DTYPE)
    for name in KLINE_DTYPE.names or ():
        out[name] = columns[name]
    out["symbol"], out["interval"], out["revision"] = symbol, interval, revision
    out["gap"] = out["flat"] = False
    return out


def period_before(t: int, interval: str) -> int:
    """A time at least one whole ``interval`` before ``t``: asking REST from there includes
    the kline holding ``t`` (months count 31 days)."""
    return t - _core.interval_ms(interval)[1]


class KlineHistory:
    """Loads REST kline history for new symbols and closes the seam with the engine."""

    def __init__(self, rest: KlineRest, intervals: Sequence[str], emit: Emit) -> None:
        self.rest = rest
        self.intervals = list(intervals)
        self.emit = emit
        #: (symbol, interval) → the open time from which the seam is still owed.
        self._owed: dict[tuple[str, str], int] = {}
        self.fetched = 0

    async def load(self, symbol: str, start: int, now: int) -> int:
        """The closed klines of ``start .. now`` for every interval; returns how many."""
        got = 0
        first = {i: period_before(start, i) for i in self.intervals}
        for interval in self.intervals:
            self._owed[(symbol, interval)] = first[interval]  # the engine may close first
        for interval in self.intervals:
            key = (symbol, interval)
            async for page in self.rest.klines_range(symbol, interval, first[interval], now):
                closed = [r for r in page if int(r[6]) < now]
                if closed:
                    await self.emit(records(symbol, interval, closed, 0))
                    got += len(closed)
                    if key in self._owed:  # else the seam was fetched already (revision 1)
                        self._owed[key] = int(closed[-1][6]) + 1
        self.fetched += got
        log.info("%s: %d klines of history from REST since %d", symbol, got, start)
        return got

    def owed(self, k: ClosedKline) -> tuple[str, str, int, int] | None:
        """For the engine's closed kline ``k``: the span (symbol, interval, from, to) still to
        fetch if it is the first of its series after a REST history (else None)."""
        if k.first_trade_id < 0:  # not the engine's (a REST kline, or a quiet period)
            return None
        after = self._owed.pop((k.symbol, k.interval), None)
        if after is None:
            return None
        until = k.open_time if k.gap else k.open_time - 1
        return None if until < after else (k.symbol, k.interval, after, until)

    async def close_seam(self, symbol: str, interval: str, start: int, end: int) -> int:
        """Fetches the seam's klines (closed at Binance by now) and hands them on as revision
        1: they replace the engine's partial first kline."""
        got = 0
        async for page in self.rest.klines_range(symbol, interval, start, end):
            await self.emit(records(symbol, interval, page, 1))
            got += len(page)
        log.info("%s %s: seam %d..%d closed with %d REST klines", symbol, interval, start, end, got)
        return got


def gap_spans(
    rows: Sequence[tuple[str, str, int, int, int]], before: int
) -> list[tuple[str, str, int, int, int]]:
    """Stored gap rows (symbol, interval, open, close, revision; sorted) closed before
    ``before``, joined into contiguous spans with the highest revision among them."""
    spans: list[tuple[str, str, int, int, int]] = []
    for symbol, interval, start, end, revision in rows:
        if end >= before:
            continue
        if spans and spans[-1][:2] == (symbol, interval) and spans[-1][3] + 1 == start:
            s = spans[-1]
            spans[-1] = (symbol, interval, s[2], end, max(s[4], revision))
        else:
            spans.append((symbol, interval, start, end, revision))
    return spans


async def heal(rest: KlineRest, spans: Sequence[tuple[str, str, int, int, int]], emit: Emit) -> int:
    """Replaces stored gap klines (a partial first kline, ids nobody supplied, a seam not
    replaced before a stop) with the exchange's own klines for those periods, one revision
    up; returns how many came. Periods REST does not have stay as they are."""
    got = 0
    for symbol, interval, start, end, revision in spans:
        async for page in rest.klines_range(symbol, interval, start, end):
            inside = [r for r in page if start <= int(r[0]) and int(r[6]) <= end]
            if inside:
                await emit(records(symbol, interval, inside, revision + 1))
                got += len(inside)
    log.info("%d stored gap klines replaced by the exchange's", got)
    return got
