"""Type stubs of the Rust extension (checked by mypy.stubtest)."""

from os import PathLike
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "DecimalError",
    "IntervalError",
    "KlineError",
    "ParseError",
    "ReplayFailed",
    "RollupError",
    "__version__",
    "aggregate",
    "format_fixed8",
    "interval_name",
    "parse_fixed8",
    "replay",
    "rollup_csv",
]

__version__: str

class KlineError(Exception): ...
class DecimalError(KlineError): ...
class IntervalError(KlineError): ...
class ParseError(KlineError): ...
class ReplayFailed(KlineError): ...
class RollupError(KlineError): ...

def parse_fixed8(text: str) -> int: ...
def format_fixed8(value: int) -> str: ...
def interval_name(name: str) -> str: ...
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
) -> dict[str, Any]: ...
def rollup_csv(
    lines: list[str],
    to_interval: str,
    *,
    tz_offset: str | None = None,
    anchor_3d_ms: int | None = None,
) -> list[str]: ...
