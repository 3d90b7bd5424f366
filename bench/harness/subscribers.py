"""The subscriber processes of `mdfeed bench` and the fanout benchmarks: gRPC streams,
MQTT clients, raw TCP receivers.

Run as ``python -P -m bench.harness.subscribers grpc|mqtt|raw --port P ...``, each in a
process of its own so the clients do not share the measured server's core, and driven as
bench.harness.children describes (one JSON line per command and per answer):

* ``grpc``: ``--count`` Subscribe streams of ``--symbols`` opened at start (`mdfeed
  bench`), and more on request: ``{"cmd": "open", "kind": "subscribe"|"connect", "n",
  "symbols"}`` (Connect streams without symbols stay idle until ``{"cmd": "subscribe",
  "symbols"}``). One channel (one TCP connection) per stream, as separate client machines
  have.
* ``mqtt``: ``--count`` paho clients subscribed to ``PREFIX/md/#``, all read from one
  thread (a thread each would fight over the GIL).
* ``raw``: ``{"cmd": "open", "n"}`` loopback TCP connections to the raw server
  (bench.harness.servers), counting the bytes received.

The process announces itself once every client it opened at start has its first frame
(gRPC: the subscribe snapshot) or subscription acknowledgement (MQTT). Then:

* ``{"cmd": "sample"}``: ``{"ticks": <received so far>, "window_max_ns": <largest
  venue-to-client latency since the last sample, or null>, "errors": [...]}``;
* ``{"cmd": "report"}``: every counter (ticks, frames, snapshots, gaps, ...) and the
  receipts per 50 ms of wall time (``buckets``, see bench.harness.stats.window_rate);
* ``{"cmd": "histograms"}``: the per-hop latency histograms (JSON) since the last call
  (then cleared), keyed by hop name;
* ``{"cmd": "window", "from_ns", "to_ns"}``: time only the frames received in that window.

Every client counts what it receives. Hop latencies are taken from every tick of the
recording clients only (``--record`` of them, default 1, ``all`` for every one; ``--hops``
picks the hops): timing every tick of every stream would make the clients, not mdfeed,
the bottleneck on two cores. With ``--parse-every K`` a gRPC client decodes one message in
K (100 Python clients cannot decode 5M ticks/s on two cores; the server's own counts give
the deliveries then).
"""

from __future__ import annotations

import argparse
import asyncio
import operator
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from bench.harness.children import Handler, Json, announce, say, serve_commands
from bench.harness.stats import BUCKET_NS, HOPS, latency_histogram
from mdfeed.kernel.histogram import Histogram
from proto import mdfeed_pb2 as pb

__all__ = ["HopRecorder", "main"]

SERVICE = "mdfeed.v1.MarketData"

#: A tick's stamps in the order of the pipeline, named as in ``HOPS``; ``client`` is the
#: receive time.
_STAMPS = ("venue", "ingest", "bus", "fanout", "client")


class HopRecorder:
    """Per-hop histograms of the ticks the recording clients received, and the window's
    worst venue-to-client latency (when the venue hop is among ``hops``)."""

    def __init__(self, hops: Sequence[tuple[str, str, str]] = HOPS) -> None:
        self.names = tuple(name for name, _, _ in hops)
        self.hops = {name: latency_histogram() for name in self.names}
        self.window_max_ns: int | None = None
        #: Only frames received in [from, to) wall-clock ns are timed, when set.
        self.window: tuple[int, int] | None = None
        self.lock = threading.Lock()  # MQTT records on its reader thread, reads on the loop
        # The tick stamps the hops need, read in one call per tick; the client's is last.
        fields = [s for s in _STAMPS[:-1] if any(s in (a, b) for _, a, b in hops)]
        where = {s: i for i, s in enumerate([*fields, "client"])}
        self._plan = [(name, where[a], where[b]) for name, a, b in hops]
        self._venue = where.get("venue")
        # attrgetter of one name returns the value, of several a tuple.
        getter: Callable[[pb.Tick], Any] = operator.attrgetter(*(f"{s}_time_ns" for s in fields))
        self._stamps: Callable[[pb.Tick], tuple[int, ...]] = (
            getter if len(fields) > 1 else lambda tick: (getter(tick),)
        )
        #: One hop from a tick's stamp to the client (the benchmarks' ingest -> client):
        #: that stamp's getter, read straight into the histogram.
        self._single: Callable[[pb.Tick], int] | None = (
            getter if len(hops) == 1 and hops[0][2] == "client" and self._venue is None else None
        )

    def record(self, ticks: Iterable[pb.Tick], client_ns: int) -> None:
        """Time every hop of ``ticks``, all received at ``client_ns`` (one frame)."""
        window = self.window
        if window is not None and not window[0] <= client_ns < window[1]:
            return
        with self.lock:
            get = self._single
            if get is not None:
                observe = self.hops[self.names[0]].observe
                for tick in ticks:
                    start = get(tick)
                    if start:  # a stamp the pipeline did not set is no zero-length hop
                        observe((client_ns - start) * 1.0 if client_ns > start else 0.0)
                return
            plan = [(self.hops[name].observe, a, b) for name, a, b in self._plan]
            stamps_of, venue = self._stamps, self._venue
            worst = self.window_max_ns
            for tick in ticks:
                stamps = (*stamps_of(tick), client_ns)
                for observe, a, b in plan:
                    start, end = stamps[a], stamps[b]
                    if start and end:  # as stats.clamped, inline: once per tick and hop
                        observe((end - start) * 1.0 if end > start else 0.0)
                if venue is not None and stamps[venue]:
                    e2e = client_ns - stamps[venue]
                    if worst is None or e2e > worst:
                        worst = e2e
            self.window_max_ns = worst

    def take_window_max(self) -> int | None:
        with self.lock:
            value, self.window_max_ns = self.window_max_ns, None
        return value

    def take_histograms(self) -> dict[str, Histogram]:
        with self.lock:
            taken, self.hops = self.hops, {name: latency_histogram() for name in self.names}
        return taken


