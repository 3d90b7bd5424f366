"""mdfeed.kernel.tick_records: a tick record holds one symbol's consecutive ticks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdfeed.kernel.tick_records import TickRecordError, batch_record, ticks_of
from proto import mdfeed_pb2 as pb

symbols = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ.0123456789", min_size=1, max_size=12)


@given(
    symbols,
    st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), min_size=1, max_size=30),
)
def test_a_batch_record_is_a_tickbatch_and_splits_back_into_the_same_ticks(
    symbol: str, prices: list[int]
) -> None:
    ticks = [
        pb.Tick(symbol=symbol * (1 + i % 3), seq=i + 1, bid_px_e8=px, venue_time_ns=px)
        for i, px in enumerate(prices)
    ]
    encoded = [t.SerializeToString() for t in ticks]
    value = batch_record(encoded)
    assert list(pb.TickBatch.FromString(value).ticks) == ticks
    assert ticks_of(value) == encoded


@given(symbols, st.integers(min_value=1, max_value=2**64 - 1))
def test_a_bare_tick_record_reads_as_one_tick(symbol: str, seq: int) -> None:
    encoded = pb.Tick(symbol=symbol, seq=seq, ask_px_e8=5).SerializeToString()
    assert ticks_of(encoded) == [encoded]


def test_long_ticks_take_a_two_byte_length() -> None:
    encoded = pb.Tick(symbol="X" * 300, seq=1).SerializeToString()
    value = batch_record([encoded, encoded])
    assert value[1] & 0x80
    assert ticks_of(value) == [encoded, encoded]


@pytest.mark.parametrize(
    "value",
    [b"", b"\x10\x01", b"\x0a", b"\x0a\x05\x0a\x01A", b"\x0a\x03\x0a\x01A\x12"],
    ids=["empty", "not-field-1", "no-length", "tick-past-end", "junk-after-a-tick"],
)
def test_a_value_that_is_neither_layout_is_refused(value: bytes) -> None:
    with pytest.raises(TickRecordError):
        ticks_of(value)
