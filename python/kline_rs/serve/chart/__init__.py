"""The chart page at ``/``: candles and volume of any served symbol and interval, history from
``/krs/v1/klines``, live from ``/ws/<symbol>@kline_<interval>``, gap klines marked.

The charting library is plotly.js, served from the installed ``plotly`` Python package
(``plotly/package_data/plotly.min.js``) at ``/static/plotly.min.js``: nothing from a CDN and no
third-party code in this repository. Why plotly: MIT licence, a candlestick trace built in
(and bars for volume on a second axis), a well-kept package (plotly.py ships plotly.js with
every release) that many users already have. Its cost is size: about 4.8 MB of JavaScript,
sent once per browser (it is cached by its ``ETag``). The alternative with a finance-first
library, TradingView's Lightweight Charts (160 KB, Apache-2.0), comes on PyPI only inside an
unmaintained wrapper that pulls in pandas and pywebview.

``plotly`` is the ``serve`` extra (``pip install 'kline_rs[serve]'``). Without it the page
answers 503 with that line, and :func:`chart_routes` logs it once; the REST and websocket
endpoints do not need it.

What the page drew is kept in ``window.klineChart`` (see ``chart.js``), which the headless
browser test reads.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from aiohttp import web

log = logging.getLogger("kline_rs.serve")

#: The page's own files (``index.html``, ``chart.js``), beside this module.
PAGE_DIR = Path(__file__).resolve().parent
#: What to install when the charting library is missing.
INSTALL_HINT = "the chart page needs plotly: pip install 'kline_rs[serve]' (or pip install plotly)"

# Only this origin's scripts and connections (the websocket included); plotly.js adds its own
# <style> element, hence 'unsafe-inline' for styles only.
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def plotly_js() -> Path | None:
    """``plotly.min.js`` of the installed ``plotly`` package (found without importing it), or
    None."""
    try:
        spec = importlib.util.find_spec("plotly")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "package_data" / "plotly.min.js"
        if path.is_file():
            return path
    return None


def _missing() -> web.Response:
    return web.Response(status=503, text=INSTALL_HINT + "\n", headers=_HEADERS)


async def _index(request: web.Request) -> web.StreamResponse:
    if plotly_js() is None:
        return _missing()
    return web.FileResponse(PAGE_DIR / "index.html", headers=_HEADERS)


async def _script(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(PAGE_DIR / "chart.js", headers=_HEADERS)


async def _plotly(request: web.Request) -> web.StreamResponse:
    path = plotly_js()
    if path is None:
        return _missing()
    return web.FileResponse(path, headers=_HEADERS)


def chart_routes() -> list[web.RouteDef]:
    """The page's routes: ``/``, ``/chart/chart.js`` and ``/static/plotly.min.js``."""
    if plotly_js() is None:
        log.warning("%s; / answers 503 until then", INSTALL_HINT)
    return [
        web.get("/", _index),
        web.get("/chart/chart.js", _script),
        web.get("/static/plotly.min.js", _plotly),
    ]
