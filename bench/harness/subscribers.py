"""The subscriber processes of `mdfeed bench`: N gRPC streams or M MQTT clients.

Run by the harness as ``python -m bench.harness.subscribers grpc|mqtt ...``, each in a
process of its own so the clients do not share the fanout's core. The process answers
commands read from stdin, one JSON object per line, with one JSON line each on stdout:

* ``{"cmd": "sample"}``: ``{"ticks": <received so far>, "window_max_ns": <largest
  venue-to-client latency since the last sample, or null>, "errors": [...]}``;
* ``{"cmd": "histograms"}``: the per-hop ``LatencyHistogram`` JSON since the last call
  (then cleared), keyed by hop name;
* ``{"cmd": "stop"}``: closes the clients, answers, and exits.

The first line it writes is ``{"ready": true, ...}`` once every client has its first
frame (gRPC: the subscribe snapshot) or subscription acknowledgement (MQTT).

Every client decodes what it receives and counts the ticks. Hop latencies are taken from
every tick of the recording clients only (``--record`` of them, default 1): timing every
tick of every stream would make the clients, not mdfeed, the bottleneck on two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from bench.harness.stats import HOPS, LatencyHistogram
from mdfeed.cli.support import run_async
from proto import mdfeed_pb2 as pb

__all__ = ["HopRecorder", "main"]

SERVICE = "mdfeed.v1.MarketData"


#: The order of a tick's stamps in ``HopRecorder.record``, named as in ``HOPS``.
_STAMPS = ("venue", "ingest", "bus", "fanout", "client")


class HopRecorder:
    """Per-hop histograms of the ticks one client received, and the window's worst case."""

    def __init__(self) -> None:
        self.hops = {name: LatencyHistogram() for name, _, _ in HOPS}
        self.window_max_ns: int | None = None
        self.lock = threading.Lock()  # MQTT records on paho's thread, reads on the loop

    def record(self, ticks: Iterable[pb.Tick], client_ns: int) -> None:
        """Time every hop of ``ticks``, all received at ``client_ns`` (one frame)."""
        with self.lock:
            hops = [
                (self.hops[name], _STAMPS.index(start), _STAMPS.index(end))
                for name, start, end in HOPS
            ]
            worst = self.window_max_ns
            for tick in ticks:
                stamps = (
                    tick.venue_time_ns,
                    tick.ingest_time_ns,
                    tick.bus_time_ns,
                    tick.fanout_time_ns,
                    client_ns,
                )
                for hist, start, end in hops:
                    a, b = stamps[start], stamps[end]
                    if a and b:  # a stamp the pipeline did not set is not a zero-length hop
                        hist.add(b - a)
                if stamps[0]:
                    e2e = client_ns - stamps[0]
                    if worst is None or e2e > worst:
                        worst = e2e
            self.window_max_ns = worst

    def take_window_max(self) -> int | None:
        with self.lock:
            value, self.window_max_ns = self.window_max_ns, None
        return value

    def take_histograms(self) -> dict[str, LatencyHistogram]:
        with self.lock:
            taken, self.hops = self.hops, {name: LatencyHistogram() for name, _, _ in HOPS}
        return taken


class _Counts:
    def __init__(self) -> None:
        self.ticks = 0
        self.errors: list[str] = []
        self.lock = threading.Lock()


def _identity(data: bytes) -> bytes:
    return data


async def _grpc_clients(
    args: argparse.Namespace, counts: _Counts, recorders: list[HopRecorder]
) -> Callable[[], Any]:
    import grpc
    from grpc import aio

    target = f"127.0.0.1:{args.port}"
    request = pb.SubscribeRequest(symbols=args.symbols.split(",")).SerializeToString()
    channels: list[aio.Channel] = []
    tasks: list[asyncio.Task[None]] = []
    loop = asyncio.get_running_loop()
    firsts: list[asyncio.Future[None]] = []

    async def read(call: Any, recorder: HopRecorder | None, first: asyncio.Future[None]) -> None:
        from_string = pb.ServerFrame.FromString
        try:
            async for raw in call:
                now = time.time_ns()
                frame = from_string(raw)
                if not first.done():
                    first.set_result(None)
                if frame.WhichOneof("body") != "ticks" or frame.ticks.snapshot:
                    continue
                ticks = frame.ticks.ticks
                counts.ticks += len(ticks)
                if recorder is not None:
                    recorder.record(ticks, now)
        except asyncio.CancelledError:
            raise
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                counts.errors.append(f"{exc.code().name}: {exc.details()}")
        finally:
            if not first.done():
                first.set_exception(RuntimeError("a gRPC stream ended before its first frame"))

    for index in range(args.count):
        # One channel (one TCP connection) per stream, as separate client machines have.
        channel = aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        channels.append(channel)
        call = channel.unary_stream(f"/{SERVICE}/Subscribe", _identity, _identity)(request)
        recorder = recorders[index] if index < len(recorders) else None
        first: asyncio.Future[None] = loop.create_future()
        firsts.append(first)
        tasks.append(asyncio.create_task(read(call, recorder, first)))
    async with asyncio.timeout(30):
        await asyncio.gather(*firsts)

    async def close() -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for channel in channels:
            await channel.close(None)

    return close


