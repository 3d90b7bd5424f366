"""Ticks for the fanout benchmarks, built from bytes: a realistic quote per symbol and seq.

The fanout's core and transports are measured, not the making of their input, so a
benchmark's ticks are encoded by concatenation (:func:`encoded_tick`) rather than through
protobuf, and fed as bus records (:func:`tick_records`) as the bus consumer would.
"""

from __future__ import annotations

from collections.abc import Sequence

from mdfeed.kernel.bus import BusRecord
from mdfeed.kernel.tick_records import batch_record
from mdfeed.kernel.varint import encode_varint
from proto import mdfeed_pb2 as pb

__all__ = ["batch_records", "encoded_tick", "symbols", "tick_records"]


def symbols(count: int) -> list[str]:
    return [f"SYM{i:03d}" for i in range(count)]


def _tick_tail() -> bytes:
    # Every field after seq (field 2) of a realistic quote; the same for each tick.
    return pb.Tick(
        kind=pb.TICK_KIND_QUOTE,
        bid_px_e8=1_895_000_000,
        bid_size_e8=12_000_000_000_000,
        ask_px_e8=1_896_000_000,
        ask_size_e8=8_000_000_000_000,
        venue_time_ns=1_795_357_800_125_000_000,
        ingest_time_ns=1_795_357_800_125_300_000,
        fix_msg_seq_num=40_000_000_000,
    ).SerializeToString()


_TAIL = _tick_tail()


def encoded_tick(symbol: str, seq: int) -> bytes:
    """A quote's encoding, built from bytes: symbol (field 1), seq (field 2), the rest.

    Fields in number order, as protobuf serializes them, so this equals
    ``Tick(symbol=..., seq=..., ...).SerializeToString()`` and costs far less to make.
    """
    name = symbol.encode()
    return b"\x0a" + encode_varint(len(name)) + name + b"\x10" + encode_varint(seq) + _TAIL


def tick_records(names: Sequence[str], first_seq: int, count: int) -> list[BusRecord]:
    """``count`` records round-robin over ``names``, seqs from ``first_seq`` per symbol."""
    out = []
    per = len(names)
    for i in range(count):
        symbol = names[i % per]
        out.append(BusRecord("bench", 0, i, b"", encoded_tick(symbol, first_seq + i // per), 0))
    return out


def batch_records(records: Sequence[BusRecord]) -> list[BusRecord]:
    """``records`` of one tick each regrouped as the ingest writes them: one record per
    symbol, its ticks in their order (``mdfeed.kernel.tick_records``)."""
    by_symbol: dict[bytes, list[bytes]] = {}
    for record in records:
        encoded = record.value
        # encoded_tick's layout: 0x0a, a one-byte length (names are short), the name.
        by_symbol.setdefault(encoded[2 : 2 + encoded[1]], []).append(encoded)
    return [
        BusRecord("bench", 0, i, key, batch_record(ticks), 0)
        for i, (key, ticks) in enumerate(by_symbol.items())
    ]
