"""Bar updates to clients: from the bus's bar topic to gRPC subscribers and MQTT.

The aggregator (``ohlcv.aggregator``, in ``mdfeed run`` or ``mdfeed aggregate``) publishes
every stored bar change on ``bus.bar_topic`` (keyed by symbol). ``BarFanout`` consumes the
whole topic from the latest offset, as every fanout instance does with ticks, and for each
bar builds one ``ServerFrame{bar}`` and queues it to the clients subscribed to that symbol
and resolution (``SubscribeRequest.bar_resolutions``), and hands the bar to the MQTT bridge
(``bars/{symbol}/{resolution}``). Bars change at most once per flush interval per series,
so they ride the clients' control queue, unconflated.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from fanout.client import FanoutClient
from mdfeed.kernel.bus import Bus, BusConsumer
from mdfeed.kernel.lifecycle import Service, cancel_and_wait
from proto import mdfeed_pb2 as pb

__all__ = ["BarFanout", "bar_frame"]

log = logging.getLogger(__name__)

SeriesKey = tuple[str, int]


def bar_frame(bar: pb.Bar) -> bytes:
    """The ``ServerFrame`` bytes of a ``BarUpdate``."""
    return pb.ServerFrame(bar=pb.BarUpdate(bar=bar)).SerializeToString()


class BarFanout(Service):
    """Bar updates from the bus to subscribed clients and listeners."""

    def __init__(self, bus: Bus, *, topic: str | None = None) -> None:
        self._bus = bus
        self._topic = topic if topic is not None else bus.config.bar_topic
        self._subscribers: dict[SeriesKey, set[FanoutClient]] = {}
        self._series_of: dict[FanoutClient, set[SeriesKey]] = {}
        self._listeners: list[Callable[[pb.Bar], None]] = []
        self._consumer: BusConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.bars = 0
        self.bad_records = 0

    def add_listener(self, listener: Callable[[pb.Bar], None]) -> None:
        """Call ``listener(bar)`` for every bar (the MQTT bridge); it must only queue."""
        self._listeners.append(listener)

    def lag(self) -> dict[str, int]:
        """Records of the bar topic not consumed yet (see BusConsumer.lag)."""
        return self._consumer.lag() if self._consumer is not None else {}

    async def start(self) -> None:
        consumer = self._bus.consumer([self._topic], from_beginning=False)
        await consumer.start()
        self._consumer = consumer
        self._task = asyncio.create_task(self._consume(consumer), name="bar-fanout")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    def subscribe(
        self,
        client: FanoutClient,
        symbols: Iterable[str],
        resolutions: Iterable[pb.Resolution.ValueType],
    ) -> None:
        series = self._series_of.setdefault(client, set())
        for symbol in symbols:
            for resolution in resolutions:
                key = (symbol, int(resolution))
                series.add(key)
                self._subscribers.setdefault(key, set()).add(client)

    def unsubscribe(self, client: FanoutClient, symbols: Iterable[str] | None = None) -> None:
        """Drop ``client``'s bar series of ``symbols`` (all of them when None)."""
        series = self._series_of.get(client)
        if not series:
            return
        wanted = None if symbols is None else set(symbols)
        for key in [k for k in series if wanted is None or k[0] in wanted]:
            series.discard(key)
            clients = self._subscribers.get(key)
            if clients is not None:
                clients.discard(client)
                if not clients:
                    del self._subscribers[key]
        if not series:
            del self._series_of[client]

    def publish(self, bar: pb.Bar) -> None:
        """Queue ``bar`` to its subscribers and listeners (one encoding for all)."""
        self.bars += 1
        clients = self._subscribers.get((bar.symbol, int(bar.resolution)))
        if clients:
            frame = bar_frame(bar)
            for client in clients:
                client.push(frame)
        for listener in self._listeners:
            listener(bar)

    async def _consume(self, consumer: BusConsumer) -> None:
        from_string = pb.Bar.FromString
        while True:
            records = await consumer.getmany(timeout_ms=500, max_records=1000)
            for record in records:
                try:
                    bar = from_string(record.value)
                except Exception:  # junk on the topic must not stop the bars
                    self.bad_records += 1
                    continue
                if not bar.symbol or not bar.resolution:
                    self.bad_records += 1
                    continue
                self.publish(bar)
