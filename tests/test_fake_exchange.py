"""The fake Binance exchange (``kline_rs.fake``) on loopback: real sockets, real servers.

Time is moved by hand (markets at ``speed=0`` and ``fx.pump(t)``) wherever a test needs to
know what was sent, so nothing waits on luck; waits are for conditions, with timeouts.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import kline_rs
import pytest
from kline_rs.fake import FakeExchange, Faults, RecordedMarket, SimulatedMarket
from kline_rs.fake.recorded import read_capture

T0 = 1_699_999_980_000  # 2023-11-14 22:13:00 UTC, a minute boundary
MINUTE = 60_000
HOUR = 60 * MINUTE
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
R = TypeVar("R")


def run(coro: Coroutine[Any, Any, R], timeout: float = 20.0) -> R:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def market(minutes: int = 0, **kwargs: Any) -> SimulatedMarket:
    """A stopped market (speed 0) with ``minutes`` of history from T0."""
    options: dict[str, Any] = {"seed": 7, "start_ms": T0, "speed": 0, "trades_per_second": 20}
    m = SimulatedMarket(kwargs.pop("symbols", SYMBOLS), **(options | kwargs))
    if minutes:
        m.advance(T0 + minutes * MINUTE)
    return m


async def get(
    session: aiohttp.ClientSession, url: str, **params: Any
) -> tuple[int, dict[str, str], Any]:
    async with session.get(url, params={k: str(v) for k, v in params.items()}) as r:
        return r.status, dict(r.headers), await r.json(content_type=None)


async def frames(
    ws: aiohttp.ClientWebSocketResponse, count: int, timeout: float = 5.0
) -> list[str]:
    """The next ``count`` text frames; fails if the connection ends first."""
    out: list[str] = []
    while len(out) < count:
        msg = await ws.receive(timeout=timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, f"ended after {len(out)} frames: {msg}"
        out.append(msg.data)
    return out


async def until_closed(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0) -> list[str]:
    """Text frames up to the close."""
    out: list[str] = []
    while True:
        msg = await ws.receive(timeout=timeout)
        if msg.type != aiohttp.WSMsgType.TEXT:
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg
            return out
        out.append(msg.data)


async def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def events(texts: list[str]) -> list[dict[str, Any]]:
    return [json.loads(t)["data"] for t in texts]


def trade_of(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k not in ("e", "E", "s")}


Scenario = Callable[[FakeExchange, aiohttp.ClientSession], Awaitable[None]]


def serve(m: Any, scenario: Scenario, **options: Any) -> None:
    async def main() -> None:
        async with FakeExchange(m, **options) as fx, aiohttp.ClientSession() as session:
            await scenario(fx, session)

    run(main())


# -- the market ----------------------------------------------------------------------------


def test_simulated_market_is_deterministic_skewed_and_well_formed() -> None:
    stepped = market(symbols=8, trades_per_second=30)
    for step_end in range(T0 + 997, T0 + 20 * MINUTE, 997):  # uneven steps, same trades
        stepped.advance(step_end)
    stepped.advance(T0 + 20 * MINUTE)
    at_once = market(20, symbols=8, trades_per_second=30)
    counts = []
    for symbol in at_once.symbols():
        history = at_once.history(symbol)
        assert history == stepped.history(symbol)
        inst = at_once.instruments[symbol]
        ids = [t["a"] for t in history]
        assert ids == list(range(ids[0], ids[0] + len(ids)))
        assert all(b["f"] == a["l"] + 1 for a, b in itertools.pairwise(history))
        assert all(t["f"] <= t["l"] for t in history)
        assert all(a["T"] <= b["T"] for a, b in itertools.pairwise(history))
        for t in history:
            p, q = kline_rs.parse_fixed8(t["p"]), kline_rs.parse_fixed8(t["q"])
            assert t["p"] == kline_rs.format_fixed8(p) and len(t["p"].split(".")[1]) == 8
            assert p % inst.tick == 0 and q % inst.lot == 0 and p > 0 and q > 0
        counts.append(len(history))
    assert counts[0] > 5 * counts[-1]  # skewed activity
    per_minute = [sum(1 for t in at_once.history("BTCUSDT") if t["T"] // MINUTE == m)
                  for m in range(T0 // MINUTE, T0 // MINUTE + 20)]  # fmt: skip
    assert min(per_minute) * 3 < max(per_minute)  # bursts and quiet stretches
    assert market(20, symbols=8, seed=8).history("BTCUSDT") != at_once.history("BTCUSDT")


def test_market_clock_runs_at_speed_and_jumps_forward() -> None:
    began = time.monotonic()
    m = SimulatedMarket(["BTCUSDT"], start_ms=T0, speed=600, trades_per_second=1)
    time.sleep(0.05)
    elapsed = m.clock_ms() - T0
    assert 0.05 * 600_000 <= elapsed <= (time.monotonic() - began) * 600_000
    m.advance(T0 + HOUR)
    assert m.now_ms == T0 + HOUR and m.clock_ms() >= T0 + HOUR
    assert m.advance(T0) == []  # never backwards


# -- REST ------------------------------------------------------------------------------------


def test_agg_trades_paging_by_from_id_reproduces_the_history() -> None:
    m = market(15)

    async def scenario(fx: FakeExchange, s: aiohttp.ClientSession) -> None:
        url = fx.rest_url + "/api/v3/aggTrades"
        for symbol in SYMBOLS:
            history = m.history(symbol)
            pages: list[dict[str, Any]] = []
            from_id = history[0]["a"]
            while True:
                status, headers, page = await get(s, url, symbol=symbol, fromId=from_id, limit=1000)
                assert status == 200 and len(page) <= 1000
                assert int(headers["X-MBX-USED-WEIGHT-1M"]) > 0
                if not page:
                    break
                pages += page
                from_id = page[-1]["a"] + 1
            assert pages == history
        history = m.history("BTCUSDT")
        _, _, recent = await get(s, url, symbol="BTCUSDT")
        assert recent == history[-500:]  # default limit, most recent
        start = T0 + 5 * MINUTE
        _, _, window = await get(s, url, symbol="BTCUSDT", startTime=start, endTime=start + 999)
        assert window == [t for t in history if start <= t["T"] <= start + 999][:500]
        _, _, capped = await get(s, url, symbol="BTCUSDT", fromId=history[0]["a"], limit=5000)
        assert capped == history[:1000]

    serve(m, scenario)


def test_rest_errors_are_binance_errors() -> None:
    async def scenario(fx: FakeExchange, s: aiohttp.ClientSession) -> None:
        api = fx.rest_url + "/api/v3"
        status, _, body = await get(s, api + "/aggTrades", symbol="NOPE")
        assert (status, body) == (400, {"code": -1121, "msg": "Invalid symbol."})
        status, _, body = await get(s, api + "/aggTrades")
        assert status == 400 and body["code"] == -1102
        status, _, body = await get(s, api + "/aggTrades", symbol="BTCUSDT", startTime=T0,
                                    endTime=T0 + HOUR + 1)  # fmt: skip
        assert status == 400 and body["code"] == -1127
        status, _, body = await get(s, api + "/aggTrades", symbol="BTCUSDT", fromId="x")
        assert status == 400 and body["code"] == -1100
        status, _, body = await get(s, api + "/klines", symbol="BTCUSDT", interval="2m")
        assert (status, body) == (400, {"code": -1120, "msg": "Invalid interval."})

    serve(market(1), scenario)


def test_klines_equal_replay_of_the_history(tmp_path: Path) -> None:
    m = market(100, trades_per_second=5)
    intervals = ["1m", "5m", "1h"]
    dump = tmp_path / "BTCUSDT-aggTrades-2023-11-14.csv"
    dump.write_text(
        "".join(
            f"{t['a']},{t['p']},{t['q']},{t['f']},{t['l']},{t['T']},{t['m']},True\n"
            for t in m.history("BTCUSDT")
        )
    )
    kline_rs.replay([dump], tmp_path / "out", intervals)

    async def scenario(fx: FakeExchange, s: aiohttp.ClientSession) -> None:
        url = fx.rest_url + "/api/v3/klines"
        for interval in intervals:
            replayed = (tmp_path / "out" / f"BTCUSDT-{interval}.csv").read_text().splitlines()
            status, headers, rows = await get(s, url, symbol="BTCUSDT", interval=interval,
                                              startTime=T0 - HOUR, limit=1000)  # fmt: skip
            assert status == 200 and headers["X-MBX-USED-WEIGHT-1M"]
            lines = [",".join(str(v) for v in row) for row in rows]
            assert lines[: len(replayed)] == replayed
            close = replayed[-1].split(",")[4]
            for row in rows[len(replayed) :]:  # quiet after the last trade: flat, up to now
                assert row[1:5] == [close] * 4 and row[8] == 0 and row[5] == "0.00000000"
            assert rows[-1][0] <= m.now_ms <= rows[-1][6]
            _, _, tail = await get(s, url, symbol="BTCUSDT", interval=interval, limit=2,
                                   endTime=rows[1][0])  # fmt: skip
            assert tail == rows[:2]
            _, _, page = await get(s, url, symbol="BTCUSDT", interval=interval, limit=1,
                                   startTime=rows[0][0] + 1)  # fmt: skip
            assert page == rows[1:2]

    serve(m, scenario)


def test_futures_venue_paths_weights_and_text() -> None:
    m = market(3)

    async def scenario(fx: FakeExchange, s: aiohttp.ClientSession) -> None:
        api = fx.rest_url + "/fapi/v1"
        _, headers, info = await get(s, api + "/exchangeInfo")
        assert headers["X-MBX-USED-WEIGHT-1M"] == "1"
        btc = next(x for x in info["symbols"] if x["symbol"] == "BTCUSDT")
        assert btc["status"] == "TRADING" and btc["filters"][0]["tickSize"] == "0.01"
        _, headers, trades = await get(s, api + "/aggTrades", symbol="BTCUSDT", limit=3)
        assert headers["X-MBX-USED-WEIGHT-1M"] == "21"
        assert "M" not in trades[0] and len(trades[0]["p"].split(".")[1]) == 2
        assert kline_rs.parse_fixed8(trades[0]["p"]) == kline_rs.parse_fixed8(
            m.history("BTCUSDT")[-3]["p"]
        )
        _, headers, _ = await get(s, api + "/klines", symbol="BTCUSDT", interval="1m", limit=1000)
        assert headers["X-MBX-USED-WEIGHT-1M"] == "26"  # weight 5 for limit 500..1000
        status, _, body = await get(s, api + "/klines", symbol="BTCUSDT", interval="1s")
        assert status == 400 and body["code"] == -1120  # no 1s klines on futures

    serve(m, scenario, venue="usdm")


def test_exchange_info_follows_listings_and_delistings() -> None:
    m = market(1)

    async def scenario(fx: FakeExchange, s: aiohttp.ClientSession) -> None:
        url = fx.rest_url + "/api/v3/exchangeInfo"

        async def statuses() -> dict[str, str]:
            _, headers, info = await get(s, url)
            assert headers["X-MBX-USED-WEIGHT-1M"] in {"20", "40", "60", "80"}
            return {x["symbol"]: x["status"] for x in info["symbols"]}

        assert await statuses() == dict.fromkeys(SYMBOLS, "TRADING")
        m.list_symbol("NEWUSDT")
        m.delist("ETHUSDT")
        assert await statuses() == {**dict.fromkeys(SYMBOLS, "TRADING"), "ETHUSDT": "BREAK",
                                    "NEWUSDT": "TRADING"}  # fmt: skip
        eth_before = len(m.history("ETHUSDT"))
        fx.pump(T0 + 10 * MINUTE)
        assert len(m.history("ETHUSDT")) == eth_before  # no trades after the delisting
        assert m.history("NEWUSDT") and m.history("NEWUSDT")[0]["T"] > T0 + MINUTE
        _, _, info = await get(s, url, symbol="NEWUSDT")
        new = info["symbols"][0]
        assert (new["baseAsset"], new["quoteAsset"]) == ("NEW", "USDT")
        _, _, eth = await get(s, fx.rest_url + "/api/v3/klines", symbol="ETHUSDT", interval="1m",
                              startTime=T0)  # fmt: skip
        assert eth[-1][0] <= T0 + MINUTE  # klines stop with the delisting

    serve(m, scenario)


def test_weight_limit_gives_429_with_retry_after_then_418() -> None:
    now = [1000.0]

    async def scenario(fx: FakeExchange, s: aiohttp.ClientSession) -> None:
        url = fx.rest_url + "/api/v3/exchangeInfo"
        assert [(await get(s, url))[1]["X-MBX-USED-WEIGHT-1M"] for _ in range(2)] == ["20", "40"]
        status, headers, body = await get(s, url)
        assert (status, headers["Retry-After"], body["code"]) == (429, "60", -1003)
        status, headers, body = await get(s, url)  # did not wait: banned
        assert (status, headers["Retry-After"]) == (418, "120")
        now[0] += 119
        assert (await get(s, url))[0] == 418
        now[0] += 1
        status, headers, _ = await get(s, url)
        assert (status, headers["X-MBX-USED-WEIGHT-1M"]) == (200, "20")  # old weight expired
        assert (fx.stats.rest_429, fx.stats.rest_418) == (1, 2)

    serve(market(1), scenario, weight_limit=50, clock=lambda: now[0])


def test_rest_429_fault_then_retry_after() -> None:
    now = [0.0]
    faults = Faults(rest_429=2, retry_after_s=3)

    async def scenario(fx: FakeExchange, s: aiohttp.ClientSession) -> None:
        url = fx.rest_url + "/api/v3/ping"
        for _ in range(2):
            status, headers, _ = await get(s, url)
            assert (status, headers["Retry-After"]) == (429, "3")
            now[0] += 3
        assert (await get(s, url))[0] == 200
        fx.faults.rest_429 = 1
        assert (await get(s, url))[0] == 429
        assert (await get(s, url))[0] == 418

    serve(market(), scenario, faults=faults, clock=lambda: now[0])


# -- websocket -------------------------------------------------------------------------------


def combined_url(fx: FakeExchange, symbols: list[str]) -> str:
    return fx.ws_url + "/stream?streams=" + "/".join(f"{s.lower()}@aggTrade" for s in symbols)


def test_combined_stream_delivers_every_trade_once_in_order() -> None:
    m = market(1)

    async def scenario(fx: FakeExchange, s: aiohttp.ClientSession) -> None:
        async with s.ws_connect(combined_url(fx, SYMBOLS)) as ws:
            await wait_for(lambda: len(fx.connections) == 1)
            offered = sum(fx.pump(T0 + k * MINUTE) for k in range(2, 6))
            got = await frames(ws, offered)
            assert fx.pump(T0 + 5 * MINUTE) == 0
            with pytest.raises(asyncio.TimeoutError):  # and nothing more
                await ws.receive(timeout=0.1)
        data = events(got)
        assert all(a["T"] <= b["T"] for a, b in itertools.pairwise(data))
        assert all(d["e"] == "aggTrade" and d["E"] >= d["T"] for d in data)
        assert [json.loads(g)["stream"] for g in got] == [
            f"{d['s'].lower()}@aggTrade" for d in data
        ]
        for symbol in SYMBOLS:
            history = m.history(symbol)
            start = next(i for i, t in enumerate(history) if t["T"] > T0 + MINUTE)
            assert [trade_of(d) for d in data if d["s"] == symbol] == history[start:]

    serve(m, scenario)


def test_background_ticker_moves_the_clock_and_pushes_trades() -> None:
    m = market(symbols=["BTCUSDT"], speed=60, trades_per_second=20)

    async def scenario(fx: FakeExchange, s: aiohttp.ClientSession) -> None:
        async with s.ws_connect(combined_url(fx, ["BTCUSDT"])) as ws:
            data = events(await frames(ws, 100))
        ids = [d["a"] for d in data]
        assert ids == list(range(ids[0], ids[0] + 100))
        assert [trade_of(d) for d in data] == [
            t for t in m.history("BTCUSDT") if ids[0] <= t["a"] <= ids[-1]
        ]

    serve(m, scenario)


def test_subscribe_adds_a_stream_live() -> None:
    m = market(1)

    async def scenario(fx: FakeExchange, s: aiohttp.ClientSession) -> None:
        async with s.ws_connect(fx.ws_url + "/ws") as ws:  # raw: payloads without the wrapper
            await ws.send_json({"method": "SUBSCRIBE", "params": ["ethusdt@aggTrade"], "id": 1})
            assert json.loads((await frames(ws, 1))[0]) == {"result": None, "id": 1}
            await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": "a1"})
            assert json.loads((await frames(ws, 1))[0]) == {
                "result": ["ethusdt@aggTrade"],
                "id": "a1",
            }
            before = len(m.history("ETHUSDT"))
            fx.pump(T0 + 2 * MINUTE)
            fresh = m.history("ETHUSDT")[before:]
            got = [json.loads(f) for f in await frames(ws, len(fresh))]
            assert [trade_of(g) for g in got] == fresh and {g["s"] for g in got} == {"ETHUSDT"}
            await ws.send_json({"method": "UNSUBSCRIBE", "params": ["ethusdt@aggTrade"], "id": 2})
            assert json.loads((await frames(ws, 1))[0]) == {"result": None, "id": 2}
            await ws.send_json({"method": "FOO", "id": 3})
            reply = json.loads((await frames(ws, 1))[0])
            assert reply["id"] == 3 and reply["error"]["code"] == 2
            fx.pump(T0 + 3 * MINUTE)
            await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 4})
            assert json.loads((await frames(ws, 1))[0]) == {"result": [], "id": 4}  # no trades

    serve(m, scenario)


def test_raw_trade_stream_splits_aggtrades_into_their_raw_trades() -> None:
    m = market(1, symbols=["ETHUSDT"])

    async def scenario(fx: FakeExchange, s: aiohttp.ClientSession) -> None:
        async with s.ws_connect(fx.ws_url + "/ws/ethusdt@trade") as ws:
            await wait_for(lambda: len(fx.connections) == 1)
            before = len(m.history("ETHUSDT"))
            fx.pump(T0 + 2 * MINUTE)
            fresh = m.history("ETHUSDT")[before:]
            raw = [json.loads(f) for f in await frames(ws, sum(t["l"] - t["f"] + 1 for t in fresh))]
        assert [r["t"] for r in raw] == list(range(fresh[0]["f"], fresh[-1]["l"] + 1))
        for trade in fresh:
            parts = [r for r in raw if trade["f"] <= r["t"] <= trade["l"]]
            assert sum(kline_rs.parse_fixed8(r["q"]) for r in parts) == kline_rs.parse_fixed8(
                trade["q"]
            )
            assert {(r["p"], r["T"], r["m"]) for r in parts} == {
                (trade["p"], trade["T"], trade["m"])
            }

    serve(m, scenario)


def test_incoming_message_rate_and_stream_count_are_enforced() -> None:
    async def scenario(fx: FakeExchange, s: aiohttp.ClientSession) -> None:
        async with s.ws_connect(fx.ws_url + "/ws") as ws:
            many = [f"s{i}usdt@aggTrade" for i in range(1025)]
            await ws.send_json({"method": "SUBSCRIBE", "params": many, "id": 1})
            assert json.loads((await frames(ws, 1))[0])["error"]["code"] == 2
            for i in range(2, 8):  # 6 more within a second: over spot's 5 per second
                await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": i})
            replies = await until_closed(ws)
            assert len(replies) <= 4 and ws.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await s.ws_connect(fx.ws_url + "/stream?streams=" + "/".join(many))

    serve(market(), scenario)


# -- faults ----------------------------------------------------------------------------------


async def pumped(fx: FakeExchange, ws: aiohttp.ClientWebSocketResponse, minutes: int) -> int:
    """Pumps ``minutes`` of trades to one connected client; returns how many were offered."""
    await wait_for(lambda: len(fx.connections) == 1)
    return fx.pump(T0 + minutes * MINUTE)


def test_drop_rate_drops_about_that_share() -> None:
    m = market(1)

    async def scenario(fx: FakeExchange, s: aiohttp.ClientSession) -> None:
        async with s.ws_connect(combined_url(fx, SYMBOLS)) as ws:
            fx.faults.drop_rate = 0.2
            offered = await pumped(fx, ws, 4)
            dropped = fx.stats.frames_dropped
            got = events(await frames(ws, offered - dropped))
        assert offered > 2000 and 0.17 < dropped / offered < 0.23
        ids = [(d["s"], d["a"]) for d in got]
        assert len(set(ids)) == len(ids)  # nothing twice
        for symbol in SYMBOLS:
            mine = [a for s_, a in ids if s_ == symbol]
            assert mine == sorted(mine)  # what arrives is in order

    serve(m, scenario)


def test_duplicate_rate_duplicates() -> None:
    m = market(1)

    async def scenario(fx: FakeExchange, s: aiohttp.ClientSession) -> None:
        async with s.ws_connect(combined_url(fx, SYMBOLS)) as ws:
            fx.faults.duplicate_rate = 0.1
            offered = await pumped(fx, ws, 3)
            got = await frames(ws, offered + fx.stats.frames_duplicated)
        doubles = sum(1 for a, b in itertools.pairwise(got) if a == b)
        assert doubles == fx.stats.frames_duplicated and 0.07 < doubles / offered < 0.13
        assert len(set(got)) == offered

    serve(m, scenario)


def test_reorder_window_shuffles_within_windows() -> None:
    m = market(1, symbols=["BTCUSDT"])

    async def scenario(fx: FakeExchange, s: aiohttp.ClientSession) -> None:
        async with s.ws_connect(combined_url(fx, ["BTCUSDT"])) as ws:
            fx.faults.reorder_window = 8
            offered = await pumped(fx, ws, 3)
            got = [d["a"] for d in events(await frames(ws, offered))]  # the tail waits ≤ 0.2 s
        assert sorted(got) != got and sorted(got) == list(range(min(got), min(got) + offered))
        assert all(abs(a - (min(got) + i)) < 8 for i, a in enumerate(got))

    serve(m, scenario)


def test_delay_holds_every_frame_back() -> None:
    m = market(1)

    async def scenario(fx: FakeExchange, s: aiohttp.ClientSession) -> None:
        async with s.ws_connect(combined_url(fx, SYMBOLS)) as ws:
            fx.faults.delay_ms = 300
            await wait_for(lambda: len(fx.connections) == 1)
            start = time.monotonic()
            offered = fx.pump(T0 + 2 * MINUTE)
            await frames(ws, 1)
            assert time.monotonic() - start >= 0.29
            assert len(await frames(ws, offered - 1)) == offered - 1

    serve(m, scenario)


def test_disconnects_close_connections() -> None:
    m = market(1)

    async def scenario(fx: FakeExchange, s: aiohttp.ClientSession) -> None:
        async with (
            s.ws_connect(combined_url(fx, SYMBOLS)) as a,
            s.ws_connect(fx.ws_url + "/ws") as b,
        ):
            await wait_for(lambda: len(fx.connections) == 2)
            assert await fx.disconnect_all() == 2
            assert await until_closed(a) == [] and await until_closed(b) == []
            assert a.close_code == b.close_code == aiohttp.WSCloseCode.GOING_AWAY
        async with s.ws_connect(combined_url(fx, SYMBOLS)) as ws:
            await wait_for(lambda: len(fx.connections) == 1)
            await fx.disconnect_all(abrupt=True)  # TCP dropped, no close frame
            assert await until_closed(ws) == []
        fx.faults.disconnect_every = 50
        async with s.ws_connect(combined_url(fx, SYMBOLS)) as ws:
            assert await pumped(fx, ws, 3) > 50
            assert len(await until_closed(ws)) == 50
        assert fx.stats.server_closes == 4

    serve(m, scenario)


def test_server_shutdown_event_arrives_before_the_close() -> None:
    async def scenario(fx: FakeExchange, s: aiohttp.ClientSession) -> None:
        async with (
            s.ws_connect(combined_url(fx, SYMBOLS)) as ws,
            s.ws_connect(fx.ws_url + "/ws") as raw,
        ):
            await wait_for(lambda: len(fx.connections) == 2)
            assert await fx.server_shutdown(grace_ms=50) == 2
            (text,) = await until_closed(ws)
            event = json.loads(text)
            assert event["stream"] == "!serverShutdown" and event["data"]["e"] == "serverShutdown"
            assert isinstance(event["data"]["E"], int)
            assert [json.loads(t)["e"] for t in await until_closed(raw)] == ["serverShutdown"]

    serve(market(), scenario)


def test_connections_are_closed_after_their_lifetime_in_market_time() -> None:
    async def scenario(fx: FakeExchange, s: aiohttp.ClientSession) -> None:
        async with s.ws_connect(combined_url(fx, SYMBOLS)) as ws:
            await wait_for(lambda: len(fx.connections) == 1)
            offered = sum(fx.pump(T0 + k * MINUTE) for k in range(1, 5))
            assert len(await frames(ws, offered)) == offered  # 4 of its 5 minutes: still open
            offered = fx.pump(T0 + 5 * MINUTE)  # its lifetime is over: what was due, then close
            assert len(await until_closed(ws)) == offered
            assert ws.close_code == aiohttp.WSCloseCode.OK

    serve(market(), scenario, connection_lifetime_ms=5 * MINUTE)


# -- recorded captures -----------------------------------------------------------------------

CAPTURES = {
    "BINANCE.ws.1.0": "spot",
    "BINANCE_US.ws.1.0": "spot",
    "BINANCE_FUTURES.ws.1.0": "usdm",
    "BINANCE_DELIVERY.ws.1.0": "coinm",
}


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_recorded_captures_come_out_frame_for_frame(binance_data: Path, name: str) -> None:
    path = binance_data / "cryptofeed" / name
    if not path.exists():
        pytest.skip(f"capture {path} not found")
    lines = path.read_text().splitlines()
    recorded = [
        line.partition(": ")[2]
        for line in lines[1:]
        if line and json.loads(line.partition(": ")[2])["stream"].endswith("@aggTrade")
    ]
    capture = read_capture(path)
    m = RecordedMarket(path, speed=0)

    async def scenario(fx: FakeExchange, s: aiohttp.ClientSession) -> None:
        url = capture.url.split("://", 1)[1]
        async with s.ws_connect(fx.ws_url + url[url.index("/") :]) as ws:
            await wait_for(lambda: len(fx.connections) == 1)
            assert fx.pump(m.end_ms) == len(recorded)
            assert await frames(ws, len(recorded)) == recorded
        symbol = json.loads(recorded[-1])["data"]["s"]
        status, _, trades = await get(s, fx.rest_url + fx.venue.rest_prefix + "/aggTrades",
                                      symbol=symbol, fromId=0)  # fmt: skip
        data = [json.loads(r)["data"] for r in recorded]
        assert status == 200
        assert trades == m.history(symbol) == [trade_of(d) for d in data if d["s"] == symbol]

    serve(m, scenario, venue=CAPTURES[name])
