"""The relay floor of `mdfeed bench`: bare Kafka, then a bare gRPC stream, at a paced rate.

mdfeed's ingest -> client path is a Kafka hop (produce, broker, consume) followed by a gRPC
hop (a server stream to each client). The Kafka floor (bench.harness.kafka_floor) covers
the first hop only. This floor is both, built from the same libraries mdfeed uses (aiokafka,
grpc.aio on uvloop) and nothing of mdfeed's: a relay process consumes the topic and writes
what each fetch brought to every stream as one message, the way any relay would batch; the
measuring process produces records stamped with their send time and reads the streams,
timing every record of the first stream and counting the others (as the harness's recording
client does). Its latency is the least an ingest -> client path through Kafka and gRPC can
have on this machine at this rate, with this many streams.

Run as ``python -P -m bench.harness.relay_floor --topic T --rate R --seconds S --streams N``;
it prints one JSON line like the Kafka floor: the produce-to-client latency histogram and
the records sent and received on the timed stream. The relay is a process of its own
(``relay`` as the first argument), started and stopped by the measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from bench.harness.children import answer_once, cpu_seconds
from bench.harness.kafka_floor import RECORD_BYTES, STAMP, send_paced
from bench.harness.stats import clamped, latency_histogram
from mdfeed.cli.support import run_async
from mdfeed.stack.scratch import free_port

__all__ = ["main", "measure"]

_METHOD = "/mdfeed.bench.Relay/Stream"
_HOST = "127.0.0.1"


def _identity(data: bytes) -> bytes:
    return data


async def relay(bootstrap: str, topic: str, port: int) -> None:
    """Consume ``topic`` from its end and write each fetch to every open stream."""
    import grpc
    from aiokafka import AIOKafkaConsumer
    from grpc import aio

    streams: set[asyncio.Queue[bytes]] = set()

    async def stream(_request: bytes, _context: Any) -> AsyncIterator[bytes]:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        streams.add(queue)
        try:
            yield b""  # the stream is open: the reader starts sending after every one is
            while True:
                parts = [await queue.get()]
                while not queue.empty():
                    parts.append(queue.get_nowait())
                yield b"".join(parts)
        finally:
            streams.discard(queue)

    server = aio.server()
    handler = grpc.method_handlers_generic_handler(
        "mdfeed.bench.Relay",
        {
            "Stream": grpc.unary_stream_rpc_method_handler(
                stream, request_deserializer=_identity, response_serializer=_identity
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"{_HOST}:{port}")
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="latest", fetch_max_wait_ms=100
    )
    await consumer.start()
    await server.start()
    try:
        async with asyncio.timeout(30):
            while not consumer.assignment():
                await consumer.getmany(timeout_ms=100)
        sys.stdout.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
        sys.stdout.flush()
        while True:
            batches = await consumer.getmany(timeout_ms=100)
            data = b"".join(r.value for records in batches.values() for r in records if r.value)
            if data:
                for queue in streams:
                    queue.put_nowait(data)
    finally:
        await server.stop(0)
        await consumer.stop()


class _Readers:
    """The measuring side's streams: times every record of the first, counts the others."""

    def __init__(self, streams: int) -> None:
        self.hist = latency_histogram()
        self.received = [0] * streams
        self.opened = [asyncio.Event() for _ in range(streams)]
        #: Records sent before this (ns) warm the clients up and are not timed.
        self.measure_from_ns = 2**62

    async def read(self, call: Any, index: int) -> None:
        async for message in call(b""):
            if not message:
                self.opened[index].set()
                continue
            count = len(message) // RECORD_BYTES
            self.received[index] += count
            if index:
                continue
            now = time.time_ns()
            for offset in range(0, count * RECORD_BYTES, RECORD_BYTES):
                sent_ns = STAMP.unpack_from(message, offset)[0]
                if sent_ns >= self.measure_from_ns:
                    self.hist.observe(clamped(now - sent_ns))


async def _start_relay(bootstrap: str, topic: str, port: int) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-P",
        "-m",
        "bench.harness.relay_floor",
        "relay",
        "--bootstrap",
        bootstrap,
        "--topic",
        topic,
        "--port",
        str(port),
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    async with asyncio.timeout(60):
        line = await process.stdout.readline()
    if not line:
        raise RuntimeError(f"the relay exited ({await process.wait()}) before it was ready")
    return process


async def measure(
    bootstrap: str,
    topic: str,
    rate_per_s: int,
    seconds: float,
    *,
    streams: int = 8,
    warmup_ns: int = 1_000_000_000,
) -> dict[str, object]:
    from aiokafka import AIOKafkaProducer
    from grpc import aio

    port = free_port()
    relay_process = await _start_relay(bootstrap, topic, port)
    readers = _Readers(streams)
    channel = aio.insecure_channel(f"{_HOST}:{port}")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks=1)
    call = channel.unary_stream(
        _METHOD, request_serializer=_identity, response_deserializer=_identity
    )
    tasks = [asyncio.create_task(readers.read(call, i)) for i in range(streams)]
    try:
        async with asyncio.timeout(30):
            for event in readers.opened:
                await event.wait()
        await producer.start()
        readers.measure_from_ns = time.time_ns() + warmup_ns
        loop = asyncio.get_running_loop()
        start = loop.time()
        relay_cpu_from = cpu_seconds(relay_process.pid)
        sent = await send_paced(producer, topic, rate_per_s, seconds)
        relay_cores = (cpu_seconds(relay_process.pid) - relay_cpu_from) / (loop.time() - start)
        await producer.flush()
        deadline = loop.time() + 5
        while min(readers.received) < sent and loop.time() < deadline:  # noqa: ASYNC110 - a plain counter
            await asyncio.sleep(0.05)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await channel.close(None)
        await producer.stop()
        if relay_process.returncode is None:
            relay_process.terminate()
        await relay_process.wait()
    if min(readers.received) < sent:  # a relay that lost records is no floor
        raise RuntimeError(f"the streams got {readers.received} of {sent} records each")
    return {
        "sent": sent,
        "received": readers.received[0],
        "streams": streams,
        # The relay process's CPU seconds per second while records were sent: what the
        # bare consume-and-relay costs at this rate (beside the fanout's own figure).
        "relay_cores": round(relay_cores, 3),
        "histogram": readers.hist.to_json(),
    }


def main(argv: list[str] | None = None) -> None:
    args_list = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topic", required=True)
    if args_list[:1] == ["relay"]:
        parser.add_argument("--port", type=int, required=True)
        args = parser.parse_args(args_list[1:])
        with contextlib.suppress(KeyboardInterrupt):
            run_async(relay(args.bootstrap, args.topic, args.port))
        return
    parser.add_argument("--rate", type=int, required=True, help="records per second")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--streams", type=int, default=8, help="gRPC streams (default: 8)")
    args = parser.parse_args(args_list)
    answer_once(
        lambda: run_async(
            measure(args.bootstrap, args.topic, args.rate, args.seconds, streams=args.streams)
        )
    )


if __name__ == "__main__":
    main()
