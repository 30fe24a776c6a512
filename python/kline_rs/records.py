"""What the engine hands out: closed klines and records, snapshots of its open slots."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from kline_rs.klines import KLINE_DTYPE

#: A closed kline as :meth:`Engine.poll` returns it: :data:`KLINE_DTYPE` plus where it
#: belongs (symbol, interval), its revision (> 0: amended) and whether it covers a feed gap.
CLOSED_DTYPE = np.dtype(
    [*KLINE_DTYPE.descr, ("symbol", "O"), ("interval", "O"), ("revision", "<i8"), ("gap", "?")]
)


#: A slot of a snapshot: state "open" (a kline), "flat" (quiet since ``open_time`` at
#: ``close``) or "empty", for (symbol, interval).
SNAPSHOT_DTYPE = np.dtype([*KLINE_DTYPE.descr, ("symbol", "O"), ("interval", "O"), ("state", "O")])


#: A closed record as :meth:`Engine.poll_records` returns it: a kline, or with ``flat`` set one
#: row for a whole run of quiet periods ``open_time .. close_time`` at price ``close``.
RECORD_DTYPE = np.dtype([*CLOSED_DTYPE.descr, ("flat", "?")])


class Snapshot(NamedTuple):
    """What changed since the last acknowledged snapshot; ``ack_snapshot(token)`` when stored."""

    token: int
    slots: npt.NDArray[np.void]
    #: Last applied aggTrade id per symbol: replay resumes after it. Every record closed
    #: before the snapshot is visible to polls made after it.
    checkpoints: dict[str, int]


class ClosedKline(NamedTuple):
    """One closed kline; prices at 1e-8, volumes at 1e-8, quote volumes at 1e-16."""

    symbol: str
    interval: str
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
    revision: int
    gap: bool
    #: aggTrades whose quote value may differ from Binance's (0: quote volumes exact).
    inexact_trades: int = 0
    #: The exact Σ p·q at 1e-16 (``quote_volume`` is Binance's, by the venue's rule).
    quote_volume_exact: int = 0


class Batch(NamedTuple):
    """Closed klines and the token that acknowledges them (:meth:`Engine.ack`)."""

    token: int
    klines: npt.NDArray[np.void]


def closed_kline(row: np.void) -> ClosedKline:
    """One element of a :data:`CLOSED_DTYPE` (or :data:`RECORD_DTYPE`) array as a tuple."""
    return ClosedKline(
        symbol=row["symbol"],
        interval=row["interval"],
        open_time=int(row["open_time"]),
        close_time=int(row["close_time"]),
        open=int(row["open"]),
        high=int(row["high"]),
        low=int(row["low"]),
        close=int(row["close"]),
        volume=row["volume"],
        quote_volume=row["quote_volume"],
        trades=int(row["trades"]),
        taker_buy_volume=row["taker_buy_volume"],
        taker_buy_quote_volume=row["taker_buy_quote_volume"],
        first_trade_id=int(row["first_trade_id"]),
        last_trade_id=int(row["last_trade_id"]),
        revision=int(row["revision"]),
        gap=bool(row["gap"]),
        inexact_trades=int(row["inexact_trades"]),
        quote_volume_exact=row["quote_volume_exact"],
    )
