"""Markets the fake exchange serves: the clock, the listings and the trade history.

:class:`SimulatedMarket` makes trades up as its clock moves; :class:`RecordedMarket`
(``kline_rs.fake.recorded``) replays websocket captures. Either is the source of truth a
test compares klines with.
"""

from __future__ import annotations

import heapq
import math
import time
import zlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from kline_rs.fake.simulate import CATALOGUE, MAX_FIXED, RAW_SIZES, instruments
from kline_rs.fake.tape import SCALE, TRADING, Instrument, Tape, Trade

BREAK = "BREAK"
BLOCK_MS = 10_000  # trades are drawn 10 s of market time at a time, on a fixed grid
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000


class Market(ABC):
    """Listings, per-symbol tapes, and a clock: ``speed`` times real time from ``start_ms``.

    ``advance(t)`` releases the trades up to ``t``; moving past the clock moves the clock
    there (so a test can jump ahead), and ``speed=0`` stops it between jumps.
    """

    def __init__(self, start_ms: int | None, speed: float) -> None:
        start = int(time.time() * 1000) if start_ms is None else start_ms
        self._speed = speed
        self._anchor_ms = start
        self._anchor_clock = time.monotonic()
        self._now = start
        self.start_ms = start
        self.instruments: dict[str, Instrument] = {}
        self.tapes: dict[str, Tape] = {}

    @property
    def now_ms(self) -> int:
        """The time the market has been advanced to: every trade up to it is released."""
        return self._now

    @property
    def speed(self) -> float:
        return self._speed

    @speed.setter
    def speed(self, value: float) -> None:
        self._anchor_ms, self._anchor_clock = self.clock_ms(), time.monotonic()
        self._speed = value

    def clock_ms(self) -> int:
        """Market time now: real time times ``speed`` since the last anchor, never behind now_ms."""
        elapsed = (time.monotonic() - self._anchor_clock) * 1000.0 * self._speed
        return max(self._now, self._anchor_ms + int(elapsed))

    def advance(self, now_ms: int) -> list[tuple[str, Trade]]:
        """New trades with time ≤ ``now_ms``, all symbols, in time order."""
        if now_ms <= self._now:
            return []
        if now_ms > self.clock_ms():
            self._anchor_ms, self._anchor_clock = now_ms, time.monotonic()
        released = self._release(now_ms)
        self._now = now_ms
        return released

    @abstractmethod
    def _release(self, now_ms: int) -> list[tuple[str, Trade]]:
        """Append the trades up to ``now_ms`` to the tapes and return them."""

    def symbols(self) -> list[str]:
        return list(self.instruments)

    def status(self, symbol: str) -> str:
        return self.instruments[symbol].status

    def set_status(self, symbol: str, status: str) -> None:
        """Any Binance status (TRADING, HALT, BREAK, …); only TRADING symbols trade."""
        inst = self.instruments[symbol]
        if inst.status != status:
            inst.status, inst.status_since_ms = status, self._now

    def list_symbol(self, symbol: str) -> None:
        """Back to TRADING (a symbol this market cannot make trades for stays silent)."""
        self.set_status(symbol, TRADING)

    def delist(self, symbol: str) -> None:
        """Status TRADING → BREAK: no more trades; history and exchangeInfo entry remain."""
        self.set_status(symbol, BREAK)

    def history(self, symbol: str) -> list[Trade]:
        """Every trade released so far, as REST aggTrade objects, in id order."""
        return self.tapes[symbol].trades()

    def tape(self, symbol: str) -> Tape:
        return self.tapes[symbol]


@dataclass
class Flow:
    """One symbol's trade generator; draws happen in block order, so runs are reproducible."""

    rng: np.random.Generator
    rate: float  # mean aggTrades per market second
    step_sd: float  # log-price step per event
    may_go_quiet: bool
    ticks: int
    next_agg: int
    next_raw: int
    block_start: int
    minute: int = -1
    hour: int = -1
    minute_factor: float = 1.0
    hour_factor: float = 1.0
    pending: list[tuple[int, int, int, int, int, int, bool]] = field(default_factory=list)


