"""Operating ``kline-rs run`` (issue 15): a TOML config file, logs as JSON lines, Prometheus
metrics and /healthz, the end-of-run summary, and the demo showing a repair (gap, then rev 1).

Real parts: ``kline-rs`` in a subprocess against the fake exchange on loopback, scraped over
HTTP while it runs; the scrape is read with prometheus_client's own parser.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from kline_rs import cli
from kline_rs.fake import FakeExchange, SimulatedMarket
from kline_rs.live.demo import run_demo
from kline_rs.operate.config import parse_args
from prometheus_client.parser import text_string_to_metric_families


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: Sample name → sorted labels → value.
Scrape = dict[str, dict[tuple[tuple[str, str], ...], float]]


def scrape(text: str) -> Scrape:
    """The samples of a scrape; every family must have HELP and TYPE."""
    out: Scrape = {}
    for family in text_string_to_metric_families(text):
        assert family.name.startswith("kline_rs_"), family.name
        assert family.documentation, f"{family.name} has no HELP"
        assert family.type in ("counter", "gauge", "summary"), family.type
        exposed = family.name + ("_total" if family.type == "counter" else "")
        assert f"# TYPE {exposed} {family.type}\n" in text
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def total(samples: Scrape, name: str) -> float:
    return sum(samples[name].values())


# -- a live run of the real CLI ------------------------------------------------------------------


def test_run_from_a_config_file_serves_metrics_and_healthz_and_logs_json(tmp_path: Path) -> None:
    port = free_port()

    async def scenario() -> tuple[int, str, str, list[Scrape], list[int]]:
        # Market time runs 10x real time: the engine's wall clock is behind the exchange's
        # (what made the status line's lag negative).
        market = SimulatedMarket(["BTCUSDT", "ETHUSDT", "SOLUSDT"], speed=10.0)
        async with FakeExchange(market) as fx:
            config = tmp_path / "kline.toml"
            config.write_text(
                "# kline-rs run --config kline.toml\n"
                'venue = "spot"\n'
                'symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]\n'
                'intervals = ["1m", "5m"]\n'
                f'ws-url = "{fx.ws_url}"\n'
                f'rest_url = "{fx.rest_url}"\n'
                f'metrics = "127.0.0.1:{port}"\n'
                'log-level = "info"\n'
                'log-format = "json"\n'
                "duration = 5.0\n"  # overridden below
                "partitions = 2\n"
                'format = "binance-ws"\n'
            )
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "kline_rs.cli", "run", "--config", str(config),
                "--symbols", "BTCUSDT,ETHUSDT", "--duration", "14",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            scrapes: list[Scrape] = []
            health: list[int] = []
            url = f"http://127.0.0.1:{port}"
            try:
                async with aiohttp.ClientSession() as http:
                    deadline = time.monotonic() + 12
                    while time.monotonic() < deadline and 200 not in health:
                        try:
                            async with http.get(f"{url}/healthz") as r:
                                health.append(r.status)
                                body = await r.json()
                                assert set(body) == {"ok", "reason"}
                                assert body["ok"] is (r.status == 200), body
                        except aiohttp.ClientConnectionError:
                            pass  # not listening yet
                        await asyncio.sleep(0.2)
                    for _ in range(2):
                        await asyncio.sleep(1.5)
                        async with http.get(f"{url}/metrics") as r:
                            assert r.status == 200
                            assert r.headers["Content-Type"].startswith("text/plain")
                            scrapes.append(scrape(await r.text()))
                out, err = await asyncio.wait_for(proc.communicate(), 40)
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
            assert proc.returncode is not None
            return proc.returncode, out.decode(), err.decode(), scrapes, health

    code, out, err, scrapes, health = asyncio.run(scenario())
    assert code == 0, err[-2000:]
    assert 200 in health, health
    first, second = scrapes
    # The command line's --symbols overrides the file's three.
    assert first["kline_rs_symbols_followed"] == {(("venue", "spot"),): 2.0}
    # Counters per partition, labelled; trades grow between two scrapes.
    trades = first["kline_rs_engine_trades_total"]
    assert {dict(k)["partition"] for k in trades} == {"0", "1"}
    assert all(dict(k)["venue"] == "spot" for k in trades)
    assert total(second, "kline_rs_engine_trades_total") > total(
        first, "kline_rs_engine_trades_total"
    )
    assert total(second, "kline_rs_feed_frames_total") >= total(
        first, "kline_rs_engine_trades_total"
    )
    assert first["kline_rs_caught_up"] == {(("venue", "spot"),): 1.0}
    assert total(first, "kline_rs_feed_connections") >= 1
    assert total(first, "kline_rs_rest_weight_limit") > 0
    # Reported; its value is the current weight minute's, and at 10x market speed that minute
    # turns over every 6 s, so a scrape may fall into a fresh one (0).
    assert total(first, "kline_rs_rest_weight_used") >= 0
    assert "kline_rs_rest_weight_used" in first and "kline_rs_rest_weight_used" in second
    for name in ("kline_rs_engine_duplicates_total", "kline_rs_engine_late_total",
                 "kline_rs_engine_ring_depth", "kline_rs_outbox_unacked",
                 "kline_rs_feed_reconnects_total", "kline_rs_gaps_repaired_total"):  # fmt: skip
        assert name in first, name
    # The lag to the exchange is measured on the exchange's clock: never negative, small.
    lags = second["kline_rs_exchange_lag_seconds"].values()
    assert lags and all(0 <= lag < 30 for lag in lags), lags
    # Without --db the klines come out on stdout, here (the file's `format`) as Binance's
    # websocket kline events, read by Binance's field names.
    events = [json.loads(line) for line in out.splitlines()]
    assert events and all(e["e"] == "kline" and e["k"]["x"] is True for e in events)
    assert {e["s"] for e in events} <= {"BTCUSDT", "ETHUSDT"}
    binance_keys = set("tTsifLochlvnxqVQB")
    assert all(set(e["k"]) == binance_keys and e["k"]["s"] == e["s"] for e in events)
    assert {e["k"]["i"] for e in events} <= {"1m", "5m"}
    for e in events:
        k = e["k"]
        assert k["T"] == k["t"] + (60_000 if k["i"] == "1m" else 300_000) - 1
        assert float(k["l"]) <= min(float(k["o"]), float(k["c"])) <= float(k["h"])
    # Logs: one JSON object per line, with the summary's counts as fields at the end.
    logs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert logs and all({"time", "level", "logger", "message"} <= set(x) for x in logs)
    ended = [x for x in logs if x["message"] == "run ended"]
    assert len(ended) == 1 and ended[0]["level"] == "info" and ended[0]["logger"] == "kline_rs.run"
    assert ended[0]["frames"] > 0 and ended[0]["handed_on"] == len(events) > 0
    summary = err.splitlines()[-1]
    assert summary.startswith("kline-rs: ran ") and " frames, " in summary, summary


# -- the config file: precedence and errors ------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kline.toml"
    path.write_text(text)
    return path


def test_the_command_line_overrides_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'venue = "usdm"\nquote = "USDT"\nintervals = "1m,1h"\nflush_every = 2\nprint = true\n'
        'db = "k.sqlite"\nlookback = "2h"\n',
    )
    args = parse_args(cli._parser(), ["run", "--config", str(path)])
    assert (args.venue, args.quote, args.symbols, args.intervals) == (
        "usdm",
        "USDT",
        None,
        ["1m", "1h"],
    )
    assert (args.flush_every, args.print, args.db, args.lookback) == (
        2.0,
        True,
        "k.sqlite",
        7_200_000,
    )
    cmd = ["run", "--config", str(path), "--venue", "spot", "--symbols", "btcusdt"]
    args = parse_args(cli._parser(), [*cmd, "--intervals", "5m", "--lookback", "1h"])
    assert (args.venue, args.quote, args.symbols) == ("spot", None, frozenset({"BTCUSDT"}))
    assert (args.intervals, args.lookback, args.db) == (["5m"], 3_600_000, "k.sqlite")
    # Without --config nothing changes: a selection is still required.
    with pytest.raises(SystemExit):
        parse_args(cli._parser(), ["run"])


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('symbols = ["BTCUSDT"]\nvenu = "spot"\n', "unknown key 'venu'; the known ones: "),
        ('symbols = ["BTCUSDT"]\npartitions = "four"\n',
         "partitions: expected an integer, got a string ('four')"),
        ('symbols = ["BTCUSDT"]\nprint = "yes"\n', "print: expected true or false"),
        ('symbols = ["BTCUSDT"]\nintervals = ["1m", 5]\n', "intervals: expected a list of strings"),
        ('symbols = ["BTCUSDT"]\nintervals = ["7x"]\n', "intervals: "),
        ('symbols = ["BTCUSDT"]\nvenue = "spott"\n', "venue: expected one of 'spot', 'usdm'"),
        ('symbols = ["BTCUSDT"]\nlookback = 7200\n', "lookback: expected a string"),
        ('symbols = ["BTCUSDT"]\nmetrics = "localhost"\n', "'localhost': expected HOST:PORT"),
        ('symbols = ["BTCUSDT"]\nquote = "USDT"\n', "symbols and quote: give one of ['symbols'"),
        ("symbols = [\n", "not valid TOML"),
    ],
)  # fmt: skip
def test_a_wrong_config_file_is_a_clear_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, says: str
) -> None:
    path = write(tmp_path, text)
    assert cli.main(["run", "--config", str(path), "--duration", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"kline-rs: error: config file {path}: "), err
    assert says in err, err
    if "unknown key" in says:  # the known ones are listed
        assert "store-wait" in err and "symbols" in err and "log-format" in err


def test_a_missing_config_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "config file" in capsys.readouterr().err


# -- the demo shows a repair ----------------------------------------------------------------------


def test_the_demo_prints_gap_klines_then_their_exact_replacements(tmp_path: Path) -> None:
    out = io.StringIO()
    db = str(tmp_path / "demo.sqlite")
    asyncio.run(run_demo(symbols=6, speed=60.0, duration=14.0, db=db, out=out))
    lines = out.getvalue().splitlines()
    gaps = {tuple(line.split()[:3]): i for i, line in enumerate(lines) if line.endswith(" gap")}
    replaced = [
        (key, i) for i, line in enumerate(lines) if line.endswith(" rev 1")
        for key in [tuple(line.split()[:3])] if key in gaps and gaps[key] < i
    ]  # fmt: skip
    assert gaps, "\n".join(lines)
    assert replaced, "\n".join(lines)
    assert any(line.startswith("# ran ") and " id gaps (" in line for line in lines)
