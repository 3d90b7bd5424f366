"""TickFanout on the in-process bus, without a transport: cache, subscriptions, resync."""

from __future__ import annotations

import asyncio
import time

from polling import until

from fanout.client import FanoutClient
from fanout.lane import TickLane
from fanout.tick_fanout import TickFanout
from mdfeed.kernel.bus import BusRecord, MemoryBus
from mdfeed.kernel.tick_records import batch_record
from proto import mdfeed_pb2 as pb


def tick(symbol: str, seq: int, *, from_snapshot: bool = False) -> bytes:
    return pb.Tick(
        symbol=symbol, seq=seq, kind=pb.TICK_KIND_QUOTE, from_snapshot=from_snapshot
    ).SerializeToString()


def record(symbol: str, seq: int, *, from_snapshot: bool = False, offset: int = 0) -> BusRecord:
    value = tick(symbol, seq, from_snapshot=from_snapshot)
    return BusRecord("md.ticks", 0, offset, symbol.encode(), value, 0)


async def drain(client: FanoutClient, count: int) -> list[pb.ServerFrame]:
    frames: list[pb.ServerFrame] = []
    async with asyncio.timeout(5):
        async for frame in client.frames():
            frames.append(pb.ServerFrame.FromString(frame))
            if len(frames) == count:
                break
    return frames


def seqs(frame: pb.ServerFrame) -> list[tuple[str, int]]:
    return [(t.symbol, t.seq) for t in frame.ticks.ticks]


async def test_the_fanout_reads_the_bus_from_latest_and_keeps_the_cache() -> None:
    async with MemoryBus() as bus, bus.producer() as producer:
        topic = bus.config.tick_topic
        producer.send(topic, b"OLD", tick("OLD", 1))
        assert await producer.flush(5)
        async with TickFanout(bus, poll_timeout_ms=20) as fanout:
            for seq in range(1, 4):
                producer.send(topic, b"AAPL", tick("AAPL", seq))
            producer.send(topic, b"junk", b"\xff\xff")
            assert await producer.flush(5)
            await until(lambda: fanout.records == 4)
            assert "OLD" not in fanout.cache
            entry = fanout.cache.get("AAPL")
            assert entry is not None
            assert entry.seq == 3
            assert fanout.bad_records == 1


async def test_subscribe_queues_the_snapshot_then_only_newer_ticks() -> None:
    async with MemoryBus() as bus:
        fanout = TickFanout(bus)
        fanout.ingest([record("AAPL", s) for s in range(1, 6)])
        client = fanout.connect()
        fanout.subscribe(client, ["AAPL", "AAPL", "NEWCO"])
        fanout.ingest([record("AAPL", 5), record("AAPL", 6), record("MSFT", 1)])
        fanout.ingest([record("NEWCO", 1)])
        snapshot, updates = await drain(client, 2)
        assert snapshot.ticks.snapshot
        assert seqs(snapshot) == [("AAPL", 5)]
        # One frame per ingested batch and group, joined into one message as they waited;
        # the redelivered AAPL 5 is not sent again.
        assert seqs(updates) == [("AAPL", 6), ("NEWCO", 1)]
        assert not updates.ticks.snapshot
        assert fanout.stale == 1
        assert client.lane.stats.frames == 3
        assert client.lane.stats.messages == 2
        fanout.unsubscribe(client, ["AAPL"])
        fanout.ingest([record("AAPL", 7), record("NEWCO", 2)])
        (after,) = await drain(client, 1)
        assert seqs(after) == [("NEWCO", 2)]
        fanout.disconnect(client)
        assert fanout.client_count == 0


async def test_an_upstream_restart_resets_the_symbol_and_sends_resync() -> None:
    async with MemoryBus() as bus:
        fanout = TickFanout(bus, lane_factory=lambda: TickLane(max_pending_ticks=100))
        fanout.ingest([record("AAPL", s) for s in range(1, 11)])
        client = fanout.connect()
        fanout.subscribe(client, ["AAPL"])
        fanout.ingest([record("AAPL", 11)])
        fanout.ingest([record("AAPL", 1, from_snapshot=True), record("AAPL", 2)])
        frames = await drain(client, 4)
        assert seqs(frames[0]) == [("AAPL", 10)]
        assert seqs(frames[1]) == [("AAPL", 11)]
        # The notice comes after the old sequence's frames and voids what they held.
        assert frames[2].WhichOneof("body") == "gap"
        assert frames[2].gap.reason == pb.GAP_REASON_RESYNC
        assert (frames[2].gap.from_seq, frames[2].gap.to_seq) == (1, 11)
        assert seqs(frames[3]) == [("AAPL", 1), ("AAPL", 2)]
        entry = fanout.cache.get("AAPL")
        assert entry is not None
        assert entry.seq == 2
        assert fanout.resyncs == 1
        # A snapshot tick that does not go back is ordinary: no resync.
        fanout.ingest([record("AAPL", 3, from_snapshot=True)])
        assert fanout.resyncs == 1


