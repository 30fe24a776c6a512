"""Type stubs of the Rust extension (checked by mypy.stubtest)."""

from collections.abc import Sequence
from os import PathLike
from typing import Any, final

import numpy as np
import numpy.typing as npt
from typing_extensions import Self, disjoint_base

__all__ = [
    "ArrowKlines",
    "BackpressureError",
    "DecimalError",
    "Engine",
    "EngineError",
    "IntervalError",
    "KlineError",
    "ManualClock",
    "ParseError",
    "ReplayError",
    "RollupError",
    "SymbolError",
    "TimeZoneError",
    "UnknownSymbolError",
    "__version__",
    "aggregate",
    "epoch_3d_warning",
    "flat_periods",
    "format_fixed",
    "format_fixed8",
    "format_quote",
    "interval_ms",
    "interval_name",
    "kline_arrow",
    "kline_csv_line",
    "parse_fixed",
    "parse_fixed8",
    "parse_kline_rows",
    "replay",
    "rollup_csv",
    "symbol_name",
    "tz_offset_name",
]

__version__: str

class KlineError(Exception): ...
class DecimalError(KlineError): ...
class IntervalError(KlineError): ...
class ParseError(KlineError): ...
class TimeZoneError(IntervalError): ...
class SymbolError(KlineError): ...
class ReplayError(KlineError): ...
class RollupError(KlineError): ...
class EngineError(KlineError): ...
class BackpressureError(EngineError): ...
class UnknownSymbolError(EngineError): ...

@final
class ManualClock:
    def __new__(cls, start: int) -> Self: ...
    def set(self, now: int) -> None: ...
    def now(self) -> int: ...

@disjoint_base
class Engine:
    def __new__(
        cls,
        intervals: list[str],
        *,
        partitions: int = 0,
        grace: int = 250,
        ring_capacity: int = 65536,
        outbox_capacity: int = 65536,
        tz_offset: str | None = None,
        time_unit: str = "ms",
        pin_threads: bool = True,
        auto_add: bool = False,
        push_wait_ms: int = 100,
        clock: ManualClock | None = None,
        late_policy: str = "drop",
        allowed_lateness: int = 0,
        detect_id_gaps: bool = False,
        mark_partial_start: bool = False,
        spin_us: int = 50,
        max_ahead_ms: int | None = ...,
        max_jump_ms: int | None = None,
        max_spill: int = 262144,
        quote_rule: str = "per-trade",
    ) -> Self: ...
    @property
    def intervals(self) -> list[str]: ...
    @property
    def partitions(self) -> int: ...
    @property
    def closed_engine(self) -> bool: ...
    def add_symbol(self, symbol: str, *, anchor_3d_ms: int | None = None) -> None: ...
    def add_symbols(
        self, symbols: list[str], *, anchors_3d_ms: dict[str, int] | None = None
    ) -> None: ...
    def remove_symbol(self, symbol: str) -> None: ...
    def halt(self, symbol: str) -> None: ...
    def resume(self, symbol: str) -> None: ...
    def symbols(self) -> list[str]: ...
    def push_raw(self, frames: bytes | Sequence[bytes]) -> dict[str, Any]: ...
    def push_trades(
        self,
        symbol: str,
        agg_id: npt.NDArray[np.int64],
        price: npt.NDArray[np.int64],
        qty: npt.NDArray[np.int64],
        first_id: npt.NDArray[np.int64],
        last_id: npt.NDArray[np.int64],
        time: npt.NDArray[np.int64],
        buyer_is_maker: npt.NDArray[np.bool_],
    ) -> int: ...
    def sync(self) -> None: ...
    def poll(
        self, max_records: int = 65536, *, expand: bool = True
    ) -> tuple[int, dict[str, Any]]: ...
    def ack(self, token: int) -> bool: ...
    def snapshot_columns(self) -> tuple[int, dict[str, Any], dict[str, int], int]: ...
    def ack_snapshot(self, token: int) -> bool: ...
    def read_columns(self, symbol: str) -> dict[str, Any]: ...
    def last_id(self, symbol: str) -> int | None: ...
    def poll_gaps(self, max_gaps: int = 65536) -> list[tuple[str, int, int, int]]: ...
    def restore_columns(
        self, columns: dict[str, Any], checkpoints: dict[str, int], *, hold: bool = False
    ) -> int: ...
    def inject_panic(self, symbol: str) -> None: ...
    def feed_down(self, symbol: str | None, since: int, *, hold: bool = False) -> None: ...
    def backfill(
        self,
        symbol: str,
        agg_id: npt.NDArray[np.int64],
        price: npt.NDArray[np.int64],
        qty: npt.NDArray[np.int64],
        first_id: npt.NDArray[np.int64],
        last_id: npt.NDArray[np.int64],
        time: npt.NDArray[np.int64],
        buyer_is_maker: npt.NDArray[np.bool_],
    ) -> bool: ...
    def feed_up(
        self,
        symbol: str | None = None,
        *,
        accept_holes: bool = False,
        impossible_from: int | None = None,
    ) -> None: ...
    def nack(self, token: int) -> bool: ...
    def poll_late(
        self, max_trades: int = 65536
    ) -> list[tuple[str, int, int, int, int, int, int, bool]]: ...
    def take_errors(self) -> list[str]: ...
    def metrics(self) -> dict[str, Any]: ...
    def wake_fd(self) -> int: ...
    def arm(self) -> None: ...
    def close(self) -> None: ...

