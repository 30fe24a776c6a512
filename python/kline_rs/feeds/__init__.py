"""Where trades enter from the network: exchange websocket feeds."""

from kline_rs.feeds.binance import VENUES, BinanceFeed, FeedStats, Venue

__all__ = ["VENUES", "BinanceFeed", "FeedStats", "Venue"]
