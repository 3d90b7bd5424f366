"""The bus: ticks and chat between the ingest, the fanout and the bar aggregator.

Two adapters behind one port (:mod:`mdfeed.kernel.bus.ports`), passing one contract suite
(:mod:`mdfeed.kernel.bus.contract`): :class:`MemoryBus`, in-process, the embedded default, and
:class:`KafkaBus` on aiokafka. :func:`open_bus` picks one from the config::

    async with open_bus(config.bus) as bus:
        producer = bus.producer(on_resumed=request_snapshot)
        await producer.start()
        producer.send(config.bus.tick_topic, b"AAPL", tick.SerializeToString())

Records are keyed (ticks by symbol, chat by room) and placed with Kafka's default
partitioner, so one key's records keep their order on both adapters.

Producer buffer and overflow policy: ``send()`` never blocks; it appends to a buffer of at
most ``buffer_max_records`` records (waiting plus not yet acknowledged) that a background
task drains in batches. While the bus is unreachable the buffer fills; once full, each new
record is dropped (the NEWEST go; what is buffered is kept and delivered in order) and
counted in ``stats.dropped``. When the bus takes records again and the buffer is back under
half its bound, ``on_resumed`` is called once, so the publisher can resynchronise (the ingest
requests a fresh FIX snapshot). It is also called after an outage without drops.

Consumers: without a group a consumer reads every partition, from the end (or from the
beginning): the fanout, where every instance sees all ticks. With a ``group_id`` the members
split the partitions and start from the group's committed offsets; ``commit()`` records how
far a member got, so the bar aggregator commits after its writes and a crash redelivers
rather than skips. Keep the ``getmany()`` loop short and hand records on through a bounded
queue: a Kafka member that stops polling for ``max_poll_interval`` is taken out of its group.

Offsets kept outside the bus belong to one log: ``await bus.incarnation(topic)`` names it
(the topic, and the bus's life: every ``MemoryBus`` starts empty, a Kafka cluster keeps
its log), so offsets recorded under another incarnation are known not to be this log's.
"""

from mdfeed.kernel.bus._kafka import KafkaBus, KafkaConsumer, KafkaProducer
from mdfeed.kernel.bus._memory import MemoryBus, MemoryConsumer, MemoryProducer
from mdfeed.kernel.bus.errors import (
    BusClosedError,
    BusError,
    BusUnavailableError,
    CommitFailedError,
)
from mdfeed.kernel.bus.factory import open_bus
from mdfeed.kernel.bus.partitioning import kafka_partition
from mdfeed.kernel.bus.ports import (
    Bus,
    BusConsumer,
    BusProducer,
    BusRecord,
    ProducerStats,
    ResumedCallback,
)

__all__ = [
    "Bus",
    "BusClosedError",
    "BusConsumer",
    "BusError",
    "BusProducer",
    "BusRecord",
    "BusUnavailableError",
    "CommitFailedError",
    "KafkaBus",
    "KafkaConsumer",
    "KafkaProducer",
    "MemoryBus",
    "MemoryConsumer",
    "MemoryProducer",
    "ProducerStats",
    "ResumedCallback",
    "kafka_partition",
    "open_bus",
]
