"""Server frames built from already-encoded ticks, and the shared frame lanes queue.

Serialize once (docs/architecture.md, "Principles": 5. serialize once). A tick is encoded
once (``Tick.SerializeToString()``) where it enters the fanout. Every client's
``ServerFrame`` carrying a ``TickBatch`` is then assembled from those bytes:
``TickBatch.ticks`` is field 1 and ``ServerFrame.ticks`` is field 1, so a frame is
tag + length + (for each tick: tag + length + encoded tick) + the two flags. A protobuf
parser reads that exactly as it reads ``ServerFrame(ticks=TickBatch(...))`` serialized
normally; the bytes are also identical, which the tests check.

The rarer frames (gap notices, errors) go through ordinary protobuf serialization.

A ``SharedFrame`` is one encoded frame with what a lane needs to know of it (its ticks, for
conflation; whether it is a notice or a snapshot). A subscription group (``fanout.groups``)
builds it once and pushes the same object to every member's lane (``fanout.lane``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mdfeed.kernel.varint import encode_varint
from proto import mdfeed_pb2 as pb

__all__ = ["SharedFrame", "error_frame", "gap_frame", "tick_batch_frame"]

# Wire type 2 (length-delimited) for field 1: (1 << 3) | 2.
_TAG_FIELD1_LEN = b"\x0a"
# TickBatch.conflated (field 2) and .snapshot (field 3), varint, value true.
_CONFLATED_TRUE = b"\x10\x01"
_SNAPSHOT_TRUE = b"\x18\x01"

def tick_batch_frame(
    encoded_ticks: Iterable[bytes], *, conflated: bool = False, snapshot: bool = False
) -> bytes:
    """The bytes of ``ServerFrame(ticks=TickBatch(ticks=..., conflated=..., snapshot=...))``.

    ``encoded_ticks`` are ``Tick.SerializeToString()`` outputs; they are copied into the
    frame as they are, never decoded or re-encoded.
    """
    parts: list[bytes] = []
    append = parts.append
    varint = encode_varint
    for tick in encoded_ticks:
        append(_TAG_FIELD1_LEN)
        append(varint(len(tick)))
        append(tick)
    if conflated:
        append(_CONFLATED_TRUE)
    if snapshot:
        append(_SNAPSHOT_TRUE)
    body = b"".join(parts)
    return b"".join((_TAG_FIELD1_LEN, varint(len(body)), body))


def gap_frame(
    *,
    from_seq: int,
    to_seq: int,
    reason: pb.GapReason.ValueType,
    symbol: str | None = None,
    room: str | None = None,
) -> bytes:
    """A ``ServerFrame`` holding a ``GapNotice`` for exactly one of a symbol or a room."""
    if (symbol is None) == (room is None):
        raise ValueError("a gap notice names exactly one of symbol or room")
    notice = pb.GapNotice(from_seq=from_seq, to_seq=to_seq, reason=reason)
    if symbol is not None:
        notice.symbol = symbol
    else:
        assert room is not None
        notice.room = room
    return pb.ServerFrame(gap=notice).SerializeToString()


def error_frame(code: int, message: str, ref: str = "") -> bytes:
    """A ``ServerFrame`` holding an ``Error`` (``code`` in google.rpc.Code numbering)."""
    return pb.ServerFrame(error=pb.Error(code=code, message=message, ref=ref)).SerializeToString()


@dataclass(frozen=True, slots=True)
class SharedFrame:
    """One encoded ``ServerFrame``, shared by every lane it is pushed to.

    Tick frames keep their ticks, ``(symbol, seq, encoded)`` in order: conflation reads
    them (``first``, ``latest``), and only when a lane conflates, so framing does no
    per-symbol bookkeeping. A notice (``resync`` or a conflation ``gap``) has no ticks;
    ``resync`` names a symbol whose sequence started again.
    """

    frame: bytes
    count: int = 0
    ticks: Sequence[tuple[str, int, bytes]] = ()
    #: A conflation gap notice: the symbol and the first seq it skips.
    gap: tuple[str, int] | None = None
    resync: str | None = None
    conflated: bool = False
    #: A plain tick batch (no snapshot or conflated flag, not a notice): consecutive plain
    #: frames may be joined into one message, since a protobuf parser merges the repeated
    #: ``ticks`` of concatenated ``ServerFrame``s.
    plain: bool = False
    #: The snapshot sent on subscribe: conflation keeps it whole (it confirms the subscribe).
    snapshot: bool = False

    @property
    def first(self) -> dict[str, int]:
        """Per symbol, the first seq the frame carries (or, for a gap notice, skips)."""
        first: dict[str, int] = {}
        if self.gap is not None:
            first[self.gap[0]] = self.gap[1]
        for symbol, seq, _ in self.ticks:
            first.setdefault(symbol, seq)
        return first

    @property
    def latest(self) -> dict[str, tuple[int, bytes]]:
        """Per symbol, the last (seq, encoded tick) the frame carries."""
        return {symbol: (seq, data) for symbol, seq, data in self.ticks}

    @classmethod
    def of_ticks(
        cls, ticks: Iterable[tuple[str, int, bytes]], *, snapshot: bool = False
    ) -> SharedFrame:
        kept = ticks if isinstance(ticks, list | tuple) else list(ticks)
        frame = tick_batch_frame((data for _, _, data in kept), snapshot=snapshot)
        return cls(frame, len(kept), kept, plain=not snapshot, snapshot=snapshot)

    @classmethod
    def notice(cls, frame: bytes, *, resync: str | None = None) -> SharedFrame:
        return cls(frame, resync=resync)
