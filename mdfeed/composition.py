"""The composition root: the one place that builds mdfeed's services from config.

``compose(config, services)`` is an async context manager that starts the named services,
wired to each other through the bus, and stops them in reverse order on the way out:

==========  ==============================================================================
service     what starts
==========  ==============================================================================
venue       the simulated FIX venue (``fix_session.venue``)
ingest      a bus producer and the QuickFIX session publishing ticks on ``bus.tick_topic``
fanout      the chat store and service, the tick and bar fanouts, the bar store (GetBars),
            the MQTT side (embedded broker when ``mqtt.kind = "embedded"``, the bridge,
            chat over MQTT) and the gRPC server
bars        the bar store and the bar service, publishing stored bars on ``bus.bar_topic``
datafeed    the bar store and the UDF datafeed with the chart page; its live bars come from
            ``bus.bar_topic`` (from ``bars`` in this process or ``mdfeed aggregate``), its
            chat from the fanout when one runs in this process
==========  ==============================================================================

``mdfeed run`` composes all of them, each service command one (``mdfeed ingest``:
``{"ingest"}``, and so on); tests and benchmarks compose what they measure. One bus is
opened for the services that need one; a metrics server is started when ``metrics`` names
the command (its default port is that command's, see ``mdfeed.kernel.metrics``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from fanout.bars import BarFanout
from fanout.chat import ChatService
from fanout.chat_port import ServiceChatPort
from fanout.lane import TickLane
from fanout.metrics import register_fanout_metrics
from fanout.parts import FanoutParts
from fanout.tick_fanout import TickFanout
from fanout.transports.grpc_server import GrpcServer
from fanout.transports.grpc_service import MarketDataServicer
from fanout.transports.mqtt_bridge import MqttBridge
from fanout.transports.mqtt_broker import EmbeddedBroker
from fanout.transports.mqtt_chat import MqttChatLink
from fix_session.ingest import FixIngest
from fix_session.metrics import register_ingest_metrics
from fix_session.venue import SimulatedVenue
from mdfeed.kernel.bus import Bus, BusProducer, open_bus
from mdfeed.kernel.chat import ChatPort
from mdfeed.kernel.config import MdfeedConfig
from mdfeed.kernel.entitlements import Entitlements, load_entitlements
from mdfeed.kernel.metrics import MetricsServer
from ohlcv.aggregator import BarService
from ohlcv.datafeed import Datafeed
from ohlcv.metrics import register_bar_metrics, register_datafeed_metrics
from ohlcv.reconcile import ReconcileReport, reconcile
from proto import mdfeed_pb2 as pb
from storage import open_bar_store, open_chat_store

__all__ = ["SERVICES", "Services", "compose", "compose_fanout", "reconcile_bars"]

#: The services ``compose`` knows, in the order it starts them.
SERVICES = ("venue", "ingest", "fanout", "bars", "datafeed")


@dataclass(slots=True)
class Services:
    """What ``compose`` started; a service not asked for stays None."""

    config: MdfeedConfig
    metrics: MetricsServer | None = None
    bus: Bus | None = None
    venue: SimulatedVenue | None = None
    ingest: FixIngest | None = None
    #: The producer the ingest publishes ticks with.
    tick_producer: BusProducer | None = None
    fanout: FanoutParts | None = None
    bars: BarService | None = None
    #: The producer the bar service publishes stored bars with.
    bar_producer: BusProducer | None = None
    datafeed: Datafeed | None = None
    #: The datafeed's consumer of the bar topic (its live bars).
    live_bars: BarFanout | None = None


@contextlib.asynccontextmanager
async def compose(
    config: MdfeedConfig,
    services: Collection[str],
    *,
    metrics: str | None = None,
    entitlements: Entitlements | None = None,
) -> AsyncIterator[Services]:
    """Start ``services`` (names from ``SERVICES``) from ``config``; stop them on exit."""
    unknown = sorted(set(services) - set(SERVICES))
    if unknown:
        raise ValueError(f"unknown services {unknown}; known: {', '.join(SERVICES)}")
    built = Services(config)
    async with contextlib.AsyncExitStack() as stack:
        if metrics is not None:
            built.metrics = await stack.enter_async_context(MetricsServer(config.metrics, metrics))
        if "venue" in services:
            built.venue = await stack.enter_async_context(SimulatedVenue(config.venue))
        if set(services) - {"venue"}:
            built.bus = await stack.enter_async_context(open_bus(config.bus))
        bus = built.bus
        if "ingest" in services:
            assert bus is not None
            built.tick_producer, built.ingest = await _ingest(stack, config, bus, built.metrics)
        if "fanout" in services:
            assert bus is not None
            built.fanout = await stack.enter_async_context(
                compose_fanout(config, bus, entitlements=entitlements)
            )
            if built.metrics is not None:
                register_fanout_metrics(built.metrics, built.fanout)
        if "datafeed" in services:
            assert bus is not None
            chat = (
                ServiceChatPort(built.fanout.chat)
                if built.fanout is not None and built.fanout.chat is not None
                else None
            )
            built.datafeed, built.live_bars = await _datafeed(
                stack, config, bus, chat, built.metrics
            )
        if "bars" in services:
            assert bus is not None
            built.bar_producer, built.bars = await _bars(stack, config, bus, built.metrics)
        yield built


async def _ingest(
    stack: contextlib.AsyncExitStack,
    config: MdfeedConfig,
    bus: Bus,
    metrics: MetricsServer | None,
) -> tuple[BusProducer, FixIngest]:
    producer = await stack.enter_async_context(bus.producer())
    ingest = FixIngest(
        config.fix_session, symbols=config.symbols, producer=producer, topic=config.bus.tick_topic
    )
    # After a bus outage that dropped ticks, fresh snapshots make the books whole again.
    producer.on_resumed = ingest.resync
    await stack.enter_async_context(ingest)
    if metrics is not None:
        register_ingest_metrics(metrics, ingest)
    return producer, ingest


async def _bars(
    stack: contextlib.AsyncExitStack,
    config: MdfeedConfig,
    bus: Bus,
    metrics: MetricsServer | None,
) -> tuple[BusProducer, BarService]:
    store = await stack.enter_async_context(open_bar_store(config.store, config.ohlcv))
    producer = await stack.enter_async_context(bus.producer())
    service = BarService(bus, store, config.ohlcv, topic=config.bus.tick_topic)
    topic = config.bus.bar_topic

    def publish(changed: Sequence[pb.Bar]) -> None:
        # To the fanouts (gRPC BarUpdate, MQTT bars/...) and the datafeeds (/stream).
        for bar in changed:
            producer.send(topic, bar.symbol.encode(), bar.SerializeToString())

    service.add_listener(publish)
    await stack.enter_async_context(service)
    if metrics is not None:
        register_bar_metrics(metrics, service, producer)
    return producer, service


async def _datafeed(
    stack: contextlib.AsyncExitStack,
    config: MdfeedConfig,
    bus: Bus,
    chat: ChatPort | None,
    metrics: MetricsServer | None,
) -> tuple[Datafeed, BarFanout]:
    store = await stack.enter_async_context(open_bar_store(config.store, config.ohlcv))
    datafeed = await stack.enter_async_context(
        Datafeed(
            config.datafeed,
            store,
            chat=chat,
            symbols=config.symbols,
            session_timezone=config.ohlcv.session_timezone,
            web_root=Path(config.datafeed.web_root),
        )
    )
    live_bars = BarFanout(bus, topic=config.bus.bar_topic)
    live_bars.add_listener(datafeed.hub.publish)
    await stack.enter_async_context(live_bars)
    if metrics is not None:
        register_datafeed_metrics(metrics, datafeed)
        metrics.add_lag_source("bars", live_bars)
    return datafeed, live_bars


@contextlib.asynccontextmanager
async def compose_fanout(
    config: MdfeedConfig, bus: Bus, *, entitlements: Entitlements | None = None
) -> AsyncIterator[FanoutParts]:
    """The fanout on ``bus``: chat, ticks, bars, MQTT and gRPC (see the module docstring)."""
    parts = FanoutParts(
        config,
        entitlements if entitlements is not None else load_entitlements(config.auth),
    )
    fanout = config.fanout
    async with contextlib.AsyncExitStack() as stack:
        parts.chat_store = await stack.enter_async_context(open_chat_store(config.store))
        parts.chat = await stack.enter_async_context(
            ChatService(parts.chat_store, bus, config.chat, topic=config.bus.chat_topic)
        )

        def lane() -> TickLane:
            return TickLane(
                max_pending_ticks=fanout.max_pending_ticks,
                max_pending_symbols=fanout.max_pending_symbols,
                max_stall_s=fanout.max_stall_s,
            )

        parts.ticks = await stack.enter_async_context(
            TickFanout(
                bus,
                topic=config.bus.tick_topic,
                lane_factory=lane,
                max_batch_ticks=fanout.max_batch_ticks,
                max_pending_chat=config.chat.client_queue_max,
                hop_timestamps=fanout.hop_timestamps,
            )
        )
        parts.bars = await stack.enter_async_context(BarFanout(bus, topic=config.bus.bar_topic))
        parts.bar_store = await stack.enter_async_context(
            open_bar_store(config.store, config.ohlcv)
        )
        if config.mqtt.enabled:
            await _mqtt(stack, config, parts, parts.chat)
        parts.servicer = MarketDataServicer(
            parts.ticks,
            chat=parts.chat,
            entitlements=parts.entitlements,
            bars=parts.bars,
            bar_store=parts.bar_store,
        )
        server = GrpcServer(parts.servicer, fanout)
        await server.start()
        stack.push_async_callback(server.stop)
        parts.grpc = server
        yield parts


async def _mqtt(
    stack: contextlib.AsyncExitStack,
    config: MdfeedConfig,
    parts: FanoutParts,
    chat: ChatService,
) -> None:
    mqtt = config.mqtt
    if not mqtt.client_id:
        # One id per host and gRPC port, so fanouts side by side do not take over each other.
        client_id = f"mdfeed-fanout-{socket.gethostname()}-{config.fanout.grpc_port}"
        mqtt = dataclasses.replace(mqtt, client_id=client_id[:64])
    if mqtt.kind == "embedded":
        parts.broker = await stack.enter_async_context(EmbeddedBroker(mqtt.host, mqtt.port))
    link = MqttChatLink(chat, parts.entitlements)
    bridge = await stack.enter_async_context(MqttBridge(mqtt, on_post=link.on_post))
    parts.bridge = bridge
    assert parts.ticks is not None
    assert parts.bars is not None
    parts.ticks.add_listener(bridge.publish_tick)
    parts.bars.add_listener(bridge.publish_bar)
    link.attach(bridge)
    stack.callback(link.detach)


async def reconcile_bars(
    config: MdfeedConfig,
    *,
    from_ns: int,
    to_ns: int,
    idle_s: float,
    out: TextIO,
) -> ReconcileReport:
    """Recompute the bars of ``[from_ns, to_ns)`` from the tick log, compare with the store."""
    async with open_bus(config.bus) as bus, open_bar_store(config.store, config.ohlcv) as store:
        return await reconcile(
            bus,
            store,
            config.ohlcv,
            topic=config.bus.tick_topic,
            from_ns=from_ns,
            to_ns=to_ns,
            idle_s=idle_s,
            out=out,
        )
