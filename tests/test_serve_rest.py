"""``kline-rs serve``: a real SQLite store served on a loopback port, asked over HTTP by our own
requests and by real clients (ccxt, python-binance, Binance's binance-sdk-spot), unmodified.

The store holds Binance's own 1m klines of 2020-01-01..03 (data.binance.vision); the 5m and
1d klines it serves are rolled up on request and must equal Binance's own REST answers for
those days (gocryptotrader's recordings) field by field.
"""

from __future__ import annotations

import asyncio
import csv
import http.client
import io
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kline_rs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kline_rs.live.kline_history import records
from kline_rs.serve import BackgroundServer, RemoteBindError, ServeOptions, Server, StoreSource
from kline_rs.serve.errors import BinanceError
from kline_rs.serve.limits import Guard
from kline_rs.serve.rollup import MAX_ROLLUP_PARTS
from kline_rs.storage import SqliteSink, open_sink
from test_sqlite_sink import QUIET_HOUR, closed

#: The server fixtures, registered once (a session-wide server shared by all modules).
pytest_plugins = ["postgres_server"]

DAY = 86_400_000
MINUTE = 60_000
T0 = 1_577_836_800_000  # 2020-01-01 00:00 UTC, the store's first minute
END = T0 + 3 * DAY  # after its last
#: BTCUSDT's 3d anchor (its listing day, 2017-08-17), as the live pipeline stores it.
ANCHOR = 1_502_928_000_000

Row = list[Any]


def binance_minutes(data: Path) -> list[Row]:
    """Binance's 1m kline CSV rows as REST rows (times and trade count as ints)."""
    rows = []
    for day in (1, 2, 3):
        with zipfile.ZipFile(data / f"BTCUSDT-1m-2020-01-0{day}.zip") as z:
            text = z.read(z.namelist()[0]).decode()
        for r in csv.reader(io.StringIO(text)):
            rows.append([int(r[0]), *r[1:6], int(r[6]), r[7], int(r[8]), *r[9:]])
    return rows


async def store(
    path: Path | str, rows: list[Row], *, anchors: dict[str, int] | None = None
) -> None:
    """Rows into a store (an SQLite file or a PostgreSQL URL) through the package's sink."""
    sink = open_sink(str(path))
    await sink.open()
    try:
        await sink.write(records("BTCUSDT", "1m", rows, 0), None)
        if anchors:
            await sink.save_anchors(anchors)
    finally:
        await sink.close()


def get(
    url: str, path: str, query: str | dict[str, Any] = "", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    """GET ``url + path ? query``: (status, headers, JSON body)."""
    if isinstance(query, dict):
        query = urllib.parse.urlencode(query)
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname or "", u.port, timeout=30)
    try:
        conn.request("GET", f"{path}?{query}" if query else path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), json.loads(resp.read() or b"null")
    finally:
        conn.close()


def klines(url: str, prefix: str = "/api/v3", **query: Any) -> list[Row]:
    status, _, body = get(url, f"{prefix}/klines", {"symbol": "BTCUSDT", **query})
    assert status == 200, body
    return list(body)


def refused(url: str, query: str | dict[str, Any], prefix: str = "/api/v3") -> tuple[int, int]:
    status, _, body = get(url, f"{prefix}/klines", query)
    assert isinstance(body, dict) and set(body) == {"code", "msg"}, body
    return status, body["code"]


def rolled(rows: list[Row], interval: str, **options: Any) -> list[Row]:
    """Binance's rows rolled up by the core's CSV roll-up, as REST rows."""
    lines = [",".join(str(v) for v in r) for r in rows]
    out = []
    for line in kline_rs.rollup_csv(lines, interval, **options):
        f = line.split(",")
        out.append([int(f[0]), *f[1:6], int(f[6]), f[7], int(f[8]), *f[9:]])
    return out


@pytest.fixture(scope="module")
def minutes(binance_data: Path) -> list[Row]:
    return binance_minutes(binance_data)


