"""Exact Binance klines (candlesticks) from trades, with a Rust core.

numpy is imported only when an array API is first used, so ``kline-rs replay`` does not pay
for it (its BLAS threads would compete with the replay threads for the cores).
"""

from typing import TYPE_CHECKING, Any

from kline_rs._core import (
    BackpressureError,
    DecimalError,
    EngineError,
    IntervalError,
    KlineError,
    ManualClock,
    ParseError,
    ReplayError,
    RollupError,
    TimeError,
    UnknownSymbolError,
    __version__,
    format_fixed8,
    format_quote,
    format_time,
    interval_name,
    parse_agg_trades,
    parse_fixed8,
    parse_time,
    parse_trades,
)
from kline_rs.anchor import Anchor3dWarning
from kline_rs.replay import ReplaySummary, replay

if TYPE_CHECKING:
    from kline_rs.arrow import (
        arrow_klines,
        to_arrow,
        to_ccxt_ohlcv,
        to_freqtrade,
        to_pandas,
        to_polars,
    )
    from kline_rs.engine import (
        CLOSED_DTYPE,
        SNAPSHOT_DTYPE,
        Batch,
        ClosedKline,
        Engine,
        PushReport,
        Snapshot,
    )
    from kline_rs.klines import (
        INTERVALS,
        KLINE_DTYPE,
        PRICE_SCALE,
        QUOTE_SCALE,
        TRADE_DTYPE,
        VOLUME_SCALE,
        Aggregation,
        aggregate,
        as_float,
        rollup_csv,
        trades,
    )

_ENGINE = {
    "CLOSED_DTYPE",
    "SNAPSHOT_DTYPE",
    "Batch",
    "ClosedKline",
    "Engine",
    "PushReport",
    "Snapshot",
}
_ARROW = {"arrow_klines", "to_arrow", "to_ccxt_ohlcv", "to_freqtrade", "to_pandas", "to_polars"}
_LAZY = {
    "INTERVALS",
    "KLINE_DTYPE",
    "PRICE_SCALE",
    "QUOTE_SCALE",
    "TRADE_DTYPE",
    "VOLUME_SCALE",
    "Aggregation",
    "aggregate",
    "as_float",
    "rollup_csv",
    "trades",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from kline_rs import klines

        return getattr(klines, name)
    if name in _ARROW:
        from kline_rs import arrow

        return getattr(arrow, name)
    if name in _ENGINE:
        from kline_rs import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'kline_rs' has no attribute {name!r}")


__all__ = [
    "CLOSED_DTYPE",
    "INTERVALS",
    "KLINE_DTYPE",
    "PRICE_SCALE",
    "QUOTE_SCALE",
    "SNAPSHOT_DTYPE",
    "TRADE_DTYPE",
    "VOLUME_SCALE",
    "Aggregation",
    "Anchor3dWarning",
    "BackpressureError",
    "Batch",
    "ClosedKline",
    "DecimalError",
    "Engine",
    "EngineError",
    "IntervalError",
    "KlineError",
    "ManualClock",
    "ParseError",
    "PushReport",
    "ReplayError",
    "ReplaySummary",
    "RollupError",
    "Snapshot",
    "TimeError",
    "UnknownSymbolError",
    "__version__",
    "aggregate",
    "arrow_klines",
    "as_float",
    "format_fixed8",
    "format_quote",
    "format_time",
    "interval_name",
    "parse_agg_trades",
    "parse_fixed8",
    "parse_time",
    "parse_trades",
    "replay",
    "rollup_csv",
    "to_arrow",
    "to_ccxt_ohlcv",
    "to_freqtrade",
    "to_pandas",
    "to_polars",
    "trades",
]
