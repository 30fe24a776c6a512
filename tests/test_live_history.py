"""The live pipeline with history: REST aggTrades or klines at start-up joining the live
stream, a restart healing stored gap klines, holes nobody can fill given up once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from functools import partial
from pathlib import Path

import kline_rs
import pytest
from kline_rs.engine import closed_kline
from kline_rs.fake import FakeExchange, Faults, SimulatedMarket
from kline_rs.live.repair import MAX_ATTEMPTS, GapRepairer, RepairStats
from kline_rs.rest import BinanceRest
from kline_rs.storage import read_klines
from test_live import (
    FIELDS,
    SYMBOLS,
    Table,
    _py,
    check,
    follow,
    lookback_from,
    printed,
    truth,
    until,
)


def history_reaches(opens: list[int], began: list[int]) -> bool:
    """The first kline is at most a minute after the start of the 5-minute lookback."""
    return bool(began) and opens[0] <= began[0] - began[0] % 60_000 + 60_000


def test_history_at_start_up_joins_the_live_stream_without_double_counting() -> None:
    """Five market minutes before the start come from REST aggTrades; then live, exactly."""
    market = SimulatedMarket(SYMBOLS, seed=15, speed=60.0, trades_per_second=60.0)
    market.advance(market.clock_ms() + 5 * 60_000)  # the exchange has traded for 5 minutes
    began: list[int] = []
    expect = partial(check, market, skip_first=False)
    during = lookback_from(market, began)
    table = asyncio.run(
        follow(market, Faults(), 2.0, during=during, expect=expect, lookback_ms=5 * 60_000)
    )
    for symbol in SYMBOLS:
        opens = sorted(t for s, t in table if s == symbol)
        assert history_reaches(opens, began), f"{symbol}: history missing"
    check(market, table, skip_first=False)


def check_rest_history(market: SimulatedMarket, began: list[int], table: Table) -> None:
    """Every minute once from the lookback on, none gap, the seam replaced (revision 1); REST
    klines equal the tape but for trade ids, the engine's own equal it in every field."""
    for symbol in SYMBOLS:
        want = truth(market, symbol)
        got = sorted((t, v) for (s, t), v in table.items() if s == symbol)
        opens = [t for t, _ in got]
        assert opens and history_reaches(opens, began), f"{symbol}: history missing"
        assert opens == list(range(opens[0], opens[-1] + 1, 60_000)), f"{symbol}: not contiguous"
        assert any(rev == 1 for _, (rev, _, _) in got), f"{symbol}: the seam was not replaced"
        live = 0
        for open_time, (_rev, gap, fields) in got:
            assert not gap, f"{symbol} {open_time}: still marked gap"
            if open_time > max(want):  # the exchange stopped, the clock went on: flat
                assert (fields["trades"], fields["close"]) == (0, want[max(want)]["close"])
                continue
            w = want[open_time]
            if fields["first_trade_id"] == -1 and fields["trades"] > 0:  # a REST kline
                same = [f for f in FIELDS if "trade_id" not in f]
                assert {f: printed(fields)[f] for f in same} == {f: w[f] for f in same}
            else:
                assert printed(fields) == w, f"{symbol} {open_time}"
                live += fields["trades"] > 0
        assert live >= 1, f"{symbol}: no live kline"


@pytest.mark.parametrize("stored", [False, True], ids=["handed on", "stored in SQLite"])
def test_history_from_rest_klines_joins_live_and_the_partial_seam_is_replaced(
    stored: bool, tmp_path: Path
) -> None:
    """Five market minutes before the start come from REST klines (Binance's own: quote
    volumes at 8 decimals, no trade ids); the engine's partial first kline, marked gap, is
    replaced by the exchange's once closed (revision 1); every minute once, none gap."""
    market = SimulatedMarket(SYMBOLS, seed=16, speed=60.0, trades_per_second=60.0)
    market.advance(market.clock_ms() + 5 * 60_000)
    began: list[int] = []
    db = {"db": str(tmp_path / "k.sqlite"), "flush_every": 0.2} if stored else {}
    table = asyncio.run(
        follow(
            market,
            Faults(),
            2.0,
            during=lookback_from(market, began),
            expect=partial(check_rest_history, market, began),
            lookback_ms=5 * 60_000,
            history="klines",
            **db,
        )
    )
    if stored:  # what the store holds is what was reported
        for symbol in SYMBOLS:
            rows = read_klines(tmp_path / "k.sqlite", symbol, "1m")
            assert rows["open_time"].tolist() == sorted(t for s, t in table if s == symbol)
            assert not rows["gap"].any(), f"{symbol}: a gap row stored"
    check_rest_history(market, began, table)


