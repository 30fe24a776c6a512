"""Type stubs of the Rust extension (checked by mypy.stubtest)."""

from collections.abc import Sequence
from os import PathLike
from typing import Any, final

import numpy as np
import numpy.typing as npt
from typing_extensions import Self

__all__ = [
    "DEFAULT_MAX_AHEAD_MS",
    "MAX_EVENT_SKEW_MS",
    "ArrowKlines",
    "BackpressureError",
    "DecimalError",
    "Engine",
    "EngineError",
    "IntervalError",
    "KlineError",
    "ManualClock",
    "ParseError",
    "PushReport",
    "ReplayError",
    "RollupError",
    "SymbolError",
    "TimeError",
    "TimeZoneError",
    "UnknownSymbolError",
    "__version__",
    "aggregate",
    "epoch_3d_warning",
    "flat_periods",
    "format_fixed",
    "format_fixed8",
    "format_fixed_many",
    "format_quote",
    "format_time",
    "interval_ms",
    "interval_name",
    "kline_arrow",
    "kline_csv_header",
    "kline_csv_line",
    "parse_agg_trades",
    "parse_fixed",
    "parse_fixed8",
    "parse_fixed_many",
    "parse_kline_rows",
    "parse_time",
    "parse_trades",
    "refines",
    "relayed_time_refusal",
    "replay",
    "rollup_csv",
    "rollup_klines",
    "same_periods",
    "symbol_name",
    "trade_dtype",
    "tz_offset_name",
]

__version__: str

def trade_dtype() -> np.dtype[np.void]: ...

DEFAULT_MAX_AHEAD_MS: int
MAX_EVENT_SKEW_MS: int

class KlineError(Exception): ...
class DecimalError(KlineError): ...
class IntervalError(KlineError): ...
class ParseError(KlineError): ...
class TimeZoneError(IntervalError): ...
class SymbolError(KlineError): ...
class ReplayError(KlineError): ...
class RollupError(KlineError): ...
class TimeError(KlineError): ...
class EngineError(KlineError): ...
class BackpressureError(EngineError): ...
class UnknownSymbolError(EngineError): ...

@final
class ManualClock:
    def __new__(cls, start: int) -> Self: ...
    def set(self, now: int) -> None: ...
    def now(self) -> int: ...

@final
class PushReport:
    @property
    def consumed(self) -> int: ...
    @property
    def trades(self) -> int: ...
    @property
    def unknown_symbol(self) -> int: ...
    @property
    def malformed(self) -> int: ...
    @property
    def other_events(self) -> int: ...
    @property
    def backpressure(self) -> bool: ...
    @property
    def errors(self) -> list[str]: ...

@final
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
    def add_symbol(
        self, symbol: str, *, anchor_3d_ms: int | None = None, contract_size: int | None = None
    ) -> None: ...
    def add_symbols(
        self,
        symbols: list[str],
        *,
        anchors_3d_ms: dict[str, int] | None = None,
        contract_sizes: dict[str, int] | None = None,
    ) -> None: ...
    def remove_symbol(self, symbol: str) -> None: ...
    def halt(self, symbol: str) -> None: ...
    def resume(self, symbol: str) -> None: ...
    def symbols(self) -> list[str]: ...
    def push_raw(self, frames: bytes | Sequence[bytes]) -> PushReport: ...
    def push_trades(self, symbol: str, trades: npt.NDArray[np.void]) -> int: ...
    def sync(self) -> None: ...
    def poll(
        self, max_records: int = 65536, *, expand: bool = True
    ) -> tuple[int, dict[str, Any]]: ...
    def ack(self, token: int) -> bool: ...
    def snapshot_columns(self) -> tuple[int, dict[str, Any], dict[str, int]]: ...
    def ack_snapshot(self, token: int) -> bool: ...
    def read_columns(self, symbol: str) -> dict[str, Any]: ...
    def last_id(self, symbol: str) -> int | None: ...
    def poll_gaps(self, max_gaps: int = 65536) -> list[tuple[str, int, int, int]]: ...
    def restore_columns(
        self, columns: dict[str, Any], checkpoints: dict[str, int], *, hold: bool = False
    ) -> int: ...
    def inject_panic(self, symbol: str) -> None: ...
    def feed_down(self, symbol: str | None, since: int, *, hold: bool = False) -> None: ...
    def backfill(self, symbol: str, trades: npt.NDArray[np.void]) -> bool: ...
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
def parse_agg_trades(body: bytes) -> npt.NDArray[np.void]: ...
def parse_trades(body: bytes) -> npt.NDArray[np.void]: ...
def parse_kline_rows(rows: list[list[Any]]) -> dict[str, Any]: ...
def epoch_3d_warning(intervals: list[str], anchor_3d_ms: int | None = None) -> str | None: ...
def parse_fixed8(text: str) -> int: ...
def format_fixed8(value: int) -> str: ...
def format_fixed(value: int, decimals: int = 8) -> str: ...
def format_fixed_many(values: Sequence[int], decimals: int = 8) -> list[str]: ...
def parse_fixed(text: str, decimals: int = 8) -> int: ...
def parse_fixed_many(texts: Sequence[str], decimals: int = 8) -> list[int]: ...
def format_quote(value: int) -> str: ...
def parse_time(text: str) -> int: ...
def format_time(t: int, time_unit: str | None = None) -> str: ...
def kline_csv_header() -> str: ...
def interval_ms(name: str) -> tuple[int, int]: ...
def interval_name(name: str) -> str: ...
def relayed_time_refusal(time: int, event_time: int, time_unit: str = "ms") -> str | None: ...
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
    header: bool = False,
) -> dict[str, Any]: ...
def aggregate(
    trades: npt.NDArray[np.void],
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
def rollup_klines(
    columns: dict[str, Any],
    to_interval: str,
    *,
    tz_offset: str | None = None,
    anchor_3d_ms: int | None = None,
) -> dict[str, Any]: ...
def refines(
    finer: str,
    coarse: str,
    *,
    finer_tz_offset: str | None = None,
    tz_offset: str | None = None,
    anchor_3d_ms: int | None = None,
) -> bool: ...
def same_periods(
    interval: str, tz_offset: str | None = None, other_tz_offset: str | None = None
) -> bool: ...
