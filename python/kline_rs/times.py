"""Times as people write them, wherever ms are taken: ms, ISO 8601 text, ``datetime``.

The text is read by the core (``kline_core::timestamp``): ``1577934000000``, ``"2020-01-02"``
(00:00 UTC), ``"2020-01-02T03:00"``, ``"2020-01-02 03:00:00.250+08:00"``. A time without an
offset — text or a naive ``datetime`` — is UTC, never the machine's local time.
"""

from __future__ import annotations

import operator
from datetime import date, datetime
from typing import SupportsIndex

from kline_rs._core import format_time, parse_time

#: A time given as ms since 1970, ISO 8601 text, a ``datetime`` or a ``date``.
TimeLike = SupportsIndex | str | datetime | date

__all__ = ["TimeLike", "format_time", "parse_time", "to_ms"]


def to_ms(value: TimeLike) -> int:
    """``value`` as Unix epoch ms (UTC); ints (numpy's too) are taken as ms already."""
    if isinstance(value, (str, date)):  # datetime is a date: both go through ISO text
        return parse_time(value if isinstance(value, str) else value.isoformat())
    if isinstance(value, bool):
        raise TypeError("a time is ms, ISO text or a datetime, not a bool")
    return operator.index(value)


def optional_ms(value: TimeLike | None) -> int | None:
    """:func:`to_ms`, with None kept (an open end of a range)."""
    return None if value is None else to_ms(value)
