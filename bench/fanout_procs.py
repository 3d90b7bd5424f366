"""The processes of the fanout benchmarks (bench/test_grpc_fanout_bench.py), and their driver.

The box has two cores, so the measured server must not share its process (and its GIL)
with the load it serves: each part runs in a process of its own, started by the benchmark
with :class:`Child` and driven over its stdin/stdout, one JSON object per line (the child
answers every command with exactly one line; its logs go to stderr).

Roles (``python bench/fanout_procs.py ROLE ...``), all on uvloop, as ``mdfeed`` runs:

* ``server``: a ``TickFanout`` behind ``MarketDataServicer`` on a grpc.aio server. With
  ``--bus memory`` the benchmark feeds it through ``fanout.ingest`` at a paced rate
  (command ``feed``); with ``--bus kafka`` it consumes a topic of the local stack's Kafka.
* ``grpc-clients``: many grpc.aio streams (Subscribe or Connect), one channel (one TCP
  connection) each, as separate client machines would have; counts the ticks received
  per 50 ms of wall time and, on request, the latency from ``ingest_time_ns``.
* ``raw-server`` / ``raw-clients``: the practical limit: the same frame bytes written with
  ``StreamWriter.write`` to as many loopback TCP connections, receivers counting bytes.
* ``publisher``: Kafka producer paced to a fixed rate, stamping ``ingest_time_ns`` at send.
* ``mqtt-publisher`` / ``mqtt-subscribers``: paho-mqtt through the local Mosquitto.

Times shared between processes are wall-clock nanoseconds (``time.time_ns``): one clock on
one machine, and the one ``ingest_time_ns`` is stamped with.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: the project's packages are one level up
    sys.path.insert(0, str(ROOT))

from fanout.frames import encode_varint, tick_batch_frame  # noqa: E402
from mdfeed.kernel.bus import BusRecord  # noqa: E402
from proto import mdfeed_pb2 as pb  # noqa: E402

SERVICE = "mdfeed.v1.MarketData"
#: Receipt counts are kept per bucket of this many nanoseconds of wall time.
BUCKET_NS = 50_000_000

Json = dict[str, Any]


# -- shared helpers -------------------------------------------------------------------


def symbols(count: int) -> list[str]:
    return [f"SYM{i:03d}" for i in range(count)]


def _tick_tail() -> bytes:
    # Every field after seq (field 2) of a realistic quote; the same for each tick.
    return pb.Tick(
        kind=pb.TICK_KIND_QUOTE,
        bid_px_e8=1_895_000_000,
        bid_size_e8=12_000_000_000_000,
        ask_px_e8=1_896_000_000,
        ask_size_e8=8_000_000_000_000,
        venue_time_ns=1_795_357_800_125_000_000,
        ingest_time_ns=1_795_357_800_125_300_000,
        fix_msg_seq_num=40_000_000_000,
    ).SerializeToString()


_TAIL = _tick_tail()


def encoded_tick(symbol: str, seq: int) -> bytes:
    """A quote's encoding, built from bytes: symbol (field 1), seq (field 2), the rest.

    Fields in number order, as protobuf serializes them, so this equals
    ``Tick(symbol=..., seq=..., ...).SerializeToString()`` and costs far less to make.
    """
    name = symbol.encode()
    return b"\x0a" + encode_varint(len(name)) + name + b"\x10" + encode_varint(seq) + _TAIL


def tick_records(names: Sequence[str], first_seq: int, count: int) -> list[BusRecord]:
    """``count`` records round-robin over ``names``, seqs from ``first_seq`` per symbol."""
    out = []
    per = len(names)
    for i in range(count):
        symbol = names[i % per]
        out.append(BusRecord("bench", 0, i, b"", encoded_tick(symbol, first_seq + i // per), 0))
    return out


def rss_kb(pid: int) -> int:
    """Resident set size of a process, in KB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int | None) -> float:
    """User plus system CPU seconds a process has used so far (Linux /proc); NaN if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return float("nan")
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def listener_pid(port: int) -> int | None:
    """The pid of the process listening on TCP ``port`` on this machine, if visible."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    return int(entry.name)
    return None


def latency_key(latency_ns: int) -> int:
    """Histogram bin of a latency, in microseconds: 10 us bins to 10 ms, then coarser."""
    us = max(latency_ns, 0) // 1000
    if us < 10_000:
        return us // 10 * 10
    if us < 100_000:
        return us // 100 * 100
    return us // 1000 * 1000


