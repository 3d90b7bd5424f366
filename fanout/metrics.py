"""The fanout's metrics, read from its services' counters at scrape time.

Ticks out are counted where they leave: a gRPC client's lane counts the ticks of each
frame it hands to the transport (so a frame of n ticks taken by m clients counts n x m),
the MQTT bridge counts quotes it publishes. Nothing is counted per tick per client.

==============================================  =========  ================================
metric                                          type       meaning
==============================================  =========  ================================
mdfeed_fanout_ticks_in_total                    counter    ticks consumed (all records)
mdfeed_fanout_records_in_total                  counter    tick records consumed
mdfeed_fanout_ticks_out_total{transport}        counter    ticks delivered: grpc, mqtt
mdfeed_fanout_bad_records_total                 counter    undecodable tick records
mdfeed_fanout_stale_ticks_total                 counter    ticks not newer than the cached
mdfeed_fanout_conflated_ticks_total{transport}  counter    ticks replaced by a newer one
mdfeed_fanout_gap_notices_total                 counter    GapNotices queued (conflation
                                                           and resync)
mdfeed_fanout_resyncs_total                     counter    upstream sequence restarts
mdfeed_fanout_clients_cut_off_total             counter    clients disconnected for limits
mdfeed_fanout_clients{transport="grpc"}         gauge      connected stream clients
mdfeed_fanout_subscription_groups               gauge      distinct symbol sets
mdfeed_fanout_queued_frames                     gauge      frames queued, over all lanes
mdfeed_fanout_max_client_queue_frames           gauge      the longest lane's queue
mdfeed_fanout_bus_latency_seconds               histogram  bus timestamp -> consumed
mdfeed_fanout_bars_total                        counter    bar updates fanned out
mdfeed_mqtt_*                                   various    MQTT bridge (when enabled)
mdfeed_chat_posted_total                        counter    posts stored and published
mdfeed_chat_delivered_total                     counter    messages handed to members
mdfeed_chat_rejected_total                      counter    posts refused
mdfeed_consumer_lag_records{consumer,topic}     gauge      ticks, chat, bars consumers
==============================================  =========  ================================
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import Metric

from fanout.bars import BarFanout
from fanout.chat import ChatService
from fanout.parts import FanoutParts
from fanout.tick_fanout import TickFanout
from fanout.transports.mqtt_bridge import MqttBridge
from mdfeed.kernel.metrics import MetricsServer, counter, gauge

__all__ = ["FanoutCollector", "register_fanout_metrics"]


class FanoutCollector:
    """Collects the metrics of a fanout's parts (the table in the module docstring).

    Each part may be None (not running in this process); its metrics are then absent.
    """

    def __init__(
        self,
        *,
        ticks: TickFanout | None,
        chat: ChatService | None = None,
        bridge: MqttBridge | None = None,
        bars: BarFanout | None = None,
    ) -> None:
        self._ticks = ticks
        self._chat = chat
        self._bridge = bridge
        self._bars = bars

    @classmethod
    def of(cls, fanout: FanoutParts) -> FanoutCollector:
        """The collector of a started fanout's parts."""
        return cls(ticks=fanout.ticks, chat=fanout.chat, bridge=fanout.bridge, bars=fanout.bars)

    def collect(self) -> Iterator[Metric]:
        ticks = self._ticks
        bridge = self._bridge
        if ticks is not None:
            lanes = ticks.lane_totals()
            yield counter(
                "mdfeed_fanout_ticks_in_total", "Ticks consumed from the bus.", ticks.ticks_in
            )
            yield counter(
                "mdfeed_fanout_records_in_total",
                "Tick records consumed from the bus (one or more ticks of a symbol each).",
                ticks.records,
            )
            out: dict[tuple[str, ...], float] = {("grpc",): lanes.delivered}
            conflated: dict[tuple[str, ...], float] = {("grpc",): lanes.conflated}
            if bridge is not None:
                out[("mqtt",)] = bridge.stats.quotes_published
                conflated[("mqtt",)] = bridge.stats.quotes_conflated
            yield counter(
                "mdfeed_fanout_ticks_out_total",
                "Ticks delivered to clients: gRPC ticks taken by streams (frame ticks x "
                "clients), MQTT quotes published.",
                out,
                labels=["transport"],
            )
            yield counter(
                "mdfeed_fanout_conflated_ticks_total",
                "Ticks replaced by a newer tick of the same symbol before delivery.",
                conflated,
                labels=["transport"],
            )
            yield counter(
                "mdfeed_fanout_bad_records_total",
                "Tick records that could not be decoded.",
                ticks.bad_records,
            )
            yield counter(
                "mdfeed_fanout_stale_ticks_total",
                "Ticks not newer than the cached one (redelivered), not fanned out.",
                ticks.stale,
            )
            yield counter(
                "mdfeed_fanout_gap_notices_total",
                "GapNotices queued to clients: skipped by conflation, or upstream resyncs.",
                lanes.gaps + ticks.resync_notices,
            )
            yield counter(
                "mdfeed_fanout_resyncs_total", "Upstream sequence restarts seen.", ticks.resyncs
            )
            yield counter(
                "mdfeed_fanout_clients_cut_off_total",
                "Clients disconnected because their lane went past its limits.",
                ticks.cut_off,
            )
            clients = ticks.clients
            yield gauge(
                "mdfeed_fanout_clients",
                "Connected clients, by transport (MQTT clients connect to the broker).",
                {("grpc",): len(clients)},
                labels=["transport"],
            )
            yield gauge(
                "mdfeed_fanout_subscription_groups",
                "Distinct symbol sets among the clients (the per-tick cost).",
                ticks.group_count,
            )
            queued = [client.lane.queued_frames for client in clients]
            yield gauge(
                "mdfeed_fanout_queued_frames",
                "Frames queued for clients, over all lanes.",
                sum(queued),
            )
            yield gauge(
                "mdfeed_fanout_max_client_queue_frames",
                "Frames queued for the client furthest behind.",
                max(queued, default=0),
            )
            yield ticks.bus_latency.family(
                "mdfeed_fanout_bus_latency_seconds",
                "From a record's bus timestamp to its consumption, once per consumed batch.",
            )
        if self._bars is not None:
            yield counter("mdfeed_fanout_bars_total", "Bar updates fanned out.", self._bars.bars)
        if bridge is not None:
            stats = bridge.stats
            yield counter(
                "mdfeed_mqtt_chat_published_total",
                "Chat messages the broker acknowledged (QoS 1).",
                stats.chat_published,
            )
            yield counter(
                "mdfeed_mqtt_chat_dropped_total",
                "Chat publishes refused: too many unacknowledged.",
                stats.chat_dropped,
            )
            yield counter(
                "mdfeed_mqtt_junk_total",
                "Messages on post/ topics dropped as junk.",
                stats.junk,
            )
            yield counter(
                "mdfeed_mqtt_reconnects_total", "Reconnects to the MQTT broker.", stats.reconnects
            )
        chat = self._chat
        if chat is not None:
            yield counter(
                "mdfeed_chat_posted_total", "Chat posts stored and published.", chat.posted
            )
            yield counter(
                "mdfeed_chat_delivered_total",
                "Chat messages handed to members (clients and the MQTT bridge).",
                chat.delivered,
            )
            yield counter("mdfeed_chat_rejected_total", "Chat posts refused.", chat.rejected)


def register_fanout_metrics(metrics: MetricsServer, fanout: FanoutParts) -> None:
    """Expose ``fanout`` (started) on ``metrics``: its collector and its consumers' lag."""
    metrics.register(FanoutCollector.of(fanout))
    if fanout.ticks is not None:
        metrics.add_lag_source("fanout", fanout.ticks)
    if fanout.chat is not None:
        metrics.add_lag_source("chat", fanout.chat)
    if fanout.bars is not None:
        metrics.add_lag_source("bars", fanout.bars)
