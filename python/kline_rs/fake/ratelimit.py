"""Binance's IP request-weight limit: a rolling minute, 429 with Retry-After, then 418 bans.

Strict on purpose: one request before a 429's ``Retry-After`` is over earns a 418 ban (Binance
bans "repeatedly violating" clients, from 2 minutes up), so a client that passes here is safe
there. Refused requests add no weight.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_S = 60.0


@dataclass(frozen=True)
class Verdict:
    """200, 429 or 418; ``retry_after`` in whole seconds for the refusals."""

    status: int
    used: int
    retry_after: int = 0
    banned_until: float = 0.0


class WeightLimiter:
    """Request weight used in the last minute, per the clock (seconds, monotonic)."""

    def __init__(self, limit: int, clock: Callable[[], float], ban_seconds: int = 120) -> None:
        self.limit = limit
        self.ban_seconds = ban_seconds
        self._clock = clock
        self._hits: deque[tuple[float, int]] = deque()
        self._used = 0
        self._retry_until = 0.0
        self._banned_until = 0.0

    def used(self) -> int:
        self._expire(self._clock())
        return self._used

    def admit(self, weight: int, *, forced_retry_after: int | None = None) -> Verdict:
        """Counts the request or refuses it (``forced_retry_after``: refuse with a 429 anyway)."""
        now = self._clock()
        self._expire(now)
        if now < self._banned_until or now < self._retry_until:
            if now >= self._banned_until:
                self._banned_until = now + self.ban_seconds
            wait = math.ceil(self._banned_until - now)
            return Verdict(418, self._used, wait, self._banned_until)
        if forced_retry_after is not None:
            return self._too_many(now, forced_retry_after)
        if self._used + weight > self.limit:
            return self._too_many(now, self._seconds_until_fits(now, weight))
        self._hits.append((now, weight))
        self._used += weight
        return Verdict(200, self._used)

    def _too_many(self, now: float, wait: int) -> Verdict:
        self._retry_until = now + wait
        return Verdict(429, self._used, wait)

    def _seconds_until_fits(self, now: float, weight: int) -> int:
        used = self._used
        for at, w in self._hits:
            used -= w
            if used + weight <= self.limit:
                return max(1, math.ceil(at + WINDOW_S - now))
        return math.ceil(WINDOW_S)

    def _expire(self, now: float) -> None:
        while self._hits and self._hits[0][0] <= now - WINDOW_S:
            self._used -= self._hits.popleft()[1]
