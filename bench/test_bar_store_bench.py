"""Bar store: upsert throughput and history read latency, Cassandra and SQLite.

Not part of `make test`; run with `make bench`. The Cassandra figures need the local
stack's Cassandra (`mdfeed stack up cassandra`); without it they are skipped and say so.
Everything runs in a keyspace (or a file) of its own, dropped afterwards. Reported beside
peers and limits measured in the same run:

- writes: WRITES 1s bars (50 symbols x 1000 seconds, interleaved as the aggregator flushes
  them) upserted in calls of BATCH, bars/s, for CassandraBarStore, for the driver floor
  (the raw cassandra-driver ``execute_async`` of the same prepared INSERT into the same
  table, every bar of a batch sent at once, a callback counting the answers, the next
  batch once all came back) and for SqliteBarStore; best of ROUNDS rounds (store and
  floor alternating);
- reads: ``history`` with countback 1000 and 5000 over a 1s series crossing midnight UTC
  (two Cassandra partitions for 5000), READS reads each, p50 and p99 against the 20 ms
  p99 target of the datafeed's /history.

Results go to `.benchmarks/bar_store.json` and the terminal.
"""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from mdfeed.kernel.config import MdfeedConfig, load_config
from proto import mdfeed_pb2 as pb
from storage import BarStore, CassandraBarStore, SqliteBarStore
from storage._bars_cassandra import bucket_of
from storage.bar_contract import DAY, T0, S, make_bar
from storage.cassandra import CassandraSession

WRITES = 50_000
BATCH = 500
ROUNDS = 2
READS = 50
TARGET_P99_MS = 20.0
SYMBOLS = [f"SYM{i:02d}" for i in range(50)]