class _Receipts:
    """What the clients of one process received, counted as it arrives."""

    def __init__(self, parse_every: int = 1) -> None:
        self.ticks = 0
        self.frames = 0
        self.snapshots = 0
        self.gaps = 0
        self.conflated_frames = 0
        self.others = 0
        self.ended = 0
        self.messages = 0
        self.parse_every = parse_every
        #: Ticks (MQTT: messages; raw: bytes) per BUCKET_NS of wall time.
        self.buckets: dict[int, int] = {}
        self.errors: list[str] = []
        # One thread writes these (the event loop, or MQTT's reader thread); a report
        # reads them between two of its updates (the GIL), so they need no lock.

    def grpc_frame(self, raw: bytes, recorder: HopRecorder | None) -> None:
        """Count one gRPC message; time its ticks on ``recorder``."""
        now = time.time_ns()
        self.messages += 1
        if self.parse_every > 1 and self.messages % self.parse_every:
            return  # counted by the server; only every parse_every-th is decoded
        frame = pb.ServerFrame.FromString(raw)
        body = frame.WhichOneof("body")
        self.frames += 1
        if body == "gap":
            self.gaps += 1
            return
        if body != "ticks":
            self.others += 1
            return
        batch = frame.ticks
        if batch.snapshot:
            self.snapshots += 1
            return
        ticks = batch.ticks
        bucket = now // BUCKET_NS
        self.buckets[bucket] = self.buckets.get(bucket, 0) + len(ticks)
        self.ticks += len(ticks)
        self.conflated_frames += batch.conflated
        if recorder is not None:
            recorder.record(ticks, now)

    def report(self) -> Json:
        return {
            "ticks": self.ticks,
            "frames": self.frames,
            "snapshots": self.snapshots,
            "gaps": self.gaps,
            "conflated_frames": self.conflated_frames,
            "others": self.others,
            "ended": self.ended,
            "errors": self.errors[:5],
            "buckets": dict(self.buckets),
            "cpu_s": time.process_time(),
        }


def _identity(data: bytes) -> bytes:
    return data


Commands = dict[str, Handler]


