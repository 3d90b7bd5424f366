"""The fanout on the wire: gRPC deliveries, latency through Kafka, memory per client, MQTT.

Not part of `make test`; run with `make bench` (the Kafka and MQTT figures need the local
stack: `mdfeed stack up`). The server, the clients, the publishers each run in a process
of their own (bench.harness: servers, subscribers, publishers, driven as its children
module describes): on two cores the measured process must not share its GIL with its load.
Figures are wall-clock windows after a warm-up; every one is printed beside a target or a
limit measured in the same run:

- deliveries/s (ticks received, summed over the clients) to N = 10, 100, 1000 gRPC
  Subscribe streams of 50 symbols each, one TCP connection per stream, with 1M
  deliveries/s offered (N x input ticks/s): against the 1M/s target, against the
  practical limit (the same TickBatch frame bytes written with ``StreamWriter.write`` to N
  loopback TCP connections from one asyncio process) and against the fanout's core alone
  (``TickFanout.ingest`` and ``TickLane.take``, no transport; pytest-benchmark);
- the ceiling to 1,000 streams, searched: offered deliveries/s raised in steps on the same
  open streams, then bisected, to the highest rate kept up with (the criteria are beside
  ``CEILING_STEPS``), against the 2M/s target and the raw-socket limit at its ticks/frame;
  per-symbol batch records as the ingest writes, and one tick per record at the same rate;
- latency from ``ingest_time_ns`` (stamped at publish) to the client, through the stack's
  Kafka, 100 subscribers, the input paced in its own process at 50K, 5K and 1K ticks/s:
  p50/p99/p99.9 against the p99 <= 20 ms target, with the Kafka hop (publish to the
  fanout's consume loop) beside it;
- server RSS per connected idle client against the 50 KB target, and once subscribed;
- quote deliveries/s through Mosquitto to 10 paho subscribers: ``MqttBridge`` with its
  per-symbol cap off, beside paho publishing the same ticks itself.

Input that the box cannot sustain is reported as the rate achieved, never assumed.
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
import time
import uuid
from collections.abc import Sequence

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from bench.harness.children import Child, Json, children, cpu_seconds, listener_pid, rss_kb
from bench.harness.stats import (
    latency_from_json,
    latency_histogram,
    merge_counts,
    percentiles_ms,
    window_rate,
)
from bench.harness.ticks import symbols, tick_records
from fanout.lane import TickLane
from fanout.tick_fanout import TickFanout
from mdfeed.kernel.bus import MemoryBus
from mdfeed.kernel.config import BusConfig, load_config

SYMBOLS = symbols(50)
COUNTS = (10, 100, 1000)
TARGET_DELIVERIES = 1_000_000
TARGET_P99_MS = 20.0
TARGET_IDLE_KB = 50.0
#: Client processes: enough to keep the clients off the server's core, few enough to fit.
CLIENT_PROCS = 2

CORE: dict[int, float] = {}
#: Latency runs decode one message in this many per client (bench.harness.subscribers).
PARSE_EVERY = 8

#: The processes, as (module, role): see bench.harness.servers, subscribers, publishers.
SERVER = ("bench.harness.servers", "fanout")
RAW_SERVER = ("bench.harness.servers", "raw")
GRPC_CLIENTS = ("bench.harness.subscribers", "grpc")
RAW_CLIENTS = ("bench.harness.subscribers", "raw")
MQTT_CLIENTS = ("bench.harness.subscribers", "mqtt")
#: Clients that time nothing: deliveries and memory are measured, not latency.
NOT_TIMING = ("--record", "0")


def _up(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def stack() -> None:
    config = load_config("local-stack")
    host, _, port = config.bus.bootstrap_servers.partition(":")
    down = [
        name
        for name, up in (
            ("kafka", _up(host, int(port))),
            ("mosquitto", _up(config.mqtt.host, config.mqtt.port)),
        )
        if not up
    ]
    if down:
        pytest.fail(f"local stack not running ({', '.join(down)}): start it with 'mdfeed stack up'")


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (i < total % parts) for i in range(parts)]


# -- 1. the fanout's core alone ----------------------------------------------------------


@pytest.mark.benchmark(group="grpc-fanout-core")
@pytest.mark.parametrize("n", COUNTS)
def test_fanout_core_alone(benchmark: BenchmarkFixture, n: int) -> None:
    """``ingest`` to N subscribed lanes, each drained in batches: the ceiling without I/O."""
    offers = 500_000
    records = tick_records(SYMBOLS, 1, offers // n)
    chunk = 200

    def fresh() -> tuple[tuple[TickFanout, list[TickLane]], dict[str, object]]:
        fanout = TickFanout(MemoryBus(BusConfig(kind="memory")))
        clients = [fanout.connect() for _ in range(n)]
        for client in clients:
            fanout.subscribe(client, SYMBOLS)
        return (fanout, [c.lane for c in clients]), {}

    def run(fanout: TickFanout, lanes: list[TickLane]) -> None:
        for low in range(0, len(records), chunk):
            fanout.ingest(records[low : low + chunk])
            for lane in lanes:
                while lane.take() is not None:
                    pass
        assert sum(lane.stats.delivered for lane in lanes) == len(records) * n

    benchmark.pedantic(run, setup=fresh, rounds=3, warmup_rounds=1)
    assert benchmark.stats is not None
    rate = len(records) * n / float(benchmark.stats.stats.min)
    CORE[n] = rate
    benchmark.extra_info["deliveries_per_s"] = round(rate)
    print(f"\nfanout core alone, N={n}: {rate:,.0f} deliveries/s (ingest + take, no I/O)")


# -- 1 and 2. gRPC deliveries against the raw-socket limit --------------------------------


@dataclasses.dataclass
class GrpcRun:
    input_per_s: float
    deliveries_per_s: float
    conflated_share: float
    ticks_per_frame: float
    server_cores: float
    client_cores: float


def _grpc_run(n: int, warmup_s: float = 1.0, seconds: float = 4.0) -> GrpcRun:
    with children(SERVER) as (server,):
        port = str(server.read()["port"])
        server.request(cmd="prime")
        specs = [(*GRPC_CLIENTS, "--port", port, *NOT_TIMING)] * CLIENT_PROCS
        with children(*specs) as clients:
            for client in clients:
                client.read()
            for client, count in zip(clients, _split(n, CLIENT_PROCS), strict=True):
                client.request(cmd="open", kind="subscribe", n=count, symbols=SYMBOLS)
            assert server.request(cmd="clients")["clients"] == n
            cpu0 = [cpu_seconds(c.pid) for c in clients]
            fed = server.request(
                timeout_s=120,
                cmd="feed",
                rate=TARGET_DELIVERIES / n,
                warmup_s=warmup_s,
                seconds=seconds,
            )
            cpu1 = [cpu_seconds(c.pid) for c in clients]
            reports = [c.request(cmd="report") for c in clients]
    for report in reports:
        assert report["errors"] == [], report["errors"]
        assert report["ended"] == 0, "a stream ended during the run"
    assert sum(r["snapshots"] for r in reports) == n, "every stream starts with its snapshot"
    lanes = fed["lanes"]
    assert lanes["stale"] == 0
    assert fed["cut_off"] == 0
    received = window_rate(
        merge_counts([r["buckets"] for r in reports]), fed["from_ns"], fed["to_ns"]
    )
    frames = sum(r["frames"] for r in reports) - n - sum(r["gaps"] for r in reports)
    ticks = sum(r["ticks"] for r in reports)
    elapsed = (fed["to_ns"] - fed["from_ns"]) / 1e9
    return GrpcRun(
        input_per_s=fed["ingested_per_s"],
        deliveries_per_s=received,
        conflated_share=lanes["conflated"] / max(lanes["offered"], 1),
        ticks_per_frame=ticks / max(frames, 1),
        server_cores=fed["cpu_cores"],
        client_cores=sum(b - a for a, b in zip(cpu0, cpu1, strict=True)) / elapsed,
    )


def _raw_run(n: int, ticks_per_frame: int, warmup_s: float = 0.5, seconds: float = 3.0) -> float:
    """Deliveries/s (ticks in the frames received) of the raw-socket limit."""
    with children(RAW_SERVER) as (server,):
        port = str(server.read()["port"])
        with children(*[(*RAW_CLIENTS, "--port", port)] * CLIENT_PROCS) as clients:
            for client in clients:
                client.read()
            for client, count in zip(clients, _split(n, CLIENT_PROCS), strict=True):
                client.request(cmd="open", n=count)
            assert server.request(cmd="connections", at_least=n, wait_s=10)["connections"] == n
            blast = server.request(
                cmd="blast", ticks_per_frame=ticks_per_frame, warmup_s=warmup_s, seconds=seconds
            )
            reports = [c.request(cmd="report") for c in clients]
    received_bytes = window_rate(
        merge_counts([r["buckets"] for r in reports]), blast["from_ns"], blast["to_ns"]
    )
    assert received_bytes > 0
    return received_bytes / float(blast["frame_bytes"]) * ticks_per_frame


def test_grpc_deliveries_against_raw_sockets() -> None:
    print(
        f"\ngRPC Subscribe streams of {len(SYMBOLS)} symbols, one connection each, "
        f"{TARGET_DELIVERIES:,} deliveries/s offered (N x input):"
    )
    print(
        f"{'N':>5} {'input/s':>9} {'deliveries/s':>13} {'x 1M':>6} {'conflated':>9} "
        f"{'ticks/frame':>11} {'server':>6} {'clients':>7} {'raw socket/s':>13} "
        f"{'grpc/raw':>8} {'core/s':>12} {'grpc/core':>9}"
    )
    for n in COUNTS:
        grpc_run = _grpc_run(n)
        assert grpc_run.deliveries_per_s > 0
        per_frame = max(1, round(grpc_run.ticks_per_frame))
        raw = _raw_run(n, per_frame)
        core = CORE.get(n)
        core_text = f"{core:12,.0f} {grpc_run.deliveries_per_s / core:9.3f}" if core else ""
        print(
            f"{n:5d} {grpc_run.input_per_s:9,.0f} {grpc_run.deliveries_per_s:13,.0f} "
            f"{grpc_run.deliveries_per_s / TARGET_DELIVERIES:6.2f} "
            f"{grpc_run.conflated_share:9.1%} {grpc_run.ticks_per_frame:11.0f} "
            f"{grpc_run.server_cores:6.2f} {grpc_run.client_cores:7.2f} {raw:13,.0f} "
            f"{grpc_run.deliveries_per_s / raw:8.3f} {core_text}"
        )
    print(
        "input/s: ticks/s the fanout took in (offered 1M/N; lower when its loop could not "
        "keep the pace); conflated: share of offers replaced by a newer tick; server, "
        "clients: CPU cores used; raw socket: the same frames (ticks/frame as gRPC sent) "
        "written to N loopback TCP connections; core: ingest + take without I/O."
    )


# -- 2b. the fanout's ceiling, searched ------------------------------------------------------

#: Offered deliveries/s (N x input ticks/s) tried in order to the first one not kept up
#: with; the search then bisects between the last kept up with and that one.
CEILING_STEPS = (1_000_000, 1_500_000, 2_000_000, 3_000_000, 4_000_000, 6_000_000, 8_000_000)
CEILING_BISECTIONS = 2
CEILING_STREAMS = 1000
#: Kept up with: the streams received this share of the offered deliveries in the window,
#: every stream's lane handed on this share of what it was offered in the window by
#: KEEP_UP_SETTLE_S after it, the fanout took in this share of the input pace...
KEEP_UP_SHARE = 0.97
KEEP_UP_SETTLE_S = 0.5
#: ...and conflated less than this share of the offers.
KEEP_UP_MAX_CONFLATED = 0.01


@dataclasses.dataclass
class CeilingStep:
    offered: float
    layout: str
    input_per_s: float
    deliveries_per_s: float
    min_lane_share: float
    conflated_share: float
    ticks_per_frame: float
    server_cores: float
    client_cores: float

    @property
    def server_short(self) -> bool:
        """The fanout fell short: it took in less than the pace, a lane fell behind, or
        lanes conflated."""
        return (
            self.min_lane_share < KEEP_UP_SHARE
            or self.input_per_s * CEILING_STREAMS < KEEP_UP_SHARE * self.offered
            or self.conflated_share >= KEEP_UP_MAX_CONFLATED
        )

    @property
    def clients_short(self) -> bool:
        """The streams received less than the offered share in the window."""
        return self.deliveries_per_s < KEEP_UP_SHARE * self.offered

    @property
    def kept_up(self) -> bool:
        return not (self.server_short or self.clients_short)

    @property
    def verdict(self) -> str:
        if self.kept_up:
            return "yes"
        return "no: " + " and ".join(
            side
            for side, short in (("fanout", self.server_short), ("received", self.clients_short))
            if short
        )


def _settled_reports(clients: Sequence[Child], limit_s: float = 10.0) -> list[Json]:
    """The clients' reports once what they still had in flight has arrived (their tick
    counts unchanged over 0.3 s), so that none of it counts in the next step's window."""
    reports = [c.request(cmd="report") for c in clients]
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        time.sleep(0.3)
        again = [c.request(cmd="report") for c in clients]
        settled = all(a["ticks"] == b["ticks"] for a, b in zip(reports, again, strict=True))
        reports = again
        if settled:
            break
    return reports


