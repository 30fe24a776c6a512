"""Counters of what the fake exchange did, for tests to assert on."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

#: REST requests remembered (path and query), newest last.
RECENT_REQUESTS = 10_000


@dataclass
class ExchangeStats:
    """Totals since the exchange started (live: read them at any time)."""

    connections_opened: int = 0
    frames_sent: int = 0
    frames_dropped: int = 0
    frames_duplicated: int = 0
    server_closes: int = 0
    rest_requests: int = 0
    #: The latest RECENT_REQUESTS REST requests, as path?query.
    recent_requests: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT_REQUESTS))
    #: The latest RECENT_REQUESTS ``/data/`` requests: (path, Range header or None).
    dump_requests: deque[tuple[str, str | None]] = field(
        default_factory=lambda: deque(maxlen=RECENT_REQUESTS)
    )
    rest_429: int = 0
    rest_418: int = 0
