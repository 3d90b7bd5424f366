"""fanout.lane: shared frames pass through in order; behind, one conflated frame, exact gaps."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fanout.frames import SharedFrame, gap_frame, tick_batch_frame
from fanout.groups import SubscriptionGroup
from fanout.lane import Gap, TickLane
from fanout.snapshot_cache import SnapshotCache
from proto import mdfeed_pb2 as pb

SYMBOLS = "ABCD"


def enc(symbol: str, seq: int, epoch: int = 0) -> bytes:
    # ask_px_e8 marks the upstream sequence a tick belongs to (it changes on a resync).
    return pb.Tick(
        symbol=symbol, seq=seq, kind=pb.TICK_KIND_QUOTE, bid_px_e8=seq, ask_px_e8=epoch
    ).SerializeToString()


def ticks(*pairs: tuple[str, int], epoch: int = 0) -> SharedFrame:
    return SharedFrame.of_ticks((symbol, seq, enc(symbol, seq, epoch)) for symbol, seq in pairs)


def run(symbol: str, seqs: Iterable[int], epoch: int = 0) -> SharedFrame:
    return ticks(*((symbol, seq) for seq in seqs), epoch=epoch)


def resync(symbol: str, new_seq: int, old_seq: int) -> SharedFrame:
    frame = gap_frame(symbol=symbol, from_seq=new_seq, to_seq=old_seq, reason=pb.GAP_REASON_RESYNC)
    return SharedFrame.notice(frame, resync=symbol)


def drain(lane: TickLane) -> list[bytes]:
    frames: list[bytes] = []
    while (frame := lane.take()) is not None:
        frames.append(frame)
    return frames


def show(frame: bytes) -> tuple[object, ...]:
    """A frame as a readable tuple: ("ticks" | "conflated" | "snapshot", (sym, seq)...) or
    (gap reason name, symbol, from_seq, to_seq)."""
    decoded = pb.ServerFrame.FromString(frame)
    body = decoded.WhichOneof("body")
    if body == "ticks":
        batch = decoded.ticks
        assert not (batch.conflated and batch.snapshot)
        kind = "conflated" if batch.conflated else "snapshot" if batch.snapshot else "ticks"
        return (kind, *((t.symbol, t.seq) for t in batch.ticks))
    assert body == "gap", body
    gap = decoded.gap
    return (pb.GapReason.Name(gap.reason), gap.symbol, gap.from_seq, gap.to_seq)


def split(message: bytes) -> list[bytes]:
    """The ``ServerFrame``s joined in one message (each is one length-delimited field)."""
    parts: list[bytes] = []
    pos = 0
    while pos < len(message):
        start = pos
        pos += 1  # the field tag: one byte for every ServerFrame field
        length = shift = 0
        while True:
            byte = message[pos]
            pos += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        pos += length
        parts.append(message[start:pos])
    assert pos == len(message)
    return parts


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """A group member that keeps what it is pushed."""

    def __init__(self) -> None:
        self.frames: list[SharedFrame] = []

    def push_frame(self, frame: SharedFrame) -> None:
        self.frames.append(frame)


class LaneClient:
    """A group member with a real lane, as ``fanout.client.FanoutClient`` has."""

    def __init__(self, lane: TickLane) -> None:
        self.lane = lane

    def push_frame(self, frame: SharedFrame) -> None:
        self.lane.push(frame)


# -- keeping up ---------------------------------------------------------------------


def test_frames_pass_through_in_order_while_keeping_up() -> None:
    lane = TickLane(max_pending_ticks=6)
    pushed = [
        ticks(("A", 1), ("B", 1), ("A", 2)),
        resync("C", 1, 9),
        ticks(("C", 1)),
        ticks(("B", 2), ("A", 3)),  # six ticks pending: at the bound, not past it
    ]
    for frame in pushed:
        lane.push(frame)
    assert lane.pending == 6
    assert lane.queued_frames == 4
    for frame in pushed:
        taken = lane.take()
        assert taken is frame.frame  # the shared bytes themselves, not a copy or a rebuild
    assert lane.take() is None
    assert (lane.pending, lane.queued_frames) == (0, 0)
    s = lane.stats
    assert (s.offered, s.delivered, s.conflated, s.conflations, s.frames) == (6, 6, 0, 0, 4)


def test_pending_counts_ticks_not_notices_and_drops_as_frames_are_taken() -> None:
    lane = TickLane()
    lane.push(ticks(("A", 1), ("A", 2)))
    lane.push(resync("A", 1, 2))
    lane.push(ticks(("A", 1)))
    assert (lane.pending, lane.queued_frames) == (3, 3)
    lane.take()
    assert (lane.pending, lane.queued_frames) == (1, 2)
    lane.take()
    assert (lane.pending, lane.queued_frames) == (1, 1)


def test_take_joins_consecutive_plain_frames_up_to_max_bytes() -> None:
    lane = TickLane()
    f1, f2, f3 = ticks(("A", 1), ("B", 1)), ticks(("A", 2)), ticks(("B", 2))
    notice = resync("A", 1, 2)
    f4, f5 = ticks(("A", 1), ("B", 3)), ticks(("B", 4))
    for frame in (f1, f2, f3, notice, f4, f5):
        lane.push(frame)
    joined = lane.take(max_bytes=len(f1.frame) + len(f2.frame))  # f3 does not fit too
    assert joined == f1.frame + f2.frame
    assert show(joined) == ("ticks", ("A", 1), ("B", 1), ("A", 2))
    assert lane.pending == 4
    assert lane.take(max_bytes=10_000) is f3.frame  # the notice after it is never joined
    assert lane.take(max_bytes=10_000) is notice.frame
    assert lane.take(max_bytes=1) is f4.frame  # a lone frame may be bigger than max_bytes
    assert lane.take() is f5.frame  # no max_bytes: one frame per take
    assert lane.take(max_bytes=10_000) is None
    s = lane.stats
    assert (s.delivered, s.frames, s.messages) == (7, 6, 5)


def test_snapshot_and_conflated_frames_are_never_joined() -> None:
    cache = SnapshotCache()
    cache.update("A", 1, enc("A", 1))
    lane = TickLane(max_pending_ticks=2)
    snapshot, after = cache.snapshot_frame(["A"]), ticks(("A", 2))
    lane.push(snapshot)
    lane.push(after)
    assert lane.take(max_bytes=10_000) is snapshot.frame
    assert lane.take(max_bytes=10_000) is after.frame
    lane.push(run("A", [3, 4, 5]))  # conflated: gap, conflated frame
    lane.push(ticks(("A", 6)))
    lane.push(ticks(("A", 7)))  # 3 > 2: conflated again
    lane.push(ticks(("A", 8)))
    assert [show(f) for f in iter(lambda: lane.take(max_bytes=10_000), None)] == [
        ("GAP_REASON_CONFLATED", "A", 3, 6),
        ("conflated", ("A", 7)),
        ("ticks", ("A", 8)),
    ]
    lane = TickLane()
    plain = [ticks(("A", seq)) for seq in (9, 10, 12, 13)]
    snapshot = cache.snapshot_frame(["A"])
    for frame in (*plain[:2], snapshot, *plain[2:], resync("A", 1, 13)):
        lane.push(frame)
    assert [show(f) for f in iter(lambda: lane.take(max_bytes=10_000), None)] == [
        ("ticks", ("A", 9), ("A", 10)),
        ("snapshot", ("A", 1)),
        ("ticks", ("A", 12), ("A", 13)),
        ("GAP_REASON_RESYNC", "A", 1, 13),
    ]


# -- conflation ---------------------------------------------------------------------


def test_conflation_keeps_the_latest_tick_per_symbol_and_reports_exact_gaps() -> None:
    lane = TickLane(max_pending_ticks=5)
    lane.push(ticks(("A", 1), ("A", 2), ("B", 1)))
    lane.push(ticks(("A", 3), ("B", 2)))
    assert lane.stats.conflations == 0
    latest_a = pb.Tick(symbol="A", seq=4, bid_px_e8=42, venue_time_ns=7).SerializeToString()
    lane.push(SharedFrame.of_ticks([("A", 4, latest_a), ("C", 7, enc("C", 7))]))
    assert lane.stats.conflations == 1
    assert lane.pending == 3  # one tick per symbol
    assert lane.queued_frames == 3  # two gap notices, one conflated frame
    frames = drain(lane)
    assert [show(f) for f in frames] == [
        ("GAP_REASON_CONFLATED", "A", 1, 3),
        ("GAP_REASON_CONFLATED", "B", 1, 1),
        # C had a single tick: nothing skipped, so no gap notice for it.
        ("conflated", ("A", 4), ("B", 2), ("C", 7)),
    ]
    assert frames[0] == Gap("A", 1, 3).frame()
    # The latest encoded ticks are copied verbatim into the conflated frame.
    assert frames[2] == tick_batch_frame([latest_a, enc("B", 2), enc("C", 7)], conflated=True)
    s = lane.stats
    assert (s.offered, s.delivered, s.conflated, s.frames) == (7, 3, 4, 3)
    assert (lane.pending, lane.queued_frames) == (0, 0)


def test_a_frame_alone_larger_than_the_bound_is_conflated() -> None:
    lane = TickLane(max_pending_ticks=3)
    lane.push(run("A", range(1, 5)))
    assert lane.pending == 1
    assert [show(f) for f in drain(lane)] == [
        ("GAP_REASON_CONFLATED", "A", 1, 3),
        ("conflated", ("A", 4)),
    ]


def test_gap_ranges_follow_the_seqs_actually_pushed() -> None:
    # Upstream seqs need not be contiguous: a gap runs from the first skipped seq to the one
    # before the delivered tick.
    lane = TickLane(max_pending_ticks=2)
    lane.push(ticks(("A", 10), ("A", 20), ("A", 35)))
    assert [show(f) for f in drain(lane)] == [
        ("GAP_REASON_CONFLATED", "A", 10, 34),
        ("conflated", ("A", 35)),
    ]


def test_lane_passes_frames_through_again_once_drained() -> None:
    lane = TickLane(max_pending_ticks=2)
    lane.push(run("A", range(1, 6)))
    assert [show(f) for f in drain(lane)] == [
        ("GAP_REASON_CONFLATED", "A", 1, 4),
        ("conflated", ("A", 5)),
    ]
    frame = run("A", [6, 7])
    lane.push(frame)
    assert lane.take() is frame.frame
    assert lane.stats.conflations == 1


def test_repeated_conflation_merges_gaps_from_the_earliest_skipped_seq() -> None:
    lane = TickLane(max_pending_ticks=3)
    lane.push(run("A", [1, 2, 3]))
    lane.push(run("A", [4]))  # 4 > 3: conflate
    lane.push(ticks(("B", 1)))
    lane.push(ticks(("B", 2), ("A", 5)))  # 1 + 1 + 2 > 3: conflate again, nothing taken
    assert lane.stats.conflations == 2
    assert lane.pending == 2
    assert [show(f) for f in drain(lane)] == [
        ("GAP_REASON_CONFLATED", "A", 1, 4),  # one notice, not "1-3" and then "4-4"
        ("GAP_REASON_CONFLATED", "B", 1, 1),
        ("conflated", ("A", 5), ("B", 2)),
    ]
    s = lane.stats
    assert (s.offered, s.delivered, s.conflated) == (7, 2, 5)


def test_a_gap_already_taken_is_not_reported_again() -> None:
    lane = TickLane(max_pending_ticks=3)
    lane.push(run("A", [1, 2, 3, 4]))
    lane.push(run("B", [1, 2]))  # 1 + 2 = 3: no second conflation yet
    taken = lane.take()
    assert taken is not None
    assert show(taken) == ("GAP_REASON_CONFLATED", "A", 1, 3)
    lane.push(run("A", [5, 6]))  # conflate while A 4 (undelivered) is still queued
    assert [show(f) for f in drain(lane)] == [
        ("GAP_REASON_CONFLATED", "A", 4, 5),  # starts after the range already reported
        ("GAP_REASON_CONFLATED", "B", 1, 1),
        ("conflated", ("A", 6), ("B", 2)),
    ]


def test_a_snapshot_frame_survives_conflation_whole() -> None:
    # The snapshot confirms the subscribe: it stays, first, and only later ticks conflate.
    cache = SnapshotCache()
    cache.update("A", 7, enc("A", 7))
    lane = TickLane(max_pending_ticks=2)
    lane.push(cache.snapshot_frame(["A"]))
    lane.push(run("A", [8, 9, 10]))
    assert lane.pending == 2  # the snapshot's tick and the latest A
    assert [show(f) for f in drain(lane)] == [
        ("snapshot", ("A", 7)),
        ("GAP_REASON_CONFLATED", "A", 8, 9),
        ("conflated", ("A", 10)),
    ]


def test_an_empty_snapshot_survives_conflation() -> None:
    lane = TickLane(max_pending_ticks=1)
    lane.push(SnapshotCache().snapshot_frame(["NEWCO"]))
    lane.push(run("A", [1, 2]))
    assert [show(f) for f in drain(lane)] == [
        ("snapshot",),
        ("GAP_REASON_CONFLATED", "A", 1, 1),
        ("conflated", ("A", 2)),
    ]


def test_conflation_does_not_touch_the_frames_it_shares() -> None:
    slow = TickLane(max_pending_ticks=2)
    fast = TickLane(max_pending_ticks=100)
    recorder = Recorder()
    group = SubscriptionGroup(frozenset("AB"))
    group.members.update({LaneClient(slow), LaneClient(fast), recorder})
    for seq in (1, 2, 3):
        group.add("A", seq, enc("A", seq))
        group.add("B", seq, enc("B", seq))
        group.flush(10)
    assert slow.stats.conflations == 2
    assert [show(f) for f in drain(fast)] == [
        ("ticks", ("A", 1), ("B", 1)),
        ("ticks", ("A", 2), ("B", 2)),
        ("ticks", ("A", 3), ("B", 3)),
    ]
    assert [show(f) for f in drain(slow)][-1] == ("conflated", ("A", 3), ("B", 3))
    for seq, shared in enumerate(recorder.frames, start=1):
        assert shared.first == {"A": seq, "B": seq}
        assert shared.latest == {"A": (seq, enc("A", seq)), "B": (seq, enc("B", seq))}


# -- resync notices -------------------------------------------------------------------


def test_a_resync_notice_survives_conflation_and_splits_the_sequences() -> None:
    lane = TickLane(max_pending_ticks=12)
    lane.push(ticks(("A", 8), ("B", 1), ("A", 9)))
    lane.push(ticks(("A", 10), ("B", 2)))
    notice = resync("A", 5, 10)
    lane.push(notice)
    lane.push(run("A", range(5, 9), epoch=1))
    assert lane.stats.conflations == 0
    lane.push(run("A", range(9, 13), epoch=1))  # 13 > 12: conflate
    frames = drain(lane)
    assert [show(f) for f in frames] == [
        ("GAP_REASON_RESYNC", "A", 5, 10),
        # Only the new sequence's skipped ticks: not from 8 (the old sequence's first).
        ("GAP_REASON_CONFLATED", "B", 1, 1),
        ("GAP_REASON_CONFLATED", "A", 5, 11),
        ("conflated", ("B", 2), ("A", 12)),
    ]
    assert frames[0] is notice.frame
    # Replaced by a later tick: A 8-9 (old), B 1, A 5-11 (new); the void A 10 is not.
    assert lane.stats.conflated == 10
    # A 12 of the new sequence, never the old one's ticks.
    assert frames[3] == tick_batch_frame([enc("B", 2), enc("A", 12, epoch=1)], conflated=True)


def test_a_resume_notice_survives_conflation_in_its_place() -> None:
    # A resume's RESUME_UNAVAILABLE notice goes through the lane: after the frames queued
    # before it, and conflation must keep it (it has no ticks and is no conflation gap).
    lane = TickLane(max_pending_ticks=4)
    lane.push(ticks(("A", 1), ("A", 2)))
    notice = SharedFrame.notice(
        gap_frame(symbol="A", from_seq=3, to_seq=6, reason=pb.GAP_REASON_RESUME_UNAVAILABLE)
    )
    lane.push(notice)
    lane.push(ticks(("A", 7), ("A", 8), ("A", 9)))  # 5 > 4: conflate
    frames = drain(lane)
    assert [show(f) for f in frames] == [
        ("GAP_REASON_RESUME_UNAVAILABLE", "A", 3, 6),
        ("GAP_REASON_CONFLATED", "A", 1, 8),
        ("conflated", ("A", 9)),
    ]
    assert frames[0] is notice.frame


def test_ticks_before_a_resync_are_void_even_without_new_ones() -> None:
    lane = TickLane(max_pending_ticks=4)
    lane.push(run("A", [1, 2, 3]))
    lane.push(resync("A", 1, 3))
    lane.push(run("B", [1, 2]))  # 5 > 4: conflate
    assert lane.pending == 1
    assert [show(f) for f in drain(lane)] == [
        ("GAP_REASON_RESYNC", "A", 1, 3),
        ("GAP_REASON_CONFLATED", "B", 1, 1),
        ("conflated", ("B", 2)),
    ]


def test_an_earlier_gap_notice_of_the_old_sequence_does_not_carry_over() -> None:
    lane = TickLane(max_pending_ticks=2)
    lane.push(run("A", range(1, 11)))  # conflated: gap 1-9, A 10
    lane.push(resync("A", 5, 10))
    lane.push(run("A", [5, 6, 7], epoch=1))
    assert [show(f) for f in drain(lane)] == [
        ("GAP_REASON_RESYNC", "A", 5, 10),
        ("GAP_REASON_CONFLATED", "A", 5, 6),  # not 1-6: 1-9 belonged to the old sequence
        ("conflated", ("A", 7)),
    ]


def test_two_resyncs_of_a_symbol_keep_their_order() -> None:
    lane = TickLane(max_pending_ticks=3)
    first, second = resync("A", 1, 3), resync("A", 2, 4)
    lane.push(run("A", [1, 2, 3]))
    lane.push(first)
    lane.push(run("A", [1, 2, 3, 4], epoch=1))
    lane.push(second)
    lane.push(run("A", [2, 3, 4], epoch=2))  # 1 + 3 > 3: conflate, both notices queued
    frames = drain(lane)
    assert frames[:2] == [first.frame, second.frame]
    assert [show(f) for f in frames[2:]] == [
        ("GAP_REASON_CONFLATED", "A", 2, 3),
        ("conflated", ("A", 4)),
    ]
    assert frames[3] == tick_batch_frame([enc("A", 4, epoch=2)], conflated=True)


# -- properties -----------------------------------------------------------------------

# A push is a list of (symbol, seq step) pairs, one frame; a take is a count of takes.
frame_specs = st.lists(
    st.tuples(st.sampled_from(SYMBOLS), st.integers(min_value=1, max_value=3)),
    min_size=1,
    max_size=7,
)
resync_specs = st.tuples(st.sampled_from(SYMBOLS), st.integers(min_value=1, max_value=4))
# A take is (how many, max_bytes); max_bytes 0 takes one frame at a time.
takes = st.tuples(
    st.integers(min_value=1, max_value=4),
    st.sampled_from([0, 0, 1, 40, 100, 400]),
)


class Reader:
    """A client of the lane checking every frame it takes against what was pushed.

    ``pushed[(symbol, epoch)]`` maps seq to the encoded tick; an epoch is one upstream
    sequence (a resync notice starts the next). Per symbol and epoch, the seqs a client sees
    (ticks and conflation gap ranges) only go forward, so no seq is seen twice.
    """

    def __init__(self) -> None:
        self.pushed: dict[tuple[str, int], dict[int, bytes]] = {}
        self.shared: dict[int, SharedFrame] = {}  # id of pushed frame bytes -> the frame
        self.epoch: dict[str, int] = {}
        self.position: dict[tuple[str, int], int] = {}
        self.seen: dict[tuple[str, int], list[int]] = {}
        self.delivered: dict[tuple[str, int], set[int]] = {}
        self.resyncs_taken: list[bytes] = []
        self.conflated_frames = 0

    def pushing(self, frame: SharedFrame) -> None:
        self.shared[id(frame.frame)] = frame

    def take(self, lane: TickLane, max_bytes: int = 0) -> bool:
        before = lane.pending
        message = lane.take(max_bytes)
        if message is None:
            assert lane.queued_frames == 0
            assert lane.pending == 0
            return False
        parts = split(message)
        if len(parts) == 1:
            shared = self.shared.get(id(message))
            self._frame(message, shared is not None and shared.frame is message)
        else:
            # Joined: plain frames as they were pushed, within max_bytes.
            assert 0 < len(message) <= max_bytes
            for part in parts:
                assert any(f.plain and f.frame == part for f in self.shared.values())
                self._frame(part, True)
        ticks_in = len(pb.ServerFrame.FromString(message).ticks.ticks)
        assert lane.pending == before - ticks_in
        return True

    def _frame(self, frame: bytes, passed_through: bool) -> None:
        decoded = pb.ServerFrame.FromString(frame)
        if decoded.WhichOneof("body") == "gap":
            self._gap(decoded.gap, frame, passed_through)
            return
        assert decoded.WhichOneof("body") == "ticks"
        batch = decoded.ticks
        # Frames the lane built are conflated frames; frames it was pushed are not.
        assert batch.conflated is not passed_through
        self.conflated_frames += batch.conflated
        encoded = []
        for tick in batch.ticks:
            key = (tick.symbol, self.epoch.get(tick.symbol, 0))
            assert tick.ask_px_e8 == key[1], "a tick of another upstream sequence"
            assert tick.seq in self.pushed[key], "a tick never pushed"
            encoded.append(self.pushed[key][tick.seq])
            self._advance(key, tick.seq, tick.seq)
            self.delivered.setdefault(key, set()).add(tick.seq)
        assert frame == tick_batch_frame(encoded, conflated=batch.conflated), "bytes changed"

    def _gap(self, gap: pb.GapNotice, frame: bytes, passed_through: bool) -> None:
        symbol = gap.symbol
        if gap.reason == pb.GAP_REASON_RESYNC:
            assert passed_through
            self.resyncs_taken.append(frame)
            self.epoch[symbol] = self.epoch.get(symbol, 0) + 1
            return
        assert gap.reason == pb.GAP_REASON_CONFLATED
        assert not passed_through
        key = (symbol, self.epoch.get(symbol, 0))
        # A gap runs from a skipped tick to the one before a tick the lane still holds.
        pushed = self.pushed.get(key, {})
        assert gap.from_seq in pushed
        assert gap.to_seq + 1 in pushed
        self._advance(key, gap.from_seq, gap.to_seq)

    def _advance(self, key: tuple[str, int], first: int, last: int) -> None:
        assert first <= last
        assert first > self.position.get(key, 0), f"{key}: seq went back to {first}"
        self.position[key] = last
        self.seen.setdefault(key, []).extend(range(first, last + 1))

    def check_all_accounted_for(self, final: dict[str, int]) -> None:
        """Every tick of each symbol's current sequence was delivered or in one gap."""
        for symbol, epoch in final.items():
            assert self.epoch.get(symbol, 0) == epoch
            key = (symbol, epoch)
            pushed = self.pushed.get(key)
            if not pushed:
                continue
            seen = self.seen.get(key, [])
            assert len(seen) == len(set(seen))
            assert set(pushed) <= set(seen), f"{key}: ticks lost silently"
            assert max(pushed) in self.delivered.get(key, set()), f"{key}: the latest never came"


