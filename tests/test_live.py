"""The live pipeline against the fake exchange on loopback (real sockets, real servers).

Every fault ends with klines identical to a fault-free aggregation of the exchange's own tape:
what was dropped, duplicated, reordered or lost in a disconnect is found by its aggTrade id,
fetched over REST and replayed, and the affected klines come again exact (revision 1).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import kline_rs
import numpy as np
import oracle
import pytest
from kline_rs.fake import FakeExchange, Faults, SimulatedMarket
from kline_rs.live.pipeline import LivePipeline, PipelineConfig
from kline_rs.live.symbols import Selection, SymbolManager

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT"]
FIELDS = [
    "open_time", "close_time", "open", "high", "low", "close", "volume", "quote_volume",
    "trades", "taker_buy_volume", "taker_buy_quote_volume", "first_trade_id", "last_trade_id",
]  # fmt: skip

Table = dict[tuple[str, int], tuple[int, bool, dict[str, Any]]]


def upsert(table: Table, k: kline_rs.ClosedKline) -> None:
    """What an idempotent sink keeps: per (symbol, open time) the newest revision."""
    key = (k.symbol, k.open_time)
    if key not in table or k.revision >= table[key][0]:
        table[key] = (k.revision, k.gap, {f: getattr(k, f) for f in FIELDS})


#: Real seconds the pipeline may take, once the exchange stops trading, to deliver its klines
#: exactly (late trades amended, holes repaired). A fast machine settles at once; the bound is
#: for one several times slower, where the feed can lag by more than the grace.
SETTLE_S = 60.0


async def follow(
    market: SimulatedMarket,
    faults: Faults,
    seconds: float,
    *,
    during: Callable[[FakeExchange, LivePipeline], Awaitable[None]] | None = None,
    expect: Callable[[Table], None] | None = None,
    venue: str = "spot",
    **overrides: Any,
) -> Table:
    """Runs the pipeline for ``seconds`` under ``faults`` (and ``during``), then 2.5 s clean.

    Then the exchange stops trading (its clock stops too) and, with ``expect``, the pipeline
    runs on until ``expect(table)`` passes or SETTLE_S has gone by: however slow the machine,
    what is compared is what the pipeline delivers once it has caught up, not what it had
    done at a fixed moment. A wrong kline never passes, so it fails after SETTLE_S.
    """
    table: Table = {}
    clock = kline_rs.ManualClock(market.clock_ms())
    async with FakeExchange(market, faults=faults, venue=venue) as fx:
        settings: dict[str, Any] = {
            "venue": venue,
            "selection": Selection(symbols=frozenset(SYMBOLS)),
            "intervals": ["1m"],
            "partitions": 2,
            # Market time: 1.5 s of real time at speed 60. With ``expect`` the klines still
            # open close at the end, once every trade is in: then 10 s, so that a machine
            # stalled for seconds never closes a minute before its trades arrive.
            "grace_ms": 90_000 if expect is None else 600_000,
        }
        config = PipelineConfig(ws_url=fx.ws_url, rest_url=fx.rest_url, **(settings | overrides))
        pipeline = LivePipeline(
            config,
            lambda k: upsert(table, k),
            engine_kwargs={"clock": clock},
            now_ms=market.clock_ms,
        )

        ahead = [0]  # market ms the engine's clock runs ahead of the market's

        async def drive_clock() -> None:
            while True:
                clock.set(market.clock_ms() + ahead[0])
                await asyncio.sleep(0.01)

        async def heal() -> None:
            await asyncio.sleep(seconds)
            for name in ("drop_rate", "duplicate_rate", "malformed_rate", "implausible_rate"):
                setattr(fx.faults, name, 0.0)
            fx.faults.reorder_window = 0
            fx.faults.disconnect_every = 0

        helpers = [asyncio.create_task(drive_clock()), asyncio.create_task(heal())]
        if during is not None:

            async def act() -> None:
                await pipeline.started()
                await during(fx, pipeline)

            helpers.append(asyncio.create_task(act()))
        run = asyncio.create_task(pipeline.run())
        speed = market.speed
        try:
            await asyncio.wait([run], timeout=seconds + 2.5)
            market.speed = 0.0  # the exchange stops trading; from here on only progress counts
            if expect is not None:
                # Once every trade is in, the clock moves past every close and its grace: what
                # is left open closes, however far behind a slow machine was.
                await caught_up(pipeline, market, run)
                ahead[0] = config.grace_ms + 120_000
                await settle(run, lambda: expect(table))
            if run.done():
                await run  # the pipeline failed: that is the error to report
        finally:
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run
            market.speed = speed  # a later run finds the exchange trading again
            for t in helpers:
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
    return table


async def caught_up(
    pipeline: LivePipeline, market: SimulatedMarket, run: asyncio.Task[None]
) -> None:
    """Waits (SETTLE_S at most) until the exchange has sent every trade up to its stopped
    clock and the engine has applied the last of every symbol it follows (its open kline's last
    raw trade id is the tape's)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_S

    def done() -> bool:
        engine = pipeline.engine
        if engine is None or market.now_ms < market.clock_ms():
            return False  # the exchange has trades up to its stopped clock still to send
        for symbol in engine.symbols():
            tape = market.tapes.get(symbol)
            if tape is None or not len(tape):
                continue
            slots = engine.read(symbol)
            opened = slots[slots["state"] == "open"]["last_trade_id"]
            if not len(opened) or int(opened.max()) < tape.l[-1]:
                return False
        return True

    while not run.done() and loop.time() < deadline and not done():
        await asyncio.sleep(0.05)


async def settle(run: asyncio.Task[None], expect: Callable[[], None]) -> None:
    """Waits until ``expect()`` passes (then 0.5 s more: a later revision must pass too), the
    run ends, or SETTLE_S has gone by."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_S
    while not run.done() and loop.time() < deadline:
        try:
            expect()
        except AssertionError:
            await asyncio.sleep(0.1)
            continue
        await asyncio.sleep(0.5)
        return


def truth(market: SimulatedMarket, symbol: str) -> dict[int, dict[str, Any]]:
    """1m klines of everything the exchange traded, by open time, from the independent
    reference (tests/oracle.py), quote volumes as printed (1e-8)."""
    return oracle.by_open_time(market.history(symbol), "1m")


printed = oracle.printed


def _py(v: Any) -> Any:
    return int(v) if isinstance(v, np.integer) else v


FAULTS = {
    "none": Faults(),
    "drops": Faults(drop_rate=0.05, seed=1),
    "duplicates": Faults(duplicate_rate=0.2, seed=2),
    "reorder": Faults(reorder_window=6, seed=3),
    "disconnects": Faults(disconnect_every=400, seed=4),
    "delays+drops": Faults(delay_ms=30, drop_rate=0.02, seed=5),
    "abrupt disconnects + 429s": Faults(disconnect_every=500, abrupt_disconnect=True, rest_429=2),
    "malformed frames": Faults(malformed_rate=0.03, seed=6),
    # A copy from the year 3000, in µs, days ahead or negative before a real frame: refused.
    "implausible times": Faults(implausible_rate=0.05, seed=8),
}


def check(
    market: SimulatedMarket, table: Table, symbols: list[str] = SYMBOLS, *, skip_first: bool = True
) -> None:
    """Every closed kline (after the first, joined midway) equals the tape's; none is gap."""
    compare(table, {s: truth(market, s) for s in symbols}, skip_first=skip_first)


def compare(
    table: Table, truths: dict[str, dict[int, dict[str, int]]], *, skip_first: bool = True
) -> None:
    """``table`` against each symbol's truth; past the truth's last kline (the exchange stopped
    trading, the clock went on) only flat klines at its close."""
    compared = 0
    for symbol, want in truths.items():
        got = sorted((t, v) for (s, t), v in table.items() if s == symbol)
        assert got, f"{symbol}: no kline closed"
        end = max(want)
        for open_time, (_rev, gap, fields) in got[int(skip_first) :]:
            assert not gap, f"{symbol} {open_time}: still marked gap"
            if open_time > end:
                assert (fields["trades"], fields["close"]) == (0, want[end]["close"]), open_time
                continue
            assert printed(fields) == want[open_time], f"{symbol} {open_time}"
            compared += 1
    assert compared >= 2 * len(truths)


@pytest.mark.parametrize("name", list(FAULTS))
def test_klines_equal_the_exchange_tape_whatever_the_fault(name: str) -> None:
    market = SimulatedMarket(SYMBOLS, seed=11, speed=60.0, trades_per_second=60.0)
    engines: list[Any] = []

    async def keep(fx: FakeExchange, pipeline: LivePipeline) -> None:
        engines.append(pipeline.engine)

    # 429s answer the first exchangeInfo: their waits count in the run's duration.
    held = FAULTS[name].rest_429 * FAULTS[name].retry_after_s
    expect = partial(check, market)
    table = asyncio.run(follow(market, FAULTS[name], 3.0 + held, during=keep, expect=expect))
    check(market, table)
    if name == "malformed frames":
        # Counted, not fatal: the trades they hid were found by id and fetched over REST.
        assert engines[0].metrics()["malformed"] > 0
    if name == "implausible times":
        parts = engines[0].metrics()["partitions"]
        refused = sum(p[k] for p in parts for k in ("implausible_unit", "implausible_ahead"))
        assert refused > 0 and sum(p["late"] for p in parts) == 0


def test_coin_m_quote_volumes_are_base_asset_volume_by_each_symbols_contract_size() -> None:
    # COIN-M klines print base-asset volume: contracts x contractSize / price, the size from
    # exchangeInfo (100 USD for BTCUSD_PERP, 10 for ETHUSD_PERP), the exact sum cut to 8
    # decimals once; with drops, so that REST-repaired klines are checked too.
    symbols = ["BTCUSD_PERP", "ETHUSD_PERP"]
    market = SimulatedMarket(symbols, seed=12, speed=60.0, trades_per_second=40.0)
    sizes = {s: market.instruments[s].contract_size for s in symbols}
    assert sizes == {"BTCUSD_PERP": 100, "ETHUSD_PERP": 10}

    def truths() -> dict[str, dict[int, dict[str, int]]]:
        return {
            s: oracle.by_open_time(market.history(s), "1m", contract_size=sizes[s]) for s in symbols
        }

    faults = Faults(drop_rate=0.03, seed=9)
    selection = Selection(symbols=frozenset(symbols))
    expect = lambda t: compare(t, truths())  # noqa: E731
    table = asyncio.run(
        follow(market, faults, 3.0, expect=expect, venue="coinm", selection=selection)
    )
    compare(table, truths())


def test_rotation_before_the_24h_cut_off_loses_and_doubles_nothing() -> None:
    """Time compressed: each connection is replaced (with overlap) every 0.7 s."""
    market = SimulatedMarket(SYMBOLS, seed=12, speed=60.0, trades_per_second=60.0)
    feeds: list[Any] = []

    async def watch(fx: FakeExchange, pipeline: LivePipeline) -> None:
        feeds.append(pipeline.feed)

    expect = partial(check, market)
    run = follow(market, Faults(), 3.0, during=watch, expect=expect, rotate_after=0.7)
    table = asyncio.run(run)
    assert feeds[0].stats.rotations >= 3
    check(market, table)


def test_server_shutdown_and_many_connections() -> None:
    """Two streams per connection (three connections), and a serverShutdown mid-run."""
    market = SimulatedMarket(SYMBOLS, seed=13, speed=60.0, trades_per_second=60.0)
    seen: list[Any] = []

    async def shut(fx: FakeExchange, pipeline: LivePipeline) -> None:
        await asyncio.sleep(1.0)
        seen.append(len(fx.connections))
        await fx.server_shutdown()
        seen.append(pipeline.feed)

    expect = partial(check, market)
    table = asyncio.run(follow(market, Faults(), 3.0, during=shut, expect=expect, max_streams=2))
    assert seen[0] == 3
    assert seen[1].stats.server_shutdowns >= 1
    check(market, table)


def test_a_listing_is_followed_and_a_delisting_leaves_no_state() -> None:
    market = SimulatedMarket(SYMBOLS, seed=14, speed=60.0, trades_per_second=60.0)
    states: dict[str, Any] = {}

    async def lifecycle(fx: FakeExchange, pipeline: LivePipeline) -> None:
        assert pipeline.engine is not None and pipeline.feed is not None
        market.list_symbol("NEWUSDT")
        await until(lambda: "NEWUSDT" in pipeline.engine.symbols())  # type: ignore[union-attr]
        states["listed"] = "newusdt@aggTrade" in pipeline.feed.streams
        market.delist("XRPUSDT")
        await until(lambda: "XRPUSDT" not in pipeline.engine.symbols())  # type: ignore[union-attr]
        states["streams"] = set(pipeline.feed.streams)
        states["metrics"] = pipeline.engine.metrics()

    followed = [s for s in SYMBOLS if s != "XRPUSDT"] + ["NEWUSDT"]
    table = asyncio.run(
        follow(
            market,
            Faults(),
            3.0,
            during=lifecycle,
            expect=partial(check, market, symbols=followed),
            selection=Selection(quote="USDT"),
            exchange_info_every=0.2,
            max_halt=0.5,  # Binance keeps a delisted pair as BREAK: halted, then dropped
        )
    )
    assert states["listed"]
    assert "xrpusdt@aggTrade" not in states["streams"]
    assert sum(p["symbols"] for p in states["metrics"]["partitions"]) == len(SYMBOLS)
    assert any(s == "NEWUSDT" for s, _ in table)
    check(market, table, followed)


def test_a_halted_symbol_keeps_its_state_makes_no_flat_klines_and_resumes() -> None:
    """HALT, 2 s (120 market seconds) of it, TRADING again: the symbol stays in the engine,
    the halted span has no klines, and after the resume its klines are the tape's again."""
    market = SimulatedMarket(SYMBOLS, seed=16, speed=60.0, trades_per_second=60.0)
    marks: dict[str, Any] = {}

    async def halt_and_resume(fx: FakeExchange, pipeline: LivePipeline) -> None:
        engine, manager = pipeline.engine, pipeline.manager
        assert engine is not None and manager is not None
        await asyncio.sleep(0.5)
        market.set_status("BTCUSDT", "HALT")
        await until(lambda: manager.statuses.get("BTCUSDT") == "HALT")
        marks["learnt"] = market.clock_ms()
        await asyncio.sleep(2.0)
        marks["kept"] = "BTCUSDT" in engine.symbols()
        marks["resumed"] = market.now_ms  # trades come again from here (not the clock's now)
        market.list_symbol("BTCUSDT")  # TRADING again
        await until(lambda: manager.statuses.get("BTCUSDT") == "TRADING")

    table = asyncio.run(
        follow(
            market,
            Faults(),
            3.0,
            during=halt_and_resume,
            expect=partial(check, market),
            exchange_info_every=0.2,
        )
    )
    assert marks["kept"], "the halted symbol was removed"
    minute = 60_000
    # The minute in which the halt was learnt may hold trades from before it; none after is
    # flat, and none before the minute trading resumed in has a row.
    learnt = marks["learnt"] - marks["learnt"] % minute
    silent_from, silent_to = learnt + minute, marks["resumed"] - marks["resumed"] % minute
    assert silent_to - silent_from >= minute
    assert ("BTCUSDT", learnt) not in table or table["BTCUSDT", learnt][2]["trades"] > 0
    btc = sorted(t for (s, t) in table if s == "BTCUSDT")
    assert not [(t, table["BTCUSDT", t]) for t in btc if silent_from <= t < silent_to], (
        f"klines while halted, {marks}"
    )
    assert any(t >= silent_to for t in btc), "no kline after the resume"
    check(market, table)


def test_the_symbol_manager_halts_resumes_and_drops_a_symbol_halted_too_long() -> None:
    status = {"BTCUSDT": "TRADING", "ETHUSDT": "TRADING"}
    now = [0.0]
    calls: list[tuple[str, list[str]]] = []

    async def info() -> dict[str, Any]:
        return {"symbols": [{"symbol": k, "status": v} for k, v in status.items()]}

    def note(what: str) -> Callable[[list[str]], Awaitable[None]]:
        async def call(symbols: list[str]) -> None:
            calls.append((what, symbols))

        return call

    manager = SymbolManager(
        info, Selection(), add=note("add"), remove=note("remove"), halt=note("halt"),
        resume=note("resume"), max_halt=100.0, clock=lambda: now[0],
    )  # fmt: skip

    async def polls() -> None:
        await manager.refresh()
        status["BTCUSDT"], status["ETHUSDT"] = "HALT", "BREAK"
        await manager.refresh()
        now[0] = 99.0
        status["BTCUSDT"] = "TRADING"
        await manager.refresh()  # BTCUSDT trades again; ETHUSDT is still within the bound
        now[0] = 100.0
        await manager.refresh()  # ETHUSDT halted 100 s: a delisting (Binance keeps it BREAK)

    asyncio.run(polls())
    assert calls == [
        ("add", ["BTCUSDT", "ETHUSDT"]),
        ("halt", ["BTCUSDT", "ETHUSDT"]),
        ("resume", ["BTCUSDT"]),
        ("remove", ["ETHUSDT"]),
    ]
    assert manager.following == {"BTCUSDT"} and manager.halted == {}


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


def lookback_from(market: SimulatedMarket, began: list[int]) -> Callable[..., Awaitable[None]]:
    """A ``during`` that notes the market time once the pipeline has started: its lookback
    counts from a moment before that, however long the start took."""

    async def note(fx: FakeExchange, pipeline: LivePipeline) -> None:
        began.append(market.clock_ms() - 5 * 60_000)

    return note
