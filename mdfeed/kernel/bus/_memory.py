"""The in-process bus: Kafka's model (topics, partitions, offsets, groups) in one process.

Everything happens in the event loop that uses it; nothing is shared across processes or
kept across restarts: every bus starts empty, with offsets from 0, so each has an
incarnation of its own (a fresh uuid and the topic, :meth:`MemoryBus.incarnation`) and
offsets recorded on another bus are not taken for its own. What it keeps:

* Topics are created on first use (by a producer, a consumer or :meth:`MemoryBus.start` for
  the configured ones) with ``tick_partitions`` partitions. A keyed record goes to the
  partition Kafka's default partitioner would choose (:mod:`mdfeed.kernel.bus.partitioning`).
* Retention: each partition keeps at least its newest ``retention_records`` records and at
  most 1.25 times that; older ones are deleted in chunks and the partition's start offset
  moves on, as Kafka's retention does. A consumer whose position has been deleted jumps,
  like a Kafka consumer after OffsetOutOfRange, to the oldest record kept
  (``from_beginning``) or to the end; ``skipped`` counts the records it missed.
* Groups: the members of a group split the partitions round-robin; every join or leave
  reassigns all partitions of the group (as Kafka's eager rebalance does) and each member
  continues from the group's committed offsets, else from the beginning or the end.
  Committed offsets live as long as the bus.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence

from mdfeed.kernel.bus._buffered import BufferedProducer, Record
from mdfeed.kernel.bus.errors import BusClosedError, CommitFailedError
from mdfeed.kernel.bus.partitioning import KeyPartitioner
from mdfeed.kernel.bus.ports import BusRecord, ResumedCallback
from mdfeed.kernel.config import BusConfig
from mdfeed.kernel.lifecycle import Service

__all__ = ["MemoryBus", "MemoryConsumer", "MemoryProducer"]

TopicPartition = tuple[str, int]

#: Default per-partition retention: with 6 partitions of ~100-byte ticks, about 300K
#: records, some tens of MB; at the simulated venue's 2,000 ticks/s, 150 s of history.
DEFAULT_RETENTION_RECORDS = 50_000


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class _PartitionLog:
    __slots__ = ("keep", "records", "start")

    def __init__(self, keep: int) -> None:
        self.records: list[BusRecord] = []
        self.start = 0
        self.keep = keep

    @property
    def end(self) -> int:
        return self.start + len(self.records)

    def trim(self) -> None:
        # Delete in chunks of keep/4: one list shift per chunk, not one per record.
        excess = len(self.records) - self.keep
        if excess > self.keep // 4:
            del self.records[:excess]
            self.start += excess

    def read(self, position: int, count: int) -> list[BusRecord]:
        index = position - self.start
        return self.records[index : index + count]


class _Topic:
    __slots__ = ("logs", "name", "partitioner")

    def __init__(self, name: str, partitions: int, keep: int) -> None:
        self.name = name
        self.logs = [_PartitionLog(keep) for _ in range(partitions)]
        self.partitioner = KeyPartitioner(partitions)


class _Group:
    __slots__ = ("committed", "members")

    def __init__(self) -> None:
        self.members: list[MemoryConsumer] = []
        self.committed: dict[TopicPartition, int] = {}


class MemoryBus(Service):
    """An in-process bus with Kafka's partitioning, offsets, groups and bounded retention."""

    def __init__(
        self,
        config: BusConfig | None = None,
        *,
        retention_records: int = DEFAULT_RETENTION_RECORDS,
        stop_timeout_s: float = 5.0,
        clock_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        if retention_records < 1:
            raise ValueError(f"retention_records must be at least 1, got {retention_records}")
        self._config = config if config is not None else BusConfig(kind="memory")
        self._retention = retention_records
        self._stop_timeout_s = stop_timeout_s
        self._clock_ms = clock_ms
        self._topics: dict[str, _Topic] = {}
        self._groups: dict[str, _Group] = {}
        self._arrived = asyncio.Event()
        self._producers: list[MemoryProducer] = []
        self._consumers: list[MemoryConsumer] = []
        self._id = uuid.uuid4()

    @property
    def config(self) -> BusConfig:
        return self._config

    async def incarnation(self, topic: str) -> str:
        """``memory:``, this bus's own uuid (its logs began with it) and the topic."""
        return f"memory:{self._id}/{topic}"

    async def start(self) -> None:
        self.topic_partitions(self._config.tick_topic)
        self.topic_partitions(self._config.chat_topic)

    async def stop(self) -> None:
        producers, self._producers = self._producers, []
        consumers, self._consumers = self._consumers, []
        for producer in producers:
            await producer.stop()
        for consumer in consumers:
            await consumer.stop()

    def producer(self, *, on_resumed: ResumedCallback | None = None) -> MemoryProducer:
        producer = MemoryProducer(self, on_resumed=on_resumed, stop_timeout_s=self._stop_timeout_s)
        self._producers.append(producer)
        return producer

    def consumer(
        self,
        topics: Sequence[str],
        *,
        group_id: str | None = None,
        from_beginning: bool = False,
    ) -> MemoryConsumer:
        consumer = MemoryConsumer(self, topics, group_id=group_id, from_beginning=from_beginning)
        self._consumers.append(consumer)
        return consumer

    def topic_partitions(self, topic: str) -> int:
        """The partition count of ``topic``, creating it if needed."""
        return len(self._topic(topic).logs)

    # --- used by the producer and consumers ---------------------------------------------

    def _topic(self, name: str) -> _Topic:
        topic = self._topics.get(name)
        if topic is None:
            topic = self._topics[name] = _Topic(name, self._config.tick_partitions, self._retention)
        return topic

    def _append(self, window: list[Record]) -> None:
        timestamp_ms = self._clock_ms()
        make = tuple.__new__  # BusRecord without NamedTuple's Python-level __new__
        current = ""
        topic: _Topic | None = None
        touched: list[_Topic] = []
        memo: dict[bytes, int] = {}
        for record in window:
            name, key, value = record
            if name != current or topic is None:
                current = name
                topic = self._topic(name)
                memo = topic.partitioner.memo
                touched.append(topic)
            partition = memo.get(key)
            if partition is None:
                partition = topic.partitioner(key)
            log = topic.logs[partition]
            records = log.records
            records.append(
                make(
                    BusRecord, (name, partition, log.start + len(records), key, value, timestamp_ms)
                )
            )
        for topic in touched:
            for log in topic.logs:
                log.trim()
        arrived, self._arrived = self._arrived, asyncio.Event()
        arrived.set()

    def _join(self, group_id: str, member: MemoryConsumer) -> None:
        group = self._groups.setdefault(group_id, _Group())
        group.members.append(member)
        self._rebalance(group)

    def _leave(self, group_id: str, member: MemoryConsumer) -> None:
        group = self._groups[group_id]
        group.members.remove(member)
        self._rebalance(group)

    def _rebalance(self, group: _Group) -> None:
        topics = sorted({topic for member in group.members for topic in member.topics})
        shares: dict[int, list[TopicPartition]] = {id(m): [] for m in group.members}
        turn = 0
        for topic in topics:
            subscribed = [m for m in group.members if topic in m.topics]
            for partition in range(self.topic_partitions(topic)):
                member = subscribed[turn % len(subscribed)]
                turn += 1
                shares[id(member)].append((topic, partition))
        for member in group.members:
            member._assign(shares[id(member)], group.committed)

    def _commit(self, group_id: str, positions: dict[TopicPartition, int]) -> None:
        self._groups[group_id].committed.update(positions)

    def _log(self, tp: TopicPartition) -> _PartitionLog:
        return self._topic(tp[0]).logs[tp[1]]


class MemoryProducer(BufferedProducer):
    """The buffered producer of a :class:`MemoryBus`; records reach it in windows."""

    def __init__(
        self, bus: MemoryBus, *, on_resumed: ResumedCallback | None, stop_timeout_s: float
    ) -> None:
        config = bus.config
        super().__init__(
            buffer_max_records=config.buffer_max_records,
            # In process there is no request to fill: deliver on the next loop turn.
            linger_ms=0,
            on_resumed=on_resumed,
            max_window_records=20_000,
            stop_timeout_s=stop_timeout_s,
            stall_timeout_s=60.0,
            reconnect_backoff_s=(0.1, 1.0),
            name=f"{config.client_id}-memory-producer",
        )
        self._bus = bus

    async def _open_session(self) -> None:
        return None

    async def _deliver(self, window: list[Record]) -> tuple[list[Record], int]:
        self._bus._append(window)
        return [], 0

    async def _close_session(self, *, abandon: bool) -> None:
        return None


class MemoryConsumer(Service):
    """A consumer of a :class:`MemoryBus` (see :class:`~mdfeed.kernel.bus.ports.BusConsumer`)."""

    def __init__(
        self,
        bus: MemoryBus,
        topics: Sequence[str],
        *,
        group_id: str | None,
        from_beginning: bool,
    ) -> None:
        if isinstance(topics, str) or not topics:
            raise ValueError("topics must be a non-empty sequence of topic names")
        self._bus = bus
        self.topics: tuple[str, ...] = tuple(dict.fromkeys(topics))
        self._group_id = group_id
        self._from_beginning = from_beginning
        self._positions: dict[TopicPartition, int] = {}
        self._order: list[TopicPartition] = []
        self._next = 0
        self._state = "new"
        #: Records deleted by retention before this consumer read them.
        self.skipped = 0

    async def start(self) -> None:
        if self._state != "new":
            return
        self._state = "running"
        for topic in self.topics:
            self._bus.topic_partitions(topic)
        if self._group_id is None:
            every = [(t, p) for t in self.topics for p in range(self._bus.topic_partitions(t))]
            self._assign(every, {})
        else:
            self._bus._join(self._group_id, self)

    async def stop(self) -> None:
        if self._state == "stopped":
            return
        was_running = self._state == "running"
        self._state = "stopped"
        if was_running and self._group_id is not None:
            self._bus._leave(self._group_id, self)
        self._positions.clear()
        self._order = []

    async def getmany(self, timeout_ms: int = 0, max_records: int = 1000) -> list[BusRecord]:
        self._check_running()
        deadline = asyncio.get_running_loop().time() + timeout_ms / 1000
        while True:
            arrived = self._bus._arrived
            records = self._take(max_records)
            if records:
                return records
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return []
            try:
                async with asyncio.timeout(remaining):
                    await arrived.wait()
            except TimeoutError:
                return []
            self._check_running()

    async def commit(self) -> None:
        self._check_running()
        if self._group_id is None:
            raise CommitFailedError("commit() needs a consumer with a group_id")
        self._bus._commit(self._group_id, dict(self._positions))

    def assignment(self) -> frozenset[TopicPartition]:
        return frozenset(self._order)

    def lag(self) -> dict[str, int]:
        lag: dict[str, int] = {}
        for tp, position in self._positions.items():
            log = self._bus._log(tp)
            # A position retention deleted jumps on the next read (see _take): count from there.
            start = self._reset_position(tp) if position < log.start else position
            lag[tp[0]] = lag.get(tp[0], 0) + log.end - start
        return lag

    # --- internals ----------------------------------------------------------------------

    def _check_running(self) -> None:
        if self._state != "running":
            raise BusClosedError(f"consumer is {self._state}; start() it (or make a new one)")

    def _reset_position(self, tp: TopicPartition) -> int:
        log = self._bus._log(tp)
        return log.start if self._from_beginning else log.end

    def _assign(self, tps: list[TopicPartition], committed: dict[TopicPartition, int]) -> None:
        self._order = list(tps)
        self._next = 0
        self._positions = {
            tp: committed[tp] if tp in committed else self._reset_position(tp) for tp in tps
        }

    def _take(self, max_records: int) -> list[BusRecord]:
        out: list[BusRecord] = []
        order = self._order
        count = len(order)
        for i in range(count):
            if len(out) >= max_records:
                break
            tp = order[(self._next + i) % count]
            log = self._bus._log(tp)
            position = self._positions[tp]
            if position < log.start:
                reset = self._reset_position(tp)
                self.skipped += reset - position
                position = reset
            chunk = log.read(position, max_records - len(out))
            if chunk:
                out.extend(chunk)
                self._positions[tp] = position + len(chunk)
        if count:
            # Start with the next partition next time, so no partition starves the others.
            self._next = (self._next + 1) % count
        return out
