"""The Kafka producer through a broker crash: buffer, drop the newest past the bound, resume.

These tests kill a broker, so each runs its own scratch Kafka (free ports, a temp dir, the
local stack's jars) and leaves the shared one on 9092 alone.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
from polling import until

from mdfeed.kernel.bus import KafkaBus, ProducerStats
from mdfeed.kernel.bus.contract import collect, tick_value
from mdfeed.kernel.config import BusConfig
from mdfeed.stack.scratch import ScratchKafka, kafka_jars
from proto import mdfeed_pb2 as pb

SYMBOLS = [f"S{i:02d}" for i in range(10)]


@pytest.fixture
def scratch_kafka(tmp_path: Path) -> Iterator[ScratchKafka]:
    # The jars `mdfeed stack up` installed (the same default directory as the CLI's).
    stack_dir = Path(os.environ.get("MDFEED_STACK_DIR") or Path.cwd() / ".stack")
    with ScratchKafka(tmp_path / "stack", kafka_jars(stack_dir)) as kafka:
        yield kafka


@pytest.fixture(params=["confluent", "aiokafka"])
def kafka_producer(request: pytest.FixtureRequest) -> Literal["confluent", "aiokafka"]:
    """Each of the two Kafka producers in turn."""
    return "confluent" if request.param == "confluent" else "aiokafka"


def _config(
    kafka: ScratchKafka,
    topic: str,
    buffer_max_records: int,
    producer: Literal["confluent", "aiokafka"],
) -> BusConfig:
    return BusConfig(
        kind="kafka",
        kafka_producer=producer,
        bootstrap_servers=kafka.bootstrap_servers,
        tick_topic=topic,
        chat_topic=f"{topic}_chat",
        client_id=f"mdfeed-test-{topic}",
        buffer_max_records=buffer_max_records,
    )


class _Feed:
    """Per-symbol sequence numbers, as the ingest stamps them."""

    def __init__(self) -> None:
        self.next_seq = dict.fromkeys(SYMBOLS, 1)

    def records(self, count: int) -> list[tuple[bytes, bytes, tuple[str, int]]]:
        out = []
        for i in range(count):
            symbol = SYMBOLS[i % len(SYMBOLS)]
            seq = self.next_seq[symbol]
            self.next_seq[symbol] = seq + 1
            out.append((symbol.encode(), tick_value(symbol, seq), (symbol, seq)))
        return out


async def test_broker_killed_mid_stream_then_back(
    scratch_kafka: ScratchKafka,
    unique_name: str,
    kafka_producer: Literal["confluent", "aiokafka"],
) -> None:
    bound = 2000
    config = _config(scratch_kafka, unique_name, bound, kafka_producer)
    topic = config.tick_topic
    feed = _Feed()
    expected: list[tuple[str, int]] = []
    resumed: list[ProducerStats] = []

    async with asyncio.timeout(60), KafkaBus(config, stall_timeout_s=1.0) as bus:
        producer = bus.producer()
        producer.on_resumed = lambda: resumed.append(producer.stats)
        await producer.start()

        def send(count: int) -> list[tuple[str, int]]:
            records = feed.records(count)
            for key, value, _ in records:
                producer.send(topic, key, value)
            return [ident for _, _, ident in records]

        expected += send(500)
        assert await producer.flush(30), producer.stats
        assert producer.stats.connected

        await asyncio.to_thread(scratch_kafka.kill)
        for _ in range(15):  # the ingest keeps publishing through the outage
            expected += send(100)
            await asyncio.sleep(0.02)
        await until(
            lambda: not producer.stats.connected,
            timeout_s=10,
            interval_s=0.05,
            what="connected to turn False",
        )
        stats = producer.stats
        assert (stats.buffered, stats.dropped, stats.acked) == (1500, 0, 500), stats

        for _ in range(10):
            before = producer.stats.buffered
            kept = send(100)
            expected += kept[: producer.stats.buffered - before]
        stats = producer.stats
        assert (stats.buffered, stats.dropped) == (bound, 500), stats
        assert expected[-1] == ("S09", 250)  # the newest were dropped, not the oldest
        assert resumed == [], "on_resumed before the broker came back"

        await asyncio.to_thread(scratch_kafka.start)
        assert await producer.flush(40), producer.stats
        stats = producer.stats
        assert stats.connected
        assert stats.reconnects >= 1
        assert (stats.acked, stats.buffered, stats.dropped) == (500 + bound, 0, 500), stats
        assert len(resumed) == 1, f"on_resumed called {len(resumed)} times"
        assert resumed[0].connected

        expected += send(100)  # the resync snapshot would go here
        assert await producer.flush(30)
        await producer.stop()

        async with bus.consumer([topic], from_beginning=True) as consumer:
            records = await collect(consumer, len(expected))

    received = [(t.symbol, t.seq) for t in (pb.Tick.FromString(r.value) for r in records)]
    assert len(received) == len(set(received)), "duplicates after the broker came back"
    assert sorted(received) == sorted(expected)
    for symbol in SYMBOLS:
        seqs = [seq for s, seq in received if s == symbol]
        assert seqs == sorted(seqs), f"{symbol} out of order"
        # The dropped ones leave one gap per symbol, which the resync snapshot covers.
        assert seqs[:250] == list(range(1, 251))


async def test_stop_during_an_outage_returns_within_its_timeout(
    scratch_kafka: ScratchKafka,
    unique_name: str,
    kafka_producer: Literal["confluent", "aiokafka"],
) -> None:
    config = _config(scratch_kafka, unique_name, 10_000, kafka_producer)
    async with KafkaBus(config, stop_timeout_s=2.0) as bus:
        producer = bus.producer()
        await producer.start()
        producer.send(config.tick_topic, b"AAPL", tick_value("AAPL", 1))
        assert await producer.flush(30)
        await asyncio.to_thread(scratch_kafka.kill)
        for seq in range(2, 1002):
            producer.send(config.tick_topic, b"AAPL", tick_value("AAPL", seq))
        await asyncio.sleep(0.5)  # the window is now with aiokafka, retrying
        started = time.monotonic()
        await producer.stop()
        assert time.monotonic() - started < 2.0 + 3.0
        assert producer.stats.buffered == 1000
        assert producer.stats.acked == 1
    # Nothing of aiokafka may be left running (a stuck sender would keep this loop busy).
    leftovers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert leftovers == []
