"""fanout.frames: tick frames are concatenated encoded ticks, byte-identical to protobuf's;
a shared frame keeps the ticks conflation reads."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fanout.frames import SharedFrame, error_frame, gap_frame, tick_batch_frame
from mdfeed.kernel.varint import encode_varint
from proto import mdfeed_pb2 as pb

I64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
U64 = st.integers(min_value=0, max_value=2**64 - 1)

ticks = st.builds(
    pb.Tick,
    symbol=st.text(max_size=40),
    seq=U64,
    kind=st.sampled_from([pb.TICK_KIND_UNSPECIFIED, pb.TICK_KIND_QUOTE, pb.TICK_KIND_TRADE]),
    bid_px_e8=st.none() | I64,
    ask_px_e8=st.none() | I64,
    last_px_e8=st.none() | I64,
    last_size_e8=st.none() | I64,
    venue_time_ns=I64,
    ingest_time_ns=I64,
    fix_msg_seq_num=U64,
    from_snapshot=st.booleans(),
)


@given(st.lists(ticks, max_size=60), st.booleans(), st.booleans())
def test_frame_bytes_equal_protobuf_serialization(
    batch: list[pb.Tick], conflated: bool, snapshot: bool
) -> None:
    encoded = [t.SerializeToString() for t in batch]
    frame = tick_batch_frame(encoded, conflated=conflated, snapshot=snapshot)
    expected = pb.ServerFrame(
        ticks=pb.TickBatch(ticks=batch, conflated=conflated, snapshot=snapshot)
    ).SerializeToString()
    assert frame == expected
    decoded = pb.ServerFrame.FromString(frame)
    assert decoded.WhichOneof("body") == "ticks"
    assert list(decoded.ticks.ticks) == batch
    assert decoded.ticks.conflated is conflated
    assert decoded.ticks.snapshot is snapshot


def test_large_batch_needs_multibyte_lengths() -> None:
    # A frame over 16 KiB: both the tick lengths and the batch length take several bytes.
    batch = [pb.Tick(symbol="S" * 300, seq=i) for i in range(1, 200)]
    frame = tick_batch_frame([t.SerializeToString() for t in batch], conflated=True)
    assert len(frame) > 16_384
    assert (
        frame == pb.ServerFrame(ticks=pb.TickBatch(ticks=batch, conflated=True)).SerializeToString()
    )


def test_tick_bytes_are_copied_not_reencoded() -> None:
    # Bytes that protobuf would never produce for this tick (a field repeated: last wins
    # on parse) survive verbatim: the frame builder does not re-encode.
    odd = pb.Tick(seq=1).SerializeToString() + pb.Tick(seq=2).SerializeToString()
    frame = tick_batch_frame([odd])
    assert odd in frame
    assert pb.ServerFrame.FromString(frame).ticks.ticks[0].seq == 2


def test_empty_batch_is_still_a_tick_frame() -> None:
    frame = tick_batch_frame([])
    assert pb.ServerFrame.FromString(frame).WhichOneof("body") == "ticks"


@given(st.integers(min_value=1, max_value=2**64 - 1))
def test_varint_matches_protobuf(value: int) -> None:
    # Tick.seq is a uint64 in field 2 (tag 0x10); proto3 omits it when zero.
    assert b"\x10" + encode_varint(value) == pb.Tick(seq=value).SerializeToString()


def test_varint_of_zero() -> None:
    assert encode_varint(0) == b"\x00"


def test_varint_rejects_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        encode_varint(-1)


def test_gap_frame_round_trips() -> None:
    frame = gap_frame(symbol="AAPL", from_seq=5, to_seq=9, reason=pb.GAP_REASON_CONFLATED)
    decoded = pb.ServerFrame.FromString(frame)
    assert decoded.WhichOneof("body") == "gap"
    assert decoded.gap.symbol == "AAPL"
    assert (decoded.gap.from_seq, decoded.gap.to_seq) == (5, 9)
    assert decoded.gap.reason == pb.GAP_REASON_CONFLATED
    room = pb.ServerFrame.FromString(
        gap_frame(room="lobby", from_seq=1, to_seq=1, reason=pb.GAP_REASON_RESUME_UNAVAILABLE)
    )
    assert room.gap.WhichOneof("target") == "room"


def test_gap_frame_needs_exactly_one_target() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        gap_frame(from_seq=1, to_seq=2, reason=pb.GAP_REASON_RESYNC)
    with pytest.raises(ValueError, match="exactly one"):
        gap_frame(symbol="A", room="B", from_seq=1, to_seq=2, reason=pb.GAP_REASON_RESYNC)


def test_error_frame_round_trips() -> None:
    decoded = pb.ServerFrame.FromString(error_frame(7, "not entitled to TSLA", ref="TSLA"))
    assert decoded.WhichOneof("body") == "error"
    assert (decoded.error.code, decoded.error.message, decoded.error.ref) == (
        7,
        "not entitled to TSLA",
        "TSLA",
    )


def test_joined_plain_frames_parse_as_one_batch_of_all_their_ticks() -> None:
    # What TickLane.take relies on to join queued frames into one message.
    first = [pb.Tick(symbol="AAPL", seq=s).SerializeToString() for s in (1, 2)]
    second = [pb.Tick(symbol="MSFT", seq=s).SerializeToString() for s in (7, 8, 9)]
    joined = tick_batch_frame(first) + tick_batch_frame(second)
    frame = pb.ServerFrame.FromString(joined)
    assert [(t.symbol, t.seq) for t in frame.ticks.ticks] == [
        ("AAPL", 1), ("AAPL", 2), ("MSFT", 7), ("MSFT", 8), ("MSFT", 9),
    ]  # fmt: skip
    assert not frame.ticks.conflated
    assert not frame.ticks.snapshot


def _enc(symbol: str, seq: int) -> bytes:
    return pb.Tick(
        symbol=symbol, seq=seq, kind=pb.TICK_KIND_QUOTE, bid_px_e8=seq
    ).SerializeToString()


def test_shared_frame_of_ticks_records_first_and_latest_per_symbol() -> None:
    sent = [("A", 4), ("B", 9), ("A", 5), ("A", 6)]
    frame = SharedFrame.of_ticks((symbol, seq, _enc(symbol, seq)) for symbol, seq in sent)
    assert frame.count == 4
    assert frame.first == {"A": 4, "B": 9}
    assert frame.latest == {"A": (6, _enc("A", 6)), "B": (9, _enc("B", 9))}
    assert frame.resync is None
    assert not frame.conflated
    assert frame.plain
    assert not frame.snapshot
    assert frame.frame == tick_batch_frame([_enc(symbol, seq) for symbol, seq in sent])
    gap = gap_frame(symbol="A", from_seq=1, to_seq=6, reason=pb.GAP_REASON_RESYNC)
    notice = SharedFrame.notice(gap, resync="A")
    assert (notice.count, notice.first, notice.latest, notice.resync) == (0, {}, {}, "A")
    assert not notice.plain
    assert notice.frame == gap