def test_a_restart_heals_stored_gap_klines_with_the_exchanges_own(tmp_path: Path) -> None:
    """The first run joins midway: its first kline per symbol is stored marked gap (partial).
    A restart on the same store replaces each with the exchange's own kline for that period
    (revision 1, gap cleared); the run resumes from its checkpoints exactly."""
    market = SimulatedMarket(SYMBOLS, seed=17, speed=60.0, trades_per_second=60.0)
    db = tmp_path / "k.sqlite"
    asyncio.run(follow(market, Faults(), 1.0, db=str(db), flush_every=0.2))
    gaps = {s: read_klines(db, s, "1m")["gap"].sum() for s in SYMBOLS}
    assert sum(gaps.values()) >= len(SYMBOLS) - 1, gaps  # the partial first klines
    asyncio.run(follow(market, Faults(), 1.0, db=str(db), flush_every=0.2))
    for symbol in SYMBOLS:
        rows = read_klines(db, symbol, "1m")
        want = truth(market, symbol)
        assert not rows["gap"].any(), f"{symbol}: still a gap row"
        opens = rows["open_time"].tolist()
        assert opens == list(range(opens[0], opens[-1] + 1, 60_000)), f"{symbol}: a hole"
        first, w = rows[0], want[opens[0]]
        if gaps[symbol]:  # its partial first kline, replaced by the exchange's
            assert first["revision"] == 1 and first["first_trade_id"] == -1
        # (A symbol whose first trade opened a minute has no partial kline to heal: the check
        # above allows one such, and its first row is the engine's own, exact.)
        for name in ("open", "high", "low", "close", "volume", "trades", "taker_buy_volume"):
            assert int(first[name]) == w[name], f"{symbol} {name}"
        assert int(first["quote_volume"]) // 10**8 == w["quote_volume"]
        for row in rows[1:]:  # the engine's own, exact
            assert printed({f: _py(row[f]) for f in FIELDS}) == want[int(row["open_time"])]


#: How far ahead of the last real id the bad frame's is: within what the core takes as
#: plausible (1 M ids a second; 10**12 itself is refused there), beyond what REST has.
FAR_AHEAD = 500_000
HOLE_T0 = 1_700_000_007_000  # mid-minute, as a feed joins


