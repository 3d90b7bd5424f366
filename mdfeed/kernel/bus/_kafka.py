"""The Kafka adapter, on aiokafka: an idempotent buffered producer and plain consumers.

Producer
--------
``send()`` appends to the bounded buffer of :mod:`mdfeed.kernel.bus._buffered`; the drain task
takes a window of records, places each by key with Kafka's default partitioner, packs them
into closed record batches (``create_batch``/``send_batch``: one await per batch, not per
record) and waits for the whole window to be acknowledged before the next. The producer is
idempotent (``enable_idempotence=True``, ``acks=all``): aiokafka retries a batch, in order,
for as long as the broker is away, and the broker drops the copies a retry may create.

Unavailable at start: ``start()`` returns at once; the drain keeps trying to connect (and to
create the topics) with exponential backoff from 0.1 s to 5 s while ``send()`` buffers.

Outage mid-stream: the window being delivered waits in aiokafka, which retries it until the
broker answers again; after ``stall_timeout_s`` without an acknowledgement
``stats.connected`` turns False. Meanwhile ``send()`` keeps buffering.

Overflow policy: when the buffer holds ``buffer_max_records`` records (waiting or in
flight), ``send()`` drops the record it is given: the NEWEST records are dropped, counted in
``stats.dropped``, and the older ones already buffered are kept and delivered in order. Once
the bus confirms deliveries again and the buffer is back under half its bound,
``on_resumed`` is called (once per outage or overflow episode): the ingest then requests a
fresh FIX snapshot so that consumers resynchronise over the gap the dropped records left.

Failures: a window that fails (the producer was fenced, a request timed out in the client,
the session died) goes back to the front of the buffer, the aiokafka producer is discarded
and a new one is started, with backoff. Records the old session had written but not had
acknowledged can then appear twice (at-least-once across a new session); their order per
key is kept. Records the broker refuses for good (too large, not authorised) are dropped
and counted like an overflow.

Topics are created on first use with ``tick_partitions`` partitions (an existing topic is
used as it is); nothing relies on the broker's auto-creation.

Incarnation (:meth:`KafkaBus.incarnation`): the cluster id, from one metadata request, and
the topic, so offsets recorded on one cluster's topic are not taken for another's (a stack
created anew, a renamed ``bus.tick_topic``). A topic deleted and created again under its
name on the same cluster is not told apart: topic ids came with metadata version 10, and
aiokafka asks version 5 at most.

Consumers use ``AIOKafkaConsumer`` with auto-commit off: without a group they are assigned
every partition of their topics; with a ``group_id`` they subscribe and Kafka's group
coordinator splits the partitions among the members.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.codec import has_gzip, has_lz4, has_snappy, has_zstd
from aiokafka.errors import CommitFailedError as AIOKafkaCommitFailedError
from aiokafka.errors import IllegalStateError, KafkaError
from aiokafka.structs import TopicPartition

from mdfeed.kernel.bus._buffered import BufferedProducer, Record, SessionError
from mdfeed.kernel.bus._kafka_producing import KeyPlacement, buffering_of
from mdfeed.kernel.bus.errors import BusClosedError, BusUnavailableError, CommitFailedError
from mdfeed.kernel.bus.ports import BusRecord, ResumedCallback
from mdfeed.kernel.config import BusConfig
from mdfeed.kernel.lifecycle import Service

__all__ = ["Compression", "KafkaBus", "KafkaConsumer", "KafkaProducer"]

log = logging.getLogger("mdfeed.kernel.bus")

Compression = Literal["none", "gzip", "snappy", "lz4", "zstd"]

#: The records of one record batch, and the future aiokafka resolves when it is acknowledged.
_Batch = tuple[list[Record], "asyncio.Future[Any]"]

_TOPIC_ALREADY_EXISTS = 36
#: Record batches the producer builds: big enough that a window of records for one
#: partition fits in one or two batches, under the broker's 1 MiB message.max.bytes.
_BATCH_BYTES = 512 * 1024


class KafkaBus(Service):
    """Producers and consumers on a Kafka cluster (``config.bootstrap_servers``).

    Beyond the config: ``compression`` of record batches ("none" by default: on loopback
    lz4 cost more CPU than it saved, see bench/test_bus_bench.py; the others need cramjam);
    ``request_timeout_ms`` for each Kafka request; ``stall_timeout_s`` without an
    acknowledgement before a producer reports ``connected=False``; ``stop_timeout_s`` that a
    producer's stop() spends delivering; ``join_timeout_s`` a group consumer's start()
    waits for its first assignment.
    """

    def __init__(
        self,
        config: BusConfig,
        *,
        compression: Compression = "none",
        request_timeout_ms: int = 30_000,
        stall_timeout_s: float = 2.0,
        stop_timeout_s: float = 5.0,
        join_timeout_s: float = 30.0,
    ) -> None:
        available = {"gzip": has_gzip, "snappy": has_snappy, "lz4": has_lz4, "zstd": has_zstd}
        if compression != "none" and not available[compression]():
            raise ValueError(f"compression {compression!r} needs cramjam (pip install cramjam)")
        self._config = config
        self._compression = compression
        self._request_timeout_ms = request_timeout_ms
        self._stall_timeout_s = stall_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._join_timeout_s = join_timeout_s
        self._partitions: dict[str, int] = {}
        self._topics_lock: asyncio.Lock | None = None
        self._cluster_id: str | None = None
        self._producers: list[BufferedProducer] = []
        self._consumers: list[KafkaConsumer] = []

    @property
    def config(self) -> BusConfig:
        return self._config

    @property
    def compression(self) -> Compression:
        return self._compression

    @property
    def request_timeout_ms(self) -> int:
        return self._request_timeout_ms

    @property
    def stall_timeout_s(self) -> float:
        return self._stall_timeout_s

    @property
    def stop_timeout_s(self) -> float:
        return self._stop_timeout_s

    async def start(self) -> None:
        # Nothing to connect: producers connect in the background, consumers when started.
        return None

    async def stop(self) -> None:
        producers, self._producers = self._producers, []
        consumers, self._consumers = self._consumers, []
        for producer in producers:
            await producer.stop()
        for consumer in consumers:
            await consumer.stop()

    def producer(self, *, on_resumed: ResumedCallback | None = None) -> BufferedProducer:
        producer: BufferedProducer
        if self._config.kafka_producer == "confluent":
            from mdfeed.kernel.bus._confluent import ConfluentProducer

            producer = ConfluentProducer(self, on_resumed=on_resumed)
        else:
            producer = KafkaProducer(self, on_resumed=on_resumed)
        self._producers.append(producer)
        return producer

    def consumer(
        self,
        topics: Sequence[str],
        *,
        group_id: str | None = None,
        from_beginning: bool = False,
    ) -> KafkaConsumer:
        consumer = KafkaConsumer(self, topics, group_id=group_id, from_beginning=from_beginning)
        self._consumers.append(consumer)
        return consumer

    async def ensure_topics(self, topics: Sequence[str]) -> dict[str, int]:
        """Create the missing ones of ``topics`` (``tick_partitions`` partitions each).

        Returns each topic's partition count. Raises :class:`BusUnavailableError` when
        Kafka cannot be reached or refuses.
        """
        if self._topics_lock is None:
            self._topics_lock = asyncio.Lock()
        async with self._topics_lock:
            missing = [t for t in dict.fromkeys(topics) if t not in self._partitions]
            if missing:
                await self._create_topics(missing)
        return {topic: self._partitions[topic] for topic in topics}

    async def incarnation(self, topic: str) -> str:
        """``kafka:``, the cluster id (asked once per bus) and the topic; BusUnavailableError."""
        if self._cluster_id is None:
            config = self._config
            admin = self._admin()
            try:
                await admin.start()
                cluster = await admin.describe_cluster()
            except KafkaError as exc:
                raise BusUnavailableError(
                    f"kafka at {config.bootstrap_servers} unavailable: {exc!r}"
                ) from exc
            finally:
                await admin.close()
            cluster_id = cluster.get("cluster_id")
            if not cluster_id:
                raise BusUnavailableError(
                    f"kafka at {config.bootstrap_servers} did not say its cluster id: {cluster}"
                )
            self._cluster_id = str(cluster_id)
        return f"kafka:{self._cluster_id}/{topic}"

    def _admin(self) -> AIOKafkaAdminClient:
        config = self._config
        return AIOKafkaAdminClient(
            bootstrap_servers=config.bootstrap_servers,
            client_id=f"{config.client_id}-admin",
            request_timeout_ms=self._request_timeout_ms,
        )

    async def _create_topics(self, topics: list[str]) -> None:
        config = self._config
        admin = self._admin()
        try:
            await admin.start()
            # list_topics, not a metadata request for the names: that would let a broker
            # with auto.create.topics.enable create them with its own partition count.
            existing = set(await admin.list_topics())
            to_create = [t for t in topics if t not in existing]
            if to_create:
                response = await admin.create_topics(
                    [NewTopic(t, config.tick_partitions, 1) for t in to_create]
                )
                for topic, code, *message in response.topic_errors:
                    if code not in (0, _TOPIC_ALREADY_EXISTS):
                        raise BusUnavailableError(
                            f"cannot create topic {topic!r}: error {code} {message}"
                        )
            self._partitions.update(await self._partition_counts(admin, topics))
        except KafkaError as exc:
            raise BusUnavailableError(
                f"kafka at {config.bootstrap_servers} unavailable: {exc!r}"
            ) from exc
        finally:
            await admin.close()

    async def _partition_counts(
        self, admin: AIOKafkaAdminClient, topics: list[str]
    ) -> dict[str, int]:
        # A topic just created may be listed before its partitions are: ask again shortly.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._request_timeout_ms / 1000
        while True:
            counts = {d["topic"]: len(d["partitions"]) for d in await admin.describe_topics(topics)}
            if all(counts.get(t, 0) > 0 for t in topics):
                return counts
            if loop.time() > deadline:
                raise BusUnavailableError(f"kafka reports no partitions for {topics}: {counts}")
            await asyncio.sleep(0.1)


class KafkaProducer(BufferedProducer):
    """The buffered, idempotent producer of a :class:`KafkaBus`."""

    def __init__(self, bus: KafkaBus, *, on_resumed: ResumedCallback | None) -> None:
        super().__init__(on_resumed=on_resumed, **buffering_of(bus))
        self._bus = bus
        self._client: AIOKafkaProducer | None = None
        self._placement = KeyPlacement(bus)

    async def _open_session(self) -> None:
        bus = self._bus
        config = bus.config
        try:
            await bus.ensure_topics([config.tick_topic, config.chat_topic])
        except BusUnavailableError as exc:
            raise SessionError(str(exc)) from exc
        client = AIOKafkaProducer(
            bootstrap_servers=config.bootstrap_servers,
            client_id=config.client_id,
            enable_idempotence=True,
            acks="all",
            # Windows are packed into closed batches, which aiokafka sends without lingering;
            # linger_ms applies when the drain wakes up from idle (see _buffered).
            linger_ms=0,
            compression_type=None if bus._compression == "none" else bus._compression,
            max_batch_size=_BATCH_BYTES,
            request_timeout_ms=bus._request_timeout_ms,
        )
        try:
            await client.start()
        except KafkaError as exc:
            await client.stop()
            raise SessionError(f"kafka at {config.bootstrap_servers}: {exc!r}") from exc
        self._client = client

    async def _deliver(self, window: list[Record]) -> tuple[list[Record], int]:
        client = self._client
        assert client is not None
        try:
            placed = await self._placement.place(window)
        except BusUnavailableError as exc:
            log.warning("%s: %s", self._name, exc)
            return window, 0

        timestamp_ms = time.time_ns() // 1_000_000
        batches: list[_Batch] = []
        refused: list[Record] = []
        try:
            for topic, per_partition in placed.items():
                for partition, records in enumerate(per_partition):
                    if records:
                        await self._send_batches(
                            client,
                            topic,
                            partition,
                            records,
                            timestamp_ms=timestamp_ms,
                            batches=batches,
                            refused=refused,
                        )
        except KafkaError as exc:
            log.warning("%s: send_batch failed: %r", self._name, exc)

        results = await asyncio.gather(*(f for _, f in batches), return_exceptions=True)
        confirmed = 0
        for (records, _), result in zip(batches, results, strict=True):
            if not isinstance(result, BaseException):
                confirmed += len(records)
            elif isinstance(result, KafkaError) and not result.retriable:
                log.error("%s: kafka refused %d records: %r", self._name, len(records), result)
                refused += records
        if confirmed + len(refused) == len(window):
            return [], len(refused)
        # Rare: put back, in window order, whatever was neither confirmed nor refused.
        done = {id(r) for r in refused}
        for (records, _), result in zip(batches, results, strict=True):
            if not isinstance(result, BaseException):
                done.update(id(r) for r in records)
        return [r for r in window if id(r) not in done], len(refused)

    async def _send_batches(
        self,
        client: AIOKafkaProducer,
        topic: str,
        partition: int,
        records: list[Record],
        *,
        timestamp_ms: int,
        batches: list[_Batch],
        refused: list[Record],
    ) -> None:
        """Pack one partition's records into closed batches and queue them, in order."""
        start = 0
        builder = client.create_batch()
        for index, (_topic, key, value) in enumerate(records):
            if builder.append(timestamp=timestamp_ms, key=key, value=value) is not None:
                continue
            if index > start:
                builder.close()
                future = await client.send_batch(builder, topic, partition=partition)
                batches.append((records[start:index], future))
            start = index
            builder = client.create_batch()
            if builder.append(timestamp=timestamp_ms, key=key, value=value) is None:
                # Larger than a whole batch: the broker would refuse it too.
                log.error("%s: record of %d bytes dropped: too large", self._name, len(value))
                refused.append(records[index])
                start = index + 1
                builder = client.create_batch()
        if start < len(records):
            builder.close()
            future = await client.send_batch(builder, topic, partition=partition)
            batches.append((records[start:], future))

    async def _close_session(self, *, abandon: bool) -> None:
        client, self._client = self._client, None
        self._placement.clear()
        if client is None:
            return
        if not abandon:
            try:
                async with asyncio.timeout(self._stop_timeout_s):
                    await client.stop()
                return
            except TimeoutError:
                pass
        await _abandon(client)