def percentiles(histogram: dict[int, int], points: Sequence[float]) -> list[float]:
    """The given percentiles (0-100) of a ``latency_key`` histogram, in milliseconds."""
    total = sum(histogram.values())
    if not total:
        return [float("nan")] * len(points)
    items = sorted(histogram.items())
    out = []
    for point in points:
        rank = point / 100 * total
        seen = 0
        value = items[-1][0]
        for key, count in items:
            seen += count
            if seen >= rank:
                value = key
                break
        out.append(value / 1000)
    return out


def window_rate(buckets: dict[int, int], from_ns: int, to_ns: int) -> float:
    """Per-second rate of the counts in the whole buckets inside ``[from_ns, to_ns)``."""
    first = -(-from_ns // BUCKET_NS)
    last = to_ns // BUCKET_NS  # exclusive
    if last <= first:
        return 0.0
    total = sum(buckets.get(b, 0) for b in range(first, last))
    return total / ((last - first) * BUCKET_NS / 1e9)


def merge_counts(parts: Sequence[dict[str, int]]) -> dict[int, int]:
    out: dict[int, int] = {}
    for part in parts:
        for key, count in part.items():
            out[int(key)] = out.get(int(key), 0) + count
    return out


# -- the parent's side ----------------------------------------------------------------


class ChildError(Exception):
    """A benchmark process failed or did not answer; the message says which and why."""


class Child:
    """One benchmark process, driven with JSON lines over its stdin and stdout."""

    def __init__(self, role: str, *args: str) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        self.role = role
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), role, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def read(self, timeout_s: float = 60.0) -> Json:
        try:
            line = self._lines.get(timeout=timeout_s)
        except queue.Empty:
            raise ChildError(f"{self.role}: no answer within {timeout_s:g}s") from None
        if line is None:
            code = self.proc.wait(10)
            raise ChildError(f"{self.role} exited with code {code} (its stderr is above)")
        answer: Json = json.loads(line)
        if "error" in answer:
            raise ChildError(f"{self.role}: {answer['error']}")
        return answer

    def request(self, timeout_s: float = 60.0, **command: Any) -> Json:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return self.read(timeout_s)

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError, ChildError):
                self.request(timeout_s=20, cmd="quit")
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(5)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


@contextlib.contextmanager
def children(*specs: tuple[str, ...]) -> Iterator[list[Child]]:
    """Start one process per ``(role, *args)``; close them all afterwards."""
    started: list[Child] = []
    try:
        for role, *args in specs:
            started.append(Child(role, *args))
        yield started
    finally:
        for child in reversed(started):
            child.close()


# -- the child's side -----------------------------------------------------------------


def _answer(message: Json) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def _serve_commands(handlers: dict[str, Callable[[Json], Awaitable[Json]]]) -> None:
    """Answer commands from stdin until ``quit`` (or EOF)."""
    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            return
        command: Json = json.loads(line)
        name = command.get("cmd", "")
        if name == "quit":
            _answer({"ok": True})
            return
        handler = handlers.get(name)
        if handler is None:
            _answer({"error": f"unknown command {name!r}"})
            continue
        try:
            _answer(await handler(command))
        except Exception as exc:  # the parent reports it; the process stays up
            _answer({"error": f"{name}: {exc!r}"})


def _identity(data: bytes) -> bytes:
    return data


async def _poll(done: Callable[[], bool], command: Json) -> None:
    """Until ``done()`` or the command's ``wait_s`` (default 0: look once) has passed."""
    deadline = time.monotonic() + float(command.get("wait_s", 0))
    while not done() and time.monotonic() < deadline:  # noqa: ASYNC110  # counters, no event
        await asyncio.sleep(0.05)


@dataclasses.dataclass
class _LaneTotals:
    offered: int = 0
    delivered: int = 0
    conflated: int = 0
    stale: int = 0
    batches: int = 0