async def follow_a_far_ahead_id(
    market: SimulatedMarket, then_minutes: int = 0
) -> tuple[list[kline_rs.ClosedKline], RepairStats, list[int], int]:
    """Three minutes of real trades, then one frame with an aggTrade id far ahead, a repairer on
    the fake exchange's REST (which has no such ids), then ``then_minutes`` more real trades.
    Returns the klines, the repairer's stats, REST requests when it gave up and 0.3 s later,
    and the time of the last real trade before the frame."""
    market.advance(market.now_ms + 3 * 60_000)
    real = market.history("BTCUSDT")
    last = real[-1]
    ahead = last["a"] + FAR_AHEAD
    bogus = {**last, "a": ahead, "f": ahead, "l": ahead}
    event = {"e": "aggTrade", "E": last["T"], "s": "BTCUSDT"}
    frame = {"stream": "btcusdt@aggTrade", "data": event | bogus}
    clock = kline_rs.ManualClock(market.now_ms)
    async with FakeExchange(market) as fx, BinanceRest("spot", base_url=fx.rest_url) as rest:
        with kline_rs.Engine(["1m"], partitions=1, clock=clock, detect_id_gaps=True) as engine:
            engine.add_symbol("BTCUSDT")
            engine.push_trades(
                "BTCUSDT", kline_rs.parse_agg_trades(json.dumps(real, default=str).encode())
            )
            engine.push_raw([json.dumps(frame, default=str).encode()])
            clock.set(market.now_ms + 2 * 60_000)  # what follows the frame closes marked gap
            repairer = GapRepairer(engine, rest, poll_every=0.01, retry_delay=0.01)
            task = asyncio.create_task(repairer.run())
            try:
                await until(lambda: repairer.stats.given_up > 0)
                requests = [fx.stats.rest_requests]
                await asyncio.sleep(0.3)
                requests.append(fx.stats.rest_requests)
                if then_minutes:
                    before = market.now_ms
                    market.advance(before + then_minutes * 60_000)
                    later = [t for t in market.history("BTCUSDT") if t["T"] > before]
                    engine.push_trades(
                        "BTCUSDT",
                        kline_rs.parse_agg_trades(json.dumps(later, default=str).encode()),
                    )
                    clock.set(market.now_ms + 2 * 60_000)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            klines: list[kline_rs.ClosedKline] = []
            for batch in engine.drain():
                klines += [closed_kline(r) for r in batch.klines]
                engine.ack(batch.token)
    return klines, repairer.stats, requests, int(last["T"])


def test_an_unfillable_hole_is_given_up_once_and_its_bogus_id_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Today the symbol stayed in repair for ever: a REST call per cycle, every kline twice."""
    market = SimulatedMarket(["BTCUSDT"], seed=18, start_ms=HOLE_T0, speed=0, trades_per_second=5.0)
    with caplog.at_level(logging.WARNING, logger="kline_rs.repair"):
        klines, stats, requests, hole_at = asyncio.run(follow_a_far_ahead_id(market))
    assert (stats.gaps, stats.given_up, stats.repaired) == (1, 1, 0)
    assert requests[0] <= MAX_ATTEMPTS and requests[1] == requests[0]  # no more REST calls
    warned = [r for r in caplog.records if "given up" in r.getMessage()]
    assert len(warned) == 1 and "given up after" in warned[0].getMessage()
    by_open: dict[int, list[kline_rs.ClosedKline]] = {}
    for k in klines:
        by_open.setdefault(k.open_time, []).append(k)
    for open_time, seen in by_open.items():
        assert len(seen) <= 2, f"{open_time}: emitted {len(seen)} times"
        if len(seen) == 2:  # closed marked gap while repairing, then again once given up
            assert (seen[0].revision, seen[0].gap, seen[1].revision) == (0, True, 1)
    # REST's history ends before the hole: the id that opened it cannot exist yet and is
    # refused, so the kline over it comes back exact (revision 1), not gap.
    over_hole = by_open[hole_at - hole_at % 60_000][-1]
    want = truth(market, "BTCUSDT")
    assert not over_hole.gap and over_hole.revision == 1
    assert printed({f: getattr(over_hole, f) for f in FIELDS}) == want[over_hole.open_time]
    before = [v[0] for t, v in by_open.items() if t + 60_000 <= hole_at - hole_at % 60_000]
    assert before and all(not k.gap and len(by_open[k.open_time]) == 1 for k in before)
    assert all(printed({f: getattr(k, f) for f in FIELDS}) == want[k.open_time] for k in before[1:])


def test_after_giving_up_on_a_hole_the_symbol_goes_on_from_the_live_stream() -> None:
    market = SimulatedMarket(["BTCUSDT"], seed=18, start_ms=HOLE_T0, speed=0, trades_per_second=5.0)
    klines, _stats, _requests, hole_at = asyncio.run(follow_a_far_ahead_id(market, 3))
    want = truth(market, "BTCUSDT")
    latest: dict[int, kline_rs.ClosedKline] = {k.open_time: k for k in klines}
    after = [k for t, k in sorted(latest.items()) if t > hole_at + 60_000 and t in want]
    assert after, "no kline closed after the hole"
    for k in after:
        assert printed({f: getattr(k, f) for f in FIELDS}) == want[k.open_time], k.open_time