def _ceiling_step(
    server: Child, clients: Sequence[Child], offered: float, layout: str, last: list[Json]
) -> CeilingStep:
    """One offered rate on streams already open; ``last`` holds the clients' last reports."""
    cpu0 = [cpu_seconds(c.pid) for c in clients]
    fed = server.request(
        timeout_s=120,
        cmd="feed",
        rate=offered / CEILING_STREAMS,
        warmup_s=1.0,
        seconds=3.0,
        layout=layout,
        settle_s=KEEP_UP_SETTLE_S,
    )
    cpu1 = [cpu_seconds(c.pid) for c in clients]
    reports = _settled_reports(clients)
    for report in reports:
        assert report["errors"] == [], report["errors"]
        assert report["ended"] == 0, "a stream ended during the run"
    assert fed["lanes"]["stale"] == 0
    assert fed["cut_off"] == 0
    assert fed["streams_fed"] == CEILING_STREAMS

    def grown(key: str) -> int:
        return sum(int(r[key]) for r in reports) - sum(int(r[key]) for r in last)

    frames = grown("frames") - grown("gaps")
    ticks = grown("ticks")
    last[:] = reports
    elapsed = (fed["to_ns"] - fed["from_ns"]) / 1e9
    lanes = fed["lanes"]
    return CeilingStep(
        offered=offered,
        layout=layout,
        input_per_s=fed["ingested_per_s"],
        deliveries_per_s=window_rate(
            merge_counts([r["buckets"] for r in reports]), fed["from_ns"], fed["to_ns"]
        ),
        min_lane_share=fed["min_lane_share"],
        conflated_share=lanes["conflated"] / max(lanes["offered"], 1),
        ticks_per_frame=ticks / max(frames, 1),
        server_cores=fed["cpu_cores"],
        client_cores=sum(b - a for a, b in zip(cpu0, cpu1, strict=True)) / elapsed,
    )


