"""The datafeed HTTP service: one aiohttp server mounting the endpoints of this package.

Bound to ``DatafeedConfig.http_host:http_port`` (port 0 picks a free one), it serves the
UDF endpoints (:mod:`~ohlcv.datafeed.udf`), the live bars (:mod:`~ohlcv.datafeed.bar_hub`),
the chat bridge (:mod:`~ohlcv.datafeed.chat_http`) and the chart page
(:mod:`~ohlcv.datafeed.static_files`). Every answer is counted per (route, status) and
timed per route, event streams excepted (a stream lasts as long as its reader): the
``mdfeed_datafeed_*`` metrics of :mod:`ohlcv.metrics`. At shutdown the streams end on
their own, so the server need not wait for them or cancel them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

from mdfeed.kernel.chat import ChatPort
from mdfeed.kernel.clock import WallClockNs, wall_ns
from mdfeed.kernel.config import DatafeedConfig
from mdfeed.kernel.lifecycle import Service
from mdfeed.kernel.metrics import Histogram
from ohlcv.datafeed.bar_hub import BarHub, BarStreamEndpoint
from ohlcv.datafeed.chat_http import ChatEndpoints
from ohlcv.datafeed.static_files import DEFAULT_WEB_ROOT, StaticFiles
from ohlcv.datafeed.udf import UdfEndpoints
from storage.bars import BarStore

__all__ = ["Datafeed"]

log = logging.getLogger(__name__)

#: Routes whose response is a server-sent event stream: counted, not timed.
_STREAM_ROUTES = frozenset({"/stream", "/chat/{room}/stream"})


class Datafeed(Service):
    """The datafeed HTTP service (see :mod:`ohlcv.datafeed` for endpoints and policy).

    ``symbols`` are the configured symbols, listed even before their first bar; symbols
    the bar store holds are served too. ``hub`` (default: a new :class:`BarHub`) is where
    the aggregator publishes live bars. ``web_root`` is the page's folder (the repository's
    ``web/``). ``port`` is the bound port once started (``http_port`` 0 picks a free one).
    """

    def __init__(
        self,
        config: DatafeedConfig,
        bars: BarStore,
        *,
        chat: ChatPort | None,
        symbols: Sequence[str],
        session_timezone: str,
        hub: BarHub | None = None,
        web_root: Path | None = None,
        heartbeat_s: float = 15.0,
        clock_ns: WallClockNs = wall_ns,
    ) -> None:
        self.config = config
        self.bars = bars
        self.chat = chat
        self.symbols = tuple(symbols)
        self.session_timezone = session_timezone
        self.hub = hub if hub is not None else BarHub()
        self.web_root = web_root if web_root is not None else DEFAULT_WEB_ROOT
        self.heartbeat_s = heartbeat_s
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self._port = 0
        self._udf = UdfEndpoints(
            bars, symbols=self.symbols, session_timezone=session_timezone, clock_ns=clock_ns
        )
        self._live = BarStreamEndpoint(
            self.hub, symbol=self._udf.symbol, closing=self._is_closing, heartbeat_s=heartbeat_s
        )
        self._chat = ChatEndpoints(chat, closing=self._is_closing, heartbeat_s=heartbeat_s)
        self._page = StaticFiles(self.web_root)
        #: Requests answered, per (route, status); seconds per route, streams excluded.
        self.requests: dict[tuple[str, int], int] = {}
        self.request_seconds: dict[str, Histogram] = {}

    @property
    def port(self) -> int:
        """The bound TCP port (after ``start()``)."""
        return self._port

    @property
    def chart_library(self) -> Path:
        return self._page.chart_library

    @property
    def chat_stream_count(self) -> int:
        """Open ``/chat/{room}/stream`` connections."""
        return self._chat.stream_count

    def _is_closing(self) -> bool:
        return self._closing.is_set()

    @web.middleware
    async def _measure(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            resource = request.match_info.route.resource
            route = resource.canonical if resource is not None else "unmatched"
            key = (route, status)
            self.requests[key] = self.requests.get(key, 0) + 1
            if route not in _STREAM_ROUTES:  # a stream lasts as long as its reader
                histogram = self.request_seconds.get(route)
                if histogram is None:
                    histogram = self.request_seconds[route] = Histogram()
                histogram.observe(time.perf_counter() - started)

    def app(self) -> web.Application:
        """The aiohttp application (also for aiohttp's test client)."""
        app = web.Application(middlewares=[self._measure])
        self._udf.add_routes(app)
        self._live.add_routes(app)
        self._chat.add_routes(app)
        self._page.add_routes(app)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def start(self) -> None:
        if self._runner is not None:
            return
        self._page.warn_if_library_missing()
        self._closing = asyncio.Event()
        # Streams end at shutdown (``_on_shutdown``); the timeout only bounds the rest.
        runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, self.config.http_host, self.config.http_port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        log.info("datafeed on http://%s:%d/", self.config.http_host, self._port)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _on_shutdown(self, app: web.Application) -> None:
        # Streams end on their own so the server need not wait or cancel them.
        self._closing.set()
        self.hub.close_all()
        self._chat.close_all()
