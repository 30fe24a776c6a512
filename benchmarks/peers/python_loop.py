"""Exact klines from aggTrades CSV dumps with a plain Python loop (the reference peer)."""

from __future__ import annotations

import argparse
import itertools
import pathlib

SCALE = 10**8
UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def interval_ms(name: str) -> int:
    """Length of an interval such as 1m, 5m, 1h or 1d in milliseconds."""
    return int(name[:-1]) * UNIT_MS[name[-1]]


def fixed(text: str) -> int:
    """Decimal string to an integer at 1e-8, without floats."""
    whole, _, frac = text.partition(".")
    if len(frac) > 8:
        raise ValueError(f"more than 8 decimals: {text}")
    return int(whole + frac.ljust(8, "0"))


def dec8(value: int) -> str:
    """Integer at 1e-8 as a decimal with exactly 8 decimals."""
    return f"{value // SCALE}.{value % SCALE:08d}"


def aggregate(path: pathlib.Path, steps: list[int]) -> tuple[list[dict[int, list[int]]], int]:
    """Per interval: bucket -> [o, h, l, c, vol, quote@1e-16, trades, buy vol, buy quote@1e-16]."""
    books: list[dict[int, list[int]]] = [{} for _ in steps]
    with path.open() as fh:
        first = fh.readline()
        unit = 1000 if first and int(first.split(",")[5]) > 10**14 else 1
        widths = [step * unit for step in steps]
        for line in itertools.chain([first] if first else [], fh):
            _, p_s, q_s, f_s, l_s, t_s, m_s, _ = line.split(",")
            p, q, t = fixed(p_s), fixed(q_s), int(t_s)
            pq, n, buy = p * q, int(l_s) - int(f_s) + 1, m_s == "False"
            for book, width in zip(books, widths, strict=True):
                bucket = t - t % width
                s = book.get(bucket)
                if s is None:
                    book[bucket] = [p, p, p, p, q, pq, n, q if buy else 0, pq if buy else 0]
                    continue
                if p > s[1]:
                    s[1] = p
                elif p < s[2]:
                    s[2] = p
                s[3] = p
                s[4] += q
                s[5] += pq
                s[6] += n
                if buy:
                    s[7] += q
                    s[8] += pq
    return books, unit


def kline_lines(book: dict[int, list[int]], step: int) -> list[str]:
    """Binance kline CSV lines, empty periods as flat klines at the previous close."""
    lines = []
    close = 0
    for t in range(min(book), max(book) + step, step):
        o, h, lo, c, v, qv, n, bv, bqv = book.get(t) or [close, close, close, close, 0, 0, 0, 0, 0]
        close = c
        # ROUNDING: see docs/quote-volume-rounding.md
        quote, buy_quote = dec8(qv // SCALE), dec8(bqv // SCALE)
        fields = [
            str(t),
            dec8(o),
            dec8(h),
            dec8(lo),
            dec8(c),
            dec8(v),
            str(t + step - 1),
            quote,
            str(n),
            dec8(bv),
            buy_quote,
            "0",
        ]
        lines.append(",".join(fields) + "\n")
    return lines


def main() -> None:
    """Command line: python_loop.py INPUT_DIR OUT_DIR --intervals 1m,5m,1h."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("input_dir", type=pathlib.Path)
    ap.add_argument("out_dir", type=pathlib.Path)
    ap.add_argument("--intervals", default="1m,5m,1h")
    args = ap.parse_args()
    names = args.intervals.split(",")
    steps = [interval_ms(n) for n in names]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for path in sorted(args.input_dir.glob("*-aggTrades-*.csv")):
        symbol = path.name.split("-aggTrades-")[0]
        books, unit = aggregate(path, steps)
        for name, step, book in zip(names, steps, books, strict=True):
            if book:
                lines = kline_lines(book, step * unit)
                (args.out_dir / f"{symbol}-{name}.csv").write_text("".join(lines))


if __name__ == "__main__":
    main()