def _print_step(step: CeilingStep) -> None:
    print(
        f"{step.layout:>6} {step.offered:11,.0f} {step.input_per_s * CEILING_STREAMS:11,.0f} "
        f"{step.deliveries_per_s:13,.0f} {step.deliveries_per_s / step.offered:8.1%} "
        f"{step.min_lane_share:10.1%} {step.conflated_share:9.1%} {step.ticks_per_frame:11.0f} "
        f"{step.server_cores:6.2f} {step.client_cores:7.2f} {step.verdict}"
    )


def test_grpc_fanout_ceiling() -> None:
    """The highest offered rate the fanout keeps up with on 1,000 streams, searched."""
    n = CEILING_STREAMS
    print(
        f"\nceiling search: {n} gRPC Subscribe streams of {len(SYMBOLS)} symbols, 3 s windows; "
        f"kept up: >= {KEEP_UP_SHARE:.0%} of offered received and handed on per stream, "
        f"< {KEEP_UP_MAX_CONFLATED:.0%} conflated (load average "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}):"
    )
    print(
        f"{'layout':>6} {'offered/s':>11} {'input x N':>11} {'deliveries/s':>13} "
        f"{'received':>8} {'min stream':>10} {'conflated':>9} {'ticks/frame':>11} "
        f"{'server':>6} {'clients':>7} kept up"
    )
    steps: list[CeilingStep] = []
    with children(SERVER) as (server,):
        port = str(server.read()["port"])
        server.request(cmd="prime")
        specs = [(*GRPC_CLIENTS, "--port", port, *NOT_TIMING)] * CLIENT_PROCS
        with children(*specs) as clients:
            for client in clients:
                client.read()
            for client, count in zip(clients, _split(n, CLIENT_PROCS), strict=True):
                client.request(
                    timeout_s=120, cmd="open", kind="subscribe", n=count, symbols=SYMBOLS
                )
            assert server.request(cmd="clients")["clients"] == n
            last = [c.request(cmd="report") for c in clients]

            def run(offered: float, layout: str = "batch") -> CeilingStep:
                step = _ceiling_step(server, clients, offered, layout, last)
                steps.append(step)
                _print_step(step)
                return step

            kept: CeilingStep | None = None
            failed: CeilingStep | None = None
            for offered in CEILING_STEPS:
                step = run(offered)
                if not step.kept_up:
                    failed = step
                    break
                kept = step
            if kept is not None and failed is not None:
                low, high = kept.offered, failed.offered
                for _ in range(CEILING_BISECTIONS):
                    middle = round((low + high) / 2, -5)
                    if middle in (low, high):
                        break
                    step = run(middle)
                    if step.kept_up:
                        low, kept = middle, step
                    else:
                        high = middle
            if kept is not None:
                run(kept.offered, "single")  # the same rate, one tick per record
    assert kept is not None, "the fanout did not keep up with the lowest step"
    raw = _raw_run(n, max(1, round(kept.ticks_per_frame)))
    print(
        f"highest kept up with: {kept.offered:,.0f} deliveries/s offered, "
        f"{kept.deliveries_per_s:,.0f} received, at {kept.server_cores:.2f} of a core "
        f"(clients {kept.client_cores:.2f}); "
        + (f"first not: {failed.offered:,.0f}; " if failed is not None else "no step failed; ")
        + f"raw-socket peer, {round(kept.ticks_per_frame)} ticks/frame: {raw:,.0f} ticks/s "
        f"(grpc/raw {kept.deliveries_per_s / raw:.3f}); target {2 * TARGET_DELIVERIES:,}: "
        f"{kept.offered / (2 * TARGET_DELIVERIES):.2f}x"
    )
    print(
        "layout batch: one record per symbol per slice, as the ingest writes; single: one "
        "tick per record. input x N: ticks/s the fanout took in times N; min stream: the "
        f"lowest share of its window's ticks a stream's lane handed to gRPC by "
        f"{KEEP_UP_SETTLE_S:g} s after the window."
    )


