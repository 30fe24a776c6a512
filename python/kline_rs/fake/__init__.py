"""A fake Binance exchange on loopback, for tests, ``kline-rs demo`` and users.

    from kline_rs.fake import FakeExchange, Faults, SimulatedMarket

    market = SimulatedMarket(["BTCUSDT", "ETHUSDT"], speed=60)
    async with FakeExchange(market, faults=Faults(drop_rate=0.01)) as fx:
        ...  # point a client at fx.rest_url and fx.ws_url; compare with market.history()

Needs ``aiohttp``. ``FakeExchange`` is imported on first use, so that
``python -m kline_rs.fake.fake_exchange`` runs the module only once.
"""

from typing import TYPE_CHECKING, Any

from kline_rs.fake.faults import Faults
from kline_rs.fake.market import Market, SimulatedMarket
from kline_rs.fake.recorded import RecordedMarket
from kline_rs.fake.stats import ExchangeStats
from kline_rs.venues import COINM, SPOT, USDM, Venue

if TYPE_CHECKING:
    from kline_rs.fake.fake_exchange import FakeExchange


def __getattr__(name: str) -> Any:
    if name == "FakeExchange":
        from kline_rs.fake.fake_exchange import FakeExchange

        return FakeExchange
    raise AttributeError(f"module 'kline_rs.fake' has no attribute {name!r}")


__all__ = [
    "COINM",
    "SPOT",
    "USDM",
    "ExchangeStats",
    "FakeExchange",
    "Faults",
    "Market",
    "RecordedMarket",
    "SimulatedMarket",
    "Venue",
]
