"""PROVISIONAL (the lead's branch): replaced by the REST helper's source.py at merge."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from kline_rs.venues import Venue


@dataclass(frozen=True)
class ServedKline:
    open_time: int
    close_time: int
    open: int
    high: int
    low: int
    close: int
    volume: int
    quote_volume: int
    trades: int
    taker_buy_volume: int
    taker_buy_quote_volume: int
    first_trade_id: int
    last_trade_id: int
    gap: bool = False
    revision: int = 0
    closed: bool = True


class KlineSource(Protocol):
    venue: Venue

    async def klines(
        self,
        symbol: str,
        interval: str,
        start_ms: int | None,
        end_ms: int | None,
        limit: int,
        tz_offset: str | None,
    ) -> list[ServedKline]: ...


def select(
    rows: list[ServedKline], start_ms: int | None, end_ms: int | None, limit: int
) -> list[ServedKline]:
    """Binance's window: from ``start_ms`` the first ``limit``; else the latest ``limit``
    (up to ``end_ms``)."""
    if start_ms is not None:
        rows = [k for k in rows if k.open_time >= start_ms]
    if end_ms is not None:
        rows = [k for k in rows if k.open_time <= end_ms]
    return rows[:limit] if start_ms is not None else rows[-limit:]
