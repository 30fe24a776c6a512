"""Durable storage of klines: SQLite by default, PostgreSQL for larger set-ups, one interface.

``open_sink("klines.sqlite")`` or ``open_sink("postgresql://…")`` gives a :class:`Sink`;
:func:`read_klines` reads either back as numpy structured arrays.
"""

from __future__ import annotations

from kline_rs.storage.base import (
    BacklogFullError,
    Placement,
    Sink,
    StorageError,
    StoredState,
    StoreUnavailableError,
    is_postgres_url,
)
from kline_rs.storage.read import STORED_DTYPE, read_klines
from kline_rs.storage.sqlite import SqliteSink


def open_sink(target: str, *, venue: str = "spot", tz_offset: str | None = None) -> Sink:
    """A sink for an SQLite path or a ``postgresql://`` URL."""
    if is_postgres_url(target):
        from kline_rs.storage.postgres import PostgresSink

        return PostgresSink(target, venue=venue, tz_offset=tz_offset)
    return SqliteSink(target, venue=venue, tz_offset=tz_offset)


__all__ = [
    "STORED_DTYPE",
    "BacklogFullError",
    "Placement",
    "Sink",
    "SqliteSink",
    "StorageError",
    "StoreUnavailableError",
    "StoredState",
    "open_sink",
    "read_klines",
]
