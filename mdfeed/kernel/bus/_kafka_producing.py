"""What the Kafka bus's two producers share (mdfeed/kernel/bus/_kafka.py for aiokafka,
_confluent.py for librdkafka): the bus they need, their buffering settings, and which
partition each record of a window goes to."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from mdfeed.kernel.bus._buffered import Record
from mdfeed.kernel.bus.partitioning import KeyPartitioner
from mdfeed.kernel.config import BusConfig

__all__ = ["WINDOW_RECORDS", "KeyPlacement", "ProducerBus", "buffering_of"]

#: Records per delivery window: each window is one round of produce requests.
WINDOW_RECORDS = 20_000


class ProducerBus(Protocol):
    """What a Kafka producer needs of its bus (mdfeed.kernel.bus.KafkaBus)."""

    @property
    def config(self) -> BusConfig: ...

    @property
    def compression(self) -> str: ...

    @property
    def request_timeout_ms(self) -> int: ...

    @property
    def stall_timeout_s(self) -> float: ...

    @property
    def stop_timeout_s(self) -> float: ...

    async def ensure_topics(self, topics: Sequence[str]) -> dict[str, int]: ...


def buffering_of(bus: ProducerBus) -> dict[str, Any]:
    """The :class:`BufferedProducer` settings of a Kafka producer on ``bus`` (either client)."""
    config = bus.config
    return {
        "buffer_max_records": config.buffer_max_records,
        "linger_ms": config.linger_ms,
        "request_spacing_ms": config.request_spacing_ms,
        "max_window_records": WINDOW_RECORDS,
        "stop_timeout_s": bus.stop_timeout_s,
        "stall_timeout_s": bus.stall_timeout_s,
        "reconnect_backoff_s": (0.1, 5.0),
        "name": f"{config.client_id}-kafka-producer",
    }


class KeyPlacement:
    """Which partition each record of a window goes to: Kafka's default for its key
    (mdfeed.kernel.bus.partitioning), with each topic's partition count asked once."""

    def __init__(self, bus: ProducerBus) -> None:
        self._bus = bus
        self._partitioners: dict[str, KeyPartitioner] = {}

    def clear(self) -> None:
        """Forget the partition counts (a new session asks again)."""
        self._partitioners.clear()

    async def _partitioner(self, topic: str) -> KeyPartitioner:
        partitioner = self._partitioners.get(topic)
        if partitioner is None:
            counts = await self._bus.ensure_topics([topic])
            partitioner = self._partitioners[topic] = KeyPartitioner(counts[topic])
        return partitioner

    async def partitions_of(self, window: list[Record]) -> list[int]:
        """Each record's partition, in window order; BusUnavailableError."""
        out: list[int] = []
        current = ""
        memo: dict[bytes, int] = {}
        partitioner = None
        for topic, key, _value in window:
            if topic != current or partitioner is None:
                current = topic
                partitioner = await self._partitioner(topic)
                memo = partitioner.memo
            partition = memo.get(key)
            out.append(partitioner(key) if partition is None else partition)
        return out

    async def place(self, window: list[Record]) -> dict[str, list[list[Record]]]:
        """topic -> the records of each partition, in window order; BusUnavailableError."""
        placed: dict[str, list[list[Record]]] = {}
        for record, partition in zip(window, await self.partitions_of(window), strict=True):
            slots = placed.get(record[0])
            if slots is None:
                count = self._partitioners[record[0]].partitions
                slots = placed[record[0]] = [[] for _ in range(count)]
            slots[partition].append(record)
        return placed