async def run_server(args: argparse.Namespace) -> None:  # noqa: PLR0915  # setup + handlers
    from grpc import aio

    from fanout.lane import TickLane
    from fanout.tick_fanout import TickFanout
    from fanout.transports.grpc_service import MarketDataServicer
    from mdfeed.kernel.bus import MemoryBus, open_bus
    from mdfeed.kernel.config import BusConfig, load_config

    lanes: list[TickLane] = []

    def lane_factory() -> TickLane:
        lane = TickLane(max_pending_ticks=args.max_pending_ticks)
        lanes.append(lane)
        return lane

    if args.bus == "kafka":
        bus_config = dataclasses.replace(load_config("local-stack").bus, tick_topic=args.topic)
        bus = open_bus(bus_config)
    else:
        bus = MemoryBus(BusConfig(kind="memory"))
    names = symbols(args.symbols)
    next_seq = 1

    fanout_ref: list[TickFanout] = []

    def totals() -> _LaneTotals:
        out = _LaneTotals()
        for lane in lanes:
            stats = lane.stats
            out.offered += stats.offered
            out.delivered += stats.delivered
            out.conflated += stats.conflated
            out.batches += stats.frames
        out.stale = fanout_ref[0].stale if fanout_ref else 0
        return out

    # Kafka hop: publish (ingest_time_ns) to the fanout's consume loop, every 8th tick.
    hop: dict[int, int] = {}
    hop_window = [0, 0]
    seen = 0

    def sample_hop(symbol: str, seq: int, encoded: bytes) -> None:
        nonlocal seen
        seen += 1
        if seen % 8:
            return
        now = time.time_ns()
        if hop_window[0] <= now < hop_window[1]:
            key = latency_key(now - pb.Tick.FromString(encoded).ingest_time_ns)
            hop[key] = hop.get(key, 0) + 1

    async with bus, TickFanout(bus, lane_factory=lane_factory) as fanout:
        fanout_ref.append(fanout)
        if args.bus == "kafka":
            fanout.add_listener(sample_hop)
        server = aio.server()
        MarketDataServicer(fanout).add_to_server(server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()

        async def prime(command: Json) -> Json:
            nonlocal next_seq
            fanout.ingest(tick_records(names, next_seq, len(names)))
            next_seq += 1
            return {"cached": len(fanout.cache)}

        async def clients(command: Json) -> Json:
            low = int(command.get("at_least", 0))
            high = int(command.get("at_most", 1 << 62))
            await _poll(lambda: low <= fanout.client_count <= high, command)
            return {"clients": fanout.client_count, "lanes": len(lanes)}

        async def window(command: Json) -> Json:
            hop_window[:] = [int(command["from_ns"]), int(command["to_ns"])]
            return {"ok": True}

        async def stats(command: Json) -> Json:
            return {
                "records": fanout.records,
                "hop_histogram": hop,
                "clients": fanout.client_count,
                "cut_off": fanout.cut_off,
                "lanes": dataclasses.asdict(totals()),
                "cpu_s": time.process_time(),
            }

        async def feed(command: Json) -> Json:
            nonlocal next_seq
            rate = float(command["rate"])
            warmup_s = float(command["warmup_s"])
            seconds = float(command["seconds"])
            total = int(rate * (warmup_s + seconds)) + 1
            records = tick_records(names, next_seq, total)
            next_seq += total // len(names) + 1
            cap = max(1, int(rate * 0.01))  # at most 10 ms worth per step
            ingest = fanout.ingest
            fed = 0
            start = time.perf_counter()
            measure_at, end_at = start + warmup_s, start + warmup_s + seconds
            before: tuple[int, float, _LaneTotals, int] | None = None
            while True:
                now = time.perf_counter()
                if before is None and now >= measure_at:
                    before = (time.time_ns(), time.process_time(), totals(), fed)
                if now >= end_at:
                    break
                due = min(total, int((now - start) * rate))
                if due > fed:
                    upto = min(due, fed + cap)
                    ingest(records[fed:upto])
                    fed = upto
                await asyncio.sleep(0.001)
            assert before is not None
            t0, cpu0, lanes0, fed0 = before
            t1, cpu1, lanes1 = time.time_ns(), time.process_time(), totals()
            elapsed = (t1 - t0) / 1e9
            delta = {
                f.name: getattr(lanes1, f.name) - getattr(lanes0, f.name)
                for f in dataclasses.fields(_LaneTotals)
            }
            return {
                "from_ns": t0,
                "to_ns": t1,
                "ingested_per_s": (fed - fed0) / elapsed,
                "cpu_cores": (cpu1 - cpu0) / elapsed,
                "lanes": delta,
                "cut_off": fanout.cut_off,
            }

        _answer({"port": port, "pid": os.getpid()})
        try:
            await _serve_commands(
                {"prime": prime, "clients": clients, "stats": stats, "feed": feed, "window": window}
            )
        finally:
            await server.stop(grace=None)


@dataclasses.dataclass
class _Receipts:
    ticks: int = 0
    frames: int = 0
    snapshots: int = 0
    gaps: int = 0
    conflated_frames: int = 0
    others: int = 0
    ended: int = 0
    buckets: dict[int, int] = dataclasses.field(default_factory=dict)
    histogram: dict[int, int] = dataclasses.field(default_factory=dict)
    window: tuple[int, int] | None = None
    messages: int = 0
    #: Decode one message in this many (latency runs: 100 Python clients cannot decode 5M
    #: ticks/s on two cores; the server's own count gives the deliveries then).
    parse_every: int = 1
    first_frame: list[asyncio.Future[None]] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)

    def frame(self, raw: bytes) -> None:
        now = time.time_ns()
        self.messages += 1
        if self.parse_every > 1 and self.messages % self.parse_every:
            return  # counted by the server; only every parse_every-th message is decoded
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
        window = self.window
        if window is not None and window[0] <= now < window[1]:
            histogram = self.histogram
            for tick in ticks:
                key = latency_key(now - tick.ingest_time_ns)
                histogram[key] = histogram.get(key, 0) + 1


