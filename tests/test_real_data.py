"""Replay and roll-up against Binance's own files, byte for byte."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import kline_rs


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
