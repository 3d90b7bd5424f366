"""Live bars: the in-process hub the bars go through, and the ``/stream`` endpoint reading it.

``GET /stream?symbol=&resolution=`` is an SSE stream of ``bar`` events, JSON
``{time, open, high, low, close, volume, final}``, fed by the in-process :class:`BarHub`
(the composition root hands :meth:`BarHub.publish` the bars of the bar topic). The newest
bar of the series known to the hub is sent first. Policy per subscriber:

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
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from aiohttp import web

from ohlcv.datafeed.http_support import SSE_HEADERS, BadRequest, error, param
from ohlcv.datafeed.udf import resolution_param
from proto import mdfeed_pb2 as pb

__all__ = ["BarHub", "BarStreamEndpoint", "BarSubscription", "bar_json"]

#: Pending bars per subscriber: the latest version of each of the newest two bars.
_PENDING_BARS = 2


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


class BarStreamEndpoint:
    """``GET /stream`` on ``hub`` (module doc).

    ``symbol`` reads and checks the request's symbol (the UDF endpoints' rule); the stream
    ends when ``closing()`` turns true (the server shuts down) or the hub closes it.
    """

    def __init__(
        self,
        hub: BarHub,
        *,
        symbol: Callable[[web.Request], Awaitable[str]],
        closing: Callable[[], bool],
        heartbeat_s: float,
    ) -> None:
        self._hub = hub
        self._symbol = symbol
        self._closing = closing
        self._heartbeat_s = heartbeat_s

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/stream", self._stream)

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        try:
            symbol = await self._symbol(request)
            resolution = resolution_param(param(request, "resolution"))
        except BadRequest as exc:
            return error(str(exc))
        hub = self._hub
        response = web.StreamResponse(headers=SSE_HEADERS)
        await response.prepare(request)
        subscription = hub.subscribe(symbol, resolution)
        try:
            await response.write(b"retry: 2000\n\n")
            while not self._closing():
                try:
                    async with asyncio.timeout(self._heartbeat_s):
                        bar = await subscription.next()
                except TimeoutError:
                    await response.write(b": heartbeat\n\n")
                    continue
                if bar is None:
                    break
                await response.write(hub.event(bar))
        except (ConnectionResetError, ConnectionError):
            pass  # the reader went away
        finally:
            subscription.close()
        return response