async def run_grpc_clients(args: argparse.Namespace) -> None:  # noqa: PLR0915  # as above
    import grpc
    from grpc import aio

    target = f"127.0.0.1:{args.port}"
    receipts = _Receipts(parse_every=args.parse_every)
    channels: list[aio.Channel] = []
    calls: list[Any] = []
    tasks: list[asyncio.Task[None]] = []
    idle_connects: list[Any] = []

    def channel() -> aio.Channel:
        # A local subchannel pool: a TCP connection per channel, as separate clients have.
        made = aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        channels.append(made)
        return made

    async def read(call: Any, first: asyncio.Future[None]) -> None:
        try:
            async for raw in call:
                receipts.frame(raw)
                if not first.done():
                    first.set_result(None)
        except asyncio.CancelledError:
            raise
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                receipts.errors.append(f"{exc.code()}: {exc.details()}")
        finally:
            receipts.ended += 1
            if not first.done():
                first.set_exception(RuntimeError("stream ended before its first frame"))

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
        tasks.append(asyncio.create_task(read(call, first)))
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
            tasks.append(asyncio.create_task(read(call, first)))
            await first

        for low in range(0, len(pending), 100):
            await asyncio.gather(*(one(c, f) for c, f in pending[low : low + 100]))
        return {"subscribed": len(pending)}

    async def window(command: Json) -> Json:
        receipts.window = (int(command["from_ns"]), int(command["to_ns"]))
        return {"ok": True}

    async def report(command: Json) -> Json:
        return {
            "ticks": receipts.ticks,
            "frames": receipts.frames,
            "snapshots": receipts.snapshots,
            "gaps": receipts.gaps,
            "conflated_frames": receipts.conflated_frames,
            "others": receipts.others,
            "ended": receipts.ended,
            "errors": receipts.errors[:5],
            "buckets": receipts.buckets,
            "histogram": receipts.histogram,
            "cpu_s": time.process_time(),
        }

    _answer({"pid": os.getpid()})
    try:
        await _serve_commands(
            {"open": open_streams, "subscribe": subscribe_idle, "window": window, "report": report}
        )
    finally:
        for call in calls:
            call.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for made in channels:
            await made.close(None)


