"""OHLCV aggregation throughput, per core, against the 1M ticks/s target and Python floors.

The same 500K ticks (50 symbols, 10% trades, venue times advancing ~1 ms a tick with
jitter inside the lateness) go through:
- ``floor_objects``: a plain loop that reads one field and sums it over the tick objects:
  the cheapest any Python consumer of these objects can be;
- ``bars_objects``: ``BarAggregator.apply`` for all 6 resolutions, mid fallback on, with a
  drain every 10K ticks (the service drains on its flush interval);
- ``floor_decode``: ``pb.Tick.FromString`` alone over the encoded ticks;
- ``bars_bytes``: ``FromString`` then ``apply``: what the service does per Kafka record.

The last test prints each rate, its ratio to the target and to its floor, and whether
``ohlcv.bars`` ran as pure Python or compiled with mypyc.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from ohlcv import RESOLUTIONS, BarAggregator, bars
from proto import mdfeed_pb2 as pb

TICKS = 500_000
SYMBOLS = 50
TARGET = 1_000_000
DRAIN_EVERY = 10_000
T0 = 1_781_532_000_000_000_000  # 2026-06-15 14:00 UTC


def _ticks() -> list[pb.Tick]:
    rng = random.Random(7)
    mids = [rng.randrange(10, 500) * 100_000_000 for _ in range(SYMBOLS)]
    clock = T0
    out = []
    for seq in range(TICKS):
        s = rng.randrange(SYMBOLS)
        clock += rng.randrange(0, 2_000_000)
        t = clock - rng.randrange(0, 500_000_000) if rng.random() < 0.05 else clock
        mids[s] += rng.choice((-1_000_000, 0, 1_000_000))
        tick = pb.Tick(
            symbol=f"SYM{s:02d}",
            seq=seq,
            venue_time_ns=t,
            ingest_time_ns=t + 50_000,
            bid_px_e8=mids[s] - 1_000_000,
            bid_size_e8=rng.randrange(1, 50) * 10_000_000_000,
            ask_px_e8=mids[s] + 1_000_000,
            ask_size_e8=rng.randrange(1, 50) * 10_000_000_000,
            last_px_e8=mids[s],
            last_size_e8=rng.randrange(1, 10) * 10_000_000_000,
        )
        tick.kind = pb.TICK_KIND_TRADE if rng.random() < 0.1 else pb.TICK_KIND_QUOTE
        out.append(tick)
    return out


TICK_OBJECTS = _ticks()
TICK_BYTES = [t.SerializeToString() for t in TICK_OBJECTS]
RESULTS: dict[str, float] = {}


def _aggregator() -> BarAggregator:
    return BarAggregator(
        [r.value for r in RESOLUTIONS],
        ZoneInfo("America/New_York"),
        mid_when_no_trades=True,
        allowed_lateness_ns=2_000_000_000,
    )


def _floor_objects() -> int:
    total = 0
    for tick in TICK_OBJECTS:
        total += tick.bid_px_e8
    return total


def _bars_objects() -> int:
    agg = _aggregator()
    apply = agg.apply
    drained = 0
    for i, tick in enumerate(TICK_OBJECTS):
        apply(tick)
        if i % DRAIN_EVERY == 0:
            drained += len(agg.drain_changed())
    return drained + len(agg.drain_changed())


def _floor_decode() -> int:
    decode = pb.Tick.FromString
    total = 0
    for raw in TICK_BYTES:
        total += decode(raw).bid_px_e8
    return total


def _bars_bytes() -> int:
    agg = _aggregator()
    apply = agg.apply
    decode = pb.Tick.FromString
    drained = 0
    for i, raw in enumerate(TICK_BYTES):
        apply(decode(raw))
        if i % DRAIN_EVERY == 0:
            drained += len(agg.drain_changed())
    return drained + len(agg.drain_changed())


def _measure(name: str, benchmark: BenchmarkFixture, fn: Callable[[], int]) -> None:
    best = float("inf")

    def timed() -> int:
        nonlocal best
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
        return out

    result = benchmark.pedantic(timed, rounds=3, iterations=1)
    assert result > 0
    RESULTS[name] = TICKS / best


@pytest.mark.parametrize(
    ("name", "fn"),
    [
        ("floor_objects", _floor_objects),
        ("bars_objects", _bars_objects),
        ("floor_decode", _floor_decode),
        ("bars_bytes", _bars_bytes),
    ],
)
def test_ohlcv(name: str, fn: Callable[[], int], benchmark: BenchmarkFixture) -> None:
    _measure(name, benchmark, fn)


def test_report() -> None:
    floors = {"bars_objects": "floor_objects", "bars_bytes": "floor_decode"}
    build = "mypyc" if Path(bars.__file__ or "").suffix == ".so" else "pure Python"
    print(
        f"\nOHLCV aggregation ({build}), {TICKS:,} ticks, {SYMBOLS} symbols, 6 resolutions, 1 core"
    )
    print(f"{'run':15s} {'ticks/s':>12s} {'x target':>9s} {'x floor':>8s}")
    for name, rate in RESULTS.items():
        floor = RESULTS.get(floors.get(name, name), rate)
        print(f"{name:15s} {rate:12,.0f} {rate / TARGET:9.2f} {rate / floor:8.2f}")
