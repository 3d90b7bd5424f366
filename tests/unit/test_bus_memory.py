"""The in-process bus: the shared bus contract, plus what only the memory adapter has."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random

import pytest
from aiokafka.partitioner import DefaultPartitioner

from mdfeed.kernel.bus import (
    BusClosedError,
    CommitFailedError,
    KafkaBus,
    MemoryBus,
    kafka_partition,
    open_bus,
)
from mdfeed.kernel.bus.contract import CONTRACT_CHECKS, ContractCheck, collect, tick_value
from mdfeed.kernel.config import BusConfig


def make_memory_bus(*, buffer_max_records: int | None = None) -> MemoryBus:
    config = BusConfig(kind="memory")
    if buffer_max_records is not None:
        config = dataclasses.replace(config, buffer_max_records=buffer_max_records)
    return MemoryBus(config)


@pytest.mark.parametrize("check", CONTRACT_CHECKS.values(), ids=CONTRACT_CHECKS.keys())
async def test_memory_bus_passes_the_bus_contract(check: ContractCheck) -> None:
    async with asyncio.timeout(60):
        await check(make_memory_bus)


def test_keys_go_to_the_partition_kafka_would_choose() -> None:
    rng = random.Random(7)
    keys = [b"AAPL", b"MSFT", b"", b"x" * 33] + [
        rng.randbytes(rng.randrange(1, 20)) for _ in range(500)
    ]
    for partitions in (1, 3, 6, 12):
        for key in keys:
            expected = DefaultPartitioner()(key, list(range(partitions)), list(range(partitions)))
            assert kafka_partition(key, partitions) == expected


def test_open_bus_picks_the_adapter_the_config_names() -> None:
    assert isinstance(open_bus(BusConfig(kind="memory")), MemoryBus)
    assert isinstance(open_bus(BusConfig(kind="kafka")), KafkaBus)  # no connection until used


async def test_retention_keeps_a_bounded_tail_and_late_readers_jump() -> None:
    bus = MemoryBus(dataclasses.replace(BusConfig(), tick_partitions=1), retention_records=100)
    topic = bus.config.tick_topic
    async with bus:
        early = bus.consumer([topic], from_beginning=True)
        late = bus.consumer([topic])
        await early.start()
        await late.start()
        async with bus.producer() as producer:
            for seq in range(1, 1001):
                producer.send(topic, b"AAPL", tick_value("AAPL", seq))
                if seq % 50 == 0:
                    await producer.flush(5)
        log = bus._topics[topic].logs[0]
        assert 100 <= len(log.records) <= 125, "retention bound not kept"
        assert log.end == 1000
        assert log.records[0].offset == log.start

        oldest = await early.getmany(max_records=10_000)
        assert [r.offset for r in oldest] == list(range(log.start, 1000))
        assert early.skipped == log.start
        assert await late.getmany(max_records=10_000) == []  # jumped to the end
        assert late.skipped == 1000


async def test_a_consumer_waits_for_records_until_its_timeout() -> None:
    async with make_memory_bus() as bus:
        topic = bus.config.tick_topic
        async with bus.consumer([topic]) as consumer, bus.producer() as producer:
            loop = asyncio.get_running_loop()
            started = loop.time()
            assert await consumer.getmany(timeout_ms=200) == []
            assert loop.time() - started >= 0.19

            async def publish_soon() -> None:
                await asyncio.sleep(0.05)
                producer.send(topic, b"AAPL", tick_value("AAPL", 1))

            task = asyncio.create_task(publish_soon())
            records = await consumer.getmany(timeout_ms=5000)
            await task
            assert [r.key for r in records] == [b"AAPL"]
            assert loop.time() - started < 2


async def test_records_sent_before_start_are_delivered_after_it() -> None:
    async with make_memory_bus() as bus:
        topic = bus.config.tick_topic
        producer = bus.producer()
        producer.send(topic, b"AAPL", tick_value("AAPL", 1))
        assert producer.stats.buffered == 1
        async with bus.consumer([topic], from_beginning=True) as consumer:
            await producer.start()
            assert await producer.flush(5)
            assert len(await collect(consumer, 1, settle_s=0)) == 1


async def test_a_failing_on_resumed_callback_is_logged_and_delivery_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken() -> None:
        raise RuntimeError("snapshot request failed")

    async with make_memory_bus(buffer_max_records=10) as bus:
        topic = bus.config.tick_topic
        async with bus.producer(on_resumed=broken) as producer:
            for seq in range(20):
                producer.send(topic, b"AAPL", tick_value("AAPL", seq))
            with caplog.at_level(logging.ERROR, logger="mdfeed.kernel.bus"):
                assert await producer.flush(5)
            assert "on_resumed callback failed" in caplog.text
            producer.send(topic, b"AAPL", tick_value("AAPL", 20))
            assert await producer.flush(5)
            assert producer.stats.acked == 11
            assert producer.stats.resumes == 1


async def test_commit_without_a_group_is_refused() -> None:
    async with make_memory_bus() as bus, bus.consumer([bus.config.tick_topic]) as consumer:
        with pytest.raises(CommitFailedError, match="group_id"):
            await consumer.commit()


async def test_members_beyond_the_partition_count_get_nothing() -> None:
    config = dataclasses.replace(BusConfig(), tick_partitions=2)
    async with MemoryBus(config) as bus:
        topic = config.tick_topic
        members = [bus.consumer([topic], group_id="g") for _ in range(3)]
        for member in members:
            await member.start()
        shares = [member.assignment() for member in members]
        assert sorted(map(len, shares)) == [0, 1, 1]
        await members[0].stop()
        shares = [member.assignment() for member in members[1:]]
        assert sorted(map(len, shares)) == [1, 1]


async def test_a_group_can_read_several_topics() -> None:
    config = BusConfig()
    async with MemoryBus(config) as bus:
        topics = [config.tick_topic, config.chat_topic]
        async with bus.consumer(topics, group_id="g", from_beginning=True) as consumer:
            assert len(consumer.assignment()) == 2 * config.tick_partitions
            async with bus.producer() as producer:
                producer.send(config.chat_topic, b"room-1", b"hello")
                producer.send(config.tick_topic, b"AAPL", tick_value("AAPL", 1))
            records = await collect(consumer, 2, settle_s=0)
        assert sorted(r.topic for r in records) == sorted(topics)


async def test_a_stopped_consumer_refuses_commit_and_reads() -> None:
    async with make_memory_bus() as bus:
        consumer = bus.consumer([bus.config.tick_topic], group_id="g")
        with pytest.raises(BusClosedError):
            await consumer.getmany()
        await consumer.start()
        await consumer.stop()
        with pytest.raises(BusClosedError):
            await consumer.commit()


def test_consumer_topics_must_be_a_list_of_names() -> None:
    bus = make_memory_bus()
    with pytest.raises(ValueError, match="topics"):
        bus.consumer("md.ticks")
    with pytest.raises(ValueError, match="topics"):
        bus.consumer([])


async def test_every_memory_bus_is_a_new_incarnation_of_its_topics() -> None:
    # Each starts empty (offsets from 0): offsets recorded on one name nothing on the next,
    # even with the same config, as on a second `mdfeed run`.
    config = BusConfig(kind="memory")
    first, again = MemoryBus(config), MemoryBus(config)
    topic = config.tick_topic
    assert await first.incarnation(topic) != await again.incarnation(topic)
    assert (await first.incarnation(topic)).startswith("memory:")
    assert await first.incarnation(topic) == await first.incarnation(topic)
