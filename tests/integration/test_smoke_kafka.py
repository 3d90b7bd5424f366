"""A proto Tick through the real Kafka broker with aiokafka."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from mdfeed.kernel.config import MdfeedConfig
from proto import mdfeed_pb2 as pb


async def test_tick_round_trips_through_kafka(stack_config: MdfeedConfig, unique_name: str) -> None:
    servers = stack_config.bus.bootstrap_servers
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(unique_name, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()

    sent = [
        pb.Tick(
            symbol="AAPL",
            seq=seq,
            kind=pb.TICK_KIND_QUOTE,
            bid_px_e8=15_025_000_000 + seq,
            ask_px_e8=15_026_000_000 + seq,
            fix_msg_seq_num=100 + seq,
        )
        for seq in range(1, 51)
    ]
    producer = AIOKafkaProducer(bootstrap_servers=servers, enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(unique_name, t.SerializeToString(), key=t.symbol.encode())
            for t in sent
        ]
        await producer.flush()
        partitions = {(await f).partition for f in futures}
    finally:
        await producer.stop()
    # Keyed by symbol: one symbol's ticks share one partition, so they keep their order.
    assert len(partitions) == 1

    consumer = AIOKafkaConsumer(
        unique_name, bootstrap_servers=servers, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    received: list[pb.Tick] = []
    try:
        async with asyncio.timeout(30):
            while len(received) < len(sent):
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    received.extend(pb.Tick.FromString(r.value) for r in records)
    finally:
        await consumer.stop()
    assert received == sent
