"""Overload costs latency, never liveness: FixIngest (real QuickFIX) against a venue that
sends as fast as TCP lets it.

The venue is ``mdfeed venue --fast`` in a process of its own (run with -P: the installed
build), streaming pre-encoded X messages at the reader's pace; the ingest is slowed to half
a millisecond per message, so it cannot keep up on any machine: the inbox fills and the
QuickFIX thread waits (TCP pushes back). While that lasts the event loop must keep
answering timers, and ``stop()`` must end within 2 s (a correctness bound: the process has
to end when asked, whatever the inbox holds), also with a backlog of 200,000 messages.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from polling import until, until_sync

from fix_session.ingest import FixIngest
from mdfeed.kernel.bus import MemoryBus
from mdfeed.kernel.config import BusConfig, FixSessionConfig
from mdfeed.stack.scratch import free_port

SYMBOLS = ("AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "AVGO")
RUN_VENUE = """
import argparse, sys
from mdfeed.cli.venue import register_cli
parser = argparse.ArgumentParser(prog="mdfeed")
register_cli(parser.add_subparsers(dest="command", required=True))
args = parser.parse_args(sys.argv[1:])
sys.exit(args.func(args))
"""


def slow_down(ingest: FixIngest) -> None:
    """The ingest made slower than any venue on any machine: half a millisecond more per
    message, so the venue stays ahead of it throughout (a sleep: the loop lets go of the
    GIL, as real work in C does not need it either)."""
    drain = ingest._drain_core

    def slow_drain(max_messages: int, max_ns: int) -> tuple[int, list[str], list[int], bytes | None, int]:
        time.sleep(0.0005)
        return drain(1, max_ns)

    ingest._drain_core = slow_drain


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


@pytest.fixture
def fast_venue_port(tmp_path: Path) -> Iterator[int]:
    """``mdfeed venue --fast`` on a free port, in a child process."""
    port = free_port()
    log = (tmp_path / "venue.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-P", "-c", RUN_VENUE, "venue", "--fast", "--port", str(port),
         "--symbols", ",".join(SYMBOLS), "--seed", "5"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        until_sync(lambda: accepts(port), timeout_s=20, interval_s=0.1, what="the venue listening")
        yield port
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


async def test_a_venue_faster_than_the_ingest_costs_latency_not_liveness(
    fast_venue_port: int, tmp_path: Path
) -> None:
    bus = MemoryBus(BusConfig(tick_topic="t", tick_partitions=1))
    await bus.start()
    producer = bus.producer()
    await producer.start()
    config = FixSessionConfig(port=fast_venue_port, reconnect_interval_s=1, log_dir=str(tmp_path))
    # A small inbox fills whenever the loop is busy for a moment: the QuickFIX thread
    # then waits for room, and QuickFIX stops reading (TCP pushes back on the venue).
    ingest = FixIngest(config, symbols=SYMBOLS, producer=producer, topic="t", inbox_max_messages=64)
    slow_down(ingest)
    lags: list[float] = []

    async def watch_the_loop() -> None:
        while True:
            then = time.monotonic()
            await asyncio.sleep(0.05)
            lags.append(time.monotonic() - then - 0.05)

    watcher = asyncio.create_task(watch_the_loop())
    try:
        await ingest.start()
        await ingest.wait_logged_on(20)
        await until(
            lambda: ingest.stats.inbox_waits > 0,
            timeout_s=20,
            interval_s=0.05,
            what="the inbox full (the venue outpacing the ingest)",
        )
        lags.clear()
        waits = ingest.stats.inbox_waits
        taken_in = []
        for _ in range(4):
            before = ingest.stats.messages_in
            await asyncio.sleep(0.5)
            taken_in.append(ingest.stats.messages_in - before)
        # Still taking in, every half second, while the venue is ahead of it.
        assert all(n > 0 for n in taken_in), taken_in
        assert ingest.logged_on
        assert lags
        assert max(lags) < 0.5, f"loop lag up to {max(lags):.3f} s"
        assert ingest.stats.inbox_waits > waits, "the venue did not stay ahead of the ingest"
        # Stopped while the QuickFIX thread waits for room in a full inbox.
        started = time.monotonic()
        await ingest.stop()
        took = time.monotonic() - started
        assert took < 2.0, f"stop took {took:.2f} s"
        assert ingest.normalizer.inbox_held == 0
        assert ingest.stats.dropped_on_stop > 0
        await ingest.stop()  # still safe twice
    finally:
        watcher.cancel()
        await ingest.stop()
        await producer.stop()
        await bus.stop()


async def test_a_stop_ends_in_time_with_a_backlog_it_cannot_process() -> None:
    bus = MemoryBus(BusConfig(tick_topic="t", tick_partitions=1))
    await bus.start()
    producer = bus.producer()
    await producer.start()
    # A backlog far beyond what a stop can process in time, as a slow ingest with a big
    # inbox would hold: one X message, 200,000 times.
    ingest = FixIngest(
        FixSessionConfig(), symbols=SYMBOLS, producer=producer, topic="t",
        inbox_max_messages=250_000,
    )  # fmt: skip
    slow_down(ingest)
    body = (
        "35=X|49=VENUE|56=MDFEED|34=2|52=20261122-14:30:00.250|262=md1|268=1|"
        "279=0|269=0|55=AAPL|270=189.49|271=300|"
    ).replace("|", "\x01")
    head = f"8=FIX.4.4\x019={len(body)}\x01"
    raw = (head + body + f"10={sum((head + body).encode()) % 256:03d}\x01").encode()
    try:
        for _ in range(200_000):
            assert ingest.normalizer.push(raw)
        started = time.monotonic()
        await ingest.stop()
        took = time.monotonic() - started
        assert took < 2.0, f"stop took {took:.2f} s"
        assert ingest.normalizer.inbox_held == 0
        taken = ingest.stats.messages_in
        assert 0 < taken < 200_000
        assert ingest.stats.dropped_on_stop == 200_000 - taken
        assert not ingest.normalizer.push(raw)  # after the stop: dropped, counted
        assert ingest.stats.dropped_on_stop == 200_001 - taken
    finally:
        await ingest.stop()
        await producer.stop()
        await bus.stop()
