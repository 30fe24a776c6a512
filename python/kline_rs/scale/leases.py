"""Shard ownership for aggregators: leases in a JetStream KV bucket, and each shard's progress.

A lease is the key ``<venue>.shard.<k>`` of the bucket :data:`LEASE_BUCKET`, whose value names
its owner. The bucket's TTL is the lease's: a key not written again within it is gone, and
``create`` (which succeeds only on a missing key) gives it to whoever asks first. The owner
renews with ``update(last=revision)``: a renewal that finds another revision has lost the
lease. The owner also counts the lease valid only until its last successful renewal *was sent*
plus the TTL less a margin (:data:`SAFETY`), so it stops writing before the server lets
anyone else in, even when it cannot reach the server to learn it lost.

Each live aggregator also keeps ``<venue>.member.<name>`` written: the count of members sets
how many shards each takes (:func:`fair_share`).

A lease's claiming revision grows with each new owner: it is the owner's fencing token in
the store (:meth:`kline_rs.storage.postgres.PostgresSink.take_fence`), where the shard's
progress is kept too, in the transaction of each snapshot.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.errors import (
    BucketNotFoundError,
    KeyWrongLastSequenceError,
    NoKeysError,
)
from nats.js.kv import KeyValue

log = logging.getLogger("kline_rs.aggregate")

LEASE_BUCKET = "KLINE_RS_LEASES"
#: The part of the TTL an owner does not use: it stops this long before the server may give
#: its shards away (a renewal's own delay, scheduling).
SAFETY = 0.25
#: Bounds on the TTL accepted (the server expires keys about once a second).
MIN_TTL_S = 1.0
MAX_TTL_S = 600.0


class LeaseError(RuntimeError):
    """The lease bucket cannot be used (a TTL out of bounds, no JetStream)."""


def fair_share(shards: int, members: int) -> int:
    """Shards each of ``members`` live aggregators should own (rounded up)."""
    return math.ceil(shards / max(1, members))


async def bucket(js: JetStreamContext, name: str, *, ttl: float, replicas: int) -> KeyValue:
    """The KV bucket ``name``, created (``replicas``, TTL ``ttl``; 0: none) if missing."""
    try:
        return await js.key_value(name)
    except BucketNotFoundError:
        pass
    try:
        return await js.create_key_value(bucket=name, history=1, ttl=ttl or None,
                                         replicas=replicas)  # fmt: skip
    except Exception:  # another process created it at the same moment
        return await js.key_value(name)


@dataclass
class Lease:
    shard: int
    revision: int
    #: The revision that claimed it: larger for each later owner (the store's fencing token).
    token: int
    #: time.monotonic() until which the owner may act on the shard.
    valid_until: float


class Leases:
    """One aggregator's view of the leases of one venue."""

    def __init__(self, kv: KeyValue, venue: str, me: str, ttl: float) -> None:
        if not MIN_TTL_S <= ttl <= MAX_TTL_S:
            raise LeaseError(f"lease TTL {ttl} s out of bounds ({MIN_TTL_S}..{MAX_TTL_S} s)")
        self.kv = kv
        self.venue = venue
        self.me = me
        self.ttl = ttl
        self.held: dict[int, Lease] = {}

    def key(self, shard: int) -> str:
        return f"{self.venue}.shard.{shard}"

    def _until(self, sent: float) -> float:
        return sent + self.ttl * (1.0 - SAFETY)

    def valid(self, shard: int) -> bool:
        return self.left(shard) > 0.0

    def left(self, shard: int) -> float:
        """Seconds the owner may still act on the shard (0: none)."""
        lease = self.held.get(shard)
        return 0.0 if lease is None else max(0.0, lease.valid_until - time.monotonic())

    async def claim(self, shard: int) -> bool:
        """Takes the shard if nobody holds it."""
        sent = time.monotonic()
        try:
            rev = await self.kv.create(self.key(shard), self.me.encode())
        except KeyWrongLastSequenceError:
            return False
        self.held[shard] = Lease(shard, rev, rev, self._until(sent))
        return True

    async def renew(self, shard: int) -> bool:
        """False when the lease is lost (another revision, or gone): stop at once. A renewal
        that fails otherwise (no answer) raises; the lease stays valid until its time."""
        lease = self.held[shard]
        sent = time.monotonic()
        try:
            lease.revision = await self.kv.update(self.key(shard), self.me.encode(),
                                                  last=lease.revision)  # fmt: skip
        except KeyWrongLastSequenceError:
            del self.held[shard]
            return False
        lease.valid_until = self._until(sent)
        return True

    async def release(self, shard: int) -> None:
        """Gives the shard up (after its last write): deleted only if still ours."""
        lease = self.held.pop(shard, None)
        if lease is not None:
            await self.kv.delete(self.key(shard), last=lease.revision)

    def drop(self, shard: int) -> None:
        """Forgets a lease whose time ran out (no renewal got through)."""
        self.held.pop(shard, None)

    async def join(self) -> None:
        """Writes this member's key (renewed with the leases)."""
        await self.kv.put(f"{self.venue}.member.{self.me}", b"")

    async def members(self) -> int:
        prefix = f"{self.venue}.member."
        try:
            keys = await self.kv.keys()
        except NoKeysError:
            return 1
        # A key written again while the listing runs comes twice: distinct names are counted.
        return max(1, len({k for k in keys if k.startswith(prefix)}))

    async def leave(self) -> None:
        await self.kv.delete(f"{self.venue}.member.{self.me}")