@final
class ArrowKlines:
    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object: ...
    def __len__(self) -> int: ...
    @property
    def column_names(self) -> list[str]: ...

def kline_arrow(
    columns: Sequence[tuple[str, Any]], time_unit: str | None = None
) -> ArrowKlines: ...
def parse_kline_rows(rows: list[list[Any]]) -> dict[str, Any]: ...
def epoch_3d_warning(intervals: list[str], anchor_3d_ms: int | None = None) -> str | None: ...
def parse_fixed8(text: str) -> int: ...
def format_fixed8(value: int) -> str: ...
def format_fixed(value: int, decimals: int = 8) -> str: ...
def parse_fixed(text: str, decimals: int = 8) -> int: ...
def format_quote(value: int) -> str: ...
def interval_ms(name: str) -> tuple[int, int]: ...
def interval_name(name: str) -> str: ...
def tz_offset_name(text: str) -> str: ...
def symbol_name(text: str) -> str: ...
def kline_csv_line(
    open_time: int,
    close_time: int,
    open: int,
    high: int,
    low: int,
    close: int,
    volume: int,
    quote_volume: int,
    trades: int,
    taker_buy_volume: int,
    taker_buy_quote_volume: int,
) -> str: ...
def flat_periods(
    interval: str,
    open_time: int,
    close_time: int,
    lo: int,
    hi: int,
    *,
    tz_offset: str | None = None,
    last: int | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]: ...
def replay(
    inputs: list[str] | list[PathLike[str]],
    out_dir: str | PathLike[str],
    intervals: list[str],
    *,
    symbol: str | None = None,
    tz_offset: str | None = None,
    anchor_3d_ms: int | None = None,
    skip_bad: bool = False,
    threads: int = 0,
    progress: bool = False,
    max_jump_ms: int | None = ...,
    quote_rule: str = "per-trade",
) -> dict[str, Any]: ...
def aggregate(
    agg_id: npt.NDArray[np.int64],
    price: npt.NDArray[np.int64],
    qty: npt.NDArray[np.int64],
    first_id: npt.NDArray[np.int64],
    last_id: npt.NDArray[np.int64],
    time: npt.NDArray[np.int64],
    buyer_is_maker: npt.NDArray[np.bool_],
    intervals: list[str],
    *,
    tz_offset: str | None = None,
    anchor_3d_ms: int | None = None,
    time_unit: str | None = None,
    quote_rule: str = "per-trade",
    covers: tuple[int, int] | None = None,
) -> dict[str, Any]: ...
def rollup_csv(
    lines: list[str],
    to_interval: str,
    *,
    tz_offset: str | None = None,
    anchor_3d_ms: int | None = None,
) -> list[str]: ...
