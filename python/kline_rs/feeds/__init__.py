"""Where trades enter from the network: exchange websocket feeds."""

from kline_rs.feeds.binance import BinanceFeed, FeedStats
from kline_rs.venues import VENUES, Venue

__all__ = ["VENUES", "BinanceFeed", "FeedStats", "Venue"]
