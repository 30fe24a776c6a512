"""The CSV inside a data.binance.vision zip, made from a market's tape, in each venue's form.

aggTrades: spot ``a,p,q,f,l,T,m,M`` with ``True``/``False`` and no header; futures a header and
``a,p,q,f,l,T,m`` with ``true``/``false`` and the symbol's own decimals. trades: the raw trades
the ``@trade`` stream sends (spot ``id,price,qty,quoteQty,time,isBuyerMaker,isBestMatch``;
futures a header, ``quote_qty``, on COIN-M ``base_qty`` = contracts * contract size / price).
klines: the 12 columns of the REST rows (futures with a header). Spot files from 2025 on carry
µs times, as Binance's do.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

from kline_rs._core import parse_fixed8
from kline_rs.fake.events import raw_trade_events, venue_trade
from kline_rs.fake.kline_rows import KlineBook, KlineRow
from kline_rs.fake.tape import SCALE, Instrument, Tape, fixed8
from kline_rs.public_data import DumpFile
from kline_rs.venues import Venue

DAY_MS = 86_400_000
#: Spot dumps switched to µs times from this day on.
SPOT_US_FROM = date(2025, 1, 1)
AGG_HEADER = "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"
KLINE_HEADER = (
    "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
    "taker_buy_quote_volume,ignore"
)
#: Klines in one monthly 1s file, with room to spare.
MAX_KLINES = 32 * 86_400


def day_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()) * 1000


def span_ms(f: DumpFile) -> tuple[int, int]:
    """[first ms, end ms) of the days the file holds."""
    return day_ms(f.day), day_ms(f.last_day) + DAY_MS


def dump_csv(f: DumpFile, venue: Venue, inst: Instrument, tape: Tape, book: KlineBook) -> str:
    """The CSV text of ``f`` from ``tape`` (the file's days must be over)."""
    lo_ms, hi_ms = span_ms(f)
    micros = not venue.futures and f.day >= SPOT_US_FROM
    if f.kind == "klines":
        assert f.interval is not None
        lines = _klines(f.interval, inst, tape, book, lo_ms, hi_ms, micros)
        header = KLINE_HEADER
    else:
        first, last = tape.index_of_time(lo_ms), tape.index_of_time(hi_ms)
        trades = range(first, last)
        if f.kind == "aggTrades":
            lines = [_agg_line(venue, inst, tape, i, micros) for i in trades]
            header = AGG_HEADER
        else:
            lines = [line for i in trades for line in _raw_lines(venue, inst, tape, i, micros)]
            quote = "base_qty" if venue.name == "coinm" else "quote_qty"
            header = f"id,price,qty,{quote},time,is_buyer_maker"
    if venue.futures:
        lines.insert(0, header)
    return "".join(line + "\n" for line in lines)


def _time(ms: int, micros: bool) -> int:
    return ms * 1000 if micros else ms


def _flag(value: bool, venue: Venue) -> str:
    return ("true" if value else "false") if venue.futures else str(value)


def _agg_line(venue: Venue, inst: Instrument, tape: Tape, i: int, micros: bool) -> str:
    if not venue.futures and tape.originals is None:  # the common case, from the columns
        a, f, last, ms, m = tape.a[i], tape.f[i], tape.l[i], _time(tape.t[i], micros), tape.m[i]
        return f"{a},{fixed8(tape.p[i])},{fixed8(tape.q[i])},{f},{last},{ms},{bool(m)},True"
    t = venue_trade(venue, inst, tape.trade(i))
    line = f"{t['a']},{t['p']},{t['q']},{t['f']},{t['l']},{_time(t['T'], micros)}"
    line += f",{_flag(t['m'], venue)}"
    return line if venue.futures else line + ",True"


def _raw_lines(venue: Venue, inst: Instrument, tape: Tape, i: int, micros: bool) -> list[str]:
    out = []
    for e in raw_trade_events(venue, inst, tape.trade(i), 0):
        p, q = parse_fixed8(e["p"]), parse_fixed8(e["q"])
        if venue.name == "coinm":
            quote = fixed8(q * inst.contract_size * SCALE // p)
        else:
            quote = fixed8(p * q // SCALE)
        line = f"{e['t']},{e['p']},{e['q']},{quote},{_time(e['T'], micros)},{_flag(e['m'], venue)}"
        out.append(line if venue.futures else line + ",True")
    return out


def _klines(
    interval: str,
    inst: Instrument,
    tape: Tape,
    book: KlineBook,
    lo_ms: int,
    hi_ms: int,
    micros: bool,
) -> list[str]:
    api_interval = "1M" if interval == "1mo" else interval
    rows = book.select(
        inst, tape, api_interval, until_ms=hi_ms - 1, start=lo_ms, end=hi_ms - 1, limit=MAX_KLINES
    )
    return [_kline_line(row, micros) for row in rows]


def _kline_line(row: KlineRow, micros: bool) -> str:
    fields = [str(v) for v in row]
    if micros:
        fields[0] = str(int(row[0]) * 1000)
        fields[6] = str((int(row[6]) + 1) * 1000 - 1)
    return ",".join(fields)
