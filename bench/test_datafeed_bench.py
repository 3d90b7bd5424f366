"""Datafeed ``/history`` latency at the HTTP endpoint, SQLite and Cassandra behind it.

Not part of `make test`; run with `make bench` (Cassandra from the local stack: `mdfeed stack
up cassandra`; without it the Cassandra half is skipped and says so).

The box has two cores, so the measured :class:`~ohlcv.datafeed.Datafeed` runs in a process
of its own (this file run as a script, on uvloop as ``mdfeed`` runs, driven as
bench.harness.children describes), and the client (an aiohttp ``ClientSession``, one
keep-alive connection, requests one after the other) does not share its GIL. The server
runs the installed, compiled build (``ohlcv.bars``, ``fix_spec.codec``) and says so, or
the benchmark fails. Each backend is preloaded with SERIES 1m and SERIES 1s bars of one
symbol (the 1m series crosses a 30-day Cassandra bucket, the 1s series midnight UTC, so
5000 bars are two partitions), in a file or keyspace of its own, dropped afterwards.

Cases, REQUESTS requests each: countback 1000, countback 5000, and a from/to range of 5000
bars, at 1S and 1 (minute) resolution. Reported per case: p50 and p99 of ``GET /history``
against the 20 ms p99 target, and beside it the peer measured in the same run: the store's
``history`` call alone, timed in the server process on the same loop, so the difference is
what HTTP, aiohttp and JSON add.

Results go to `.benchmarks/datafeed.json` and the terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import socket
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bench.harness.children import (
    Child,
    Json,
    announce,
    check_compiled,
    compiled_modules,
    serve_commands,
)
from mdfeed.kernel.config import DatafeedConfig, MdfeedConfig, load_config
from proto import mdfeed_pb2 as pb
from storage import BarStore, CassandraBarStore, SqliteBarStore
from storage.bar_contract import DAY, T0, M, S, make_bar
from storage.cassandra import CassandraSession

SYMBOL = "BENCH"
SERIES = 6000
REQUESTS = 100
WARMUP = 5
TARGET_P99_MS = 20.0
#: A 30-day Cassandra bucket boundary (buckets count from the epoch).
_MONTH_EDGE = (T0 // (30 * DAY) + 1) * 30 * DAY
BARS_1M = [
    make_bar(SYMBOL, pb.RESOLUTION_1M, _MONTH_EDGE - 3000 * M + i * M, i) for i in range(SERIES)
]
BARS_1S = [make_bar(SYMBOL, pb.RESOLUTION_1S, T0 - 3000 * S + i * S, i) for i in range(SERIES)]
SERIES_BY_UDF = {"1S": BARS_1S, "1": BARS_1M}
CASES = [
    (udf, kind, count)
    for udf in ("1S", "1")
    for kind, count in (("countback", 1000), ("countback", 5000), ("range", 5000))
]


def _case_args(udf: str, kind: str, count: int) -> tuple[int, int, int]:
    """(from_s, to_s, countback) of a case; ``to`` just after the series' last bar."""
    series = SERIES_BY_UDF[udf]
    to_s = series[-1].open_time_ns // S + 1
    if kind == "countback":
        return 0, to_s, count
    return series[-count].open_time_ns // S, to_s, 0


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered), p99


# -- the server process ---------------------------------------------------------------


def _open_store(spec: dict[str, Any]) -> BarStore:
    if spec["backend"] == "sqlite":
        return SqliteBarStore(spec["path"])
    return CassandraBarStore(
        spec["contact_points"], spec["port"], spec["keyspace"], spec["replication_factor"]
    )


async def _serve(spec: dict[str, Any]) -> None:
    from ohlcv.datafeed import RESOLUTIONS_UDF, Datafeed

    async with _open_store(spec) as store:
        feed = Datafeed(
            DatafeedConfig(http_host="127.0.0.1", http_port=0),
            store,
            chat=None,
            symbols=[SYMBOL],
            session_timezone="Etc/UTC",
        )
        async with feed:
            if spec["gc_freeze"]:  # what a composition root may do once started
                gc.collect()
                gc.freeze()

            async def store_samples(command: Json) -> Json:
                # {"cmd": "store", "case": [udf, kind, count]}: the peer, timed here.
                udf, kind, count = command["case"]
                resolution = RESOLUTIONS_UDF[udf]
                from_s, to_s, countback = _case_args(udf, kind, count)
                samples = []
                for i in range(WARMUP + REQUESTS):
                    started = time.perf_counter()
                    got = await store.history(SYMBOL, resolution, from_s * S, to_s * S, countback)
                    if i >= WARMUP:
                        samples.append((time.perf_counter() - started) * 1000)
                    if len(got) != count:
                        raise AssertionError(f"store gave {len(got)} bars, expected {count}")
                return {"samples": samples}

            announce(port=feed.port, compiled=compiled_modules())
            await serve_commands({"store": store_samples})


