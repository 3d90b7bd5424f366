"""The one seam through which mdfeed reads the time.

Components never call ``time.time_ns()`` or ``time.monotonic()`` for their logic
directly: they take a ``WallClockNs`` (nanoseconds since the Unix epoch: venue, ingest and
bar times) and a ``MonotonicS`` (seconds on a clock that never goes back: timeouts, rate
limits, stall detection), defaulting to the system's. A test hands them a ``ManualClock``
and moves time itself, so bar buckets, rate limits and stall cut-offs are deterministic.

Both are plain callables, not objects with methods, because they are read on the tick
path: a call of a builtin costs less than a method lookup and a call.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["ManualClock", "MonotonicS", "WallClockNs", "monotonic_s", "wall_ns"]

#: Nanoseconds since the Unix epoch.
WallClockNs = Callable[[], int]
#: Seconds on a clock that never goes back (its zero is arbitrary).
MonotonicS = Callable[[], float]

#: The system's wall clock, in nanoseconds.
wall_ns: WallClockNs = time.time_ns
#: The system's monotonic clock, in seconds.
monotonic_s: MonotonicS = time.monotonic


class ManualClock:
    """A clock that moves only when told: ``wall_ns`` and ``monotonic_s`` for tests."""

    def __init__(self, start_ns: int = 1_700_000_000 * 1_000_000_000) -> None:
        self._ns = start_ns
        self._monotonic_s = 0.0

    def wall_ns(self) -> int:
        return self._ns

    def monotonic_s(self) -> float:
        return self._monotonic_s

    def advance(self, seconds: float) -> None:
        """Move both clocks forward by ``seconds`` (not negative)."""
        if seconds < 0:
            raise ValueError(f"a clock does not go back: advance({seconds})")
        self._ns += round(seconds * 1e9)
        self._monotonic_s += seconds
