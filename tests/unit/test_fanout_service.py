"""TickFanout on the in-process bus, without a transport: cache, subscriptions, resync."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fanout.lane import TickLane
from fanout.service import FanoutClient, TickFanout
from mdfeed.bus import BusRecord, MemoryBus
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


async def until(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not predicate():  # noqa: ASYNC110  # polling a plain counter
            await asyncio.sleep(0.01)


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
        assert seqs(updates) == [("AAPL", 6), ("NEWCO", 1)]
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
        frames = await drain(client, 3)
        assert seqs(frames[0]) == [("AAPL", 10)]
        assert frames[1].WhichOneof("body") == "gap"
        assert frames[1].gap.reason == pb.GAP_REASON_RESYNC
        assert (frames[1].gap.from_seq, frames[1].gap.to_seq) == (1, 11)
        assert seqs(frames[2]) == [("AAPL", 1), ("AAPL", 2)]  # the pending 11 was voided
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
        assert len(frames) == 1  # the snapshot queued before the close
        assert client.lane.disconnect_reason() == "gone"
