"""Producer throughput of the bus: records/s for 100-byte proto Ticks, keyed by symbol.

Not part of `make test`; run with `make bench`. The Kafka figures need the local stack's
broker (`mdfeed stack up kafka`); without it they are skipped and say so. Each figure is one
burst of BURST records sent and then flushed (every record acknowledged), timed over a few
rounds on a producer that is already connected, and reported beside limits and peers
measured in the same run:

- limit: the send() loop itself appending to a deque (no producer behind it);
- send() alone: the producer's send() with nothing draining, what the ingest's loop pays;
- memory: the in-process bus (MemoryBus), the embedded default;
- kafka: the Kafka adapter (aiokafka, idempotent, acks=all, record batches built per
  partition), without compression and with lz4 (when cramjam, aiokafka's codec library,
  is installed);
- peers: aiokafka used the common way (one ``await producer.send()`` per record, futures
  gathered), and confluent-kafka (librdkafka; ``produce()`` per record with a delivery
  callback), when installed.

The ticks are 100 bytes encoded: OSI option symbols (21 characters) with every field of a
Tick set; an equity tick with every field set is about 76 bytes.
Results go to `.benchmarks/bus.json` and the terminal.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import json
import socket
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from mdfeed.kernel.bus import Bus, BusProducer, KafkaBus, MemoryBus
from mdfeed.kernel.config import BusConfig, load_config
from proto import mdfeed_pb2 as pb

BURST = 100_000
ROUNDS = 3
#: OSI option symbols: root padded to 6, expiry, call/put, strike x 1000 in 8 digits.
SYMBOLS = [
    f"{root:<6}261218C{strike:08d}"
    for root in ("AAPL", "MSFT", "NVDA", "AMZN", "META")
    for strike in range(150_000, 160_000, 1_000)
]
RESULTS: dict[str, float] = {}
LIMIT = "limit: send() loop into a deque"


def _records() -> list[tuple[bytes, bytes]]:
    out = []
    for i in range(BURST):
        symbol = SYMBOLS[i % len(SYMBOLS)]
        tick = pb.Tick(
            symbol=symbol,
            seq=5_000_000_000 + i // len(SYMBOLS),
            kind=pb.TICK_KIND_TRADE,
            bid_px_e8=1_895_000_000 + i % 977,
            bid_size_e8=12_000_000_000_000,
            ask_px_e8=1_896_000_000 + i % 977,
            ask_size_e8=8_000_000_000_000,
            last_px_e8=1_895_500_000 + i % 977,
            last_size_e8=10_000_000_000,
            venue_time_ns=1_795_357_800_125_000_000 + i * 1000,
            ingest_time_ns=1_795_357_800_125_300_000 + i * 1000,
            fix_msg_seq_num=40_000_000_000 + i,
            from_snapshot=True,
        )
        out.append((symbol.encode(), tick.SerializeToString()))
    return out


RECORDS = _records()


def _kafka_config() -> BusConfig | None:
    config = load_config("local-stack").bus
    host, _, port = config.bootstrap_servers.partition(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return None
    topic = f"bench_bus_{uuid.uuid4().hex[:10]}"
    # Room for a whole burst: the figure is throughput, not the overflow policy.
    return dataclasses.replace(
        config, tick_topic=topic, chat_topic=f"{topic}_chat", buffer_max_records=2 * BURST
    )


@pytest.fixture(scope="module")
def kafka_config() -> BusConfig:
    config = _kafka_config()
    if config is None:
        pytest.skip("the local stack's Kafka is not running: start it with `mdfeed stack up kafka`")
    return config


@pytest.fixture(scope="module", autouse=True)
def report(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if LIMIT not in RESULTS:
        return
    limit = RESULTS[LIMIT]
    memory = RESULTS.get("memory bus")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    lines = [
        "",
        f"bus producer throughput, {BURST:,} ticks of {len(RECORDS[0][1])} bytes per burst "
        f"(send + flush), mean of {ROUNDS} rounds:",
    ]
    for name, rate in RESULTS.items():
        versus_memory = f", {rate / memory:.2f}x the memory bus" if memory else ""
        lines.append(
            f"  {name:<44} {rate:>12,.0f} records/s  {rate / limit:.3f} of the limit{versus_memory}"
        )
    for line in lines:
        if reporter is not None:
            reporter.write_line(line)
    out = Path(".benchmarks")
    out.mkdir(exist_ok=True)
    (out / "bus.json").write_text(json.dumps({"burst": BURST, "records_per_s": RESULTS}, indent=2))


def _record(benchmark: BenchmarkFixture, name: str) -> None:
    assert benchmark.stats is not None, "the benchmark has not run"
    rate = BURST / benchmark.stats.stats.mean
    RESULTS[name] = rate
    benchmark.extra_info["records_per_s"] = round(rate)


def _bench_producer(benchmark: BenchmarkFixture, name: str, make_bus: Callable[[], Bus]) -> None:
    with asyncio.Runner() as runner:
        bus = make_bus()
        producer: BusProducer = bus.producer()
        topic = bus.config.tick_topic

        async def burst() -> None:
            send = producer.send
            for key, value in RECORDS:
                send(topic, key, value)
            assert await producer.flush(120), producer.stats

        runner.run(bus.start())
        runner.run(producer.start())
        try:
            benchmark.pedantic(lambda: runner.run(burst()), rounds=ROUNDS, warmup_rounds=1)
            assert producer.stats.dropped == 0
        finally:
            runner.run(bus.stop())
    _record(benchmark, name)


@pytest.mark.benchmark(group="bus-produce")
def test_limit_send_loop_into_a_deque(benchmark: BenchmarkFixture) -> None:
    def run() -> None:
        buffer: deque[tuple[str, bytes, bytes]] = deque()
        append = buffer.append
        for key, value in RECORDS:
            append(("md.ticks", key, value))

    benchmark.pedantic(run, rounds=ROUNDS, warmup_rounds=1)
    _record(benchmark, LIMIT)


@pytest.mark.benchmark(group="bus-produce")
def test_send_call_alone(benchmark: BenchmarkFixture) -> None:
    """What the ingest's hot loop pays per record: send() into the buffer, nothing drained."""
    config = BusConfig(kind="memory", buffer_max_records=BURST)
    bus = MemoryBus(config)

    def fresh() -> tuple[tuple[BusProducer], dict[str, object]]:
        return (bus.producer(),), {}

    def run(producer: BusProducer) -> None:
        send = producer.send
        for key, value in RECORDS:
            send("md.ticks", key, value)
        assert producer.stats.buffered == BURST

    benchmark.pedantic(run, setup=fresh, rounds=ROUNDS, warmup_rounds=1)
    _record(benchmark, "send() alone (never started, nothing drained)")