def _write_batches() -> list[list[pb.Bar]]:
    bars = [
        make_bar(symbol, pb.RESOLUTION_1S, T0 - DAY + second * S, second)
        for second in range(WRITES // len(SYMBOLS))
        for symbol in SYMBOLS
    ]
    return [bars[i : i + BATCH] for i in range(0, len(bars), BATCH)]


#: 6000 1s bars, the last 3000 after midnight UTC.
READ_SERIES = [make_bar("READ", pb.RESOLUTION_1S, T0 - 3000 * S + i * S, i) for i in range(6000)]


def _cassandra_up(config: MdfeedConfig) -> bool:
    try:
        socket.create_connection(
            (config.store.cassandra_contact_points[0], config.store.cassandra_port), timeout=1
        ).close()
    except OSError:
        return False
    return True


async def _store_rate(store: BarStore, batches: list[list[pb.Bar]]) -> float:
    started = time.perf_counter()
    for batch in batches:
        await store.upsert(batch)
    return sum(map(len, batches)) / (time.perf_counter() - started)


class _Counter:
    """Counts a batch's answers on the driver's threads; ``done`` once all came back."""

    def __init__(self, expected: int) -> None:
        self._left = expected
        self._lock = threading.Lock()
        self.done = threading.Event()
        self.errors: list[BaseException] = []

    def answered(self, _rows: object) -> None:
        with self._lock:
            self._left -= 1
            if self._left == 0:
                self.done.set()

    def failed(self, exc: BaseException) -> None:
        self.errors.append(exc)
        self.answered(None)


def _driver_floor_rate(db: CassandraSession, insert: Any, batches: list[list[pb.Bar]]) -> float:
    """Raw execute_async, one callback counter per batch; runs in a worker thread."""
    session = db.session
    started = time.perf_counter()
    for batch in batches:
        counter = _Counter(len(batch))
        for bar in batch:
            values = (
                bar.symbol,
                bar.resolution,
                bucket_of(bar.resolution, bar.open_time_ns),
                bar.open_time_ns,
                bar.open_px_e8,
                bar.high_px_e8,
                bar.low_px_e8,
                bar.close_px_e8,
                bar.volume_e8,
                bar.trade_count,
                bar.final,
            )
            session.execute_async(insert, values).add_callbacks(counter.answered, counter.failed)
        counter.done.wait()
        if counter.errors:
            raise counter.errors[0]
    return sum(map(len, batches)) / (time.perf_counter() - started)


async def _read_latencies_ms(store: BarStore, countback: int) -> tuple[float, float]:
    to = READ_SERIES[-1].open_time_ns + 1
    got = await store.history("READ", pb.RESOLUTION_1S, 0, to, countback)
    assert got == READ_SERIES[-countback:]
    samples = []
    for _ in range(READS):
        started = time.perf_counter()
        await store.history("READ", pb.RESOLUTION_1S, 0, to, countback)
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p99 = samples[min(len(samples) - 1, round(0.99 * (len(samples) - 1)))]
    return statistics.median(samples), p99


async def _measure(tmp_path: Path) -> dict[str, Any]:
    batches = _write_batches()
    results: dict[str, Any] = {"writes": WRITES, "batch": BATCH, "reads": READS}

    async with SqliteBarStore(tmp_path / "bars.sqlite3") as sqlite:
        results["sqlite_bars_per_s"] = max(
            [await _store_rate(sqlite, batches) for _ in range(ROUNDS)]
        )
        await sqlite.upsert(READ_SERIES)
        for countback in (1000, 5000):
            results[f"sqlite_read_{countback}_ms"] = await _read_latencies_ms(sqlite, countback)

    config = load_config("local-stack")
    if not _cassandra_up(config):
        results["cassandra"] = "skipped: Cassandra not reachable ('mdfeed stack up cassandra')"
        return results
    keyspace = f"bench_bars_{uuid.uuid4().hex[:10]}"
    store_config = config.store
    store = CassandraBarStore(
        store_config.cassandra_contact_points,
        store_config.cassandra_port,
        keyspace,
        store_config.replication_factor,
    )
    db = await CassandraSession.connect(
        store_config.cassandra_contact_points, store_config.cassandra_port
    )
    try:
        async with store:
            insert = await db.prepare(
                f"INSERT INTO {keyspace}.bars_1s (symbol, resolution, bucket, open_time_ns, "
                "open_px_e8, high_px_e8, low_px_e8, close_px_e8, volume_e8, trade_count, final) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            )
            store_rates, floor_rates = [], []
            for _ in range(ROUNDS):
                store_rates.append(await _store_rate(store, batches))
                floor_rates.append(await asyncio.to_thread(_driver_floor_rate, db, insert, batches))
            results["cassandra_store_bars_per_s"] = max(store_rates)
            results["cassandra_driver_floor_bars_per_s"] = max(floor_rates)
            await store.upsert(READ_SERIES)
            for countback in (1000, 5000):
                results[f"cassandra_read_{countback}_ms"] = await _read_latencies_ms(
                    store, countback
                )
    finally:
        await db.ensure_schema([f"DROP KEYSPACE IF EXISTS {keyspace}"])
        await db.close()
    return results


def _report(results: dict[str, Any]) -> str:
    lines = [f"bar store: {WRITES} 1s bars upserted in calls of {BATCH}, best of {ROUNDS}"]
    floor = results.get("cassandra_driver_floor_bars_per_s")
    if floor:
        rate = results["cassandra_store_bars_per_s"]
        lines.append(f"  {'cassandra driver floor':<28}{floor:>10,.0f} bars/s   1.00x")
        lines.append(
            f"  {'CassandraBarStore.upsert':<28}{rate:>10,.0f} bars/s   {rate / floor:.2f}x"
        )
    else:
        lines.append(f"  cassandra: {results.get('cassandra')}")
    sqlite = results["sqlite_bars_per_s"]
    ratio = f"   {sqlite / floor:.2f}x" if floor else ""
    lines.append(f"  {'SqliteBarStore.upsert':<28}{sqlite:>10,.0f} bars/s{ratio}")
    lines.append(f"history latency, {READS} reads each (target p99 {TARGET_P99_MS:.0f} ms)")
    for backend in ("cassandra", "sqlite"):
        for countback in (1000, 5000):
            figures = results.get(f"{backend}_read_{countback}_ms")
            if figures is None:
                continue
            p50, p99 = figures
            lines.append(
                f"  {backend:<10} countback {countback:>5}  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms"
                f"  p99/target {p99 / TARGET_P99_MS:.2f}"
            )
    return "\n".join(lines)


def test_bar_store_write_rate_and_read_latency(tmp_path: Path) -> None:
    results = asyncio.run(asyncio.wait_for(_measure(tmp_path), timeout=240))
    out = Path(".benchmarks")
    out.mkdir(exist_ok=True)
    (out / "bar_store.json").write_text(json.dumps(results, indent=2))
    print()
    print(_report(results))
    if "cassandra" in results:
        pytest.skip(results["cassandra"])