def push_frame(
    lane: TickLane,
    reader: Reader,
    frame: SharedFrame,
    bound: int,
) -> None:
    before, conflations = lane.pending, lane.stats.conflations
    reader.pushing(frame)
    lane.push(frame)
    if frame.count and before + frame.count > bound:
        assert lane.stats.conflations == conflations + 1
        assert lane.pending <= len(SYMBOLS)  # one tick per symbol
    else:
        assert lane.stats.conflations == conflations
        assert lane.pending == before + frame.count


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(frame_specs, takes), max_size=60),
    st.integers(min_value=1, max_value=10),
)
def test_no_tick_goes_back_or_vanishes_silently(
    ops: list[list[tuple[str, int]] | tuple[int, int]], bound: int
) -> None:
    lane = TickLane(max_pending_ticks=bound)
    reader = Reader()
    last: dict[str, int] = {}
    offered = 0
    for op in ops:
        if isinstance(op, tuple):
            count, max_bytes = op
            for _ in range(count):
                reader.take(lane, max_bytes)
            continue
        batch: list[tuple[str, int, bytes]] = []
        for symbol, step in op:
            seq = last[symbol] = last.get(symbol, 0) + step
            data = enc(symbol, seq)
            reader.pushed.setdefault((symbol, 0), {})[seq] = data
            batch.append((symbol, seq, data))
        offered += len(batch)
        push_frame(lane, reader, SharedFrame.of_ticks(batch), bound)
    while reader.take(lane):
        pass
    reader.check_all_accounted_for(dict.fromkeys(last, 0))
    s = lane.stats
    delivered = sum(len(d) for d in reader.delivered.values())
    assert (s.offered, s.delivered) == (offered, delivered)
    assert s.conflated == offered - delivered  # each tick not delivered was replaced once
    assert (reader.conflated_frames > 0) is (s.conflations > 0)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(frame_specs, takes, resync_specs.map(lambda r: ("resync", *r))), max_size=60
    ),
    st.integers(min_value=1, max_value=10),
)
def test_resyncs_never_mix_sequences_under_conflation(
    ops: list[list[tuple[str, int]] | tuple[int, int] | tuple[str, str, int]], bound: int
) -> None:
    lane = TickLane(max_pending_ticks=bound)
    reader = Reader()
    last: dict[str, int] = {}
    epoch: dict[str, int] = {}
    notices: list[bytes] = []
    for op in ops:
        if isinstance(op, tuple) and len(op) == 2:
            count, max_bytes = op
            for _ in range(count):
                reader.take(lane, max_bytes)
        elif isinstance(op, tuple):
            _, symbol, restart = op
            notice = resync(symbol, restart, last.get(symbol, 0))
            notices.append(notice.frame)
            epoch[symbol] = epoch.get(symbol, 0) + 1
            last[symbol] = restart - 1
            push_frame(lane, reader, notice, bound)
        else:
            batch: list[tuple[str, int, bytes]] = []
            for symbol, step in op:
                seq = last[symbol] = last.get(symbol, 0) + step
                data = enc(symbol, seq, epoch.get(symbol, 0))
                reader.pushed.setdefault((symbol, epoch.get(symbol, 0)), {})[seq] = data
                batch.append((symbol, seq, data))
            push_frame(lane, reader, SharedFrame.of_ticks(batch), bound)
    while reader.take(lane):
        pass
    # Every resync notice arrives, in order; the current sequences are complete.
    assert reader.resyncs_taken == notices
    reader.check_all_accounted_for({s: epoch.get(s, 0) for s in last})


