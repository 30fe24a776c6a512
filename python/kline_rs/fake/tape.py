"""One symbol's trade history (its tape) and what is known about the instrument."""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from kline_rs.venues import split_assets

SCALE = 10**8
TRADING = "TRADING"

Trade = dict[str, Any]
"""A Binance aggTrade object: ``{"a", "p", "q", "f", "l", "T", "m"[, "M"]}``."""


def fixed8(value: int) -> str:
    """An integer at 1e-8 as Binance's 8-decimal text (exact, any size)."""
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), SCALE)
    return f"{sign}{whole}.{frac:08d}"


def decimals_of(step: int) -> int:
    """Decimals a tick or lot size (at 1e-8) needs: 1000 (0.00001) → 5, 10**8 (1) → 0."""
    places = 8
    while places > 0 and step % 10 == 0:
        step //= 10
        places -= 1
    return places


def trim(text: str, places: int) -> str:
    """8-decimal text cut to ``places`` decimals (the cut digits are zeros by construction)."""
    return text[: text.index(".") + 1 + places] if places else text[: text.index(".")]


def split_symbol(symbol: str) -> tuple[str, str]:
    """``BTCUSDT`` → (``BTC``, ``USDT``); ``BTCUSD_PERP`` → (``BTC``, ``USD``) (the venues'
    quote assets); a name with none of them: its last four letters are the quote."""
    base, quote = split_assets(symbol)
    if quote:
        return base, quote
    pair = symbol.split("_")[0]
    return pair[:-4] or pair, pair[-4:]


@dataclass
class Instrument:
    """A listed symbol: tick and lot as integers at 1e-8, and its trading status."""

    symbol: str
    tick: int
    lot: int
    listed_ms: int
    status: str = TRADING
    status_since_ms: int = 0

    @property
    def base_asset(self) -> str:
        return split_symbol(self.symbol)[0]

    @property
    def quote_asset(self) -> str:
        return split_symbol(self.symbol)[1]

    @property
    def contract_size(self) -> int:
        """Its USD value of one contract on COIN-M (Binance's: 100 for BTC, 10 for others)."""
        return 100 if self.base_asset == "BTC" else 10


class Tape:
    """Columns of one symbol's aggTrades in id order; integers at 1e-8, times in ms.

    Recorded tapes also keep each trade's original object, so it is served unchanged.
    """

    def __init__(self) -> None:
        self.a = array("q")
        self.p = array("q")
        self.q = array("q")
        self.f = array("q")
        self.l = array("q")
        self.t = array("q")
        self.m = array("b")
        self.originals: list[Trade] | None = None

    def __len__(self) -> int:
        return len(self.a)

    def append(self, a: int, p: int, q: int, f: int, l: int, t: int, m: bool) -> None:  # noqa: E741
        self.a.append(a)
        self.p.append(p)
        self.q.append(q)
        self.f.append(f)
        self.l.append(l)
        self.t.append(t)
        self.m.append(m)

    def extend(self, columns: Iterable[tuple[int, int, int, int, int, int, bool]]) -> None:
        for row in columns:
            self.append(*row)

    def trade(self, i: int) -> Trade:
        """The i-th trade as Binance's REST aggTrade object (spot form, 8 decimals)."""
        if self.originals is not None:
            return self.originals[i]
        return {
            "a": self.a[i],
            "p": fixed8(self.p[i]),
            "q": fixed8(self.q[i]),
            "f": self.f[i],
            "l": self.l[i],
            "T": self.t[i],
            "m": bool(self.m[i]),
            "M": True,
        }

    def trades(self, lo: int = 0, hi: int | None = None) -> list[Trade]:
        return [self.trade(i) for i in range(lo, len(self) if hi is None else hi)]

    def index_of_id(self, agg_id: int) -> int:
        """Index of the first trade with id ≥ ``agg_id``."""
        return bisect.bisect_left(self.a, agg_id)

    def index_of_raw_id(self, raw_id: int) -> int:
        """Index of the aggTrade holding raw trade ``raw_id`` (or the first after it)."""
        return max(0, bisect.bisect_right(self.f, raw_id) - 1) if raw_id >= 0 else 0

    def index_of_time(self, ms: int, *, after: bool = False) -> int:
        """Index of the first trade with time ≥ ``ms`` (> ``ms`` with ``after``)."""
        return (bisect.bisect_right if after else bisect.bisect_left)(self.t, ms)

    def columns(self) -> dict[str, npt.NDArray[Any]]:
        """Copies of the columns as the keyword arguments of :func:`kline_rs.aggregate`."""
        return {
            "agg_id": np.array(self.a, dtype=np.int64),
            "price": np.array(self.p, dtype=np.int64),
            "qty": np.array(self.q, dtype=np.int64),
            "first_id": np.array(self.f, dtype=np.int64),
            "last_id": np.array(self.l, dtype=np.int64),
            "time": np.array(self.t, dtype=np.int64),
            "buyer_is_maker": np.array(self.m, dtype=np.bool_),
        }
