"""The tick fanout: bus ticks to per-client lanes, with snapshot-on-subscribe.

``TickFanout`` consumes every partition of the tick topic from the latest offset (every
fanout instance sees all ticks) and keeps the ``SnapshotCache`` current. Clients with the
same symbol set share a ``SubscriptionGroup`` (``fanout.groups``): each tick is added once per
group holding its symbol, and after each batch of records every touched group is framed
once and the shared frames pushed to its members' lanes. So the consume loop costs
O(groups) per tick and O(members) per frame, never O(clients) per tick, and never awaits
per client.

``connect`` makes a ``FanoutClient`` (``fanout.client``) for a transport's connection, with
its own ``TickLane`` (``fanout.lane``); ``subscribe`` queues its snapshot and moves it to the
group of its new symbol set.

Hop timestamps (``hop_timestamps=True``, on in ``mdfeed fanout`` and ``mdfeed run``): each
tick gets ``bus_time_ns`` (the record's bus timestamp) and ``fanout_time_ns`` (when this
batch was consumed) appended to its encoded bytes as it is consumed, so a client, the MQTT
bridge and the snapshot cache all see when the tick passed each hop.

Upstream restart: a tick with ``from_snapshot`` whose seq is lower than the cached one means
the ingest started its sequence again. The symbol is reset in the cache and every group
holding it sends, after the frames of the old sequence,
``GapNotice(reason=GAP_REASON_RESYNC, from_seq=<new seq>, to_seq=<last cached seq>)``:
what the client held up to ``to_seq`` is void and the stream continues at ``from_seq``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence

from fanout.client import DEFAULT_MAX_PENDING_CHAT, FanoutClient
from fanout.frames import SharedFrame, gap_frame
from fanout.groups import SubscriptionGroup, SubscriptionGroups
from fanout.lane import LaneStats, TickLane
from fanout.snapshot_cache import SnapshotCache
from mdfeed.kernel.bus import Bus, BusConsumer, BusRecord
from mdfeed.kernel.lifecycle import Service, cancel_and_wait
from mdfeed.kernel.metrics import Histogram
from mdfeed.kernel.tick_records import TickRecordError, ticks_of
from mdfeed.kernel.varint import encode_varint
from proto import mdfeed_pb2 as pb

__all__ = ["TickFanout"]

log = logging.getLogger(__name__)

#: Ticks per ``TickBatch`` frame: per-message overhead dominates a grpc.aio stream, so batch.
DEFAULT_MAX_BATCH_TICKS = 256
# Tick.bus_time_ns (field 14) and Tick.fanout_time_ns (field 15), varint wire type.
_TAG_BUS_TIME = b"\x70"
_TAG_FANOUT_TIME = b"\x78"


class TickFanout(Service):
    """Consumes ticks from the bus and frames them, per subscription group, for clients."""

    def __init__(
        self,
        bus: Bus,
        *,
        topic: str | None = None,
        max_records: int = 1000,
        poll_timeout_ms: int = 200,
        lane_factory: Callable[[], TickLane] = TickLane,
        max_batch_ticks: int = DEFAULT_MAX_BATCH_TICKS,
        max_pending_chat: int = DEFAULT_MAX_PENDING_CHAT,
        watchdog_interval_s: float = 1.0,
        hop_timestamps: bool = False,
    ) -> None:
        self._bus = bus
        self._hop_timestamps = hop_timestamps
        self._topic = topic if topic is not None else bus.config.tick_topic
        self._max_records = max_records
        self._poll_timeout_ms = poll_timeout_ms
        self._lane_factory = lane_factory
        self._max_batch_ticks = max_batch_ticks
        self._max_pending_chat = max_pending_chat
        self.cache = SnapshotCache()
        self._groups = SubscriptionGroups()
        self._clients: set[FanoutClient] = set()
        self._consumer: BusConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._watchdog_interval_s = watchdog_interval_s
        self._watchdog: asyncio.Task[None] | None = None
        self.records = 0
        #: Ticks in those records (a record holds one or more ticks of its symbol).
        self.ticks_in = 0
        self.bad_records = 0
        self.resyncs = 0
        self.cut_off = 0  # clients whose lane went past its limits
        self.stale = 0  # ticks not newer than the cached one (redelivered), not fanned out
        self.resync_notices = 0  # resync GapNotices queued, one per client of the symbol
        #: Seconds from a record's bus timestamp to its consumption, once per consumed
        #: batch (its first record): how far behind the bus the fanout reads.
        self.bus_latency = Histogram()
        self._retired = LaneStats()  # lane counts of clients gone
        self._listeners: list[Callable[[str, int, bytes], None]] = []

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        consumer = self._bus.consumer([self._topic], from_beginning=False)
        await consumer.start()
        self._consumer = consumer
        self._task = asyncio.create_task(self._consume(consumer), name="tick-fanout")
        self._watchdog = asyncio.create_task(self._watch(), name="tick-fanout-watchdog")

    async def stop(self) -> None:
        for task in (self._task, self._watchdog):
            await cancel_and_wait(task)
        self._task = self._watchdog = None
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()
        for client in list(self._clients):
            client.close("fanout stopped")
            self.disconnect(client)

    # -- clients --------------------------------------------------------------------

    def connect(self) -> FanoutClient:
        client = FanoutClient(self._lane_factory(), max_pending_chat=self._max_pending_chat)
        self._clients.add(client)
        return client

    def disconnect(self, client: FanoutClient) -> None:
        self.unsubscribe(client, list(client.symbols))
        if client in self._clients:
            self._clients.remove(client)
            self._retired.add(client.lane.stats)

    def lane_totals(self) -> LaneStats:
        """Lane counts summed over every client, connected or gone (for metrics)."""
        totals = LaneStats()
        totals.add(self._retired)
        for client in self._clients:
            totals.add(client.lane.stats)
        return totals

    @property
    def clients(self) -> frozenset[FanoutClient]:
        """The connected clients now."""
        return frozenset(self._clients)

    def lag(self) -> dict[str, int]:
        """Records of the tick topic not consumed yet (see BusConsumer.lag)."""
        return self._consumer.lag() if self._consumer is not None else {}

    def subscribe(self, client: FanoutClient, symbols: Iterable[str]) -> None:
        """Snapshot first (in the lane, in order), then updates after it."""
        new = [s for s in dict.fromkeys(symbols) if s not in client.symbols]
        if not new or client.lane.closed:
            return
        client.push_frame(self.cache.snapshot_frame(new))
        client.symbols.update(new)
        self._groups.place(client, client.symbols)

    def unsubscribe(self, client: FanoutClient, symbols: Iterable[str]) -> None:
        """Stop ``symbols``; frames already queued for the client may still carry them."""
        gone = [s for s in symbols if s in client.symbols]
        if not gone:
            return
        client.symbols.difference_update(gone)
        self._groups.place(client, client.symbols)

    @property
    def group_count(self) -> int:
        """Distinct symbol sets among the clients: the fanout's per-tick cost."""
        return len(self._groups)

    def add_listener(self, listener: Callable[[str, int, bytes], None]) -> None:
        """Call ``listener(symbol, seq, encoded_tick)`` for every tick, every symbol.

        For whole-feed consumers inside the process (the MQTT bridge). It runs in the
        consume loop: it must only queue, never block or await.
        """
        self._listeners.append(listener)

    @property
    def client_count(self) -> int:
        return len(self._clients)

    def check_limits(self) -> None:
        """Cut off clients whose lane is past its limits (stuck, or overflowing).

        A client that stopped reading leaves its writer blocked by flow control, so the
        transport cannot notice; this closes its lane (freeing it, taking no more frames) and
        the transport ends the call with the lane's reason once it gets to write again.
        """
        for client in list(self._clients):
            if client.lane.closed:
                continue
            reason = client.lane.disconnect_reason()
            if reason is not None:
                log.warning("cutting off a client: %s", reason)
                self.cut_off += 1
                self.unsubscribe(client, list(client.symbols))
                client.close(reason)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._watchdog_interval_s)
            self.check_limits()

    # -- the consume loop -----------------------------------------------------------

    async def _consume(self, consumer: BusConsumer) -> None:
        observe = self.bus_latency.observe
        while True:
            records = await consumer.getmany(
                timeout_ms=self._poll_timeout_ms, max_records=self._max_records
            )
            if records:
                observe(time.time() - records[0].timestamp_ms * 0.001)
                self.ingest(records)
                # getmany returns without suspending while records are buffered: yield, or
                # a backlog would starve the writers that take the frames to the clients.
                await asyncio.sleep(0)

    def ingest(self, records: Sequence[BusRecord]) -> None:  # noqa: PLR0912 - one inlined tick loop
        """Apply tick records: cache, resync detection, group frames. Never awaits.

        Each tick is added once to each group holding its symbol; the groups are framed
        and pushed to their members at the end, so a snapshot taken between two calls
        lines up with the frames that follow it.
        """
        self.records += len(records)
        cache = self.cache
        groups_by_symbol = self._groups.by_symbol
        listeners = self._listeners
        touched: set[SubscriptionGroup] = set()
        from_string = pb.Tick.FromString
        stamp = self._hop_timestamps
        if stamp:
            fanout_field = _TAG_FANOUT_TIME + encode_varint(time.time_ns())
            stamp_ms = -1
            suffix = fanout_field
        for record in records:
            try:
                encoded_ticks = ticks_of(record.value)
            except TickRecordError:  # a junk record must not stop the fanout
                self.bad_records += 1
                continue
            self.ticks_in += len(encoded_ticks)
            if stamp and record.timestamp_ms != stamp_ms:
                # Appended fields override earlier ones of the same number when parsed, so
                # the stamps need no re-encoding; one suffix serves a run of records with
                # the same bus timestamp (nearly a whole batch).
                stamp_ms = record.timestamp_ms
                suffix = (
                    _TAG_BUS_TIME + encode_varint(stamp_ms * 1_000_000) + fanout_field
                    if stamp_ms > 0
                    else fanout_field
                )
            for raw in encoded_ticks:
                encoded = raw + suffix if stamp else raw
                try:
                    tick = from_string(encoded)
                except Exception:  # a junk tick must not stop the fanout
                    self.bad_records += 1
                    continue
                symbol = tick.symbol
                seq = tick.seq
                if not symbol:
                    self.bad_records += 1
                    continue
                groups = groups_by_symbol.get(symbol)
                if tick.from_snapshot:
                    cached = cache.get(symbol)
                    if cached is not None and seq < cached.seq:
                        self._resync(symbol, seq, cached.seq, groups)
                if not cache.update(symbol, seq, encoded):
                    self.stale += 1  # not newer than what clients already have
                    continue
                if groups:
                    for group in groups:
                        group.add(symbol, seq, encoded)
                        touched.add(group)
                for listener in listeners:
                    listener(symbol, seq, encoded)
        max_batch = self._max_batch_ticks
        for group in touched:
            group.flush(max_batch)

    def _resync(
        self,
        symbol: str,
        new_seq: int,
        old_seq: int,
        groups: list[SubscriptionGroup] | None,
    ) -> None:
        self.resyncs += 1
        log.info("upstream resync of %s: seq %d after %d", symbol, new_seq, old_seq)
        self.cache.reset(symbol)
        if not groups:
            return
        notice = SharedFrame.notice(
            gap_frame(symbol=symbol, from_seq=new_seq, to_seq=old_seq, reason=pb.GAP_REASON_RESYNC),
            resync=symbol,
        )
        max_batch = self._max_batch_ticks
        for group in groups:
            group.flush(max_batch)  # the old sequence's ticks go before the notice
            group.broadcast(notice)
            self.resync_notices += len(group.members)