# -- 3. latency through Kafka ---------------------------------------------------------------


@dataclasses.dataclass
class LatencyRun:
    sent_per_s: float
    fanout_in_per_s: float
    deliveries_per_s: float
    conflated_share: float
    kafka_ms: list[float]
    client_ms: list[float]
    received: int
    server_cores: float


def _latency_run(rate: int, subscribers: int, warmup_s: float, seconds: float) -> LatencyRun:
    topic = f"bench_fanout_latency_{uuid.uuid4().hex[:10]}"
    # The publisher first: it creates the topic and waits for an acknowledgement, so the
    # fanout's consumer finds every partition with its leader.
    with children(("bench.harness.publishers", "kafka", "--topic", topic)) as (publisher,):
        publisher.read(timeout_s=90)
        with children((*SERVER, "--bus", "kafka", "--topic", topic)) as (server,):
            port = str(server.read(timeout_s=90)["port"])
            # Every client times the ticks of the messages it decodes, ingest to receipt.
            timing = ("--parse-every", str(PARSE_EVERY), "--record", "all")
            specs = [(*GRPC_CLIENTS, "--port", port, *timing, "--hops", "ingest->client")]
            specs *= CLIENT_PROCS
            with children(*specs) as clients:
                for client in clients:
                    client.read()
                for client, count in zip(clients, _split(subscribers, CLIENT_PROCS), strict=True):
                    client.request(cmd="open", kind="subscribe", n=count, symbols=SYMBOLS)
                start_ns = time.time_ns() + 300_000_000
                window = {
                    "from_ns": start_ns + int(warmup_s * 1e9),
                    "to_ns": start_ns + int((warmup_s + seconds) * 1e9),
                }
                for child in (*clients, server):
                    child.request(cmd="window", **window)
                before = server.request(cmd="stats")
                sent = publisher.request(
                    timeout_s=120,
                    cmd="go",
                    rate=rate,
                    start_ns=start_ns,
                    seconds=warmup_s + seconds,
                )
                after = server.request(cmd="stats")
                reports = [c.request(cmd="report") for c in clients]
                timed = [c.request(cmd="histograms")["ingest->client"] for c in clients]
    assert sent["dropped"] == 0, sent
    assert sent["flushed"], sent
    for report in reports:
        assert report["errors"] == [], report["errors"]
        assert report["ended"] == 0, "a stream ended during the run"
    histogram = latency_histogram()
    for part in timed:
        histogram.merge(latency_from_json(part))
    span = warmup_s + seconds
    offered = after["lanes"]["offered"] - before["lanes"]["offered"]
    conflated = after["lanes"]["conflated"] - before["lanes"]["conflated"]
    return LatencyRun(
        sent_per_s=sent["sent_per_s"],
        fanout_in_per_s=(after["records"] - before["records"]) / span,
        deliveries_per_s=(after["lanes"]["delivered"] - before["lanes"]["delivered"]) / span,
        conflated_share=conflated / max(offered, 1),
        kafka_ms=percentiles_ms(latency_from_json(after["hop_histogram"]), (50, 99)),
        client_ms=percentiles_ms(histogram, (50, 99, 99.9)),
        received=histogram.count,
        server_cores=(after["cpu_s"] - before["cpu_s"]) / span,
    )


