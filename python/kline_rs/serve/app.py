"""The aiohttp application: REST routes over a source, behind one :class:`Guard`, and the
places where more endpoints plug in.

Endpoints added later (the websocket streams, a chart page at ``/``) come in through
``make_app(source, routes=[...])``; their handlers find the server's source and guard on the
application (``request.app[SOURCE]``, ``request.app[GUARD]``), so they authenticate and count
a client exactly as REST does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from aiohttp import web

from kline_rs.serve.limits import DEFAULT_MAX_IN_FLIGHT, DEFAULT_WEIGHT_PER_MINUTE, Guard
from kline_rs.serve.rest import RestApi
from kline_rs.serve.source import KlineSource

#: The source the application serves.
SOURCE = web.AppKey("kline_rs.serve.source", KlineSource)
#: Its token check and per-client bounds.
GUARD = web.AppKey("kline_rs.serve.guard", Guard)


@dataclass(frozen=True)
class ServeOptions:
    """Who may ask and how much (see :mod:`kline_rs.serve.limits`)."""

    #: Tokens accepted (``X-MBX-APIKEY`` or ``Authorization: Bearer``); empty: none needed.
    tokens: tuple[str, ...] = field(default=(), repr=False)
    #: Request weight per client per minute (Binance's weights per path).
    weight_per_minute: int = DEFAULT_WEIGHT_PER_MINUTE
    #: Requests per client in flight at once.
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT


def make_app(
    source: KlineSource,
    *,
    options: ServeOptions | None = None,
    routes: Sequence[web.AbstractRouteDef] = (),
) -> web.Application:
    """An application serving ``source`` over Binance's REST paths, plus ``routes`` (the
    websocket streams, a chart page at ``/``: anything not a REST path)."""
    options = options or ServeOptions()
    guard = Guard(
        tokens=options.tokens,
        weight_per_minute=options.weight_per_minute,
        max_in_flight=options.max_in_flight,
    )
    app = web.Application()
    app[SOURCE] = source
    app[GUARD] = guard
    app.add_routes(RestApi(source, guard).routes())
    app.add_routes(routes)
    return app
