"""The chart datafeed: TradingView UDF over HTTP, live bars as Server-Sent Events, the chart page.

Endpoints (aiohttp, bound to ``DatafeedConfig.http_host:http_port``):

* UDF: ``GET /config``, ``/symbols?symbol=``, ``/search?query=&limit=&type=&exchange=``,
  ``/time`` (plain seconds) and ``/history?symbol=&resolution=&from=&to=&countback=``.
  Times are Unix seconds, prices and volumes floats (the ``_e8`` integers / 1e8).
  ``/history`` serves the bars with ``from <= t < to`` (TradingView's "to is not
  included"); with ``countback > 0`` the last ``countback`` bars before ``to`` whatever
  ``from`` says. An empty answer is ``{"s": "no_data", "nextTime": t}`` with ``t`` the
  newest bar before ``from``, or plain ``{"s": "no_data"}`` when there is none. A bad
  request is HTTP 400 ``{"s": "error", "errmsg": "<parameter>: <why>"}``.
  Resolutions are the UDF strings ``1S 1 5 15 60 1D`` (``D`` is taken for ``1D``), from
  :mod:`ohlcv.bars`' table.
* Live bars: ``GET /stream?symbol=&resolution=`` is an SSE stream of ``bar`` events, JSON
  ``{time, open, high, low, close, volume, final}``, fed by the in-process
  :class:`BarHub` (the aggregator calls :meth:`BarHub.publish`). The newest bar of the
  series known to the hub is sent first. Policy per subscriber:

  - *Never back in time*: a bar whose ``open_time`` is older than the last one sent to this
    subscriber is dropped (a revision of the same bar is sent; the chart replaces it).
  - *Conflated, never blocking*: ``publish`` only stores the bar in each subscriber's
    pending slots, the latest version of each of the two newest bars of the series (two, so
    that the final version of a bar that just closed is not lost behind the next one's
    first tick). A slow reader loses intermediate revisions, never the connection, and never
    slows the publisher or other readers; its memory is bounded by those two slots plus the
    socket's write buffer.
  - A ``: heartbeat`` comment every ``heartbeat_s`` (15 s) keeps proxies from closing an
    idle stream.

* Chat bridge for the page (browsers cannot speak the fanout's gRPC stream):
  ``POST /chat/{room}`` with JSON ``{author, text}`` answers the stored message (or 400 with
  ``ChatRejected``'s message); ``GET /chat/{room}/stream?after=`` is an
  SSE stream of ``chat`` events whose SSE ``id`` is the room seq, so a browser that
  reconnects resumes after ``Last-Event-ID`` and loses nothing. Without ``after`` it starts
  with the room's last :data:`CHAT_RECENT` messages. Chat is the no-loss lane: a reader that
  falls ``ChatConfig.client_queue_max`` messages behind is disconnected, not conflated, and
  resumes from its last seq. The bridge is behind ``mdfeed.kernel.chat.ChatPort``;
  ``fanout.chat_port`` runs it on the fanout's chat service. The author is whoever the
  page says it is (no token): keep the datafeed on a trusted network (loopback by default).
* The page: ``/`` and ``/static/*`` from the repository's ``web/`` folder; the chart library
  is ``web/node_modules/lightweight-charts`` (``npm ci --prefix web``). Without it the
  datafeed still starts, logs what to run, and the page says so.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from itertools import repeat
from operator import attrgetter, floordiv
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

from mdfeed.kernel.chat import ChatCode, ChatPort, ChatRejected, ChatSubscription
from mdfeed.kernel.config import DatafeedConfig
from mdfeed.kernel.lifecycle import Service
from mdfeed.kernel.metrics import Histogram
from ohlcv.bars import RESOLUTIONS, resolution_from_udf
from proto import mdfeed_pb2 as pb
from storage.bars import BarStore
from storage.errors import StoreError

__all__ = [
    "CHAT_RECENT",
    "RESOLUTIONS_UDF",
    "BarHub",
    "BarSubscription",
    "Datafeed",
    "bar_json",
]

log = logging.getLogger(__name__)

#: UDF resolution strings and the bar resolution each one serves, finest first (the shared
#: table of :mod:`ohlcv.bars`).
RESOLUTIONS_UDF: dict[str, pb.Resolution.ValueType] = {r.udf: r.value for r in RESOLUTIONS}
#: Chat messages a new stream starts with when the client gave no ``after``.
CHAT_RECENT = 100
#: Pending bars per subscriber: the latest version of each of the newest two bars.
_PENDING_BARS = 2
_EXCHANGE = "mdfeed"
_SYMBOL_TYPE = "stock"
_MAX_SECONDS = (2**63 - 1) // 1_000_000_000
_SEARCH_LIMIT_MAX = 1000
_WEB_ROOT = Path(__file__).resolve().parent.parent / "web"
_CHART_LIB = Path(
    "node_modules/lightweight-charts/dist/lightweight-charts.standalone.production.js"
)
_JS = "text/javascript; charset=utf-8"
_STATIC = {"app.js": _JS, "style.css": "text/css; charset=utf-8"}
#: Routes whose response is a server-sent event stream: counted, not timed.
_STREAM_ROUTES = frozenset({"/stream", "/chat/{room}/stream"})
_SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # a proxy in front must not buffer the stream
}


_SECOND_NS = 1_000_000_000
_PRICE_FIELDS = tuple(
    (key, attrgetter(field))
    for key, field in (
        ("o", "open_px_e8"),
        ("h", "high_px_e8"),
        ("l", "low_px_e8"),
        ("c", "close_px_e8"),
        ("v", "volume_e8"),
    )
)
_OPEN_TIME = attrgetter("open_time_ns")


def _history_body(bars: Sequence[pb.Bar]) -> bytes:
    """The ``/history`` answer ``{"s":"ok","t":[...],"o":[...],...}`` for ``bars``, as JSON.

    Each ``_e8`` integer is written as the JSON number ``<integer>e-8``: every JSON parser
    reads it as the same double as ``value / 1e8`` (the nearest to the exact decimal, and
    exact where the division would round twice), while formatting an integer costs a
    third of formatting that float (the bulk of a 5000-bar answer's time).
    """
    parts = [
        '{"s":"ok","t":[',
        ",".join(map(str, map(floordiv, map(_OPEN_TIME, bars), repeat(_SECOND_NS)))),
    ]
    for key, field in _PRICE_FIELDS:
        parts += ['],"', key, '":[', "e-8,".join(map(str, map(field, bars))), "e-8"]
    parts.append("]}")
    return "".join(parts).encode()


def _resolution_param(text: str) -> pb.Resolution.ValueType:
    try:
        return resolution_from_udf(text)
    except ValueError:
        choices = ", ".join(RESOLUTIONS_UDF)
        raise _BadRequest(f"resolution: {text[:40]!r} is not one of {choices}") from None


def bar_json(bar: pb.Bar) -> dict[str, object]:
    """A bar as the ``/stream`` event carries it: seconds and float prices."""
    return {
        "time": bar.open_time_ns // 1_000_000_000,
        "open": bar.open_px_e8 / 1e8,
        "high": bar.high_px_e8 / 1e8,
        "low": bar.low_px_e8 / 1e8,
        "close": bar.close_px_e8 / 1e8,
        "volume": bar.volume_e8 / 1e8,
        "final": bar.final,
    }


# -- live bars ------------------------------------------------------------------------


class BarSubscription:
    """One reader of one series: bounded pending slots, never back in time (module doc)."""

    def __init__(self, hub: BarHub, key: tuple[str, int]) -> None:
        self._hub = hub
        self.key = key
        self._pending: dict[int, pb.Bar] = {}  # open_time_ns -> latest version
        self._wake = asyncio.Event()
        self._closed = False
        #: open_time_ns of the last bar handed out; older bars are dropped.
        self.last_sent_ns: int | None = None
        self.dropped_old = 0
        self.conflated = 0

    def offer(self, bar: pb.Bar) -> None:
        """Keep ``bar`` for the reader (called by the hub; never blocks)."""
        if self._closed:
            return
        t = bar.open_time_ns
        if self.last_sent_ns is not None and t < self.last_sent_ns:
            self.dropped_old += 1
            return
        pending = self._pending
        if t in pending:
            self.conflated += 1
        elif len(pending) >= _PENDING_BARS:
            oldest = min(pending)
            self.conflated += 1
            if t < oldest:
                return
            del pending[oldest]
        pending[t] = bar
        self._wake.set()

    async def next(self) -> pb.Bar | None:
        """The oldest pending bar, waiting for one; None once closed."""
        while not self._pending:
            if self._closed:
                return None
            self._wake.clear()
            await self._wake.wait()
        if self._closed:
            return None
        t = min(self._pending)
        self.last_sent_ns = t
        return self._pending.pop(t)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def close(self) -> None:
        """Stop receiving; a waiting ``next()`` returns None. Safe twice."""
        if not self._closed:
            self._closed = True
            self._hub._remove(self)
            self._wake.set()


class BarHub:
    """Live bars from the aggregator to the datafeed's stream readers, in-process.

    ``publish`` is for the event loop's thread (the aggregator runs on the same loop); it
    never blocks nor awaits. The hub remembers the newest bar of each series to start new
    readers with it.
    """

    def __init__(self) -> None:
        self._subscribers: dict[tuple[str, int], set[BarSubscription]] = {}
        self._latest: dict[tuple[str, int], pb.Bar] = {}
        self._events: dict[tuple[str, int], tuple[pb.Bar, bytes]] = {}
        self.published = 0

    def publish(self, bar: pb.Bar) -> None:
        """Hand ``bar`` to every reader of its series (conflated per reader)."""
        key = (bar.symbol, bar.resolution)
        latest = self._latest.get(key)
        if latest is None or bar.open_time_ns >= latest.open_time_ns:
            self._latest[key] = bar
        self.published += 1
        for subscription in self._subscribers.get(key, ()):
            subscription.offer(bar)

    def subscribe(self, symbol: str, resolution: pb.Resolution.ValueType) -> BarSubscription:
        """A new reader of the series, starting with its newest known bar."""
        key = (symbol, int(resolution))
        subscription = BarSubscription(self, key)
        self._subscribers.setdefault(key, set()).add(subscription)
        latest = self._latest.get(key)
        if latest is not None:
            subscription.offer(latest)
        return subscription

    def event(self, bar: pb.Bar) -> bytes:
        """The SSE event of ``bar``, encoded once however many readers send it."""
        key = (bar.symbol, bar.resolution)
        cached = self._events.get(key)
        if cached is not None and cached[0] is bar:
            return cached[1]
        data = json.dumps(bar_json(bar), separators=(",", ":"))
        event = f"event: bar\ndata: {data}\n\n".encode()
        self._events[key] = (bar, event)
        return event

    def latest(self, symbol: str, resolution: pb.Resolution.ValueType) -> pb.Bar | None:
        return self._latest.get((symbol, int(resolution)))

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subscribers.values())

    def close_all(self) -> None:
        for subscriptions in list(self._subscribers.values()):
            for subscription in list(subscriptions):
                subscription.close()

    def _remove(self, subscription: BarSubscription) -> None:
        subscriptions = self._subscribers.get(subscription.key)
        if subscriptions is not None:
            subscriptions.discard(subscription)
            if not subscriptions:
                del self._subscribers[subscription.key]


# -- chat bridge ----------------------------------------------------------------------


def _chat_json(message: pb.ChatMessage) -> dict[str, object]:
    return {
        "room": message.room,
        "id": message.id,
        "seq": message.seq,
        "author": message.author,
        "text": message.text,
        "time_ms": message.time_ns // 1_000_000,
    }


_CHAT_STATUS = {
    ChatCode.INVALID_ARGUMENT: 400,
    ChatCode.PERMISSION_DENIED: 403,
    ChatCode.RESOURCE_EXHAUSTED: 429,
    ChatCode.UNAVAILABLE: 503,
}


# -- the HTTP service -----------------------------------------------------------------


class _BadRequest(Exception):  # noqa: N818 - carried to a 400 answer
    pass


def _error(message: str, status: int = 400) -> web.Response:
    return web.json_response({"s": "error", "errmsg": message}, status=status)


def _param(request: web.Request, name: str, *, required: bool = True) -> str:
    value = request.query.get(name)
    if value is None or value == "":
        if required:
            raise _BadRequest(f"{name}: missing")
        return ""
    return value


def _int_param(request: web.Request, name: str, *, default: int | None = None) -> int:
    text = _param(request, name, required=default is None)
    if text == "" and default is not None:
        return default
    try:
        return int(text)
    except ValueError:
        raise _BadRequest(f"{name}: {text[:40]!r} is not an integer") from None


def _seconds_param(request: web.Request, name: str) -> int:
    value = _int_param(request, name)
    if not -_MAX_SECONDS <= value <= _MAX_SECONDS:
        raise _BadRequest(f"{name}: {value} is out of range (Unix seconds)")
    return value


def _chat_body(raw: str) -> tuple[str, str]:
    try:
        body = json.loads(raw)
    except ValueError:
        raise _BadRequest('body: not JSON (expected {"author": ..., "text": ...})') from None
    if not isinstance(body, dict):
        raise _BadRequest('body: expected a JSON object {"author": ..., "text": ...}')
    author, text = body.get("author"), body.get("text")
    if not isinstance(author, str):
        raise _BadRequest("author: missing or not a string")
    if not isinstance(text, str):
        raise _BadRequest("text: missing or not a string")
    return author, text


def _chat_after(request: web.Request) -> int | None:
    """The seq to resume after: ``Last-Event-ID`` (a browser reconnecting), else ``after``."""
    resume = request.headers.get("Last-Event-ID", "")
    if resume:
        name, text = "Last-Event-ID", resume
    else:
        name, text = "after", _param(request, "after", required=False)
        if not text:
            return None
    try:
        after = int(text)
    except ValueError:
        raise _BadRequest(f"{name}: {text[:40]!r} is not an integer") from None
    if after < 0:
        raise _BadRequest(f"{name}: {after} is negative")
    return after


class Datafeed(Service):
    """The datafeed HTTP service (see the module docstring for endpoints and policy).

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
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.config = config
        self.bars = bars
        self.chat = chat
        self.symbols = tuple(symbols)
        self.session_timezone = session_timezone
        self.hub = hub if hub is not None else BarHub()
        self.web_root = web_root if web_root is not None else _WEB_ROOT
        self.heartbeat_s = heartbeat_s
        self._clock_ns = clock_ns
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self._chat_readers: set[ChatSubscription] = set()
        self._port = 0
        #: Requests answered, per (route, status); seconds per route, streams excluded.
        self.requests: dict[tuple[str, int], int] = {}
        self.request_seconds: dict[str, Histogram] = {}

    @property
    def port(self) -> int:
        """The bound TCP port (after ``start()``)."""
        return self._port

    @property
    def chart_library(self) -> Path:
        return self.web_root / _CHART_LIB

    @property
    def chat_stream_count(self) -> int:
        """Open ``/chat/{room}/stream`` connections."""
        return len(self._chat_readers)

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
        app.router.add_get("/config", self._config)
        app.router.add_get("/symbols", self._symbols)
        app.router.add_get("/search", self._search)
        app.router.add_get("/time", self._time)
        app.router.add_get("/history", self._history)
        app.router.add_get("/stream", self._stream)
        app.router.add_post("/chat/{room}", self._chat_post)
        app.router.add_get("/chat/{room}/stream", self._chat_stream)
        app.router.add_get("/", self._index)
        app.router.add_get("/static/{name}", self._static)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def start(self) -> None:
        if self._runner is not None:
            return
        if not self.chart_library.is_file():
            log.warning(
                "chart library missing at %s: run `npm ci --prefix %s`; the page will say so",
                self.chart_library,
                self.web_root,
            )
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
        for reader in list(self._chat_readers):
            reader.close()

    # -- UDF ------------------------------------------------------------------------

    async def _known_symbols(self) -> list[str]:
        stored = await self.bars.symbols()
        return sorted(set(self.symbols).union(stored))

    async def _symbol(self, request: web.Request) -> str:
        symbol = _param(request, "symbol")
        if symbol not in self.symbols and symbol not in await self.bars.symbols():
            raise _BadRequest(f"symbol: unknown symbol {symbol[:80]!r}")
        return symbol

    async def _config(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "supported_resolutions": list(RESOLUTIONS_UDF),
                "supports_search": True,
                "supports_group_request": False,
                "supports_marks": False,
                "supports_timescale_marks": False,
                "supports_time": True,
                "exchanges": [{"value": _EXCHANGE, "name": _EXCHANGE, "desc": _EXCHANGE}],
                "symbols_types": [{"name": _SYMBOL_TYPE, "value": _SYMBOL_TYPE}],
            }
        )

    async def _symbols(self, request: web.Request) -> web.Response:
        try:
            symbol = await self._symbol(request)
        except _BadRequest as exc:
            return _error(str(exc))
        return web.json_response(
            {
                "name": symbol,
                "ticker": symbol,
                "description": symbol,
                "type": _SYMBOL_TYPE,
                "exchange": _EXCHANGE,
                "listed_exchange": _EXCHANGE,
                "session": "24x7",
                "timezone": self.session_timezone,
                "minmov": 1,
                "pricescale": 100,
                "has_intraday": True,
                "has_seconds": True,
                "seconds_multipliers": ["1"],
                "intraday_multipliers": ["1", "5", "15", "60"],
                "has_daily": True,
                "daily_multipliers": ["1"],
                "has_weekly_and_monthly": False,
                "supported_resolutions": list(RESOLUTIONS_UDF),
                "volume_precision": 8,
                "data_status": "streaming",
            }
        )

    async def _search(self, request: web.Request) -> web.Response:
        try:
            query = _param(request, "query", required=False).upper()
            limit = _int_param(request, "limit", default=30)
            if not 1 <= limit <= _SEARCH_LIMIT_MAX:
                raise _BadRequest(f"limit: {limit} is not from 1 to {_SEARCH_LIMIT_MAX}")
        except _BadRequest as exc:
            return _error(str(exc))
        kind = _param(request, "type", required=False)
        exchange = _param(request, "exchange", required=False)
        if (kind and kind != _SYMBOL_TYPE) or (exchange and exchange.lower() != _EXCHANGE):
            return web.json_response([])
        found = [s for s in await self._known_symbols() if query in s.upper()]
        # Prefix matches first, then the rest, each alphabetically.
        found.sort(key=lambda s: (not s.upper().startswith(query), s))
        return web.json_response(
            [
                {
                    "symbol": s,
                    "full_name": s,
                    "description": s,
                    "exchange": _EXCHANGE,
                    "ticker": s,
                    "type": _SYMBOL_TYPE,
                }
                for s in found[:limit]
            ]
        )

    async def _time(self, request: web.Request) -> web.Response:
        return web.Response(text=str(self._clock_ns() // 1_000_000_000))

    async def _history(self, request: web.Request) -> web.Response:
        try:
            symbol = await self._symbol(request)
            resolution = _resolution_param(_param(request, "resolution"))
            from_s = _seconds_param(request, "from")
            to_s = _seconds_param(request, "to")
            countback = _int_param(request, "countback", default=0)
            if not 0 <= countback <= 2**31 - 1:
                raise _BadRequest(f"countback: {countback} is not from 0 to 2**31-1")
            if countback == 0 and from_s > to_s:
                raise _BadRequest(f"from: {from_s} is after to {to_s}")
        except _BadRequest as exc:
            return _error(str(exc))
        from_ns, to_ns = from_s * 1_000_000_000, to_s * 1_000_000_000
        before: pb.Bar | None = None
        try:
            bars = await self.bars.history(symbol, resolution, from_ns, to_ns, countback)
            if not bars and not countback:
                # With countback nothing exists before ``to``, so nothing before ``from``.
                before = await self.bars.last_before(symbol, resolution, from_ns)
        except StoreError as exc:
            return _error(f"bar store unavailable: {exc}", status=503)
        if not bars:
            if before is None:
                return web.json_response({"s": "no_data"})
            return web.json_response(
                {"s": "no_data", "nextTime": before.open_time_ns // 1_000_000_000}
            )
        return web.Response(body=_history_body(bars), content_type="application/json")

    # -- live bars ------------------------------------------------------------------

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        try:
            symbol = await self._symbol(request)
            resolution = _resolution_param(_param(request, "resolution"))
        except _BadRequest as exc:
            return _error(str(exc))
        response = web.StreamResponse(headers=_SSE_HEADERS)
        await response.prepare(request)
        subscription = self.hub.subscribe(symbol, resolution)
        try:
            await response.write(b"retry: 2000\n\n")
            while not self._closing.is_set():
                try:
                    async with asyncio.timeout(self.heartbeat_s):
                        bar = await subscription.next()
                except TimeoutError:
                    await response.write(b": heartbeat\n\n")
                    continue
                if bar is None:
                    break
                await response.write(self.hub.event(bar))
        except (ConnectionResetError, ConnectionError):
            pass  # the reader went away
        finally:
            subscription.close()
        return response

    # -- chat -----------------------------------------------------------------------

    async def _chat_post(self, request: web.Request) -> web.Response:
        chat = self.chat
        if chat is None:
            return _error("chat is not enabled on this datafeed", status=404)
        try:
            author, text = _chat_body(await request.text())
        except _BadRequest as exc:
            return _error(str(exc))
        try:
            message = await chat.post(author, request.match_info["room"], text)
        except ChatRejected as exc:
            return _error(exc.message, status=_CHAT_STATUS.get(exc.code, 400))
        return web.json_response(_chat_json(message))

    async def _chat_stream(self, request: web.Request) -> web.StreamResponse:
        chat = self.chat
        if chat is None:
            return _error("chat is not enabled on this datafeed", status=404)
        room = request.match_info["room"]
        try:
            after = _chat_after(request)
            if after is None:
                after = max(0, await chat.last_seq(room) - CHAT_RECENT)
            reader = await chat.subscribe(room, after)
        except _BadRequest as exc:
            return _error(str(exc))
        except ChatRejected as exc:
            return _error(exc.message, status=_CHAT_STATUS.get(exc.code, 400))
        self._chat_readers.add(reader)
        response = web.StreamResponse(headers=_SSE_HEADERS)
        try:
            await response.prepare(request)
            await response.write(b"retry: 2000\n\n")
            while not self._closing.is_set():
                try:
                    async with asyncio.timeout(self.heartbeat_s):
                        message = await reader.next()
                except TimeoutError:
                    await response.write(b": heartbeat\n\n")
                    continue
                if message is None:
                    break
                data = json.dumps(_chat_json(message), separators=(",", ":"))
                await response.write(f"id: {message.seq}\nevent: chat\ndata: {data}\n\n".encode())
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            reader.close()
            self._chat_readers.discard(reader)
        return response

    # -- the page -------------------------------------------------------------------

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return self._file(self.web_root / "index.html", "text/html; charset=utf-8")

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name == "lightweight-charts.js":
            if not self.chart_library.is_file():
                return web.Response(
                    status=404,
                    text="// chart library missing: run `npm ci --prefix web`\n",
                    content_type="text/javascript",
                )
            return self._file(self.chart_library, _JS)
        content_type = _STATIC.get(name)
        if content_type is None:
            raise web.HTTPNotFound()
        return self._file(self.web_root / name, content_type)

    def _file(self, path: Path, content_type: str) -> web.StreamResponse:
        if not path.is_file():
            raise web.HTTPNotFound(text=f"{path.name} is missing from {self.web_root}")
        return web.FileResponse(
            path, headers={"Content-Type": content_type, "Cache-Control": "no-cache"}
        )
