"""``kline-rs download`` against the fake exchange's data.binance.vision paths, on loopback.

Real parts: an aiohttp server on 127.0.0.1 (in a thread of its own, so the command runs as a
user runs it), real files on disk, Binance's own zips and CHECKSUMs from ../shared/data, and
zips the fake builds from its market's tape, replayed by ``kline-rs replay``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import threading
import zipfile
from collections.abc import Iterator
from datetime import date, datetime, timezone
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

import kline_rs
import numpy as np
import pytest
from kline_rs.cli import main
from kline_rs.download import Downloader, parse_checksum
from kline_rs.fake import FakeExchange, Market, SimulatedMarket, simulate
from kline_rs.fake.kline_rows import KlineBook
from kline_rs.fake.tape import Instrument, Tape, Trade
from kline_rs.public_data import DumpFile, LayoutError, Planned, parse_path, plan
from kline_rs.venues import VENUES

#: Binance's sha256 of the shared 1m kline zips (../shared/data/binance/README.md).
REAL_SHA256 = {
    "BTCUSDT-1m-2020-01-01.zip": "dd579c62368ded93d3f01a1904575b932279e32936e181c062763e605793c1c2",
    "BTCUSDT-1m-2020-01-02.zip": "66c701b381d5c2482343ba1c7f600e55d3f5c18f0117ff0789d043a21b62bab6",
    "BTCUSDT-1m-2020-01-03.zip": "9623b3d0c487715f410caee51fbce2474375ece85c854a0682c90b3dad0bf8be",
}
KLINES_1M = "data/spot/daily/klines/BTCUSDT/1m"
DAY_MS = 86_400_000


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1000)


#: The simulated market: listed 2024-02-29 22:00 UTC, traded up to 2024-03-02 00:00.
LISTED = ms("2024-02-29T22:00:00")
NOW = ms("2024-03-02T00:00:00")


@contextlib.contextmanager
def serving(market: Market | None = None, **kwargs: Any) -> Iterator[FakeExchange]:
    """A fake exchange on its own event loop in a thread, for the command's asyncio.run."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    fx = FakeExchange(market or SimulatedMarket(["BTCUSDT"], start_ms=LISTED, speed=0), **kwargs)
    asyncio.run_coroutine_threadsafe(fx.start(), loop).result(10)
    try:
        yield fx
    finally:
        asyncio.run_coroutine_threadsafe(fx.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


class DrawnMarket(Market):
    """Symbols listed at LISTED whose trades up to NOW are drawn at once by the vectorised day
    generator (``kline_rs.fake.simulate``; the block-by-block SimulatedMarket takes seconds
    for a day), released as the clock moves. Ids run on over the days."""

    def __init__(self, specs: list[tuple[str, int, int, int, int]]) -> None:
        super().__init__(LISTED, speed=0)
        self.pending: dict[str, list[tuple[int, int, int, int, int, int, bool]]] = {}
        for rank, (name, price, tick, lot, per_day) in enumerate(specs):
            rng = np.random.default_rng([11, rank])
            inst = simulate.Instrument(name, price, tick, lot)
            days = [
                simulate.trades_for(inst, rank, per_day, day0, 1000, rng)
                for day0 in range(LISTED // DAY_MS * DAY_MS, NOW, DAY_MS)
            ]
            cols = {k: np.concatenate([d[k] for d in days]) for k in "apqflTm"}
            keep = cols["T"] >= LISTED
            cols = {k: v[keep] for k, v in cols.items()}
            raw = cols["l"] - cols["f"] + 1
            first = cols["f"][0] + np.cumsum(raw) - raw
            rows = zip(
                (cols["a"][0] + np.arange(len(raw))).tolist(), cols["p"].tolist(),
                cols["q"].tolist(), first.tolist(), (first + raw - 1).tolist(),
                cols["T"].tolist(), cols["m"].tolist(), strict=True,
            )  # fmt: skip
            self.instruments[name] = Instrument(name, tick, lot, listed_ms=LISTED)
            self.tapes[name] = Tape()
            self.pending[name] = list(rows)

    def _release(self, now_ms: int) -> list[tuple[str, Trade]]:
        out: list[tuple[str, Trade]] = []
        for name, rows in self.pending.items():
            due = [r for r in rows if r[5] <= now_ms]
            self.pending[name] = rows[len(due) :]
            start = len(self.tapes[name])
            self.tapes[name].extend(due)
            out += [(name, self.tapes[name].trade(i)) for i in range(start, start + len(due))]
        return out


@pytest.fixture(scope="module")
def market() -> Market:
    """One market for every venue (with speed 0 nothing changes it while exchanges serve it):
    prices and sizes on BTC's, ETH's and a COIN-M contract's ticks and lots."""
    e8 = 10**8
    m = DrawnMarket(
        [
            ("BTCUSDT", 62_000 * e8, e8 // 100, 1_000, 20_000),
            ("ETHUSDT", 3_400 * e8, e8 // 100, 10_000, 8_000),
            ("BTCUSD_PERP", 62_000 * e8, e8 // 10, e8, 3_000),
            ("ETHUSD_PERP", 3_400 * e8, e8 // 100, e8, 3_000),
        ]
    )
    m.advance(NOW)
    return m


def download(fx: FakeExchange, out: Path, *args: str) -> int:
    return main(["download", "--base-url", fx.data_url, "--out", str(out), "--no-progress", *args])


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def zips_asked(fx: FakeExchange) -> list[tuple[str, str | None]]:
    return [(p, r) for p, r in fx.stats.dump_requests if p.endswith(".zip")]


# -- Binance's own zips ----------------------------------------------------------------------


def test_real_kline_zips_arrive_verified_and_read_as_binance_days(
    binance_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serving(files_dir=binance_data) as fx:
        args = ["--kind", "klines", "--interval", "1m", "--symbols", "BTCUSDT"]
        assert download(fx, tmp_path, *args, "--start", "2020-01-01", "--end", "2020-01-03") == 0
        first = capsys.readouterr().err
        # Again: each file is checked against its CHECKSUM and skipped, no zip is fetched.
        asked = len(fx.stats.dump_requests)
        assert download(fx, tmp_path, *args, "--start", "2020-01-01", "--end", "2020-01-03") == 0
        again = capsys.readouterr().err
        assert not zips_asked(fx)[3:], "a verified file was fetched again"
        assert len(fx.stats.dump_requests) == asked + 3
    assert "downloaded 3 files" in first and "0 missing (404), 0 failed" in first
    assert "downloaded 0 files" in again and "skipped 3 already present" in again
    folder = tmp_path / KLINES_1M
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [*REAL_SHA256, *(n + ".CHECKSUM" for n in REAL_SHA256)]
    )
    lines: list[str] = []
    for name, digest in REAL_SHA256.items():
        assert sha256(folder / name) == digest
        assert (folder / (name + ".CHECKSUM")).read_bytes() == (
            binance_data / (name + ".CHECKSUM")
        ).read_bytes()
        with zipfile.ZipFile(folder / name) as z:
            lines += z.read(name.replace(".zip", ".csv")).decode().splitlines()
    # Read back: the 4 320 minutes roll up to Binance's own REST daily klines of those days.
    assert len(lines) == 3 * 1440
    rest = json.loads((binance_data / "btcusdt_klines_1d_rest.json").read_text())
    want = [
        ",".join(str(v) for v in row)
        for row in rest
        if ms("2020-01-01") <= row[0] < ms("2020-01-04")
    ]
    assert kline_rs.rollup_csv(lines, "1d") == want


def test_a_damaged_file_in_the_directory_is_fetched_again(
    binance_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "BTCUSDT-1m-2020-01-02.zip"
    target = tmp_path / KLINES_1M / name
    target.parent.mkdir(parents=True)
    target.write_bytes((binance_data / name).read_bytes()[:-10] + b"0123456789")
    with serving(files_dir=binance_data) as fx:
        args = ["--kind", "klines", "--interval", "1m", "--symbols", "BTCUSDT", "--daily"]
        assert download(fx, tmp_path, *args, "--start", "2020-01-02", "--end", "2020-01-02") == 0
        assert [p for p, _ in zips_asked(fx)] == [f"{KLINES_1M}/{name}"]
    assert sha256(target) == REAL_SHA256[name]
    assert "downloaded 1 files" in capsys.readouterr().err


# -- resume and checksum retry ---------------------------------------------------------------


def test_a_cut_connection_is_resumed_with_a_range_request(
    binance_data: Path, tmp_path: Path
) -> None:
    name = "BTCUSDT-1m-2020-01-03.zip"
    size = (binance_data / name).stat().st_size
    with serving(files_dir=binance_data) as fx:
        fx.faults.dump_cuts = 1
        args = ["--kind", "klines", "--interval", "1m", "--symbols", "BTCUSDT"]
        assert download(fx, tmp_path, *args, "--start", "2020-01-03", "--end", "2020-01-03") == 0
        asked = zips_asked(fx)
    assert len(asked) == 2 and asked[0][1] is None
    # The second request asks only for what the .part did not hold yet: it kept the first half.
    assert asked[1][1] == f"bytes={size // 2}-"
    assert sha256(tmp_path / KLINES_1M / name) == REAL_SHA256[name]
    assert not list((tmp_path / KLINES_1M).glob("*.part"))


def test_a_part_left_by_an_earlier_run_is_resumed(binance_data: Path, tmp_path: Path) -> None:
    name = "BTCUSDT-1m-2020-01-01.zip"
    part = tmp_path / KLINES_1M / (name + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes((binance_data / name).read_bytes()[:40_000])
    with serving(files_dir=binance_data) as fx:
        args = ["--kind", "klines", "--interval", "1m", "--symbols", "BTCUSDT"]
        assert download(fx, tmp_path, *args, "--start", "2020-01-01", "--end", "2020-01-01") == 0
        assert [r for _, r in zips_asked(fx)] == ["bytes=40000-"]
    assert sha256(tmp_path / KLINES_1M / name) == REAL_SHA256[name]
    assert not part.exists()


def test_a_whole_part_is_verified_and_kept(binance_data: Path, tmp_path: Path) -> None:
    """Stopped between the last byte and the rename: the server answers 416 to the range."""
    name = "BTCUSDT-1m-2020-01-01.zip"
    part = tmp_path / KLINES_1M / (name + ".part")
    part.parent.mkdir(parents=True)
    size = part.write_bytes((binance_data / name).read_bytes())
    with serving(files_dir=binance_data) as fx:
        args = ["--kind", "klines", "--interval", "1m", "--symbols", "BTCUSDT"]
        assert download(fx, tmp_path, *args, "--start", "2020-01-01", "--end", "2020-01-01") == 0
        assert [r for _, r in zips_asked(fx)] == [f"bytes={size}-"]
    assert sha256(tmp_path / KLINES_1M / name) == REAL_SHA256[name]
    assert not part.exists()


def test_a_server_ignoring_range_gives_the_whole_file_afresh(
    binance_data: Path, tmp_path: Path
) -> None:
    name = "BTCUSDT-1m-2020-01-01.zip"
    part = tmp_path / KLINES_1M / (name + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"not the start of this file")
    with serving(files_dir=binance_data) as fx:
        fx.faults.dump_ignore_range = True
        args = ["--kind", "klines", "--interval", "1m", "--symbols", "BTCUSDT"]
        assert download(fx, tmp_path, *args, "--start", "2020-01-01", "--end", "2020-01-01") == 0
        assert [r for _, r in zips_asked(fx)] == ["bytes=26-"]  # answered 200: written anew
    assert sha256(tmp_path / KLINES_1M / name) == REAL_SHA256[name]


def test_a_corrupted_file_is_fetched_once_more(binance_data: Path, tmp_path: Path) -> None:
    name = "BTCUSDT-1m-2020-01-02.zip"
    with serving(files_dir=binance_data) as fx:
        fx.faults.dump_corruptions = 1
        args = ["--kind", "klines", "--interval", "1m", "--symbols", "BTCUSDT"]
        assert download(fx, tmp_path, *args, "--start", "2020-01-02", "--end", "2020-01-02") == 0
        assert [r for _, r in zips_asked(fx)] == [None, None]  # the second from the start
    assert sha256(tmp_path / KLINES_1M / name) == REAL_SHA256[name]


def test_a_file_corrupted_twice_fails_naming_both_hashes(
    binance_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "BTCUSDT-1m-2020-01-01.zip"
    body = bytearray((binance_data / name).read_bytes())
    body[len(body) // 2] ^= 0xFF  # what the fault changes
    with serving(files_dir=binance_data) as fx:
        fx.faults.dump_corruptions = 2
        # One file at a time: both corrupted bodies go to the first day, the second is whole.
        args = ["--kind", "klines", "--interval", "1m", "--symbols", "BTCUSDT", "--jobs", "1"]
        assert download(fx, tmp_path, *args, "--start", "2020-01-01", "--end", "2020-01-02") == 1
    err = capsys.readouterr().err
    assert "downloaded 1 files" in err and "1 failed" in err
    failure = next(line for line in err.splitlines() if line.startswith("failed:"))
    assert name in failure
    assert REAL_SHA256[name] in failure and hashlib.sha256(body).hexdigest() in failure
    folder = tmp_path / KLINES_1M
    assert sorted(p.name for p in folder.glob("*.zip*")) == [
        "BTCUSDT-1m-2020-01-02.zip",
        "BTCUSDT-1m-2020-01-02.zip.CHECKSUM",
    ]


def test_progress_line_counts_files_and_bytes(
    binance_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = plan(
        "spot", "klines", ["BTCUSDT"], date(2019, 12, 31), date(2020, 1, 3), intervals=["1m"]
    )
    with serving(files_dir=binance_data) as fx:
        summary = asyncio.run(Downloader(tmp_path, base_url=fx.data_url, progress=True).run(files))
    assert (summary.downloaded, summary.missing) == (3, ["BTCUSDT-1m-2019-12-31.zip"])
    last = capsys.readouterr().err.split("\r")[-1]
    assert last == "\x1b[2Kdownload: 4/4 files, 0 present, 1 missing, 0 failed, 0.2 MB\n"


def test_server_errors_are_retried_then_fail_clearly(binance_data: Path, tmp_path: Path) -> None:
    files = plan(
        "spot", "klines", ["BTCUSDT"], date(2020, 1, 1), date(2020, 1, 1), intervals=["1m"]
    )
    with serving(files_dir=binance_data) as fx:
        fx.faults.dump_errors = 3  # CHECKSUM twice, then the zip once
        quick = Downloader(tmp_path / "a", base_url=fx.data_url, retries=3, backoff_base=0.01)
        got = asyncio.run(quick.run(files))
        assert (got.downloaded, got.failed) == (1, [])
        fx.faults.dump_errors = 10
        stubborn = Downloader(tmp_path / "b", base_url=fx.data_url, retries=2, backoff_base=0.01)
        failed = asyncio.run(stubborn.run(files))
    assert failed.downloaded == 0
    assert failed.failed == [
        f"{fx.data_url}/{KLINES_1M}/BTCUSDT-1m-2020-01-01.zip.CHECKSUM: HTTP 503 "
        "(gave up after 2 retries)"
    ]


# -- zips made from the fake market's tape ---------------------------------------------------


def market_klines(
    market: Market, symbol: str, interval: str, before: int, venue: str = "spot"
) -> list[str]:
    """The fake exchange's own klines of ``symbol`` as kline CSV lines."""
    inst, tape = market.instruments[symbol], market.tape(symbol)
    rows, _ = KlineBook(VENUES[venue]).traded_rows(inst, tape, interval)  # type: ignore[index]
    return [",".join(str(v) for v in row) for row in rows if row[0] < before]


def test_agg_trades_over_a_range_replay_to_the_markets_klines(
    market: Market, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serving(market) as fx:
        args = ["--kind", "aggTrades", "--symbols", "ETHUSDT,BTCUSDT", "--jobs", "2"]
        assert download(fx, tmp_path, *args, "--start", "2024-02-28", "--end", "2024-03-02") == 0
    err = capsys.readouterr().err
    # 02-28: before the listing; 03-02: not over yet. Both 404, counted, not failures.
    assert "downloaded 4 files" in err and "4 missing (404), 0 failed" in err
    assert "BTCUSDT-aggTrades-2024-02-28.zip" in err and "ETHUSDT-aggTrades-2024-03-02.zip" in err
    folders = [tmp_path / f"data/spot/daily/aggTrades/{s}" for s in ("BTCUSDT", "ETHUSDT")]
    for folder in folders:
        assert sorted(p.name for p in folder.glob("*.zip")) == [
            f"{folder.name}-aggTrades-2024-02-29.zip",
            f"{folder.name}-aggTrades-2024-03-01.zip",
        ]
    out = tmp_path / "klines"
    assert main(["replay", *map(str, folders), "--intervals", "1m,1h", "--out", str(out),
                 "--no-progress"]) == 0  # fmt: skip
    for symbol in ("BTCUSDT", "ETHUSDT"):
        for interval in ("1m", "1h"):
            got = (out / f"{symbol}-{interval}.csv").read_text().splitlines()
            assert got == market_klines(market, symbol, interval, NOW), (symbol, interval)
            assert len(got) > 10


@pytest.mark.parametrize(
    ("venue", "symbol", "kind", "folder"),
    [
        ("usdm", "BTCUSDT", "aggTrades", "data/futures/um/daily/aggTrades/BTCUSDT"),
        ("coinm", "BTCUSD_PERP", "aggTrades", "data/futures/cm/daily/aggTrades/BTCUSD_PERP"),
        ("usdm", "ETHUSDT", "trades", "data/futures/um/daily/trades/ETHUSDT"),
        ("coinm", "ETHUSD_PERP", "trades", "data/futures/cm/daily/trades/ETHUSD_PERP"),
    ],
)
def test_futures_dumps_in_their_own_layout_replay_to_the_markets_klines(
    market: Market, tmp_path: Path, venue: str, symbol: str, kind: str, folder: str
) -> None:
    with serving(market, venue=venue) as fx:
        args = ["--venue", venue, "--kind", kind, "--symbols", symbol]
        assert download(fx, tmp_path, *args, "--start", "2024-03-01", "--end", "2024-03-01") == 0
    (path,) = (tmp_path / folder).glob("*.zip")
    with zipfile.ZipFile(path) as z:
        header = io.TextIOWrapper(z.open(z.namelist()[0])).readline()
    assert header.startswith("agg_trade_id," if kind == "aggTrades" else "id,price,qty,")
    out = tmp_path / "klines"
    replay = ["replay", str(path), "--intervals", "5m", "--out", str(out), "--no-progress"]
    size = market.instruments[symbol].contract_size
    if venue == "coinm":  # quote volumes are base-asset volume: the contract size is needed
        replay += ["--contract-size", str(size)]
    assert main(replay) == 0
    got = (out / f"{symbol}-5m.csv").read_text().splitlines()
    # One day's file: from its first trade's period to its last's (the market's rows go on
    # flat from the day before).
    first, last = (int(got[i].split(",")[0]) for i in (0, -1))
    want = market_klines(market, symbol, "5m", last + 1, venue)
    assert got == [k for k in want if int(k.split(",")[0]) >= first]
    assert NOW - DAY_MS <= first < last < NOW and len(got) > 250
    if venue == "coinm":
        # The quote columns against Python's decimals: Σ contracts x size / price per 5m,
        # truncated to 8 decimals once.
        with zipfile.ZipFile(path) as z:
            rows = io.TextIOWrapper(z.open(z.namelist()[0])).read().splitlines()[1:]
        base: dict[int, Decimal] = {}
        for row in rows:
            f = row.split(",")
            p, q, t = f[1], f[2], f[4 if kind == "trades" else 5]
            start = int(t) // 300_000 * 300_000
            base[start] = base.get(start, Decimal(0)) + Decimal(q) * size / Decimal(p)
        cut = Decimal("0.00000001")
        for line in got:
            f = line.split(",")
            want = base.get(int(f[0]), Decimal(0)).quantize(cut, ROUND_DOWN)  # flat: 0
            assert Decimal(f[7]) == want, line


def test_a_coin_m_trades_file_is_refused_without_its_contract_size(
    market: Market, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serving(market, venue="coinm") as fx:
        args = ["--venue", "coinm", "--kind", "trades", "--symbols", "BTCUSD_PERP"]
        assert download(fx, tmp_path, *args, "--start", "2024-03-01", "--end", "2024-03-01") == 0
    (path,) = (tmp_path / "data/futures/cm/daily/trades/BTCUSD_PERP").glob("*.zip")
    capsys.readouterr()
    replay = [
        "replay",
        str(path),
        "--intervals",
        "5m",
        "--out",
        str(tmp_path / "k"),
        "--no-progress",
    ]
    assert main(replay) == 1
    err = capsys.readouterr().err
    assert "COIN-M trades (its header names base_qty)" in err and "--contract-size" in err
    assert not (tmp_path / "k" / "BTCUSD_PERP-5m.csv").exists()


def test_klines_month_and_a_month_not_published_yet(
    market: Market, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serving(market) as fx:
        args = ["--kind", "klines", "--interval", "1h", "--symbols", "BTCUSDT"]
        assert download(fx, tmp_path, *args, "--start", "2024-02-01", "--end", "2024-03-31") == 0
    err = capsys.readouterr().err
    # February is over: one monthly file. March is not: its days instead, the past one found.
    assert "downloaded 2 files" in err and "30 missing (404)" in err
    assert "fetched by day instead: BTCUSDT-1h-2024-03.zip" in err
    base = tmp_path / "data/spot"
    lines = []
    for path in (
        base / "monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2024-02.zip",
        base / "daily/klines/BTCUSDT/1h/BTCUSDT-1h-2024-03-01.zip",
    ):
        with zipfile.ZipFile(path) as z:
            lines += z.read(path.name.replace(".zip", ".csv")).decode().splitlines()
    assert lines == market_klines(market, "BTCUSDT", "1h", NOW)
    assert len(lines) == 26


# -- the layout -------------------------------------------------------------------------------


def test_paths_are_binance_public_data_paths() -> None:
    agg = DumpFile("spot", "aggTrades", "BTCUSDT", "daily", date(2024, 1, 2))
    assert agg.path == "data/spot/daily/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2024-01-02.zip"
    k = DumpFile("usdm", "klines", "ETHUSDT", "monthly", date(2024, 2, 1), "1mo")
    assert k.path == "data/futures/um/monthly/klines/ETHUSDT/1mo/ETHUSDT-1mo-2024-02.zip"
    t = DumpFile("coinm", "trades", "BTCUSD_PERP", "monthly", date(2023, 12, 1))
    assert t.path == "data/futures/cm/monthly/trades/BTCUSD_PERP/BTCUSD_PERP-trades-2023-12.zip"
    for f in (agg, k, t):
        assert parse_path(f.path) == f
    assert parse_path("data/spot/daily/aggTrades/BTCUSDT/ETHUSDT-aggTrades-2024-01-02.zip") is None
    assert (
        parse_path("data/spot/monthly/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2024-01-02.zip") is None
    )


def test_auto_takes_whole_months_monthly_and_the_rest_daily() -> None:
    got = plan("spot", "klines", ["BTCUSDT"], date(2024, 1, 30), date(2024, 3, 2),
               intervals=["1m", "1w"])  # fmt: skip
    names = [p.file.name for p in got]
    assert names == [
        "BTCUSDT-1m-2024-01-30.zip", "BTCUSDT-1m-2024-01-31.zip", "BTCUSDT-1m-2024-02.zip",
        "BTCUSDT-1m-2024-03-01.zip", "BTCUSDT-1m-2024-03-02.zip",
        # weeks are monthly only: every month the range touches
        "BTCUSDT-1w-2024-01.zip", "BTCUSDT-1w-2024-02.zip", "BTCUSDT-1w-2024-03.zip",
    ]  # fmt: skip
    feb = got[2]
    assert [d.name for d in feb.fallback][::28] == [
        "BTCUSDT-1m-2024-02-01.zip",
        "BTCUSDT-1m-2024-02-29.zip",
    ]
    assert all(p.fallback == () for p in got if p is not feb)
    daily = plan(
        "spot", "aggTrades", ["A", "B"], date(2024, 2, 1), date(2024, 2, 29), periods="daily"
    )
    assert len(daily) == 58 and daily[0] == Planned(
        DumpFile("spot", "aggTrades", "A", "daily", date(2024, 2, 1))
    )
    monthly = plan("spot", "trades", ["A"], date(2024, 2, 20), date(2024, 3, 1), periods="monthly")
    assert [p.file.stamp for p in monthly] == ["2024-02", "2024-03"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"intervals": ["1w"], "periods": "daily"}, "published monthly only"),
        ({"intervals": None}, "klines need an interval"),
        ({"intervals": ["7m"]}, "interval '7m'"),
        ({"intervals": ["1m"], "end": date(2023, 1, 1)}, "is after end"),
        ({"intervals": ["1m"], "symbols": [f"S{i}" for i in range(2000)], "end": date(2024, 12, 31),
          "periods": "daily"},
         "more than 100,000 files"),
    ],
)  # fmt: skip
def test_impossible_requests_are_refused(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"symbols": ["BTCUSDT"], "end": date(2024, 1, 31)} | kwargs
    with pytest.raises(LayoutError, match=message):
        plan("spot", "klines", args.pop("symbols"), date(2024, 1, 1), args.pop("end"), **args)


def test_checksum_text_must_name_the_file() -> None:
    digest = "ab" * 32
    assert parse_checksum(f"{digest.upper()}  X.zip", "X.zip") == digest
    with pytest.raises(kline_rs.KlineError, match="names another file"):
        parse_checksum(f"{digest}  Y.zip", "X.zip")
    with pytest.raises(kline_rs.KlineError, match="not '<sha256>  <name>'"):
        parse_checksum("<html>", "X.zip")


def test_command_line_bounds(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    base = ["download", "--kind", "aggTrades", "--symbols", "BTCUSDT", "--out", str(tmp_path)]
    for bad in (["--jobs", "17"], ["--jobs", "0"], ["--start", "2024-13-01"], ["--retries", "99"]):
        extra = bad if bad[0] == "--start" else [*bad, "--start", "2024-01-01"]
        with pytest.raises(SystemExit) as stop:
            main([*base, *extra])
        assert stop.value.code == 2
    assert "expected a whole number in 1..16" in capsys.readouterr().err
    assert main([*base, "--start", "2024-01-01", "--interval", "1m"]) == 2
    assert "have no interval" in capsys.readouterr().err
