"""One Tick per bus record, or a per-symbol batch per record: what each costs, side by side.

mdfeed's tick topic carries one encoded Tick per record (proto/mdfeed.proto, keyed by
symbol). The alternative is a small per-symbol batch per record: the encoded TickBatch of a
symbol's consecutive ticks (contiguous seqs, still keyed by the symbol), so a consumer takes
fewer, fuller records. This measures both layouts in one run, against the real Kafka of
``--bootstrap``, through mdfeed's own bus adapter (mdfeed.kernel.bus):

- produce: the producer's cost per tick (send() calls plus the drain to acknowledgement),
  as CPU time of this process, which does nothing else (the broker's time is not in it);
- consume: ``getmany`` per tick, reading the topic from the beginning, CPU time too;
- decode for the aggregator: ``Tick.FromString`` per record against ``TickBatch.FromString``
  per record (upb parses every tick either way);
- split, decode and aggregate into every bar resolution (ohlcv.bars.BarAggregator), the
  bar service's work per tick after ``getmany``;
- split for the fanout, which forwards each tick's encoded bytes as they came
  (mdfeed.kernel.tick_records.ticks_of: a check per bare Tick, a walk over the
  length-prefixed ticks of a batch).

Run: ``python -P -m bench.harness.record_layout [--ticks N] [--batch K]``; it prints one line
per layout and stage, then a JSON line with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from dataclasses import replace
from zoneinfo import ZoneInfo

from mdfeed.cli.support import run_async
from mdfeed.kernel.bus import BusRecord, open_bus
from mdfeed.kernel.config import BusConfig
from mdfeed.kernel.tick_records import batch_record, ticks_of
from ohlcv import RESOLUTIONS, BarAggregator
from proto import mdfeed_pb2 as pb

__all__ = ["main", "measure"]

_SYMBOLS = tuple(f"S{i:03d}" for i in range(50))


def _ticks(count: int) -> list[tuple[str, bytes]]:
    """`count` realistic encoded quote ticks, round-robin over the symbols."""
    seqs = dict.fromkeys(_SYMBOLS, 0)
    out = []
    now = time.time_ns()
    for i in range(count):
        symbol = _SYMBOLS[i % len(_SYMBOLS)]
        seqs[symbol] += 1
        tick = pb.Tick(
            symbol=symbol, seq=seqs[symbol], kind=pb.TICK_KIND_QUOTE,
            bid_px_e8=18_750_000_000 + i % 97, bid_size_e8=30_000_000_000,
            ask_px_e8=18_751_000_000 + i % 89, ask_size_e8=20_000_000_000,
            last_px_e8=18_750_500_000, last_size_e8=500_000_000,
            venue_time_ns=now + i, ingest_time_ns=now + i + 1000, fix_msg_seq_num=i + 2,
        )  # fmt: skip
        out.append((symbol, tick.SerializeToString()))
    return out


def _batched(ticks: list[tuple[str, bytes]], size: int) -> list[tuple[str, bytes]]:
    """Per-symbol runs of up to `size` consecutive ticks, each as one batch record."""
    pending: dict[str, list[bytes]] = {}
    out = []
    for symbol, encoded in ticks:
        run = pending.setdefault(symbol, [])
        run.append(encoded)
        if len(run) == size:
            out.append((symbol, batch_record(run)))
            run.clear()
    out += [(symbol, batch_record(run)) for symbol, run in pending.items() if run]
    return out


async def _produce(config: BusConfig, topic: str, records: list[tuple[str, bytes]]) -> float:
    async with open_bus(config) as bus:
        producer = bus.producer()
        await producer.start()
        try:
            keys = {s: s.encode() for s in _SYMBOLS}
            # The first record creates the topic and fetches its metadata: not counted.
            producer.send(topic, keys[records[0][0]], records[0][1])
            if not await producer.flush(60):
                raise RuntimeError("the producer could not reach the bus within 60 s")
            records = records[1:]
            start = time.process_time()
            send = producer.send
            for index, (symbol, value) in enumerate(records):
                send(topic, keys[symbol], value)
                if index % 2000 == 1999:
                    await asyncio.sleep(0)  # let the drain run, as the ingest's slices do
            if not await producer.flush(60):
                raise RuntimeError("the producer did not drain within 60 s")
            return (time.process_time() - start) * (len(records) + 1) / max(1, len(records))
        finally:
            await producer.stop()


async def _consume(config: BusConfig, topic: str, expected: int) -> tuple[float, list[BusRecord]]:
    async with open_bus(config) as bus:
        consumer = bus.consumer([topic], from_beginning=True)
        await consumer.start()
        try:
            got: list[BusRecord] = []
            # The first records mark the start, so connecting and metadata are not counted.
            while not got:
                got += await consumer.getmany(timeout_ms=500, max_records=5000)
            start = time.process_time()
            deadline = time.monotonic() + 60
            while len(got) < expected and time.monotonic() < deadline:
                got += await consumer.getmany(timeout_ms=200, max_records=5000)
            return time.process_time() - start, got
        finally:
            await consumer.stop()


async def measure(bootstrap: str, ticks: int, batch: int) -> dict[str, dict[str, float]]:
    config = replace(BusConfig(), kind="kafka", bootstrap_servers=bootstrap)
    single = _ticks(ticks)
    layouts = {"tick_per_record": single, f"batch_of_{batch}": _batched(single, batch)}
    results: dict[str, dict[str, float]] = {}
    for name, records in layouts.items():
        topic = f"bench.layout.{name}.{uuid.uuid4().hex[:8]}"
        produce_s = await _produce(config, topic, records)
        consume_s, got = await _consume(config, topic, len(records))
        if len(got) != len(records):
            raise RuntimeError(f"{name}: consumed {len(got)} of {len(records)} records")
        values = [r.value for r in got]
        t0 = time.perf_counter()
        if name == "tick_per_record":
            parsed = sum(1 for v in values if pb.Tick.FromString(v).seq)
        else:
            parsed = sum(len(pb.TickBatch.FromString(v).ticks) for v in values)
        t1 = time.perf_counter()
        split = sum(len(ticks_of(v)) for v in values)
        t2 = time.perf_counter()
        aggregator = BarAggregator(
            [r.value for r in RESOLUTIONS],
            ZoneInfo("America/New_York"),
            mid_when_no_trades=True,
            allowed_lateness_ns=2_000_000_000,
        )
        apply = aggregator.apply
        for value in values:
            for encoded in ticks_of(value):
                apply(pb.Tick.FromString(encoded))
        aggregator.drain_changed()
        t3 = time.perf_counter()
        if parsed != ticks or split != ticks:
            raise RuntimeError(f"{name}: parsed {parsed}, split {split} of {ticks} ticks")
        per_tick = 1e6 / ticks
        results[name] = {
            "records": len(records),
            "produce_us_per_tick": produce_s * per_tick,
            "consume_us_per_tick": consume_s * per_tick,
            "decode_us_per_tick": (t1 - t0) * per_tick,
            "split_us_per_tick": (t2 - t1) * per_tick,
            # Split, decode and every bar resolution: the aggregator's work after getmany.
            "aggregate_us_per_tick": (t3 - t2) * per_tick,
        }
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--ticks", type=int, default=200_000, help="ticks per layout")
    parser.add_argument("--batch", type=int, default=8, help="ticks per batch record")
    args = parser.parse_args(argv)
    results = run_async(measure(args.bootstrap, args.ticks, args.batch))
    for name, figures in results.items():
        print(
            f"{name:>16}: {figures['records']:>8.0f} records; us per tick: produce "
            f"{figures['produce_us_per_tick']:.2f}, consume {figures['consume_us_per_tick']:.2f}, "
            f"decode {figures['decode_us_per_tick']:.2f}, "
            f"split {figures['split_us_per_tick']:.2f}, "
            f"split+decode+bars {figures['aggregate_us_per_tick']:.2f}"
        )
    sys.stdout.write(json.dumps(results) + "\n")


if __name__ == "__main__":
    main()
