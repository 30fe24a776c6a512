"""Replay and roll-up against Binance's own files, byte for byte."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import kline_rs
import pytest


def official_1m(data: Path, day: int) -> list[str]:
    with zipfile.ZipFile(data / f"BTCUSDT-1m-2020-01-0{day}.zip") as z:
        return z.read(z.namelist()[0]).decode().splitlines()


def rest_lines(data: Path, name: str) -> list[str]:
    rows = json.loads((data / name).read_text())
    return [",".join(str(v) for v in row) for row in rows]


def test_replay_of_real_agg_trades_matches_official_minutes(
    binance_data: Path, tmp_path: Path
) -> None:
    # The REST aggTrades, written as a spot public-data dump (the format replay reads).
    trades = json.loads((binance_data / "btcusdt_aggtrades_202790190.json").read_text())
    dump = tmp_path / "in" / "BTCUSDT-aggTrades-2020-01-02.csv"
    dump.parent.mkdir()
    dump.write_text(
        "".join(
            f"{t['a']},{t['p']},{t['q']},{t['f']},{t['l']},{t['T']},{t['m']},{t['M']}\n"
            for t in trades
        )
    )
    summary = kline_rs.replay(dump, tmp_path / "out", ["1m", "5m"])
    assert summary.trades == 1000 and summary.bad_rows == 0
    got = (tmp_path / "out" / "BTCUSDT-1m.csv").read_text().splitlines()
    official = {line.split(",")[0]: line for line in official_1m(binance_data, 2)}
    assert len(got) == 9
    for line in got[1:-1]:  # first and last minutes are partial
        assert line == official[line.split(",")[0]]


def raw_trade_rows(trades: list[dict[str, object]]) -> list[tuple[int, str, str, int, bool]]:
    """The recorded aggTrades as the raw trades they stand for: an aggTrade of n raw trades
    (ids f..l, one price, one taker side) split into n trades, all but the first of the
    quantity step 0.000001, so every p·q still fits 8 decimals as the real trades' did."""
    rows = []
    for t in trades:
        f, n = int(t["f"]), int(t["l"]) - int(t["f"]) + 1  # type: ignore[call-overload]
        q = kline_rs.parse_fixed8(str(t["q"]))
        step = 100  # 0.000001 at 1e-8
        assert q > (n - 1) * step
        for i in range(n):
            qty = q - (n - 1) * step if i == 0 else step
            rows.append(
                (f + i, str(t["p"]), kline_rs.format_fixed8(qty), int(t["T"]), bool(t["m"]))
            )  # type: ignore[call-overload]
    return rows


@pytest.mark.parametrize("venue", ["spot", "futures"])
def test_replay_of_raw_trades_matches_official_minutes(
    venue: str, binance_data: Path, tmp_path: Path
) -> None:
    """Binance's trades dumps (spot: 7 columns, no header; futures: a header, 6 columns),
    built from the recorded aggTrades, give the official 1m lines byte for byte."""
    trades = json.loads((binance_data / "btcusdt_aggtrades_202790190.json").read_text())
    rows = raw_trade_rows(trades)
    assert len(rows) == 1024  # raw trade ids 222825297..222826320
    dump = tmp_path / "in" / "BTCUSDT-trades-2020-01-02.csv"
    dump.parent.mkdir()

    def quote(p: str, q: str) -> str:
        cut = kline_rs.parse_fixed8(p) * kline_rs.parse_fixed8(q) // 10**8
        return kline_rs.format_fixed8(cut)

    if venue == "spot":
        lines = [f"{i},{p},{q},{quote(p, q)},{t},{m},True" for i, p, q, t, m in rows]
    else:
        lines = ["id,price,qty,quote_qty,time,is_buyer_maker"]
        lines += [f"{i},{p},{q},{quote(p, q)},{t},{str(m).lower()}" for i, p, q, t, m in rows]
    dump.write_text("\n".join(lines) + "\n")
    summary = kline_rs.replay(dump, tmp_path / "out", ["1m"])
    assert summary.trades == 1024 and summary.bad_rows == 0 and summary.inexact == 0
    got = (tmp_path / "out" / "BTCUSDT-1m.csv").read_text().splitlines()
    official = {line.split(",")[0]: line for line in official_1m(binance_data, 2)}
    assert len(got) == 9
    for line in got[1:-1]:  # first and last minutes are partial
        assert line == official[line.split(",")[0]]


def test_aggtrades_and_trades_of_one_symbol_are_not_mixed(tmp_path: Path) -> None:
    (tmp_path / "BTCUSDT-aggTrades-2020-01-02.csv").write_text(
        "1,1.0,1.0,1,1,1577977823305,True,True\n"
    )
    (tmp_path / "BTCUSDT-trades-2020-01-02.csv").write_text(
        "1,1.0,1.0,1.0,1577977823305,True,True\n"
    )
    with pytest.raises(kline_rs.ReplayError, match="both aggTrades and trades"):
        kline_rs.replay(tmp_path, tmp_path / "out", ["1m"])


