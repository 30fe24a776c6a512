"""The JetStream stream of closed klines an aggregator publishes for other consumers.

Subjects are ``kline_rs.klines.<venue>.<SYMBOL>.<interval>``; each message is one closed kline
as ``kline-rs run`` prints it (:func:`~kline_rs.live.output.kline_json`: Binance's 8-decimal
text, ``revision``, ``gap``), with ``"flat": true`` added for a quiet run stored as one record
(its ``open_time``..``close_time`` span every quiet period, each at the same price). The
header ``Nats-Msg-Id: <venue>:<SYMBOL>:<interval>:<open_time>:<revision>:<gap>:<trades>:
<last trade id>:<close_time>`` makes a kline published again with the same values (an
aggregator that died after publishing and before its store commit, whose successor closes the
same kline again) stored once within the duplicate window, and one with other values (a kline
first closed marked gap, then exact) stored again.

They are published before the store commit that holds them: once a kline is in the store it
is in the stream. A consumer keeps the last message of each (symbol, interval, open_time) in
stream order: the store's value. (Not fenced like the store: a previous owner paused past its
lease could publish after its successor; its store write is refused.)
"""

from __future__ import annotations

import asyncio

import numpy as np
import numpy.typing as npt
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from kline_rs.live.output import kline_json
from kline_rs.records import closed_kline
from kline_rs.scale import KLINES_MAX_BYTES
from kline_rs.scale.trade_stream import (
    DUPLICATE_WINDOW_S,
    MAX_AGE_S,
    MAX_REPLICAS,
    TRANSIENT,
    StreamConfigError,
)
from kline_rs.storage.base import StorageError

STREAM = "KLINE_RS_KLINES"
SUBJECT_ROOT = "kline_rs.klines"
#: The stream's size bound (see :data:`kline_rs.scale.KLINES_MAX_BYTES`).
MAX_BYTES = KLINES_MAX_BYTES
#: Publishes of one write in flight at once.
MAX_IN_FLIGHT = 256
#: Seconds one write's publishes may take before the write fails (and is retried).
PUBLISH_WAIT_S = 10.0


class KlineStreamError(StorageError):
    """Klines not acknowledged by the klines stream: the write waits and is retried, like a
    store failure."""


def config(replicas: int, max_bytes: int = MAX_BYTES) -> StreamConfig:
    return StreamConfig(
        name=STREAM,
        description="kline_rs aggregate: closed klines, one message per kline and revision",
        subjects=[f"{SUBJECT_ROOT}.>"],
        storage=StorageType.FILE,
        num_replicas=max(1, min(MAX_REPLICAS, replicas)),
        max_bytes=max_bytes,
        max_age=MAX_AGE_S,
        discard=DiscardPolicy.OLD,
        duplicate_window=DUPLICATE_WINDOW_S,
    )


async def ensure(js: JetStreamContext, replicas: int, max_bytes: int = MAX_BYTES) -> None:
    """Creates the klines stream if missing (an existing one is used as it is)."""
    try:
        await js.stream_info(STREAM)
    except NotFoundError:
        try:
            await js.add_stream(config(replicas, max_bytes))
        except BadRequestError as e:
            raise StreamConfigError(
                f"stream {STREAM} ({max_bytes} bytes each replica) not created: "
                f"{e.description} (a smaller --klines-max-bytes, or more JetStream storage)"
            ) from e


def message(venue: str, row: np.void) -> tuple[str, bytes, dict[str, str]]:
    """(subject, payload, headers) of one closed record."""
    k = closed_kline(row)
    payload = kline_json(k)
    if bool(row["flat"]):
        payload = payload[:-1] + ',"flat":true}'
    # The kline's content is in the id: a kline closed again after a takeover with the same
    # values is kept once, one with other values (a gap kline closed again exact) is kept too.
    content = f"{int(k.gap)}:{k.trades}:{k.last_trade_id}:{k.close_time}"
    key = f"{venue}:{k.symbol}:{k.interval}:{k.open_time}:{k.revision}:{content}"
    return (
        f"{SUBJECT_ROOT}.{venue}.{k.symbol}.{k.interval}",
        payload.encode(),
        {"Nats-Msg-Id": key},
    )


class KlinePublisher:
    """Publishes closed records, acknowledged, before they are stored (a Persister's
    ``before_write``)."""

    def __init__(self, js: JetStreamContext, venue: str) -> None:
        self.js = js
        self.venue = venue
        self.published = 0

    async def __call__(self, records: npt.NDArray[np.void]) -> None:
        if len(records) == 0:
            return
        messages = [message(self.venue, r) for r in records]
        try:
            for i in range(0, len(messages), MAX_IN_FLIGHT):
                part = messages[i : i + MAX_IN_FLIGHT]
                await asyncio.wait_for(
                    asyncio.gather(*(self.js.publish(s, p, headers=h) for s, p, h in part)),
                    PUBLISH_WAIT_S,
                )
        except (*TRANSIENT, asyncio.TimeoutError) as e:
            raise KlineStreamError(
                f"stream {STREAM}: {len(messages)} klines not acknowledged ({type(e).__name__})"
            ) from e
        self.published += len(messages)