class SimulatedMarket(Market):
    """A deterministic market of ``symbols`` (names, or a count taken from a catalogue).

    Activity is skewed across symbols (Zipf), with bursts and quiet minutes (and quiet hours
    for the smaller symbols); prices walk on each symbol's tick, quantities sit on its lot;
    agg ids are contiguous from a random start and every aggTrade stands for 1-5 raw trades
    ``f..l``, contiguous too. ``trades_per_second`` is the mean over all symbols, per second
    of market time.
    """

    def __init__(
        self,
        symbols: Sequence[str] | int,
        seed: int = 7,
        start_ms: int | None = None,
        speed: float = 1.0,
        trades_per_second: float = 50.0,
    ) -> None:
        super().__init__(start_ms, speed)
        self.seed = seed
        specs = self._specs(symbols)
        weights = np.arange(1, len(specs) + 1, dtype=np.float64) ** -1.1
        rates = trades_per_second * weights / weights.sum()
        self._new_rate = float(np.median(rates)) if len(rates) else trades_per_second
        self._flows: dict[str, Flow] = {}
        for rank, ((name, price, tick, lot), rate) in enumerate(zip(specs, rates, strict=True)):
            self._add(name, price, tick, lot, float(rate), may_go_quiet=rank >= 10)

    def _specs(self, symbols: Sequence[str] | int) -> list[tuple[str, int, int, int]]:
        if isinstance(symbols, int):
            found = instruments(symbols, np.random.default_rng(self.seed))
            return [(i.name, i.price, i.tick, i.lot) for i in found]
        return [self._invent(name) for name in symbols]

    def _invent(self, name: str) -> tuple[str, int, int, int]:
        """A known instrument from the catalogue, or a price level with a fitting tick and lot."""
        for known, price, tick, lot in CATALOGUE:
            if known == name:
                return name, round(price * SCALE), round(tick * SCALE), round(lot * SCALE)
        rng = np.random.default_rng([self.seed, zlib.crc32(name.encode())])
        level = 10 ** rng.uniform(-4.0, 3.5)
        mag = math.floor(math.log10(level))
        tick = 10 ** min(6, max(0, mag + 4))
        lot = 10 ** min(8, max(3, 7 - mag))
        return name, max(tick, round(level * SCALE) // tick * tick), tick, lot

    def _add(
        self, name: str, price: int, tick: int, lot: int, rate: float, *, may_go_quiet: bool
    ) -> None:
        rng = np.random.default_rng([self.seed, zlib.crc32(name.encode()), 1])
        day_vol = rng.uniform(0.02, 0.06)
        self.instruments[name] = Instrument(name, tick, lot, listed_ms=self._now)
        self.tapes[name] = Tape()
        self._flows[name] = Flow(
            rng=rng,
            rate=rate,
            step_sd=day_vol / math.sqrt(max(rate, 1e-3) * 0.65 * 86_400),
            may_go_quiet=may_go_quiet,
            ticks=price // tick,
            next_agg=int(rng.integers(10**6, 2 * 10**9)),
            next_raw=int(rng.integers(10**7, 3 * 10**9)),
            block_start=self._now,
        )

    def list_symbol(self, symbol: str) -> None:
        """Lists a new symbol now (or puts a delisted one back to TRADING); trades follow."""
        if symbol not in self.instruments:
            self._add(*self._invent(symbol), self._new_rate, may_go_quiet=False)
            return
        if self.status(symbol) != TRADING:
            flow = self._flows[symbol]
            flow.block_start, flow.pending = self._now, []
        super().list_symbol(symbol)

    def set_status(self, symbol: str, status: str) -> None:
        super().set_status(symbol, status)
        flow = self._flows[symbol]
        if status != TRADING and flow.pending:
            # Drawn but never traded: their ids go to the next trades (Binance's ids stay
            # contiguous over a halt).
            flow.next_agg, flow.next_raw = flow.pending[0][0], flow.pending[0][3]
            flow.pending = []

    def _release(self, now_ms: int) -> list[tuple[str, Trade]]:
        per_symbol: list[list[tuple[int, str, Trade]]] = []
        for name, flow in self._flows.items():
            if self.instruments[name].status != TRADING:
                continue
            inst = self.instruments[name]
            while flow.block_start <= now_ms:
                end = (flow.block_start // BLOCK_MS + 1) * BLOCK_MS
                flow.pending += self._block(flow, inst, flow.block_start, end)
                flow.block_start = end
            due = 0
            while due < len(flow.pending) and flow.pending[due][5] <= now_ms:
                due += 1
            if not due:
                continue
            tape = self.tapes[name]
            first = len(tape)
            tape.extend(flow.pending[:due])
            del flow.pending[:due]
            per_symbol.append([(tape.t[i], name, tape.trade(i)) for i in range(first, len(tape))])
        return [(name, trade) for _, name, trade in heapq.merge(*per_symbol, key=lambda r: r[0])]

    def _block(
        self, flow: Flow, inst: Instrument, start: int, end: int
    ) -> list[tuple[int, int, int, int, int, int, bool]]:
        """The trades of [start, end): events of 1+ aggTrades sharing a time and taker side."""
        rng = flow.rng
        if start // HOUR_MS != flow.hour:
            flow.hour = start // HOUR_MS
            flow.hour_factor = 0.0 if flow.may_go_quiet and rng.random() < 0.1 else 1.0
        if start // MINUTE_MS != flow.minute:
            flow.minute = start // MINUTE_MS
            u = rng.random()
            flow.minute_factor = (
                rng.uniform(5.0, 20.0) if u < 0.03 else 0.0 if u < 0.08 else rng.lognormal(0, 0.6)
            )
        mean = flow.rate * (end - start) / 1000 * flow.minute_factor * flow.hour_factor
        n = int(rng.poisson(mean)) if mean > 0 else 0
        if n == 0:
            return []
        new_event = rng.random(n) < 0.65
        new_event[0] = True
        event = np.cumsum(new_event) - 1
        n_events = int(event[-1]) + 1
        times = np.sort(rng.integers(start, end, n_events))
        if start % MINUTE_MS == 0 and rng.random() < 0.3:
            times[0] = start  # a trade exactly on the minute's first ms
        if end % MINUTE_MS == 0 and rng.random() < 0.15:
            times[-1] = end - 1  # and one on its last
        sell = rng.random(n_events) < 0.5
        walk = np.exp(np.cumsum(rng.normal(0.0, flow.step_sd, n_events)))
        event_ticks = np.maximum(1, np.rint(flow.ticks * walk)).astype(np.int64)
        sweep = np.arange(n) - np.flatnonzero(new_event)[event]
        ticks = np.maximum(1, event_ticks[event] + np.where(sell[event], -sweep, sweep))
        flow.ticks = int(event_ticks[-1])
        price = ticks * inst.tick
        base_qty = rng.lognormal(math.log(300.0), 1.6, n) / (price / SCALE)
        raw = np.searchsorted(RAW_SIZES, rng.random(n) * RAW_SIZES[-1], side="right") + 1
        lots = np.clip(np.rint(base_qty * SCALE / inst.lot), 1, MAX_FIXED // inst.lot)
        qty = np.maximum(lots.astype(np.int64), raw) * inst.lot
        agg = flow.next_agg + np.arange(n, dtype=np.int64)
        first = flow.next_raw + np.cumsum(raw) - raw
        flow.next_agg += n
        flow.next_raw += int(raw.sum())
        return list(
            zip(
                agg.tolist(),
                price.tolist(),
                qty.tolist(),
                first.tolist(),
                (first + raw - 1).tolist(),
                times[event].tolist(),
                sell[event].tolist(),
                strict=True,
            )
        )
