"""A live status line on a terminal (msgs/s, symbols, lag, gaps, late, queue depth), and the
summary printed when a run ends."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Coroutine
from dataclasses import asdict, dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class RunSummary:
    """What a run did, from start to end."""

    seconds: float
    frames: int
    #: Klines and flat runs (quiet stretches) the engine closed.
    closed: int
    flat_runs: int
    #: Records committed to the store (None: no store).
    stored: int | None
    #: Klines handed to the consumer (stored ones, flat runs expanded; or printed).
    handed_on: int
    gaps: int
    repaired: int
    given_up: int
    reconnects: int
    late: int
    duplicates: int

    def line(self) -> str:
        stored = "" if self.stored is None else f", {self.stored} records stored"
        return (
            f"ran {self.seconds:.1f} s: {self.frames} frames, {self.closed} klines closed "
            f"(+{self.flat_runs} flat runs){stored}, {self.gaps} id gaps ({self.repaired} "
            f"repaired, {self.given_up} given up), {self.reconnects} reconnects, {self.late} "
            f"late, {self.duplicates} duplicates"
        )

    def fields(self) -> dict[str, Any]:
        """The counts by name (for a JSON log line)."""
        return asdict(self)


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
