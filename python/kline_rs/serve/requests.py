"""Binance's live websocket requests (``SUBSCRIBE``, ``UNSUBSCRIBE``, ``LIST_SUBSCRIPTIONS``,
``SET_PROPERTY``/``GET_PROPERTY`` of ``combined``): one connection's subscriptions and the
reply to each request, in Binance's shapes and error codes.

Shared by kline_rs's own server (:mod:`kline_rs.serve.ws`) and the fake exchange
(:mod:`kline_rs.fake.streams`), so both answer a client the same way.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable
from typing import Any

METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
I64 = 2**63


def error(code: int, msg: str, request_id: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "msg": msg}, "id": request_id}


def valid_id(value: Any) -> bool:
    """Binance takes a 64-bit integer, an alphanumeric string of up to 36 characters, or null."""
    if value is None:
        return True
    if isinstance(value, int) and not isinstance(value, bool):
        return -I64 <= value < I64
    return isinstance(value, str) and len(value) <= 36 and value.replace("-", "").isalnum()


class MessageRate:
    """Binance counts every message a client sends: more than ``per_second`` within a second
    and the connection is closed."""

    def __init__(self, per_second: int) -> None:
        self.per_second = per_second
        self._times: deque[float] = deque()

    def exceeded(self, now: float | None = None) -> bool:
        """Counts one message; whether the last second holds more than allowed."""
        now = time.monotonic() if now is None else now
        self._times.append(now)
        while self._times[0] <= now - 1.0:
            self._times.popleft()
        return len(self._times) > self.per_second


class Subscriptions:
    """One connection's streams (an ordered set) and its ``combined`` property.

    ``check(stream)``: why a stream name cannot be subscribed (None: it can); by default any
    string can, as on Binance's own stream servers.
    """

    def __init__(
        self,
        streams: list[str],
        *,
        combined: bool,
        max_streams: int,
        check: Callable[[str], str | None] = lambda _s: None,
    ) -> None:
        self.streams: dict[str, None] = dict.fromkeys(streams)
        self.combined = combined
        self.max_streams = max_streams
        self.check = check

    def answer(self, text: str) -> tuple[dict[str, Any], list[str], list[str]]:
        """The reply to one request, and the streams it added and removed."""
        try:
            request = json.loads(text)
        except ValueError as exc:
            return error(3, f"Invalid JSON: {exc}"), [], []
        if not isinstance(request, dict):
            return error(2, "Invalid request: expected a JSON object"), [], []
        rid = request.get("id")
        if not valid_id(rid):
            return error(2, "Invalid request: request ID must be an unsigned integer"), [], []
        method = request.get("method")
        if method is None:
            return error(2, "Invalid request: missing field `method`", rid), [], []
        if method not in METHODS:
            expected = ", ".join(f"`{m}`" for m in METHODS)
            msg = f"Invalid request: unknown variant `{method}`, expected one of {expected}"
            return error(2, msg, rid), [], []
        params = request.get("params", [])
        if not isinstance(params, list):
            return error(2, "Invalid request: params must be an array", rid), [], []
        if method == "LIST_SUBSCRIPTIONS":
            return {"result": list(self.streams), "id": rid}, [], []
        if method in ("SET_PROPERTY", "GET_PROPERTY"):
            return self._property(method, params, rid), [], []
        if not all(isinstance(p, str) for p in params):
            return error(2, "Invalid request: stream names must be strings", rid), [], []
        if method == "UNSUBSCRIBE":
            removed = [p for p in dict.fromkeys(params) if p in self.streams]
            for p in removed:
                del self.streams[p]
            return {"result": None, "id": rid}, [], removed
        added = [p for p in dict.fromkeys(params) if p not in self.streams]
        for p in added:
            why = self.check(p)
            if why is not None:
                return error(2, f"Invalid request: {why}", rid), [], []
        if len(self.streams) + len(added) > self.max_streams:
            limit = self.max_streams
            return error(2, f"Invalid request: too many streams (at most {limit})", rid), [], []
        self.streams.update(dict.fromkeys(added))
        return {"result": None, "id": rid}, added, []

    def _property(self, method: str, params: list[Any], rid: Any) -> dict[str, Any]:
        if not params or params[0] != "combined":
            return {"code": 0, "msg": "Unknown property", "id": rid}
        if method == "GET_PROPERTY":
            return {"result": self.combined, "id": rid}
        if len(params) != 2 or not isinstance(params[1], bool):
            return error(1, "Invalid value type: expected Boolean", rid)
        self.combined = params[1]
        return {"result": None, "id": rid}
