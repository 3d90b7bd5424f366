"""The tick fanout: bus ticks to per-client lanes, with snapshot-on-subscribe.

``TickFanout`` consumes every partition of the tick topic from the latest offset (every
fanout instance sees all ticks), keeps the ``SnapshotCache`` current and offers each encoded
tick to the lanes of the clients subscribed to its symbol. The consume loop does O(1) work
per record and subscriber and never awaits per client: ``TickLane.offer`` only queues.

A ``FanoutClient`` is one connection: its ``TickLane`` plus a small queue of control frames
(snapshots, gap notices, errors) that the transport sends before the next tick batch.

Upstream restart: a tick with ``from_snapshot`` whose seq is lower than the cached one means
the ingest started its sequence again. The symbol is reset in the cache, each subscribed
lane forgets the symbol (its old floor would drop the new ticks as stale) and its client is
sent ``GapNotice(reason=GAP_REASON_RESYNC, from_seq=<new seq>, to_seq=<last cached seq>)``:
what the client held up to ``to_seq`` is void and the stream continues at ``from_seq``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from types import TracebackType
from typing import Self

from fanout.frames import gap_frame
from fanout.lane import SnapshotCache, TickLane
from mdfeed.bus import Bus, BusConsumer, BusRecord
from proto import mdfeed_pb2 as pb

__all__ = ["FanoutClient", "TickFanout"]

log = logging.getLogger(__name__)

#: Ticks per ``TickBatch`` frame: per-message overhead dominates a grpc.aio stream, so batch.
DEFAULT_MAX_BATCH_TICKS = 256
#: Undelivered chat frames a client may hold before it is disconnected.
DEFAULT_MAX_PENDING_CHAT = 10_000


class FanoutClient:
    """One connected client: its tick lane and its pending control frames."""

    def __init__(
        self,
        lane: TickLane,
        *,
        max_batch_ticks: int = DEFAULT_MAX_BATCH_TICKS,
        max_pending_chat: int = DEFAULT_MAX_PENDING_CHAT,
    ) -> None:
        self.lane = lane
        self.max_batch_ticks = max_batch_ticks
        self.max_pending_chat = max_pending_chat
        self.symbols: set[str] = set()
        self._control: deque[bytes] = deque()
        self._chat: deque[bytes] = deque()
        self._wake = asyncio.Event()

    def deliver_chat(self, message: pb.ChatMessage, frame: bytes) -> None:
        """Queue a chat frame; chat is never dropped, so a client too far behind is closed.

        It can reconnect and resume from its last seq without losing anything.
        """
        if self.lane.closed:
            return
        if len(self._chat) >= self.max_pending_chat:
            self.close(
                f"chat backlog: {len(self._chat)} undelivered chat messages "
                f"(limit {self.max_pending_chat}); resume from seq to continue"
            )
            return
        self._chat.append(frame)
        self._wake.set()

    def offer(self, symbol: str, seq: int, encoded: bytes) -> None:
        self.lane.offer(symbol, seq, encoded)
        self._wake.set()

    def push(self, frame: bytes) -> None:
        """Queue a control frame (snapshot, gap notice, error) ahead of the next batch."""
        self._control.append(frame)
        self._wake.set()

    def close(self, reason: str) -> None:
        self.lane.close(reason)
        self._wake.set()

    async def frames(self, *, check_interval_s: float = 0.5) -> AsyncIterator[bytes]:
        """Encoded server frames until the lane must disconnect; then the iterator ends.

        Control frames go first, then each batch's conflation gap notices, then the batch.
        """
        lane = self.lane
        control = self._control
        chat = self._chat
        while True:
            while control:
                yield control.popleft()
            while chat and not lane.closed:
                yield chat.popleft()
            if lane.disconnect_reason() is not None:
                return
            batch = lane.take_batch(self.max_batch_ticks)
            if batch is not None:
                for gap in batch.gaps:
                    yield gap.frame()
                yield batch.frame
                continue
            self._wake.clear()
            if control or chat or lane.pending:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(check_interval_s):
                    await self._wake.wait()


class TickFanout:
    """Consumes ticks from the bus and offers them to subscribed clients' lanes."""

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
    ) -> None:
        self._bus = bus
        self._topic = topic if topic is not None else bus.config.tick_topic
        self._max_records = max_records
        self._poll_timeout_ms = poll_timeout_ms
        self._lane_factory = lane_factory
        self._max_batch_ticks = max_batch_ticks
        self._max_pending_chat = max_pending_chat
        self.cache = SnapshotCache()
        self._subscribers: dict[str, set[FanoutClient]] = {}
        self._clients: set[FanoutClient] = set()
        self._consumer: BusConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._watchdog_interval_s = watchdog_interval_s
        self._watchdog: asyncio.Task[None] | None = None
        self.records = 0
        self.bad_records = 0
        self.resyncs = 0
        self.cut_off = 0  # clients whose lane went past its limits
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
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._watchdog = None
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()
        for client in list(self._clients):
            client.close("fanout stopped")
            self.disconnect(client)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- clients --------------------------------------------------------------------

    def connect(self) -> FanoutClient:
        client = FanoutClient(
            self._lane_factory(),
            max_batch_ticks=self._max_batch_ticks,
            max_pending_chat=self._max_pending_chat,
        )
        self._clients.add(client)
        return client

    def disconnect(self, client: FanoutClient) -> None:
        self.unsubscribe(client, list(client.symbols))
        self._clients.discard(client)

    def subscribe(self, client: FanoutClient, symbols: Iterable[str]) -> None:
        """Snapshot first (queued as a control frame), then updates after it."""
        new = [s for s in dict.fromkeys(symbols) if s not in client.symbols]
        if not new or client.lane.closed:
            return
        frame, seqs = self.cache.snapshot(new)
        client.push(frame)
        for symbol in new:
            client.symbols.add(symbol)
            self._subscribers.setdefault(symbol, set()).add(client)
            seq = seqs.get(symbol)
            if seq is not None:
                client.lane.start_after(symbol, seq)

    def unsubscribe(self, client: FanoutClient, symbols: Iterable[str]) -> None:
        for symbol in symbols:
            if symbol not in client.symbols:
                continue
            client.symbols.discard(symbol)
            client.lane.forget(symbol)
            subscribers = self._subscribers.get(symbol)
            if subscribers is not None:
                subscribers.discard(client)
                if not subscribers:
                    del self._subscribers[symbol]

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
        transport cannot notice; this closes its lane (freeing it and ending its offers) and
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
        while True:
            records = await consumer.getmany(
                timeout_ms=self._poll_timeout_ms, max_records=self._max_records
            )
            if records:
                self.ingest(records)

    def ingest(self, records: Iterable[BusRecord]) -> None:
        """Apply tick records: cache, resync detection, offers. Never awaits."""
        cache = self.cache
        subscribers = self._subscribers
        from_string = pb.Tick.FromString
        for record in records:
            self.records += 1
            encoded = record.value
            try:
                tick = from_string(encoded)
            except Exception:  # a junk record must not stop the fanout
                self.bad_records += 1
                continue
            symbol = tick.symbol
            seq = tick.seq
            if not symbol:
                self.bad_records += 1
                continue
            clients = subscribers.get(symbol)
            if tick.from_snapshot:
                cached = cache.get(symbol)
                if cached is not None and seq < cached.seq:
                    self._resync(symbol, seq, cached.seq, clients)
            cache.update(symbol, seq, encoded)
            if clients:
                for client in clients:
                    client.offer(symbol, seq, encoded)
            for listener in self._listeners:
                listener(symbol, seq, encoded)

    def _resync(
        self, symbol: str, new_seq: int, old_seq: int, clients: set[FanoutClient] | None
    ) -> None:
        self.resyncs += 1
        log.info("upstream resync of %s: seq %d after %d", symbol, new_seq, old_seq)
        self.cache.reset(symbol)
        if not clients:
            return
        notice = gap_frame(
            symbol=symbol, from_seq=new_seq, to_seq=old_seq, reason=pb.GAP_REASON_RESYNC
        )
        for client in clients:
            client.lane.forget(symbol)
            client.push(notice)