def _ms(value: float, digits: int = 1) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"  # NaN: nothing received


def test_latency_through_kafka(stack: None) -> None:
    subscribers = 100
    print(
        f"\nlatency ingest_time_ns -> client, {subscribers} Subscribe streams of "
        f"{len(SYMBOLS)} symbols, through Kafka (target p99 <= {TARGET_P99_MS:g} ms):"
    )
    print(
        f"{'offered/s':>9} {'sent/s':>8} {'fanout in/s':>11} {'deliveries/s':>12} "
        f"{'conflated':>9} {'kafka p50':>9} {'kafka p99':>9} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'p99.9 ms':>8} {'p99/target':>10} {'server':>6}"
    )
    for rate in (50_000, 5_000, 1_000):
        run = _latency_run(rate, subscribers, warmup_s=1.0, seconds=5.0)
        p50, p99, p999 = run.client_ms
        print(
            f"{rate:9,d} {run.sent_per_s:8,.0f} {run.fanout_in_per_s:11,.0f} "
            f"{run.deliveries_per_s:12,.0f} {run.conflated_share:9.1%} "
            f"{_ms(run.kafka_ms[0]):>9} {_ms(run.kafka_ms[1]):>9} {_ms(p50):>7} {_ms(p99):>7} "
            f"{_ms(p999):>8} {_ms(p99 / TARGET_P99_MS, 2):>10} {run.server_cores:6.2f}"
        )
        if run.received == 0:
            print(
                f"{'':9} no tick reached a client in the window: the fanout took in "
                f"{run.fanout_in_per_s:,.0f} of {run.sent_per_s:,.0f} ticks/s sent and its "
                "transport starved"
            )
    print(
        "sent/s: what the publisher (its own process) got out at that pace; fanout in/s: "
        "records the fanout consumed (below sent/s: it fell behind, latency grows with the "
        "run); kafka p50/p99: ms from publish to the fanout's consume loop (every 8th "
        "tick); deliveries/s: ticks the server handed to the streams; p50..p99.9: ms to "
        f"receipt of the ticks of every {PARSE_EVERY}th message received in the window "
        "(the Python clients cannot decode all of them on this box); server: "
        "CPU cores."
    )


