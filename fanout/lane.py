"""The tick lane: one bounded, conflating queue of encoded ticks per client.

Policy (Principle 3: a slow reader loses granularity, never the connection, and never
slows anyone else):

* ``TickLane.offer`` never blocks and never awaits. The fanout calls it for every client
  subscribed to a tick's symbol, from the event loop's thread.
* While the client keeps up, ticks queue in arrival order and batches carry them all.
* When an offer would take the pending count past ``max_pending_ticks``, the lane switches
  to conflation: pending ticks collapse to the latest one per symbol, and each further
  tick replaces its symbol's pending one (latest value wins). Every replaced tick is
  counted and remembered as a per-symbol skipped range ``[from_seq, to_seq]``. The batch
  that delivers a conflated symbol is flagged ``conflated`` and carries those ranges, so
  the server can send an explicit ``GapNotice`` (reason ``GAP_REASON_CONFLATED``) for each
  (Principle 4). Once the conflated ticks are drained the lane queues in order again.
* While conflating, memory is bounded by ``max_pending_symbols``: a client whose pending
  ticks span more symbols than that cannot be conflated within bounds, and the lane
  asks to be disconnected (``disconnect_reason``).
* A client that takes no batch for ``max_stall_s`` while ticks are pending is stuck, not
  slow (a slow one still drains conflated batches); ``disconnect_reason`` then says so and
  the transport closes the stream with that reason (gRPC: RESOURCE_EXHAUSTED).
* Per-symbol sequence numbers never go back: a tick whose seq is not above the last one
  offered for its symbol (or the floor set by ``start_after`` after a snapshot) is
  dropped and counted as stale.

Frames are built once per batch from the encoded bytes (``fanout.frames``).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from fanout.frames import gap_frame, tick_batch_frame
from proto import mdfeed_pb2 as pb

__all__ = [
    "Batch",
    "Gap",
    "LaneClosedError",
    "LaneStats",
    "SnapshotCache",
    "SnapshotEntry",
    "TickLane",
]


class LaneClosedError(Exception):
    """``next_batch`` on a lane that was closed; the message is the close reason."""


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


@dataclass(frozen=True, slots=True)
class Batch:
    """One ``ServerFrame`` of ticks for one client, plus the gaps it papers over."""

    frame: bytes
    count: int
    conflated: bool
    gaps: tuple[Gap, ...] = ()


@dataclass(slots=True)
class LaneStats:
    offered: int = 0
    delivered: int = 0
    conflated: int = 0  # ticks replaced by a later tick of the same symbol
    stale: int = 0  # ticks dropped because their seq did not advance
    batches: int = 0


@dataclass(slots=True)
class _Pending:
    seq: int
    encoded: bytes
    skip_from: int = 0  # 0: nothing skipped (sequences start at 1)
    skip_to: int = 0


class TickLane:
    """A single client's tick queue. See the module docstring for the policy."""

    def __init__(
        self,
        *,
        max_pending_ticks: int = 10_000,
        max_pending_symbols: int = 5_000,
        max_stall_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_pending_ticks < 1 or max_pending_symbols < 1 or max_stall_s <= 0:
            raise ValueError("lane bounds must be positive")
        self.max_pending_ticks = max_pending_ticks
        self.max_pending_symbols = max_pending_symbols
        self.max_stall_s = max_stall_s
        self._clock = clock
        self.stats = LaneStats()
        self._queue: deque[tuple[str, int, bytes]] = deque()
        self._conflating: dict[str, _Pending] = {}
        self._last_seq: dict[str, int] = {}
        self._ready = asyncio.Event()
        self._waiting_since: float | None = None  # pending data, no batch taken since
        self._overflow = False
        self._closed: str | None = None

    # -- producer side ------------------------------------------------------------

    @property
    def pending(self) -> int:
        return len(self._queue) + len(self._conflating)

    @property
    def conflating(self) -> bool:
        return bool(self._conflating)

    def start_after(self, symbol: str, seq: int) -> None:
        """The client holds ``symbol`` up to ``seq`` (a snapshot): drop anything not after it."""
        self._last_seq[symbol] = seq

    def forget(self, symbol: str) -> None:
        """Unsubscribe: drop ``symbol``'s pending ticks and its sequence floor."""
        self._last_seq.pop(symbol, None)
        self._conflating.pop(symbol, None)
        if any(item[0] == symbol for item in self._queue):
            self._queue = deque(item for item in self._queue if item[0] != symbol)
        if not self.pending:
            self._ready.clear()
            self._waiting_since = None

    def offer(self, symbol: str, seq: int, encoded: bytes) -> None:
        """Queue one encoded tick. Never blocks; O(1) apart from the one-off collapse."""
        stats = self.stats
        stats.offered += 1
        if self._closed is not None:
            return
        last = self._last_seq.get(symbol)
        if last is not None and seq <= last:
            stats.stale += 1
            return
        self._last_seq[symbol] = seq
        if not self.pending:
            self._waiting_since = self._clock()
            self._ready.set()
        if self._conflating:
            self._conflate(symbol, seq, encoded)
        elif len(self._queue) < self.max_pending_ticks:
            self._queue.append((symbol, seq, encoded))
        else:
            self._collapse()
            self._conflate(symbol, seq, encoded)

    def _collapse(self) -> None:
        """Turn the in-order queue into latest-per-symbol entries."""
        queue = self._queue
        self._queue = deque()
        for symbol, seq, encoded in queue:
            self._conflate(symbol, seq, encoded)

    def _conflate(self, symbol: str, seq: int, encoded: bytes) -> None:
        entry = self._conflating.get(symbol)
        if entry is None:
            if len(self._conflating) >= self.max_pending_symbols:
                self._overflow = True
            self._conflating[symbol] = _Pending(seq, encoded)
            return
        self.stats.conflated += 1
        if not entry.skip_from:
            entry.skip_from = entry.seq
        entry.skip_to = entry.seq
        entry.seq = seq
        entry.encoded = encoded

    # -- consumer side ------------------------------------------------------------

    def take_batch(self, max_ticks: int) -> Batch | None:
        """Up to ``max_ticks`` pending ticks as one frame, or None when nothing is pending."""
        if max_ticks < 1:
            raise ValueError("max_ticks must be positive")
        if not self.pending:
            return None
        ticks: list[bytes] = []
        gaps: list[Gap] = []
        if self._conflating:
            pending = self._conflating
            while pending and len(ticks) < max_ticks:
                symbol = next(iter(pending))
                entry = pending.pop(symbol)
                ticks.append(entry.encoded)
                if entry.skip_from:
                    gaps.append(Gap(symbol, entry.skip_from, entry.skip_to))
        else:
            queue = self._queue
            n = min(max_ticks, len(queue))
            popleft = queue.popleft
            for _ in range(n):
                ticks.append(popleft()[2])
        conflated = bool(gaps)
        batch = Batch(
            tick_batch_frame(ticks, conflated=conflated), len(ticks), conflated, tuple(gaps)
        )
        stats = self.stats
        stats.delivered += len(ticks)
        stats.batches += 1
        if self.pending:
            self._waiting_since = self._clock()
        else:
            self._ready.clear()
            self._waiting_since = None
            self._overflow = False
        return batch

    async def next_batch(self, max_ticks: int) -> Batch:
        """Wait for ticks, then take up to ``max_ticks`` of them as one frame.

        Raises ``LaneClosedError`` once the lane is closed.
        """
        while True:
            if self._closed is not None:
                raise LaneClosedError(self._closed)
            batch = self.take_batch(max_ticks)
            if batch is not None:
                return batch
            await self._ready.wait()

    # -- health -----------------------------------------------------------------

    def stalled_for_s(self) -> float:
        """Seconds the client has had ticks pending without taking a batch; 0 if none."""
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
                f"(limit {self.max_stall_s:g}s) with {self.pending} ticks pending"
            )
        return None

    def close(self, reason: str) -> None:
        """Stop the lane: pending ticks are dropped and ``next_batch`` raises."""
        if self._closed is None:
            self._closed = reason
        self._queue.clear()
        self._conflating.clear()
        self._waiting_since = None
        self._ready.set()

    @property
    def closed(self) -> bool:
        return self._closed is not None


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

    def snapshot(self, symbols: Iterable[str]) -> tuple[bytes, dict[str, int]]:
        """A ``TickBatch(snapshot=True)`` frame of the known ``symbols`` and their seqs.

        The caller passes the seqs to ``TickLane.start_after`` so updates continue from
        the snapshot without going back.
        """
        ticks: list[bytes] = []
        seqs: dict[str, int] = {}
        for symbol in symbols:
            entry = self._latest.get(symbol)
            if entry is not None and symbol not in seqs:
                ticks.append(entry.encoded)
                seqs[symbol] = entry.seq
        return tick_batch_frame(ticks, snapshot=True), seqs
