"""OHLCV bar aggregation and the TradingView chart datafeed."""