async def _abandon(client: AIOKafkaProducer) -> None:
    """Close an aiokafka producer that still holds batches the broker never acknowledged.

    ``AIOKafkaProducer.stop()`` waits for every pending batch, and an idempotent producer
    retries them for as long as the broker is away: with the broker gone it never returns.
    aiokafka has no public way to give up, so: stop its sender task, fail what is left in
    its accumulator (our window was already put back in our buffer), then stop it.
    Checked against aiokafka 0.11 to 0.14.
    """
    sender = getattr(client, "_sender", None)
    accumulator = getattr(client, "_message_accumulator", None)
    task = getattr(sender, "sender_task", None)
    if isinstance(task, asyncio.Task) and not task.done():
        task.cancel()
        await asyncio.wait({task})
    if accumulator is not None:
        accumulator.fail_all(KafkaError("abandoned by mdfeed: the producer was replaced"))
    try:
        async with asyncio.timeout(5.0):
            await client.stop()
    except TimeoutError:
        log.error("aiokafka producer did not close within 5 s after being abandoned")


class _AssignmentListener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka has no types: Any
    def __init__(self, positions: dict[TopicPartition, int]) -> None:
        self.assigned = asyncio.Event()
        #: Set on every assignment: the consumer resolves the new positions (for lag()).
        self.reassigned = False
        self._positions = positions

    def on_partitions_revoked(self, revoked: object) -> None:
        return None

    def on_partitions_assigned(self, assigned: object) -> None:
        # A partition (re)assigned starts from the group's offset: what we knew is stale.
        self._positions.clear()
        self.reassigned = True
        self.assigned.set()


