"""Tick lanes: one bounded, conflating queue of shared frames per client.

The subscription groups (``fanout.groups``) push ``SharedFrame``s (``fanout.frames``) to
their members through ``LaneMember.push_frame``; a member (``fanout.client.FanoutClient``)
queues them on its ``TickLane``, and its transport takes them from there.

Policy of a client's ``TickLane`` (docs/architecture.md, "Principles": 3. two delivery
lanes: a slow reader loses granularity, never the connection, and never slows anyone else):

* ``push`` never blocks and never awaits. While the client keeps up, frames queue in order
  and it gets every tick.
* When a push would take the ticks pending past ``max_pending_ticks``, the lane conflates:
  the queued frames are replaced by one frame flagged ``conflated`` holding the latest tick
  of each symbol they carried, preceded by a ``GapNotice`` (reason CONFLATED) for each
  symbol whose earlier ticks ``[from_seq, to_seq]`` were skipped (docs/architecture.md,
  "Principles": 4. sequence numbers end to end). Resync notices and subscribe snapshots in
  the queue are kept whole, in order, and ticks before a resync never merge with ticks
  after it.
* A client whose conflated frame would still hold more than ``max_pending_symbols``
  symbols cannot be conflated within bounds: ``disconnect_reason`` says so.
* A client that takes nothing for ``max_stall_s`` while frames wait is stuck, not slow (a
  slow one still drains conflated frames); ``disconnect_reason`` then says so and the
  transport closes the stream with that reason (gRPC: RESOURCE_EXHAUSTED).
* Per-symbol sequence numbers never go back: a snapshot is taken from the cache after the
  last flush and the member's frames start after it, so seqs continue from the snapshot.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from fanout.frames import SharedFrame, gap_frame, tick_batch_frame
from mdfeed.kernel.clock import MonotonicS, monotonic_s
from proto import mdfeed_pb2 as pb

__all__ = ["Gap", "LaneMember", "LaneStats", "TickLane"]


@dataclass(frozen=True, slots=True)
class Gap:
    """Ticks of ``symbol`` with seq in ``[from_seq, to_seq]`` were conflated away."""

    symbol: str
    from_seq: int
    to_seq: int

    def frame(self) -> bytes:
        """The ``ServerFrame`` bytes of the matching ``GapNotice``."""
        return gap_frame(
            symbol=self.symbol,
            from_seq=self.from_seq,
            to_seq=self.to_seq,
            reason=pb.GAP_REASON_CONFLATED,
        )


@dataclass(slots=True)
class LaneStats:
    offered: int = 0  # ticks pushed
    delivered: int = 0  # ticks taken
    conflated: int = 0  # ticks replaced by a later tick of the same symbol
    conflations: int = 0
    gaps: int = 0  # gap notices queued for skipped ticks
    frames: int = 0  # frames taken
    messages: int = 0  # transport messages (consecutive plain frames joined)

    def add(self, other: LaneStats) -> None:
        """Add ``other``'s counts to these (totals over lanes, live and gone)."""
        self.offered += other.offered
        self.delivered += other.delivered
        self.conflated += other.conflated
        self.conflations += other.conflations
        self.gaps += other.gaps
        self.frames += other.frames
        self.messages += other.messages