async def _grpc_clients(  # noqa: PLR0915 - the stream handlers share their state
    args: argparse.Namespace, receipts: _Receipts, recorder: HopRecorder
) -> tuple[Commands, Callable[[], Any]]:
    import grpc
    from grpc import aio

    target = f"127.0.0.1:{args.port}"
    channels: list[aio.Channel] = []
    calls: list[Any] = []
    tasks: list[asyncio.Task[None]] = []
    idle_connects: list[tuple[Any, asyncio.Future[None]]] = []

    def channel() -> aio.Channel:
        # A local subchannel pool: a TCP connection per channel, as separate clients have.
        made = aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        channels.append(made)
        return made

    streams = [0]

    def recorder_of_next() -> HopRecorder | None:
        index, streams[0] = streams[0], streams[0] + 1
        return recorder if index < args.record else None

    async def read(call: Any, first: asyncio.Future[None], mine: HopRecorder | None) -> None:
        frame = receipts.grpc_frame
        try:
            async for raw in call:
                frame(raw, mine)
                if not first.done():
                    first.set_result(None)
        except asyncio.CancelledError:
            raise
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                receipts.errors.append(f"{exc.code().name}: {exc.details()}")
        finally:
            receipts.ended += 1
            if not first.done():
                first.set_exception(RuntimeError("a gRPC stream ended before its first frame"))

    async def open_one(kind: str, names: list[str]) -> None:
        loop = asyncio.get_running_loop()
        first: asyncio.Future[None] = loop.create_future()
        call: Any
        if kind == "subscribe":
            subscribe = channel().unary_stream(f"/{SERVICE}/Subscribe", _identity, _identity)
            call = subscribe(pb.SubscribeRequest(symbols=names).SerializeToString())
        else:
            connect = channel().stream_stream(f"/{SERVICE}/Connect", _identity, _identity)
            call = connect(None)  # no request iterator: frames are written on the call
            if not names:
                idle_connects.append((call, first))
                calls.append(call)
                return
            await call.write(
                pb.ClientFrame(subscribe=pb.SubscribeRequest(symbols=names)).SerializeToString()
            )
        calls.append(call)
        tasks.append(asyncio.create_task(read(call, first, recorder_of_next())))
        await first

    async def open_streams(command: Json) -> Json:
        kind = str(command["kind"])
        count = int(command["n"])
        names = list(command.get("symbols", []))
        started = time.perf_counter()
        for low in range(0, count, 50):  # in waves: a thousand handshakes at once time out
            await asyncio.gather(*(open_one(kind, names) for _ in range(low, min(count, low + 50))))
        return {"opened": count, "seconds": time.perf_counter() - started}

    async def subscribe_idle(command: Json) -> Json:
        names = list(command["symbols"])
        pending, idle_connects[:] = list(idle_connects), []

        async def one(call: Any, first: asyncio.Future[None]) -> None:
            await call.write(
                pb.ClientFrame(subscribe=pb.SubscribeRequest(symbols=names)).SerializeToString()
            )
            tasks.append(asyncio.create_task(read(call, first, recorder_of_next())))
            await first

        for low in range(0, len(pending), 100):
            await asyncio.gather(*(one(c, f) for c, f in pending[low : low + 100]))
        return {"subscribed": len(pending)}

    if args.count:
        async with asyncio.timeout(30):
            await open_streams({"kind": "subscribe", "n": args.count, "symbols": args.symbols})

    async def close() -> None:
        for call in calls:
            call.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for made in channels:
            await made.close(None)

    return {"open": open_streams, "subscribe": subscribe_idle}, close


async def _mqtt_clients(  # noqa: PLR0915 - one reader thread for every client
    args: argparse.Namespace, receipts: _Receipts, recorder: HopRecorder
) -> tuple[Commands, Callable[[], Any]]:
    import selectors

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    topic = f"{args.topic_prefix}/md/#" if args.topic_prefix else "md/#"
    acked = [0]
    stopping = threading.Event()
    selector = selectors.DefaultSelector()
    clients: list[mqtt.Client] = []

    def make(index: int) -> mqtt.Client:
        mine = recorder if index < args.record else None
        buckets = receipts.buckets

        def on_connect(_c: mqtt.Client, _u: object, _f: object, rc: Any, _p: object) -> None:
            if rc.is_failure:
                receipts.errors.append(f"MQTT connect refused: {rc}")

        def on_subscribe(*_args: object) -> None:
            acked[0] += 1

        def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
            now = time.time_ns()
            if message.retain:  # a value stored before this client subscribed
                return
            receipts.ticks += 1
            bucket = now // BUCKET_NS
            buckets[bucket] = buckets.get(bucket, 0) + 1
            if mine is not None:
                try:
                    tick = pb.Tick.FromString(bytes(message.payload))
                except Exception as exc:  # count it; the reader thread goes on
                    receipts.errors.append(f"undecodable MQTT payload: {exc}")
                    return
                mine.record((tick,), now)

        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"{args.client_id}-{os.getpid()}-{index}"
        )
        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        client.connect(args.host, args.port)
        client.subscribe(topic, qos=0)
        sock = client.socket()
        assert sock is not None
        selector.register(sock, selectors.EVENT_READ, client)
        return client

    for index in range(args.count):
        clients.append(make(index))

    def read_all() -> None:
        last_misc = 0.0
        while not stopping.is_set():
            for key, _ in selector.select(timeout=0.05):
                key.data.loop_read(max_packets=1000)
            now = time.monotonic()
            if now - last_misc > 0.5:
                last_misc = now
                for client in clients:
                    client.loop_write()
                    client.loop_misc()
            if acked[0] < len(clients):  # the SUBSCRIBEs still going out
                for client in clients:
                    client.loop_write()

    reader = threading.Thread(target=read_all, name="mqtt-readers", daemon=True)
    reader.start()
    deadline = time.monotonic() + 30
    while acked[0] < len(clients):  # a counter of the reader thread, no event
        if time.monotonic() > deadline or not reader.is_alive():
            stopping.set()
            raise RuntimeError(f"MQTT clients did not subscribe to {topic} within 30 s")
        await asyncio.sleep(0.05)

    async def close() -> None:
        stopping.set()
        await asyncio.to_thread(reader.join, 5)
        for client in clients:
            client.disconnect()

    return {}, close


