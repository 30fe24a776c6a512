"""The whole server (``kline_rs.serve.Server``) over a running engine, for tests: the engine's
closed klines handed to its LiveSource as a pipeline hands them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import kline_rs
from kline_rs.serve import ServeOptions, Server
from kline_rs.serve.app import HUB
from kline_rs.serve.live import LiveSource
from kline_rs.venues import SPOT


@contextlib.asynccontextmanager
async def engine_server(
    engine: kline_rs.Engine, options: ServeOptions | None = None, **hub_settings: Any
) -> AsyncIterator[tuple[Server, LiveSource]]:
    """Serves ``engine`` on a loopback port; ``hub_settings`` set the stream hub's bounds."""
    source = LiveSource(engine, SPOT)
    server = Server(source, options=options)
    hub = server.app[HUB]
    for name, value in hub_settings.items():
        assert hasattr(hub, name), name
        setattr(hub, name, value)
    await server.start()

    async def consume() -> None:
        async for k in engine.klines():
            source.on_closed(k)

    consumer = asyncio.create_task(consume())
    try:
        yield server, source
    finally:
        await server.stop()
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
        engine.close()
