"""The snapshot cache: the latest encoded tick per symbol, for snapshot-on-subscribe.

``TickFanout`` (``fanout.tick_fanout``) offers it every tick it consumes: a tick not newer
than the cached one is stale (a redelivery) and is not fanned out; a symbol whose sequence
started again upstream is reset. A subscribe takes its snapshot from here after the last
flush of the groups, so the member's frames continue from it and per-symbol sequence
numbers never go back (docs/architecture.md, "Principles": 4. sequence numbers end to end).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from fanout.frames import SharedFrame

__all__ = ["SnapshotCache", "SnapshotEntry"]


@dataclass(frozen=True, slots=True)
class SnapshotEntry:
    seq: int
    encoded: bytes


@dataclass(slots=True)
class SnapshotCache:
    """The latest encoded tick per symbol, for snapshot-on-subscribe."""

    _latest: dict[str, SnapshotEntry] = field(default_factory=dict)

    def update(self, symbol: str, seq: int, encoded: bytes) -> bool:
        """Keep the tick if it is newer than the cached one; True if it was kept."""
        current = self._latest.get(symbol)
        if current is not None and seq <= current.seq:
            return False
        self._latest[symbol] = SnapshotEntry(seq, encoded)
        return True

    def reset(self, symbol: str) -> None:
        """Forget ``symbol`` (upstream resync: its sequence starts again)."""
        self._latest.pop(symbol, None)

    def get(self, symbol: str) -> SnapshotEntry | None:
        return self._latest.get(symbol)

    def __len__(self) -> int:
        return len(self._latest)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._latest

    def snapshot_frame(self, symbols: Iterable[str]) -> SharedFrame:
        """A ``TickBatch(snapshot=True)`` of the known ``symbols``, as a lane frame."""
        ticks: list[tuple[str, int, bytes]] = []
        seen: set[str] = set()
        for symbol in symbols:
            entry = self._latest.get(symbol)
            if entry is not None and symbol not in seen:
                seen.add(symbol)
                ticks.append((symbol, entry.seq, entry.encoded))
        return SharedFrame.of_ticks(ticks, snapshot=True)
