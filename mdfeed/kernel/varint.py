"""The protobuf base-128 varint, for the places that write wire bytes by hand (the tick
topic's record layout, the fanout's shared frames, chat frames)."""

from __future__ import annotations

__all__ = ["encode_varint"]

# Lengths below 128 are one byte; precompute them, they are nearly every tick.
_SMALL_VARINTS = tuple(bytes((n,)) for n in range(128))


def encode_varint(value: int) -> bytes:
    """The protobuf base-128 varint of a non-negative integer."""
    if value < 0:
        raise ValueError(f"varint of a negative number: {value}")
    if value < 128:
        return _SMALL_VARINTS[value]
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
