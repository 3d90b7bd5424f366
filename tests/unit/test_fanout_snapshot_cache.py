"""fanout.snapshot_cache: the latest tick per symbol, and the snapshot frame built from it."""

from __future__ import annotations

from fanout.frames import tick_batch_frame
from fanout.snapshot_cache import SnapshotCache
from proto import mdfeed_pb2 as pb


def enc(symbol: str, seq: int, epoch: int = 0) -> bytes:
    # ask_px_e8 marks the upstream sequence a tick belongs to (it changes on a resync).
    return pb.Tick(
        symbol=symbol, seq=seq, kind=pb.TICK_KIND_QUOTE, bid_px_e8=seq, ask_px_e8=epoch
    ).SerializeToString()


def snapshot_seqs(frame: bytes) -> list[tuple[str, int]]:
    decoded = pb.ServerFrame.FromString(frame)
    assert decoded.WhichOneof("body") == "ticks"
    assert decoded.ticks.snapshot
    assert not decoded.ticks.conflated
    return [(t.symbol, t.seq) for t in decoded.ticks.ticks]


def test_snapshot_cache_keeps_the_latest_and_ignores_older_seqs() -> None:
    cache = SnapshotCache()
    assert cache.update("A", 1, enc("A", 1))
    assert cache.update("A", 3, enc("A", 3))
    assert not cache.update("A", 2, enc("A", 2))  # late tick: the newer one stays
    assert not cache.update("A", 3, b"redelivered")  # same seq: the first one stays
    assert cache.update("B", 9, enc("B", 9))
    assert len(cache) == 2
    assert "A" in cache
    assert "Z" not in cache
    entry = cache.get("A")
    assert entry is not None
    assert (entry.seq, entry.encoded) == (3, enc("A", 3))
    assert cache.get("Z") is None

    cache.reset("A")
    assert "A" not in cache
    assert len(cache) == 1
    assert cache.update("A", 1, enc("A", 1, epoch=1))  # upstream resync: seqs start again
    entry = cache.get("A")
    assert entry is not None
    assert (entry.seq, entry.encoded) == (1, enc("A", 1, epoch=1))
    cache.reset("Z")  # unknown: nothing to forget, no error


def test_snapshot_frame_holds_each_known_symbol_once() -> None:
    cache = SnapshotCache()
    cache.update("A", 3, enc("A", 3))
    cache.update("B", 9, enc("B", 9))
    frame = cache.snapshot_frame(["B", "A", "Z", "A"])
    assert snapshot_seqs(frame.frame) == [("B", 9), ("A", 3)]
    assert frame.frame == tick_batch_frame([enc("B", 9), enc("A", 3)], snapshot=True)
    assert frame.count == 2
    assert frame.first == {"B": 9, "A": 3}
    assert frame.latest == {"B": (9, enc("B", 9)), "A": (3, enc("A", 3))}

    empty = cache.snapshot_frame(["Z"])
    assert empty.count == 0
    assert snapshot_seqs(empty.frame) == []
