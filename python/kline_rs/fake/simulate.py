"""Deterministic simulated market writing Binance spot aggTrades CSV dumps."""

from __future__ import annotations

import argparse
import datetime as dt
import math
import pathlib
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

SCALE = 10**8
MAX_FIXED = 9 * 10**18
CHUNK = 1 << 15
UNITS = {"ms": 1_000, "us": 1_000_000}
# (name, price, tick, lot): realistic spot instruments; index 1 is the huge-volume one.
CATALOGUE = [
    ("BTCUSDT", 62_000.0, 0.01, 1e-5),
    ("PEPEUSDT", 0.0000085, 1e-8, 1.0),
    ("ETHUSDT", 3_400.0, 0.01, 1e-4),
    ("SOLUSDT", 130.0, 0.01, 1e-3),
    ("BNBUSDT", 410.0, 0.1, 1e-3),
    ("XRPUSDT", 0.62, 0.0001, 1.0),
    ("DOGEUSDT", 0.12, 0.00001, 1.0),
    ("SHIBUSDT", 0.000028, 1e-8, 1.0),
]
# fmt: off
TICKERS = [
    "ADA", "AVAX", "LINK", "DOT", "TRX", "LTC", "BCH", "NEAR", "UNI", "ICP", "ETC", "APT", "FIL",
    "ATOM", "ARB", "OP", "XLM", "INJ", "IMX", "VET", "MKR", "GRT", "SUI", "ALGO", "LDO", "STX",
    "FTM", "SEI", "TIA", "ORDI", "RUNE", "AAVE", "EGLD", "SAND", "MANA", "AXS", "GALA", "CHZ",
    "FLOW", "KAVA", "ZEC", "DASH", "XTZ", "EOS", "IOTA", "NEO", "THETA",
]
# fmt: on
RAW_SIZES = np.array([0.80, 0.10, 0.05, 0.03, 0.02]).cumsum()
Ints = npt.NDArray[np.int64]
Bytes = npt.NDArray[np.uint8]
Columns = dict[str, npt.NDArray[Any]]
DIGITS4 = np.array([list(f"{i:04d}".encode()) for i in range(10_000)], np.uint8).view("<u4").ravel()


@dataclass(frozen=True)
class Instrument:
    """One symbol: start price, tick and lot as integers at 1e-8."""

    name: str
    price: int
    tick: int
    lot: int


