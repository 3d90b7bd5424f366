"""The chart datafeed: TradingView UDF over HTTP, live bars as Server-Sent Events, the chart page.

One aiohttp service, :class:`Datafeed` (:mod:`~ohlcv.datafeed.server`), bound to
``DatafeedConfig.http_host:http_port``, mounting one module per concern:

=====================================  ==========================================================
module                                 endpoints
=====================================  ==========================================================
:mod:`~ohlcv.datafeed.udf`             UDF ``/config``, ``/symbols``, ``/search``, ``/time``,
                                       ``/history`` from the bar store
:mod:`~ohlcv.datafeed.bar_hub`         live bars: :class:`BarHub` (the bars of the bar topic,
                                       conflated per reader) and ``/stream`` (SSE)
:mod:`~ohlcv.datafeed.chat_http`       the page's chat bridge: ``POST /chat/{room}``,
                                       ``/chat/{room}/stream`` (SSE) on a ``ChatPort``
:mod:`~ohlcv.datafeed.static_files`    the page: ``/`` and ``/static/*`` from ``web/``
:mod:`~ohlcv.datafeed.http_support`    what they share: parameters, the 400 answer, SSE headers
=====================================  ==========================================================

Each module's docstring states its endpoints' policy (answers, errors, conflation, resume).
"""

from ohlcv.datafeed.bar_hub import BarHub, BarSubscription, bar_json
from ohlcv.datafeed.chat_http import CHAT_RECENT
from ohlcv.datafeed.server import Datafeed
from ohlcv.datafeed.udf import RESOLUTIONS_UDF

__all__ = [
    "CHAT_RECENT",
    "RESOLUTIONS_UDF",
    "BarHub",
    "BarSubscription",
    "Datafeed",
    "bar_json",
]