# -- 4. memory per client --------------------------------------------------------------------


def test_memory_per_idle_client() -> None:
    clients_n = 1000
    with children(SERVER) as (server,):
        info = server.read()
        port, pid = str(info["port"]), int(info["pid"])
        server.request(cmd="prime")
        clients_spec = (*GRPC_CLIENTS, "--port", port, *NOT_TIMING)
        with children(clients_spec) as (warm,):
            warm.read()  # one round of connections first: lazily made state is not per client
            warm.request(cmd="open", kind="subscribe", n=20, symbols=SYMBOLS)
        assert server.request(cmd="clients", at_most=0, wait_s=10)["clients"] == 0
        time.sleep(0.5)
        base = rss_kb(pid)
        with children(clients_spec) as (client,):
            client.read()
            client.request(cmd="open", kind="subscribe", n=clients_n, symbols=["IDLE"])
            assert server.request(cmd="clients")["clients"] == clients_n
            time.sleep(0.5)
            subscribe_idle = rss_kb(pid)
            client.request(cmd="open", kind="connect", n=clients_n)
            count = server.request(cmd="clients", at_least=2 * clients_n, wait_s=30)["clients"]
            assert count == 2 * clients_n
            time.sleep(0.5)
            connect_idle = rss_kb(pid)
            client.request(cmd="subscribe", symbols=SYMBOLS)
            time.sleep(0.5)
            subscribed = rss_kb(pid)
    rows = [
        ("Subscribe stream, 1 quiet symbol", (subscribe_idle - base) / clients_n),
        ("Connect stream, nothing subscribed", (connect_idle - subscribe_idle) / clients_n),
        ("  + subscribe to 50 symbols (snapshot)", (subscribed - connect_idle) / clients_n),
        ("Connect stream with 50 symbols", (subscribed - subscribe_idle) / clients_n),
    ]
    print(
        f"\nserver RSS per connected client ({clients_n} clients per row, one TCP connection "
        f"each; server RSS {base / 1024:.0f} MB before, {subscribed / 1024:.0f} MB after; "
        f"target <= {TARGET_IDLE_KB:g} KB idle):"
    )
    for name, kb in rows:
        print(f"  {name:40s} {kb:7.1f} KB  {kb / TARGET_IDLE_KB:5.2f} of the target")
    assert subscribe_idle > base


