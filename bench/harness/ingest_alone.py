"""The ingest alone as a benchmark process: `FixIngest` publishing into the real Kafka.

`mdfeed bench --scenarios ingest` measures the ingest against the fast venue with nothing
downstream of Kafka. The process is pinned to one core (``os.sched_setaffinity``), so its
QuickFIX thread and its event loop share it, as the ingest's one-core budget says. Run as
``python -P -m bench.harness.ingest_alone --port P --symbols A,B,... --topic T``; it
prints one JSON line with the differences over the measured window (it starts
``--warmup`` seconds after the first ticks): FIX messages taken in, X entries normalized,
ticks handed to the producer, `IngestStats.stage_ns` per stage, the producer's dropped
records, the window in seconds, and the process's CPU seconds in it (all its threads,
from ``resource.getrusage``). ``--shard K/N`` runs one shard of a scaled-out ingest
(`fix_session.shard`): its own FIX session on its share of the symbols, same topic.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import tempfile
import time
from typing import Any

from bench.harness.children import answer_once
from mdfeed.cli.support import run_async

__all__ = ["main", "measure"]


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(
    port: int,
    symbols: list[str],
    topic: str,
    seconds: float,
    *,
    bootstrap: str,
    warmup_s: float = 1.0,
    host: str = "127.0.0.1",
    shard: str = "",
    depth: int = 0,
) -> dict[str, Any]:
    """Run a FixIngest into Kafka; its counters' differences over the window."""
    from fix_session.ingest import FixIngest
    from mdfeed.kernel.bus import open_bus
    from mdfeed.kernel.config import BusConfig, FixSessionConfig

    with tempfile.TemporaryDirectory(prefix="ingest-alone-") as tmp:
        session = FixSessionConfig(
            host=host,
            port=port,
            symbols=tuple(symbols),
            log_dir=tmp,
            shard=shard,
            publish_depth=depth,
        )
        bus = open_bus(BusConfig(kind="kafka", bootstrap_servers=bootstrap, tick_topic=topic))
        await bus.start()
        producer = bus.producer()
        await producer.start()
        ingest = FixIngest(session, symbols=symbols, producer=producer, topic=topic)
        try:
            await ingest.start()
            await ingest.wait_logged_on(30)
            async with asyncio.timeout(30):
                while ingest.stats.ticks_out == 0:  # noqa: ASYNC110 - a plain counter
                    await asyncio.sleep(0.01)
            await asyncio.sleep(warmup_s)

            def snap() -> dict[str, Any]:
                stats = ingest.stats
                return {
                    "t": time.monotonic(),
                    "cpu_s": _cpu_s(),
                    "messages": stats.messages_in,
                    "entries": ingest.normalizer.stats.entries,
                    "ticks": stats.ticks_out,
                    "decode_errors": stats.decode_errors,
                    "rejected": stats.rejected_messages,
                    # A book that cannot be right would make the rate meaningless.
                    "book_faults": sum(ingest.normalizer.faults.values()),
                    "dropped": producer.stats.dropped,
                    "stage_ns": dict(stats.stage_ns),
                }

            before = snap()
            await asyncio.sleep(seconds)
            after = snap()
        finally:
            await ingest.stop()
            await producer.stop()
            await bus.stop()
    out: dict[str, Any] = {k: after[k] - before[k] for k in after if k not in ("t", "stage_ns")}
    out["seconds"] = after.pop("t") - before["t"]
    out["stage_ns"] = {k: v - before["stage_ns"].get(k, 0) for k, v in after["stage_ns"].items()}
    out["cpus_allowed"] = len(os.sched_getaffinity(0))
    out["shard"] = shard
    out["symbols"] = len(ingest.symbols)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--symbols", required=True, help="comma-separated")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument(
        "--cpu", type=int, default=None, help="the core to pin to (default: the last)"
    )
    parser.add_argument(
        "--shard", default="", help="K/N: subscribe only shard K of N of the symbols"
    )
    parser.add_argument(
        "--depth", type=int, default=0, help="fix_session.publish_depth (0: top of book)"
    )
    args = parser.parse_args(argv)
    cores = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {args.cpu if args.cpu is not None else cores[-1]})
    answer_once(
        lambda: run_async(
            measure(
                args.port,
                args.symbols.split(","),
                args.topic,
                args.seconds,
                bootstrap=args.bootstrap,
                warmup_s=args.warmup,
                host=args.host,
                shard=args.shard,
                depth=args.depth,
            )
        )
    )


if __name__ == "__main__":
    main()
