"""Binance's 3d grid starts at each symbol's listing day: finding it, and the warning when no
anchor is given.

The rule and its text live in the core (``epoch_3d_warning``); this module turns it into a
Python warning at every entry point that takes intervals (``aggregate``, ``rollup_csv``, the
``Engine``), as ``replay`` reports it in its summary. The live pipeline finds each symbol's
anchor itself (:func:`first_days`) and keeps it in the store.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING

from kline_rs import _core

if TYPE_CHECKING:
    from kline_rs.rest import BinanceRest


class Anchor3dWarning(UserWarning):
    """3d klines on the Unix-epoch grid because no anchor was given: Binance's differ for
    most symbols (it steps 3d from each symbol's listing day)."""


def warn_epoch_3d(intervals: Iterable[str], anchor_3d_ms: int | None, stacklevel: int = 3) -> None:
    """Warns (:class:`Anchor3dWarning`) when 3d is asked for with no anchor."""
    text = _core.epoch_3d_warning(list(intervals), anchor_3d_ms)
    if text is not None:
        warnings.warn(text, Anchor3dWarning, stacklevel=stacklevel)


#: REST look-ups of listing days in flight at once (each is one klines request).
MAX_CONCURRENT_LOOKUPS = 8


async def first_days(rest: BinanceRest, symbols: Iterable[str]) -> dict[str, int]:
    """Each symbol's 3d anchor: the open time of its first 1d kline, one REST request per
    symbol. A symbol with no 1d kline yet (listed today) is left out."""
    import asyncio  # here: `import kline_rs` (and `kline-rs replay`) need no event loop

    gate = asyncio.Semaphore(MAX_CONCURRENT_LOOKUPS)

    async def one(symbol: str) -> tuple[str, int | None]:
        async with gate:
            rows = await rest.klines(symbol, "1d", start_time=0, limit=1)
        return symbol, int(rows[0][0]) if rows else None

    found = await asyncio.gather(*(one(s) for s in symbols))
    return {s: t for s, t in found if t is not None}
