"""The ingest after the bus dropped ticks: increments are held back until a snapshot.

Runs the ingest's event-loop half on the real in-process bus with a tiny buffer (no
QuickFIX session: the raw messages a QuickFIX callback would hand over are queued
directly), so the bus's overflow policy triggers for real.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal

from fix_session.ingest import FixIngest
from fix_spec import fix44
from fix_spec.fix44 import enums
from fix_spec.fix44.header import Header
from fix_spec.fix44.messages import MarketDataIncrementalRefresh as X
from fix_spec.fix44.messages import MarketDataSnapshotFullRefresh as W
from mdfeed.kernel.bus import MemoryBus
from mdfeed.kernel.config import BusConfig, FixSessionConfig
from mdfeed.kernel.tick_records import ticks_of
from proto import mdfeed_pb2 as pb

SYMBOLS = ("AAPL", "MSFT")


def header(seq: int) -> Header:
    return Header(sender_comp_id="VENUE", target_comp_id="MDFEED", msg_seq_num=seq, sending_time=0)


def snapshot(symbol: str, seq: int, bid: str) -> str:
    entries = [
        W.NoMDEntries(
            md_entry_type=enums.MDEntryType.BID, md_entry_px=Decimal(bid), md_entry_size=Decimal(1)
        ),
        W.NoMDEntries(
            md_entry_type=enums.MDEntryType.OFFER,
            md_entry_px=Decimal("999"),
            md_entry_size=Decimal(1),
        ),
    ]
    return fix44.encode(W(symbol=symbol, no_md_entries=entries, header=header(seq))).decode()


def increment(seq: int, bid: str) -> str:
    entries = [
        X.NoMDEntries(
            md_update_action=enums.MDUpdateAction.NEW, md_entry_type=enums.MDEntryType.BID,
            symbol=symbol, md_entry_px=Decimal(bid), md_entry_size=Decimal(1),
        )
        for symbol in SYMBOLS
    ]  # fmt: skip
    return fix44.encode(X(no_md_entries=entries, header=header(seq))).decode()


async def test_after_drops_increments_wait_for_the_symbols_snapshot() -> None:
    bus = MemoryBus(BusConfig(tick_topic="t", buffer_max_records=4, tick_partitions=1))
    await bus.start()
    producer = bus.producer()
    await producer.start()
    consumer = bus.consumer(["t"], from_beginning=True)
    await consumer.start()
    resyncs: list[Sequence[str] | None] = []

    class RecordingIngest(FixIngest):
        """No QuickFIX session here: a resync is recorded, not sent."""

        def resync(self, symbols: Sequence[str] | None = None) -> None:
            resyncs.append(symbols)

    ingest = RecordingIngest(FixSessionConfig(), symbols=SYMBOLS, producer=producer, topic="t")
    producer.on_resumed = ingest.resync
    try:
        seq = 1
        for symbol in SYMBOLS:
            seq += 1
            ingest.normalizer.push(snapshot(symbol, seq, "1.00").encode())
        ingest._drain()
        # Twenty increments, each in a slice of its own, before the bus takes any: 40
        # records (one per symbol and slice) into a buffer of 4 -> drops.
        for i in range(20):
            seq += 1
            ingest.normalizer.push(increment(seq, f"1.{i + 1:02d}").encode())
            ingest._drain()
        assert producer.stats.dropped > 0
        suppressed_before = ingest.stats.ticks_suppressed
        # The bus drains and says so; further increments are still held back.
        await asyncio.sleep(0.2)
        assert resyncs, "the bus did not call on_resumed after dropping"
        seq += 1
        ingest.normalizer.push(increment(seq, "1.50").encode())
        ingest._drain()
        assert ingest.stats.ticks_suppressed == suppressed_before + len(SYMBOLS)
        # The fresh snapshots go out, then increments flow again.
        for symbol in SYMBOLS:
            seq += 1
            ingest.normalizer.push(snapshot(symbol, seq, "2.00").encode())
        seq += 1
        ingest.normalizer.push(increment(seq, "2.01").encode())
        ingest._drain()
        assert await producer.flush(5)
        delivered: dict[str, list[pb.Tick]] = defaultdict(list)
        for record in await consumer.getmany(timeout_ms=100, max_records=1000):
            for encoded in ticks_of(record.value):
                tick = pb.Tick.FromString(encoded)
                delivered[tick.symbol].append(tick)
    finally:
        await consumer.stop()
        await producer.stop()
        await bus.stop()
    for symbol in SYMBOLS:
        ticks = delivered[symbol]
        seqs = [t.seq for t in ticks]
        assert seqs == sorted(set(seqs)), symbol
        gaps = [(a, b) for a, b in itertools.pairwise(ticks) if b.seq != a.seq + 1]
        assert gaps, symbol
        # Every gap is followed by a snapshot tick, and the last tick is the increment
        # after the fresh snapshot.
        assert all(after.from_snapshot for _, after in gaps), symbol
        assert ticks[-1].bid_px_e8 == 201_000_000
        assert not ticks[-1].from_snapshot
