"""fanout.groups: ticks framed once per symbol set, members placed in the group of their set."""

from __future__ import annotations

from fanout.frames import SharedFrame, gap_frame
from fanout.groups import SubscriptionGroup, SubscriptionGroups
from fanout.lane import TickLane
from proto import mdfeed_pb2 as pb


def enc(symbol: str, seq: int) -> bytes:
    return pb.Tick(
        symbol=symbol, seq=seq, kind=pb.TICK_KIND_QUOTE, bid_px_e8=seq
    ).SerializeToString()


def show(frame: bytes) -> tuple[object, ...]:
    """A tick frame as ("ticks", (symbol, seq)...)."""
    decoded = pb.ServerFrame.FromString(frame)
    assert decoded.WhichOneof("body") == "ticks"
    assert not decoded.ticks.conflated
    assert not decoded.ticks.snapshot
    return ("ticks", *((t.symbol, t.seq) for t in decoded.ticks.ticks))


def resync(symbol: str, new_seq: int, old_seq: int) -> SharedFrame:
    frame = gap_frame(symbol=symbol, from_seq=new_seq, to_seq=old_seq, reason=pb.GAP_REASON_RESYNC)
    return SharedFrame.notice(frame, resync=symbol)


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


def test_group_frames_ticks_once_and_pushes_the_same_frame_to_every_member() -> None:
    group = SubscriptionGroup(frozenset("AB"))
    members = [Recorder() for _ in range(3)]
    group.members.update(members)
    sent = [("A", 1), ("B", 1), ("A", 2), ("A", 3), ("B", 2)]
    for symbol, seq in sent:
        group.add(symbol, seq, enc(symbol, seq))
    group.flush(2)
    frames = members[0].frames
    assert [show(f.frame) for f in frames] == [
        ("ticks", ("A", 1), ("B", 1)),
        ("ticks", ("A", 2), ("A", 3)),
        ("ticks", ("B", 2)),
    ]
    assert [f.count for f in frames] == [2, 2, 1]
    assert frames[1].first == {"A": 2}
    assert frames[1].latest == {"A": (3, enc("A", 3))}
    for member in members[1:]:
        assert len(member.frames) == len(frames)
        assert all(a is b for a, b in zip(member.frames, frames, strict=True))
    group.flush(2)  # nothing added since: nothing pushed
    assert all(len(m.frames) == 3 for m in members)
    group.add("B", 3, enc("B", 3))
    group.flush(2)
    assert [show(f.frame) for f in members[0].frames[3:]] == [("ticks", ("B", 3))]
    notice = resync("A", 1, 3)
    group.broadcast(notice)
    assert all(m.frames[-1] is notice for m in members)
    assert all(len(m.frames) == 5 for m in members)


def test_group_members_read_the_shared_bytes() -> None:
    group = SubscriptionGroup(frozenset("A"))
    clients = [LaneClient(TickLane()) for _ in range(2)]
    group.members.update(clients)
    group.add("A", 1, enc("A", 1))
    group.flush(256)
    first, second = (c.lane.take() for c in clients)
    assert first is not None
    assert first is second
    assert show(first) == ("ticks", ("A", 1))


def by_symbol(groups: SubscriptionGroups) -> dict[str, list[frozenset[str]]]:
    return {symbol: [g.symbols for g in held] for symbol, held in groups.by_symbol.items()}


def test_members_of_one_symbol_set_share_one_group() -> None:
    groups = SubscriptionGroups()
    first, second, other = Recorder(), Recorder(), Recorder()
    groups.place(first, {"A", "B"})
    groups.place(second, ["B", "A"])
    groups.place(other, {"B"})
    assert len(groups) == 2
    assert by_symbol(groups) == {
        "A": [frozenset("AB")],
        "B": [frozenset("AB"), frozenset("B")],
    }
    (shared,) = groups.by_symbol["A"]
    assert shared.members == {first, second}
    assert groups.by_symbol["B"][1].members == {other}


def test_placing_a_member_again_moves_it_and_its_last_member_drops_a_group() -> None:
    groups = SubscriptionGroups()
    first, second = Recorder(), Recorder()
    groups.place(first, {"A"})
    groups.place(second, {"A"})
    groups.place(first, {"A", "C"})  # subscribed to more: another group
    assert len(groups) == 2
    assert by_symbol(groups) == {"A": [frozenset("A"), frozenset("AC")], "C": [frozenset("AC")]}
    groups.place(second, {"A", "C"})  # the group of {"A"} lost its last member
    assert len(groups) == 1
    assert by_symbol(groups) == {"A": [frozenset("AC")], "C": [frozenset("AC")]}
    assert groups.by_symbol["A"][0].members == {first, second}
    groups.place(first, ())  # unsubscribed from everything
    groups.place(second, set())
    assert len(groups) == 0
    assert groups.by_symbol == {}
    groups.place(first, ())  # in no group: nothing to leave
    assert len(groups) == 0
