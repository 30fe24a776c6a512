"""Intervals a source does not keep, rolled up on request from one it keeps, by the core.

The kept interval used is the coarsest whose periods each coarse period is a whole number of
(the core's ``refines``: 1d from 1h, 1w from 1d, 1d at +05:30 from 30m, 3d on the symbol's
anchor from 1d): every kept interval comes from the same trades, so each gives the same
klines, and the coarsest reads the fewest rows. The values are the core's exact roll-up.
What a rolled-up kline says besides them:

- ``revision``: the highest of its parts';
- ``gap``: a part is gap, or its parts do not cover the period from its open without a hole
  (the source starts inside it, or lacks a span in it): not known to be whole;
- ``closed``: every part is closed and the last one ends the period (else the source has not
  seen its end yet: the open kline, as Binance serves the current one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from kline_rs._core import interval_ms, refines, rollup_klines, same_periods
from kline_rs.serve.served import IntervalNotServedError, ServedKline

#: The most finer klines one request rolls up: a request that needs more is answered with
#: the whole coarse klines they make (fewer than asked; 1 000 1d klines from 1m need 1.44 M).
MAX_ROLLUP_PARTS = 500_000

#: The exact fields the core rolls up, in :class:`ServedKline`'s order.
VALUE_FIELDS: tuple[str, ...] = (
    "open_time", "close_time", "open", "high", "low", "close", "volume", "quote_volume",
    "trades", "taker_buy_volume", "taker_buy_quote_volume", "first_trade_id", "last_trade_id",
)  # fmt: skip


@dataclass(frozen=True)
class RollupPlan:
    """How to serve ``interval``: from the kept interval ``finer`` (``finer == interval``:
    as kept), each period of it at most ``parts_per_period`` finer klines."""

    interval: str
    finer: str
    tz_offset: str | None
    anchor_3d_ms: int | None
    parts_per_period: int = 1
    max_parts: int = MAX_ROLLUP_PARTS


def plan_rollup(
    kept: tuple[str, ...] | list[str],
    interval: str,
    kept_tz_offset: str | None,
    tz_offset: str | None,
    anchor_3d_ms: int | None,
) -> RollupPlan:
    """The plan for ``interval`` at ``tz_offset`` from the ``kept`` intervals (made at
    ``kept_tz_offset``); :class:`IntervalNotServedError` if none of them serves it."""
    if interval in kept and same_periods(interval, kept_tz_offset, tz_offset):
        return RollupPlan(interval, interval, tz_offset, anchor_3d_ms)
    finer = [
        k
        for k in kept
        if refines(
            k, interval, finer_tz_offset=kept_tz_offset, tz_offset=tz_offset,
            anchor_3d_ms=anchor_3d_ms,
        )
    ]  # fmt: skip
    if not finer:
        at = f" at {tz_offset}" if tz_offset else ""
        raise IntervalNotServedError(
            f"{interval}{at} rolls up from none of the kept intervals ({', '.join(kept)})"
        )
    best = max(finer, key=lambda k: interval_ms(k)[0])
    parts = math.ceil(interval_ms(interval)[1] / interval_ms(best)[0])
    return RollupPlan(interval, best, tz_offset, anchor_3d_ms, parts)


def rolled_up(parts: dict[str, list[Any]], plan: RollupPlan) -> list[ServedKline]:
    """``parts`` (klines of ``plan.finer`` as columns of :class:`ServedKline`'s fields,
    oldest first) rolled up to ``plan.interval``."""
    if not parts["open_time"]:
        return []
    got = rollup_klines(
        {name: parts[name] for name in VALUE_FIELDS},
        plan.interval,
        tz_offset=plan.tz_offset,
        anchor_3d_ms=plan.anchor_3d_ms,
    )
    opens = np.asarray(got["open_time"], dtype=np.int64)
    closes = np.asarray(got["close_time"], dtype=np.int64)
    part_opens = np.asarray(parts["open_time"], dtype=np.int64)
    part_closes = np.asarray(parts["close_time"], dtype=np.int64)
    first = np.searchsorted(part_opens, opens, side="left")
    last = np.append(first[1:], len(part_opens)) - 1
    hole = np.concatenate(([False], part_opens[1:] != part_closes[:-1] + 1))
    hole[first] = False  # a coarse kline's first part continues nothing of it
    gap = np.asarray(parts["gap"], dtype=bool) | hole
    gap = np.logical_or.reduceat(gap, first) | (part_opens[first] != opens)
    revision = np.maximum.reduceat(np.asarray(parts["revision"], dtype=np.int64), first)
    closed = np.logical_and.reduceat(np.asarray(parts["closed"], dtype=bool), first)
    closed &= part_closes[last] == closes
    values = [
        got[name].tolist() if isinstance(got[name], np.ndarray) else got[name]
        for name in VALUE_FIELDS
    ]
    flags = (gap.tolist(), revision.tolist(), closed.tolist())
    return [ServedKline(*k) for k in zip(*values, *flags, strict=True)]