async def test_a_closed_lane_ends_the_frames() -> None:
    async with MemoryBus() as bus:
        fanout = TickFanout(bus)
        client = fanout.connect()
        fanout.subscribe(client, ["AAPL"])
        client.close("gone")
        frames = [f async for f in client.frames()]
        assert frames == []  # closing drops what was queued, the snapshot included
        assert client.lane.disconnect_reason() == "gone"


async def test_clients_with_one_symbol_set_share_one_group_and_its_frames() -> None:
    async with MemoryBus() as bus:
        fanout = TickFanout(bus, max_batch_ticks=3)
        clients = [fanout.connect() for _ in range(5)]
        for client in clients:
            fanout.subscribe(client, ["AAPL", "MSFT"])
        odd = fanout.connect()
        fanout.subscribe(odd, ["MSFT"])
        assert fanout.group_count == 2
        fanout.ingest([record("AAPL", s) for s in range(1, 5)] + [record("MSFT", 1)])
        assert all(c.lane.queued_frames == 3 for c in clients)  # snapshot + 2 shared frames
        got = [await drain(client, 2) for client in clients]
        assert all(g == got[0] for g in got)
        assert seqs(got[0][1]) == [("AAPL", 1), ("AAPL", 2), ("AAPL", 3), ("AAPL", 4), ("MSFT", 1)]
        (_, only_msft) = await drain(odd, 2)
        assert seqs(only_msft) == [("MSFT", 1)]
        # Subscribing to more moves a client to another group; the last one out drops it.
        fanout.subscribe(odd, ["AAPL"])
        assert fanout.group_count == 1
        for client in clients:
            fanout.disconnect(client)
        fanout.disconnect(odd)
        assert fanout.group_count == 0


async def test_hop_timestamps_stamp_the_bus_and_fanout_times_on_each_tick() -> None:
    async with MemoryBus() as bus:
        fanout = TickFanout(bus, hop_timestamps=True)
        client = fanout.connect()
        fanout.subscribe(client, ["AAPL"])
        stored = [
            BusRecord("md.ticks", 0, 0, b"AAPL", tick("AAPL", 1), 1_700_000_000_001),
            BusRecord("md.ticks", 0, 1, b"AAPL", tick("AAPL", 2), 1_700_000_000_001),
            BusRecord("md.ticks", 0, 2, b"AAPL", tick("AAPL", 3), 1_700_000_000_007),
            BusRecord("md.ticks", 0, 3, b"AAPL", tick("AAPL", 4), 0),  # no bus timestamp
        ]
        before = time.time_ns()
        fanout.ingest(stored)
        after = time.time_ns()
        _snapshot, frame = await drain(client, 2)
        ticks = list(frame.ticks.ticks)
        assert [t.bus_time_ns for t in ticks] == [
            1_700_000_000_001_000_000,
            1_700_000_000_001_000_000,
            1_700_000_000_007_000_000,
            0,
        ]
        # One consume time per batch, within the call.
        assert len({t.fanout_time_ns for t in ticks}) == 1
        assert before <= ticks[0].fanout_time_ns <= after
        # Everything else is as sent, and the cache keeps the stamped tick.
        assert [(t.symbol, t.seq, t.kind) for t in ticks] == [
            ("AAPL", s, pb.TICK_KIND_QUOTE) for s in (1, 2, 3, 4)
        ]
        cached = fanout.cache.get("AAPL")
        assert cached is not None
        assert pb.Tick.FromString(cached.encoded).fanout_time_ns == ticks[0].fanout_time_ns


async def test_without_hop_timestamps_ticks_pass_through_byte_for_byte() -> None:
    async with MemoryBus() as bus:
        fanout = TickFanout(bus)
        fanout.ingest([BusRecord("md.ticks", 0, 0, b"AAPL", tick("AAPL", 1), 1_700_000_000_001)])
        cached = fanout.cache.get("AAPL")
        assert cached is not None
        assert cached.encoded == tick("AAPL", 1)


async def test_a_batch_record_delivers_each_of_its_ticks_stamped() -> None:
    async with MemoryBus() as bus:
        fanout = TickFanout(bus, hop_timestamps=True)
        client = fanout.connect()
        fanout.subscribe(client, ["AAPL", "MSFT"])
        value = batch_record([tick("AAPL", s) for s in (1, 2, 3)])
        fanout.ingest(
            [
                BusRecord("md.ticks", 0, 0, b"AAPL", value, 1_700_000_000_002),
                BusRecord("md.ticks", 1, 0, b"MSFT", tick("MSFT", 1), 1_700_000_000_003),
                BusRecord("md.ticks", 1, 1, b"MSFT", b"\x0a\x05\x0a\x01A", 1_700_000_000_003),
            ]
        )
        _snapshot, frame = await drain(client, 2)
        ticks = list(frame.ticks.ticks)
        assert [(t.symbol, t.seq) for t in ticks] == [
            ("AAPL", 1), ("AAPL", 2), ("AAPL", 3), ("MSFT", 1),
        ]  # fmt: skip
        assert [t.bus_time_ns for t in ticks] == [1_700_000_000_002_000_000] * 3 + [
            1_700_000_000_003_000_000
        ]
        assert fanout.records == 3
        assert fanout.ticks_in == 4
        assert fanout.bad_records == 1  # the truncated batch
