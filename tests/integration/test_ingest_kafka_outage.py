"""The ingest over a real FIX session when Kafka is unavailable: at start, and mid-stream.

Policy (mdfeed.kernel.bus): the producer buffers up to ``buffer_max_records``; past that the
newest ticks are dropped and counted, and the ingest holds each symbol's increments back
until its fresh snapshot (requested when the bus takes records again). The FIX session
stays up throughout. Recovery after a broker restart is tested on the producer itself
(test_bus_kafka_outage.py) and the hold-back on the in-process bus
(tests/unit/test_ingest_drops.py).

The broker killed here is a scratch one (free ports, temp dir), not the shared one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from polling import until

from fix_session.ingest import FixIngest
from fix_session.venue import SimulatedVenue
from mdfeed.kernel.bus import BusProducer, KafkaBus
from mdfeed.kernel.config import MdfeedConfig
from mdfeed.stack.scratch import ScratchKafka, free_port, kafka_jars

SYMBOLS = ("AAPL", "MSFT")
BOUND = 300


@asynccontextmanager
async def pipeline(
    stack_config: MdfeedConfig, topic: str, bootstrap: str, log_dir: Path
) -> AsyncIterator[tuple[FixIngest, BusProducer]]:
    port = free_port()
    venue_cfg = dataclasses.replace(
        stack_config.venue, port=port, symbols=SYMBOLS, rate_ticks_per_s=1000, seed=5
    )
    session = dataclasses.replace(
        stack_config.fix_session, port=port, heartbeat_interval_s=2, log_dir=str(log_dir)
    )
    bus_cfg = dataclasses.replace(
        stack_config.bus,
        bootstrap_servers=bootstrap,
        tick_topic=topic,
        tick_partitions=2,
        buffer_max_records=BOUND,
    )
    async with SimulatedVenue(venue_cfg), KafkaBus(bus_cfg, stop_timeout_s=3.0) as bus:
        producer = bus.producer()
        await producer.start()
        ingest = FixIngest(session, symbols=SYMBOLS, producer=producer, topic=topic)
        producer.on_resumed = ingest.resync
        await ingest.start()
        try:
            await ingest.wait_logged_on(15)
            yield ingest, producer
        finally:
            await ingest.stop()
            async with asyncio.timeout(20):  # stopping must not hang on a dead broker
                await producer.stop()


async def test_kafka_unavailable_at_start(
    stack_config: MdfeedConfig, unique_name: str, tmp_path: Path
) -> None:
    dead = f"127.0.0.1:{free_port()}"
    async with pipeline(stack_config, unique_name, dead, tmp_path) as (ingest, producer):
        await until(
            lambda: producer.stats.buffered >= 50,
            timeout_s=15,
            interval_s=0.05,
            what="ticks buffered",
        )
        assert not producer.stats.connected
        assert producer.stats.dropped == 0
        # Past the bound: the newest are dropped and counted; the buffer stays at its bound.
        await until(
            lambda: producer.stats.dropped > 0,
            timeout_s=30,
            interval_s=0.05,
            what="drops past the bound",
        )
        assert producer.stats.buffered <= BOUND
        # The ingest holds back increments now, and the FIX session never noticed.
        await until(
            lambda: ingest.stats.ticks_suppressed > 0,
            timeout_s=10,
            interval_s=0.05,
            what="increments held back",
        )
        assert ingest.logged_on
        assert ingest.stats.logons == 1


async def test_kafka_killed_mid_stream(
    stack_config: MdfeedConfig, unique_name: str, tmp_path: Path
) -> None:
    stack_dir = Path(os.environ.get("MDFEED_STACK_DIR") or Path.cwd() / ".stack")
    kafka = ScratchKafka(tmp_path / "kafka", kafka_jars(stack_dir))
    await asyncio.to_thread(kafka.start)
    try:
        async with pipeline(stack_config, unique_name, kafka.bootstrap_servers, tmp_path) as (
            ingest,
            producer,
        ):
            await until(
                lambda: producer.stats.acked >= 100,
                timeout_s=60,
                interval_s=0.05,
                what="ticks acknowledged",
            )
            assert producer.stats.dropped == 0
            await asyncio.to_thread(kafka.kill)
            await until(
                lambda: not producer.stats.connected,
                timeout_s=30,
                interval_s=0.05,
                what="outage noticed",
            )
            await until(
                lambda: producer.stats.dropped > 0,
                timeout_s=60,
                interval_s=0.05,
                what="drops past the bound",
            )
            assert producer.stats.buffered <= BOUND
            await until(
                lambda: ingest.stats.ticks_suppressed > 0,
                timeout_s=10,
                interval_s=0.05,
                what="increments held back",
            )
            assert ingest.logged_on
            assert ingest.stats.logons == 1
    finally:
        await asyncio.to_thread(kafka.stop)
