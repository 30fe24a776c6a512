"""data.binance.vision: which file holds which symbol's trades or klines for which day or month.

One layout, read by the downloader (``kline_rs.download``) and the fake exchange that serves
the same paths (``kline_rs.fake.public_data``). As Binance's public-data scripts
(github.com/binance/binance-public-data, ``python/utility.py``) build it:

    data/{spot|futures/um|futures/cm}/{daily|monthly}/{aggTrades|trades|klines}/{SYMBOL}/
        [{interval}/]{SYMBOL}-{aggTrades|trades|interval}-{YYYY-MM-DD|YYYY-MM}.zip

and the same path + ``.CHECKSUM``: ``"<sha256 hex>  <zip name>"``. Daily kline files exist for
1s..1d (1s on spot only); 3d, 1w and the month (``1mo`` in file names, ``1M`` in the API) are
monthly only.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal, cast, get_args

from kline_rs._core import KlineError
from kline_rs.venues import VenueName

#: Download bounds (here, not in ``download``: the CLI reads them without importing aiohttp).
DEFAULT_JOBS = 4
#: Most files in flight at once (data.binance.vision is a CDN, but it is shared).
MAX_JOBS = 16
DEFAULT_RETRIES = 5
MAX_RETRIES = 20

BASE_URL = "https://data.binance.vision"
Kind = Literal["aggTrades", "trades", "klines"]
KINDS: tuple[Kind, ...] = get_args(Kind)
Period = Literal["daily", "monthly"]
#: ``auto``: monthly files for the calendar months the range holds whole, daily for the rest.
Periods = Literal["auto", "daily", "monthly"]
MARKETS: dict[VenueName, str] = {"spot": "spot", "usdm": "futures/um", "coinm": "futures/cm"}
DAILY_INTERVALS = (
    "1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d",
)  # fmt: skip
MONTHLY_INTERVALS = (*DAILY_INTERVALS, "3d", "1w", "1mo")
#: Most files one request may plan (ten years of days for 27 symbols), and its longest span.
MAX_FILES = 100_000
MAX_SPAN_DAYS = 100 * 366

_PATH = re.compile(
    r"^/?data/(?P<market>spot|futures/um|futures/cm)/(?P<period>daily|monthly)/"
    r"(?P<kind>aggTrades|trades|klines)/(?P<symbol>[A-Z0-9_]{1,32})/(?:(?P<interval>\w{2,3})/)?"
    r"(?P=symbol)-(?P<what>\w{2,9})-(?P<stamp>\d{4}-\d{2}(?:-\d{2})?)\.zip$"
)


class LayoutError(KlineError):
    """A request no data.binance.vision file can answer (kind, interval, dates)."""


@dataclass(frozen=True, order=True)
class DumpFile:
    """One zip on data.binance.vision; ``day`` is the month's first day for monthly files."""

    venue: VenueName
    kind: Kind
    symbol: str
    period: Period
    day: date
    interval: str | None = None

    @property
    def stamp(self) -> str:
        return self.day.isoformat() if self.period == "daily" else self.day.strftime("%Y-%m")

    @property
    def name(self) -> str:
        return f"{self.symbol}-{self.interval or self.kind}-{self.stamp}.zip"

    @property
    def path(self) -> str:
        """Relative to the base URL (and to the download directory)."""
        folder = f"data/{MARKETS[self.venue]}/{self.period}/{self.kind}/{self.symbol}/"
        return folder + (f"{self.interval}/" if self.interval else "") + self.name

    @property
    def last_day(self) -> date:
        if self.period == "daily":
            return self.day
        return self.day.replace(day=calendar.monthrange(self.day.year, self.day.month)[1])

    def days(self) -> list[DumpFile]:
        """The daily files a monthly one holds (itself if daily)."""
        if self.period == "daily":
            return [self]
        count = (self.last_day - self.day).days + 1
        days = (self.day + timedelta(d) for d in range(count))
        return [
            DumpFile(self.venue, self.kind, self.symbol, "daily", d, self.interval) for d in days
        ]


