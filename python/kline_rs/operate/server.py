"""``--metrics HOST:PORT``: ``/metrics`` (Prometheus text format) and ``/healthz`` over HTTP.

``/healthz`` answers 200 once every followed symbol is caught up (symbols known, history and
resume done, every websocket connected, no hole being repaired, the store taking writes),
else 503; both with a short JSON body saying why.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from kline_rs.operate.metrics import PipelineCollector

if TYPE_CHECKING:
    from kline_rs.live.pipeline import LivePipeline


def address(text: str) -> tuple[str, int]:
    """``"127.0.0.1:9108"`` / ``"[::1]:9108"`` / ``"9108"`` (loopback) → (host, port)."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]") if sep else "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) < 65536 or (sep and not host):
        raise argparse.ArgumentTypeError(f"{text!r}: expected HOST:PORT, e.g. 127.0.0.1:9108")
    return host, int(port)


@asynccontextmanager
async def serving(pipeline: LivePipeline, host: str, port: int) -> AsyncIterator[int]:
    """Serves the pipeline's metrics and health while the block runs; yields the port."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PipelineCollector(pipeline))

    async def metrics(request: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(request: web.Request) -> web.Response:
        ok, reason = pipeline.health()
        return web.json_response({"ok": ok, "reason": reason}, status=200 if ok else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()
