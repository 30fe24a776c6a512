"""Why a Binance REST call failed: one exception class per kind of failure."""

from __future__ import annotations

from kline_rs._core import KlineError


class RestError(KlineError):
    """A REST call failed (network down after retries, unexpected reply, HTTP error)."""


class RateLimitedError(RestError):
    """Binance kept answering 429 after the allowed number of waits."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        #: Seconds Binance asked to wait on its last 429 (None if it did not say).
        self.retry_after = retry_after


class IpBannedError(RestError):
    """Binance answered 418: this IP is banned; nothing is sent until the ban ends."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        #: Seconds from the 418 until the ban ends.
        self.retry_after = retry_after


class BinanceApiError(RestError):
    """Binance refused the request with its error JSON ``{"code": …, "msg": …}``."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(f"Binance HTTP {status}, code {code}: {msg}")
        self.status = status
        self.code = code
        self.msg = msg