@pytest.fixture(scope="module")
def served(
    minutes: list[Row], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BackgroundServer]:
    path = tmp_path_factory.mktemp("serve") / "binance.sqlite"
    asyncio.run(store(path, minutes, anchors={"BTCUSDT": ANCHOR}))
    options = ServeOptions(weight_per_minute=10**9)
    with BackgroundServer(path, options=options) as running:
        yield running


# -- Binance's own answers --------------------------------------------------------------------


def test_5m_and_1d_rolled_up_from_binances_minutes_are_binances_own_rest_klines(
    served: BackgroundServer, minutes: list[Row], binance_data: Path
) -> None:
    # The recorded request, as gocryptotrader sent it: 24 5m klines of 2020-01-01.
    want_5m = json.loads((binance_data / "btcusdt_klines_5m_rest.json").read_text())
    got_5m = klines(served.url, interval="5m", startTime=T0, endTime=1580515200000, limit=24)
    assert got_5m == want_5m  # every field, as text
    # 1d: Binance's 372 days overlap the store on 2020-01-01..03; the store serves no other.
    want_1d = json.loads((binance_data / "btcusdt_klines_1d_rest.json").read_text())
    got_1d = klines(served.url, interval="1d", startTime=1546041600000, endTime=1578096000000)
    assert got_1d == [r for r in want_1d if T0 <= r[0] < END]
    assert len(got_1d) == 3
    # The minutes themselves come back as stored: Binance's rows.
    assert klines(served.url, interval="1m", startTime=T0, limit=1000) == minutes[:1000]
    assert klines(served.url, interval="1m", limit=1000) == minutes[-1000:]


def test_a_postgresql_store_serves_the_same_klines(
    postgres_url: str, minutes: list[Row], binance_data: Path
) -> None:
    asyncio.run(store(postgres_url, minutes, anchors={"BTCUSDT": ANCHOR}))
    with BackgroundServer(postgres_url) as s:
        want_5m = json.loads((binance_data / "btcusdt_klines_5m_rest.json").read_text())
        assert klines(s.url, interval="5m", startTime=T0, limit=24) == want_5m
        assert klines(s.url, interval="3d", startTime=0) == rolled(
            minutes, "3d", anchor_3d_ms=ANCHOR
        )
        assert klines(s.url, interval="1m", limit=7) == minutes[-7:]
        _, _, info = get(s.url, "/api/v3/exchangeInfo")
        assert [(i["symbol"], i["baseAsset"], i["quoteAsset"]) for i in info["symbols"]] == [
            ("BTCUSDT", "BTC", "USDT")
        ]


@pytest.mark.parametrize(
    ("interval", "options"),
    [
        ("7m", {}),
        ("2h", {}),
        ("2d", {}),
        ("1w", {}),
        ("1M", {}),
        ("3d", {"anchor_3d_ms": ANCHOR}),
        ("1d", {"tz_offset": "+08:00"}),
        ("12h", {"tz_offset": "-05:30"}),
        ("1w", {"tz_offset": "+14:00"}),
    ],
)
def test_any_interval_and_time_zone_is_the_cores_roll_up_of_the_stored_minutes(
    served: BackgroundServer, minutes: list[Row], interval: str, options: dict[str, Any]
) -> None:
    query: dict[str, Any] = {"interval": interval, "startTime": 0, "limit": 1000}
    if "tz_offset" in options:
        query["timeZone"] = options["tz_offset"]
    got = klines(served.url, **query)
    assert got == rolled(minutes, interval, **options)
    assert got and all(r[0] <= T0 + 3 * DAY for r in got)


def test_an_interval_no_stored_one_rolls_up_into_is_refused_with_the_reason(
    served: BackgroundServer,
) -> None:
    status, _, body = get(served.url, "/api/v3/klines", "symbol=BTCUSDT&interval=10s")
    assert (status, body["code"]) == (400, -1120)
    assert "10s rolls up from none of the kept intervals (1m)" in body["msg"]


# -- Binance's window rules -------------------------------------------------------------------


