"""Faults the fake exchange injects, changeable while it runs (``fx.faults.drop_rate = 0.1``).

Listings and delistings mid-run go through the market (``market.list_symbol`` /
``market.delist``); closing every websocket now is ``await fx.disconnect_all()`` and the
``serverShutdown`` event is ``await fx.server_shutdown()``.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

#: Longest a partly filled reorder window is held before it goes out anyway (s).
REORDER_HOLD_S = 0.2

_TIME = re.compile(r'"T":(-?\d+)')


@dataclass
class Faults:
    """What goes wrong, and how often. Every random choice comes from ``seed``."""

    seed: int = 7
    #: Share of data frames silently not sent.
    drop_rate: float = 0.0
    #: Share of data frames sent twice in a row.
    duplicate_rate: float = 0.0
    #: Share of data frames mangled into something that is not a valid aggTrade (cut JSON,
    #: a wrong type, a bad decimal): the client must count them and go on.
    malformed_rate: float = 0.0
    #: Share of data frames sent twice, first with a time that cannot be true (the year 3000,
    #: µs in an ms stream, days ahead, negative): the client must refuse that copy and take
    #: the real one, with nothing poisoned.
    implausible_rate: float = 0.0
    #: Data frames are shuffled within consecutive windows of this many (0 or 1: off).
    reorder_window: int = 0
    #: Every frame (data and replies) leaves this many ms later than it was made.
    delay_ms: int = 0
    #: A connection is closed after sending this many data frames (0: never).
    disconnect_every: int = 0
    #: Disconnects drop the TCP connection without a close frame.
    abrupt_disconnect: bool = False
    #: The next N REST calls answer 429 with ``Retry-After: retry_after_s``.
    rest_429: int = 0
    retry_after_s: int = 1
    #: Time between the ``serverShutdown`` event and the close.
    shutdown_grace_ms: int = 100
    #: Symbols whose REST klines come back with a volume that is not a decimal ("1e9"): the
    #: client must stop with a clear error, not hang.
    bad_klines: frozenset[str] = frozenset()
    #: data.binance.vision (``/data/…`` zips): the next N bodies stop half-way and the
    #: connection drops; the next N come with one byte changed; the next N requests get 503.
    dump_cuts: int = 0
    dump_corruptions: int = 0
    dump_errors: int = 0
    #: Answer ``Range`` requests with the whole file (200), as a server without ranges does.
    dump_ignore_range: bool = False


@dataclass
class FaultCounts:
    """What the faults did on one connection."""

    dropped: int = 0
    malformed: int = 0
    duplicated: int = 0
    implausible: int = 0
    reordered_windows: int = 0


class FrameFaults:
    """Applies drop / duplicate / reorder to one connection's data frames, reproducibly."""

    def __init__(self, faults: Faults, connection_number: int) -> None:
        self.faults = faults
        self.counts = FaultCounts()
        self._rng = random.Random(f"{faults.seed}/{connection_number}")
        self._held: list[str] = []
        self._held_since = 0.0

    def apply(self, frames: list[str], now: float) -> list[str]:
        """The frames to send now, in order; some may be held back for reordering."""
        f = self.faults
        out: list[str] = []
        for frame in frames:
            if f.drop_rate and self._rng.random() < f.drop_rate:
                self.counts.dropped += 1
                continue
            if f.malformed_rate and self._rng.random() < f.malformed_rate:
                self.counts.malformed += 1
                frame = self._mangle(frame)
            copies = [frame]
            if f.implausible_rate and self._rng.random() < f.implausible_rate:
                self.counts.implausible += 1
                copies.insert(0, self._implausible(frame))
            if f.duplicate_rate and self._rng.random() < f.duplicate_rate:
                self.counts.duplicated += 1
                copies.append(frame)
            if f.reorder_window > 1:
                if not self._held:
                    self._held_since = now
                self._held += copies
                if len(self._held) >= f.reorder_window:
                    out += self._release()
            else:
                out += self._release() + copies
        return out + self.flush(now)

    def _mangle(self, frame: str) -> str:
        kind = self._rng.randrange(3)
        if kind == 0:
            return frame[: self._rng.randrange(1, max(2, len(frame) - 1))]  # cut short
        if kind == 1:
            return frame.replace('"a":', '"a":"x', 1).replace(',"p"', '","p"', 1)  # a as text
        return frame.replace('"p":"', '"p":"1e', 1)  # not a decimal

    def _implausible(self, frame: str) -> str:
        """The frame with its trade time replaced by one no real trade has."""
        m = _TIME.search(frame)
        if m is None:
            return frame
        t = int(m.group(1))
        bad = self._rng.choice([32_503_680_000_000, t * 1_000, t + 2 * 86_400_000, -t])
        return frame[: m.start(1)] + str(bad) + frame[m.end(1) :]

    def flush(self, now: float, *, force: bool = False) -> list[str]:
        """A held window that waited long enough (or any, with ``force``)."""
        if self._held and (force or now - self._held_since >= REORDER_HOLD_S):
            return self._release()
        return []

    def _release(self) -> list[str]:
        held, self._held = self._held, []
        if len(held) > 1:
            self._rng.shuffle(held)
            self.counts.reordered_windows += 1
        return held
