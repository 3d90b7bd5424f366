"""OHLCV bar aggregation and the TradingView chart datafeed."""

from ohlcv.bar_config import parse_resolutions, parse_session_timezone
from ohlcv.bars import (
    RESOLUTIONS,
    BarAggregator,
    BarKey,
    BarStats,
    ResolutionInfo,
    bucket_start_ns,
    next_bucket_start_ns,
    recompute_bars,
    resolution_from_config,
    resolution_from_udf,
    resolution_info,
)

__all__ = [
    "RESOLUTIONS",
    "BarAggregator",
    "BarKey",
    "BarStats",
    "ResolutionInfo",
    "bucket_start_ns",
    "next_bucket_start_ns",
    "parse_resolutions",
    "parse_session_timezone",
    "recompute_bars",
    "resolution_from_config",
    "resolution_from_udf",
    "resolution_info",
]
