"""Metrics: the fixed-bucket histogram, each component's collector, the /metrics endpoint."""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from polling import until
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from fanout.lane import TickLane
from fanout.metrics import FanoutCollector
from fanout.tick_fanout import TickFanout
from fix_session.ingest import FixIngest
from fix_session.metrics import IngestCollector
from mdfeed.kernel.bus import BusRecord, MemoryBus
from mdfeed.kernel.config import (
    BusConfig,
    ConfigError,
    DatafeedConfig,
    FixSessionConfig,
    MetricsConfig,
)
from mdfeed.kernel.metrics import (
    DEFAULT_PORTS,
    FunctionCollector,
    Histogram,
    MetricsServer,
    metrics_port,
)
from mdfeed.stack.scratch import free_port
from ohlcv.datafeed import Datafeed
from ohlcv.metrics import DatafeedCollector
from proto import mdfeed_pb2 as pb
from storage import SqliteBarStore


def scrape(*collectors: Collector) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """sample name -> {sorted labels: value}, through the text exposition and its parser."""
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    return parse(generate_latest(registry).decode())


def parse(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


# -- the histogram ----------------------------------------------------------------


def test_histogram_buckets_are_le_and_cumulative() -> None:
    histogram = Histogram((0.001, 0.01, 0.1))
    for value in (0.0005, 0.001, 0.005, 0.5, 7.0):
        histogram.observe(value)
    assert histogram.counts == [2, 1, 0, 2]
    assert histogram.cumulative() == [("0.001", 2), ("0.01", 3), ("0.1", 3), ("+Inf", 5)]
    assert histogram.count == 5
    assert histogram.sum == pytest.approx(7.5065)

    samples = scrape(FunctionCollector(lambda: [histogram.family("x_seconds", "x")]))
    assert samples["x_seconds_bucket"] == {
        (("le", "0.001"),): 2,
        (("le", "0.01"),): 3,
        (("le", "0.1"),): 3,
        (("le", "+Inf"),): 5,
    }
    assert samples["x_seconds_count"] == {(): 5}
    assert samples["x_seconds_sum"] == {(): pytest.approx(7.5065)}


def test_default_buckets_span_50_microseconds_to_5_seconds() -> None:
    histogram = Histogram()
    assert histogram.bounds[0] == 0.00005
    assert histogram.bounds[-1] == 5.0
    histogram.observe(0.00004)
    histogram.observe(6.0)
    assert histogram.counts[0] == 1
    assert histogram.counts[-1] == 1


def test_histogram_exposition_in_the_text_format() -> None:
    histogram = Histogram((0.00005, 0.001, 1.0))
    for value in (0.00001, 0.0005, 0.0005, 2.0):
        histogram.observe(value)
    registry = CollectorRegistry()
    registry.register(FunctionCollector(lambda: [histogram.family("x_seconds", "Time of x.")]))
    assert generate_latest(registry).decode().splitlines() == [
        "# HELP x_seconds Time of x.",
        "# TYPE x_seconds histogram",
        'x_seconds_bucket{le="5e-05"} 1.0',
        'x_seconds_bucket{le="0.001"} 3.0',
        'x_seconds_bucket{le="1.0"} 3.0',
        'x_seconds_bucket{le="+Inf"} 4.0',
        "x_seconds_count 4.0",
        "x_seconds_sum 2.00101",
    ]
    empty = Histogram((0.5,))
    assert ("+Inf", 0) in empty.cumulative()
    assert scrape(FunctionCollector(lambda: [empty.family("y_seconds", "y")]))["y_seconds_sum"] == {
        (): 0.0
    }


@pytest.mark.parametrize("bounds", [(), (0.1, 0.1), (1.0, 0.5)])
def test_histogram_bounds_must_increase(bounds: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="increasing"):
        Histogram(bounds)


# -- collectors -------------------------------------------------------------------


def test_ingest_collector_reports_the_session_counters() -> None:
    bus = MemoryBus(BusConfig(kind="memory"))
    ingest = FixIngest(
        FixSessionConfig(), symbols=["AAPL"], producer=bus.producer(), topic="md.ticks"
    )
    stats = ingest.stats
    stats.messages_in = 12
    stats.ticks_out = 30
    stats.decode_errors = 2
    stats.rejected_messages = 1
    stats.session_rejects_sent = 3
    stats.stage_ns["decode"] = 1_500_000_000
    ingest.latency.observe(0.0002)
    ingest.latency.observe(0.003)

    samples = scrape(IngestCollector(ingest))
    assert samples["mdfeed_ingest_fix_messages_total"] == {(): 12}
    assert samples["mdfeed_ingest_ticks_total"] == {(): 30}
    assert samples["mdfeed_ingest_rejected_total"] == {
        (("reason", "decode"),): 2,
        (("reason", "normalize"),): 1,
        (("reason", "session_reject"),): 3,
        (("reason", "resend_request"),): 0,
    }
    assert samples["mdfeed_ingest_stage_seconds_total"][(("stage", "decode"),)] == 1.5
    assert samples["mdfeed_ingest_latency_seconds_count"] == {(): 2}
    assert samples["mdfeed_ingest_latency_seconds_bucket"][(("le", "0.00025"),)] == 1
    assert samples["mdfeed_ingest_latency_seconds_bucket"][(("le", "0.005"),)] == 2
    assert samples["mdfeed_fix_logged_on"] == {(): 0}


def _tick(symbol: str, seq: int) -> bytes:
    return pb.Tick(
        symbol=symbol, seq=seq, kind=pb.TICK_KIND_QUOTE, bid_px_e8=seq
    ).SerializeToString()


def _records(symbol: str, seqs: range, timestamp_ms: int = 0) -> list[BusRecord]:
    return [
        BusRecord("md.ticks", 0, s, symbol.encode(), _tick(symbol, s), timestamp_ms) for s in seqs
    ]


async def test_fanout_collector_counts_ticks_where_they_leave() -> None:
    bus = MemoryBus(BusConfig(kind="memory"))
    async with bus, TickFanout(bus, lane_factory=lambda: TickLane(max_pending_ticks=4)) as fanout:
        readers = [fanout.connect() for _ in range(2)]
        slow = fanout.connect()
        for client in (*readers, slow):
            fanout.subscribe(client, ["AAPL"])
            assert client.lane.take() is not None  # the (empty) snapshot
        fanout.ingest(_records("AAPL", range(1, 4)))  # one frame of 3 ticks
        for client in readers:
            assert client.lane.take() is not None
        # The slow client holds 3; 3 more take it past 4 pending: it conflates to 1 tick
        # (5 replaced) and queues a gap notice for seqs 1..5.
        fanout.ingest(_records("AAPL", range(4, 7)))
        fanout.ingest(_records("AAPL", range(4, 6)))  # redelivered: stale, not fanned out
        collector = FanoutCollector(ticks=fanout)
        samples = scrape(collector)
        assert samples["mdfeed_fanout_ticks_in_total"] == {(): 8}
        assert samples["mdfeed_fanout_records_in_total"] == {(): 8}  # one tick each
        assert samples["mdfeed_fanout_stale_ticks_total"] == {(): 2}
        assert samples["mdfeed_fanout_ticks_out_total"] == {(("transport", "grpc"),): 6}
        assert samples["mdfeed_fanout_conflated_ticks_total"] == {(("transport", "grpc"),): 5}
        assert samples["mdfeed_fanout_gap_notices_total"] == {(): 1}
        assert samples["mdfeed_fanout_clients"] == {(("transport", "grpc"),): 3}
        # Readers: one frame each (4..6); the slow one: gap notice + conflated frame.
        assert samples["mdfeed_fanout_queued_frames"] == {(): 4}
        assert samples["mdfeed_fanout_max_client_queue_frames"] == {(): 2}

        # A client that leaves keeps its deliveries in the totals.
        assert readers[0].lane.take() is not None
        fanout.disconnect(readers[0])
        fanout.disconnect(readers[0])  # twice: counted once
        samples = scrape(collector)
        assert samples["mdfeed_fanout_ticks_out_total"] == {(("transport", "grpc"),): 9}
        assert samples["mdfeed_fanout_clients"] == {(("transport", "grpc"),): 2}
        assert "mdfeed_chat_posted_total" not in samples  # no chat service given


async def test_fanout_observes_bus_latency_once_per_consumed_batch() -> None:
    bus = MemoryBus(BusConfig(kind="memory"), clock_ms=lambda: 1_000)  # records from 1970
    async with bus, TickFanout(bus) as fanout, bus.producer() as producer:
        for seq in range(1, 6):
            producer.send("md.ticks", b"AAPL", _tick("AAPL", seq))
        await until(lambda: fanout.records >= 5, timeout_s=10)
        histogram = fanout.bus_latency
        assert histogram.count == 1, "one observation per batch, not per record"
        assert histogram.counts[-1] == 1, "decades late: the +Inf bucket"


async def test_datafeed_collector_counts_requests_by_route_and_status(tmp_path: Path) -> None:
    async with SqliteBarStore(tmp_path / "bars.sqlite3") as store:
        feed = Datafeed(
            DatafeedConfig(http_port=0),
            store,
            chat=None,
            symbols=["AAPL"],
            session_timezone="America/New_York",
        )
        async with feed, aiohttp.ClientSession(f"http://127.0.0.1:{feed.port}") as http:
            for url in ("/time", "/time", "/history?symbol=AAPL", "/nowhere"):
                async with http.get(url) as response:
                    await response.read()
            samples = scrape(DatafeedCollector(feed))
    assert samples["mdfeed_datafeed_requests_total"] == {
        (("endpoint", "/time"), ("status", "200")): 2,
        (("endpoint", "/history"), ("status", "400")): 1,
        (("endpoint", "unmatched"), ("status", "404")): 1,
    }
    assert samples["mdfeed_datafeed_request_seconds_count"] == {
        (("endpoint", "/history"),): 1,
        (("endpoint", "/time"),): 2,
        (("endpoint", "unmatched"),): 1,
    }
    assert samples["mdfeed_datafeed_stream_clients"] == {(): 0}


# -- the endpoint -----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_the_endpoint_serves_the_registry_and_the_process() -> None:
    port = _free_port()
    histogram = Histogram((0.5,))
    histogram.observe(0.25)
    async with MetricsServer(MetricsConfig(port=port), "fanout") as metrics:
        metrics.register(FunctionCollector(lambda: [histogram.family("demo_seconds", "demo")]))
        bus = MemoryBus(BusConfig(kind="memory"))
        async with bus, bus.producer() as producer, bus.consumer(["t"]) as consumer:
            metrics.add_producer("demo", producer)
            metrics.add_lag_source("demo", consumer)
            assert metrics.url == f"http://127.0.0.1:{port}/metrics"
            assert metrics.describe() == f"metrics on http://127.0.0.1:{port}/metrics"
            async with aiohttp.ClientSession() as http, http.get(metrics.url) as response:
                assert response.status == 200
                assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST
                samples = parse(await response.text())
    assert samples["demo_seconds_bucket"] == {(("le", "0.5"),): 1, (("le", "+Inf"),): 1}
    assert samples["mdfeed_bus_producer_buffered_records"] == {(("producer", "demo"),): 0}
    assert samples["mdfeed_consumer_lag_records"] == {(("consumer", "demo"), ("topic", "t")): 0}
    assert samples["process_resident_memory_bytes"][()] > 0


async def test_a_port_in_use_is_an_error_naming_metrics_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = MetricsServer(MetricsConfig(port=port), "aggregate")
        with pytest.raises(
            ConfigError, match=rf"metrics\.port: 127\.0\.0\.1:{port} is already in use"
        ):
            await server.start()
        await server.stop()


# Run with -P: the installed build, not the source tree that may be the working directory.
_START_ONE = """
import sys, uvloop
from mdfeed.kernel.config import ConfigError, MetricsConfig
from mdfeed.kernel.metrics import MetricsServer

async def main():
    server = MetricsServer(MetricsConfig(port=int(sys.argv[1])), "fanout")
    try:
        await server.start()
    except ConfigError as exc:
        print("error:", exc)
        return
    print("serving")
    sys.stdout.flush()
    sys.stdin.readline()  # hold the port until the test has seen both
    await server.stop()

uvloop.run(main())
"""


def test_two_processes_starting_at_once_on_one_port_one_wins_one_says_why() -> None:
    # Two services started together by systemd or a test, on uvloop as mdfeed runs: the
    # loser must get the error naming the key every time, not an error from inside aiohttp.
    for _ in range(3):
        port = free_port()
        procs = [
            subprocess.Popen(
                [sys.executable, "-P", "-c", _START_ONE, str(port)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(2)
        ]
        try:
            lines = sorted(p.stdout.readline().strip() for p in procs if p.stdout is not None)
        finally:
            for p in procs:
                p.communicate("\n", timeout=30)
        assert lines[1] == "serving", lines
        assert lines[0].startswith(f"error: metrics.port: 127.0.0.1:{port} is already in use"), (
            lines
        )


async def test_disabled_metrics_listen_nowhere() -> None:
    async with MetricsServer(MetricsConfig(enabled=False), "run") as metrics:
        assert metrics.url is None
        assert metrics.port == 0
        assert "off" in metrics.describe()


def test_port_0_is_the_commands_own_default() -> None:
    assert metrics_port(MetricsConfig(), "ingest") == 9461
    assert metrics_port(MetricsConfig(port=9999), "ingest") == 9999
    assert dict(DEFAULT_PORTS) == {
        "run": 9460,
        "ingest": 9461,
        "fanout": 9462,
        "aggregate": 9463,
        "datafeed": 9464,
    }
    assert len(set(DEFAULT_PORTS.values())) == len(DEFAULT_PORTS)
    with pytest.raises(ValueError, match="unknown command"):
        MetricsServer(MetricsConfig(), "nope")


def test_metrics_config_keys_are_checked() -> None:
    from mdfeed.kernel.config import build_config

    config = build_config({}, "test", {"MDFEED__METRICS__PORT": "9555"})
    assert config.metrics == dataclasses.replace(MetricsConfig(), port=9555)
    with pytest.raises(ConfigError, match=r"metrics\.port: must be at most 65535"):
        build_config({"metrics": {"port": 70000}}, "test", {})