class _ByteCounter(asyncio.Protocol):
    def __init__(self, buckets: dict[int, int]) -> None:
        self.buckets = buckets

    def data_received(self, data: bytes) -> None:
        bucket = time.time_ns() // BUCKET_NS
        self.buckets[bucket] = self.buckets.get(bucket, 0) + len(data)


async def _raw_clients(
    args: argparse.Namespace, receipts: _Receipts, recorder: HopRecorder
) -> tuple[Commands, Callable[[], Any]]:
    loop = asyncio.get_running_loop()
    transports: list[asyncio.BaseTransport] = []

    async def open_connections(command: Json) -> Json:
        count = int(command["n"])
        for low in range(0, count, 100):
            made = await asyncio.gather(
                *(
                    loop.create_connection(
                        lambda: _ByteCounter(receipts.buckets), "127.0.0.1", args.port
                    )
                    for _ in range(low, min(count, low + 100))
                )
            )
            transports.extend(t for t, _ in made)
        return {"opened": count}

    async def close() -> None:
        for transport in transports:
            transport.close()

    return {"open": open_connections}, close


async def serve(args: argparse.Namespace) -> None:
    receipts = _Receipts(parse_every=args.parse_every)
    hops = [hop for hop in HOPS if hop[0] in args.hops] if args.hops else HOPS
    if args.hops and len(hops) != len(args.hops):
        say({"error": f"unknown hops in {args.hops}: the hops are {[h[0] for h in HOPS]}"})
        raise SystemExit(2)
    recorder = HopRecorder(hops)
    opener = {"grpc": _grpc_clients, "mqtt": _mqtt_clients, "raw": _raw_clients}[args.kind]
    try:
        commands, close = await opener(args, receipts, recorder)
    except Exception as exc:
        say({"error": f"{type(exc).__name__}: {exc}"})
        raise SystemExit(1) from exc

    async def sample(command: Json) -> Json:
        return {
            "ticks": receipts.ticks,
            "window_max_ns": recorder.take_window_max(),
            "errors": receipts.errors[-5:],
        }

    async def report(command: Json) -> Json:
        return receipts.report()

    async def histograms(command: Json) -> Json:
        return {name: hist.to_json() for name, hist in recorder.take_histograms().items()}

    async def window(command: Json) -> Json:
        recorder.window = (int(command["from_ns"]), int(command["to_ns"]))
        return {"ok": True}

    announce(clients=args.count)
    try:
        await serve_commands(
            {
                "sample": sample,
                "report": report,
                "histograms": histograms,
                "window": window,
                **commands,
            }
        )
    finally:
        await close()


def _record(text: str) -> int:
    return sys.maxsize if text == "all" else int(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("kind", choices=["grpc", "mqtt", "raw"])
    parser.add_argument("--port", type=int, required=True, help="gRPC, MQTT or raw port")
    parser.add_argument("--host", default="127.0.0.1", help="MQTT: the broker's host")
    parser.add_argument("--count", type=int, default=0, help="streams or clients at start")
    parser.add_argument("--record", type=_record, default=1, help="clients that time ticks")
    parser.add_argument("--hops", type=lambda t: t.split(","), default=None, help="hops to time")
    parser.add_argument("--parse-every", type=int, default=1, help="gRPC: decode 1 in K")
    parser.add_argument(
        "--symbols", type=lambda t: t.split(","), default=[], help="gRPC: comma-separated"
    )
    parser.add_argument("--topic-prefix", default="", help="MQTT: the fanout's topic prefix")
    parser.add_argument("--client-id", default="bench", help="MQTT: client id prefix")
    args = parser.parse_args(argv)
    import uvloop

    uvloop.run(serve(args))


if __name__ == "__main__":
    main()
