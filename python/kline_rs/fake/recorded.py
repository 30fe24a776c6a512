"""A market that replays recorded Binance websocket captures (cryptofeed's ``*.ws.*`` files).

Each capture starts with ``<url> <-> <connect time>``, then one ``<receive time>: <frame>``
line per combined-stream frame. Only ``@aggTrade`` frames are kept; their objects are served
unchanged (ids, times, decimal text and key order as recorded). Every capture is replayed
from the market's start: a frame is due ``receive time - connect time`` after it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from kline_rs import parse_fixed8
from kline_rs.fake.market import Market
from kline_rs.fake.tape import TRADING, Instrument, Tape, Trade

EVENT_KEYS = ("e", "E", "s")


@dataclass(frozen=True)
class Capture:
    """One capture file: the URL it was opened with and its aggTrade events with offsets."""

    path: Path
    url: str
    connected_ms: int
    streams: list[str]
    events: list[tuple[int, dict[str, Any]]]  # (ms after connecting, aggTrade event object)


def _ms(seconds: str) -> int:
    return int(Decimal(seconds) * 1000)


def read_capture(path: str | os.PathLike[str]) -> Capture:
    """Parses a capture; raises ``ValueError`` naming the file and line when malformed."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    try:
        url, connected = lines[0].rsplit(" <-> ", 1)
    except (IndexError, ValueError):
        raise ValueError(f"{path}:1: expected '<url> <-> <time>'") from None
    start = _ms(connected)
    streams = parse_qs(urlsplit(url).query).get("streams", [""])[0].split("/")
    events = []
    for number, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        received, sep, frame = line.partition(": ")
        try:
            if not sep:
                raise ValueError("no ': ' after the time")
            message = json.loads(frame)
            offset = _ms(received) - start
        except (ValueError, ArithmeticError) as exc:
            raise ValueError(f"{path}:{number}: {exc}") from None
        if str(message.get("stream", "")).endswith("@aggTrade"):
            events.append((offset, message["data"]))
    return Capture(path, url, start, [s for s in streams if s], events)


class RecordedMarket(Market):
    """Replays captures: same trades, ids, times and text as recorded; statuses can change."""

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
        *,
        start_ms: int | None = None,
        speed: float = 1.0,
    ) -> None:
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        self.captures = [read_capture(p) for p in paths]
        if not self.captures:
            raise ValueError("RecordedMarket needs at least one capture")
        first = min(c.connected_ms for c in self.captures)
        super().__init__(first if start_ms is None else start_ms, speed)
        merged = [
            (offset, number, event)
            for number, capture in enumerate(self.captures)
            for offset, event in capture.events
        ]
        merged.sort(key=lambda item: (item[0], item[1]))
        self._schedule = [(offset, event) for offset, _, event in merged]
        self._cursor = 0
        self._register(merged)

    def _register(self, merged: list[tuple[int, int, dict[str, Any]]]) -> None:
        """Lists every captured symbol; tick and lot from the most decimals seen in its text."""
        places: dict[str, tuple[int, int]] = {}
        for capture in self.captures:
            for stream in capture.streams:
                places.setdefault(stream.split("@")[0].upper(), (0, 0))
        for _, _, event in merged:
            p, q = places.get(event["s"], (0, 0))
            places[event["s"]] = (max(p, _places(event["p"])), max(q, _places(event["q"])))
        for symbol, (p, q) in places.items():
            self.instruments[symbol] = Instrument(
                symbol, 10 ** (8 - p), 10 ** (8 - q), self.start_ms
            )
            tape = Tape()
            tape.originals = []
            self.tapes[symbol] = tape

    @property
    def end_ms(self) -> int:
        """Market time at which the last recorded frame is due."""
        return self.start_ms + (self._schedule[-1][0] if self._schedule else 0)

    def _release(self, now_ms: int) -> list[tuple[str, Trade]]:
        out: list[tuple[str, Trade]] = []
        while self._cursor < len(self._schedule):
            offset, event = self._schedule[self._cursor]
            if self.start_ms + offset > now_ms:
                break
            self._cursor += 1
            symbol = event["s"]
            if self.instruments[symbol].status != TRADING:
                continue
            tape = self.tapes[symbol]
            tape.append(
                event["a"],
                parse_fixed8(event["p"]),
                parse_fixed8(event["q"]),
                event["f"],
                event["l"],
                event["T"],
                event["m"],
            )
            assert tape.originals is not None
            tape.originals.append({k: v for k, v in event.items() if k not in EVENT_KEYS})
            out.append((symbol, event))
        return out


def _places(text: str) -> int:
    """Decimals written in a decimal string, trailing zeros ignored."""
    frac = text.partition(".")[2].rstrip("0")
    return len(frac)
