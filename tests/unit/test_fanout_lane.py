"""fanout.lane: in-order while keeping up, conflation with exact gaps when behind, limits."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fanout.lane import Batch, Gap, LaneClosedError, SnapshotCache, TickLane
from proto import mdfeed_pb2 as pb


def enc(symbol: str, seq: int) -> bytes:
    return pb.Tick(
        symbol=symbol, seq=seq, kind=pb.TICK_KIND_QUOTE, bid_px_e8=seq
    ).SerializeToString()


def offer(lane: TickLane, symbol: str, seq: int) -> None:
    lane.offer(symbol, seq, enc(symbol, seq))


def decode(batch: Batch) -> tuple[list[tuple[str, int]], pb.TickBatch]:
    frame = pb.ServerFrame.FromString(batch.frame)
    assert frame.WhichOneof("body") == "ticks"
    assert len(frame.ticks.ticks) == batch.count
    assert frame.ticks.conflated is batch.conflated
    return [(t.symbol, t.seq) for t in frame.ticks.ticks], frame.ticks


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_order_preserved_when_keeping_up() -> None:
    lane = TickLane(max_pending_ticks=100)
    sent = [("A", 1), ("B", 1), ("A", 2), ("C", 1), ("B", 2), ("A", 3)]
    for symbol, seq in sent:
        offer(lane, symbol, seq)
    first = await lane.next_batch(4)
    second = await lane.next_batch(4)
    got1, tb1 = decode(first)
    got2, _ = decode(second)
    assert got1 + got2 == sent
    assert (first.count, second.count) == (4, 2)
    assert not first.conflated
    assert not tb1.conflated
    assert not tb1.snapshot
    assert first.gaps == second.gaps == ()
    assert lane.take_batch(10) is None
    s = lane.stats
    assert (s.offered, s.delivered, s.conflated, s.batches) == (6, 6, 0, 2)


async def test_conflation_keeps_latest_per_symbol_and_reports_exact_gaps() -> None:
    lane = TickLane(max_pending_ticks=5)
    for seq in range(1, 5):
        offer(lane, "A", seq)
    for seq in range(1, 4):
        offer(lane, "B", seq)
    offer(lane, "C", 7)  # a symbol seen once while conflating: delivered, no gap
    assert lane.conflating
    assert lane.pending == 3
    batch = await lane.next_batch(100)
    got, tb = decode(batch)
    assert got == [("A", 4), ("B", 3), ("C", 7)]
    assert batch.conflated
    assert tb.conflated
    assert batch.gaps == (Gap("A", 1, 3), Gap("B", 1, 2))
    assert lane.stats.conflated == 5
    assert lane.stats.delivered == 3
    # The gap notice frames say the same thing explicitly.
    notice = pb.ServerFrame.FromString(batch.gaps[0].frame()).gap
    assert (notice.symbol, notice.from_seq, notice.to_seq) == ("A", 1, 3)
    assert notice.reason == pb.GAP_REASON_CONFLATED


async def test_conflated_tick_keeps_its_latest_bytes() -> None:
    lane = TickLane(max_pending_ticks=1)
    offer(lane, "A", 1)
    lane.offer("A", 2, b"stale")
    lane.offer("A", 3, enc("A", 3))
    batch = await lane.next_batch(10)
    assert b"stale" not in batch.frame
    assert decode(batch)[0] == [("A", 3)]
    assert batch.gaps == (Gap("A", 1, 2),)


async def test_lane_queues_in_order_again_once_drained() -> None:
    lane = TickLane(max_pending_ticks=2)
    for seq in range(1, 6):
        offer(lane, "A", seq)
    assert (await lane.next_batch(10)).gaps == (Gap("A", 1, 4),)
    assert not lane.conflating
    offer(lane, "A", 6)
    offer(lane, "A", 7)
    batch = await lane.next_batch(10)
    assert decode(batch)[0] == [("A", 6), ("A", 7)]
    assert not batch.conflated


async def test_partial_drain_while_conflating_keeps_remaining_gaps() -> None:
    lane = TickLane(max_pending_ticks=2)
    for symbol in "ABC":
        for seq in (1, 2, 3):
            offer(lane, symbol, seq)
    first = await lane.next_batch(2)
    assert decode(first)[0] == [("A", 3), ("B", 3)]
    offer(lane, "A", 4)  # still conflating: C is pending
    offer(lane, "C", 4)
    second = await lane.next_batch(10)
    assert decode(second)[0] == [("C", 4), ("A", 4)]
    assert second.gaps == (Gap("C", 1, 3),)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("offer"), st.sampled_from("ABCD")),
            st.tuples(st.just("take"), st.integers(min_value=1, max_value=6)),
        ),
        max_size=120,
    ),
    st.integers(min_value=1, max_value=8),
)
def test_no_tick_goes_back_or_vanishes_silently(
    ops: list[tuple[str, str | int]], bound: int
) -> None:
    lane = TickLane(max_pending_ticks=bound)
    next_seq: dict[str, int] = {}
    delivered: dict[str, list[int]] = {}
    skipped: dict[str, list[int]] = {}

    def record(batch: Batch) -> None:
        got, tb = decode(batch)
        assert tb.conflated == bool(batch.gaps)
        for gap in batch.gaps:
            assert gap.from_seq <= gap.to_seq
            # The gap ends right before the tick this batch delivers for that symbol.
            assert (gap.symbol, gap.to_seq + 1) in got
            skipped.setdefault(gap.symbol, []).extend(range(gap.from_seq, gap.to_seq + 1))
        for symbol, seq in got:
            seqs = delivered.setdefault(symbol, [])
            assert not seqs or seq > seqs[-1], "per-symbol sequence went back"
            seqs.append(seq)

    for op, arg in ops:
        if op == "offer":
            assert isinstance(arg, str)
            seq = next_seq.get(arg, 0) + 1
            next_seq[arg] = seq
            offer(lane, arg, seq)
            assert lane.pending <= max(bound, 4)
        else:
            assert isinstance(arg, int)
            batch = lane.take_batch(arg)
            if batch is not None:
                assert batch.count <= arg
                record(batch)
    while (batch := lane.take_batch(3)) is not None:
        record(batch)
    for symbol, last in next_seq.items():
        got = delivered.get(symbol, [])
        gone = skipped.get(symbol, [])
        assert sorted(got + gone) == list(range(1, last + 1)), symbol
        assert got[-1] == last  # the latest value always arrives
    s = lane.stats
    assert s.offered == s.delivered + s.conflated
    assert s.conflated == sum(len(v) for v in skipped.values())


async def test_a_stalled_lane_does_not_hold_back_another() -> None:
    fast = TickLane(max_pending_ticks=10)
    slow = TickLane(max_pending_ticks=10)
    received: list[tuple[str, int]] = []
    for seq in range(1, 1001):
        for lane in (fast, slow):
            offer(lane, "A", seq)
        if seq % 10 == 0:
            received += decode(await fast.next_batch(50))[0]
    assert received == [("A", seq) for seq in range(1, 1001)]
    assert fast.stats.conflated == 0
    assert slow.pending == 1
    batch = await slow.next_batch(50)
    assert decode(batch)[0] == [("A", 1000)]
    assert batch.gaps == (Gap("A", 1, 999),)


def test_stale_and_duplicate_ticks_are_dropped() -> None:
    lane = TickLane()
    offer(lane, "A", 5)
    offer(lane, "A", 5)
    offer(lane, "A", 3)
    offer(lane, "A", 6)
    batch = lane.take_batch(10)
    assert batch is not None
    assert decode(batch)[0] == [("A", 5), ("A", 6)]
    assert lane.stats.stale == 2


def test_stall_limit_reports_disconnect() -> None:
    clock = FakeClock()
    lane = TickLane(max_stall_s=30, clock=clock)
    clock.now += 100
    assert lane.stalled_for_s() == 0.0  # nothing pending: idle, not stalled
    assert lane.disconnect_reason() is None
    offer(lane, "A", 1)
    clock.now += 20
    offer(lane, "A", 2)  # more ticks do not reset the clock; only taking a batch does
    clock.now += 10
    assert lane.stalled_for_s() == pytest.approx(30)
    assert lane.disconnect_reason() is None
    clock.now += 1
    reason = lane.disconnect_reason()
    assert reason is not None
    assert "stalled" in reason
    assert "31.0s" in reason
    assert "limit 30s" in reason
    assert lane.take_batch(1) is not None  # a slow reader taking batches is not stuck
    assert lane.stalled_for_s() == 0.0
    assert lane.disconnect_reason() is None
    assert lane.take_batch(1) is not None
    assert lane.stalled_for_s() == 0.0


def test_too_many_symbols_while_conflating_reports_overflow() -> None:
    lane = TickLane(max_pending_ticks=3, max_pending_symbols=3)
    for symbol in "ABCD":
        offer(lane, symbol, 1)
    reason = lane.disconnect_reason()
    assert reason is not None
    assert "more than 3 symbols" in reason
    while lane.take_batch(2) is not None:
        pass
    assert lane.disconnect_reason() is None


async def test_next_batch_waits_for_data_and_close_wakes_it() -> None:
    lane = TickLane()
    waiter = asyncio.create_task(lane.next_batch(10))
    await asyncio.sleep(0)
    assert not waiter.done()
    offer(lane, "A", 1)
    batch = await asyncio.wait_for(waiter, 1)
    assert decode(batch)[0] == [("A", 1)]

    waiter = asyncio.create_task(lane.next_batch(10))
    await asyncio.sleep(0)
    lane.close("client stalled")
    with pytest.raises(LaneClosedError, match="client stalled"):
        await asyncio.wait_for(waiter, 1)
    offer(lane, "A", 2)  # offers to a closed lane are ignored, never raise
    assert lane.pending == 0
    assert lane.disconnect_reason() == "client stalled"


def test_forget_drops_pending_ticks_of_a_symbol() -> None:
    lane = TickLane()
    offer(lane, "A", 1)
    offer(lane, "B", 1)
    offer(lane, "A", 2)
    lane.forget("A")
    batch = lane.take_batch(10)
    assert batch is not None
    assert decode(batch)[0] == [("B", 1)]
    offer(lane, "A", 1)  # resubscribed: the sequence floor was forgotten too
    assert lane.pending == 1


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        TickLane(max_pending_ticks=0)
    with pytest.raises(ValueError, match="positive"):
        TickLane().take_batch(0)


def test_snapshot_cache_keeps_latest_and_continues_the_lane() -> None:
    cache = SnapshotCache()
    assert cache.update("A", 1, enc("A", 1))
    assert cache.update("A", 3, enc("A", 3))
    assert not cache.update("A", 2, enc("A", 2))  # late tick: the newer one stays
    cache.update("B", 9, enc("B", 9))
    assert len(cache) == 2
    assert "A" in cache
    entry = cache.get("A")
    assert entry is not None
    assert entry.seq == 3
    assert cache.get("Z") is None

    frame, seqs = cache.snapshot(["B", "A", "Z", "A"])
    decoded = pb.ServerFrame.FromString(frame).ticks
    assert decoded.snapshot
    assert not decoded.conflated
    assert [(t.symbol, t.seq) for t in decoded.ticks] == [("B", 9), ("A", 3)]
    assert seqs == {"B": 9, "A": 3}

    lane = TickLane()
    for symbol, seq in seqs.items():
        lane.start_after(symbol, seq)
    offer(lane, "A", 3)  # already in the snapshot
    offer(lane, "A", 4)
    offer(lane, "B", 10)
    batch = lane.take_batch(10)
    assert batch is not None
    assert decode(batch)[0] == [("A", 4), ("B", 10)]

    cache.reset("A")
    assert cache.update("A", 1, enc("A", 1))  # upstream resync: sequence starts again
