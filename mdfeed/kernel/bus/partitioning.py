"""Which partition a key goes to: Kafka's default for keyed records, in both adapters.

Kafka's Java producer (and aiokafka's default partitioner) puts a keyed record in partition
``(murmur2(key) & 0x7fffffff) % partitions``. Both adapters place records this way, so a
symbol lands in the same partition number on the in-process bus as on Kafka, and a topic
written by another Kafka client with the default partitioner agrees with ours.
"""

from __future__ import annotations

from aiokafka.partitioner import murmur2

__all__ = ["KeyPartitioner", "kafka_partition"]

#: Keys remembered per partitioner; past it the memo is cleared (symbols are few, but keys
#: are caller data and the memo must stay bounded).
MEMO_MAX_KEYS = 65_536


def kafka_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key`` among ``partitions``."""
    hashed: int = murmur2(key)
    return (hashed & 0x7FFFFFFF) % partitions


class KeyPartitioner:
    """:func:`kafka_partition` for one partition count, memoised (murmur2 is pure Python)."""

    __slots__ = ("memo", "partitions")

    def __init__(self, partitions: int) -> None:
        if partitions < 1:
            raise ValueError(f"partitions must be at least 1, got {partitions}")
        self.partitions = partitions
        #: key -> partition for the keys seen; hot loops may read it before calling.
        self.memo: dict[bytes, int] = {}

    def __call__(self, key: bytes) -> int:
        partition = self.memo.get(key)
        if partition is None:
            if len(self.memo) >= MEMO_MAX_KEYS:
                self.memo.clear()
            partition = self.memo[key] = kafka_partition(key, self.partitions)
        return partition
