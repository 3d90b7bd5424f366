"""Reading ticks back off an in-process bus in tests."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from mdfeed.kernel.tick_records import ticks_of
from proto import mdfeed_pb2 as pb


async def ticks_by_symbol(consumer: Any) -> dict[str, list[pb.Tick]]:
    """Every tick `consumer` (a bus consumer) still has, decoded, per symbol in order."""
    ticks: dict[str, list[pb.Tick]] = defaultdict(list)
    while records := await consumer.getmany(timeout_ms=50, max_records=100_000):
        for record in records:
            for encoded in ticks_of(record.value):
                tick = pb.Tick.FromString(encoded)
                ticks[tick.symbol].append(tick)
    return ticks
