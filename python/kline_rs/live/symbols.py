"""Which symbols to follow: selected from ``exchangeInfo`` and kept in step with listings."""

from __future__ import annotations

import asyncio
import difflib
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from kline_rs._core import KlineError
from kline_rs.feeds.binance import symbol_name

log = logging.getLogger("kline_rs.symbols")


class UnknownSymbolsError(KlineError):
    """Symbols asked for by name that the venue's exchangeInfo does not list."""

    def __init__(self, unknown: dict[str, list[str]]) -> None:
        #: Each unknown name → the nearest listed ones (maybe none).
        self.unknown = unknown
        said = [
            f"{name} (did you mean {' or '.join(near)}?)" if near else name
            for name, near in sorted(unknown.items())
        ]
        super().__init__(f"unknown symbols, not in exchangeInfo: {', '.join(said)}")


class EmptySelectionError(UnknownSymbolsError):
    """A --quote / --pattern selection that matches no symbol the venue lists."""

    def __init__(self, selection: Selection) -> None:
        self.unknown = {}
        given = (("--quote", selection.quote), ("--pattern", selection.pattern))
        what = " and ".join(f"{k} {v!r}" for k, v in given if v is not None)
        KlineError.__init__(self, f"{what} matches no symbol in exchangeInfo: nothing to follow")


@dataclass(frozen=True)
class Selection:
    """Symbols by explicit list, quote asset and/or regular expression (all that are given)."""

    symbols: frozenset[str] | None = None
    quote: str | None = None
    pattern: str | None = None

    def wants(self, info: dict[str, Any]) -> bool:
        name = info["symbol"]
        if self.symbols is not None and name not in self.symbols:
            return False
        if self.quote is not None and info.get("quoteAsset") != self.quote:
            return False
        return self.pattern is None or re.fullmatch(self.pattern, name) is not None


@dataclass
class SymbolEvents:
    listed: list[str] = field(default_factory=list)
    delisted: list[str] = field(default_factory=list)


class SymbolManager:
    """Polls ``exchangeInfo``: a new TRADING symbol is added; one that leaves TRADING is
    removed (its open klines flushed as final by the engine, its stream unsubscribed)."""

    def __init__(
        self,
        exchange_info: Callable[[], Awaitable[dict[str, Any]]],
        selection: Selection,
        *,
        add: Callable[[list[str]], Awaitable[None]],
        remove: Callable[[list[str]], Awaitable[None]],
        every: float = 60.0,
    ) -> None:
        self.exchange_info = exchange_info
        self.selection = selection
        self.add = add
        self.remove = remove
        self.every = every
        self.following: set[str] = set()
        self.statuses: dict[str, str] = {}
        self.events = SymbolEvents()

    async def refresh(self, *, strict: bool = False) -> tuple[list[str], list[str]]:
        """One poll: returns (added, removed). ``strict`` (the first poll): a symbol named in
        the selection and not listed raises :class:`UnknownSymbolsError`, before anything."""
        info = await self.exchange_info()
        statuses = {s["symbol"]: s.get("status", "") for s in info.get("symbols", [])}
        if strict:
            self._check_named(statuses)
            if not any(self.selection.wants(s) for s in info.get("symbols", [])):
                raise EmptySelectionError(self.selection)
        for name, status in statuses.items():
            old = self.statuses.get(name)
            if old is not None and old != status:
                log.info("%s: status %s -> %s", name, old, status)
        self.statuses = statuses
        wanted = {
            s["symbol"]
            for s in info.get("symbols", [])
            if s.get("status") == "TRADING" and self.selection.wants(s)
        }
        added = sorted(wanted - self.following)
        removed = sorted(self.following - wanted)
        if removed:
            await self.remove(removed)
            self.following.difference_update(removed)
            self.events.delisted += removed
            log.info("stopped following %s", ", ".join(removed))
        if added:
            await self.add(added)
            self.following.update(added)
            if self.events.listed or len(self.following) > len(added):
                self.events.listed += added
            log.info("following %d symbols (+%d)", len(self.following), len(added))
        return added, removed

    def _check_named(self, statuses: dict[str, str]) -> None:
        named = self.selection.symbols or frozenset()
        unknown = {
            n: difflib.get_close_matches(n, statuses, n=3) for n in named if n not in statuses
        }
        if unknown:
            raise UnknownSymbolsError(unknown)
        for name in sorted(named):
            if statuses[name] != "TRADING":
                log.warning("%s is %s: followed once it is TRADING", name, statuses[name])

    async def run(self) -> None:
        """Polls until cancelled (the first poll is expected to have been done by the caller)."""
        while True:
            await asyncio.sleep(self.every)
            try:
                await self.refresh()
            except Exception as e:  # keep following what we have
                log.warning("exchangeInfo poll failed: %s", e)


def names(symbols: Iterable[str] | None) -> frozenset[str] | None:
    """A comma list or iterable of symbols → an upper-case set (None stays None); a name that
    is not ``[A-Z0-9_]`` raises :class:`~kline_rs.feeds.binance.SymbolNameError`."""
    if symbols is None:
        return None
    items = symbols.split(",") if isinstance(symbols, str) else symbols
    return frozenset(symbol_name(s) for s in items if s.strip())
