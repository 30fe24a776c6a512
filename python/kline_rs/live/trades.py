"""Binance aggTrade JSON objects → the engine's numpy trade arrays (exact integers)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from kline_rs import _core

TradeArrays = tuple[
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.bool_],
]


def agg_trade_arrays(trades: Sequence[dict[str, Any]]) -> TradeArrays:
    """REST/websocket aggTrades (``a p q f l T m``) → (id, price, qty, first, last, time, m).

    Prices and quantities are parsed from their decimal text into integers at 1e-8.
    """
    n = len(trades)
    ids = np.fromiter((t["a"] for t in trades), dtype=np.int64, count=n)
    price = np.fromiter((_core.parse_fixed8(t["p"]) for t in trades), dtype=np.int64, count=n)
    qty = np.fromiter((_core.parse_fixed8(t["q"]) for t in trades), dtype=np.int64, count=n)
    first = np.fromiter((t["f"] for t in trades), dtype=np.int64, count=n)
    last = np.fromiter((t["l"] for t in trades), dtype=np.int64, count=n)
    times = np.fromiter((t["T"] for t in trades), dtype=np.int64, count=n)
    maker = np.fromiter((bool(t["m"]) for t in trades), dtype=np.bool_, count=n)
    return ids, price, qty, first, last, times, maker
