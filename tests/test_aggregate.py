"""``kline_rs.aggregate`` on numpy arrays: exact scales, properties and edge cases."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import kline_rs
import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

T0 = 1_577_836_800_000  # 2020-01-01 00:00 UTC
SECOND = 1_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
E8 = 10**8
E16 = 10**16

Klines = npt.NDArray[np.void]
SETTINGS = settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class Trade(NamedTuple):
    """One aggTrade: price and quantity as mantissas at 1e-8."""

    a: int
    p: int
    q: int
    f: int
    l: int  # noqa: E741 - Binance's field name
    t: int
    m: bool


def columns(trades: Sequence[Trade]) -> dict[str, npt.NDArray[Any]]:
    return {
        "agg_id": np.array([t.a for t in trades], dtype=np.int64),
        "price": np.array([t.p for t in trades], dtype=np.int64),
        "qty": np.array([t.q for t in trades], dtype=np.int64),
        "first_id": np.array([t.f for t in trades], dtype=np.int64),
        "last_id": np.array([t.l for t in trades], dtype=np.int64),
        "time": np.array([t.t for t in trades], dtype=np.int64),
        "buyer_is_maker": np.array([t.m for t in trades], dtype=np.bool_),
    }


def run(
    trades: Sequence[Trade],
    intervals: Sequence[str],
    time_unit: str | None = None,
    covers: tuple[int, int] | None = None,
) -> kline_rs.Aggregation:
    c = columns(trades)
    return kline_rs.aggregate(
        agg_id=c["agg_id"],
        price=c["price"],
        qty=c["qty"],
        first_id=c["first_id"],
        last_id=c["last_id"],
        time=c["time"],
        buyer_is_maker=c["buyer_is_maker"],
        intervals=intervals,
        time_unit=time_unit,
        covers=covers,
    )


def rows(klines: Klines) -> list[tuple[Any, ...]]:
    """Plain Python tuples (ints), comparable with ==."""
    return [tuple(int(v) for v in r) for r in klines.tolist()]


def csv_lines(klines: Klines) -> list[str]:
    """Klines as Binance kline CSV lines; quote volumes truncated from 1e-16 to 1e-8."""
    f8 = kline_rs.format_fixed8
    return [
        ",".join(
            [
                str(int(k["open_time"])),
                f8(int(k["open"])),
                f8(int(k["high"])),
                f8(int(k["low"])),
                f8(int(k["close"])),
                f8(int(k["volume"])),
                str(int(k["close_time"])),
                f8(int(k["quote_volume"]) // E8),
                str(int(k["trades"])),
                f8(int(k["taker_buy_volume"])),
                f8(int(k["taker_buy_quote_volume"]) // E8),
                "0",
            ]
        )
        for k in klines
    ]


def pre_trade(i: int, t: int, p: int, q: int = E8, m: bool = False) -> Trade:
    return Trade(i, p, q, 2 * i, 2 * i + 1, t, m)


# --- hypothesis: streams of trades --------------------------------------------------------

#: Realistic spot grids: tick 0.01 and lot 0.001, so p·q never has more than 8 decimals and
#: Binance's printed (truncated) quote volume loses nothing when summed.
TICK, LOT = 10**6, 10**5
GAPS = st.one_of(
    st.integers(0, 3),  # shared ms
    st.integers(0, 2 * SECOND),
    st.integers(0, 10 * MINUTE),
    st.sampled_from([MINUTE, MINUTE - 1, HOUR, DAY]),
    st.integers(0, DAY),
)


@st.composite
def trade_streams(draw: st.DrawFn, max_size: int = 80) -> list[Trade]:
    steps = draw(
        st.lists(
            st.tuples(
                GAPS,
                st.integers(1, 10**7),  # price ticks: 0.01 .. 100000
                st.integers(0, 10**6),  # quantity lots: 0 .. 1000
                st.booleans(),
                st.integers(1, 5),  # raw trades in the aggTrade
            ),
            min_size=1,
            max_size=max_size,
        )
    )
    start_id = draw(st.integers(1, 10**12))
    start = T0 + draw(st.integers(0, DAY))
    trades, time, raw = [], start, draw(st.integers(0, 10**9))
    for i, (gap, ticks, lots, m, n) in enumerate(steps):
        time = min(time + gap, start + 3 * DAY)
        trades.append(Trade(start_id + i, ticks * TICK, lots * LOT, raw, raw + n - 1, time, m))
        raw += n
    return trades


@SETTINGS
@given(trade_streams())
def test_all_intervals_at_once_equal_each_interval_alone(trades: list[Trade]) -> None:
    intervals = ["1m", "5m", "1h", "1d", "1w", "1M"]
    together = run(trades, intervals)
    assert together.trades == len(trades)
    assert list(together.klines) == intervals
    for name in intervals:
        alone = run(trades, [name])
        assert rows(together.klines[name]) == rows(alone.klines[name]), name


@SETTINGS
@given(trade_streams(), st.lists(st.tuples(st.integers(0), st.integers(0)), max_size=40))
def test_inserted_duplicates_change_nothing_and_are_counted(
    trades: list[Trade], picks: list[tuple[int, int]]
) -> None:
    intervals = ["1m", "5m", "1h"]
    clean = run(trades, intervals)
    noisy = list(trades)
    for at_pick, back_pick in picks:
        at = at_pick % len(noisy)
        back = back_pick % (at + 1)
        noisy.insert(at + 1, noisy[back])  # a repeat of a row already seen
    again = run(noisy, intervals)
    assert again.duplicates == len(noisy) - len(trades)
    assert again.trades == clean.trades == len(trades)
    for name in intervals:
        assert rows(again.klines[name]) == rows(clean.klines[name]), name


@SETTINGS
@given(trade_streams())
def test_coarser_klines_equal_the_roll_up_of_the_1m_klines(trades: list[Trade]) -> None:
    coarse = ["5m", "15m", "1h", "4h", "1d"]
    result = run(trades, ["1m", *coarse])
    minutes = csv_lines(result.klines["1m"])
    for name in coarse:
        assert kline_rs.rollup_csv(minutes, name) == csv_lines(result.klines[name]), name


# --- the arrays that come back -------------------------------------------------------------


def test_dtype_and_exact_scales() -> None:
    p = kline_rs.parse_fixed8("7195.24")
    q = kline_rs.parse_fixed8("0.067023")
    assert (p, q) == (719_524_000_000, 6_702_300)
    trades = [
        Trade(1, p, q, 10, 10, T0 + 5, False),
        Trade(2, p + 1, 3 * q, 11, 13, T0 + 6, True),
        Trade(3, p - 7, q, 14, 14, T0 + MINUTE + 1, False),
    ]
    result = run(trades, ["1m", "1h"])
    k = result.klines["1m"]
    assert k.dtype == kline_rs.KLINE_DTYPE
    assert k["open"].dtype == np.int64 and k["trades"].dtype == np.int64
    assert k["volume"].dtype == np.dtype("O")
    assert list(k["open_time"]) == [T0, T0 + MINUTE]
    assert list(k["close_time"]) == [T0 + MINUTE - 1, T0 + 2 * MINUTE - 1]
    assert [int(v) for v in k["open"]] == [p, p - 7]
    assert [int(v) for v in k["high"]] == [p + 1, p - 7]
    assert [int(v) for v in k["close"]] == [p + 1, p - 7]
    assert list(k["volume"]) == [4 * q, q]
    quote = k["quote_volume"][0]
    assert type(quote) is int
    # At 1e-16, each trade's p·q truncated to 8 decimals (Binance spot's rule), then summed.
    cut = lambda v: v - v % E8  # noqa: E731
    assert (p * q) % E8 == 0 and ((p + 1) * 3 * q) % E8 != 0
    assert quote == p * q + cut((p + 1) * 3 * q)
    assert kline_rs.QUOTE_SCALE == E16 and kline_rs.PRICE_SCALE == kline_rs.VOLUME_SCALE == E8
    assert list(k["taker_buy_volume"]) == [q, q]
    assert list(k["taker_buy_quote_volume"]) == [p * q, cut((p - 7) * q)]
    assert list(k["trades"]) == [4, 1]
    assert list(k["first_trade_id"]) == [10, 14] and list(k["last_trade_id"]) == [13, 14]
    # Trade 2 holds three raw trades and its p·q passes 8 decimals: not known to be exact.
    assert list(k["inexact_trades"]) == [1, 0] and result.inexact == 1
    # The exact Σ p·q stays beside Binance's figure.
    assert list(k["quote_volume_exact"]) == [p * q + (p + 1) * 3 * q, (p - 7) * q]
    (hour,) = result.klines["1h"]
    assert int(hour["quote_volume"]) == sum(cut(t.p * t.q) for t in trades)
    assert hour["inexact_trades"] == 1
    assert result.trades == 3 and result.duplicates == result.placeholders == 0


def test_as_float_is_close_to_the_exact_values() -> None:
    p, q = kline_rs.parse_fixed8("62000.12"), kline_rs.parse_fixed8("0.00123")
    result = run([Trade(1, p, q, 1, 1, T0, False), Trade(2, p, q, 2, 2, T0 + 1, True)], ["1m"])
    floats = kline_rs.as_float(result.klines["1m"])
    assert floats["open"].dtype == np.float64
    assert floats["open"][0] == pytest.approx(62000.12)
    assert floats["volume"][0] == pytest.approx(0.00246)
    assert floats["quote_volume"][0] == pytest.approx(2 * 62000.12 * 0.00123)
    assert floats["taker_buy_quote_volume"][0] == pytest.approx(62000.12 * 0.00123)
    assert floats["trades"][0] == 2.0
    assert floats["open_time"][0] == T0 - T0 % 60_000 and floats["open_time"].dtype == np.int64
    assert floats["close_time"][0] == T0 - T0 % 60_000 + 59_999


# --- edge cases ----------------------------------------------------------------------------


def test_a_trade_on_the_minute_boundary_opens_the_new_minute() -> None:
    trades = [pre_trade(1, T0 + MINUTE - 1, 100), pre_trade(2, T0 + MINUTE, 200)]
    k = run(trades, ["1m"]).klines["1m"]
    assert list(k["open_time"]) == [T0, T0 + MINUTE]
    assert list(k["close"]) == [100, 200] and list(k["open"]) == [100, 200]


def test_same_ms_trades_across_a_boundary_keep_id_order() -> None:
    b = T0 + MINUTE
    trades = [
        pre_trade(1, b - 1, 10),
        pre_trade(2, b - 1, 15),
        pre_trade(3, b, 20),
        pre_trade(4, b, 30),
        pre_trade(5, b, 25),
    ]
    k = run(trades, ["1m"]).klines["1m"]
    assert [int(v) for v in k["close"]] == [15, 25]
    second = k[1]
    assert (second["open"], second["high"], second["low"], second["close"]) == (20, 30, 20, 25)
    assert (second["first_trade_id"], second["last_trade_id"], second["trades"]) == (6, 11, 6)


def test_empty_minutes_are_flat_at_the_previous_close() -> None:
    trades = [
        pre_trade(1, T0 + 5, 100),
        pre_trade(2, T0 + 7, 90),
        pre_trade(3, T0 + 4 * MINUTE, 95),
    ]
    k = run(trades, ["1m"]).klines["1m"]
    assert list(k["open_time"]) == [T0 + i * MINUTE for i in range(5)]
    for flat in k[1:4]:
        assert (flat["open"], flat["high"], flat["low"], flat["close"]) == (90, 90, 90, 90)
        assert flat["volume"] == flat["quote_volume"] == 0
        assert flat["taker_buy_volume"] == flat["taker_buy_quote_volume"] == 0
        assert flat["trades"] == 0
        assert flat["close_time"] == flat["open_time"] + MINUTE - 1
    assert csv_lines(k[1:2]) == [
        f"{T0 + MINUTE},0.00000090,0.00000090,0.00000090,0.00000090,0.00000000,"
        f"{T0 + 2 * MINUTE - 1},0.00000000,0,0.00000000,0.00000000,0"
    ]


def test_microsecond_times_are_detected_and_kept() -> None:
    t0 = T0 * 1000
    trades = [pre_trade(1, t0 + 59_999_999, 7), pre_trade(2, t0 + 60_000_000, 8)]
    detected = run(trades, ["1m", "1h"])
    k = detected.klines["1m"]
    assert list(k["open_time"]) == [t0, t0 + 60_000_000]
    assert list(k["close_time"]) == [t0 + 60_000_000 - 1, t0 + 120_000_000 - 1]
    assert list(detected.klines["1h"]["close_time"]) == [t0 + HOUR * 1000 - 1]
    explicit = run(trades, ["1m", "1h"], time_unit="us")
    for name in ("1m", "1h"):
        assert rows(explicit.klines[name]) == rows(detected.klines[name])
    # Read as ms the same numbers are 50 000 years ahead: refused, counted, never applied.
    as_ms = run(trades, ["1m"], time_unit="ms")
    assert len(as_ms.klines["1m"]) == 0
    assert (as_ms.trades, as_ms.implausible_unit) == (0, 2)
    # An ms trade in µs data likewise (it would sit in 1970).
    mixed = run([*trades, pre_trade(3, T0 + 61_000, 9)], ["1m"], time_unit="us")
    assert (mixed.trades, mixed.implausible_unit) == (2, 1)


def test_tiny_price_and_huge_quantities_stay_exact() -> None:
    qty = 9 * 10**18 - 1  # 89 999 999 999.99999999 coins, near the i64 mantissa limit
    n = 200
    trades = [Trade(i, 1, qty, i, i, T0 + i * 400_000, i % 2 == 0) for i in range(1, n + 1)]
    result = run(trades, ["1m", "1d"])
    (day,) = result.klines["1d"]
    assert day["volume"] == n * qty
    assert day["volume"] > 10**13 * E8  # more than 1e13 coins in a day
    # p = 1e-8: p·q at 1e-16 is q, each truncated to 8 decimals (Binance spot), then summed.
    assert day["quote_volume"] == n * (qty - qty % E8)
    assert day["taker_buy_volume"] == (n // 2) * qty
    assert kline_rs.format_fixed8(day["volume"]) == "17999999999999.99999800"
    assert kline_rs.format_quote(day["quote_volume"]) == "179999.99999800"
    minutes = result.klines["1m"]
    assert sum(int(v) for v in minutes["volume"]) == n * qty


def test_rollup_reads_back_volumes_past_the_i64_mantissa() -> None:
    # 89999999999 coins at 1e-8: p·q has 8 decimals, so truncated sums roll up exactly.
    qty = 9 * 10**18 - 10**8
    trades = [Trade(i, 1, qty, i, i, T0 + i * 10 * SECOND, False) for i in range(1, 31)]
    result = run(trades, ["1m", "5m"])
    minutes = csv_lines(result.klines["1m"])
    assert kline_rs.rollup_csv(minutes, "5m") == csv_lines(result.klines["5m"])


def test_skipped_trades_are_counted_by_reason() -> None:
    placeholder = Trade(3, 0, 0, -1, -1, T0 + 3, True)
    trades = [
        pre_trade(1, T0 + 1, 100),
        pre_trade(2, T0 + 2, 101),
        placeholder,
        pre_trade(2, T0 + 2, 101),
        pre_trade(4, T0 + 4, 102),
    ]
    result = run(trades, ["1m"])
    assert (result.trades, result.duplicates, result.placeholders) == (3, 1, 1)
    (k,) = result.klines["1m"]
    assert (k["open"], k["high"], k["low"], k["close"], k["trades"]) == (100, 102, 100, 102, 6)


def test_mismatched_array_lengths_raise_value_error() -> None:
    c = columns([pre_trade(1, T0, 100), pre_trade(2, T0 + 1, 100)])
    with pytest.raises(ValueError, match="length"):
        kline_rs.aggregate(
            agg_id=c["agg_id"],
            price=c["price"][:1],
            qty=c["qty"],
            first_id=c["first_id"],
            last_id=c["last_id"],
            time=c["time"],
            buyer_is_maker=c["buyer_is_maker"],
        )
    with pytest.raises(ValueError, match="length"):
        kline_rs.aggregate(
            agg_id=c["agg_id"],
            price=c["price"],
            qty=c["qty"],
            first_id=c["first_id"],
            last_id=c["last_id"],
            time=c["time"],
            buyer_is_maker=c["buyer_is_maker"][:1],
        )


def test_bad_time_unit_and_interval_raise_interval_error() -> None:
    trades = [pre_trade(1, T0, 100)]
    with pytest.raises(kline_rs.IntervalError, match="ns"):
        run(trades, ["1m"], time_unit="ns")
    with pytest.raises(kline_rs.IntervalError, match="2y"):
        run(trades, ["1m", "2y"])


# --- decimal text --------------------------------------------------------------------------


def test_parse_and_format_fixed8_round_trip() -> None:
    assert kline_rs.parse_fixed8("7195.24000000") == 719_524_000_000
    assert kline_rs.parse_fixed8("0.00000001") == 1
    assert kline_rs.parse_fixed8("1.000000000000") == E8
    assert kline_rs.parse_fixed8("92233720368.54775807") == 2**63 - 1
    assert kline_rs.format_fixed8(719_524_000_000) == "7195.24000000"
    assert kline_rs.format_fixed8(0) == "0.00000000"
    assert kline_rs.format_fixed8(2**70) == "11805916207174.11303424"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("1.123456789", "more than 8 decimals"),
        ("0.000000001", "more than 8 decimals"),
        ("1.2.3", "malformed"),
        ("1e5", "malformed"),
        ("abc", "malformed"),
        (" 1", "malformed"),
        ("1.", "malformed"),
        ("92233720368.54775808", "out of range"),
        ("99999999999999999999999", "out of range"),
    ],
)
def test_parse_fixed8_refuses_bad_text_by_name(text: str, why: str) -> None:
    with pytest.raises(kline_rs.DecimalError) as err:
        kline_rs.parse_fixed8(text)
    assert why in str(err.value)
    assert f'"{text}"' in str(err.value)
    assert isinstance(err.value, kline_rs.KlineError)


# --- fixed cases that pin rules a mutation audit found barely guarded (issue 11) ------------

SUNDAY_LAST_MS = 1_578_268_799_999  # Sunday 2020-01-05 23:59:59.999 UTC
MONDAY_0 = 1_578_268_800_000  # Monday 2020-01-06 00:00 UTC
PREVIOUS_MONDAY_0 = 1_577_664_000_000  # Monday 2019-12-30 00:00 UTC


def test_weeks_turn_at_monday_midnight_utc_and_local() -> None:
    """Binance's 1w opens Monday 00:00 (UTC, or local with timeZone): the last ms of Sunday
    and the first of Monday are in different weeks."""
    trades = [pre_trade(1, SUNDAY_LAST_MS, 10 * E8), pre_trade(2, MONDAY_0, 11 * E8)]
    weeks = run(trades, ["1w"]).klines["1w"]
    assert weeks["open_time"].tolist() == [PREVIOUS_MONDAY_0, MONDAY_0]
    assert weeks["close_time"].tolist() == [MONDAY_0 - 1, MONDAY_0 + 7 * 86_400_000 - 1]
    # At +08:00 the week turns at Sunday 16:00 UTC.
    eight = 8 * 3_600_000
    local = [pre_trade(1, MONDAY_0 - eight - 1, 10 * E8), pre_trade(2, MONDAY_0 - eight, 11 * E8)]
    c = columns(local)
    got = kline_rs.aggregate(
        agg_id=c["agg_id"], price=c["price"], qty=c["qty"], first_id=c["first_id"],
        last_id=c["last_id"], time=c["time"], buyer_is_maker=c["buyer_is_maker"],
        intervals=["1w"], tz_offset="+08:00",
    ).klines["1w"]  # fmt: skip
    assert got["open_time"].tolist() == [PREVIOUS_MONDAY_0 - eight, MONDAY_0 - eight]


def test_a_leading_flat_minute_never_sets_the_5m_open_high_or_low() -> None:
    """1m rows of one 5m bucket: a flat minute at the previous close (50), then trades. The
    5m kline opens at the first traded price; the flat row's 50 is neither its high nor low."""
    t = MONDAY_0
    flat = f"{t},50.00000000,50.00000000,50.00000000,50.00000000,0.00000000,{t + 59_999},0.00000000,0,0.00000000,0.00000000,0"  # noqa: E501
    traded = f"{t + 60_000},60.00000000,61.00000000,59.00000000,60.50000000,2.00000000,{t + 119_999},120.00000000,3,1.00000000,60.00000000,0"  # noqa: E501
    (five,) = kline_rs.rollup_csv([flat, traded], "5m")
    cols = five.split(",")
    assert cols[0] == str(t) and cols[6] == str(t + 299_999)
    assert cols[1:5] == ["60.00000000", "61.00000000", "59.00000000", "60.50000000"]
    assert cols[5] == "2.00000000" and cols[8] == "3"


def test_partial_edges_of_aggregate_follow_the_covered_span() -> None:
    trades = [
        Trade(1, E8, E8, 1, 1, T0 + 30_000, False),
        Trade(2, E8, E8, 2, 2, T0 + 150_000, True),
    ]
    by_trades = run(trades, ["1m", "1h"])
    assert by_trades.partial == {"1m": [T0, T0 + 2 * MINUTE], "1h": [T0]}
    whole_hour = run(trades, ["1m", "1h"], covers=(T0, T0 + 60 * MINUTE))
    assert whole_hour.partial == {"1m": [], "1h": []}
