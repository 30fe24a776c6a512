"""Who may ask, and how much: the token check, each client's request weight per minute and
requests in flight. Shared by every endpoint (REST here, the websocket streams): a handler
calls :meth:`Guard.client` to authenticate a request and learn its client's key, then
:meth:`Guard.admit` (or :meth:`Guard.charge`) with the request's weight.

As Binance: weight is counted per client in wall-clock minutes (a window starts on each
minute), every answer carries the client's count in ``X-MBX-USED-WEIGHT-1M``, and a request
past the limit is refused with HTTP 429, ``-1003`` and ``Retry-After`` (seconds to the next
minute) without adding weight. Unlike Binance, nobody is banned (no 418).

A client is its token when tokens are configured (each token its own budget), else its remote
address. The token is taken from ``X-MBX-APIKEY: <token>`` (where Binance's clients send their
API key) or ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from aiohttp import web

from kline_rs.serve.errors import BinanceError, too_many_queued, too_much_weight, unauthorized

#: REQUEST_WEIGHT per client per minute by default: Binance spot's IP limit.
DEFAULT_WEIGHT_PER_MINUTE = 6000
#: Requests one client may have in flight at once; more are refused (429, -1003).
DEFAULT_MAX_IN_FLIGHT = 8
#: Clients tracked in one minute; past it new clients are refused until the minute turns.
MAX_CLIENTS = 100_000
#: The longest token taken (a longer header is refused as a wrong token).
MAX_TOKEN_CHARS = 256
WINDOW_S = 60


@dataclass(frozen=True)
class Verdict:
    """The client's weight used in this minute, including the request if admitted."""

    used: int


def presented_token(request: web.BaseRequest) -> str | None:
    """The token a request carries: ``X-MBX-APIKEY``, else ``Authorization: Bearer``."""
    key = request.headers.get("X-MBX-APIKEY")
    if key:
        return key
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    return (value.strip() or None) if scheme.lower() == "bearer" else None


class Guard:
    """The token check and the per-client bounds of one server."""

    def __init__(
        self,
        *,
        tokens: Sequence[str] = (),
        weight_per_minute: int = DEFAULT_WEIGHT_PER_MINUTE,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if any(not t or len(t) > MAX_TOKEN_CHARS for t in tokens):
            raise ValueError(f"a token is 1..{MAX_TOKEN_CHARS} characters")
        if weight_per_minute < 1 or max_in_flight < 1:
            raise ValueError("weight_per_minute and max_in_flight are at least 1")
        self.tokens = tuple(tokens)
        self.weight_per_minute = weight_per_minute
        self.max_in_flight = max_in_flight
        self.max_clients = max_clients
        self._clock = clock
        self._minute = -1
        self._used: dict[str, int] = {}
        self._in_flight: dict[str, int] = {}

    def client(self, request: web.BaseRequest) -> str:
        """The key of the client sending ``request``; :class:`BinanceError` (401, -2015)
        when tokens are required and it carries none of them."""
        if not self.tokens:
            return f"ip:{request.remote or '?'}"
        got = presented_token(request)
        if got is None or len(got) > MAX_TOKEN_CHARS:
            raise unauthorized()
        for i, token in enumerate(self.tokens):
            if hmac.compare_digest(got.encode(), token.encode()):
                return f"token:{i}"
        raise unauthorized()

    def _roll(self) -> float:
        now = self._clock()
        minute = math.floor(now / WINDOW_S)
        if minute != self._minute:
            self._minute, self._used = minute, {}
        return now

    def used(self, key: str) -> int:
        """The client's weight used in this minute."""
        self._roll()
        return self._used.get(key, 0)

    def admit(self, key: str, weight: int) -> Verdict:
        """Counts ``weight`` for the client, or refuses the request (429, nothing counted)."""
        now = self._roll()
        used = self._used.get(key, 0)
        fresh = key not in self._used
        if used + weight > self.weight_per_minute or (
            fresh and len(self._used) >= self.max_clients
        ):
            retry = max(1, math.ceil((self._minute + 1) * WINDOW_S - now))
            refusal = too_much_weight(self.weight_per_minute, retry)
            refusal.headers["X-MBX-USED-WEIGHT-1M"] = str(used)
            raise refusal
        self._used[key] = used + weight
        return Verdict(used + weight)

    def charge(self, key: str, weight: int) -> int:
        """Adds weight found only while answering (never refuses); the client's new count."""
        self._roll()
        self._used[key] = self._used.get(key, 0) + weight
        return self._used[key]

    @contextmanager
    def in_flight(self, key: str) -> Iterator[None]:
        """Holds one of the client's :attr:`max_in_flight` places for the request."""
        count = self._in_flight.get(key, 0)
        if count >= self.max_in_flight:
            raise too_many_queued(self.max_in_flight)
        self._in_flight[key] = count + 1
        try:
            yield
        finally:
            left = self._in_flight[key] - 1
            if left:
                self._in_flight[key] = left
            else:
                del self._in_flight[key]


def refusal_response(error: BinanceError, used: int | None = None) -> web.Response:
    """A refusal as Binance sends it (JSON body, status, its headers)."""
    headers = dict(error.headers)
    if used is not None:
        headers.setdefault("X-MBX-USED-WEIGHT-1M", str(used))
    return web.json_response(error.body(), status=error.status, headers=headers)
