"""Binance public-data aggTrades dumps → Binance kline CSV files."""

from __future__ import annotations

import glob
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from kline_rs import _core

if TYPE_CHECKING:
    from kline_rs.klines import QuoteRule

#: A trade more than this after its symbol's previous one is refused unless the next trade
#: follows it (the core's default: a week).
MAX_JUMP_MS = 7 * 86_400_000

#: What ``replay`` writes: Binance's kline CSV, or Parquet with exact decimal columns.
ReplayFormat = Literal["csv", "parquet"]


@dataclass(frozen=True)
class ReplaySummary:
    """What a replay read, skipped and wrote."""

    files: int
    bytes: int
    rows: int
    trades: int
    duplicates: int
    placeholders: int
    invalid: int
    late: int
    #: Trades refused for their time: outside the file's unit (a µs time in ms data or the
    #: reverse), or too far after the previous trade (not confirmed by the next one).
    implausible_unit: int
    implausible_jump: int
    implausible_id: int
    #: Applied aggTrades whose quote value may differ from Binance's: several raw trades whose
    #: p·q passes 8 decimals (Binance truncates each raw trade's; an aggTrade hides them).
    inexact: int
    bad_rows: int
    klines_written: int
    seconds: float
    outputs: list[Path] = field(default_factory=list)
    bad_examples: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: (symbol, interval, open_time) of the first/last periods the input does not cover whole
    #: (by its file names' days or months, else from its first trade to its last): their CSV
    #: lines hold only the input's trades and are not marked in the file.
    partial: list[tuple[str, str, int]] = field(default_factory=list)

    def describe(self) -> str:
        """A short human summary."""
        rate = self.rows / self.seconds / 1e6 if self.seconds > 0 else 0.0
        parts = [
            f"{self.files} files, {self.bytes / 1e6:.1f} MB, {self.trades:,} trades applied "
            f"in {self.seconds:.2f} s ({rate:.1f} M rows/s)",
            f"skipped: {self.bad_rows} bad rows, {self.duplicates} duplicates, "
            f"{self.placeholders} invalid placeholders, {self.invalid} invalid, {self.late} late, "
            f"{self.implausible_unit + self.implausible_jump + self.implausible_id} implausible "
            "times or ids",
            f"wrote {self.klines_written:,} klines to {len(self.outputs)} files",
        ]
        if self.inexact:
            parts.append(
                f"quote volume not known to be exact: {self.inexact:,} aggTrades hold several "
                "raw trades whose p·q passes 8 decimals (raw trades would make it exact)"
            )
        if self.partial:
            parts.append(
                f"{len(self.partial)} edge periods not fully covered by the input (partial): "
                + ", ".join(f"{s} {i} {t}" for s, i, t in self.partial[:4])
                + (" …" if len(self.partial) > 4 else "")
            )
        parts += [f"bad row: {b}" for b in self.bad_examples]
        parts += [f"warning: {w}" for w in self.warnings]
        return "\n".join(parts)


