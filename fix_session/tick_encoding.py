"""The protobuf encoding of a `Tick` (proto/mdfeed.proto), written by hand for the tick path.

`encode_tick` returns the same bytes as ``pb.Tick(...).SerializeToString()`` for the same
values, without building a message object: fields in field-number order, proto3 defaults
(0, "", False) left out, the optional top-of-book and last-trade fields present exactly when
given (also when 0), every integer a base-128 varint; int64 and the TickKind enum write a
negative value as its 64-bit two's complement (ten bytes), as protobuf does (no zigzag:
that is only for sint64).

The normalizer keeps each book's encoded symbol field (`symbol_field`) and writes its ticks
with `encode_fields`: one `librt.strings.BytesWriter` (mypyc's native byte buffer) and one
bytes object a tick, the varints in native 64-bit arithmetic (`mypy_extensions.i64`). Both
work as plain Python too (MDFEED_PURE_PYTHON=1), only slower.
"""

from __future__ import annotations

from typing import Final

from librt.strings import BytesWriter
from mypy_extensions import i64, u8

_I64_LIMIT: Final = 1 << 63

# Field tags: (field number << 3) | wire type; every field here is a varint (0) but the
# symbol, a length-delimited string (2).
TAG_SYMBOL: Final = 0x0A
TAG_SEQ: Final = 0x10
TAG_KIND: Final = 0x18
TAG_BID_PX: Final = 0x20
TAG_BID_SIZE: Final = 0x28
TAG_ASK_PX: Final = 0x30
TAG_ASK_SIZE: Final = 0x38
TAG_LAST_PX: Final = 0x40
TAG_LAST_SIZE: Final = 0x48
TAG_VENUE_TIME: Final = 0x50
TAG_INGEST_TIME: Final = 0x58
TAG_FIX_SEQ: Final = 0x60
TAG_FROM_SNAPSHOT: Final = 0x68
TAG_BUS_TIME: Final = 0x70
TAG_FANOUT_TIME: Final = 0x78


def write_varint(out: BytesWriter, value: i64) -> None:
    """A signed 64-bit value as a varint: a negative one as its two's complement, which
    takes ten bytes (the arithmetic shift keeps the low bits of the unsigned value)."""
    if value < 0:
        for _ in range(9):
            out.append(u8((value & 0x7F) | 0x80))
            value >>= 7
        out.append(1)
        return
    while value >= 0x80:
        out.append(u8((value & 0x7F) | 0x80))
        value >>= 7
    out.append(u8(value))


def write_uint64(out: BytesWriter, value: int) -> None:
    """An unsigned 64-bit value as a varint (above 2^63 - 1 on the slower general path)."""
    if value < _I64_LIMIT:
        write_varint(out, value)
        return
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def symbol_field(symbol: str) -> bytes:
    """Field 1 (symbol) with its tag and length, the bytes a tick starts with; empty for ""
    (a proto3 default is not written)."""
    if not symbol:
        return b""
    data = symbol.encode()
    out = BytesWriter()
    out.append(TAG_SYMBOL)
    write_varint(out, len(data))
    out.write(data)
    return out.getvalue()


def encode_fields(
    head: bytes,
    *,
    seq: int,
    kind: int,
    has_bid: bool,
    bid_px_e8: int,
    bid_size_e8: int,
    has_ask: bool,
    ask_px_e8: int,
    ask_size_e8: int,
    has_last: bool,
    last_px_e8: int,
    last_size_e8: int,
    venue_time_ns: int,
    ingest_time_ns: int,
    fix_msg_seq_num: int,
    from_snapshot: bool,
    bus_time_ns: int = 0,
    fanout_time_ns: int = 0,
) -> bytes:
    """The encoded Tick: `head` (from `symbol_field`) then fields 2..15."""
    out = BytesWriter()
    out.write(head)
    if seq:
        out.append(TAG_SEQ)
        write_uint64(out, seq)
    if kind:
        out.append(TAG_KIND)
        write_varint(out, kind)
    if has_bid:
        out.append(TAG_BID_PX)
        write_varint(out, bid_px_e8)
        out.append(TAG_BID_SIZE)
        write_varint(out, bid_size_e8)
    if has_ask:
        out.append(TAG_ASK_PX)
        write_varint(out, ask_px_e8)
        out.append(TAG_ASK_SIZE)
        write_varint(out, ask_size_e8)
    if has_last:
        out.append(TAG_LAST_PX)
        write_varint(out, last_px_e8)
        out.append(TAG_LAST_SIZE)
        write_varint(out, last_size_e8)
    if venue_time_ns:
        out.append(TAG_VENUE_TIME)
        write_varint(out, venue_time_ns)
    if ingest_time_ns:
        out.append(TAG_INGEST_TIME)
        write_varint(out, ingest_time_ns)
    if fix_msg_seq_num:
        out.append(TAG_FIX_SEQ)
        write_uint64(out, fix_msg_seq_num)
    if from_snapshot:
        out.append(TAG_FROM_SNAPSHOT)
        out.append(1)
    if bus_time_ns:
        out.append(TAG_BUS_TIME)
        write_varint(out, bus_time_ns)
    if fanout_time_ns:
        out.append(TAG_FANOUT_TIME)
        write_varint(out, fanout_time_ns)
    return out.getvalue()


def encode_tick(
    *,
    symbol: str = "",
    seq: int = 0,
    kind: int = 0,
    bid_px_e8: int | None = None,
    bid_size_e8: int | None = None,
    ask_px_e8: int | None = None,
    ask_size_e8: int | None = None,
    last_px_e8: int | None = None,
    last_size_e8: int | None = None,
    venue_time_ns: int = 0,
    ingest_time_ns: int = 0,
    fix_msg_seq_num: int = 0,
    from_snapshot: bool = False,
    bus_time_ns: int = 0,
    fanout_time_ns: int = 0,
) -> bytes:
    """A Tick's encoding from the keyword arguments `pb.Tick` takes (None: not set).

    The general form, for tests and tools; each optional field is written on its own,
    so a price without its size is encoded as protobuf would.
    """
    out = BytesWriter()
    out.write(symbol_field(symbol))
    if seq:
        out.append(TAG_SEQ)
        write_uint64(out, seq)
    if kind:
        out.append(TAG_KIND)
        write_varint(out, kind)
    for tag, value in (
        (TAG_BID_PX, bid_px_e8),
        (TAG_BID_SIZE, bid_size_e8),
        (TAG_ASK_PX, ask_px_e8),
        (TAG_ASK_SIZE, ask_size_e8),
        (TAG_LAST_PX, last_px_e8),
        (TAG_LAST_SIZE, last_size_e8),
    ):
        if value is not None:
            out.append(tag)
            write_varint(out, value)
    tail = encode_fields(
        b"", seq=0, kind=0,
        has_bid=False, bid_px_e8=0, bid_size_e8=0,
        has_ask=False, ask_px_e8=0, ask_size_e8=0,
        has_last=False, last_px_e8=0, last_size_e8=0,
        venue_time_ns=venue_time_ns, ingest_time_ns=ingest_time_ns,
        fix_msg_seq_num=fix_msg_seq_num, from_snapshot=from_snapshot,
        bus_time_ns=bus_time_ns, fanout_time_ns=fanout_time_ns,
    )  # fmt: skip
    out.write(tail)
    return out.getvalue()
