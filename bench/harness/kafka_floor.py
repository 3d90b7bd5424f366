"""The Kafka floor of `mdfeed bench`: raw aiokafka, produce to consume, at a paced rate.

mdfeed's tick path crosses Kafka once, so no configuration of mdfeed can beat the latency
of a bare producer and consumer on the same broker at the same rate: the harness measures
that floor in the same run and states the pipeline's latency as a multiple of it.

Run as ``python -P -m bench.harness.kafka_floor --topic T --rate R --seconds S`` (a
process of its own, like the services); it prints one JSON line: the produce-to-consume
latency histogram (bench.harness.stats) and the records sent and received. The producer
batches like mdfeed's bus (``linger_ms``, default 0 as ``bus.linger_ms``: sent at once
when idle), the consumer reads from the end of the topic, and each record carries its
send time; the first second is not measured (connections and metadata settling). The
harness creates the topic beforehand.
"""

from __future__ import annotations

import argparse
import asyncio
import struct
import time
from typing import Any

from bench.harness.children import answer_once
from bench.harness.stats import clamped, latency_histogram
from mdfeed.cli.support import run_async

__all__ = ["RECORD_BYTES", "STAMP", "main", "measure", "send_paced"]

STAMP = struct.Struct(">q")
#: About the size of an encoded tick.
_PAD = b"\x00" * 90
RECORD_BYTES = STAMP.size + len(_PAD)


async def send_paced(producer: Any, topic: str, rate_per_s: int, seconds: float) -> int:
    """Send records stamped with their send time (``STAMP`` then padding, ``RECORD_BYTES``
    in all) at ``rate_per_s`` for ``seconds``, keyed over 50 symbols; the number sent."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent = 0
    while (elapsed := loop.time() - start) < seconds:
        for _ in range(int(elapsed * rate_per_s) - sent):
            key = b"S%04d" % (sent % 50)
            await producer.send(topic, STAMP.pack(time.time_ns()) + _PAD, key=key)
            sent += 1
        await asyncio.sleep(0.001)
    return sent


async def measure(
    bootstrap: str,
    topic: str,
    rate_per_s: int,
    seconds: float,
    *,
    linger_ms: int = 0,
    warmup_ns: int = 1_000_000_000,
) -> dict[str, object]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="latest", fetch_max_wait_ms=100
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=linger_ms, acks=1)
    await consumer.start()
    await producer.start()
    hist = latency_histogram()
    sent = 0
    measure_from_ns = time.time_ns() + 2**62  # set when sending starts
    stop = asyncio.Event()

    async def consume() -> None:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=100)
            now = time.time_ns()
            for records in batches.values():
                for record in records:
                    if record.value is None:
                        continue
                    sent_ns = STAMP.unpack_from(record.value)[0]
                    if sent_ns >= measure_from_ns:  # the first second warms the clients up
                        hist.observe(clamped(now - sent_ns))

    try:
        # Wait for the assignment, so the first records are not missed.
        async with asyncio.timeout(30):
            while not consumer.assignment():
                await consumer.getmany(timeout_ms=100)
        measure_from_ns = time.time_ns() + warmup_ns
        reader = asyncio.create_task(consume())
        loop = asyncio.get_running_loop()
        sent = await send_paced(producer, topic, rate_per_s, seconds)
        await producer.flush()
        warm = min(sent, int(rate_per_s * warmup_ns / 1e9))
        deadline = loop.time() + 5
        while hist.count + warm < sent and loop.time() < deadline:  # noqa: ASYNC110 - a plain counter
            await asyncio.sleep(0.05)
        stop.set()
        await reader
    finally:
        await producer.stop()
        await consumer.stop()
    return {"sent": sent, "received": hist.count, "histogram": hist.to_json()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--rate", type=int, required=True, help="records per second")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--linger-ms", type=int, default=0)
    args = parser.parse_args(argv)
    answer_once(
        lambda: run_async(
            measure(args.bootstrap, args.topic, args.rate, args.seconds, linger_ms=args.linger_ms)
        )
    )


if __name__ == "__main__":
    main()
