"""A klines query string checked as Binance checks it, into a :class:`KlineQuery`.

Binance's rules, and where each was found (besides its error-code list, see ``errors.py``):

- ``limit``: default 500; spot at most 1000, USD-M and COIN-M at most 1500 (the venues' kline
  docs, ``kline_rs.venues``). Past it: HTTP 400 ``-1130 Data sent for parameter 'limit' is not
  valid.`` — measured on futures and recorded in public client code (a testnet note: 1500 → 200,
  1501 → -1130; ccxt/ccxt#9904 shows the same answer for another endpoint's limit); spot is
  taken to answer alike. ``limit=0`` gets the same answer here (not checked against Binance).
- ``startTime`` > ``endTime``: futures answer HTTP 400 ``-1023 Start time is greater than end
  time.`` (ccxt maps -1023 only for its linear and inverse markets; python-binance issue #1052
  and PR #1165 show futures raising it), while spot returns no klines: the spot error list has
  no -1023, and python-binance PR #1165 (2022) relied on spot answering ``[]``.
- With ``startTime``: the earliest ``limit`` klines opening at or after it; with only
  ``endTime``: the latest ``limit`` opening at or before it; with neither: the latest
  (the spot kline docs; the package's fake exchange does the same).
- ``timeZone`` (spot): hours or hours:minutes within [-12:00, +14:00]; it places 1d and longer
  periods, ``startTime``/``endTime`` stay UTC (Binance's docs). A value outside: ``-1130`` here
  (not checked against Binance). Accepted on the futures paths too (an extension).
- A parameter twice: ``-1101 Duplicate values for a parameter detected.``; an unknown one:
  ``-1104 Not all sent parameters were read…`` (python-binance issue #172 shows Binance's text);
  a non-numeric time or limit: ``-1100 Illegal characters found in parameter…`` with Binance's
  ``'^[0-9]{1,20}$'`` (python-binance issue #419 shows Binance's text).
- Symbol: Binance refuses lower case and other characters with -1100 and an unknown symbol
  with ``-1121 Invalid symbol.``; here the legal range is the core's symbol rule.
- Interval: ``-1120 Invalid interval.`` for a name that is none. Besides Binance's 16, any
  fixed interval the core takes (``10s``, ``7m``, ``2d``) is served, in its canonical spelling
  only (``60m`` is ``1h``: refused, as Binance would).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from multidict import MultiMapping

from kline_rs._core import KlineError, interval_name, symbol_name, tz_offset_name
from kline_rs.serve.errors import (
    SYMBOL_PATTERN,
    duplicate_parameter,
    illegal_characters,
    invalid_interval,
    invalid_value,
    mandatory,
    query_too_long,
    start_after_end,
    too_many_parameters,
    unread_parameters,
)
from kline_rs.venues import Venue

#: Binance's default ``limit``.
DEFAULT_LIMIT = 500
#: The longest query string read (longer: HTTP 414).
MAX_QUERY_CHARS = 2048
#: The most parameters one request may send.
MAX_PARAMETERS = 16
#: Times past this (ms; year 285 616) are refused rather than computed with.
MAX_TIME_MS = 2**53
#: What a klines request may send.
KLINE_PARAMETERS = frozenset({"symbol", "interval", "startTime", "endTime", "limit", "timeZone"})


@dataclass(frozen=True)
class KlineQuery:
    """A checked klines request. ``empty``: a window that holds nothing (spot's answer to
    ``startTime`` > ``endTime``)."""

    symbol: str
    interval: str
    start_ms: int | None
    end_ms: int | None
    limit: int
    tz_offset: str | None
    empty: bool = False


def check_length(query_string: str) -> None:
    if len(query_string) > MAX_QUERY_CHARS:
        raise query_too_long(MAX_QUERY_CHARS)


def parameters(query: MultiMapping[str], allowed: frozenset[str] | None) -> dict[str, str]:
    """The query as one value per name: a name given twice is -1101, more than
    :data:`MAX_PARAMETERS` too; a name not in ``allowed`` (None: any) is -1104."""
    if len(query) > MAX_PARAMETERS:
        raise too_many_parameters(
            f"Too many parameters; expected at most {MAX_PARAMETERS} and received {len(query)}."
        )
    out: dict[str, str] = {}
    for name, value in query.items():
        if name in out:
            raise duplicate_parameter(name[:40])
        out[name] = value
    if allowed is not None and any(name not in allowed for name in out):
        read = sum(name in allowed for name in out)
        raise unread_parameters(read, len(out))
    return out


def _int(params: Mapping[str, str], name: str) -> int | None:
    text = params.get(name)
    if text is None or text == "":
        return None
    if not (text.isascii() and text.isdigit() and len(text) <= 20):
        raise illegal_characters(name)
    value = int(text)
    if value > MAX_TIME_MS:
        raise invalid_value(name, f"At most {MAX_TIME_MS}.")
    return value


def raw_limit(params: Mapping[str, str]) -> int | None:
    """``limit`` as sent, if it is a number (for the request's weight, before any check)."""
    text = params.get("limit", "")
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 6 else None


def symbol_param(params: Mapping[str, str]) -> str:
    text = params.get("symbol")
    if not text:
        raise mandatory("symbol")
    try:
        if symbol_name(text) == text:
            return text
    except KlineError:
        pass
    raise illegal_characters("symbol", SYMBOL_PATTERN)


def interval_param(params: Mapping[str, str], venue: Venue) -> str:
    text = params.get("interval")
    if not text:
        raise mandatory("interval")
    try:
        name = interval_name(text)
    except KlineError:
        raise invalid_interval() from None
    if name != text or (name == "1s" and not venue.klines_1s):
        raise invalid_interval()
    return name


def tz_param(params: Mapping[str, str]) -> str | None:
    text = params.get("timeZone")
    if text is None or text == "":
        return None
    try:
        offset = tz_offset_name(text)
    except KlineError:
        raise invalid_value(
            "timeZone", "Give hours or hours:minutes within -12:00..+14:00."
        ) from None
    return None if offset == "+00:00" else offset


def kline_query(params: Mapping[str, str], venue: Venue) -> KlineQuery:
    """Binance's checks, in Binance's order of parameters, for ``venue``'s path."""
    symbol = symbol_param(params)
    interval = interval_param(params, venue)
    start, end = _int(params, "startTime"), _int(params, "endTime")
    limit = _int(params, "limit")
    if limit is not None and not 1 <= limit <= venue.klines_max:
        raise invalid_value("limit", f"Must be within 1..{venue.klines_max}.")
    tz = tz_param(params)
    empty = start is not None and end is not None and start > end
    if empty and venue.futures:
        raise start_after_end()
    return KlineQuery(
        symbol, interval, start, end, DEFAULT_LIMIT if limit is None else limit, tz, empty
    )
