"""The servers the fanout benchmarks measure (bench/test_grpc_fanout_bench.py), each in a
process of its own (see bench.harness.children), on uvloop as ``mdfeed`` runs.

Run as ``python -P -m bench.harness.servers ROLE ...``:

* ``fanout``: a ``TickFanout`` behind ``MarketDataServicer`` on a grpc.aio server. With
  ``--bus memory`` the benchmark feeds it through ``fanout.ingest`` at a paced rate
  (command ``feed``); with ``--bus kafka`` it consumes a topic of the local stack's Kafka
  and times the Kafka hop (publish to the fanout's consume loop) of every 8th tick in a
  window (command ``window``; the histogram comes with ``stats``).
* ``raw``: the practical limit: the same frame bytes written with ``StreamWriter.write``
  to as many loopback TCP connections (the ``raw`` subscribers count the bytes).

Times shared between processes are wall-clock nanoseconds (``time.time_ns``): one clock on
one machine, and the one ``ingest_time_ns`` is stamped with.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import time
from collections.abc import Sequence

from bench.harness.children import Json, announce, poll, serve_commands
from bench.harness.stats import clamped, latency_histogram
from bench.harness.ticks import batch_records, encoded_tick, symbols, tick_records
from fanout.frames import tick_batch_frame
from proto import mdfeed_pb2 as pb

__all__ = ["main"]


@dataclasses.dataclass
class _LaneTotals:
    offered: int = 0
    delivered: int = 0
    conflated: int = 0
    stale: int = 0
    batches: int = 0


async def run_fanout(args: argparse.Namespace) -> None:  # noqa: PLR0915 - setup + handlers
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

    def per_lane() -> list[tuple[int, int]]:
        return [(lane.stats.offered, lane.stats.delivered) for lane in lanes]

    # Kafka hop: publish (ingest_time_ns) to the fanout's consume loop, every 8th tick.
    hop = latency_histogram()
    hop_window = [0, 0]
    seen = 0

    def sample_hop(symbol: str, seq: int, encoded: bytes) -> None:
        nonlocal seen
        seen += 1
        if seen % 8:
            return
        now = time.time_ns()
        if hop_window[0] <= now < hop_window[1]:
            hop.observe(clamped(now - pb.Tick.FromString(encoded).ingest_time_ns))

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
            await poll(lambda: low <= fanout.client_count <= high, command)
            return {"clients": fanout.client_count, "lanes": len(lanes)}

        async def window(command: Json) -> Json:
            hop_window[:] = [int(command["from_ns"]), int(command["to_ns"])]
            return {"ok": True}

        async def stats(command: Json) -> Json:
            return {
                "records": fanout.records,
                "hop_histogram": hop.to_json(),
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
            # "single": one tick per record (the layout before batches); "batch": what the
            # ingest writes, one record per symbol per slice (mdfeed.kernel.tick_records).
            batched = command.get("layout", "single") == "batch"
            records = tick_records(names, next_seq, total)
            next_seq += total // len(names) + 1
            # What is due, up to what the consume loop takes per poll (TickFanout's
            # max_records): a loop slower than the pace catches up as a consumer would.
            cap = 1000
            ingest = fanout.ingest
            fed = 0
            start = time.perf_counter()
            measure_at, end_at = start + warmup_s, start + warmup_s + seconds
            before: tuple[int, float, _LaneTotals, int, list[tuple[int, int]]] | None = None
            while True:
                now = time.perf_counter()
                if before is None and now >= measure_at:
                    before = (time.time_ns(), time.process_time(), totals(), fed, per_lane())
                if now >= end_at:
                    break
                due = min(total, int((now - start) * rate))
                if due > fed:
                    upto = min(due, fed + cap)
                    ingest(batch_records(records[fed:upto]) if batched else records[fed:upto])
                    fed = upto
                await asyncio.sleep(0.001)
            assert before is not None
            t0, cpu0, lanes0, fed0, each0 = before
            t1, cpu1, lanes1, each1 = time.time_ns(), time.process_time(), totals(), per_lane()
            elapsed = (t1 - t0) / 1e9
            delta = {
                f.name: getattr(lanes1, f.name) - getattr(lanes0, f.name)
                for f in dataclasses.fields(_LaneTotals)
            }
            # Per stream: the ticks its lane handed to gRPC from the window's start until
            # settle_s after its end (nothing is offered then) over the ticks offered to it in
            # the window; below 1 when the lane was still behind by then. A lane hands on
            # whole messages of many frames a few times a second, so counting only to the
            # window's end would measure that granularity rather than whether it keeps up.
            await asyncio.sleep(float(command.get("settle_s", 0.0)))
            each2 = per_lane()[: len(each0)]
            shares = [
                (d2 - d0) / (o1 - o0)
                for (o0, d0), (o1, _), (_, d2) in zip(each0, each1, each2, strict=False)
                if o1 > o0
            ]
            return {
                "from_ns": t0,
                "to_ns": t1,
                "ingested_per_s": (fed - fed0) / elapsed,
                "cpu_cores": (cpu1 - cpu0) / elapsed,
                "lanes": delta,
                "min_lane_share": min(shares, default=0.0),
                "streams_fed": len(shares),
                "cut_off": fanout.cut_off,
            }

        announce(port=port)
        try:
            await serve_commands(
                {"prime": prime, "clients": clients, "stats": stats, "feed": feed, "window": window}
            )
        finally:
            await server.stop(grace=None)


async def run_raw(args: argparse.Namespace) -> None:
    writers: list[asyncio.StreamWriter] = []

    async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)

    server = await asyncio.start_server(accepted, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    names = symbols(args.symbols)

    async def connections(command: Json) -> Json:
        await poll(lambda: len(writers) >= int(command.get("at_least", 0)), command)
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

    announce(port=port)
    try:
        await serve_commands({"connections": connections, "blast": blast})
    finally:
        for writer in writers:
            writer.close()
        server.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    roles = parser.add_subparsers(dest="role", required=True)
    fanout = roles.add_parser("fanout")
    fanout.add_argument("--bus", choices=("memory", "kafka"), default="memory")
    fanout.add_argument("--topic", default="md.ticks")
    fanout.add_argument("--symbols", type=int, default=50)
    fanout.add_argument("--max-pending-ticks", type=int, default=10_000)
    raw = roles.add_parser("raw")
    raw.add_argument("--symbols", type=int, default=50)
    args = parser.parse_args(argv)

    import uvloop

    uvloop.run(run_fanout(args) if args.role == "fanout" else run_raw(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
