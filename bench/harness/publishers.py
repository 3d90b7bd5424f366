"""The publishers of the fanout benchmarks (bench/test_grpc_fanout_bench.py): a paced load
in a process of its own (see bench.harness.children), so the measured server does not pay
for making it.

Run as ``python -P -m bench.harness.publishers ROLE ...``; each announces itself once
connected, and the command ``go`` (``rate``, ``start_ns``, ``seconds``) publishes at
``rate`` from the wall-clock time ``start_ns`` for ``seconds``, then answers with what it
achieved:

* ``kafka``: an mdfeed bus producer on the local stack's Kafka, stamping
  ``ingest_time_ns`` at send (the latency benchmark's input);
* ``mqtt``: paho-mqtt publishing the ticks itself through Mosquitto (the peer);
* ``mqtt-bridge``: ``fanout.transports.mqtt_bridge.MqttBridge`` with its per-symbol cap
  off; its retained quotes are cleared when it quits.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import time
from collections.abc import Sequence
from typing import Any

from bench.harness.children import Json, announce, say, serve_commands
from bench.harness.ticks import encoded_tick, symbols
from proto import mdfeed_pb2 as pb

__all__ = ["main"]


async def run_kafka(args: argparse.Namespace) -> None:
    from mdfeed.kernel.bus import open_bus
    from mdfeed.kernel.config import load_config

    config = dataclasses.replace(load_config("local-stack").bus, tick_topic=args.topic)
    names = symbols(args.symbols)
    async with open_bus(config) as bus, bus.producer() as producer:
        await producer.start()
        # Connected and the topic's partitions known before the clock starts.
        producer.send(args.topic, b"warmup", b"")
        if not await producer.flush(30):
            say({"error": f"kafka did not acknowledge a record: {producer.stats}"})
            return

        async def go(command: Json) -> Json:
            rate = float(command["rate"])
            start_ns = int(command["start_ns"])
            end_ns = start_ns + int(float(command["seconds"]) * 1e9)
            seqs = dict.fromkeys(names, 1)
            count = len(names)
            cap = max(1, int(rate * 0.01))
            send = producer.send
            topic = args.topic
            keys = {name: name.encode() for name in names}
            make = pb.Tick
            sent = 0
            await asyncio.sleep(max(0.0, (start_ns - time.time_ns()) / 1e9))
            cpu0 = time.process_time()
            while (now := time.time_ns()) < end_ns:
                due = int((now - start_ns) * rate / 1e9)
                for _ in range(min(due - sent, cap)):
                    symbol = names[sent % count]
                    seq = seqs[symbol]
                    seqs[symbol] = seq + 1
                    tick = make(
                        symbol=symbol,
                        seq=seq,
                        kind=pb.TICK_KIND_QUOTE,
                        bid_px_e8=1_895_000_000 + seq % 977,
                        bid_size_e8=12_000_000_000_000,
                        ask_px_e8=1_896_000_000 + seq % 977,
                        ask_size_e8=8_000_000_000_000,
                        venue_time_ns=time.time_ns(),
                        ingest_time_ns=time.time_ns(),
                        fix_msg_seq_num=sent,
                    )
                    send(topic, keys[symbol], tick.SerializeToString())
                    sent += 1
                await asyncio.sleep(0.001)
            elapsed = (time.time_ns() - start_ns) / 1e9
            cpu = time.process_time() - cpu0
            flushed = await producer.flush(30)
            stats = producer.stats
            return {
                "sent": sent,
                "sent_per_s": sent / elapsed,
                "acked": stats.acked - 1,
                "dropped": stats.dropped,
                "flushed": flushed,
                "cpu_cores": cpu / elapsed,
                "last_seqs": {name: seq - 1 for name, seq in seqs.items()},
            }

        announce()
        await serve_commands({"go": go})


def _mqtt_client(client_id: str) -> Any:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    return mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)


def _paho_paced(client: Any, topics: list[str], names: list[str], command: Json) -> Json:
    """Publish with paho until the command's end, sleeping between steps (blocking)."""
    start_ns = int(command["start_ns"])
    end_ns = start_ns + int(float(command["seconds"]) * 1e9)
    time.sleep(max(0.0, (start_ns - time.time_ns()) / 1e9))
    rate = float(command["rate"])
    count = len(names)
    published = 0
    cpu0 = time.process_time()
    publish = client.publish
    while (now := time.time_ns()) < end_ns:
        due = int((now - start_ns) * rate / 1e9)
        for _ in range(min(due - published, max(1, int(rate * 0.01)))):
            i = published % count
            publish(topics[i], encoded_tick(names[i], published // count + 1), qos=0)
            published += 1
        time.sleep(0.001)
    elapsed = (time.time_ns() - start_ns) / 1e9
    cpu = time.process_time() - cpu0
    return {"published_per_s": published / elapsed, "cpu_cores": cpu / elapsed}


async def run_mqtt(args: argparse.Namespace) -> None:
    names = symbols(args.symbols)
    topics = [f"{args.prefix}/md/{name}" for name in names]
    client = _mqtt_client(f"{args.prefix}-pub")
    client.connect(args.host, args.port)
    client.loop_start()

    async def go(command: Json) -> Json:
        # Blocks the loop on purpose: this process does nothing else while it publishes
        # (paho's own thread writes to the socket), as a plain paho publisher would.
        return _paho_paced(client, topics, names, command)

    announce()
    try:
        await serve_commands({"go": go})
    finally:
        client.disconnect()
        client.loop_stop()


async def run_mqtt_bridge(args: argparse.Namespace) -> None:
    from fanout.transports.mqtt_bridge import MqttBridge
    from mdfeed.kernel.config import MqttConfig

    config = MqttConfig(
        kind="external",
        host=args.host,
        port=args.port,
        topic_prefix=args.prefix,
        client_id=f"{args.prefix}-bridge",
        quote_max_rate_per_symbol_hz=1e9,  # the cap off: every tick may go out
    )
    names = symbols(args.symbols)
    async with MqttBridge(config) as bridge:
        async with asyncio.timeout(20):
            await bridge.wait_ready()

        async def go(command: Json) -> Json:
            rate = float(command["rate"])
            start_ns = int(command["start_ns"])
            end_ns = start_ns + int(float(command["seconds"]) * 1e9)
            publish = bridge.publish_tick
            count = len(names)
            cap = max(1, int(rate * 0.01))
            fed = 0
            await asyncio.sleep(max(0.0, (start_ns - time.time_ns()) / 1e9))
            stats0 = dataclasses.replace(bridge.stats)
            cpu0 = time.process_time()
            while (now := time.time_ns()) < end_ns:
                due = int((now - start_ns) * rate / 1e9)
                for _ in range(min(due - fed, cap)):
                    symbol = names[fed % count]
                    seq = fed // count + 1
                    publish(symbol, seq, encoded_tick(symbol, seq))
                    fed += 1
                await asyncio.sleep(0.001)
            elapsed = (time.time_ns() - start_ns) / 1e9
            cpu = time.process_time() - cpu0
            stats = bridge.stats
            return {
                "fed_per_s": fed / elapsed,
                "published_per_s": (stats.quotes_published - stats0.quotes_published) / elapsed,
                "conflated": stats.quotes_conflated - stats0.quotes_conflated,
                "quotes_in": stats.quotes_in - stats0.quotes_in,
                "cpu_cores": cpu / elapsed,
            }

        announce()
        await serve_commands({"go": go})
    _clear_retained(args, [f"{args.prefix}/md/{name}" for name in names])


def _clear_retained(args: argparse.Namespace, topics: Sequence[str]) -> None:
    """Publish empty retained payloads: the broker keeps nothing of the benchmark."""
    client = _mqtt_client(f"{args.prefix}-clear")
    client.connect(args.host, args.port)
    client.loop_start()
    try:
        for topic in topics:
            client.publish(topic, b"", qos=1, retain=True).wait_for_publish(timeout=10)
    finally:
        client.disconnect()
        client.loop_stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    roles = parser.add_subparsers(dest="role", required=True)
    kafka = roles.add_parser("kafka")
    kafka.add_argument("--topic", required=True)
    kafka.add_argument("--symbols", type=int, default=50)
    for name in ("mqtt", "mqtt-bridge"):
        mqtt_role = roles.add_parser(name)
        mqtt_role.add_argument("--host", default="127.0.0.1")
        mqtt_role.add_argument("--port", type=int, default=1883)
        mqtt_role.add_argument("--prefix", required=True)
        mqtt_role.add_argument("--symbols", type=int, default=50)
    args = parser.parse_args(argv)

    import uvloop

    roles_run = {"kafka": run_kafka, "mqtt": run_mqtt, "mqtt-bridge": run_mqtt_bridge}
    uvloop.run(roles_run[args.role](args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
