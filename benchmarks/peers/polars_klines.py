"""Klines from aggTrades CSV dumps the way a quant writes it in polars (floats, no gap filling)."""

from __future__ import annotations

import argparse
import pathlib

import polars as pl

SCHEMA = {
    "agg_trade_id": pl.Int64,
    "price": pl.Float64,
    "qty": pl.Float64,
    "first_trade_id": pl.Int64,
    "last_trade_id": pl.Int64,
    "transact_time": pl.Int64,
    "is_buyer_maker": pl.Boolean,
    "is_best_match": pl.Boolean,
}
UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def klines(trades: pl.DataFrame, step: int) -> pl.DataFrame:
    """One interval's klines in the 12 Binance columns, one row per non-empty period."""
    buy = ~pl.col("is_buyer_maker")
    return (
        trades.group_by(open_time=pl.col("transact_time") - pl.col("transact_time") % step)
        .agg(
            open=pl.col("price").first(),
            high=pl.col("price").max(),
            low=pl.col("price").min(),
            close=pl.col("price").last(),
            volume=pl.col("qty").sum(),
            quote_volume=pl.col("quote").sum(),
            trades=(pl.col("last_trade_id") - pl.col("first_trade_id") + 1).sum(),
            taker_buy_base=pl.col("qty").filter(buy).sum(),
            taker_buy_quote=pl.col("quote").filter(buy).sum(),
        )
        .sort("open_time")
        .select(
            "open_time",
            "open",
            "high",
            "low",
            "close",
            "volume",
            close_time=pl.col("open_time") + step - 1,
            quote_volume="quote_volume",
            trades="trades",
            taker_buy_base="taker_buy_base",
            taker_buy_quote="taker_buy_quote",
            ignore=pl.lit(0),
        )
    )


def main() -> None:
    """Command line: polars_klines.py INPUT_DIR OUT_DIR --intervals 1m,5m,1h."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("input_dir", type=pathlib.Path)
    ap.add_argument("out_dir", type=pathlib.Path)
    ap.add_argument("--intervals", default="1m,5m,1h")
    args = ap.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for path in sorted(args.input_dir.glob("*-aggTrades-*.csv")):
        symbol = path.name.split("-aggTrades-")[0]
        trades = pl.read_csv(path, has_header=False, schema=SCHEMA).with_columns(
            quote=pl.col("price") * pl.col("qty")
        )
        unit = 1000 if trades["transact_time"].max() > 10**14 else 1  # type: ignore[operator]
        for name in args.intervals.split(","):
            step = int(name[:-1]) * UNIT_MS[name[-1]] * unit
            out = args.out_dir / f"{symbol}-{name}.csv"
            klines(trades, step).write_csv(out, include_header=False)


if __name__ == "__main__":
    main()