def test_official_1m_rolls_up_to_rest_5m_and_1d(binance_data: Path) -> None:
    minutes = [line for day in (1, 2, 3) for line in official_1m(binance_data, day)]
    assert kline_rs.rollup_csv(minutes, "5m")[:24] == rest_lines(
        binance_data, "btcusdt_klines_5m_rest.json"
    )
    days = {
        line.split(",")[0]: line for line in rest_lines(binance_data, "btcusdt_klines_1d_rest.json")
    }
    rolled = kline_rs.rollup_csv(minutes, "1d")
    assert len(rolled) == 3
    for line in rolled:
        assert line == days[line.split(",")[0]]


#: Real BTCUSDT, ETHUSDT and BNBUSDT rows around Binance's 2018-02-08 halt (provenance in
#: tests/fixtures/README.md: finom/static-klines @ fa298d63c3886d6a1b3540cb8c68a35a350872c4).
HALT = json.loads(
    (Path(__file__).resolve().parent / "fixtures" / "klines_halt_2018_02_08.json").read_text()
)["symbols"]
HALT_DAY = 1518048000000  # 2018-02-08 00:00 UTC
BTC_ANCHOR_3D = 1502928000000  # BTCUSDT's first 1d kline, 2017-08-17 (3d grid, same here)


def halt_lines(symbol: str, interval: str) -> list[str]:
    return [",".join(str(v) for v in row) for row in HALT[symbol][interval]]


@pytest.mark.parametrize("symbol", list(HALT))
def test_roll_up_over_the_2018_halt_is_binances_byte_for_byte(symbol: str) -> None:
    """Real 1h rows of 02-08 (one, cut short at the halt) and 02-09 (from the resume at 10:00)
    roll up to Binance's own 2h … 1d rows: no row for the halted span, and the rows holding
    the halt end at it (close_time 00:28:1x, not the grid's)."""
    hours = halt_lines(symbol, "1h")
    cut = hours[0].split(",")
    assert int(cut[0]) == HALT_DAY and int(cut[6]) < HALT_DAY + 3_600_000 - 1
    for interval in ["2h", "4h", "6h", "8h", "12h"]:
        assert kline_rs.rollup_csv(hours, interval) == halt_lines(symbol, interval), interval
    days = [line for line in halt_lines(symbol, "1d") if int(line.split(",")[0]) >= HALT_DAY]
    assert kline_rs.rollup_csv(hours, "1d") == days[:2]
    assert [line.split(",")[6] for line in days[:1]] == [cut[6]]


@pytest.mark.parametrize("symbol", list(HALT))
def test_a_coarser_period_in_which_trading_resumed_ends_on_its_grid(symbol: str) -> None:
    """1d rows 02-05 … 02-11 (02-08 cut short, trading back on 02-09) roll up to Binance's 3d
    row of 02-07 and 1w row of 02-05: both end where their last row ends, on the grid."""
    days = halt_lines(symbol, "1d")
    rolled_3d = kline_rs.rollup_csv(days, "3d", anchor_3d_ms=BTC_ANCHOR_3D)
    assert [line for line in rolled_3d if int(line.split(",")[0]) == HALT_DAY - 86_400_000] == (
        halt_lines(symbol, "3d")
    )
    assert kline_rs.rollup_csv(days, "1w") == halt_lines(symbol, "1w")


def test_partial_edge_periods_are_reported_by_what_the_input_covers(
    binance_data: Path, tmp_path: Path
) -> None:
    """A day's dump covers its day: its 1m and 1d periods are whole, its week is not. The same
    trades in a file whose name says no day cover only their own span: the edge minutes, the
    day and the week are partial. The CSV lines are the same either way."""
    trades = json.loads((binance_data / "btcusdt_aggtrades_202790190.json").read_text())
    rows = "".join(
        f"{t['a']},{t['p']},{t['q']},{t['f']},{t['l']},{t['T']},{t['m']},{t['M']}\n" for t in trades
    )
    day = tmp_path / "day" / "BTCUSDT-aggTrades-2020-01-02.csv"
    loose = tmp_path / "loose" / "recorded.csv"
    for path in (day, loose):
        path.parent.mkdir()
        path.write_text(rows)
    week = 1_577_664_000_000  # Monday 2019-12-30
    dated = kline_rs.replay(day, tmp_path / "a", ["1m", "1d", "1w"])
    assert dated.partial == [("BTCUSDT", "1w", week)]
    undated = kline_rs.replay(loose, tmp_path / "b", ["1m", "1d", "1w"], symbol="BTCUSDT")
    first, last = 1_577_977_800_000, 1_577_978_280_000  # 15:10 and 15:18
    assert undated.partial == [
        ("BTCUSDT", "1m", first),
        ("BTCUSDT", "1m", last),
        ("BTCUSDT", "1d", 1_577_923_200_000),
        ("BTCUSDT", "1w", week),
    ]
    assert "partial" in undated.describe()
    for interval in ("1m", "1d", "1w"):
        name = f"BTCUSDT-{interval}.csv"
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()
