"""The chart page (kline_rs.serve.chart) in a real headless Chromium against a real server: an
engine's klines served over REST and the websocket streams, the page loaded, what it drew
(``window.klineChart`` and plotly's own traces) compared with what the server serves, a gap
kline marked, its repair and a live trade followed. Screenshots go to test-artifacts/."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import devtools
import kline_rs
import numpy as np
import pytest
from devtools import Browser, ChromiumUnavailable, chromium_path
from engine_server import engine_server
from kline_rs.serve import ServeOptions, chart
from kline_rs.serve.chart import INSTALL_HINT, plotly_js
from kline_rs.serve.live import LiveSource

E8 = 10**8
MINUTE = 60_000
T0 = 1_700_000_040_000 - 1_700_000_040_000 % MINUTE
SYMBOL = "BTCUSDT"
TRADED_MINUTES = 12
GAP_MINUTE = T0 + TRADED_MINUTES * MINUTE


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium, installed with apt-get first where it is missing and we are root."""
    try:
        return chromium_path()
    except ChromiumUnavailable as e:
        pytest.skip(f"headless Chromium unavailable: {e}")


@pytest.fixture
def plotly() -> Path:
    path = plotly_js()
    if path is None:
        pytest.skip(INSTALL_HINT)
    return path


@dataclass
class Served:
    engine: kline_rs.Engine
    clock: kline_rs.ManualClock
    source: LiveSource
    url: str
    next_id: int = 1

    def push(self, times: list[int]) -> None:
        """Trades at ``times`` (ms), the next ids, priced by :meth:`price_of`."""
        ids = np.arange(self.next_id, self.next_id + len(times), dtype=np.int64)
        self.next_id += len(times)
        price = np.array([self.price(int(i)) for i in ids], dtype=np.int64)
        self.engine.push_trades(SYMBOL, kline_rs.trades(
            agg_id=ids, price=price, qty=(ids % 7 + 1) * 10_000_000, first_id=ids, last_id=ids,
            time=np.array(times, dtype=np.int64), buyer_is_maker=ids % 3 == 0))  # fmt: skip

    @staticmethod
    def price(trade_id: int) -> int:
        """A wave on a slow rise (1e-8 units), so that candles differ."""
        return 100 * E8 + int(math.sin(trade_id / 5.0) * 1.2 * E8) + trade_id * 2_000_000

    def price_of(self, trade_id: int) -> str:
        return str(kline_rs.format_fixed8(self.price(trade_id)))


@contextlib.asynccontextmanager
async def served() -> AsyncIterator[Served]:
    """An engine, its LiveSource and StreamHub, the chart routes, on a loopback port."""
    clock = kline_rs.ManualClock(T0)
    engine = kline_rs.Engine(["1m"], partitions=1, clock=clock, grace=0)
    engine.add_symbols([SYMBOL])
    async with engine_server(engine, ServeOptions(stream_pace_s=0.1)) as (server, source):
        yield Served(engine, clock, source, server.url)


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := await check()):
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)
    return value


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_without_chromium_and_root_the_reason_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(devtools.shutil, "which", lambda name: None)
    monkeypatch.setattr(devtools.os, "geteuid", lambda: 1000)
    with pytest.raises(ChromiumUnavailable, match="install Debian's chromium fonts-dejavu-core"):
        chromium_path()
    with pytest.raises(ChromiumUnavailable, match="apt-get install chromium"):
        chromium_path(install=False)


def test_the_page_and_plotly_are_served_from_the_installed_package(plotly: Path) -> None:
    async def scenario() -> None:
        async with served() as s, aiohttp.ClientSession() as http:
            async with http.get(f"{s.url}/") as r:
                page = await r.text()
                assert r.status == 200 and r.content_type == "text/html"
                assert "connect-src 'self'" in r.headers["Content-Security-Policy"]
            assert '<script src="/static/plotly.min.js"' in page
            assert '<script src="/chart/chart.js"' in page
            async with http.get(f"{s.url}/chart/chart.js") as r:
                assert r.status == 200 and "javascript" in r.content_type
                assert "window.klineChart" in await r.text()
            async with http.get(f"{s.url}/static/plotly.min.js") as r:
                assert r.status == 200 and await r.read() == plotly.read_bytes()

    run(scenario())


def test_without_plotly_the_page_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chart, "plotly_js", lambda: None)

    async def scenario() -> None:
        async with served() as s, aiohttp.ClientSession() as http:
            for path in ("/", "/static/plotly.min.js"):
                async with http.get(s.url + path) as r:
                    assert r.status == 503
                    assert "pip install 'kline_rs[serve]'" in await r.text()

    run(scenario())


