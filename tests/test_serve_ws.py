"""Binance's kline streams served from a running engine (kline_rs.serve.ws): a real aiohttp
server on loopback, real websocket clients, klines checked against the independent oracle."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import kline_rs
import numpy as np
import oracle
import pytest
from engine_server import engine_server
from hypothesis import given, settings
from hypothesis import strategies as st
from kline_rs.serve.app import HUB
from kline_rs.serve.live import LiveSource
from kline_rs.serve.requests import METHODS, Subscriptions
from kline_rs.serve.ws import MAX_STREAMS, StreamHub, StreamNameError, parse_stream

E8 = 10**8
MINUTE = 60_000
T0 = 1_700_000_040_000 - 1_700_000_040_000 % MINUTE
SYMBOLS = ("BTCUSDT", "ETHUSDT")


@dataclass
class Served:
    engine: kline_rs.Engine
    clock: kline_rs.ManualClock
    source: LiveSource
    hub: StreamHub
    url: str
    trades: dict[str, list[dict[str, Any]]]
    next_id: dict[str, int]

    def push(self, symbol: str, times: list[int], base: int = 100) -> None:
        """Trades at ``times`` (ms), the next ids, pushed."""
        ids = list(range(self.next_id[symbol], self.next_id[symbol] + len(times)))
        self.next_id[symbol] += len(times)
        self.engine.push_trades(symbol, self.batch(symbol, ids, times, base))

    def batch(
        self, symbol: str, id_list: list[int], times: list[int], base: int = 100
    ) -> np.ndarray[Any, Any]:
        """Trades ``id_list`` at ``times`` (ms), prices moving with their id; recorded for the
        oracle."""
        ids = np.array(id_list, dtype=np.int64)
        price = (base * E8 + ids * 1_000_000).astype(np.int64)
        qty = (ids % 7 + 1) * 10_000_000
        t = np.array(times, dtype=np.int64)
        maker = ids % 3 == 0
        for i in range(len(ids)):
            self.trades[symbol].append({
                "a": int(ids[i]), "p": kline_rs.format_fixed8(int(price[i])),
                "q": kline_rs.format_fixed8(int(qty[i])), "f": int(ids[i]), "l": int(ids[i]),
                "T": int(t[i]), "m": bool(maker[i]),
            })  # fmt: skip
        return kline_rs.trades(agg_id=ids, price=price, qty=qty, first_id=ids, last_id=ids,
                               time=t, buyer_is_maker=maker)  # fmt: skip

    def truth(self, symbol: str) -> dict[int, dict[str, int]]:
        return oracle.by_open_time(self.trades[symbol], "1m")


@contextlib.asynccontextmanager
async def served(**hub_settings: Any) -> AsyncIterator[Served]:
    """The whole server over an engine's LiveSource; its stream hub's bounds from
    ``hub_settings``."""
    clock = kline_rs.ManualClock(T0)
    engine = kline_rs.Engine(["1m", "5m"], partitions=1, clock=clock, grace=0)
    engine.add_symbols(list(SYMBOLS))
    async with engine_server(engine, **hub_settings) as (server, source):
        url = server.url.replace("http:", "ws:")
        yield Served(engine, clock, source, server.app[HUB], url,
                     {s: [] for s in SYMBOLS}, dict.fromkeys(SYMBOLS, 1))  # fmt: skip


async def next_event(ws: aiohttp.ClientWebSocketResponse, timeout: float = 10.0) -> Any:
    msg = await ws.receive(timeout=timeout)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data)


async def ask(ws: aiohttp.ClientWebSocketResponse, request: dict[str, Any]) -> None:
    """Sends a live request, paced under the 5 messages a second a connection may send."""
    await asyncio.sleep(0.21)
    await ws.send_json(request)


def fields(k: dict[str, Any]) -> dict[str, int]:
    """A websocket kline's ``k`` as the oracle's printed ints."""
    d = lambda v: int(kline_rs.parse_fixed8(v))  # noqa: E731
    return {
        "open_time": k["t"], "close_time": k["T"], "open": d(k["o"]), "high": d(k["h"]),
        "low": d(k["l"]), "close": d(k["c"]), "volume": d(k["v"]), "quote_volume": d(k["q"]),
        "trades": k["n"], "taker_buy_volume": d(k["V"]), "taker_buy_quote_volume": d(k["Q"]),
        "first_trade_id": k["f"], "last_trade_id": k["L"],
    }  # fmt: skip


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_stream_names_are_parsed_by_the_cores_rules() -> None:
    s = parse_stream("btcusdt@kline_7m")
    assert (s.symbol, s.interval, s.tz) == ("BTCUSDT", "7m", None)
    assert parse_stream("ethusdt@kline_1d@+08:00").tz == "+08:00"
    for bad, why in [("BTCUSDT@kline_1m", "lower case"), ("btcusdt@kline_1x", "interval"),
                     ("btcusdt@trade", "expected"), ("b" * 70, "longer than")]:  # fmt: skip
        with pytest.raises(StreamNameError, match=why):
            parse_stream(bad)


def test_a_raw_stream_sends_the_open_kline_then_closes_it_exactly() -> None:
    async def scenario() -> None:
        async with served() as s, aiohttp.ClientSession() as http:
            s.push("BTCUSDT", [T0 + 1_000, T0 + 2_000, T0 + 30_000])
            s.engine.sync()
            async with http.ws_connect(f"{s.url}/ws/btcusdt@kline_1m") as ws:
                event = await next_event(ws)
                assert (event["e"], event["s"], event["k"]["i"], event["k"]["x"]) == (
                    "kline", "BTCUSDT", "1m", False)  # fmt: skip
                assert fields(event["k"]) == s.truth("BTCUSDT")[T0]
                s.push("BTCUSDT", [T0 + 40_000])
                s.engine.sync()
                event = await next_event(ws)  # the open kline moved: sent again
                assert not event["k"]["x"] and event["k"]["n"] == 4
                s.push("BTCUSDT", [T0 + MINUTE + 5_000])
                s.clock.set(T0 + MINUTE + 10_000)
                s.engine.sync()
                got = [await next_event(ws), await next_event(ws)]
                # As on Binance: the closed event first, then the next kline's.
                assert [e["k"]["x"] for e in got] == [True, False]
                closed, opened = [got[0]], [got[1]]
                assert fields(closed[0]["k"]) == s.truth("BTCUSDT")[T0]
                assert fields(opened[0]["k"]) == s.truth("BTCUSDT")[T0 + MINUTE]
                assert s.hub.stats["frames_sent"] >= 4

    run(scenario())


def test_combined_streams_and_live_requests() -> None:
    async def scenario() -> None:
        async with served() as s, aiohttp.ClientSession() as http:
            s.push("BTCUSDT", [T0 + 1_000])
            s.push("ETHUSDT", [T0 + 2_000], base=2000)
            s.engine.sync()
            url = f"{s.url}/stream?streams=btcusdt@kline_1m"
            async with http.ws_connect(url) as ws:
                first = await next_event(ws)
                assert first["stream"] == "btcusdt@kline_1m" and first["data"]["s"] == "BTCUSDT"
                await ask(ws, {"method": "SUBSCRIBE", "params": ["ethusdt@kline_5m"], "id": 1})
                replies = [await next_event(ws), await next_event(ws)]
                assert {"result": None, "id": 1} in replies
                (eth,) = [r for r in replies if "stream" in r]
                assert eth["stream"] == "ethusdt@kline_5m" and eth["data"]["k"]["i"] == "5m"
                await ask(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 2})
                assert await next_event(ws) == {
                    "result": ["btcusdt@kline_1m", "ethusdt@kline_5m"], "id": 2}  # fmt: skip
                await ask(ws, {"method": "UNSUBSCRIBE", "params": ["btcusdt@kline_1m"],
                                    "id": 3})  # fmt: skip
                assert await next_event(ws) == {"result": None, "id": 3}
                await ask(ws, {"method": "SUBSCRIBE", "params": ["BTCUSDT@kline_1m"],
                                    "id": 4})  # fmt: skip
                bad = await next_event(ws)
                assert bad["id"] == 4 and bad["error"]["code"] == 2
                assert "lower case" in bad["error"]["msg"]
                await ask(ws, {"method": "SUBSCRIBE", "params": ["xrpusdt@kline_1m"],
                                    "id": 6})  # fmt: skip
                unknown = await next_event(ws)
                assert unknown["error"]["msg"] == (
                    "Invalid request: XRPUSDT is not served (xrpusdt@kline_1m)")  # fmt: skip
                await ask(ws, {"method": "SET_PROPERTY", "params": ["combined", False],
                                    "id": 5})  # fmt: skip
                assert await next_event(ws) == {"result": None, "id": 5}
                s.push("ETHUSDT", [T0 + 3_000], base=2000)
                s.engine.sync()
                raw = await next_event(ws)
                assert raw["e"] == "kline" and raw["k"]["n"] == 2  # no longer wrapped
            assert set(s.hub.streams) == set()  # the closed connection left nothing behind

    run(scenario())


def test_any_ws_path_connects_as_on_binance_and_bad_combined_names_are_refused() -> None:
    async def scenario() -> None:
        async with served() as s, aiohttp.ClientSession() as http:
            async with http.ws_connect(f"{s.url}/ws/0") as ws:  # what ccxt connects to
                await ask(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 7})
                assert await next_event(ws) == {"result": [], "id": 7}
            async with http.get(f"{s.url.replace('ws:', 'http:')}/stream?streams=x@y") as r:
                assert r.status == 400 and "invalid stream" in (await r.json())["msg"]

    run(scenario())


def test_bounds_too_many_streams_and_connections() -> None:
    async def scenario() -> None:
        async with (
            served(max_connections_per_client=2) as s,
            aiohttp.ClientSession() as http,
            http.ws_connect(f"{s.url}/ws") as ws,
        ):
            names = [f"btcusdt@kline_{i}s" for i in range(1, MAX_STREAMS + 2)]
            await ask(ws, {"method": "SUBSCRIBE", "params": names, "id": 1})
            reply = await next_event(ws)
            assert reply["error"]["code"] == 2 and "too many streams" in reply["error"]["msg"]
            async with http.ws_connect(f"{s.url}/ws"):
                with pytest.raises(aiohttp.WSServerHandshakeError) as e:
                    await http.ws_connect(f"{s.url}/ws")
                assert e.value.status == 429

    run(scenario())


def test_a_repaired_kline_is_sent_again_closed_with_the_same_open_time() -> None:
    async def scenario() -> None:
        async with (
            served() as s,
            aiohttp.ClientSession() as http,
            http.ws_connect(f"{s.url}/ws/btcusdt@kline_1m") as ws,
        ):
            s.engine.push_trades(
                "BTCUSDT", s.batch("BTCUSDT", [1, 2, 3], [T0 + 1_000, T0 + 2_000, T0 + 3_000])
            )
            s.engine.sync()
            assert (await next_event(ws))["k"]["n"] == 3
            # The feed drops; trade 6 comes live (held), 4 and 5 only from the backfill.
            s.engine.feed_down("BTCUSDT", T0 + 20_000)
            s.engine.push_trades("BTCUSDT", s.batch("BTCUSDT", [6], [T0 + 50_000]))
            s.clock.set(T0 + MINUTE + 1_000)
            s.engine.sync()
            gap = await next_event(ws)
            assert gap["k"]["x"] and (gap["k"]["t"], gap["k"]["n"]) == (T0, 3)
            s.engine.backfill("BTCUSDT", s.batch("BTCUSDT", [4, 5], [T0 + 25_000, T0 + 35_000]))
            s.engine.feed_up("BTCUSDT")
            s.engine.sync()
            again = await next_event(ws)
            assert again["k"]["x"] and again["k"]["t"] == T0
            assert fields(again["k"]) == s.truth("BTCUSDT")[T0]
            assert again["k"]["n"] == 6

    run(scenario())


def test_a_consumer_that_stops_reading_is_dropped_not_buffered() -> None:
    async def scenario() -> None:
        async with served(max_outbox=50, pace_s=0.005) as s:
            host, port = s.url.removeprefix("ws://").split(":")
            # A client that handshakes, then never reads, with a small receive buffer.
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            loop = asyncio.get_running_loop()
            await loop.sock_connect(sock, (host, int(port)))
            streams = "/".join(f"{x.lower()}@kline_{i}" for x in SYMBOLS for i in ("1m", "5m"))
            request = (f"GET /stream?streams={streams} HTTP/1.1\r\nHost: {host}\r\n"
                       "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Version: 13\r\n\r\n")  # fmt: skip
            await loop.sock_sendall(sock, request.encode())
            assert (await loop.sock_recv(sock, 12)).startswith(b"HTTP/1.1 101")
            try:
                for n in range(4_000):  # a trade every few ms: every stream changes each poll
                    t = T0 + 1_000 + n
                    s.push("BTCUSDT", [t])
                    s.push("ETHUSDT", [t], base=2000)
                    await asyncio.sleep(0.002)
                    if s.hub.stats["slow_consumers_dropped"]:
                        break
                assert s.hub.stats["slow_consumers_dropped"] == 1, s.hub.stats
                await asyncio.sleep(0.2)
                assert not s.hub.clients and not s.hub.streams
            finally:
                sock.close()

    run(scenario())


def test_more_than_five_messages_a_second_close_the_connection_as_on_binance() -> None:
    async def scenario() -> None:
        async with (
            served() as s,
            aiohttp.ClientSession() as http,
            http.ws_connect(f"{s.url}/ws") as ws,
        ):
            for i in range(6):
                await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": i})
            replies = []
            while (msg := await ws.receive(timeout=10)).type == aiohttp.WSMsgType.TEXT:
                replies.append(json.loads(msg.data))
            assert len(replies) == 5
            assert (msg.type, msg.data, msg.extra) == (
                aiohttp.WSMsgType.CLOSE, 1008, "Too many messages")  # fmt: skip

    run(scenario())


# -- fuzz ---------------------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
REQUEST = st.fixed_dictionaries(
    {"method": st.sampled_from([*METHODS, "PING", "", 7]), "id": JSON},
    optional={"params": st.lists(st.text(max_size=40) | JSON, max_size=6) | JSON},
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=200) | REQUEST.map(json.dumps) | JSON.map(json.dumps), max_size=8))
def test_any_websocket_message_gets_binances_reply_shape_and_bounded_state(
    messages: list[str],
) -> None:
    """Whatever a client sends: a reply with its ``id`` and a ``result`` or an ``error`` with an
    integer code (a property answer: ``code`` and ``msg``), never an exception; only valid,
    served stream names are ever subscribed, never more than the bound."""
    served = {"BTCUSDT"}

    def check(name: str) -> str | None:
        try:
            stream = parse_stream(name)
        except StreamNameError as e:
            return str(e)
        return None if stream.symbol in served else "not served"

    subs = Subscriptions([], combined=False, max_streams=3, check=check)
    for text in messages:
        reply, added, removed = subs.answer(text)
        assert "id" in reply
        assert ("result" in reply) != ("error" in reply) or "code" in reply
        if "error" in reply:
            assert isinstance(reply["error"]["code"], int) and reply["error"]["msg"]
            assert not added and not removed
        assert len(subs.streams) <= 3
        assert all(parse_stream(s).symbol in served for s in subs.streams)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_stream_name_parses_or_says_why(name: str) -> None:
    try:
        s = parse_stream(name)
    except StreamNameError as e:
        assert str(e)
        return
    assert s.name == name and s.symbol == s.symbol.upper() and s.interval


def test_connections_end_at_their_age_limit_and_without_pongs() -> None:
    """Binance's 24 h cut-off (here 0.5 s) and its pings: a client that answers none is
    closed."""

    async def scenario() -> None:
        async with served(max_age_s=0.5, ping_s=0.3) as s, aiohttp.ClientSession() as http:
            async with http.ws_connect(f"{s.url}/ws/btcusdt@kline_1m") as ws:  # answers pings
                msg = await ws.receive(timeout=10)
                assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 1001), msg
                assert "24 h" in msg.extra
            assert s.hub.stats["aged_out"] == 1
            s.hub.max_age_s = 60.0
            mute = await http.ws_connect(f"{s.url}/ws", autoping=False, heartbeat=None)
            try:
                pings = 0
                while (msg := await mute.receive(timeout=10)).type == aiohttp.WSMsgType.PING:
                    pings += 1
                assert pings >= 1 and msg.type in (
                    aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING
                ), msg  # fmt: skip
            finally:
                await mute.close()
            assert not s.hub.clients

    run(scenario())
