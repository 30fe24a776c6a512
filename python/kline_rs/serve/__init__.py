"""Serve klines through Binance's own API, so tools that speak it (ccxt, python-binance,
Binance's SDKs) read exact klines of any interval from kline_rs instead of Binance.

``async with Server("klines.sqlite") as server:`` serves a store on a loopback port
(``server.url``) until the block ends; ``with BackgroundServer(...)`` does the same from code
that is not asynchronous; ``await serve(...)`` serves until cancelled; ``kline-rs serve --db …
--bind …`` from the shell.
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from kline_rs.serve.app import GUARD, SOURCE, ServeOptions, make_app
from kline_rs.serve.served import ServedKline, ServedSymbol, ServeError
from kline_rs.serve.source import KlineSource, StoreSource

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
#: Seconds a :class:`BackgroundServer` waits for its server to start or stop.
START_TIMEOUT_S = 30.0


class RemoteBindError(ServeError):
    """A bind address other than loopback without ``allow_remote``."""


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, allow_remote: bool) -> None:
    """:class:`RemoteBindError` for a host other than loopback without ``allow_remote``."""
    if not allow_remote and not is_loopback(host):
        raise RemoteBindError(
            f"{host}: not a loopback address; serving beyond this machine needs "
            "allow_remote (--allow-remote), and a token (--token) is advised"
        )


def bind_address(text: str) -> tuple[str, int]:
    """``"127.0.0.1:8080"`` / ``"[::1]:8080"`` / ``"8080"`` (loopback) → (host, port); port
    0 takes a free one."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]") if sep else DEFAULT_HOST
    if not port.isdigit() or not 0 <= int(port) < 65536 or (sep and not host):
        raise ValueError(f"{text!r}: expected HOST:PORT, e.g. 127.0.0.1:8080")
    return host, int(port)


class Server:
    """Serves ``source`` (a :class:`KlineSource`, or a store: an SQLite path or a
    ``postgresql://`` URL, read for ``venue``) on ``host:port`` while the ``async with``
    block runs. A host other than loopback is refused unless ``allow_remote`` (then give
    ``options.tokens``). ``routes``: more endpoints (see :func:`make_app`)."""

    def __init__(
        self,
        source: KlineSource | str | Path,
        *,
        host: str = DEFAULT_HOST,
        port: int = 0,
        allow_remote: bool = False,
        options: ServeOptions | None = None,
        venue: str = "spot",
        routes: Sequence[web.AbstractRouteDef] = (),
    ) -> None:
        check_bind(host, allow_remote)
        self._owned = not hasattr(source, "klines")
        self.source: KlineSource = (
            StoreSource(source, venue=venue) if isinstance(source, (str, Path)) else source
        )
        self.host, self.port = host, port
        self.app = make_app(self.source, options=options, routes=routes)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` (the port bound, once started)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._owned and isinstance(self.source, StoreSource):
            await self.source.close()

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


class BackgroundServer:
    """A :class:`Server` on an event loop of its own in a daemon thread, for code that is not
    asynchronous (a script, a notebook, a blocking client): ``with BackgroundServer(db) as
    server:`` serves at ``server.url`` until the block ends. Takes :class:`Server`'s
    arguments."""

    def __init__(self, source: KlineSource | str | Path, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self.server = Server(source, **options)
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="kline-rs serve", daemon=True
        )

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(START_TIMEOUT_S)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            stopping = asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop)
            stopping.result(START_TIMEOUT_S)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(START_TIMEOUT_S)
            self._loop.close()

    def __enter__(self) -> BackgroundServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def serve(
    source: KlineSource | str | Path,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    allow_remote: bool = False,
    options: ServeOptions | None = None,
    venue: str = "spot",
    duration: float | None = None,
) -> None:
    """Serves until cancelled (or for ``duration`` seconds)."""
    async with Server(
        source, host=host, port=port, allow_remote=allow_remote, options=options, venue=venue
    ):
        if duration is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(duration)


__all__ = [
    "GUARD",
    "SOURCE",
    "BackgroundServer",
    "KlineSource",
    "RemoteBindError",
    "ServeOptions",
    "ServedKline",
    "ServedSymbol",
    "Server",
    "StoreSource",
    "bind_address",
    "check_bind",
    "is_loopback",
    "make_app",
    "serve",
]