@pytest.mark.benchmark(group="bus-produce")
def test_memory_bus(benchmark: BenchmarkFixture) -> None:
    config = BusConfig(kind="memory", buffer_max_records=2 * BURST)
    _bench_producer(benchmark, "memory bus", lambda: MemoryBus(config, retention_records=BURST))


@pytest.mark.benchmark(group="bus-produce")
def test_kafka_bus(benchmark: BenchmarkFixture, kafka_config: BusConfig) -> None:
    _bench_producer(benchmark, "kafka bus (aiokafka batches)", lambda: KafkaBus(kafka_config))


@pytest.mark.benchmark(group="bus-produce")
def test_kafka_bus_lz4(benchmark: BenchmarkFixture, kafka_config: BusConfig) -> None:
    if importlib.util.find_spec("cramjam") is None:
        pytest.skip("lz4 needs cramjam (pip install cramjam)")
    config = dataclasses.replace(kafka_config, tick_topic=f"{kafka_config.tick_topic}_lz4")
    _bench_producer(
        benchmark, "kafka bus (aiokafka batches, lz4)", lambda: KafkaBus(config, compression="lz4")
    )


@pytest.mark.benchmark(group="bus-produce")
def test_peer_aiokafka_send_per_record(
    benchmark: BenchmarkFixture, kafka_config: BusConfig
) -> None:
    from aiokafka import AIOKafkaProducer

    topic = f"{kafka_config.tick_topic}_peer_aiokafka"
    with asyncio.Runner() as runner:
        runner.run(KafkaBus(kafka_config).ensure_topics([topic]))

        async def start() -> AIOKafkaProducer:
            producer = AIOKafkaProducer(
                bootstrap_servers=kafka_config.bootstrap_servers,
                enable_idempotence=True,
                linger_ms=kafka_config.linger_ms,
            )
            await producer.start()
            return producer

        producer = runner.run(start())

        async def burst() -> None:
            futures = [await producer.send(topic, value, key=key) for key, value in RECORDS]
            await asyncio.gather(*futures)

        try:
            benchmark.pedantic(lambda: runner.run(burst()), rounds=ROUNDS, warmup_rounds=1)
        finally:
            runner.run(producer.stop())
    _record(benchmark, "peer: aiokafka, await send() per record")


@pytest.mark.benchmark(group="bus-produce")
def test_peer_confluent_kafka(benchmark: BenchmarkFixture, kafka_config: BusConfig) -> None:
    if importlib.util.find_spec("confluent_kafka") is None:
        pytest.skip("confluent-kafka is not installed (pip install confluent-kafka)")
    import confluent_kafka  # type: ignore[import-not-found,unused-ignore]  # an optional peer

    topic = f"{kafka_config.tick_topic}_peer_confluent"
    with asyncio.Runner() as runner:
        runner.run(KafkaBus(kafka_config).ensure_topics([topic]))
    producer = confluent_kafka.Producer(
        {
            "bootstrap.servers": kafka_config.bootstrap_servers,
            "enable.idempotence": True,
            "linger.ms": kafka_config.linger_ms,
            "partitioner": "murmur2_random",  # the Java client's, as our adapters place keys
            "queue.buffering.max.messages": 2 * BURST,
        }
    )
    acked = [0]

    def delivered(error: object, message: object) -> None:
        if error is None:
            acked[0] += 1

    def burst() -> None:
        produce, poll = producer.produce, producer.poll
        for i, (key, value) in enumerate(RECORDS):
            produce(topic, value, key, on_delivery=delivered)
            if i % 1000 == 0:
                poll(0)
        assert producer.flush(120) == 0

    benchmark.pedantic(burst, rounds=ROUNDS, warmup_rounds=1)
    assert acked[0] == (ROUNDS + 1) * BURST
    _record(benchmark, "peer: confluent-kafka, produce() per record")
