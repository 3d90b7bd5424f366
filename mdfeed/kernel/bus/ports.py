"""The bus port: what a producer, a consumer and a bus offer, whichever adapter is behind.

Adapters: :class:`~mdfeed.kernel.bus.MemoryBus` (in-process, the embedded default) and
:class:`~mdfeed.kernel.bus.KafkaBus` (aiokafka). Both pass the same contract suite
(:mod:`mdfeed.kernel.bus.contract`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import NamedTuple, Protocol, Self

from mdfeed.kernel.config import BusConfig

__all__ = ["Bus", "BusConsumer", "BusProducer", "BusRecord", "ProducerStats", "ResumedCallback"]

#: Called (in the event loop, with no arguments) when the bus accepts records again after an
#: outage or after records were dropped: the publisher should resynchronise its consumers
#: (the ingest requests a fresh FIX snapshot). Exceptions it raises are logged and ignored.
ResumedCallback = Callable[[], None]


class BusRecord(NamedTuple):
    """One record as a consumer receives it."""

    topic: str
    partition: int
    #: Position in the partition: increasing by one per record, never reused.
    offset: int
    key: bytes
    value: bytes
    #: When the producer handed the record to the bus (milliseconds since the Unix epoch).
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class ProducerStats:
    """A snapshot of a producer's counters (records, since the producer was created)."""

    #: Records send() took into the buffer (dropped ones are not counted).
    accepted: int
    #: Records handed to the client, retries included.
    sent: int
    #: Records the bus confirmed (Kafka: acknowledged by all in-sync replicas).
    acked: int
    #: Records in the buffer now: waiting, or handed to the client and not confirmed yet.
    buffered: int
    #: Records send() refused because the buffer was full (the newest are dropped).
    dropped: int
    #: Records whose delivery failed and that were put back to be sent again.
    send_errors: int
    #: The bus is reachable and confirms deliveries (False before the first connection,
    #: while a delivery has been waiting longer than the stall timeout, after a failure).
    connected: bool
    #: Times the producer got the bus back after losing it.
    reconnects: int
    #: Times on_resumed was called.
    resumes: int


class BusProducer(Protocol):
    """Publishes records keyed so that one key's records keep their order.

    ``send`` only appends to a bounded buffer; a background task drains it to the bus in
    batches. It is an async context manager (``start``/``stop``).
    """

    on_resumed: ResumedCallback | None

    async def start(self) -> None:
        """Start the background delivery; returns even when the bus is unreachable."""

    async def stop(self) -> None:
        """Deliver what it can within the stop timeout, then close. Safe to call twice."""

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        """Buffer one record; never blocks, never awaits. Call it from the event loop thread.

        When the buffer holds ``buffer_max_records`` the record is dropped and counted.
        Raises :class:`~mdfeed.kernel.bus.errors.BusClosedError` after ``stop()``.
        """

    async def flush(self, timeout_s: float) -> bool:
        """Wait until every record accepted before the call is confirmed; False on timeout."""

    @property
    def stats(self) -> ProducerStats:
        """The counters now."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class BusConsumer(Protocol):
    """Reads records of some topics: every partition (no group), or a group's share.

    Without a group it reads all partitions, from the beginning or from the end as it was
    when ``start()`` returned. With a ``group_id`` the group's members split the partitions;
    each starts from the group's committed offsets (else from the beginning or the end), and
    ``commit()`` stores the positions of the records returned so far. Nothing is committed
    automatically.
    """

    async def start(self) -> None:
        """Join the group or take every partition; positions are fixed when this returns."""

    async def stop(self) -> None:
        """Leave the group (uncommitted records go to the next owner). Safe to call twice."""

    async def getmany(self, timeout_ms: int = 0, max_records: int = 1000) -> list[BusRecord]:
        """Up to ``max_records`` records, waiting up to ``timeout_ms`` for the first ones.

        Records of one partition come in offset order; an empty list means none arrived.
        """

    async def commit(self) -> None:
        """Commit the positions after the records returned so far (group consumers)."""

    def assignment(self) -> frozenset[tuple[str, int]]:
        """The (topic, partition) pairs this consumer reads now."""

    def lag(self) -> dict[str, int]:
        """Records behind the end of the log, per topic, over the assigned partitions.

        The end is the offset the next record will get; the position is the offset after
        the records returned so far. Cheap and never awaits (read at metrics scrapes): the
        Kafka adapter uses the end offsets of its latest fetch responses, so a partition it
        has not fetched from yet counts 0. Empty when not running.
        """

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class Bus(Protocol):
    """Makes producers and consumers for one bus; stopping it stops every one it made."""

    @property
    def config(self) -> BusConfig: ...

    async def start(self) -> None: ...

    async def stop(self) -> None:
        """Stop every producer and consumer this bus made. Safe to call twice."""

    async def incarnation(self, topic: str) -> str:
        """Which log ``topic`` names on this bus, and which life of it: offsets compare within one.

        Offsets recorded outside the bus (the bar aggregator's checkpoints) name records of
        the log as it was when they were recorded. While the bus reports the same
        incarnation they still name the same records; under another they name nothing (the
        log may have started again at offset 0, or it is another topic's). A non-empty
        string, the same for the life of the bus object and for every bus reading the same
        log, different for another topic. ``MemoryBus``: new with every bus (it starts
        empty); ``KafkaBus``: the cluster id and the topic (a topic deleted and created
        again under its name on the same cluster is not told apart: aiokafka's metadata
        requests predate topic ids). Raises
        :class:`~mdfeed.kernel.bus.errors.BusUnavailableError` when the bus cannot say.
        """

    def producer(self, *, on_resumed: ResumedCallback | None = None) -> BusProducer:
        """A new producer (not started)."""

    def consumer(
        self,
        topics: Sequence[str],
        *,
        group_id: str | None = None,
        from_beginning: bool = False,
    ) -> BusConsumer:
        """A new consumer of ``topics`` (not started)."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