def test_start_end_and_limit_select_as_binance_does(
    served: BackgroundServer, minutes: list[Row]
) -> None:
    url = served.url
    assert klines(url, interval="1m") == minutes[-500:]  # neither: the latest, default 500
    assert klines(url, interval="1m", limit=1000) == minutes[-1000:]
    end = T0 + DAY + 30 * MINUTE
    assert (
        klines(url, interval="1m", endTime=end, limit=10)
        == [r for r in minutes if r[0] <= end][-10:]
    )  # only endTime: the latest up to it (inclusive)
    start = T0 + 90 * MINUTE + 1  # not on a boundary: from the next minute
    assert (
        klines(url, interval="1m", startTime=start, limit=5)
        == [r for r in minutes if r[0] >= start][:5]
    )
    both = klines(url, interval="1m", startTime=T0, endTime=T0 + 9 * MINUTE, limit=1000)
    assert both == minutes[:10]
    # A coarse period opening before startTime is not served; one opening by endTime is.
    fives = rolled(minutes, "5m")
    got = klines(url, interval="5m", startTime=T0 + 7 * MINUTE, endTime=T0 + 20 * MINUTE)
    assert got == [r for r in fives if T0 + 7 * MINUTE <= r[0] <= T0 + 20 * MINUTE]
    assert [r[0] for r in got] == [T0 + k * 5 * MINUTE for k in (2, 3, 4)]
    assert klines(url, interval="1d", endTime=T0 + DAY + 1, limit=1) == [rolled(minutes, "1d")[1]]


def test_a_range_the_store_does_not_cover_gives_fewer_klines_or_none(
    served: BackgroundServer, minutes: list[Row]
) -> None:
    url = served.url
    assert klines(url, interval="1m", startTime=END + DAY) == []
    assert klines(url, interval="1m", endTime=T0 - 1) == []
    assert klines(url, interval="1d", startTime=T0 - 30 * DAY, endTime=T0 - 1) == []
    assert klines(url, interval="1m", startTime=END - 10 * MINUTE, limit=100) == minutes[-10:]
    assert len(klines(url, interval="1d", startTime=T0 - 300 * DAY, limit=1000)) == 3
    # startTime > endTime: spot answers no klines, the futures paths -1023.
    assert klines(url, interval="1m", startTime=END, endTime=T0) == []
    query = {"symbol": "BTCUSDT", "interval": "1m", "startTime": END, "endTime": T0}
    assert refused(url, query, "/fapi/v1") == (400, -1023)


def test_the_extension_path_says_which_klines_are_whole_and_final(served: BackgroundServer) -> None:
    def flags(interval: str) -> list[tuple[int, bool, bool]]:
        status, _, body = get(served.url, "/krs/v1/klines", f"symbol=BTCUSDT&interval={interval}")
        assert status == 200 and {k["revision"] for k in body} == {0}
        return [(k["open_time"], k["gap"], k["closed"]) for k in body]

    # BTCUSDT's 3d grid from its listing day puts a period on exactly 2020-01-01 .. 03.
    assert flags("3d") == [(T0, False, True)]
    # 2d (epoch grid): the second period's last day is not stored: not over, as far as known.
    assert flags("2d") == [(T0, False, True), (T0 + 2 * DAY, False, False)]
    # The week from Monday 2019-12-30: the store starts inside it and ends before its end.
    assert flags("1w") == [(T0 - 2 * DAY, True, False)]
    _status, _, minute = get(served.url, "/krs/v1/klines", "symbol=BTCUSDT&interval=1m&limit=1")
    assert minute[0]["closed"] and not minute[0]["gap"] and minute[0]["interval"] == "1m"
    assert set(minute[0]) >= {"first_trade_id", "last_trade_id", "quote_volume", "symbol"}