def instruments(count: int, rng: np.random.Generator) -> list[Instrument]:
    """Catalogue symbols first, then random ones with tick/lot fitted to their price level."""
    out = [
        Instrument(n, round(p * SCALE), round(t * SCALE), round(lot * SCALE))
        for n, p, t, lot in CATALOGUE
    ]
    for i in range(len(out), count):
        name = (
            f"{TICKERS[i - len(CATALOGUE)]}USDT"
            if i - len(CATALOGUE) < len(TICKERS)
            else f"X{i:03d}USDT"
        )
        price = 10 ** rng.uniform(-6.5, 3.5)
        mag = math.floor(math.log10(price))
        tick = 10 ** min(6, max(0, mag + 8 - 4))
        lot = 10 ** min(8, max(3, 8 - mag - 1))
        out.append(Instrument(name, max(tick, round(price * SCALE) // tick * tick), tick, lot))
    return out[:count]


def minute_weights(rank: int, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """Per-minute intensity: diurnal cycle, noise, bursts, quiet minutes and dead hours."""
    minute = np.arange(1440)
    w = (1.0 + 0.6 * np.sin(2 * np.pi * (minute / 1440 - 0.35))) * rng.lognormal(0.0, 0.8, 1440)
    w[rng.random(1440) < 0.02] *= 15.0
    w[rng.random(1440) < 0.002 * rank] = 0.0
    if rank >= 10:
        w[np.repeat(rng.random(24) < 0.1, 60)] = 0.0
    if not w.any():
        w[rng.integers(1440)] = 1.0
    weights: npt.NDArray[np.float64] = w / w.sum()
    return weights


def event_times(n_events: int, rank: int, unit: int, rng: np.random.Generator) -> Ints:
    """Sorted event times since midnight, some snapped onto a minute start or just before it."""
    minute_len = 60 * unit
    per_minute = rng.multinomial(n_events, minute_weights(rank, rng))
    t = np.sort(
        np.repeat(np.arange(1440, dtype=np.int64) * minute_len, per_minute)
        + rng.integers(0, minute_len, n_events)
    )
    minute = t // minute_len
    first = np.flatnonzero(np.diff(minute, prepend=-1))
    last = np.append(first[1:] - 1, n_events - 1)
    snap_first = first[rng.random(first.size) < 0.3]
    t[snap_first] = minute[snap_first] * minute_len
    snap_last = last[(rng.random(last.size) < 0.15) & (minute[last] < 1439)]
    t[snap_last] = (minute[snap_last] + 1) * minute_len - 1
    return t


def trades_for(
    inst: Instrument, rank: int, n: int, day0: int, unit: int, rng: np.random.Generator
) -> Columns:
    """One symbol's integer columns: events of 1+ aggTrades sharing a time and taker side."""
    new_event = rng.random(n) < 0.65
    new_event[0] = True
    event = np.cumsum(new_event) - 1
    n_events = int(event[-1]) + 1
    side_sell = rng.random(n_events) < 0.5
    steps = rng.normal(0.0, rng.uniform(0.01, 0.06) / math.sqrt(n_events), n_events)
    event_ticks = np.rint(inst.price / inst.tick * np.exp(np.cumsum(steps))).astype(np.int64)
    sweep = np.arange(n) - np.flatnonzero(new_event)[event]
    ticks = np.maximum(1, event_ticks[event] + np.where(side_sell[event], -sweep, sweep))
    notional = rng.lognormal(math.log(300.0), 1.6, n)
    qty = notional / (inst.price / SCALE)
    if rank == 1:
        qty *= max(1.0, 2.5e13 / n / qty.mean())
    lots = np.clip(np.rint(qty * SCALE / inst.lot), 1, MAX_FIXED // inst.lot).astype(np.int64)
    raw = np.searchsorted(RAW_SIZES, rng.random(n) * RAW_SIZES[-1], side="right") + 1
    first = int(rng.integers(10**7, 3 * 10**9)) + np.cumsum(raw) - raw
    return {
        "a": int(rng.integers(10**6, 2 * 10**9)) + np.arange(n, dtype=np.int64),
        "p": ticks * inst.tick,
        "q": lots * inst.lot,
        "f": first,
        "l": first + raw - 1,
        "T": day0 + event_times(n_events, rank, unit, rng)[event],
        "m": side_sell[event],
    }


def ascii_digits(v: Ints, width: int) -> Bytes:
    """(n, width) uint8 matrix of zero-padded decimal digits of non-negative ints."""
    groups = -(-width // 4)
    buf = np.empty((v.size, groups), "<u4")
    for g in range(groups - 1, 0, -1):
        v, r = np.divmod(v, 10_000)
        buf[:, g] = DIGITS4[r]
    buf[:, 0] = DIGITS4[v]
    return buf.view(np.uint8)[:, 4 * groups - width :]


def const(text: bytes, k: int) -> tuple[Bytes, None]:
    """A literal repeated on k rows."""
    return np.broadcast_to(np.frombuffer(text, np.uint8), (k, len(text))), None


def integer(v: Ints, width: int) -> tuple[Bytes, npt.NDArray[np.bool_]]:
    """Digits of v with a mask dropping leading zeros (the last digit always kept)."""
    d = ascii_digits(v, width)
    keep = np.ones(d.shape, bool)
    np.logical_or.accumulate(d[:, :-1] != 48, axis=1, out=keep[:, :-1])
    return d, keep


def render(cols: Columns, widths: dict[str, int]) -> bytes:
    """CSV bytes of one chunk: a fixed-width byte matrix compacted by a keep-mask."""
    k = cols["a"].size
    sep = const(b",", k)
    parts = [integer(cols["a"], widths["a"]), sep]
    for name in "pq":
        parts += [
            integer(cols[name] // SCALE, widths[name]),
            const(b".", k),
            (ascii_digits(cols[name] % SCALE, 8), None),
            sep,
        ]
    for name in "flT":
        parts += [integer(cols[name], widths[name]), sep]
    m = cols["m"][:, None]
    flag = np.where(m, np.frombuffer(b"True ", np.uint8), np.frombuffer(b"False", np.uint8))
    parts += [(flag, np.hstack([np.ones((k, 4), bool), ~m])), const(b",True\n", k)]
    matrix = np.concatenate([p for p, _ in parts], axis=1)
    keep = np.concatenate([np.ones(p.shape, bool) if mk is None else mk for p, mk in parts], axis=1)
    text: bytes = matrix[keep].tobytes()
    return text


def write_csv(path: pathlib.Path, cols: Columns) -> None:
    """Write columns as a headerless aggTrades CSV, chunk by chunk."""
    ints = {k: v for k, v in cols.items() if k != "m"}
    widths = {k: len(str(int(v.max() // SCALE if k in "pq" else v.max()))) for k, v in ints.items()}
    with path.open("wb") as fh:
        for s in range(0, cols["a"].size, CHUNK):
            fh.write(render({k: v[s : s + CHUNK] for k, v in cols.items()}, widths))


def generate_day(
    out_dir: str | pathlib.Path,
    *,
    symbols: int = 50,
    trades: int = 1_000_000,
    date: str = "2024-03-04",
    seed: int = 7,
    time_unit: str = "ms",
) -> list[pathlib.Path]:
    """Write one day of aggTrades for `symbols` symbols, `trades` in total; return the paths."""
    if time_unit not in UNITS:
        raise ValueError(f"time_unit must be one of {sorted(UNITS)}")
    if not 1 <= symbols <= trades:
        raise ValueError("need 1 <= symbols <= trades")
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    unit = UNITS[time_unit]
    day0 = int(dt.datetime.fromisoformat(date).replace(tzinfo=dt.timezone.utc).timestamp()) * unit
    rng = np.random.default_rng(seed)
    insts = instruments(symbols, rng)
    zipf = np.arange(1, symbols + 1) ** -1.1
    counts = 1 + rng.multinomial(trades - symbols, zipf / zipf.sum())
    paths = []
    for rank, (inst, n) in enumerate(zip(insts, counts, strict=True)):
        cols = trades_for(inst, rank, int(n), day0, unit, np.random.default_rng([seed, rank]))
        path = out / f"{inst.name}-aggTrades-{date}.csv"
        write_csv(path, cols)
        paths.append(path)
    return paths


def main() -> None:
    """Command line: python -m kline_rs.fake.simulate OUT [--symbols N] [--trades N] ..."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out", type=pathlib.Path)
    ap.add_argument("--symbols", type=int, default=50)
    ap.add_argument("--trades", type=int, default=1_000_000)
    ap.add_argument("--date", default="2024-03-04")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--time-unit", choices=sorted(UNITS), default="ms")
    args = ap.parse_args()
    start = time.perf_counter()
    paths = generate_day(
        args.out,
        symbols=args.symbols,
        trades=args.trades,
        date=args.date,
        seed=args.seed,
        time_unit=args.time_unit,
    )
    seconds = time.perf_counter() - start
    print(f"wrote {len(paths)} files, {args.trades} trades to {args.out} in {seconds:.1f} s")


if __name__ == "__main__":
    main()
