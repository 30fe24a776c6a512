"""A live status line on a terminal (msgs/s, symbols, lag, gaps, late, queue depth)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Coroutine
from typing import Any, Protocol


class HasStatus(Protocol):
    async def started(self) -> None: ...
    def status(self) -> Any: ...


async def with_status_line(
    pipeline: HasStatus, job: Coroutine[Any, Any, None], *, every: float = 1.0
) -> None:
    """Runs ``job``; on a terminal, redraws the pipeline's status line on stderr meanwhile."""
    task = asyncio.ensure_future(job)
    if not sys.stderr.isatty():
        await task
        return

    async def draw() -> None:
        await pipeline.started()
        while True:
            await asyncio.sleep(every)
            sys.stderr.write("\r\x1b[2K" + pipeline.status().line())
            sys.stderr.flush()

    drawer = asyncio.create_task(draw())
    try:
        await task
    finally:
        drawer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await drawer
        sys.stderr.write("\n")