def test_flat_runs_gap_and_revision_come_through_expanded_and_rolled_up(tmp_path: Path) -> None:
    recs, _snapshot, expanded = closed(QUIET_HOUR)  # 1m and 5m, quiet hours as flat runs
    assert recs["flat"].any()
    path = tmp_path / "quiet.sqlite"
    recs["symbol"] = "AAAUSDT"

    async def write() -> None:
        sink = SqliteSink(path)
        await sink.open()
        await sink.write(recs, None)
        # Minute 00:02 and its 5m period again as revision 1 (as a repair sends them), gap.
        again = recs[recs["open_time"] == T0].copy()
        assert sorted(again["interval"]) == ["1m", "5m"]
        again["revision"], again["gap"] = 1, True
        await sink.write(again, None)
        await sink.close()

    asyncio.run(write())
    with BackgroundServer(path) as s:
        ones = [k for k in expanded if k["interval"] == "1m"]
        ones.sort(key=lambda k: int(k["open_time"]))
        got = klines_of(s.url, "AAAUSDT", "1m", startTime=T0, limit=1000)
        assert [r[0] for r in got] == [int(k["open_time"]) for k in ones][:1000]
        assert [r[4] for r in got] == [kline_rs.format_fixed8(int(k["close"])) for k in ones][:1000]
        _, _, hours = get(
            s.url, "/krs/v1/klines", "symbol=AAAUSDT&interval=1h&startTime=0&limit=10"
        )
        assert [h["open_time"] for h in hours] == [T0 + k * 3_600_000 for k in range(4)]
        assert [(h["revision"], h["gap"]) for h in hours] == [(1, True)] + [(0, False)] * 3
        assert hours[1]["trades"] == 20 and hours[2]["trades"] == 0  # a quiet hour: flat


def klines_of(url: str, symbol: str, interval: str, **query: Any) -> list[Row]:
    status, _, body = get(url, "/api/v3/klines", {"symbol": symbol, "interval": interval, **query})
    assert status == 200, body
    return list(body)


# -- errors, limits, weight, tokens -----------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("interval=1m", 400, -1102),
        ("symbol=BTCUSDT", 400, -1102),
        ("symbol=&interval=1m", 400, -1102),
        ("symbol=btcusdt&interval=1m", 400, -1100),
        ("symbol=BTC-USDT&interval=1m", 400, -1100),
        ("symbol=ETHBTC&interval=1m", 400, -1121),
        ("symbol=BTCUSDT&interval=2x", 400, -1120),
        ("symbol=BTCUSDT&interval=60m", 400, -1120),
        ("symbol=BTCUSDT&interval=1m&startTime=abc", 400, -1100),
        ("symbol=BTCUSDT&interval=1m&endTime=-5", 400, -1100),
        ("symbol=BTCUSDT&interval=1m&startTime=99999999999999999999", 400, -1130),
        ("symbol=BTCUSDT&interval=1m&limit=1001", 400, -1130),
        ("symbol=BTCUSDT&interval=1m&limit=0", 400, -1130),
        ("symbol=BTCUSDT&interval=1m&timeZone=25", 400, -1130),
        ("symbol=BTCUSDT&symbol=BTCUSDT&interval=1m", 400, -1101),
        ("symbol=BTCUSDT&interval=1m&fromId=3", 400, -1104),
        ("symbol=BTCUSDT&interval=1m&limit=5&" + "x" * 3000, 414, -1101),
    ],
)
def test_binances_errors_with_binances_status(
    served: BackgroundServer, query: str, status: int, code: int
) -> None:
    assert refused(served.url, query) == (status, code)


def test_futures_paths_take_1500_and_no_1s(served: BackgroundServer, minutes: list[Row]) -> None:
    assert klines(served.url, "/fapi/v1", interval="1m", limit=1500) == minutes[-1500:]
    assert klines(served.url, "/dapi/v1", interval="1m", limit=2) == minutes[-2:]
    assert refused(served.url, "symbol=BTCUSDT&interval=1s", "/fapi/v1") == (400, -1120)
    assert refused(served.url, "symbol=BTCUSDT&interval=1m&limit=1501", "/fapi/v1")[1] == -1130


