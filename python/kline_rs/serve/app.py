"""The aiohttp application: Binance's REST paths and kline streams over one source, behind
one :class:`Guard`, and the chart page at ``/``.

The websocket streams (:class:`~kline_rs.serve.ws.StreamHub`, ``request.app[HUB]``) start and
stop with the application and authenticate a client as REST does (a token also as ``?token=``
on the websocket URL, since a browser cannot set headers there). More endpoints come in
through ``make_app(source, routes=[...])``; their handlers find the server's source and guard
on the application (``request.app[SOURCE]``, ``request.app[GUARD]``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiohttp import web

from kline_rs.serve.chart import chart_routes
from kline_rs.serve.errors import BinanceError
from kline_rs.serve.limits import DEFAULT_MAX_IN_FLIGHT, DEFAULT_WEIGHT_PER_MINUTE, Guard
from kline_rs.serve.rest import RestApi
from kline_rs.serve.source import KlineSource
from kline_rs.serve.ws import StreamHub

#: The source the application serves.
SOURCE = web.AppKey("kline_rs.serve.source", KlineSource)
#: Its token check and per-client bounds.
GUARD = web.AppKey("kline_rs.serve.guard", Guard)
#: Its websocket streams.
HUB = web.AppKey("kline_rs.serve.hub", StreamHub)


@dataclass(frozen=True)
class ServeOptions:
    """Who may ask and how much (see :mod:`kline_rs.serve.limits`)."""

    #: Tokens accepted (``X-MBX-APIKEY`` or ``Authorization: Bearer``); empty: none needed.
    tokens: tuple[str, ...] = field(default=(), repr=False)
    #: Request weight per client per minute (Binance's weights per path).
    weight_per_minute: int = DEFAULT_WEIGHT_PER_MINUTE
    #: Requests per client in flight at once.
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    #: Seconds between polls of a stream instead of Binance's pace (1 s for 1s, else 2 s).
    stream_pace_s: float | None = None


def make_app(
    source: KlineSource,
    *,
    options: ServeOptions | None = None,
    routes: Sequence[web.AbstractRouteDef] = (),
) -> web.Application:
    """An application serving ``source`` over Binance's REST paths and kline streams, the
    chart page at ``/``, plus ``routes``. A source with a ``hub`` attribute (a live one) is
    given the streams, so it can tell them of a closed or revised kline at once."""
    options = options or ServeOptions()
    guard = Guard(
        tokens=options.tokens,
        weight_per_minute=options.weight_per_minute,
        max_in_flight=options.max_in_flight,
    )

    def authorize(request: web.Request) -> str:
        """The client's key, as REST finds it; a websocket URL may carry ``?token=``."""
        token = request.query.get("token")
        if token is not None and guard.tokens:
            request = request.clone(headers={**request.headers, "X-MBX-APIKEY": token})
        try:
            return guard.client(request)
        except BinanceError as e:
            body = json.dumps(e.body())
            raise web.HTTPUnauthorized(text=body, content_type="application/json") from None

    hub = StreamHub(source, authorize=authorize, pace_s=options.stream_pace_s)
    if hasattr(source, "hub"):
        source.hub = hub
    app = web.Application()
    app[SOURCE] = source
    app[GUARD] = guard
    app[HUB] = hub
    app.add_routes(RestApi(source, guard).routes())
    app.add_routes(hub.routes())
    app.add_routes(chart_routes())
    app.add_routes(routes)

    async def start(_app: web.Application) -> None:
        await hub.start()

    async def stop(_app: web.Application) -> None:
        await hub.stop()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app
