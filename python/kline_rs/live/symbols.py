"""Which symbols to follow: selected from ``exchangeInfo`` and kept in step with listings."""

from __future__ import annotations

import asyncio
import difflib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from kline_rs._core import KlineError
from kline_rs.feeds.binance import symbol_name

log = logging.getLogger("kline_rs.symbols")

#: Statuses of a symbol the exchange has stopped for now: it keeps its state, makes no klines.
HALTED_STATUSES = frozenset({"BREAK", "HALT"})

#: Seconds a followed symbol may stay halted before it counts as delisted (Binance keeps
#: delisted pairs in exchangeInfo as BREAK). Its halts last hours: 2018-02-08's, 33.5 h.
MAX_HALT_S = 7 * 86_400.0


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


def contract_sizes_of(info: dict[str, Any]) -> dict[str, int]:
    """exchangeInfo's ``contractSize`` of each symbol that has one (COIN-M)."""
    return {
        s["symbol"]: int(s["contractSize"]) for s in info.get("symbols", []) if "contractSize" in s
    }


def status_of(info: dict[str, Any]) -> str:
    """An exchangeInfo symbol's trading status: ``status``, or COIN-M's ``contractStatus``."""
    return str(info.get("status", info.get("contractStatus", "")))


@dataclass
class SymbolEvents:
    listed: list[str] = field(default_factory=list)
    delisted: list[str] = field(default_factory=list)
    halted: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)


class SymbolManager:
    """Polls ``exchangeInfo``: a new TRADING symbol is added; a followed one that turns BREAK or
    HALT is halted (state kept, no flat klines) and resumed once TRADING again; one that
    leaves TRADING otherwise, or stays halted longer than ``max_halt`` seconds, is removed
    (its open klines flushed as final by the engine, its stream unsubscribed)."""

    def __init__(
        self,
        exchange_info: Callable[[], Awaitable[dict[str, Any]]],
        selection: Selection,
        *,
        add: Callable[[list[str]], Awaitable[None]],
        remove: Callable[[list[str]], Awaitable[None]],
        halt: Callable[[list[str]], Awaitable[None]],
        resume: Callable[[list[str]], Awaitable[None]],
        every: float = 60.0,
        max_halt: float = MAX_HALT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.exchange_info = exchange_info
        self.selection = selection
        self.add = add
        self.remove = remove
        self.halt = halt
        self.resume = resume
        self.every = every
        self.max_halt = max_halt
        self.clock = clock
        self.following: set[str] = set()
        #: Followed symbols the exchange has halted → when this manager saw it (``clock``).
        self.halted: dict[str, float] = {}
        self.statuses: dict[str, str] = {}
        #: exchangeInfo's ``contractSize`` of the symbols that have one (COIN-M).
        self.contract_sizes: dict[str, int] = {}
        self.events = SymbolEvents()

    async def refresh(self, *, strict: bool = False) -> tuple[list[str], list[str]]:
        """One poll: returns (added, removed). ``strict`` (the first poll): a symbol named in
        the selection and not listed raises :class:`UnknownSymbolsError`, before anything."""
        info = await self.exchange_info()
        statuses = {s["symbol"]: status_of(s) for s in info.get("symbols", [])}
        if strict:
            self._check_named(statuses)
            if not any(self.selection.wants(s) for s in info.get("symbols", [])):
                raise EmptySelectionError(self.selection)
        for name, status in statuses.items():
            old = self.statuses.get(name)
            if old is not None and old != status:
                log.info("%s: status %s -> %s", name, old, status)
        self.statuses = statuses
        self.contract_sizes = contract_sizes_of(info)
        chosen = [s for s in info.get("symbols", []) if self.selection.wants(s)]
        wanted = {s["symbol"] for s in chosen if status_of(s) == "TRADING"}
        stopped = {s["symbol"] for s in chosen if status_of(s) in HALTED_STATUSES}
        now = self.clock()
        too_long = {n for n, since in self.halted.items() if now - since >= self.max_halt}
        kept = wanted | ((stopped & self.following) - too_long)
        added = sorted(wanted - self.following)
        removed = sorted(self.following - kept)
        halting = sorted((stopped & kept) - self.halted.keys())
        resuming = sorted(self.halted.keys() & wanted)
        if removed:
            await self.remove(removed)
            self.following.difference_update(removed)
            for name in removed:
                self.halted.pop(name, None)
            self.events.delisted += removed
            log.info("stopped following %s", ", ".join(removed))
        if halting:
            await self.halt(halting)
            self.halted.update(dict.fromkeys(halting, now))
            self.events.halted += halting
            log.info("halted by the exchange (state kept, no klines): %s", ", ".join(halting))
        if resuming:
            await self.resume(resuming)
            for name in resuming:
                del self.halted[name]
            self.events.resumed += resuming
            log.info("trading again: %s", ", ".join(resuming))
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
