"""The pipeline's store at start: where ``--db`` points, checked at once, and a bounded wait
for it to answer (nothing is followed before its checkpoints are known)."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

from kline_rs.storage import Sink, StorageError, StoredState, StoreUnavailableError
from kline_rs.storage.base import is_postgres_url

log = logging.getLogger("kline_rs.live")

#: ``scheme://`` at the start of a target: a URL, not an SQLite path.
URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


class DbTargetError(StorageError):
    """``--db`` names no usable store: an unknown URL scheme, or a file in a missing folder."""


class StoreWaitError(StorageError):
    """The store did not answer within the bound at start."""


def check_db_target(target: str) -> str:
    """``target`` if it is a ``postgresql://`` URL or an SQLite path in an existing folder."""
    if is_postgres_url(target):
        return target
    url = URL.match(target)
    if url is not None:
        # Only the scheme is quoted: the rest may hold a password.
        raise DbTargetError(
            f"unknown database URL scheme {url.group(1)!r}: give an SQLite file path or a "
            "postgresql:// URL"
        )
    folder = Path(target).expanduser().absolute().parent
    if not folder.is_dir():
        what = "is not a directory" if folder.exists() else "does not exist"
        raise DbTargetError(f"{target}: the directory {folder} {what}")
    return target


async def open_store(sink: Sink, wait: float) -> StoredState:
    """The stored state, retrying an unavailable store for ``wait`` seconds at most."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    pause = 0.5
    while True:
        try:
            return await sink.open()
        except StoreUnavailableError as e:
            left = deadline - loop.time()
            if left <= 0:
                raise StoreWaitError(
                    f"store unavailable at start, gave up after {wait:.1f} s: {e}"
                ) from e
            log.error(
                "store unavailable at start, nothing followed until it can be read "
                "(retrying in %.1f s): %s",
                min(pause, left),
                e,
            )
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, 10.0)