async def run_raw_server(args: argparse.Namespace) -> None:
    writers: list[asyncio.StreamWriter] = []

    async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)

    server = await asyncio.start_server(accepted, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    names = symbols(args.symbols)

    async def connections(command: Json) -> Json:
        await _poll(lambda: len(writers) >= int(command.get("at_least", 0)), command)
        return {"connections": len(writers)}

    async def blast(command: Json) -> Json:
        per_frame = int(command["ticks_per_frame"])
        frame = tick_batch_frame(
            encoded_tick(names[i % len(names)], i + 1) for i in range(per_frame)
        )
        warmup_s = float(command["warmup_s"])
        seconds = float(command["seconds"])
        high_water = 256 * 1024
        written = 0
        start = time.perf_counter()
        before: tuple[int, float, int] | None = None
        while True:
            now = time.perf_counter()
            if before is None and now - start >= warmup_s:
                before = (time.time_ns(), time.process_time(), written)
            if now - start >= warmup_s + seconds:
                break
            for writer in writers:
                writer.write(frame)
            written += len(writers)
            for writer in writers:
                if writer.transport.get_write_buffer_size() > high_water:
                    await writer.drain()
            await asyncio.sleep(0)
        assert before is not None
        t0, cpu0, written0 = before
        t1 = time.time_ns()
        elapsed = (t1 - t0) / 1e9
        return {
            "from_ns": t0,
            "to_ns": t1,
            "frame_bytes": len(frame),
            "frames_written_per_s": (written - written0) / elapsed,
            "cpu_cores": (time.process_time() - cpu0) / elapsed,
        }

    _answer({"port": port, "pid": os.getpid()})
    try:
        await _serve_commands({"connections": connections, "blast": blast})
    finally:
        for writer in writers:
            writer.close()
        server.close()


class _ByteCounter(asyncio.Protocol):
    def __init__(self, buckets: dict[int, int]) -> None:
        self.buckets = buckets

    def data_received(self, data: bytes) -> None:
        bucket = time.time_ns() // BUCKET_NS
        self.buckets[bucket] = self.buckets.get(bucket, 0) + len(data)


async def run_raw_clients(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    buckets: dict[int, int] = {}
    transports: list[asyncio.BaseTransport] = []

    async def open_connections(command: Json) -> Json:
        count = int(command["n"])
        for low in range(0, count, 100):
            made = await asyncio.gather(
                *(
                    loop.create_connection(lambda: _ByteCounter(buckets), "127.0.0.1", args.port)
                    for _ in range(low, min(count, low + 100))
                )
            )
            transports.extend(t for t, _ in made)
        return {"opened": count}

    async def report(command: Json) -> Json:
        return {"buckets": buckets, "cpu_s": time.process_time()}

    _answer({"pid": os.getpid()})
    try:
        await _serve_commands({"open": open_connections, "report": report})
    finally:
        for transport in transports:
            transport.close()


async def run_publisher(args: argparse.Namespace) -> None:
    from mdfeed.kernel.bus import open_bus
    from mdfeed.kernel.config import load_config

    config = dataclasses.replace(load_config("local-stack").bus, tick_topic=args.topic)
    names = symbols(args.symbols)
    async with open_bus(config) as bus, bus.producer() as producer:
        await producer.start()
        # Connected and the topic's partitions known before the clock starts.
        producer.send(args.topic, b"warmup", b"")
        if not await producer.flush(30):
            _answer({"error": f"kafka did not acknowledge a record: {producer.stats}"})
            return
        _answer({"pid": os.getpid()})
        line = await asyncio.to_thread(sys.stdin.readline)
        command: Json = json.loads(line)
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
        _answer(
            {
                "sent": sent,
                "sent_per_s": sent / elapsed,
                "acked": stats.acked - 1,
                "dropped": stats.dropped,
                "flushed": flushed,
                "cpu_cores": cpu / elapsed,
                "last_seqs": {name: seq - 1 for name, seq in seqs.items()},
            }
        )
        await asyncio.to_thread(sys.stdin.readline)  # the parent's quit


def run_mqtt_subscribers(args: argparse.Namespace) -> None:  # noqa: PLR0915  # one select loop
    """Paho subscribers driven from one thread (a thread each would fight over the GIL)."""
    import selectors

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    buckets: dict[int, int] = {}
    acked = [0]
    commands: queue.Queue[Json] = queue.Queue()

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        bucket = time.time_ns() // BUCKET_NS
        buckets[bucket] = buckets.get(bucket, 0) + 1

    def on_subscribe(*_args: object) -> None:
        acked[0] += 1

    selector = selectors.DefaultSelector()
    clients = []
    for i in range(args.n):
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"{args.prefix}-sub{os.getpid()}-{i}"
        )
        client.on_message = on_message
        client.on_subscribe = on_subscribe
        client.connect(args.host, args.port)
        client.subscribe(f"{args.prefix}/md/#", qos=0)
        sock = client.socket()
        assert sock is not None
        selector.register(sock, selectors.EVENT_READ, client)
        clients.append(client)

    def read_commands() -> None:
        for line in sys.stdin:
            commands.put(json.loads(line))
        commands.put({"cmd": "quit"})

    threading.Thread(target=read_commands, daemon=True).start()
    ready_by = time.monotonic() + 20
    announced = False
    last_misc = 0.0
    while True:
        for key, _ in selector.select(timeout=0.05):
            client = key.data
            client.loop_read(max_packets=1000)
        now = time.monotonic()
        if now - last_misc > 0.5:
            last_misc = now
            for client in clients:
                client.loop_write()
                client.loop_misc()
        if not announced:
            for client in clients:
                client.loop_write()
            if acked[0] >= len(clients):
                _answer({"pid": os.getpid()})
                announced = True
            elif now > ready_by:
                _answer({"error": "subscriptions not acknowledged within 20 s"})
                return
        with contextlib.suppress(queue.Empty):
            command = commands.get_nowait()
            if command.get("cmd") == "report":
                _answer({"buckets": dict(buckets), "cpu_s": time.process_time()})
            else:
                _answer({"ok": True})
                break
    for client in clients:
        client.disconnect()


def run_mqtt_publisher(args: argparse.Namespace) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    names = symbols(args.symbols)
    topics = [f"{args.prefix}/md/{name}" for name in names]
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{args.prefix}-pub")
    client.connect(args.host, args.port)
    client.loop_start()
    _answer({"pid": os.getpid()})
    command: Json = json.loads(sys.stdin.readline())
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
    _answer({"published_per_s": published / elapsed, "cpu_cores": cpu / elapsed})
    sys.stdin.readline()
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
        _answer({"pid": os.getpid()})
        command: Json = json.loads(await asyncio.to_thread(sys.stdin.readline))
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
        _answer(
            {
                "fed_per_s": fed / elapsed,
                "published_per_s": (stats.quotes_published - stats0.quotes_published) / elapsed,
                "conflated": stats.quotes_conflated - stats0.quotes_conflated,
                "quotes_in": stats.quotes_in - stats0.quotes_in,
                "cpu_cores": cpu / elapsed,
            }
        )
        await asyncio.to_thread(sys.stdin.readline)  # the parent's quit
    _clear_retained(args, [f"{args.prefix}/md/{name}" for name in names])


def _clear_retained(args: argparse.Namespace, topics: Sequence[str]) -> None:
    """Publish empty retained payloads: the broker keeps nothing of the benchmark."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{args.prefix}-clear")
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
    server = roles.add_parser("server")
    server.add_argument("--bus", choices=("memory", "kafka"), default="memory")
    server.add_argument("--topic", default="md.ticks")
    server.add_argument("--symbols", type=int, default=50)
    server.add_argument("--max-pending-ticks", type=int, default=10_000)
    grpc_clients = roles.add_parser("grpc-clients")
    grpc_clients.add_argument("--port", type=int, required=True)
    grpc_clients.add_argument("--parse-every", type=int, default=1)
    raw_server = roles.add_parser("raw-server")
    raw_server.add_argument("--symbols", type=int, default=50)
    raw_clients = roles.add_parser("raw-clients")
    raw_clients.add_argument("--port", type=int, required=True)
    publisher = roles.add_parser("publisher")
    publisher.add_argument("--topic", required=True)
    publisher.add_argument("--symbols", type=int, default=50)
    for name in ("mqtt-subscribers", "mqtt-publisher", "mqtt-bridge"):
        mqtt_role = roles.add_parser(name)
        mqtt_role.add_argument("--host", default="127.0.0.1")
        mqtt_role.add_argument("--port", type=int, default=1883)
        mqtt_role.add_argument("--prefix", required=True)
        mqtt_role.add_argument("--n", type=int, default=10)
        mqtt_role.add_argument("--symbols", type=int, default=50)
    args = parser.parse_args(argv)

    import uvloop

    coroutines = {
        "server": run_server,
        "grpc-clients": run_grpc_clients,
        "raw-server": run_raw_server,
        "raw-clients": run_raw_clients,
        "publisher": run_publisher,
        "mqtt-bridge": run_mqtt_bridge,
    }
    if args.role in coroutines:
        uvloop.run(coroutines[args.role](args))
    elif args.role == "mqtt-subscribers":
        run_mqtt_subscribers(args)
    else:
        run_mqtt_publisher(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