# -- 5. MQTT through Mosquitto ------------------------------------------------------------------


def _mqtt_run(
    role: str, rate: float, subscribers: int = 10, seconds: float = 5.0
) -> dict[str, float]:
    prefix = f"bench_mqtt_{uuid.uuid4().hex[:10]}"
    config = load_config("local-stack").mqtt
    broker_at = ("--host", config.host, "--port", str(config.port))
    mqtt_clients = (*MQTT_CLIENTS, *broker_at, "--topic-prefix", prefix)
    specs = [
        (*mqtt_clients, "--client-id", f"{prefix}-sub", "--count", str(count), *NOT_TIMING)
        for count in _split(subscribers, CLIENT_PROCS)
    ]
    warmup_s = 1.0
    broker = listener_pid(config.port)
    with children(*specs) as subs:
        for sub in subs:
            sub.read()
        publisher: Child
        with children(("bench.harness.publishers", role, *broker_at, "--prefix", prefix)) as (
            publisher,
        ):
            publisher.read()
            start_ns = time.time_ns() + 300_000_000
            broker0 = cpu_seconds(broker)
            result = publisher.request(
                timeout_s=60, cmd="go", rate=rate, start_ns=start_ns, seconds=warmup_s + seconds
            )
            broker1 = cpu_seconds(broker)
            time.sleep(0.3)
            reports = [s.request(cmd="report") for s in subs]
    span = warmup_s + seconds
    delivered = window_rate(
        merge_counts([r["buckets"] for r in reports]),
        start_ns + int(warmup_s * 1e9),
        start_ns + int(span * 1e9),
    )
    published = result["published_per_s"]
    return {
        "input": result.get("fed_per_s", published),
        "published": published,
        "delivered": delivered,
        "share": delivered / max(published * subscribers, 1),
        "conflated": result.get("conflated", 0) / max(result.get("quotes_in", 1), 1),
        "cores": result["cpu_cores"],
        "broker_cores": (broker1 - broker0) / span,
    }


def test_mqtt_deliveries_through_mosquitto(stack: None) -> None:
    runs = [
        ("paho publish() itself (peer)", "mqtt", 10_000.0),
        ("MqttBridge.publish_tick, cap off", "mqtt-bridge", 10_000.0),
        ("MqttBridge.publish_tick, cap off", "mqtt-bridge", 100_000.0),
    ]
    results = [(name, _mqtt_run(role, rate)) for name, role, rate in runs]
    peer = results[0][1]["delivered"]
    print("\nquotes md/{symbol} (QoS 0) through Mosquitto to 10 paho subscribers (2 processes):")
    print(
        f"{'publisher':34s} {'input/s':>8} {'published/s':>11} {'conflated':>9} "
        f"{'delivered/s':>11} {'of N x pub':>10} {'x peer':>6} {'pub cores':>9} {'broker':>6}"
    )
    for name, r in results:
        print(
            f"{name:34s} {r['input']:8,.0f} {r['published']:11,.0f} {r['conflated']:9.1%} "
            f"{r['delivered']:11,.0f} {r['share']:10.1%} {r['delivered'] / peer:6.2f} "
            f"{r['cores']:9.2f} {r['broker_cores']:6.2f}"
        )
    print(
        "of N x pub: deliveries over 10 x publishes (below 100%: the subscribers, Python, "
        "fell behind and the broker dropped QoS 0 messages); broker: Mosquitto's CPU cores."
    )
    for _, r in results:
        assert r["delivered"] > 0