class _Server:
    """The datafeed process (this file run as a script, see ``_main``)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.child = Child(__file__, json.dumps(spec), name="datafeed process")
        ready = self.child.read()
        check_compiled(ready["compiled"])  # the server measured is the compiled build
        self.port = int(ready["port"])

    def store_samples(self, case: tuple[str, str, int]) -> list[float]:
        samples: list[float] = self.child.request(cmd="store", case=case)["samples"]
        return samples

    def close(self) -> None:
        self.child.close()


# -- the client -------------------------------------------------------------------------


async def _http_samples(
    http: aiohttp.ClientSession, port: int, case: tuple[str, str, int]
) -> list[float]:
    udf, kind, count = case
    from_s, to_s, countback = _case_args(udf, kind, count)
    url = (
        f"http://127.0.0.1:{port}/history?symbol={SYMBOL}&resolution={udf}"
        f"&from={from_s}&to={to_s}&countback={countback}"
    )
    expected_t = [bar.open_time_ns // S for bar in SERIES_BY_UDF[udf][-count:]]
    samples = []
    for i in range(WARMUP + REQUESTS):
        started = time.perf_counter()
        async with http.get(url) as response:
            body = await response.read()
        elapsed = (time.perf_counter() - started) * 1000
        if i >= WARMUP:
            samples.append(elapsed)
        if i == 0:
            answer = json.loads(body)
            if response.status != 200 or answer.get("t") != expected_t:
                raise AssertionError(f"{url}: {response.status} {body[:200]!r}")
    return samples


async def _measure_backend(spec: dict[str, Any]) -> dict[str, Any]:
    server = await asyncio.to_thread(_Server, spec)
    results: dict[str, Any] = {}
    try:
        async with aiohttp.ClientSession() as http:
            for case in CASES:
                http_ms = _percentiles(await _http_samples(http, server.port, case))
                store_ms = _percentiles(await asyncio.to_thread(server.store_samples, case))
                results["/".join(map(str, case))] = {"http_ms": http_ms, "store_ms": store_ms}
    finally:
        await asyncio.to_thread(server.close)
    return results


def _cassandra_up(config: MdfeedConfig) -> bool:
    try:
        socket.create_connection(
            (config.store.cassandra_contact_points[0], config.store.cassandra_port), timeout=1
        ).close()
    except OSError:
        return False
    return True


async def _measure(tmp_path: Path, gc_freeze: bool) -> dict[str, Any]:
    results: dict[str, Any] = {"requests": REQUESTS, "series": SERIES, "gc_freeze": gc_freeze}
    path = tmp_path / "bars.sqlite3"
    async with SqliteBarStore(path) as sqlite:
        await sqlite.upsert(BARS_1M + BARS_1S)
    results["sqlite"] = await _measure_backend(
        {"backend": "sqlite", "path": str(path), "gc_freeze": gc_freeze}
    )

    config = load_config("local-stack")
    if not _cassandra_up(config):
        results["cassandra"] = "skipped: Cassandra not reachable ('mdfeed stack up cassandra')"
        return results
    store_config = config.store
    keyspace = f"bench_datafeed_{uuid.uuid4().hex[:10]}"
    spec = {
        "backend": "cassandra",
        "contact_points": list(store_config.cassandra_contact_points),
        "port": store_config.cassandra_port,
        "keyspace": keyspace,
        "replication_factor": store_config.replication_factor,
        "gc_freeze": gc_freeze,
    }
    try:
        async with _open_store(spec) as cassandra:
            await cassandra.upsert(BARS_1M + BARS_1S)
        results["cassandra"] = await _measure_backend(spec)
    finally:
        db = await CassandraSession.connect(
            store_config.cassandra_contact_points, store_config.cassandra_port
        )
        try:
            await db.ensure_schema([f"DROP KEYSPACE IF EXISTS {keyspace}"])
        finally:
            await db.close()
    return results


def _report(results: dict[str, Any]) -> str:
    lines = [
        f"datafeed GET /history, {REQUESTS} sequential requests per case, "
        f"{SERIES} bars per series (target p99 {TARGET_P99_MS:.0f} ms), "
        f"server {'with' if results['gc_freeze'] else 'without'} gc.freeze() after start; "
        "peer: the store's history() alone in the server process"
    ]
    for backend in ("sqlite", "cassandra"):
        figures = results.get(backend)
        if not isinstance(figures, dict):
            lines.append(f"  {backend}: {figures}")
            continue
        for case, got in figures.items():
            (hp50, hp99), (sp50, sp99) = got["http_ms"], got["store_ms"]
            lines.append(
                f"  {backend:<9} {case:<18} http p50 {hp50:6.2f} p99 {hp99:6.2f} ms"
                f"  p99/target {hp99 / TARGET_P99_MS:4.2f}"
                f"   store p50 {sp50:6.2f} p99 {sp99:6.2f} ms"
                f"   http-store p50 {hp50 - sp50:+6.2f} ms"
            )
    return "\n".join(lines)


@pytest.mark.parametrize("gc_freeze", [False, True], ids=["gc-default", "gc-frozen"])
def test_history_latency_at_the_http_endpoint(tmp_path: Path, gc_freeze: bool) -> None:
    """``gc-frozen``: the server froze its start-up objects out of the collector's reach
    (``gc.freeze()``), which takes the full collections 5000-bar answers trigger off p99."""
    results = asyncio.run(asyncio.wait_for(_measure(tmp_path, gc_freeze), timeout=600))
    out = Path(".benchmarks")
    out.mkdir(exist_ok=True)
    name = "datafeed_gc_frozen.json" if gc_freeze else "datafeed.json"
    (out / name).write_text(json.dumps(results, indent=2))
    print()
    print(_report(results))
    if not isinstance(results.get("cassandra"), dict):
        pytest.skip(str(results["cassandra"]))


def _main() -> None:
    parser = argparse.ArgumentParser(description="the datafeed process of this benchmark")
    parser.add_argument("spec", help="the bar store, as JSON")
    spec = json.loads(parser.parse_args().spec)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        asyncio.run(_serve(spec))
    else:
        uvloop.run(_serve(spec))


if __name__ == "__main__":
    _main()
