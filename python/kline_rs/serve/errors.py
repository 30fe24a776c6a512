"""Refusals in Binance's form: an HTTP status and ``{"code": …, "msg": …}``.

The codes and texts are Binance's (developers.binance.com/docs/binance-spot-api-docs/errors,
the same list in the futures docs' error-code pages): clients such as ccxt and python-binance
map the code to an exception class, so a refusal here raises what Binance's would. Where
Binance's own behaviour was found rather than documented, :mod:`kline_rs.serve.query` says
where.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Binance's legal range for a time or count parameter (its -1100 text quotes it).
INT_PATTERN = "^[0-9]{1,20}$"
#: The symbol names served (the core's ``symbol_name`` rule; Binance quotes its own range).
SYMBOL_PATTERN = "^[A-Z0-9_]{1,32}$"


@dataclass
class BinanceError(Exception):
    """A refused request, answered as Binance does."""

    status: int
    code: int
    msg: str
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"HTTP {self.status} {self.code}: {self.msg}"

    def body(self) -> dict[str, object]:
        return {"code": self.code, "msg": self.msg}


def illegal_characters(name: str, pattern: str = INT_PATTERN) -> BinanceError:
    return BinanceError(
        400, -1100, f"Illegal characters found in parameter '{name}'; legal range is '{pattern}'."
    )


def too_many_parameters(
    detail: str = "Too many parameters sent for this endpoint.",
) -> BinanceError:
    return BinanceError(400, -1101, detail)


def duplicate_parameter(name: str) -> BinanceError:
    return BinanceError(400, -1101, f"Duplicate values for a parameter detected: '{name}'.")


def mandatory(name: str) -> BinanceError:
    return BinanceError(
        400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def unread_parameters(read: int, sent: int) -> BinanceError:
    return BinanceError(
        400,
        -1104,
        f"Not all sent parameters were read; read '{read}' parameter(s) but was sent '{sent}'.",
    )


def invalid_interval(detail: str = "") -> BinanceError:
    return BinanceError(400, -1120, "Invalid interval." + (f" {detail}" if detail else ""))


def invalid_symbol() -> BinanceError:
    return BinanceError(400, -1121, "Invalid symbol.")


def invalid_value(name: str, detail: str = "") -> BinanceError:
    msg = f"Data sent for parameter '{name}' is not valid." + (f" {detail}" if detail else "")
    return BinanceError(400, -1130, msg)


def start_after_end() -> BinanceError:
    return BinanceError(400, -1023, "Start time is greater than end time.")


def query_too_long(limit: int) -> BinanceError:
    return BinanceError(414, -1101, f"Query string longer than {limit} characters.")


def unauthorized() -> BinanceError:
    """Binance's answer to a missing or wrong API key (HTTP 401, -2015)."""
    return BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")


def too_much_weight(limit: int, retry_after: int) -> BinanceError:
    return BinanceError(
        429,
        -1003,
        f"Too much request weight used; current limit is {limit} request weight per 1 MINUTE. "
        "Please use WebSocket Streams for live updates to avoid polling the API.",
        {"Retry-After": str(retry_after)},
    )


def too_many_queued(limit: int) -> BinanceError:
    return BinanceError(
        429, -1003, f"Too many requests queued: at most {limit} at once per client.",
        {"Retry-After": "1"},
    )  # fmt: skip


def not_found() -> BinanceError:
    return BinanceError(404, -1000, "No such endpoint.")
