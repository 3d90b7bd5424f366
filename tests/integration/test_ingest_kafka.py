"""The ingest end to end: simulated venue -> TCP FIX session (QuickFIX) -> real Kafka.

Each test runs its own venue on a free port and publishes to its own topic.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Protocol

import pytest
from polling import until

from fix_session.ingest import FixIngest
from fix_session.venue import SimulatedVenue
from mdfeed.kernel.bus import Bus, BusProducer, open_bus
from mdfeed.kernel.config import BusConfig, FixSessionConfig, MdfeedConfig, VenueConfig
from mdfeed.kernel.tick_records import ticks_of
from mdfeed.stack.scratch import free_port
from proto import mdfeed_pb2 as pb

SYMBOLS = ("AAPL", "MSFT", "NVDA")
# Indexes into the counters of the malformed-input test.
DECODE, NORMALIZE, SESSION_REJECT, RESEND = range(4)


@dataclasses.dataclass
class Rig:
    venue: SimulatedVenue
    ingest: FixIngest
    bus: Bus
    producer: BusProducer
    topic: str


class StartRig(Protocol):
    """The ``rig`` fixture: starts a venue, a Kafka bus and an ingest, logged on."""

    async def __call__(self, symbols: tuple[str, ...] = SYMBOLS, rate: int = 2000) -> Rig: ...


def configs(
    stack_config: MdfeedConfig, topic: str, port: int, log_dir: Path, rate: int = 2000
) -> tuple[VenueConfig, FixSessionConfig, BusConfig]:
    venue = dataclasses.replace(
        stack_config.venue, port=port, symbols=SYMBOLS, rate_ticks_per_s=rate, seed=7
    )
    session = dataclasses.replace(
        stack_config.fix_session,
        port=port,
        heartbeat_interval_s=2,
        reconnect_interval_s=1,
        log_dir=str(log_dir),
    )
    bus = dataclasses.replace(stack_config.bus, tick_topic=topic, tick_partitions=3)
    return venue, session, bus


@pytest.fixture
async def rig(
    stack_config: MdfeedConfig, unique_name: str, tmp_path: Path
) -> AsyncIterator[StartRig]:
    """Starts venue, Kafka bus and ingest on demand; stops all of them afterwards."""
    started: list[Rig] = []
    port = free_port()

    async def start(symbols: tuple[str, ...] = SYMBOLS, rate: int = 2000) -> Rig:
        venue_cfg, session_cfg, bus_cfg = configs(stack_config, unique_name, port, tmp_path, rate)
        venue = SimulatedVenue(venue_cfg)
        await venue.start()
        bus = open_bus(bus_cfg)
        await bus.start()
        producer = bus.producer()
        await producer.start()
        ingest = FixIngest(session_cfg, symbols=symbols, producer=producer, topic=unique_name)
        producer.on_resumed = ingest.resync
        await ingest.start()
        rig = Rig(venue, ingest, bus, producer, unique_name)
        started.append(rig)
        await ingest.wait_logged_on(15)
        return rig

    yield start
    for r in started:
        await r.ingest.stop()
        await r.producer.stop()
        await r.bus.stop()
        await r.venue.stop()


async def read_ticks(bus: Bus, topic: str, expected: int, timeout_s: float = 30) -> list[pb.Tick]:
    consumer = bus.consumer([topic], from_beginning=True)
    await consumer.start()
    ticks: list[pb.Tick] = []
    try:
        async with asyncio.timeout(timeout_s):
            while len(ticks) < expected:
                for record in await consumer.getmany(timeout_ms=500, max_records=10_000):
                    # One record per symbol and slice of the inbox, keyed by the symbol.
                    for encoded in ticks_of(record.value):
                        tick = pb.Tick.FromString(encoded)
                        assert record.key == tick.symbol.encode()
                        ticks.append(tick)
    finally:
        await consumer.stop()
    return ticks


def by_symbol(ticks: list[pb.Tick]) -> dict[str, list[pb.Tick]]:
    grouped: dict[str, list[pb.Tick]] = defaultdict(list)
    for tick in ticks:
        grouped[tick.symbol].append(tick)
    return grouped


async def test_snapshot_and_increments_land_in_order_with_contiguous_sequences(
    rig: StartRig,
) -> None:
    r: Rig = await rig()
    await until(
        lambda: r.ingest.stats.ticks_out >= 600, timeout_s=20, interval_s=0.05, what="ticks flowing"
    )
    assert await r.producer.flush(15)
    sent = r.ingest.stats.ticks_out
    ticks = await read_ticks(r.bus, r.topic, sent)
    grouped = by_symbol(ticks)
    assert set(grouped) == set(SYMBOLS)
    for symbol, items in grouped.items():
        # Per-symbol order on Kafka is ingest order: 1, 2, 3, ... with no gap.
        assert [t.seq for t in items] == list(range(1, len(items) + 1)), symbol
        assert items[0].from_snapshot, symbol
        assert items[0].kind == pb.TICK_KIND_QUOTE
        fix_seqs = [t.fix_msg_seq_num for t in items]
        assert fix_seqs == sorted(fix_seqs), symbol
        for t in items:
            if t.kind == pb.TICK_KIND_QUOTE and t.HasField("bid_px_e8") and t.HasField("ask_px_e8"):
                assert 0 < t.bid_px_e8 < t.ask_px_e8, t
            assert t.ingest_time_ns >= t.venue_time_ns - 1_000_000_000
    assert r.ingest.stats.decode_errors == 0
    assert r.ingest.stats.rejected_messages == 0


async def test_reconnect_resubscribes_and_takes_a_fresh_snapshot(rig: StartRig) -> None:
    r: Rig = await rig()
    await until(
        lambda: r.ingest.stats.ticks_out >= 200,
        timeout_s=20,
        interval_s=0.05,
        what="ticks before the restart",
    )
    before = {s: r.ingest.normalizer.sequence(s) for s in SYMBOLS}
    await r.venue.stop()
    await until(
        lambda: not r.ingest.logged_on,
        timeout_s=10,
        interval_s=0.05,
        what="session noticed the venue going away",
    )
    await r.venue.start()  # same port: QuickFIX reconnects by itself
    await r.ingest.wait_logged_on(20)
    assert r.ingest.stats.logons == 2
    await until(
        lambda: all(r.ingest.normalizer.sequence(s) > before[s] + 5 for s in SYMBOLS),
        timeout_s=20,
        interval_s=0.05,
        what="ticks after the restart",
    )
    assert await r.producer.flush(15)
    ticks = await read_ticks(r.bus, r.topic, r.ingest.stats.ticks_out)
    for symbol, items in by_symbol(ticks).items():
        # One sequence across both sessions, no gap, no repeat.
        assert [t.seq for t in items] == list(range(1, len(items) + 1)), symbol
        snapshots = [i for i, t in enumerate(items) if t.from_snapshot]
        # A snapshot at the start of each session, and the second one starts a session that
        # counts FIX MsgSeqNum from 1 again (ResetOnLogon): the number drops there.
        assert snapshots[0] == 0, symbol
        assert len(snapshots) >= 2, symbol
        second = snapshots[1]
        assert items[second].fix_msg_seq_num < items[second - 1].fix_msg_seq_num, symbol


async def test_unknown_symbol_is_rejected_and_the_rest_flows(rig: StartRig) -> None:
    r: Rig = await rig(symbols=("AAPL", "ZZZZ"))
    await until(
        lambda: "ZZZZ" in r.ingest.normalizer.unavailable,
        timeout_s=10,
        interval_s=0.05,
        what="reject for ZZZZ",
    )
    assert "ZZZZ" in r.ingest.normalizer.unavailable["ZZZZ"]
    await until(
        lambda: r.ingest.normalizer.sequence("AAPL") > 10,
        timeout_s=20,
        interval_s=0.05,
        what="AAPL still flows",
    )
    assert r.ingest.normalizer.sequence("ZZZZ") == 0
    assert r.ingest.normalizer.stats.unknown_symbol_rejects == 1


async def test_malformed_fix_is_rejected_counted_and_the_session_stays_up(
    rig: StartRig,
) -> None:
    r: Rig = await rig(rate=500)
    await until(
        lambda: r.ingest.stats.ticks_out >= 50, timeout_s=20, interval_s=0.05, what="ticks flowing"
    )
    venue, stats = r.venue, r.ingest.stats
    x_fields = [
        (262, "AAPL.1"),
        (268, "1"),
        (279, "0"),
        (269, "0"),
        (55, "AAPL"),
        (270, "{px}"),
        (271, "100"),
    ]

    def x_with(px: str) -> list[tuple[int, str]]:
        return [(t, v.format(px=px)) for t, v in x_fields]

    def counters() -> tuple[int, int, int, int]:
        return (
            stats.decode_errors,
            stats.rejected_messages,
            stats.session_rejects_sent,
            stats.resend_requests_sent,
        )

    async def inject(send: Callable[[], object], counter: int, what: str) -> None:
        # One bad input at a time, then ticks must flow again before the next one.
        before, ticks = counters(), stats.ticks_out
        send()
        await until(
            lambda: counters()[counter] > before[counter], timeout_s=10, interval_s=0.05, what=what
        )
        await until(
            lambda: stats.ticks_out > ticks + 5,
            timeout_s=10,
            interval_s=0.05,
            what=f"ticks after {what}",
        )

    # A frame with a broken checksum: QuickFIX drops it; its lost sequence number shows up
    # as a ResendRequest (the venue answers with a gap fill).
    await inject(
        lambda: venue.send_message("X", x_with("189.50"), checksum=0), RESEND, "bad checksum"
    )
    # Garbage between frames: skipped by QuickFIX's parser; the next frame still decodes.
    ticks = stats.ticks_out
    venue.send_raw(b"this is not FIX\x01\x01garbage=")
    await until(
        lambda: stats.ticks_out > ticks + 5,
        timeout_s=10,
        interval_s=0.05,
        what="ticks after garbage",
    )
    # A negative price: decoded, refused by the normalizer.
    await inject(lambda: venue.send_message("X", x_with("-5.00")), NORMALIZE, "negative price")
    # NaN and a malformed number: refused by the codec.
    await inject(lambda: venue.send_message("X", x_with("NaN")), DECODE, "NaN price")
    await inject(lambda: venue.send_message("X", x_with("12.3.4")), DECODE, "non-numeric price")
    # A required tag missing (MDUpdateAction): QuickFIX's dictionary check rejects it at the
    # session level (35=3) before the application sees it.
    await inject(
        lambda: venue.send_message("X", [(t, v) for t, v in x_with("1.00") if t != 279]),
        SESSION_REJECT,
        "missing MDUpdateAction",
    )
    # An increment for a symbol nobody subscribed to: refused by the normalizer.
    await inject(
        lambda: venue.send_message("X", [(t, "QQQQ" if t == 55 else v) for t, v in x_with("2.00")]),
        NORMALIZE,
        "unknown symbol",
    )
    assert "QQQQ" not in r.ingest.normalizer.symbols
    assert stats.decode_errors == 2
    assert stats.rejected_messages == 2
    # Still the first logon, and ticks still flow.
    assert stats.logons == 1
    assert r.ingest.logged_on
    flowing = stats.ticks_out
    await until(
        lambda: stats.ticks_out > flowing + 20,
        timeout_s=10,
        interval_s=0.05,
        what="ticks after the bad input",
    )
    # The rejected symbol's book was resynchronised by a fresh snapshot.
    await until(
        lambda: not r.ingest.normalizer.stale,
        timeout_s=10,
        interval_s=0.05,
        what="stale books resynced",
    )


async def test_ingest_restart_logs_on_afresh_and_resnapshots(rig: StartRig, tmp_path: Path) -> None:
    r: Rig = await rig()
    await until(
        lambda: r.ingest.stats.ticks_out >= 100,
        timeout_s=20,
        interval_s=0.05,
        what="ticks before the restart",
    )
    await r.ingest.stop()
    await r.ingest.stop()  # stopping twice is harmless
    assert await r.producer.flush(15)
    first_run = r.ingest.stats.ticks_out
    # A new session (as after a process restart): the memory store starts empty and
    # ResetOnLogon makes both sides start again at MsgSeqNum 1.
    again = FixIngest(r.ingest.config, symbols=SYMBOLS, producer=r.producer, topic=r.topic)
    await again.start()
    try:
        await again.wait_logged_on(15)
        await until(
            lambda: again.stats.ticks_out >= 30,
            timeout_s=20,
            interval_s=0.05,
            what="ticks after the restart",
        )
        assert await r.producer.flush(15)
        ticks = await read_ticks(r.bus, r.topic, first_run + again.stats.ticks_out)
    finally:
        await again.stop()
    for symbol, items in by_symbol(ticks).items():
        # Sequences start over with the new session, and say so: its first tick is a
        # snapshot, from a FIX session that started again at MsgSeqNum 1.
        starts = [i for i, t in enumerate(items) if t.seq == 1]
        assert len(starts) == 2, symbol
        second = items[starts[1] :]
        assert second[0].from_snapshot, symbol
        assert second[0].fix_msg_seq_num < 10, symbol
        assert [t.seq for t in second] == list(range(1, len(second) + 1)), symbol


async def test_two_shards_publish_every_symbol_once_into_one_topic(
    stack_config: MdfeedConfig, unique_name: str, tmp_path: Path
) -> None:
    symbols = ("AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "AVGO")
    port = free_port()
    venue_cfg, session_cfg, bus_cfg = configs(stack_config, unique_name, port, tmp_path)
    venue = SimulatedVenue(dataclasses.replace(venue_cfg, symbols=symbols))
    await venue.start()
    bus = open_bus(bus_cfg)
    await bus.start()
    # One producer per shard, as two processes would have.
    producers = [bus.producer(), bus.producer()]
    shards = [
        FixIngest(
            dataclasses.replace(session_cfg, shard=f"{k}/2"),
            symbols=symbols,
            producer=producer,
            topic=unique_name,
        )
        for k, producer in enumerate(producers, start=1)
    ]
    try:
        for producer, ingest in zip(producers, shards, strict=True):
            await producer.start()
            await ingest.start()
        for ingest in shards:
            await ingest.wait_logged_on(15)
        await until(
            lambda: all(i.normalizer.sequence(s) > 5 for i in shards for s in i.symbols),
            timeout_s=20,
            interval_s=0.05,
            what="every symbol streaming in its shard",
        )
        for ingest in shards:
            await ingest.stop()
        for producer in producers:
            assert await producer.flush(15)
        sent = sum(i.stats.ticks_out for i in shards)
        grouped = by_symbol(await read_ticks(bus, unique_name, sent))
    finally:
        for ingest in shards:
            await ingest.stop()
        for producer in producers:
            await producer.stop()
        await bus.stop()
        await venue.stop()
    first, second = (set(i.symbols) for i in shards)
    assert first
    assert second
    assert first.isdisjoint(second)
    assert first | second == set(symbols) == set(grouped)
    for symbol, items in grouped.items():
        assert [t.seq for t in items] == list(range(1, len(items) + 1)), symbol
        assert items[0].from_snapshot, symbol