class KafkaConsumer(Service):
    """A consumer of a :class:`KafkaBus` (see :class:`~mdfeed.kernel.bus.ports.BusConsumer`)."""

    def __init__(
        self,
        bus: KafkaBus,
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
        self._client: AIOKafkaConsumer | None = None
        self._state = "new"
        #: Offset after the last record returned, per partition (for lag()).
        self._positions: dict[TopicPartition, int] = {}
        self._listener: _AssignmentListener | None = None

    async def start(self) -> None:
        """Connect, then take every partition or join the group; raises BusUnavailableError."""
        if self._state != "new":
            return
        bus = self._bus
        config = bus.config
        counts = await bus.ensure_topics(self.topics)
        client = AIOKafkaConsumer(
            bootstrap_servers=config.bootstrap_servers,
            client_id=config.client_id,
            group_id=self._group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest" if self._from_beginning else "latest",
            request_timeout_ms=bus._request_timeout_ms,
            # Notice rebalances within a second rather than the default three.
            heartbeat_interval_ms=1000,
            session_timeout_ms=10_000,
        )
        try:
            await client.start()
            if self._group_id is None:
                client.assign([TopicPartition(t, p) for t in self.topics for p in range(counts[t])])
            else:
                listener = self._listener = _AssignmentListener(self._positions)
                client.subscribe(list(self.topics), listener=listener)
                async with asyncio.timeout(bus._join_timeout_s):
                    await listener.assigned.wait()
            # Resolve positions now, so "from the end" means the end as of start().
            await self._resolve_positions(client)
        except (KafkaError, TimeoutError) as exc:
            await client.stop()
            raise BusUnavailableError(
                f"kafka consumer of {list(self.topics)} at {config.bootstrap_servers}: {exc!r}"
            ) from exc
        self._client = client
        self._state = "running"

    async def stop(self) -> None:
        if self._state == "stopped":
            return
        self._state = "stopped"
        client, self._client = self._client, None
        if client is not None:
            await client.stop()

    async def _resolve_positions(self, client: AIOKafkaConsumer) -> None:
        if self._listener is not None:
            self._listener.reassigned = False
        for tp in client.assignment():
            if tp not in self._positions:
                with contextlib.suppress(IllegalStateError):
                    self._positions[tp] = await client.position(tp)

    async def getmany(self, timeout_ms: int = 0, max_records: int = 1000) -> list[BusRecord]:
        client = self._running()
        batches = await client.getmany(timeout_ms=timeout_ms, max_records=max_records)
        if self._listener is not None and self._listener.reassigned:
            # After a rebalance: the new partitions' positions, or lag() would read 0 for
            # them until their first record.
            await self._resolve_positions(client)
        positions = self._positions
        for tp, records in batches.items():
            if records:
                positions[tp] = records[-1].offset + 1
        return [
            BusRecord(r.topic, r.partition, r.offset, r.key or b"", r.value or b"", r.timestamp)
            for records in batches.values()
            for r in records
        ]

    async def commit(self) -> None:
        client = self._running()
        if self._group_id is None:
            raise CommitFailedError("commit() needs a consumer with a group_id")
        try:
            await client.commit()
        except (AIOKafkaCommitFailedError, IllegalStateError) as exc:
            raise CommitFailedError(f"commit failed, records will be redelivered: {exc}") from exc

    def assignment(self) -> frozenset[tuple[str, int]]:
        if self._client is None:
            return frozenset()
        return frozenset((tp.topic, tp.partition) for tp in self._client.assignment())

    def lag(self) -> dict[str, int]:
        client = self._client
        if client is None:
            return {}
        lag: dict[str, int] = {}
        for tp in client.assignment():
            try:
                end = client.highwater(tp)
            except AssertionError:  # revoked while we looked (aiokafka asserts)
                continue
            position = self._positions.get(tp)
            behind = 0 if end is None or position is None else max(0, end - position)
            lag[tp.topic] = lag.get(tp.topic, 0) + behind
        return lag

    def _running(self) -> AIOKafkaConsumer:
        if self._client is None:
            raise BusClosedError(f"consumer is {self._state}; start() it (or make a new one)")
        return self._client
