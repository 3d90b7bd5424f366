"""The kernel's clock seam: the system clocks by default, a manual clock in tests."""

from __future__ import annotations

import time

import pytest

from fanout.frames import SharedFrame
from fanout.lane import TickLane
from mdfeed.kernel import clock


def test_the_defaults_are_the_system_clocks() -> None:
    assert clock.wall_ns is time.time_ns
    assert clock.monotonic_s is time.monotonic


def test_a_manual_clock_moves_only_when_told() -> None:
    manual = clock.ManualClock(start_ns=5_000_000_000)
    assert (manual.wall_ns(), manual.monotonic_s()) == (5_000_000_000, 0.0)
    manual.advance(1.5)
    assert (manual.wall_ns(), manual.monotonic_s()) == (6_500_000_000, 1.5)
    with pytest.raises(ValueError, match="does not go back"):
        manual.advance(-1)


def test_a_lane_on_a_manual_clock_is_cut_off_exactly_at_its_stall_limit() -> None:
    manual = clock.ManualClock()
    lane = TickLane(max_stall_s=2.0, clock=manual.monotonic_s)
    lane.push(SharedFrame.of_ticks([("AAPL", 1, b"\x0a\x04AAPL")]))
    manual.advance(2.0)
    assert lane.disconnect_reason() is None
    manual.advance(0.001)
    reason = lane.disconnect_reason()
    assert reason is not None
    assert reason.startswith("client stalled")