def parse_path(path: str) -> DumpFile | None:
    """``data/spot/daily/…/BTCUSDT-aggTrades-2024-01-02.zip`` → its :class:`DumpFile`; None
    for anything else (a path naming two different things is not a dump file)."""
    m = _PATH.match(path)
    if m is None:
        return None
    venue = next(v for v, market in MARKETS.items() if market == m["market"])
    kind = cast(Kind, m["kind"])
    period = cast(Period, m["period"])
    interval = m["interval"]
    daily = len(m["stamp"]) == 10
    if (period == "daily") != daily or (kind == "klines") != (interval is not None):
        return None
    if m["what"] != (interval or kind):
        return None
    try:
        day = date.fromisoformat(m["stamp"] if daily else m["stamp"] + "-01")
    except ValueError:
        return None
    return DumpFile(venue, kind, m["symbol"], period, day, interval)


def interval_file_name(interval: str) -> str:
    """An interval as file names spell it: the API's ``1M`` is ``1mo``."""
    name = "1mo" if interval == "1M" else interval
    if name not in MONTHLY_INTERVALS:
        raise LayoutError(f"interval {interval!r}: data.binance.vision has {MONTHLY_INTERVALS}")
    return name


@dataclass(frozen=True)
class Planned:
    """A file to fetch and, for a monthly one chosen by ``auto``, the days to fetch instead if
    the month is not published (yet)."""

    file: DumpFile
    fallback: tuple[DumpFile, ...] = ()


def plan(
    venue: VenueName,
    kind: Kind,
    symbols: list[str],
    start: date,
    end: date,
    *,
    intervals: list[str] | None = None,
    periods: Periods = "auto",
) -> list[Planned]:
    """The files covering ``start``..``end`` (inclusive) for each symbol (and interval).

    ``daily``: one per day. ``monthly``: one per month the range touches. ``auto``: a month the
    range holds whole is one monthly file (its days are the fallback), the other days daily;
    intervals with no daily files (3d, 1w, 1mo) take every month the range touches.
    """
    if start > end:
        raise LayoutError(f"start {start} is after end {end}")
    if (end - start).days >= MAX_SPAN_DAYS:
        raise LayoutError(f"{start}..{end} spans more than {MAX_SPAN_DAYS} days")
    if kind == "klines":
        if not intervals:
            raise LayoutError("klines need an interval, e.g. --interval 1m")
        names = [interval_file_name(i) for i in intervals]
        if venue != "spot" and "1s" in names:
            raise LayoutError("futures have no 1s klines")
    elif intervals:
        raise LayoutError(f"{kind} files have no interval (only klines do)")
    else:
        names = [""]
    modes: list[tuple[str | None, Periods]] = []
    for name in names:
        interval = name or None
        monthly_only = interval is not None and interval not in DAILY_INTERVALS
        if monthly_only and periods == "daily":
            raise LayoutError(f"{interval} klines are published monthly only")
        modes.append((interval, "monthly" if monthly_only else periods))
    # Every symbol has as many files as the first: count before making them all.
    count = sum(len(_files(venue, kind, "X", i, start, end, m)) for i, m in modes)
    if count * len(symbols) > MAX_FILES:
        raise LayoutError(f"more than {MAX_FILES:,} files asked for: narrow the dates or symbols")
    return [
        planned
        for symbol in symbols
        for interval, mode in modes
        for planned in _files(venue, kind, symbol, interval, start, end, mode)
    ]


def _files(
    venue: VenueName,
    kind: Kind,
    symbol: str,
    interval: str | None,
    start: date,
    end: date,
    mode: Periods,
) -> list[Planned]:
    out: list[Planned] = []
    month = start.replace(day=1)
    while month <= end:
        whole = DumpFile(venue, kind, symbol, "monthly", month, interval)
        days = [d for d in whole.days() if start <= d.day <= end]
        if mode == "monthly":
            out.append(Planned(whole))
        elif mode == "auto" and len(days) == len(whole.days()):
            out.append(Planned(whole, tuple(days)))
        else:
            out += [Planned(d) for d in days]
        month = whole.last_day + timedelta(1)
    return out