# -- limits ---------------------------------------------------------------------------


def test_stall_limit_reports_disconnect_and_taking_resets_it() -> None:
    clock = FakeClock()
    lane = TickLane(max_stall_s=30, clock=clock)
    clock.now += 100
    assert lane.stalled_for_s() == 0.0  # nothing queued: idle, not stalled
    assert lane.disconnect_reason() is None
    lane.push(ticks(("A", 1)))
    clock.now += 20
    lane.push(ticks(("A", 2)))  # more frames do not reset the clock; only taking one does
    lane.push(ticks(("A", 3)))
    clock.now += 10
    assert lane.stalled_for_s() == pytest.approx(30)
    assert lane.disconnect_reason() is None  # at the limit, not past it
    clock.now += 1
    reason = lane.disconnect_reason()
    assert reason is not None
    assert reason.startswith("client stalled")
    assert "31.0s" in reason
    assert "limit 30s" in reason
    assert "3 ticks pending" in reason
    assert lane.take() is not None  # a slow reader that takes frames is not stuck
    assert lane.stalled_for_s() == 0.0
    assert lane.disconnect_reason() is None
    clock.now += 31
    assert lane.disconnect_reason() is not None  # frames still wait, none taken since
    drain(lane)
    clock.now += 100
    assert lane.stalled_for_s() == 0.0
    assert lane.disconnect_reason() is None


