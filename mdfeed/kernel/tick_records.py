"""The tick topic's record layout: one symbol's consecutive ticks per record, as a TickBatch.

A record on the tick topic is keyed by its symbol, and its value is the encoded
`TickBatch` (proto/mdfeed.proto) of one or more consecutive ticks of that symbol (their
seqs contiguous, in order), each tick in field 1. Encoded, that is the concatenation of
``0x0a <length> <encoded Tick>`` per tick, so a writer builds it by joining and a reader
takes it apart without decoding the ticks (`ticks_of`), and forwards each tick's own bytes.

Why batches: measured side by side against the real Kafka (bench/harness/record_layout.py),
a record costs the Python clients far more than its bytes do, so fewer, fuller records
cut the consumer's and the producer's CPU per tick several times over (figures in
docs/scaling.md).

Readers also take a record holding one bare encoded Tick (the layout before batches, and
what tests and tools may still write). The two cannot be confused: a TickBatch's first
field holds a Tick, whose own first byte is its symbol's tag 0x0a, while a bare Tick's first
field is the symbol itself, whose first byte is a printable character, never 0x0a.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from mdfeed.kernel.varint import encode_varint

__all__ = ["TickRecordError", "batch_record", "ticks_of"]

_FIELD_TICKS: Final = 0x0A


class TickRecordError(ValueError):
    """A record value is neither an encoded TickBatch nor a bare encoded Tick."""


def batch_record(encoded_ticks: Sequence[bytes]) -> bytes:
    """The record value of consecutive encoded ticks of one symbol."""
    parts: list[bytes] = []
    for encoded in encoded_ticks:
        size = len(encoded)
        # Ticks are well under 16 KiB: one or two length bytes, written inline.
        if size < 0x80:
            parts.append(bytes((_FIELD_TICKS, size)))
        else:
            parts.append(b"\x0a" + encode_varint(size))
        parts.append(encoded)
    return b"".join(parts)


def ticks_of(value: bytes) -> list[bytes]:
    """The encoded ticks a record value holds, in order (see the module docstring)."""
    end = len(value)
    if end < 2 or value[0] != _FIELD_TICKS:
        raise TickRecordError("a tick record starts with field 1 (0x0a)")
    # The first field's payload begins after its length varint.
    pos = 1
    while pos < end and value[pos] & 0x80:
        pos += 1
    if pos + 1 >= end or value[pos + 1] != _FIELD_TICKS:
        return [value]  # a bare Tick: its field 1 is the symbol's text
    out: list[bytes] = []
    pos = 0
    while pos < end:
        if value[pos] != _FIELD_TICKS:
            raise TickRecordError(f"byte {pos}: expected a TickBatch.ticks field (0x0a)")
        pos += 1
        length = 0
        shift = 0
        while True:
            if pos >= end:
                raise TickRecordError("a tick's length runs past the record's end")
            byte = value[pos]
            pos += 1
            length |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
            if shift > 28:
                raise TickRecordError("a tick's length is not a valid varint")
        if pos + length > end:
            raise TickRecordError("a tick runs past the record's end")
        out.append(value[pos : pos + length])
        pos += length
    return out
