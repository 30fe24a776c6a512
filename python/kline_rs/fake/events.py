"""Binance websocket payloads and REST trade objects, in each venue's own form."""

from __future__ import annotations

import json
from typing import Any

from kline_rs import parse_fixed8
from kline_rs.fake.tape import Instrument, Trade, decimals_of, fixed8, trim
from kline_rs.venues import Venue

SHUTDOWN_STREAM = "!serverShutdown"


def dumps(obj: Any) -> str:
    """Compact JSON as Binance sends it (UTF-8 kept, no spaces)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def combined(stream: str, payload: str) -> str:
    """``{"stream":…,"data":…}`` around an already serialised payload."""
    return f'{{"stream":{dumps(stream)},"data":{payload}}}'


def decimal_text(value: int, step: int, venue: Venue) -> str:
    """Spot prints 8 decimals; futures print the symbol's own (those of its tick or lot)."""
    text = fixed8(value)
    if not venue.futures:
        return text
    if value % step == 0:
        return trim(text, decimals_of(step))
    return text.rstrip("0").rstrip(".")


def venue_trade(venue: Venue, inst: Instrument, trade: Trade) -> Trade:
    """A simulated (spot-form) trade as ``venue`` prints it; recorded trades stay as they are."""
    if not venue.futures or "M" not in trade:
        return trade
    return {
        "a": trade["a"],
        "p": decimal_text(parse_fixed8(trade["p"]), inst.tick, venue),
        "q": decimal_text(parse_fixed8(trade["q"]), inst.lot, venue),
        "f": trade["f"],
        "l": trade["l"],
        "T": trade["T"],
        "m": trade["m"],
    }


def agg_trade_event(venue: Venue, inst: Instrument, trade: Trade, event_ms: int) -> dict[str, Any]:
    """The ``<symbol>@aggTrade`` payload (recorded events already are one)."""
    if "e" in trade:
        return trade
    body = venue_trade(venue, inst, trade)
    if venue.futures:  # USD-M / COIN-M order, as in the captures: "a" before "s"
        return {"e": "aggTrade", "E": event_ms, "a": body["a"], "s": inst.symbol} | body
    return {"e": "aggTrade", "E": event_ms, "s": inst.symbol} | body


def raw_trade_events(
    venue: Venue, inst: Instrument, trade: Trade, event_ms: int
) -> list[dict[str, Any]]:
    """``<symbol>@trade`` payloads: the aggTrade's raw trades f..l, its quantity split on lots."""
    first, last = int(trade["f"]), int(trade["l"])
    count = last - first + 1
    qty = parse_fixed8(trade["q"])
    step = inst.lot if qty // inst.lot >= count else 1
    units, rest = divmod(qty, step)
    base, extra = divmod(units, count)
    parts = [(base + (i < extra)) * step for i in range(count)]
    parts[-1] += rest
    price = decimal_text(parse_fixed8(trade["p"]), inst.tick, venue)
    out = []
    for i, part in enumerate(parts):
        q = decimal_text(part, step, venue)
        if venue.futures:
            out.append(
                {"e": "trade", "E": event_ms, "T": trade["T"], "s": inst.symbol, "t": first + i,
                 "p": price, "q": q, "X": "MARKET", "m": trade["m"]}
            )  # fmt: skip
        else:
            out.append(
                {"e": "trade", "E": event_ms, "s": inst.symbol, "t": first + i, "p": price,
                 "q": q, "T": trade["T"], "m": trade["m"], "M": True}
            )  # fmt: skip
    return out


def shutdown_event(event_ms: int) -> dict[str, Any]:
    """Binance's ``serverShutdown`` event (raw form; combined under ``!serverShutdown``)."""
    return {"e": "serverShutdown", "E": event_ms}
