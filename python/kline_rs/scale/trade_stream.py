"""The JetStream stream of trades: its name, subjects, message ids and limits.

Subjects are ``kline_rs.trades.<venue>.<shard>.<SYMBOL>``; each message is one aggTrade as
Binance's websocket sends it (the event object, raw) with the header ``Nats-Msg-Id:
<venue>:<SYMBOL>:<aggTradeId>``: capture replicas publishing the same trade store it once
while both copies fall inside the stream's duplicate window.

The shard (``0..SHARDS-1``, a hash of the symbol) is in the subject so that an aggregator
owning a shard reads only its symbols with one consumer filtered on
``kline_rs.trades.<venue>.<shard>.*``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from nats.aio.client import Client as NatsClient
from nats.errors import NoRespondersError, OutboundBufferLimitError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, StorageType, StreamConfig
from nats.js.errors import (
    BadRequestError,
    NoStreamResponseError,
    NotFoundError,
    ServiceUnavailableError,
)

from kline_rs import _core
from kline_rs._core import KlineError
from kline_rs.scale import TRADES_MAX_BYTES

log = logging.getLogger("kline_rs.scale")
T = TypeVar("T")

#: Failures of a JetStream request that pass: no answer in time, nobody serving the subject
#: for a moment (a node restarting, a stream electing its leader: nats-py says
#: NoStreamResponseError), JetStream's 503, the client's reconnect buffer full.
TRANSIENT = (
    NatsTimeoutError,
    NoRespondersError,
    NoStreamResponseError,
    ServiceUnavailableError,
    OutboundBufferLimitError,
)

STREAM = "KLINE_RS_TRADES"
SUBJECT_ROOT = "kline_rs.trades"
#: The stream's size bound (see :data:`kline_rs.scale.TRADES_MAX_BYTES`).
MAX_BYTES = TRADES_MAX_BYTES
#: Trades older than this leave the stream (a consumer that far behind restores from REST).
MAX_AGE_S = 7 * 86_400.0
#: A trade published again within this window is stored once. It covers what delays one
#: replica's copy behind the other's: a reconnect (backoff cap 30 s), a hole repaired over
#: REST after a 429's Retry-After (about a minute) and the 24 h rotation's overlap (seconds);
#: the server keeps every id of the window in memory (10k trades/s: 3M ids), so not more.
#: A copy later than that is stored twice; a consumer's aggTrade-id dedupe drops it.
DUPLICATE_WINDOW_S = 300.0
#: Largest message taken: an aggTrade event is about 200 bytes.
MAX_MSG_BYTES = 4096
#: Replicas of the stream, at most (JetStream's own ceiling is 5).
MAX_REPLICAS = 3
#: Symbol shards per venue: the unit an aggregator owns, so at most this many aggregators
#: share a venue's work. Fixed: the shard is part of each stored subject, so another count
#: needs a new stream.
SHARDS = 16


class StreamConfigError(KlineError):
    """The stream exists with settings capture cannot work with."""


def shard_of(symbol: str) -> int:
    """The symbol's shard, ``0..SHARDS-1``: the core's hash of its name (stable everywhere)."""
    return _core.shard_of(symbol, SHARDS)


def subject(venue: str, symbol: str) -> str:
    """``kline_rs.trades.spot.7.BTCUSDT``."""
    return f"{SUBJECT_ROOT}.{venue}.{shard_of(symbol)}.{symbol}"


def shard_subjects(venue: str, shard: int) -> str:
    """The filter of one shard's trades: ``kline_rs.trades.spot.7.*``."""
    return f"{SUBJECT_ROOT}.{venue}.{shard}.*"


def symbol_of(subject_name: str) -> str:
    """The symbol a trade subject names (its last token)."""
    return subject_name.rpartition(".")[2]


def message_id(venue: str, symbol: str, agg_id: int) -> str:
    """``spot:BTCUSDT:12345``: the same trade from any replica has the same id."""
    return f"{venue}:{symbol}:{agg_id}"


def stream_config(replicas: int, max_bytes: int = MAX_BYTES) -> StreamConfig:
    return StreamConfig(
        name=STREAM,
        description="kline_rs capture: Binance aggTrades, raw, one message per trade",
        subjects=[f"{SUBJECT_ROOT}.>"],
        storage=StorageType.FILE,
        num_replicas=replicas,
        max_bytes=max_bytes,
        max_age=MAX_AGE_S,
        max_msg_size=MAX_MSG_BYTES,
        discard=DiscardPolicy.NEW,
        duplicate_window=DUPLICATE_WINDOW_S,
    )


async def ensure_stream(js: JetStreamContext, servers: int, max_bytes: int = MAX_BYTES) -> int:
    """Creates the stream if missing (replicas: the cluster's servers, at most 3); returns
    its replicas. An existing stream is used as it is, if its subjects fit and it keeps ids
    for duplicate detection."""
    try:
        info = await js.stream_info(STREAM)
    except NotFoundError:
        replicas = max(1, min(MAX_REPLICAS, servers))
        try:
            info = await js.add_stream(stream_config(replicas, max_bytes))  # twice: a no-op
        except BadRequestError as e:
            raise StreamConfigError(
                f"stream {STREAM} ({replicas} replicas, {max_bytes} bytes each) not created: "
                f"{e.description} (a smaller --max-bytes, or more JetStream storage)"
            ) from e
        log.info("created stream %s (%d replicas)", STREAM, replicas)
    cfg = info.config
    if f"{SUBJECT_ROOT}.>" not in (cfg.subjects or []):
        raise StreamConfigError(
            f"stream {STREAM} exists without the subjects {SUBJECT_ROOT}.>: {cfg.subjects}"
        )
    if not cfg.duplicate_window:
        raise StreamConfigError(
            f"stream {STREAM} has no duplicate window: replicas would store each trade twice"
        )
    return cfg.num_replicas or 1


def cluster_servers(nc: NatsClient) -> int:
    """Servers of the cluster the client knows of (the ones given and the ones gossiped)."""
    return len({f"{u.hostname}:{u.port}" for u in nc.servers})


async def retried(call: Callable[[], Awaitable[T]], what: str, deadline_s: float) -> T:
    """``call()``, again after each :data:`TRANSIENT` failure until ``deadline_s`` seconds have
    passed; then the last failure, saying what was tried."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_s
    pause = 0.1
    while True:
        try:
            return await call()
        except TRANSIENT as e:
            if loop.time() > deadline:
                raise StreamConfigError(
                    f"{what}: no answer from JetStream in {deadline_s:.0f} s ({type(e).__name__})"
                ) from e
        await asyncio.sleep(pause)
        pause = min(2 * pause, 1.0)
