"""Generate a simulated day of Binance aggTrades dumps and replay it into klines.

This is what ``make run`` shows: `kline_rs.fake.simulate` writes one spot aggTrades CSV per symbol
(Binance's public-data format), `kline_rs.replay` turns them into 1m/5m/1h/1d kline files in
Binance's format, and the script prints the summary and a few lines of the result.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import kline_rs
from kline_rs.fake.simulate import generate_day


def main() -> None:
    """Generate (once), replay, summarise."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", default="out/demo", help="where the dumps and klines go")
    p.add_argument("--symbols", type=int, default=20)
    p.add_argument("--trades", type=int, default=2_000_000)
    args = p.parse_args()

    root = Path(args.dir)
    dumps = root / f"aggTrades-{args.symbols}-{args.trades}"
    if not dumps.is_dir():
        print(f"generating {args.trades:,} trades for {args.symbols} symbols in {dumps} ...")
        generate_day(dumps, symbols=args.symbols, trades=args.trades)
    summary = kline_rs.replay(
        dumps, root / "klines", ["1m", "5m", "1h", "1d"], progress=True, skip_bad=True
    )
    print(summary.describe())
    btc_1h = root / "klines" / "BTCUSDT-1h.csv"
    print(f"\nfirst hours of {btc_1h} (Binance's kline CSV format):")
    for line in btc_1h.read_text().splitlines()[:3]:
        print("  " + line)


if __name__ == "__main__":
    main()
