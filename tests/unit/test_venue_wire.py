"""The venue's wire helpers: checksum, framing, timestamps and the stream splitter."""

from __future__ import annotations

import random

import pytest

from fix_session.venue.wire import (
    FrameSplitter,
    Garbled,
    checksum,
    find_msg_type,
    find_seq_num,
    frame,
    utc_time_only,
    utc_timestamp,
)
from fix_spec import fix44
from fix_spec.codec import FixDecodeError
from fix_spec.fix44.header import Message

BODY = b"35=0\x0149=VENUE\x0156=MDFEED\x0134=7\x0152=20260102-03:04:05.678\x01"


@pytest.mark.parametrize("size", [0, 1, 255, 256, 257, 1000, 5000])
def test_checksum_is_the_byte_sum_modulo_256(size: int) -> None:
    data = random.Random(size).randbytes(size)
    assert checksum(data) == sum(data) % 256


def test_frame_builds_what_the_codec_decodes() -> None:
    message = fix44.decode(frame(BODY))
    assert isinstance(message, Message)
    assert message.header.msg_seq_num == 7


def test_frame_can_lie_about_length_and_checksum() -> None:
    assert b"\x019=999\x01" in frame(BODY, body_length=999)
    assert frame(BODY, checksum_value="XYZ").endswith(b"\x0110=XYZ\x01")
    assert frame(BODY, checksum_value=5).endswith(b"\x0110=005\x01")
    with pytest.raises(FixDecodeError) as length:
        fix44.decode(frame(BODY, body_length=len(BODY) + 1))
    assert length.value.tag == 9
    with pytest.raises(FixDecodeError) as cks:
        fix44.decode(frame(BODY, checksum_value=(checksum(frame(BODY)[:-7]) + 1) % 256))
    assert cks.value.tag == 10


def test_timestamps_have_milliseconds() -> None:
    ns = 1_767_323_045_678_901_234  # 2026-01-02 03:04:05.678901234 UTC
    assert utc_timestamp(ns) == "20260102-03:04:05.678"
    assert utc_time_only(ns) == "03:04:05.678"


def test_find_seq_num_and_msg_type_in_raw_bytes() -> None:
    assert find_seq_num(frame(BODY)) == 7
    assert find_msg_type(frame(BODY)) == "0"
    assert find_seq_num(b"garbage") is None
    assert find_msg_type(b"garbage") is None


def test_splitter_reassembles_frames_fed_one_byte_at_a_time() -> None:
    stream = frame(BODY) + frame(BODY.replace(b"34=7", b"34=8"))
    splitter = FrameSplitter()
    frames: list[bytes] = []
    for i in range(len(stream)):
        splitter.feed(stream[i : i + 1])
        while (item := splitter.next()) is not None:
            assert isinstance(item, bytes)
            frames.append(item)
    assert frames == [frame(BODY), frame(BODY.replace(b"34=7", b"34=8"))]
    assert splitter.buffered == 0


def test_splitter_skips_garbage_and_keeps_a_partial_frame_start() -> None:
    splitter = FrameSplitter()
    splitter.feed(b"noise\x01noise8=FIX")
    garbage = splitter.next()
    assert isinstance(garbage, Garbled)
    assert garbage.data == b"noise\x01noise"
    assert splitter.next() is None
    splitter.feed(frame(BODY)[len(b"8=FIX") :])
    assert splitter.next() == frame(BODY)


def test_splitter_resynchronises_after_a_wrong_body_length() -> None:
    splitter = FrameSplitter()
    broken = frame(BODY, body_length=len(BODY) - 5)
    splitter.feed(broken + frame(BODY))
    skipped = splitter.next()
    assert isinstance(skipped, Garbled)
    assert "BodyLength" in skipped.reason
    assert skipped.data == broken
    assert splitter.next() == frame(BODY)
    assert splitter.next() is None


def test_splitter_rejects_a_length_that_is_not_a_number_or_too_large() -> None:
    splitter = FrameSplitter(max_body_length=100)
    splitter.feed(b"8=FIX.4.4\x019=abc\x01" + frame(BODY) + b"8=FIX.4.4\x019=100000\x01")
    first = splitter.next()
    assert isinstance(first, Garbled)
    assert "abc" in first.reason
    assert splitter.next() == frame(BODY)
    too_large = splitter.next()
    assert isinstance(too_large, Garbled)
    assert "100000" in too_large.reason
