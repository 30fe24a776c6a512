"""Exact Binance klines (candlesticks) from trades, with a Rust core."""

from kline_rs._core import (
    DecimalError,
    IntervalError,
    KlineError,
    ParseError,
    ReplayFailed,
    RollupError,
    __version__,
    format_fixed8,
    interval_name,
    parse_fixed8,
)
from kline_rs.klines import (
    INTERVALS,
    KLINE_DTYPE,
    PRICE_SCALE,
    QUOTE_SCALE,
    VOLUME_SCALE,
    Aggregation,
    aggregate,
    as_float,
    rollup_csv,
)
from kline_rs.replay import ReplaySummary, replay

__all__ = [
    "INTERVALS",
    "KLINE_DTYPE",
    "PRICE_SCALE",
    "QUOTE_SCALE",
    "VOLUME_SCALE",
    "Aggregation",
    "DecimalError",
    "IntervalError",
    "KlineError",
    "ParseError",
    "ReplayFailed",
    "ReplaySummary",
    "RollupError",
    "__version__",
    "aggregate",
    "as_float",
    "format_fixed8",
    "interval_name",
    "parse_fixed8",
    "replay",
    "rollup_csv",
]
