"""In-memory aggregation: numpy trade arrays in, numpy structured arrays of klines out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from kline_rs import _core
from kline_rs.anchor import warn_epoch_3d

#: Binance's intervals, finest first. Custom fixed ones (``"10s"``, ``"7m"``) work too.
INTERVALS: tuple[str, ...] = (
    "1s", "1m", "3m", "5m", "15m", "30m",
    "1h", "2h", "4h", "6h", "8h", "12h",
    "1d", "3d", "1w", "1M",
)  # fmt: skip
#: Prices and ``volume`` / ``taker_buy_volume`` are integers at this scale (1e-8).
PRICE_SCALE = 10**8
VOLUME_SCALE = 10**8
#: ``quote_volume`` / ``taker_buy_quote_volume`` at 1e-16, summed by the ``quote_rule`` (spot:
#: each trade's p·q truncated to 8 decimals; COIN-M: base-asset volume, Σ contracts x size / p).
QUOTE_SCALE = 10**16

#: How a kline sums its trades' quote values: ``"per-trade"`` truncates each p·q to 8 decimals
#: then sums (Binance spot, Binance US, USD-M); ``"exact-sum"`` keeps the exact Σ p·q;
#: ``"contracts:<size>"`` (COIN-M, ``size`` the symbol's ``contractSize``) sums each trade's
#: base-asset value, contracts x size / price, at 1e-16. Checked by the core.
QuoteRule = str

#: One kline. Exact fields are integers with a known scale; the four volume sums can pass
#: 2**63 at their scale, so they are Python ints (dtype object), never floats.
KLINE_DTYPE = np.dtype(
    [
        ("open_time", "<i8"),
        ("close_time", "<i8"),
        ("open", "<i8"),
        ("high", "<i8"),
        ("low", "<i8"),
        ("close", "<i8"),
        ("volume", "O"),
        ("quote_volume", "O"),
        ("trades", "<i8"),
        ("taker_buy_volume", "O"),
        ("taker_buy_quote_volume", "O"),
        ("first_trade_id", "<i8"),
        ("last_trade_id", "<i8"),
        # aggTrades whose quote value may differ from Binance's (several raw trades, p·q past 8
        # decimals); 0: quote volumes exactly Binance's. Not a Binance column.
        ("inexact_trades", "<i8"),
        # The exact Σ p·q at 1e-16 whatever the quote rule (beside Binance's ``quote_volume``).
        # Not a Binance column; klines taken from Binance's own (REST) carry their print.
        ("quote_volume_exact", "O"),
    ]
)

_INT = "<i8"

#: One trade (an aggTrade, or a raw trade as an aggTrade of one): ``agg_id``, ``price``,
#: ``qty`` (int64 at 1e-8), ``first_id``, ``last_id``, ``time`` (ms or µs) and
#: ``buyer_is_maker``. Named fields, so a price cannot be passed where a quantity goes; the
#: core reads the array in place. Build one with :func:`trades`.
TRADE_DTYPE: np.dtype[np.void] = _core.trade_dtype()


def trades(
    *,
    agg_id: npt.ArrayLike,
    price: npt.ArrayLike,
    qty: npt.ArrayLike,
    first_id: npt.ArrayLike,
    last_id: npt.ArrayLike,
    time: npt.ArrayLike,
    buyer_is_maker: npt.ArrayLike,
) -> npt.NDArray[np.void]:
    """A :data:`TRADE_DTYPE` array from its columns, each given by name (one length for all;
    ``price``/``qty`` int64 mantissas at 1e-8, see :func:`kline_rs.parse_fixed8`)."""
    columns = {
        "agg_id": np.asarray(agg_id, dtype=_INT),
        "price": np.asarray(price, dtype=_INT),
        "qty": np.asarray(qty, dtype=_INT),
        "first_id": np.asarray(first_id, dtype=_INT),
        "last_id": np.asarray(last_id, dtype=_INT),
        "time": np.asarray(time, dtype=_INT),
        "buyer_is_maker": np.asarray(buyer_is_maker, dtype=np.bool_),
    }
    lengths = {name: c.shape for name, c in columns.items()}
    if len(set(lengths.values())) != 1 or any(len(shape) != 1 for shape in lengths.values()):
        sizes = ", ".join(f"{n} {s}" for n, s in lengths.items())
        raise ValueError(f"trade arrays differ in length (or are not 1-d): {sizes}")
    out = np.empty(len(columns["agg_id"]), dtype=TRADE_DTYPE)
    for name, column in columns.items():
        out[name] = column
    return out


@dataclass(frozen=True)
class Aggregation:
    """Klines per interval, and what happened to the trades."""

    klines: dict[str, npt.NDArray[np.void]]
    trades: int
    duplicates: int
    placeholders: int
    invalid: int
    late: int
    #: Refused for their time: outside the unit's range (µs in ms data, or the reverse).
    implausible_unit: int = 0
    #: Refused for a jump past the bound (kept for ``Aggregator`` callers that set one).
    implausible_jump: int = 0
    #: Refused for an aggTrade id further ahead than the market could trade in the time.
    implausible_id: int = 0
    #: Applied aggTrades whose quote value may differ from Binance's (see ``inexact_trades``).
    inexact: int = 0
    #: Per interval, open times of the first/last periods the input does not cover whole.
    partial: dict[str, list[int]] = field(default_factory=dict)


def structured(
    columns: dict[str, object], dtype: np.dtype[np.void] = KLINE_DTYPE
) -> npt.NDArray[np.void]:
    """Columns from the Rust core → a structured array of ``dtype``."""
    n = len(columns["open_time"])  # type: ignore[arg-type]
    out = np.empty(n, dtype=dtype)
    for name in dtype.names or ():
        out[name] = columns[name]
    return out


def aggregate(
    *,
    agg_id: npt.ArrayLike,
    price: npt.ArrayLike,
    qty: npt.ArrayLike,
    first_id: npt.ArrayLike,
    last_id: npt.ArrayLike,
    time: npt.ArrayLike,
    buyer_is_maker: npt.ArrayLike,
    intervals: Sequence[str] = ("1m",),
    tz_offset: str | None = None,
    anchor_3d_ms: int | None = None,
    time_unit: str | None = None,
    quote_rule: QuoteRule = "per-trade",
    covers: tuple[int, int] | None = None,
) -> Aggregation:
    """Aggregates one symbol's trades (in aggTrade id order) into klines for each interval.

    ``price`` and ``qty`` are int64 mantissas at 1e-8 (see :func:`kline_rs.parse_fixed8`);
    ``time`` is ms or µs (detected unless ``time_unit`` is ``"ms"`` or ``"us"``). Every
    period from the first trade's to the last trade's is returned, empty ones flat.
    ``quote_rule``: ``"per-trade"`` (spot, USD-M: each trade's p·q truncated to 8 decimals,
    then summed, as Binance does) or ``"contracts:<size>"`` (COIN-M: base-asset volume, see
    :data:`QuoteRule`). ``covers``: the span
    ``[start, end)`` the trades are all of (a day's dump); by default from the first trade to
    just after the last. ``Aggregation.partial`` names the first and last periods it does not
    cover whole (trades outside the input may belong to them).
    """

    warn_epoch_3d(intervals, anchor_3d_ms)
    rows = trades(
        agg_id=agg_id,
        price=price,
        qty=qty,
        first_id=first_id,
        last_id=last_id,
        time=time,
        buyer_is_maker=buyer_is_maker,
    )
    result = _core.aggregate(
        rows,
        list(intervals),
        tz_offset=tz_offset,
        anchor_3d_ms=anchor_3d_ms,
        time_unit=time_unit,
        quote_rule=quote_rule,
        covers=covers,
    )
    counts = result["counts"]
    klines = {name: structured(cols) for name, cols in result["klines"].items()}
    return Aggregation(klines=klines, partial=result["partial"], **counts)


def as_float(klines: npt.NDArray[np.void]) -> dict[str, npt.NDArray[np.generic]]:
    """A float64 view for plotting and research: NOT exact (floats round the decimals). The
    open and close times are kept as they are (int64 ms or µs)."""
    scales = {
        "open": PRICE_SCALE,
        "high": PRICE_SCALE,
        "low": PRICE_SCALE,
        "close": PRICE_SCALE,
        "volume": VOLUME_SCALE,
        "quote_volume": QUOTE_SCALE,
        "taker_buy_volume": VOLUME_SCALE,
        "taker_buy_quote_volume": QUOTE_SCALE,
        "quote_volume_exact": QUOTE_SCALE,
    }
    out: dict[str, npt.NDArray[np.generic]] = {
        name: klines[name].astype(np.float64) / scale for name, scale in scales.items()
    }
    out["trades"] = klines["trades"].astype(np.float64)
    out["open_time"] = klines["open_time"].copy()
    out["close_time"] = klines["close_time"].copy()
    return out


def rollup_csv(
    lines: Sequence[str],
    to_interval: str,
    *,
    tz_offset: str | None = None,
    anchor_3d_ms: int | None = None,
) -> list[str]:
    """Rolls Binance kline CSV lines up to a coarser interval, exactly (flat rows included)."""
    warn_epoch_3d([to_interval], anchor_3d_ms)
    return _core.rollup_csv(
        list(lines), to_interval, tz_offset=tz_offset, anchor_3d_ms=anchor_3d_ms
    )
