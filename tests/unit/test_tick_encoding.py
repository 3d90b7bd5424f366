"""The hand-written Tick encoder writes exactly the protobuf library's bytes."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fix_session.tick_encoding import encode_fields, encode_tick, symbol_field
from proto import mdfeed_pb2 as pb

INT64 = st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)
UINT64 = st.integers(min_value=0, max_value=(1 << 64) - 1)
OPTIONAL_INT64 = st.none() | INT64
OPTIONAL_NAMES = (
    "bid_px_e8", "bid_size_e8", "ask_px_e8", "ask_size_e8", "last_px_e8", "last_size_e8",
)  # fmt: skip

TICKS = st.fixed_dictionaries(
    {
        "symbol": st.text(),
        "seq": UINT64,
        "kind": st.sampled_from([0, 1, 2, -1, 7]),
        **dict.fromkeys(OPTIONAL_NAMES, OPTIONAL_INT64),
        "venue_time_ns": INT64,
        "ingest_time_ns": INT64,
        "fix_msg_seq_num": UINT64,
        "from_snapshot": st.booleans(),
        "bus_time_ns": INT64,
        "fanout_time_ns": INT64,
    }
)


def _protobuf(fields: dict[str, Any]) -> bytes:
    return pb.Tick(**{k: v for k, v in fields.items() if v is not None}).SerializeToString()


@given(TICKS)
def test_every_field_encodes_as_protobuf_does(fields: dict[str, Any]) -> None:
    assert encode_tick(**fields) == _protobuf(fields)


@given(TICKS)
def test_the_normalizers_form_encodes_as_protobuf_does(fields: dict[str, Any]) -> None:
    # The tick path sets a side's price and size together, or neither.
    for side in ("bid", "ask", "last"):
        if fields[f"{side}_px_e8"] is None or fields[f"{side}_size_e8"] is None:
            fields[f"{side}_px_e8"] = fields[f"{side}_size_e8"] = None
    encoded = encode_fields(
        symbol_field(fields["symbol"]),
        seq=fields["seq"],
        kind=fields["kind"],
        has_bid=fields["bid_px_e8"] is not None,
        bid_px_e8=fields["bid_px_e8"] or 0,
        bid_size_e8=fields["bid_size_e8"] or 0,
        has_ask=fields["ask_px_e8"] is not None,
        ask_px_e8=fields["ask_px_e8"] or 0,
        ask_size_e8=fields["ask_size_e8"] or 0,
        has_last=fields["last_px_e8"] is not None,
        last_px_e8=fields["last_px_e8"] or 0,
        last_size_e8=fields["last_size_e8"] or 0,
        venue_time_ns=fields["venue_time_ns"],
        ingest_time_ns=fields["ingest_time_ns"],
        fix_msg_seq_num=fields["fix_msg_seq_num"],
        from_snapshot=fields["from_snapshot"],
        bus_time_ns=fields["bus_time_ns"],
        fanout_time_ns=fields["fanout_time_ns"],
    )
    assert encoded == _protobuf(fields)


def test_set_optionals_are_written_even_when_zero_and_defaults_are_not() -> None:
    assert encode_tick() == b""
    assert encode_tick(bid_px_e8=0) == b"\x20\x00"
    assert encode_tick(seq=0, venue_time_ns=0, from_snapshot=False) == b""


def test_negatives_are_ten_byte_twos_complement_and_symbols_utf8() -> None:
    assert encode_tick(ask_px_e8=-1) == b"\x30" + b"\xff" * 9 + b"\x01"
    assert encode_tick(symbol="Ü") == b"\x0a\x02\xc3\x9c"
    assert pb.Tick.FromString(encode_tick(symbol="€x", last_px_e8=-5)).last_px_e8 == -5
