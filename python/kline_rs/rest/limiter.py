"""A request-weight budget per wall-clock minute, shared by every call of one client.

Binance counts weight per IP in 1-minute windows that start on the minute. The limiter
reserves a request's weight before it is sent and waits for the next window when the budget
(a safety fraction of the limit) would be exceeded; it takes the server's count from each
response when that is higher (other processes may share the IP); after a 429 nothing is sent
until ``Retry-After`` has passed, and after a 418 nothing is sent until the ban ends.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable

from kline_rs.rest.errors import IpBannedError

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

#: Where 1 MINUTE windows begin and how long each is, in seconds of wall-clock time.
MINUTE = 60.0

#: Our windows start this long after the server's, so a clock a little ahead of Binance's
#: does not spend a new budget while the server still counts the old minute.
CLOCK_SLACK = 1.0
#: A 418 without Retry-After: Binance's shortest ban.
DEFAULT_BAN = 120.0


class WeightLimiter:
    """Reserve request weight against a per-minute budget; obey 429 and 418 back-offs.

    ``clock`` gives wall-clock seconds (``time.time``); ``sleep`` waits (``asyncio.sleep``).
    Both are injectable so tests run on virtual time.
    """

    def __init__(self, limit: int, *, safety: float, clock: Clock, sleep: Sleep) -> None:
        if limit <= 0 or not 0.0 < safety <= 1.0:
            raise ValueError(f"need limit > 0 and 0 < safety <= 1, got {limit}, {safety}")
        self._limit = limit
        self._safety = safety
        self._clock = clock
        self._sleep = sleep
        self._lock = asyncio.Lock()
        self._window = self._window_at(clock())
        self._used = 0
        self._resume_at = -math.inf
        self._banned_until = -math.inf

    @property
    def limit(self) -> int:
        """REQUEST_WEIGHT per minute."""
        return self._limit

    @property
    def budget(self) -> int:
        """The weight we allow ourselves per minute: ``limit`` times the safety fraction."""
        return max(1, int(self._limit * self._safety))

    @property
    def used(self) -> int:
        """Weight counted in the current window (ours or the server's, whichever is higher)."""
        self._roll(self._clock())
        return self._used

    def set_limit(self, limit: int) -> None:
        """Adopt the limit the server publishes (exchangeInfo ``rateLimits``)."""
        if limit > 0:
            self._limit = limit

    async def acquire(self, weight: int) -> int:
        """Wait until ``weight`` fits, reserve it, and return the window it was counted in.

        Raises :class:`IpBannedError` at once while a 418 ban lasts.
        """
        async with self._lock:  # FIFO: the first caller waiting is the first to send
            while True:
                now = self._clock()
                if now < self._banned_until:
                    left = self._banned_until - now
                    raise IpBannedError(f"IP banned by Binance for {left:.0f} s more", left)
                if now < self._resume_at:
                    await self._sleep(self._resume_at - now)
                    continue
                self._roll(now)
                # A request heavier than the whole budget goes alone in a fresh window.
                if self._used + weight <= self.budget or self._used == 0:
                    self._used += weight
                    return self._window
                await self._sleep(self._window_start(self._window + 1) - now)

    def observe(self, used: int, window: int) -> None:
        """Take the server's count for ``window`` (the window the request was counted in).

        A response that arrives in a later window says nothing about the current one. Our
        count stays when higher: reservations still in flight are not in the server's yet.
        """
        self._roll(self._clock())
        if window == self._window:
            self._used = max(self._used, used)

    def back_off(self, retry_after: float | None) -> None:
        """A 429: send nothing for ``retry_after`` seconds (or until the next window)."""
        now = self._clock()
        self._roll(now)
        if retry_after is None:
            retry_after = self._window_start(self._window + 1) - now
        self._resume_at = max(self._resume_at, now + retry_after)

    def ban(self, retry_after: float | None) -> float:
        """A 418: refuse every request for ``retry_after`` seconds; return that span."""
        span = DEFAULT_BAN if retry_after is None else retry_after
        self._banned_until = max(self._banned_until, self._clock() + span)
        return span

    def _roll(self, now: float) -> None:
        window = self._window_at(now)
        if window > self._window:
            self._window = window
            self._used = 0

    @staticmethod
    def _window_at(now: float) -> int:
        return math.floor((now - CLOCK_SLACK) / MINUTE)

    @staticmethod
    def _window_start(window: int) -> float:
        return window * MINUTE + CLOCK_SLACK