def test_every_answer_carries_the_clients_weight(served: BackgroundServer) -> None:
    used = []
    for path, query in [
        ("/api/v3/klines", "symbol=BTCUSDT&interval=1m&limit=1"),  # spot klines: 2
        ("/api/v3/exchangeInfo", ""),  # 20
        ("/fapi/v1/klines", "symbol=BTCUSDT&interval=1m&limit=1000"),  # by limit: 5
        ("/api/v3/klines", "symbol=NOPE&interval=1m"),  # refused, still counted: 2
        ("/api/v3/ping", ""),  # 1
    ]:
        _, headers, _ = get(served.url, path, query)
        used.append(int(headers["X-MBX-USED-WEIGHT-1M"]))
    steps = [b - a for a, b in itertools.pairwise(used)]
    if all(s >= 0 for s in steps):  # (unless the minute turned meanwhile)
        assert steps == [20, 5, 2, 1]


def test_the_weight_limit_answers_429_with_retry_after(
    served: BackgroundServer, tmp_path: Path
) -> None:
    path = served.server.source.db  # type: ignore[attr-defined]
    with BackgroundServer(path, options=ServeOptions(weight_per_minute=10)) as s:
        answers = [get(s.url, "/api/v3/klines", "symbol=BTCUSDT&interval=1m&limit=1")]
        while answers[-1][0] == 200 and len(answers) < 20:
            answers.append(get(s.url, "/api/v3/klines", "symbol=BTCUSDT&interval=1m&limit=1"))
        status, headers, body = answers[-1]
        assert status == 429 and body["code"] == -1003 and "10 request weight" in body["msg"]
        assert 1 <= int(headers["Retry-After"]) <= 60
        assert int(headers["X-MBX-USED-WEIGHT-1M"]) > 8
        assert len(answers) <= 7  # 5 of weight 2 fit in 10 (6 if the minute turned once)


def test_the_guard_counts_wall_clock_minutes_per_client() -> None:
    now = [120.0]
    guard = Guard(weight_per_minute=10, clock=lambda: now[0])
    assert guard.admit("a", 6).used == 6
    assert guard.admit("b", 10).used == 10  # another client, its own budget
    with pytest.raises(BinanceError) as refused_:
        guard.admit("a", 5)
    assert refused_.value.status == 429 and refused_.value.headers["Retry-After"] == "60"
    now[0] = 150.5
    with pytest.raises(BinanceError) as again:
        guard.admit("a", 5)
    assert again.value.headers["Retry-After"] == "30"
    now[0] = 180.0  # a new minute
    assert guard.admit("a", 5).used == 5


def test_a_token_is_required_on_every_request_when_given(served: BackgroundServer) -> None:
    path = served.server.source.db  # type: ignore[attr-defined]
    options = ServeOptions(tokens=("s3cret", "other"))
    with BackgroundServer(path, options=options) as s:
        q = "symbol=BTCUSDT&interval=1m&limit=1"
        for headers in [{}, {"X-MBX-APIKEY": "wrong"}, {"Authorization": "Bearer wrong"}]:
            status, _, body = get(s.url, "/api/v3/klines", q, headers)
            assert (status, body["code"]) == (401, -2015)
        assert get(s.url, "/api/v3/ping", "", {})[0] == 401
        ok, first, _ = get(s.url, "/api/v3/klines", q, {"X-MBX-APIKEY": "s3cret"})
        assert ok == 200
        ok, second, _ = get(s.url, "/api/v3/klines", q, {"Authorization": "Bearer s3cret"})
        assert ok == 200
        _, other, _ = get(s.url, "/api/v3/klines", q, {"X-MBX-APIKEY": "other"})
        if int(second["X-MBX-USED-WEIGHT-1M"]) > int(first["X-MBX-USED-WEIGHT-1M"]):
            assert other["X-MBX-USED-WEIGHT-1M"] == "2"  # each token its own budget