async def _mqtt_clients(
    args: argparse.Namespace, counts: _Counts, recorders: list[HopRecorder]
) -> Callable[[], Any]:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    clients: list[mqtt.Client] = []
    subscribed = threading.Semaphore(0)
    topic = f"{args.topic_prefix}/md/#" if args.topic_prefix else "md/#"

    def make(index: int) -> mqtt.Client:
        recorder = recorders[index] if index < len(recorders) else None
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{args.run_id}-{index}")

        def on_connect(c: mqtt.Client, _u: object, _f: object, rc: Any, _p: object) -> None:
            if rc.is_failure:
                counts.errors.append(f"MQTT connect refused: {rc}")
                return
            c.subscribe(topic, qos=0)

        def on_subscribe(*_a: object) -> None:
            subscribed.release()

        def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
            now = time.time_ns()
            if message.retain:  # a value stored before this client subscribed
                return
            with counts.lock:
                counts.ticks += 1
            if recorder is not None:
                try:
                    tick = pb.Tick.FromString(bytes(message.payload))
                except Exception as exc:  # count, never kill paho's thread
                    counts.errors.append(f"undecodable MQTT payload: {exc}")
                    return
                recorder.record((tick,), now)

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        client.connect("127.0.0.1", args.port)
        client.loop_start()
        return client

    for index in range(args.count):
        clients.append(make(index))
    deadline = time.monotonic() + 30
    for _ in range(args.count):
        if not await asyncio.to_thread(
            subscribed.acquire, True, max(0.1, deadline - time.monotonic())
        ):
            raise RuntimeError(f"MQTT clients did not subscribe to {topic} within 30 s")

    async def close() -> None:
        for client in clients:
            client.disconnect()
            client.loop_stop()

    return close


def _commands(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[dict[str, Any]]) -> None:
    for line in sys.stdin:
        if line.strip():
            loop.call_soon_threadsafe(queue.put_nowait, json.loads(line))
    loop.call_soon_threadsafe(queue.put_nowait, {"cmd": "stop"})


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def serve(args: argparse.Namespace) -> None:
    counts = _Counts()
    recorders = [HopRecorder() for _ in range(min(args.record, args.count))]
    opener = _grpc_clients if args.kind == "grpc" else _mqtt_clients
    close = await opener(args, counts, recorders)
    _say({"ready": True, "clients": args.count})
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    threading.Thread(target=_commands, args=(loop, queue), daemon=True).start()
    try:
        while True:
            command = await queue.get()
            cmd = command.get("cmd")
            if cmd == "sample":
                worst = [r.take_window_max() for r in recorders]
                seen = [w for w in worst if w is not None]
                _say(
                    {
                        "ticks": counts.ticks,
                        "window_max_ns": max(seen) if seen else None,
                        "errors": counts.errors[-5:],
                    }
                )
            elif cmd == "histograms":
                merged = {name: LatencyHistogram() for name, _, _ in HOPS}
                for recorder in recorders:
                    for name, hist in recorder.take_histograms().items():
                        merged[name].merge(hist)
                _say({name: hist.to_json() for name, hist in merged.items()})
            elif cmd == "stop":
                _say({"stopped": True, "ticks": counts.ticks})
                return
            else:
                _say({"error": f"unknown command {cmd!r}"})
    finally:
        await close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("kind", choices=["grpc", "mqtt"])
    parser.add_argument("--port", type=int, required=True, help="gRPC or MQTT port")
    parser.add_argument("--count", type=int, default=1, help="streams or MQTT clients")
    parser.add_argument("--record", type=int, default=1, help="clients that time every tick")
    parser.add_argument("--symbols", default="", help="gRPC: comma-separated symbols")
    parser.add_argument("--topic-prefix", default="", help="MQTT: the fanout's topic prefix")
    parser.add_argument("--run-id", default="0", help="MQTT: makes client ids unique")
    args = parser.parse_args(argv)
    try:
        run_async(serve(args))
    except Exception as exc:
        _say({"ready": False, "error": f"{type(exc).__name__}: {exc}"})
        raise SystemExit(1) from exc


if __name__ == "__main__":
    main()
