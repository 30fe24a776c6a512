"""The ``kline-rs`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from kline_rs import KlineError, interval_name
from kline_rs.replay import replay


def _intervals(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    try:
        for name in names:
            interval_name(name)
    except KlineError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return names


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kline-rs", description="Exact Binance klines from trades.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("replay", help="aggTrades dumps (csv/zip) → Binance kline CSV files")
    r.add_argument("inputs", nargs="+", help="files, directories or glob patterns")
    r.add_argument("--intervals", type=_intervals, default=["1m"], help="e.g. 1m,5m,1h")
    r.add_argument("--out", required=True, help="output directory")
    r.add_argument("--symbol", help="symbol for all inputs (default: from each file name)")
    r.add_argument("--tz", dest="tz_offset", help="time-zone offset for 1d and up, e.g. +08:00")
    r.add_argument("--anchor-3d", help="YYYY-MM-DD the symbol's 3d grid starts (listing day)")
    r.add_argument("--skip-bad", action="store_true", help="count and skip bad rows")
    r.add_argument("--threads", type=int, default=0, help="parser threads (0: one per core)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        summary = replay(
            args.inputs,
            args.out,
            args.intervals,
            symbol=args.symbol,
            tz_offset=args.tz_offset,
            anchor_3d=args.anchor_3d,
            skip_bad=args.skip_bad,
            threads=args.threads,
            progress=not args.no_progress,
        )
    except (KlineError, OSError, ValueError) as e:
        print(f"kline-rs: error: {e}", file=sys.stderr)
        return 1
    print(summary.describe(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