class TickLane:
    """A single client's queue of shared frames. See the module docstring for the policy."""

    def __init__(
        self,
        *,
        max_pending_ticks: int = 10_000,
        max_pending_symbols: int = 5_000,
        max_stall_s: float = 30.0,
        clock: MonotonicS = monotonic_s,
    ) -> None:
        if max_pending_ticks < 1 or max_pending_symbols < 1 or max_stall_s <= 0:
            raise ValueError("lane bounds must be positive")
        self.max_pending_ticks = max_pending_ticks
        self.max_pending_symbols = max_pending_symbols
        self.max_stall_s = max_stall_s
        self._clock = clock
        self.stats = LaneStats()
        self._queue: deque[SharedFrame] = deque()
        self._pending = 0
        self._waiting_since: float | None = None  # frames pending, none taken since
        self._overflow = False
        self._closed: str | None = None

    @property
    def pending(self) -> int:
        """Ticks waiting (notices not counted)."""
        return self._pending

    @property
    def queued_frames(self) -> int:
        return len(self._queue)

    def push(self, frame: SharedFrame) -> None:
        """Queue one shared frame. Never blocks; conflates past ``max_pending_ticks``."""
        if self._closed is not None:
            return
        self.stats.offered += frame.count
        if not self._queue:
            self._waiting_since = self._clock()
        if frame.count and self._pending + frame.count > self.max_pending_ticks:
            self._queue.append(frame)
            self._pending += frame.count
            self._conflate()
            return
        self._queue.append(frame)
        self._pending += frame.count

    def _conflate(self) -> None:
        """Replace the queue by its notices, gap notices and the latest tick per symbol."""
        first, latest, kept, total = _scan(self._queue)
        self._queue.clear()
        self._queue.extend(kept)
        stats = self.stats
        stats.conflations += 1
        stats.conflated += max(0, total - len(latest))
        gaps: list[Gap] = []
        for symbol, (seq, _) in latest.items():
            start = first.get(symbol, seq)
            if start < seq:
                gaps.append(Gap(symbol, start, seq - 1))
        stats.gaps += len(gaps)
        for gap in gaps:
            self._queue.append(
                SharedFrame(gap.frame(), gap=(gap.symbol, gap.from_seq), conflated=True)
            )
        if len(latest) > self.max_pending_symbols:
            self._overflow = True
        frame = tick_batch_frame((data for _, data in latest.values()), conflated=True)
        ticks = [(symbol, seq, data) for symbol, (seq, data) in latest.items()]
        self._queue.append(SharedFrame(frame, len(ticks), ticks))
        self._pending = len(latest) + sum(entry.count for entry in kept)

    def take(self, max_bytes: int = 0) -> bytes | None:
        """The next frame's bytes, or None when nothing is queued.

        With ``max_bytes``, consecutive plain tick frames are joined into one message of
        at most that size (a lone frame may be bigger): a client that fell behind gets fewer,
        larger messages, which is what a transport with a per-message cost needs.
        """
        queue = self._queue
        if not queue:
            return None
        entry = queue.popleft()
        count = entry.count
        frames = 1
        data = entry.frame
        if entry.plain and max_bytes and queue and queue[0].plain:
            parts = [data]
            size = len(data)
            while queue and queue[0].plain and size + len(queue[0].frame) <= max_bytes:
                more = queue.popleft()
                parts.append(more.frame)
                size += len(more.frame)
                count += more.count
                frames += 1
            data = b"".join(parts)
        self._pending -= count
        stats = self.stats
        stats.delivered += count
        stats.frames += frames
        stats.messages += 1
        if queue:
            self._waiting_since = self._clock()
        else:
            self._waiting_since = None
            self._overflow = False
        return data

    # -- health -----------------------------------------------------------------

    def stalled_for_s(self) -> float:
        """Seconds the client has had frames waiting without taking one; 0 if none."""
        if self._waiting_since is None:
            return 0.0
        return max(0.0, self._clock() - self._waiting_since)

    def disconnect_reason(self) -> str | None:
        """Why this client should be disconnected, or None while it is within limits."""
        if self._closed is not None:
            return self._closed
        if self._overflow:
            return (
                f"tick lane overflow: more than {self.max_pending_symbols} symbols pending "
                "while conflating"
            )
        stalled = self.stalled_for_s()
        if stalled > self.max_stall_s:
            return (
                f"client stalled: no tick batch taken for {stalled:.1f}s "
                f"(limit {self.max_stall_s:g}s) with {self._pending} ticks pending"
            )
        return None

    def close(self, reason: str) -> None:
        """Stop the lane: queued frames are dropped and nothing more is queued."""
        if self._closed is None:
            self._closed = reason
        self._queue.clear()
        self._pending = 0
        self._waiting_since = None

    @property
    def closed(self) -> bool:
        return self._closed is not None


def _scan(
    queue: Iterable[SharedFrame],
) -> tuple[dict[str, int], dict[str, tuple[int, bytes]], list[SharedFrame], int]:
    """First skipped seq and latest tick per symbol, the notices to keep, the tick count."""
    first: dict[str, int] = {}
    latest: dict[str, tuple[int, bytes]] = {}
    kept: list[SharedFrame] = []
    total = 0
    for entry in queue:
        if entry.snapshot:
            kept.append(entry)  # older than what follows; delivered whole, in order
        elif entry.resync is not None:
            # Ticks before a resync belong to the old sequence: they are void.
            symbol = entry.resync
            if symbol in latest:
                total -= 1
            first.pop(symbol, None)
            latest.pop(symbol, None)
            kept.append(entry)
        elif entry.count:
            total += entry.count
            for symbol, seq, data in entry.ticks:
                if symbol not in first:
                    first[symbol] = seq
                latest[symbol] = (seq, data)
        elif entry.gap is not None:
            # A gap notice of an earlier conflation: its range is skipped too.
            symbol, seq = entry.gap
            if symbol not in first:
                first[symbol] = seq
        else:
            kept.append(entry)  # any other notice (a resume gap): delivered, in order
    return first, latest, kept, total


class LaneMember(Protocol):
    """What a group pushes to: a client with a ``TickLane`` (``fanout.client``)."""

    def push_frame(self, frame: SharedFrame) -> None:
        """Queue ``frame`` on the client's lane and wake its writer. Never blocks."""
