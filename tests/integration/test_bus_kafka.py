"""The Kafka bus on the local stack's broker: the shared bus contract, and Kafka unreachable.

Each bus gets topics of its own (tick and chat topics named after the test).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from mdfeed.kernel.bus import BusUnavailableError, KafkaBus
from mdfeed.kernel.bus.contract import (
    CONTRACT_CHECKS,
    BusFactory,
    ContractCheck,
    collect,
    tick_value,
)
from mdfeed.kernel.config import BusConfig, MdfeedConfig
from mdfeed.stack.scratch import free_port


@pytest.fixture(params=["confluent", "aiokafka"])
def make_kafka_bus(
    stack_config: MdfeedConfig, unique_name: str, request: pytest.FixtureRequest
) -> BusFactory:
    """Buses on the local stack's broker, with each of the two Kafka producers in turn."""
    counter = itertools.count()

    def make(*, buffer_max_records: int | None = None) -> KafkaBus:
        name = f"{unique_name}_{next(counter)}"
        config = dataclasses.replace(
            stack_config.bus,
            kind="kafka",
            tick_topic=name,
            chat_topic=f"{name}_chat",
            client_id=f"mdfeed-test-{name}",
            kafka_producer=request.param,
        )
        if buffer_max_records is not None:
            config = dataclasses.replace(config, buffer_max_records=buffer_max_records)
        return KafkaBus(config)

    return make


@pytest.mark.parametrize("check", CONTRACT_CHECKS.values(), ids=CONTRACT_CHECKS.keys())
async def test_kafka_bus_passes_the_bus_contract(
    check: ContractCheck, make_kafka_bus: BusFactory
) -> None:
    async with asyncio.timeout(120):
        await check(make_kafka_bus)


async def test_topics_are_created_with_the_configured_partitions(
    make_kafka_bus: BusFactory, stack_config: MdfeedConfig
) -> None:
    async with make_kafka_bus() as bus:
        config = bus.config
        async with bus.producer() as producer:
            producer.send(config.tick_topic, b"AAPL", tick_value("AAPL", 1))
            assert await producer.flush(30)
        admin = AIOKafkaAdminClient(bootstrap_servers=stack_config.bus.bootstrap_servers)
        await admin.start()
        try:
            described = await admin.describe_topics([config.tick_topic, config.chat_topic])
        finally:
            await admin.close()
    assert {d["topic"]: len(d["partitions"]) for d in described} == {
        config.tick_topic: config.tick_partitions,
        config.chat_topic: config.tick_partitions,
    }


async def test_the_incarnation_is_the_cluster_and_the_topic(
    make_kafka_bus: BusFactory, stack_config: MdfeedConfig
) -> None:
    # The cluster keeps its log: a second bus on it (a restarted process) continues the
    # offsets, so it reports the same incarnation; the cluster id says which cluster it is.
    async with make_kafka_bus() as bus:
        config = bus.config
        incarnation = await bus.incarnation(config.tick_topic)
        async with KafkaBus(config) as again:
            assert await again.incarnation(config.tick_topic) == incarnation
        admin = AIOKafkaAdminClient(bootstrap_servers=stack_config.bus.bootstrap_servers)
        await admin.start()
        try:
            cluster_id = (await admin.describe_cluster())["cluster_id"]
        finally:
            await admin.close()
    assert incarnation == f"kafka:{cluster_id}/{config.tick_topic}"


async def test_the_incarnation_says_when_kafka_is_unreachable() -> None:
    bus = KafkaBus(_unreachable_config(), request_timeout_ms=2000)
    with pytest.raises(BusUnavailableError, match="unavailable"):
        await bus.incarnation(bus.config.tick_topic)


def _unreachable_config() -> BusConfig:
    # A port nothing listens on: connections are refused at once, as with a broker down.
    return BusConfig(kind="kafka", bootstrap_servers=f"127.0.0.1:{free_port()}")


async def test_kafka_unavailable_at_start_buffers_without_raising() -> None:
    resumed: list[int] = []
    bus = KafkaBus(
        dataclasses.replace(_unreachable_config(), buffer_max_records=1000), stop_timeout_s=2.0
    )
    async with bus:
        producer = bus.producer(on_resumed=lambda: resumed.append(1))
        await producer.start()  # returns although nothing answers
        for seq in range(1500):
            producer.send(bus.config.tick_topic, b"AAPL", tick_value("AAPL", seq))
        await asyncio.sleep(1.0)  # several connection attempts, with backoff
        stats = producer.stats
        assert not stats.connected
        assert (stats.accepted, stats.buffered, stats.dropped, stats.acked) == (1000, 1000, 500, 0)
        assert not await producer.flush(0.5)

        started = time.monotonic()
        await producer.stop()
        assert time.monotonic() - started < 2.0 + 1.0, "stop() overran its timeout"
        assert producer.stats.buffered == 1000, "undelivered records must stay visible"
        assert resumed == []


async def test_a_consumer_says_when_kafka_is_unreachable() -> None:
    async with KafkaBus(_unreachable_config()) as bus:
        consumer = bus.consumer([bus.config.tick_topic])
        with pytest.raises(BusUnavailableError, match="unavailable"):
            await consumer.start()
        await consumer.stop()


async def test_kafka_producer_keeps_up_with_a_burst(make_kafka_bus: BusFactory) -> None:
    """50K ticks sent in one go are all acknowledged, in order, well within the timeout."""
    count = 50_000
    symbols = [f"S{i:02d}" for i in range(50)]
    values: list[tuple[bytes, bytes]] = [
        (symbols[i % 50].encode(), tick_value(symbols[i % 50], i // 50)) for i in range(count)
    ]
    async with make_kafka_bus() as bus:
        topic = bus.config.tick_topic
        async with bus.producer() as producer:
            for key, value in values:
                producer.send(topic, key, value)
            assert await producer.flush(60), producer.stats
            assert producer.stats.acked == count
        async with bus.consumer([topic], from_beginning=True) as consumer:
            records = await collect(consumer, count, settle_s=0.2)
    assert len(records) == count
    per_key: dict[bytes, list[bytes]] = {}
    for record in records:
        per_key.setdefault(record.key, []).append(record.value)
    for key, got in per_key.items():
        assert got == [v for k, v in values if k == key], f"{key!r} out of order"