def test_the_chart_draws_the_served_klines_marks_the_gap_and_follows_the_stream(
    chromium: str, plotly: Path, tmp_path: Path, save_artifact: Callable[[str, bytes], Path]
) -> None:
    async def scenario() -> None:
        async with (
            served() as s,
            aiohttp.ClientSession() as http,
            Browser.launch(chromium, tmp_path / "chromium") as page,
        ):

            async def served_rows() -> list[dict[str, Any]]:
                url = f"{s.url}/krs/v1/klines?symbol={SYMBOL}&interval=1m&limit=500"
                async with http.get(url) as r:
                    rows: list[dict[str, Any]] = await r.json()
                    return rows

            # Traded minutes; the next one closes while the feed is down: a gap kline.
            for m in range(TRADED_MINUTES):
                s.push([T0 + m * MINUTE + sec * 1_000 for sec in range(2, 60, 7)])
            s.push([GAP_MINUTE + 5_000, GAP_MINUTE + 20_000])
            s.clock.set(GAP_MINUTE + 25_000)
            s.engine.sync()
            s.engine.feed_down(SYMBOL, GAP_MINUTE + 30_000)
            s.clock.set(GAP_MINUTE + MINUTE + 1_000)
            s.engine.sync()

            async def gap_served() -> list[dict[str, Any]]:
                rows = await served_rows()
                return rows if any(r["gap"] for r in rows) else []

            rows = await eventually(gap_served)
            assert [r["open_time"] for r in rows if r["gap"]] == [GAP_MINUTE]

            await page.navigate(f"{s.url}/?symbol={SYMBOL}&interval=1m")
            drawn = await page.wait_for(
                "window.klineChart && window.klineChart.ready && window.klineChart.live"
                " && window.klineChart"
            )
            assert drawn["symbol"] == SYMBOL and drawn["interval"] == "1m" and not drawn["error"]
            assert drawn["candles"] == len(rows) == TRADED_MINUTES + 1
            assert drawn["lastOpenTime"] == rows[-1]["open_time"]
            assert drawn["lastCloseText"] == rows[-1]["close"]
            assert drawn["lastClose"] == float(rows[-1]["close"])
            assert drawn["gaps"] == 1 and drawn["gapOpenTimes"] == [GAP_MINUTE]
            # What plotly holds: normal candles, the gap candle and its marker, volume bars.
            traces = await page.evaluate(
                "document.getElementById('chart').data.map(t => [t.name, t.x.length])"
            )
            assert traces == [[f"{SYMBOL} 1m", len(rows) - 1], ["gap (feed was down)", 1],
                              ["gap", 1], ["volume", len(rows)]]  # fmt: skip
            legend = await page.evaluate(
                "[...document.querySelectorAll('.legendtext')].map(e => e.textContent)"
            )
            assert "gap (feed was down)" in legend
            # The row shapes the page takes: our objects (any of Binance's key spellings),
            # Binance's arrays; a row without numbers is refused.
            mapped = await page.evaluate("""[
                [1, "1.5", "2", "1", "1.8", "10", 2, "0", 3, "0", "0", "0"],
                {open_time: 1, open: "1.5", high: "2", low: "1", close: "1.8", volume: "10",
                 gap: true, revision: 2, closed: true},
                {t: 1, o: "1.5", h: "2", l: "1", c: "1.8", v: "10", x: false},
                {openTime: 1, open: "x"},
            ].map(klineRowToCandle)""")
            ohlcv = {"t": 1, "o": "1.5", "h": "2", "l": "1", "c": "1.8", "v": "10"}
            assert mapped == [
                {**ohlcv, "gap": False, "revision": 0, "closed": False},
                {**ohlcv, "gap": True, "revision": 2, "closed": True},
                {**ohlcv, "gap": False, "revision": 0, "closed": False},
                None,
            ]
            shot = save_artifact("chart-gap.png", await page.screenshot())
            print(f"screenshot: {shot}")
            assert shot.read_bytes().startswith(b"\x89PNG")

            # The feed comes back: the gap kline is sent again (revised, no longer gap) and the
            # page replaces it.
            updates = drawn["updates"]
            s.engine.feed_up(SYMBOL)
            s.engine.sync()
            repaired = await page.wait_for(
                "window.klineChart.gaps === 0 && window.klineChart.revisions > 0"
                " && window.klineChart"
            )
            assert repaired["updates"] > updates
            assert not any(r["gap"] for r in await served_rows())

            # A live trade: the last candle follows it.
            trade_id = s.next_id
            s.push([GAP_MINUTE + MINUTE + 5_000])
            s.engine.sync()
            price = s.price_of(trade_id)
            live = await page.wait_for(
                f"window.klineChart.lastCloseText === {price!r} && window.klineChart"
            )
            assert live["updates"] > repaired["updates"]
            rows = await served_rows()
            assert live["candles"] == len(rows) and rows[-1]["close"] == price
            assert live["lastOpenTime"] == rows[-1]["open_time"] == GAP_MINUTE + MINUTE
            save_artifact("chart-live.png", await page.screenshot())
            assert page.errors == []

    run(scenario())
