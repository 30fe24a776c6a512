"""``kline-rs run … --serve``: the real CLI following the fake exchange, its klines read by
real, unmodified clients over Binance's REST and websocket API (ccxt and ccxt.pro,
python-binance's AsyncClient and kline socket, Binance's binance-sdk-spot streams), each
checked against the independent oracle of the exchange's own tape."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import warnings
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import oracle
import pytest
from kline_rs.fake import FakeExchange, SimulatedMarket

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
MINUTE = 60_000
#: Real seconds the run may take to start serving.
START_S = 30.0


@contextlib.asynccontextmanager
async def run_serving(tmp_path: Path) -> AsyncIterator[tuple[SimulatedMarket, str]]:
    """The fake exchange (market time 10x real time) and ``kline-rs run --serve`` following
    it with a store; yields the market and the server's URL."""
    market = SimulatedMarket(SYMBOLS, speed=10.0, trades_per_second=20.0)
    async with FakeExchange(market) as fx:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "kline_rs.cli", "run", "--symbols", ",".join(SYMBOLS),
            "--intervals", "1m", "--ws-url", fx.ws_url, "--rest-url", fx.rest_url,
            "--db", str(tmp_path / "klines.sqlite"), "--serve", "127.0.0.1:0",
            "--duration", "120",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert proc.stderr is not None
        try:
            url = await asyncio.wait_for(serving_url(proc.stderr), START_S)
            yield market, url
        finally:
            if proc.returncode is None:
                proc.terminate()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(proc.wait(), 10)
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def serving_url(stderr: asyncio.StreamReader) -> str:
    seen = []
    while line := (await stderr.readline()).decode():
        seen.append(line)
        if m := re.search(r"kline-rs: serving (http://\S+)", line):
            return m[1]
    raise AssertionError("the run ended before serving:\n" + "".join(seen[-20:]))


def truth(market: SimulatedMarket, symbol: str) -> dict[int, dict[str, int]]:
    return oracle.by_open_time(market.history(symbol), "1m")


def as_floats(k: dict[str, int]) -> list[float]:
    """An oracle kline as ccxt's OHLCV row (floats of the exact decimals)."""
    e8 = Decimal(10**8)
    return [k["open_time"], *(float(Decimal(k[f]) / e8) for f in
                              ("open", "high", "low", "close", "volume"))]  # fmt: skip


def closed_in(market: SimulatedMarket, symbol: str) -> dict[int, dict[str, int]]:
    """The oracle's klines of ``symbol`` whose minute is over in market time."""
    now = market.now_ms
    return {t: k for t, k in truth(market, symbol).items() if t + MINUTE <= now}


async def with_ccxt(market: SimulatedMarket, url: str) -> None:
    """ccxt.pro's own binance class: watch_ohlcv over the websocket, fetch_ohlcv over REST."""
    import ccxt.pro as ccxt_pro

    ws = url.replace("http:", "ws:")
    exchange = ccxt_pro.binance({
        "urls": {"api": {"public": f"{url}/api/v3", "ws": {"spot": f"{ws}/ws"}}},
        "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False},
    })  # fmt: skip
    try:
        seen: dict[int, list[float]] = {}
        for _ in range(400):  # until three minutes have closed while watching
            for row in await exchange.watch_ohlcv("BTC/USDT", "1m"):
                seen[int(row[0])] = row
            if len(seen) >= 4:
                break
        opens = sorted(seen)
        assert len(opens) >= 4, seen
        want = truth(market, "BTCUSDT")  # those minutes are over: a later one was seen
        # The watched minutes that closed are the tape's exactly (the first one: the
        # run joined the exchange during it, so it may have been partial then).
        for t in opens[1:-1]:
            assert seen[t] == as_floats(want[t]), t
        # fetch_ohlcv: REST, the same klines (the open one last, as Binance does).
        rows = await exchange.fetch_ohlcv("BTC/USDT", "1m", limit=1000)
        over = closed_in(market, "BTCUSDT")
        done = [r for r in rows[1:] if r[0] in over]  # the first: joined during it
        assert done == [as_floats(over[r[0]]) for r in done] and len(done) >= 2
    finally:
        await exchange.close()


def test_real_clients_read_and_watch_the_klines_of_a_live_run(tmp_path: Path) -> None:
    with warnings.catch_warnings():  # it imports a deprecated websockets name
        warnings.simplefilter("ignore", DeprecationWarning)
        binance = pytest.importorskip("binance")
    spot = pytest.importorskip("binance_sdk_spot.spot")
    from binance_common.configuration import ConfigurationWebSocketStreams

    async def python_binance(url: str) -> list[dict[str, Any]]:
        class Client(binance.AsyncClient):  # type: ignore[misc,name-defined]
            API_URL = f"{url}/api"

        class Sockets(binance.BinanceSocketManager):  # type: ignore[misc,name-defined]
            STREAM_URL = url.replace("http:", "ws:") + "/"

        client = await Client.create()
        closed: list[dict[str, Any]] = []
        try:
            async with Sockets(client).kline_socket("BTCUSDT", interval="1m") as socket:
                while len({k["t"] for k in closed}) < 3:
                    event = await asyncio.wait_for(socket.recv(), 30)
                    assert event["e"] == "kline" and event["s"] == "BTCUSDT"
                    if event["k"]["x"]:
                        closed.append(event["k"])
        finally:
            await client.close_connection()
        return closed

    async def sdk(url: str) -> list[dict[str, Any]]:
        config = ConfigurationWebSocketStreams(stream_url=url.replace("http:", "ws:"))
        client = spot.Spot(config_ws_streams=config)
        connection = await client.websocket_streams.create_connection()
        closed: list[dict[str, Any]] = []
        got = asyncio.Event()

        def on_message(data: Any) -> None:
            k = data.k if hasattr(data, "k") else data["k"]
            as_dict = k.to_dict() if hasattr(k, "to_dict") else k
            if as_dict["x"]:
                closed.append(as_dict)
                if len({k["t"] for k in closed}) >= 3:
                    got.set()

        try:
            stream = await connection.kline(symbol="ethusdt", interval="1m")
            stream.on("message", on_message)
            await asyncio.wait_for(got.wait(), 60)
        finally:
            await connection.close_connection(close_session=True)
        return closed

    def check(market: SimulatedMarket, symbol: str, events: list[dict[str, Any]]) -> None:
        """The latest closed event of each minute is the tape's (but the first minute's: the
        run joined the exchange during it)."""
        want = truth(market, symbol)
        latest = {k["t"]: k for k in events}
        assert len(latest) >= 3
        for k in [latest[t] for t in sorted(latest)[1:]]:
            exact = oracle.printed({
                "open_time": k["t"], "close_time": k["T"], "open": fixed(k["o"]),
                "high": fixed(k["h"]), "low": fixed(k["l"]), "close": fixed(k["c"]),
                "volume": fixed(k["v"]), "quote_volume": fixed(k["q"]) * 10**8,
                "trades": k["n"], "taker_buy_volume": fixed(k["V"]),
                "taker_buy_quote_volume": fixed(k["Q"]) * 10**8,
                "first_trade_id": k["f"], "last_trade_id": k["L"],
            })  # fmt: skip
            assert exact == want[k["t"]], k

    async def scenario() -> None:
        async with run_serving(tmp_path) as (market, url):
            theirs, sdks, _ = await asyncio.gather(
                python_binance(url), sdk(url), with_ccxt(market, url)
            )
            check(market, "BTCUSDT", theirs)
            check(market, "ETHUSDT", sdks)

    asyncio.run(scenario())


def fixed(text: str) -> int:
    return int(Decimal(text) * 10**8)