def test_too_many_symbols_while_conflating_reports_overflow() -> None:
    lane = TickLane(max_pending_ticks=3, max_pending_symbols=3)
    lane.push(ticks(("A", 1), ("B", 1), ("C", 1)))
    lane.push(ticks(("A", 2)))  # conflates to three symbols: within bounds
    assert lane.stats.conflations == 1
    assert lane.disconnect_reason() is None
    lane.push(ticks(("D", 1)))  # conflates to four
    assert lane.stats.conflations == 2
    reason = lane.disconnect_reason()
    assert reason is not None
    assert reason.startswith("tick lane overflow")
    assert "more than 3 symbols" in reason
    drain(lane)
    assert lane.disconnect_reason() is None


def test_many_symbols_without_conflation_is_not_an_overflow() -> None:
    lane = TickLane(max_pending_ticks=10, max_pending_symbols=2)
    lane.push(ticks(*((symbol, 1) for symbol in SYMBOLS)))
    assert lane.disconnect_reason() is None


def test_close_drops_queued_frames_and_ignores_later_pushes() -> None:
    clock = FakeClock()
    lane = TickLane(max_stall_s=1, clock=clock)
    lane.push(ticks(("A", 1), ("A", 2)))
    lane.push(resync("A", 1, 2))
    lane.close("client went away")
    assert lane.closed
    assert (lane.pending, lane.queued_frames) == (0, 0)
    assert lane.take() is None
    lane.push(ticks(("A", 3)))
    assert (lane.pending, lane.queued_frames) == (0, 0)
    assert lane.take() is None
    assert lane.stats.offered == 2
    clock.now += 10
    lane.close("later reason")
    assert lane.disconnect_reason() == "client went away"  # the first reason stays


@pytest.mark.parametrize(
    "bounds",
    [
        {"max_pending_ticks": 0},
        {"max_pending_ticks": -1},
        {"max_pending_symbols": 0},
        {"max_stall_s": 0},
        {"max_stall_s": -1.5},
    ],
)
def test_bounds_must_be_positive(bounds: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="positive"):
        TickLane(**bounds)


def test_gap_frame_is_a_conflated_gap_notice() -> None:
    assert show(Gap("A", 3, 7).frame()) == ("GAP_REASON_CONFLATED", "A", 3, 7)
