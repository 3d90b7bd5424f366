"""The ingest (QuickFIX, real Kafka) against the venue's fast benchmark stream.

The fast stream packs up to 20 entries per X and repeats closed cycles, so after the
stream pauses at a cycle's end the ingest's books must equal the venue's, and every
symbol's tick sequence on Kafka must be contiguous. The rate is capped so the test does
not depend on the machine's speed.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import defaultdict
from pathlib import Path

from polling import until

from fix_session.ingest import FixIngest
from fix_session.venue import SimulatedVenue
from fix_session.venue.market import Level
from mdfeed.kernel.bus import Bus, open_bus
from mdfeed.kernel.config import MdfeedConfig
from mdfeed.kernel.tick_records import ticks_of
from mdfeed.stack.scratch import free_port
from proto import mdfeed_pb2 as pb

SYMBOLS = ("AAPL", "MSFT", "NVDA", "TSLA")


def e8(text: str) -> int:
    whole, _, frac = text.partition(".")
    return int(whole) * 100_000_000 + int(frac.ljust(8, "0"))


def top(levels: tuple[Level, ...]) -> int:
    return e8(levels[0].price)


async def read_ticks(bus: Bus, topic: str, expected: int) -> list[pb.Tick]:
    consumer = bus.consumer([topic], from_beginning=True)
    await consumer.start()
    ticks: list[pb.Tick] = []
    try:
        async with asyncio.timeout(30):
            while len(ticks) < expected:
                for record in await consumer.getmany(timeout_ms=500, max_records=10_000):
                    ticks += [pb.Tick.FromString(t) for t in ticks_of(record.value)]
    finally:
        await consumer.stop()
    return ticks


async def test_ingest_rebuilds_the_fast_venue_books_with_contiguous_sequences(
    stack_config: MdfeedConfig, unique_name: str, tmp_path: Path
) -> None:
    port = free_port()
    venue_cfg = dataclasses.replace(
        stack_config.venue,
        port=port,
        symbols=SYMBOLS,
        seed=11,
        stream="fast",
        fast_rate_ticks_per_s=20_000,
    )
    session_cfg = dataclasses.replace(
        stack_config.fix_session, port=port, heartbeat_interval_s=2, log_dir=str(tmp_path)
    )
    bus_cfg = dataclasses.replace(stack_config.bus, tick_topic=unique_name, tick_partitions=3)
    async with SimulatedVenue(venue_cfg) as venue:
        bus = open_bus(bus_cfg)
        await bus.start()
        producer = bus.producer()
        await producer.start()
        ingest = FixIngest(session_cfg, symbols=SYMBOLS, producer=producer, topic=unique_name)
        try:
            await ingest.start()
            await ingest.wait_logged_on(15)
            await until(
                lambda: venue.stats.entries_sent >= 30_000,
                timeout_s=30,
                interval_s=0.05,
                what="entries streaming",
            )
            venue.pause_stream()
            await until(lambda: venue.stream_idle, timeout_s=5, interval_s=0.01, what="cycle end")
            sent = venue.stats.sent_by_type
            md_messages = sent.get("W", 0) + sent.get("X", 0)
            await until(
                lambda: ingest.stats.messages_in >= md_messages,
                timeout_s=20,
                interval_s=0.05,
                what="the ingest taking in everything sent",
            )
            assert ingest.stats.messages_in == md_messages
            assert ingest.stats.decode_errors == 0
            assert ingest.stats.rejected_messages == 0
            assert ingest.stats.resend_requests_sent == 0
            # The benchmark stream's book is a true one under the default (price) model.
            assert sum(ingest.normalizer.faults.values()) == 0, ingest.normalizer.faults
            assert ingest.normalizer.invalid == set()
            for symbol in SYMBOLS:
                book = venue.book(symbol)
                assert book.last_trade is not None
                assert ingest.normalizer.top(symbol) == (
                    top(book.bids),
                    top(book.offers),
                    e8(book.last_trade.price),
                ), symbol
            assert await producer.flush(15)
            ticks = await read_ticks(bus, unique_name, ingest.stats.ticks_out)
        finally:
            await ingest.stop()
            await producer.stop()
            await bus.stop()
    grouped: dict[str, list[pb.Tick]] = defaultdict(list)
    for tick in ticks:
        grouped[tick.symbol].append(tick)
    assert set(grouped) == set(SYMBOLS)
    for symbol, items in grouped.items():
        assert [t.seq for t in items] == list(range(1, len(items) + 1)), symbol
        assert items[0].from_snapshot, symbol