def test_a_non_loopback_bind_is_refused_without_allow_remote(tmp_path: Path) -> None:
    with pytest.raises(RemoteBindError, match="allow_remote"):
        Server(tmp_path / "k.sqlite", host="0.0.0.0")
    with pytest.raises(RemoteBindError):
        Server(tmp_path / "k.sqlite", host="192.168.1.10")
    Server(tmp_path / "k.sqlite", host="::1")  # loopback: fine
    got = subprocess.run(
        [sys.executable, "-m", "kline_rs.cli", "serve", "--db", str(tmp_path / "k.sqlite"),
         "--bind", "0.0.0.0:0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert got.returncode == 2 and "not a loopback address" in got.stderr
    # kline-rs run --serve: refused before the run starts (no exchange is contacted).
    got = subprocess.run(
        [sys.executable, "-m", "kline_rs.cli", "run", "--symbols", "BTCUSDT",
         "--rest-url", "http://127.0.0.1:9", "--serve", "0.0.0.0:0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert got.returncode == 2 and "not a loopback address" in got.stderr, got.stderr


def test_the_serve_command_serves_until_told_to_stop(
    served: BackgroundServer, tmp_path: Path
) -> None:
    path = served.server.source.db  # type: ignore[attr-defined]
    config = tmp_path / "serve.toml"
    config.write_text(f'db = "{path}"\nbind = "127.0.0.1:0"\nweight-limit = 100\n')
    env = {**os.environ, "KLINE_RS_TOKEN": "t0k"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "kline_rs.cli", "serve", "--config", str(config), "--duration",
         "60"],
        stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "serving http://127.0.0.1:" in line and "BTCUSDT" in line and "token" in line
        url = line.split()[2]
        assert get(url, "/api/v3/ping")[0] == 401
        status, _, body = get(url, "/api/v3/time", "", {"X-MBX-APIKEY": "t0k"})
        assert status == 200 and abs(body["serverTime"] - time.time() * 1000) < 60_000
        _, _, info = get(url, "/api/v3/exchangeInfo", "", {"X-MBX-APIKEY": "t0k"})
        assert info["rateLimits"][0]["limit"] == 100  # from the config file
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        if proc.stderr is not None:
            proc.stderr.close()
    assert code == 0


# -- real clients, unmodified -----------------------------------------------------------------


def test_ccxt_fetch_ohlcv_gets_the_served_klines(
    served: BackgroundServer, minutes: list[Row]
) -> None:
    ccxt = pytest.importorskip("ccxt")
    exchange = ccxt.binance(
        {
            "urls": {"api": {"public": f"{served.url}/api/v3"}},
            "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False},
            "enableLastJsonResponse": True,
        }
    )
    got = exchange.fetch_ohlcv("BTC/USDT", "5m", since=T0, limit=24)
    want = rolled(minutes, "5m")[:24]
    assert exchange.last_json_response == want  # the rows as served, text for text
    assert got == [[r[0], *(float(v) for v in r[1:6])] for r in want]
    days = exchange.fetch_ohlcv("BTC/USDT", "1d", since=T0 - 5 * DAY)
    assert [d[0] for d in days] == [T0, T0 + DAY, T0 + 2 * DAY]
    assert exchange.markets["BTC/USDT"]["id"] == "BTCUSDT"


def python_binance() -> Any:
    with warnings.catch_warnings():  # it imports a deprecated websockets name
        warnings.simplefilter("ignore", DeprecationWarning)
        client = pytest.importorskip("binance.client")
    return client


def test_python_binance_get_klines_gets_the_served_klines(
    served: BackgroundServer, minutes: list[Row]
) -> None:
    client_module = python_binance()

    class Local(client_module.Client):  # type: ignore[misc,name-defined]
        API_URL = f"{served.url}/api"  # its documented class attribute; it pings at once

    client = Local()
    try:
        assert client.get_klines(symbol="BTCUSDT", interval="1m", limit=1000) == minutes[-1000:]
        fives = client.get_klines(symbol="BTCUSDT", interval="5m", startTime=T0, limit=24)
        assert fives == rolled(minutes, "5m")[:24]
        # Its paging: the earliest kline (startTime=0, limit=1), then pages until one is short.
        days = client.get_historical_klines("BTCUSDT", "1d", "2019-12-01", "2020-02-01")
        assert days == rolled(minutes, "1d")
        # 4 320 minutes: five pages of 1 000 from the earliest.
        got = client.get_historical_klines("BTCUSDT", "1m", "2019-12-31", "2020-01-05")
        assert got == minutes
    finally:
        close_python_binance(client)


def close_python_binance(client: Any) -> None:
    """Its HTTP session, and the event loop it made and set for this thread (else a
    ResourceWarning fails a later test when the loop is collected)."""
    client.close_connection()
    if not client.loop.is_running():
        client.loop.close()
    asyncio.set_event_loop(None)


def test_binance_sdk_spot_klines_gets_the_served_klines(
    served: BackgroundServer, minutes: list[Row]
) -> None:
    spot = pytest.importorskip("binance_sdk_spot.spot")
    from binance_common.configuration import ConfigurationRestAPI
    from binance_sdk_spot.rest_api.models import KlinesIntervalEnum

    client = spot.Spot(config_rest_api=ConfigurationRestAPI(base_path=served.url))
    response = client.rest_api.klines(
        symbol="BTCUSDT", interval=KlinesIntervalEnum["INTERVAL_5m"].value, start_time=T0, limit=24
    )
    assert response.data() == rolled(minutes, "5m")[:24]
    weight = response.rate_limits[0]  # read from our X-MBX-USED-WEIGHT-1M
    assert (weight.rateLimitType, weight.interval, weight.count >= 2) == (
        "REQUEST_WEIGHT",
        "MINUTE",
        True,
    )
    info = client.rest_api.exchange_info().data()
    assert [s.symbol for s in info.symbols] == ["BTCUSDT"]


# -- fuzz -------------------------------------------------------------------------------------

NAMES = ["symbol", "interval", "startTime", "endTime", "limit", "timeZone", "fromId", "", "x"]
VALUES = st.one_of(
    st.sampled_from(["BTCUSDT", "1m", "5m", "1d", "3d", "1M", "7m", "0", "-1", "8", "+05:45"]),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.text(max_size=40),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    params=st.lists(st.tuples(st.sampled_from(NAMES), VALUES), max_size=8),
    raw=st.text(max_size=60),
    path=st.sampled_from(
        ["/api/v3/klines", "/fapi/v1/klines", "/krs/v1/klines", "/api/v3/uiKlines"]
    ),
)
def test_any_query_string_gets_klines_or_a_binance_error_never_a_500(
    served: BackgroundServer, params: list[tuple[str, str]], raw: str, path: str
) -> None:
    query = urllib.parse.urlencode(params)
    if raw:
        query = f"{query}&{urllib.parse.quote(raw, safe='=&%')}" if query else raw
    query = "".join(c for c in query if 32 < ord(c) < 127)  # what an HTTP request line holds
    status, _, body = get(served.url, path, query)
    if status == 200:
        assert isinstance(body, list) and len(body) <= 1500
    else:
        assert status in (400, 414), (status, body)
        assert isinstance(body, dict) and set(body) == {"code", "msg"}
        assert isinstance(body["code"], int) and body["code"] < 0 and body["msg"]


def test_rollups_are_bounded(served: BackgroundServer) -> None:
    # 1 000 monthly klines would need 44.6 M minutes: the bound cuts the read, whole klines
    # only come back.
    assert MAX_ROLLUP_PARTS < 1000 * 31 * 1440
    got = klines(served.url, interval="1M", startTime=0, limit=1000)
    assert [r[0] for r in got] == [T0]


# -- the kline streams of a store ----------------------------------------------------------------


def test_a_stores_streams_send_each_kline_as_it_is_stored(
    minutes: list[Row], tmp_path: Path
) -> None:
    """``kline-rs serve`` beside a run writing the store: a kline stream sends the latest
    stored kline, then each one the store gets, closed (x true), Binance's own values."""
    import aiohttp

    path = tmp_path / "growing.sqlite"

    async def scenario() -> None:
        await store(path, minutes[:100])
        source = StoreSource(path, contents_ttl_s=0.05)
        options = ServeOptions(stream_pace_s=0.05)
        async with Server(source, options=options) as server, aiohttp.ClientSession() as http:
            url = server.url.replace("http:", "ws:")
            async with http.ws_connect(f"{url}/ws/btcusdt@kline_1m") as ws:
                first = json.loads((await ws.receive(timeout=10)).data)
                assert first["k"]["x"] and first["k"]["t"] == minutes[99][0]
                await store(path, minutes[100:103])  # a run stores three more minutes
                got = [json.loads((await ws.receive(timeout=10)).data)["k"] for _ in range(3)]
        want = minutes[100:103]
        assert [k["t"] for k in got] == [r[0] for r in want] and all(k["x"] for k in got)
        for k, r in zip(got, want, strict=True):
            assert [k["o"], k["h"], k["l"], k["c"], k["v"], k["T"], k["q"], k["n"]] == [
                *r[1:6], r[6], r[7], r[8]]  # fmt: skip
        await source.close()

    asyncio.run(scenario())


def test_ccxt_and_python_binance_watch_a_stores_klines_as_it_grows(
    minutes: list[Row], tmp_path: Path
) -> None:
    """ccxt.pro's ``watch_ohlcv`` and python-binance's kline socket, unmodified, on a store a
    run keeps writing: each gets every stored kline, Binance's own values."""
    ccxt_pro = pytest.importorskip("ccxt.pro")
    with warnings.catch_warnings():  # it imports a deprecated websockets name
        warnings.simplefilter("ignore", DeprecationWarning)
        binance = pytest.importorskip("binance")
    path = tmp_path / "growing.sqlite"

    async def watch_ccxt(url: str, want: int) -> dict[int, list[float]]:
        ws = url.replace("http:", "ws:")
        exchange = ccxt_pro.binance({
            "urls": {"api": {"public": f"{url}/api/v3", "ws": {"spot": f"{ws}/ws"}}},
            "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False},
        })  # fmt: skip
        seen: dict[int, list[float]] = {}
        try:
            while want not in seen:
                for row in await asyncio.wait_for(exchange.watch_ohlcv("BTC/USDT", "1m"), 20):
                    seen[int(row[0])] = row
        finally:
            await exchange.close()
        return seen

    async def watch_python_binance(url: str, want: int) -> dict[int, dict[str, Any]]:
        class Client(binance.AsyncClient):  # type: ignore[misc,name-defined]
            API_URL = f"{url}/api"

        class Sockets(binance.BinanceSocketManager):  # type: ignore[misc,name-defined]
            STREAM_URL = url.replace("http:", "ws:") + "/"

        client = await Client.create()
        seen: dict[int, dict[str, Any]] = {}
        try:
            async with Sockets(client).kline_socket("BTCUSDT", interval="1m") as socket:
                while want not in seen:
                    event = await asyncio.wait_for(socket.recv(), 20)
                    seen[event["k"]["t"]] = event["k"]
        finally:
            await client.close_connection()
        return seen

    async def scenario() -> tuple[dict[int, list[float]], dict[int, dict[str, Any]]]:
        await store(path, minutes[:100])
        source = StoreSource(path, contents_ttl_s=0.05)
        try:
            async with Server(source, options=ServeOptions(stream_pace_s=0.05)) as server:
                last = minutes[103][0]
                watching = asyncio.gather(
                    watch_ccxt(server.url, last), watch_python_binance(server.url, last)
                )
                await asyncio.sleep(1.0)  # both subscribed
                for i in range(100, 104):  # a run stores a minute at a time
                    await store(path, minutes[i : i + 1])
                    await asyncio.sleep(0.2)
                return await watching
        finally:
            await source.close()

    ccxt_seen, theirs = asyncio.run(scenario())
    for r in minutes[100:104]:
        assert ccxt_seen[r[0]] == [r[0], *(float(v) for v in r[1:6])]
        k = theirs[r[0]]
        assert k["x"] and [k["o"], k["h"], k["l"], k["c"], k["v"], k["T"], k["q"], k["n"]] == [
            *r[1:6], r[6], r[7], r[8]]  # fmt: skip
