"""The streaming engine from Python: equivalence with replay, lifecycle, bad input, asyncio."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from pathlib import Path

import kline_rs
import numpy as np
import pytest
from kline_rs.fake.simulate import generate_day

E8 = 10**8


def csv_line(row: np.void) -> str:
    """A closed kline row in Binance's kline CSV form (quote volumes truncated to 8 dp)."""
    f = kline_rs.format_fixed8
    return ",".join(
        [
            str(row["open_time"]),
            f(int(row["open"])),
            f(int(row["high"])),
            f(int(row["low"])),
            f(int(row["close"])),
            f(row["volume"]),
            str(row["close_time"]),
            f(row["quote_volume"] // E8),
            str(row["trades"]),
            f(row["taker_buy_volume"]),
            f(row["taker_buy_quote_volume"] // E8),
            "0",
        ]
    )


def drain(engine: kline_rs.Engine) -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = {}
    while True:
        batch = engine.poll_klines(10_000)
        if len(batch.klines) == 0:
            return out
        for row in batch.klines:
            out.setdefault((row["symbol"], row["interval"]), []).append(csv_line(row))
        assert engine.ack(batch.token)


def ws_frame(symbol: str, row: list[str]) -> bytes:
    a, p, q, f, last, t, m = row[:7]
    data = {
        "e": "aggTrade",
        "E": int(t),
        "s": symbol,
        "a": int(a),
        "p": p,
        "q": q,
        "f": int(f),
        "l": int(last),
        "T": int(t),
        "m": m == "True",
        "M": True,
    }
    return json.dumps({"stream": f"{symbol.lower()}@aggTrade", "data": data}).encode()


@pytest.mark.parametrize("partitions", [1, 2, 3, 4])
def test_streaming_equals_replay_on_a_generated_day(tmp_path: Path, partitions: int) -> None:
    rng = random.Random(partitions)
    dumps = generate_day(tmp_path / "in", symbols=6, trades=30_000, seed=partitions)
    intervals = ["1m", "5m", "1h"]
    kline_rs.replay(dumps, tmp_path / "out", intervals)
    frames: dict[str, list[bytes]] = {}
    for path in dumps:
        symbol = path.name.split("-")[0]
        rows = [line.split(",") for line in path.read_text().splitlines()]
        frames[symbol] = [ws_frame(symbol, r) for r in rows]
    engine = kline_rs.Engine(
        intervals, partitions=partitions, clock=kline_rs.ManualClock(0), max_ahead_ms=None
    )
    with engine:
        # Symbols join at random moments; each one's frames go in random-sized batches.
        pending = {s: 0 for s in frames}
        added: set[str] = set()
        while pending:
            symbol = rng.choice(sorted(pending))
            if symbol not in added:
                engine.add_symbol(symbol)
                added.add(symbol)
            start = pending[symbol]
            stop = min(len(frames[symbol]), start + rng.randint(1, 3000))
            assert engine.push_many(frames[symbol][start:stop]) == stop - start
            if stop == len(frames[symbol]):
                del pending[symbol]
            else:
                pending[symbol] = stop
        for symbol in frames:
            engine.remove_symbol(symbol)
        got = drain(engine)
    for symbol in frames:
        for interval in intervals:
            want = (tmp_path / "out" / f"{symbol}-{interval}.csv").read_text().splitlines()
            assert got[(symbol, interval)] == want, (symbol, interval)


def test_real_websocket_captures_give_the_klines_of_replay(
    binance_data: Path, tmp_path: Path
) -> None:
    """Every aggTrade frame of the four captures through push_raw, against replay of the same."""
    captures = ["BINANCE.ws.1.0", "BINANCE_US.ws.1.0", "BINANCE_FUTURES.ws.1.0"]
    captures.append("BINANCE_DELIVERY.ws.1.0")
    frames: list[bytes] = []
    rows: dict[str, list[str]] = {}
    for name in captures:
        for line in (binance_data / "cryptofeed" / name).read_text().splitlines()[1:]:
            if not line:
                continue
            frame = line.split(": ", 1)[1]
            frames.append(frame.encode())
            data = json.loads(frame)["data"]
            if data.get("e") == "aggTrade":
                d = data
                row = f"{d['a']},{d['p']},{d['q']},{d['f']},{d['l']},{d['T']},{d['m']}"
                rows.setdefault(d["s"], []).append(row)
    (tmp_path / "in").mkdir()
    for symbol, lines in rows.items():
        (tmp_path / "in" / f"{symbol}-aggTrades-2021-07-22.csv").write_text("\n".join(lines))
    kline_rs.replay(tmp_path / "in", tmp_path / "out", ["1m", "5m"])
    with kline_rs.Engine(
        ["1m", "5m"], partitions=2, clock=kline_rs.ManualClock(0), max_ahead_ms=None
    ) as engine:
        engine.add_symbols(sorted(rows))
        report = engine.push_raw(frames)
        assert report.consumed == len(frames)
        assert report.trades == sum(len(v) for v in rows.values())
        assert report.malformed == 0
        assert report.other_events == len(frames) - report.trades
        for symbol in rows:
            engine.remove_symbol(symbol)
        got = drain(engine)
    for symbol in rows:
        for interval in ["1m", "5m"]:
            want = (tmp_path / "out" / f"{symbol}-{interval}.csv").read_text().splitlines()
            assert got[(symbol, interval)] == want


def test_bad_input_is_counted_with_its_reason() -> None:
    good = {"e": "aggTrade", "s": "BTCUSDT", "a": 1, "p": "1.0", "q": "2.0", "f": 1, "l": 1}
    good |= {"T": 1_600_000_000_000, "m": False}
    bad = [
        b"",
        b"not json",
        b"[1,2,3]",
        json.dumps({**good, "a": "1"}).encode(),
        json.dumps({**good, "p": "-"}).encode(),
        json.dumps({**good, "q": "1e5"}).encode(),
        json.dumps({k: v for k, v in good.items() if k != "T"}).encode(),
        json.dumps({**good, "p": "1.123456789"}).encode(),
        b'{"e":"aggTrade","p":"' + b"9" * 100_000 + b'"}',
    ]
    with kline_rs.Engine(
        ["1m"], partitions=1, clock=kline_rs.ManualClock(0), max_ahead_ms=None
    ) as engine:
        engine.add_symbol("BTCUSDT")
        report = engine.push_raw(bad)
        assert report.malformed == len(bad)
        assert report.consumed == len(bad)
        assert any("more than 8 decimals" in e for e in report.errors)
        absurd = [
            json.dumps({**good, "a": 2, "p": "0", "q": "0", "f": -1, "l": -1}).encode(),
            json.dumps({**good, "a": 3, "p": "-5"}).encode(),
            json.dumps({**good, "a": 4, "l": 0}).encode(),
            json.dumps(good).encode(),
            json.dumps(good).encode(),
            json.dumps({**good, "s": "NOPE"}).encode(),
        ]
        report = engine.push_raw(absurd)
        assert report.unknown_symbol == 1
        engine.sync()
        (part,) = engine.metrics()["partitions"]
        assert (part["placeholders"], part["invalid"], part["trades"]) == (1, 2, 1)
        assert part["duplicates"] == 1
        assert engine.metrics()["malformed"] == len(bad)


def test_numpy_batches_and_the_async_closed_stream() -> None:
    clock = kline_rs.ManualClock(1_600_000_000_000)
    t0 = 1_600_000_000_000 - 1_600_000_000_000 % 60_000
    n = 1000
    times = t0 + np.arange(n, dtype=np.int64) * 50  # 50 s of trades
    ids = np.arange(1, n + 1, dtype=np.int64)

    async def main() -> list[kline_rs.ClosedKline]:
        with kline_rs.Engine(
            ["1m"], partitions=2, clock=clock, max_ahead_ms=None, grace=100
        ) as engine:
            engine.add_symbol("SOLUSDT")
            price = np.full(n, 30 * E8, dtype=np.int64)
            qty = np.full(n, E8, dtype=np.int64)
            maker = ids % 2 == 0
            engine.push_trades(
                "SOLUSDT",
                kline_rs.trades(
                    agg_id=ids,
                    price=price,
                    qty=qty,
                    first_id=ids,
                    last_id=ids,
                    time=times,
                    buyer_is_maker=maker,
                ),
            )
            seen: list[kline_rs.ClosedKline] = []

            async def consume() -> None:
                async with contextlib.aclosing(engine.klines()) as stream:
                    async for k in stream:
                        seen.append(k)
                        if len(seen) == 2:
                            return

            task = asyncio.create_task(consume())
            await asyncio.sleep(0.05)
            assert not seen  # nothing closed yet: the consumer waits on the fd
            clock.set(t0 + 120_000 + 100)
            engine.sync()
            await asyncio.wait_for(task, 5)
            # Each kline is handed out once: what the consumer took is acknowledged as it
            # leaves (the rest, had there been any, would go back to the engine first).
            assert engine.metrics()["unacked"] == 0
            assert engine.poll_klines().klines.size == 0
            return seen

    seen = asyncio.run(main())
    assert [k.open_time for k in seen] == [t0, t0 + 60_000]
    assert sum(k.trades for k in seen) == 1000
    assert seen[0].close == 30 * E8 and seen[0].symbol == "SOLUSDT"


def test_unknown_symbols_and_removal() -> None:
    with kline_rs.Engine(
        ["1m", "1h"], partitions=2, clock=kline_rs.ManualClock(0), max_ahead_ms=None
    ) as engine:
        engine.add_symbols(["AAA", "BBB"])
        assert engine.symbols() == ["AAA", "BBB"]
        assert engine.read("BBB")["state"].tolist() == ["empty", "empty"]
        one = np.ones(1, dtype=np.int64)
        engine.push_trades(
            "BBB",
            kline_rs.trades(
                agg_id=one,
                price=one * 5,
                qty=one,
                first_id=one,
                last_id=one,
                time=one * 60_000,
                buyer_is_maker=one == 0,
            ),
        )
        seen = engine.read("BBB")
        assert seen["state"].tolist() == ["open", "open"]
        assert seen["open_time"].tolist() == [60_000, 0]
        assert seen["close"].tolist() == [5, 5]
        engine.remove_symbol("AAA")
        with pytest.raises(kline_rs.UnknownSymbolError):
            engine.remove_symbol("AAA")
        with pytest.raises(kline_rs.UnknownSymbolError):
            engine.push_trades(
                "AAA",
                kline_rs.trades(
                    agg_id=one,
                    price=one,
                    qty=one,
                    first_id=one,
                    last_id=one,
                    time=one,
                    buyer_is_maker=np.zeros(1, dtype=bool),
                ),
            )
        with pytest.raises(ValueError, match="differ in length"):
            engine.push_trades(
                "BBB",
                kline_rs.trades(
                    agg_id=one,
                    price=one,
                    qty=one,
                    first_id=one,
                    last_id=one,
                    time=one,
                    buyer_is_maker=np.zeros(2, dtype=bool),
                ),
            )
    assert engine.closed
    with pytest.raises(kline_rs.EngineError):
        engine.add_symbol("CCC")


def test_snapshot_restore_and_supervision_from_python(tmp_path: Path) -> None:
    dumps = generate_day(tmp_path / "in", symbols=2, trades=4_000, seed=3)
    kline_rs.replay(dumps, tmp_path / "out", ["1m", "1h"])
    frames = {
        p.name.split("-")[0]: [
            ws_frame(p.name.split("-")[0], r.split(",")) for r in p.read_text().splitlines()
        ]
        for p in dumps
    }
    got: dict[tuple[str, str], list[str]] = {}
    with kline_rs.Engine(
        ["1m", "1h"], partitions=2, clock=kline_rs.ManualClock(0), max_ahead_ms=None
    ) as first:
        first.add_symbols(sorted(frames))
        for fs in frames.values():
            first.push_many(fs[: len(fs) // 2])
        snap = first.snapshot()
        assert set(snap.checkpoints) == set(frames)
        assert set(snap.slots["state"]) == {"open"}
        assert first.snapshot().slots.tolist() == snap.slots.tolist()  # not acked: again
        assert not first.ack_snapshot(snap.token)  # superseded by the snapshot just taken
        snap = first.snapshot()
        assert first.ack_snapshot(snap.token)
        got = drain(first)
    with kline_rs.Engine(
        ["1m", "1h"], partitions=1, clock=kline_rs.ManualClock(0), max_ahead_ms=None
    ) as second:
        second.add_symbols(sorted(frames))
        assert second.restore(snap.slots, snap.checkpoints) == len(snap.slots) + len(frames)
        for fs in frames.values():
            second.push_many(fs)  # from the start: what the checkpoint covers is duplicate
        second.inject_panic(sorted(frames)[0])
        second.sync()
        errors = second.take_errors()
        assert len(errors) == 1 and "restored to its last acknowledged snapshot" in errors[0]
        for symbol, fs in frames.items():
            second.push_many(fs)  # replay after the panic: exact again
            second.remove_symbol(symbol)
        for key, lines in drain(second).items():
            got.setdefault(key, []).extend(lines)
    for symbol in frames:
        for interval in ["1m", "1h"]:
            want = (tmp_path / "out" / f"{symbol}-{interval}.csv").read_text().splitlines()
            # Closed klines may come twice (idempotent upsert by open time): keep the last.
            by_open = {line.split(",")[0]: line for line in got[(symbol, interval)]}
            assert list(by_open.values()) == want


def test_feed_down_marks_gap_and_backfill_replaces_it_exactly(tmp_path: Path) -> None:
    (dump,) = generate_day(tmp_path / "in", symbols=1, trades=3_000, seed=5)
    kline_rs.replay(dump, tmp_path / "out", ["1m"])
    want = (tmp_path / "out" / f"{dump.name.split('-')[0]}-1m.csv").read_text().splitlines()
    symbol = dump.name.split("-")[0]
    cols = np.loadtxt(dump, delimiter=",", usecols=(0, 3, 4, 5), dtype=np.int64)
    text = [line.split(",") for line in dump.read_text().splitlines()]
    price = np.array([kline_rs.parse_fixed8(r[1]) for r in text], dtype=np.int64)
    qty = np.array([kline_rs.parse_fixed8(r[2]) for r in text], dtype=np.int64)
    maker = np.array([r[6] == "True" for r in text])
    ids, first, last, times = cols.T.copy()

    def part(sl: slice) -> np.ndarray:  # type: ignore[type-arg]
        return kline_rs.trades(
            agg_id=ids[sl], price=price[sl], qty=qty[sl], first_id=first[sl],
            last_id=last[sl], time=times[sl], buyer_is_maker=maker[sl],
        )  # fmt: skip

    clock = kline_rs.ManualClock(int(times[0]))
    table: dict[str, tuple[int, str, bool]] = {}
    with kline_rs.Engine(["1m"], partitions=1, clock=clock, max_ahead_ms=None) as engine:
        engine.add_symbol(symbol)
        engine.push_trades(symbol, part(slice(0, 1000)))
        engine.feed_down(symbol, int(times[999]))
        engine.push_trades(symbol, part(slice(2000, 3000)))  # live again, ids jumped
        clock.set(int(times[1999]))
        engine.sync()
        assert engine.backfill(symbol, part(slice(900, 2100)))  # overlaps both sides
        engine.feed_up(symbol)
        engine.remove_symbol(symbol)
        while len((batch := engine.poll_klines()).klines):
            for row in batch.klines:
                key = str(row["open_time"])
                if key not in table or row["revision"] >= table[key][0]:
                    table[key] = (int(row["revision"]), csv_line(row), bool(row["gap"]))
            engine.ack(batch.token)
    assert any(rev == 1 for rev, _, _ in table.values())
    assert not any(gap for _, _, gap in table.values())
    assert [table[k][1] for k in sorted(table, key=int)] == want


def test_late_policies_from_python() -> None:
    t0 = 1_600_000_020_000 - 1_600_000_020_000 % 60_000
    one = np.ones(1, dtype=np.int64)

    def push(engine: kline_rs.Engine, i: int, t: int, price: int) -> None:
        a = one * i
        engine.push_trades(
            "X",
            kline_rs.trades(
                agg_id=a,
                price=one * price,
                qty=one,
                first_id=a,
                last_id=a,
                time=one * t,
                buyer_is_maker=np.zeros(1, dtype=bool),
            ),
        )

    for policy, amended in (("drop", 0), ("amend", 1)):
        engine = kline_rs.Engine(
            ["1m"], partitions=1, clock=kline_rs.ManualClock(0), max_ahead_ms=None,
            late_policy=policy,
            allowed_lateness=10_000,
        )  # fmt: skip
        with engine:
            engine.add_symbol("X")
            push(engine, 1, t0 + 5_000, 10)
            push(engine, 2, t0 + 61_000, 11)
            push(engine, 3, t0 + 59_000, 7)  # late by 2 s
            engine.sync()
            part = engine.metrics()["partitions"][0]
            assert (part["late"], part["late_amended"]) == (1, amended)
            assert len(engine.poll_late()) == 1 - amended
            revisions = engine.poll_klines().klines["revision"].tolist()
            assert revisions == [0, 1][: 1 + amended]
    with pytest.raises(ValueError, match="late_policy"):
        kline_rs.Engine(["1m"], late_policy="keep")