def expand_inputs(inputs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files, directories and glob patterns → existing paths (directories kept for Rust)."""
    out: list[Path] = []
    for item in inputs:
        text = os.fspath(item)
        if glob.has_magic(text):
            matches = sorted(glob.glob(text))
            if not matches:
                raise FileNotFoundError(f"no file matches {text!r}")
            out += [Path(m) for m in matches]
        elif os.path.exists(text):
            out.append(Path(text))
        else:
            raise FileNotFoundError(f"no such file or directory: {text!r}")
    return out


def _anchor_ms(anchor: str | date | int | None) -> int | None:
    if anchor is None or isinstance(anchor, int):
        return anchor
    day = date.fromisoformat(anchor) if isinstance(anchor, str) else anchor
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    return int(start.timestamp()) * 1000


def replay(
    inputs: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    intervals: Sequence[str] = ("1m",),
    *,
    symbol: str | None = None,
    tz_offset: str | None = None,
    anchor_3d: str | date | int | None = None,
    skip_bad: bool = False,
    threads: int = 0,
    progress: bool = False,
    max_jump_ms: int | None = MAX_JUMP_MS,
    quote_rule: QuoteRule = "per-trade",
    format: ReplayFormat = "csv",
    header: bool = False,
) -> ReplaySummary:
    """Replays aggTrades dumps into ``out_dir/<SYMBOL>-<interval>.csv`` (Binance's format).

    ``header=True`` starts each CSV file with Binance's column names (``open_time,open,…,
    ignore``, as on its futures kline files). ``format="parquet"`` writes
    ``<SYMBOL>-<interval>.parquet`` instead, with exact decimal columns (needs pyarrow; see
    :mod:`kline_rs.kline_files`).

    ``inputs``: files (``.csv`` or ``.zip``), directories or glob patterns. The symbol comes
    from each file name unless ``symbol`` is given. ``anchor_3d`` is the day (or UTC ms) a
    symbol's 3d grid starts from (its listing day); without it 3d is stepped from the epoch.
    Raises :class:`kline_rs.ParseError` on the first bad row unless ``skip_bad``; a trade whose
    time is outside its file's unit, or more than ``max_jump_ms`` after the previous one and
    not followed by the next (a halt is), counts as a bad row (None: no jump bound).
    ``quote_rule``: ``"per-trade"`` (spot, USD-M: each trade's p·q truncated to 8 decimals,
    then summed, as Binance does) or ``"contracts:<size>"`` (COIN-M: base-asset volume,
    contracts x size / price, ``size`` the symbol's ``contractSize``; a COIN-M trades file,
    whose header names ``base_qty``, is refused without it). ``threads``
    (0: one per core) replay whole symbols side by side when the input holds several of a
    like size, else parse one symbol's blocks; the output is the same either way.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    if format not in ("csv", "parquet"):
        raise ValueError(f"format {format!r} is not 'csv' or 'parquet'")
    if format == "parquet":
        if header:
            raise ValueError("header is for CSV output: Parquet names its columns itself")
        from kline_rs.kline_files import pyarrow_parquet

        pyarrow_parquet()  # before the work: say what is missing now, not after the replay
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".kline-rs-replay-", dir=out_dir) as staging:
            summary = replay(
                inputs, staging, intervals, symbol=symbol, tz_offset=tz_offset,
                anchor_3d=anchor_3d, skip_bad=skip_bad, threads=threads, progress=progress,
                max_jump_ms=max_jump_ms, quote_rule=quote_rule,
            )  # fmt: skip
            return replace(summary, outputs=_to_parquet(summary.outputs, Path(out_dir)))
    raw = _core.replay(
        [str(p) for p in expand_inputs(inputs)],
        str(out_dir),
        list(intervals),
        symbol=symbol,
        tz_offset=tz_offset,
        anchor_3d_ms=_anchor_ms(anchor_3d),
        skip_bad=skip_bad,
        threads=threads,
        progress=progress,
        max_jump_ms=max_jump_ms,
        quote_rule=quote_rule,
        header=header,
    )
    raw["outputs"] = [Path(p) for p in raw["outputs"]]
    return ReplaySummary(**raw)


def _to_parquet(csv_files: list[Path], out_dir: Path) -> list[Path]:
    """Each replayed CSV file → ``out_dir/<name>.parquet``; renamed over older ones only when
    all are written, as the CSV replay does."""
    from kline_rs.kline_files import kline_csv_to_parquet

    done: list[tuple[Path, Path]] = []
    try:
        for csv in csv_files:
            final = out_dir / csv.with_suffix(".parquet").name
            partial = out_dir / f".{final.name}.partial"
            done.append((partial, final))
            kline_csv_to_parquet(csv, partial)
    except BaseException:
        for partial, _ in done:
            partial.unlink(missing_ok=True)
        raise
    for partial, final in done:
        os.replace(partial, final)
    return [final for _, final in done]
