"""An exact reference for klines that shares no code with kline_rs (issue 11).

Written from Binance's rules (../shared/DESIGN.md §1), in plain Python with ``Decimal`` and
``datetime``, deliberately slow and simple: the truth for tests whose expected klines would
otherwise come from the code under test. It is itself checked against Binance's own klines
(tests/test_oracle.py).

Rules: a trade belongs to the bucket ``[open, open + interval)`` holding its time ``T``; open /
close are the first / last price in aggTrade id order; volume Σ q; quote volume Σ trunc8(p·q)
(each trade's p·q cut to 8 decimals, then summed: spot Binance's rule; COIN-M: base-asset volume,
the exact Σ q·contractSize/p, cut to 8 decimals once); trades Σ (l - f + 1);
taker buy volumes over trades with ``m`` false; empty buckets between trades are flat at the
previous close. Intervals up to 1d are epoch-aligned (1d and up shifted by the time-zone
offset); 1w opens Monday 00:00; 1M on the 1st of the month.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import ROUND_DOWN, Context, Decimal
from typing import Any

EIGHT = Decimal("0.00000001")
#: 60 significant digits: a COIN-M trade's q·size/p need not terminate; its sum is cut to 8
#: decimals only when printed.
EXACT = Context(prec=60)
UNITS_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000}
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def trunc8(x: Decimal) -> Decimal:
    return x.quantize(EIGHT, rounding=ROUND_DOWN)


@dataclass
class Kline:
    open_time: int
    close_time: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = Decimal(0)
    quote_volume: Decimal = Decimal(0)
    trades: int = 0
    taker_buy_volume: Decimal = Decimal(0)
    taker_buy_quote_volume: Decimal = Decimal(0)
    first_trade_id: int = -1
    last_trade_id: int = -1
    ids: list[int] = field(default_factory=list, repr=False)

    def csv(self) -> str:
        """Binance's kline CSV line (12 columns, 8-decimal text)."""
        d = [self.open, self.high, self.low, self.close, self.volume]
        return ",".join(
            [str(self.open_time), *(f"{v:.8f}" for v in d), str(self.close_time),
             f"{self.quote_volume:.8f}", str(self.trades), f"{self.taker_buy_volume:.8f}",
             f"{self.taker_buy_quote_volume:.8f}", "0"]
        )  # fmt: skip

    def ints(self) -> dict[str, int]:
        """Prices and volumes as integers at 1e-8 (quote volumes too)."""
        scale = Decimal(10**8)
        out = {k: int(getattr(self, k) * scale) for k in (
            "open", "high", "low", "close", "volume", "quote_volume", "taker_buy_volume",
            "taker_buy_quote_volume")}  # fmt: skip
        out |= {k: getattr(self, k) for k in (
            "open_time", "close_time", "trades", "first_trade_id", "last_trade_id")}  # fmt: skip
        return out


def bucket(t: int, interval: str, *, tz_ms: int = 0, per_ms: int = 1) -> tuple[int, int]:
    """(open, next open) of the bucket holding ``t`` (ticks of ``per_ms`` per ms)."""
    unit = interval[-1]
    n = int(interval[:-1])
    if unit == "M":
        local = EPOCH + timedelta(milliseconds=t // per_ms + tz_ms)
        first = datetime(local.year, local.month, 1, tzinfo=timezone.utc)
        year, month = divmod(local.month - 1 + n, 12)
        nxt = datetime(local.year + year, month + 1, 1, tzinfo=timezone.utc)
        to_ms = lambda d: (d - EPOCH) // timedelta(milliseconds=1) - tz_ms  # noqa: E731
        return to_ms(first) * per_ms, to_ms(nxt) * per_ms
    length = n * UNITS_MS[unit]
    shift = tz_ms if length >= UNITS_MS["d"] else 0
    # Weeks start on Mondays: 1970-01-05 is the first.
    origin = 4 * UNITS_MS["d"] if unit == "w" else 0
    local = t // per_ms + shift - origin
    start = local - local % length + origin - shift
    return start * per_ms, (start + length) * per_ms


def klines(
    trades: Iterable[Mapping[str, Any]],
    interval: str,
    *,
    tz_ms: int = 0,
    per_ms: int = 1,
    contract_size: int | None = None,
) -> list[Kline]:
    """Klines of ``interval`` from the first trade's bucket to the last's. ``trades``: dicts
    with Binance's aggTrade keys ``a p q f l T m`` (p and q as decimal text). With
    ``contract_size`` (COIN-M) quote volumes are exact base-asset volume (cut when printed)."""
    ordered = sorted(trades, key=lambda t: int(t["a"]))
    out: list[Kline] = []
    seen: set[int] = set()
    for t in ordered:
        if int(t["a"]) in seen:
            continue  # a duplicate aggTrade id
        seen.add(int(t["a"]))
        time = int(t["T"])
        start, nxt = bucket(time, interval, tz_ms=tz_ms, per_ms=per_ms)
        if out and start < out[-1].open_time:
            continue  # late: its bucket has closed
        p, q = Decimal(str(t["p"])), Decimal(str(t["q"]))
        while out and out[-1].close_time + 1 < start:
            prev = out[-1]
            s, n = bucket(prev.close_time + 1, interval, tz_ms=tz_ms, per_ms=per_ms)
            out.append(Kline(s, n - 1, prev.close, prev.close, prev.close, prev.close))
        if not out or out[-1].open_time != start:
            out.append(Kline(start, nxt - 1, p, p, p, p, first_trade_id=int(t["f"])))
        k = out[-1]
        k.high, k.low, k.close = max(k.high, p), min(k.low, p), p
        k.volume += q
        value = trunc8(p * q) if contract_size is None else EXACT.divide(q * contract_size, p)
        k.quote_volume += value
        k.trades += int(t["l"]) - int(t["f"]) + 1
        if not t["m"]:
            k.taker_buy_volume += q
            k.taker_buy_quote_volume += value
        k.last_trade_id = int(t["l"])
    return out


#: The fields a kline is compared on, in Binance's order.
FIELDS = (
    "open_time", "close_time", "open", "high", "low", "close", "volume", "quote_volume",
    "trades", "taker_buy_volume", "taker_buy_quote_volume", "first_trade_id", "last_trade_id",
)  # fmt: skip


def printed(fields: Mapping[str, Any]) -> dict[str, int]:
    """A kline_rs kline (a dict, a ClosedKline's fields or a numpy row: quote volumes exact at
    1e-16) as Binance prints it: ints at 1e-8, quote volumes cut to 8 decimals."""
    out = {f: int(fields[f]) for f in FIELDS}
    for f in ("quote_volume", "taker_buy_quote_volume"):
        out[f] //= 10**8
    return out


def by_open_time(
    trades: Iterable[Mapping[str, Any]], interval: str, *, contract_size: int | None = None
) -> dict[int, dict[str, int]]:
    """:func:`klines` as printed ints, by open time."""
    return {k.open_time: k.ints() for k in klines(trades, interval, contract_size=contract_size)}
