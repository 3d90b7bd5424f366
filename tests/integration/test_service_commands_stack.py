"""`mdfeed ingest` and `mdfeed datafeed` as separate processes on the real Kafka.

ingest: a SimulatedVenue in the test, `mdfeed ingest` in a child process, ticks read back
from the test's own topic. datafeed: bars published on the test's own bar topic (as
`mdfeed aggregate` does) reach a browser's ``/stream`` through the child process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from fix_session.venue import SimulatedVenue
from mdfeed.kernel.bus import open_bus
from mdfeed.kernel.config import MdfeedConfig
from mdfeed.kernel.tick_records import ticks_of
from mdfeed.stack.scratch import free_port
from proto import mdfeed_pb2 as pb

SYMBOLS = ("AAPL", "MSFT", "NVDA")
T0 = 1_700_000_000  # a minute boundary, in seconds

Start = Callable[..., Awaitable[asyncio.subprocess.Process]]


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    """Runs `mdfeed COMMAND` on local-stack with overrides; stops it (SIGTERM) afterwards."""
    started: list[asyncio.subprocess.Process] = []

    async def run(command: str, **overrides: str) -> asyncio.subprocess.Process:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MDFEED")}
        env |= {"MDFEED_CONFIG": "local-stack", "MDFEED__METRICS__PORT": str(free_port())}
        # -P: the installed build, not a source tree in the working directory.
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-P", "-m", "mdfeed.cli", command,
            env=env | overrides, cwd=tmp_path, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        started.append(proc)
        return proc

    yield run
    for proc in started:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(60):
                _, stderr = await proc.communicate()
                code = await proc.wait()
            assert code == 0, stderr.decode()[-3000:]
            assert "stopping…" in stderr.decode()


async def _stderr_line(proc: asyncio.subprocess.Process, startswith: str) -> str:
    assert proc.stderr is not None
    seen = []
    async with asyncio.timeout(60):
        while line := (await proc.stderr.readline()).decode():
            seen.append(line)
            if line.startswith(startswith):
                return line
    pytest.fail(f"no line starting {startswith!r}:\n{''.join(seen)[-3000:]}")


async def test_ingest_publishes_the_venues_ticks_to_kafka(
    stack_config: MdfeedConfig, unique_name: str, start: Start, tmp_path: Path
) -> None:
    venue_config = dataclasses.replace(
        stack_config.venue, port=0, symbols=SYMBOLS, rate_ticks_per_s=1000, seed=7
    )
    async with SimulatedVenue(venue_config) as venue:
        ingest = await start(
            "ingest",
            MDFEED__FIX_SESSION__PORT=str(venue.port),
            MDFEED__FIX_SESSION__SYMBOLS=",".join(SYMBOLS),
            MDFEED__FIX_SESSION__LOG_DIR=str(tmp_path / "fix"),
            MDFEED__BUS__TICK_TOPIC=unique_name,
            MDFEED__BUS__TICK_PARTITIONS="3",
        )
        await _stderr_line(ingest, "fix logged on |")
        bus_config = dataclasses.replace(stack_config.bus, tick_topic=unique_name)
        ticks: list[pb.Tick] = []
        async with open_bus(bus_config) as bus:
            consumer = bus.consumer([unique_name], from_beginning=True)
            async with consumer, asyncio.timeout(60):
                while {t.symbol for t in ticks} != set(SYMBOLS) or len(ticks) < 300:
                    for record in await consumer.getmany(timeout_ms=500, max_records=1000):
                        for encoded in ticks_of(record.value):
                            tick = pb.Tick.FromString(encoded)
                            assert record.key == tick.symbol.encode()
                            ticks.append(tick)
    for symbol in SYMBOLS:
        seqs = [t.seq for t in ticks if t.symbol == symbol]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), symbol  # no gap, in order


def _bar(close_e8: int) -> pb.Bar:
    return pb.Bar(
        symbol="AAPL",
        resolution=pb.RESOLUTION_1M,
        open_time_ns=T0 * 1_000_000_000,
        open_px_e8=close_e8,
        high_px_e8=close_e8,
        low_px_e8=close_e8,
        close_px_e8=close_e8,
        volume_e8=100_000_000,
        trade_count=1,
    )


async def test_datafeed_streams_the_bars_of_the_bar_topic(
    stack_config: MdfeedConfig, unique_name: str, start: Start, tmp_path: Path
) -> None:
    port = free_port()
    bar_topic = f"{unique_name}_bars"
    await start(
        "datafeed",
        MDFEED__DATAFEED__HTTP_PORT=str(port),
        MDFEED__BUS__BAR_TOPIC=bar_topic,
        MDFEED__STORE__KIND="sqlite",
        MDFEED__STORE__SQLITE_PATH=str(tmp_path / "bars.sqlite3"),
    )
    url = f"http://127.0.0.1:{port}/stream?symbol=AAPL&resolution=1"
    bus_config = dataclasses.replace(stack_config.bus, bar_topic=bar_topic)
    async with (
        open_bus(bus_config) as bus,
        bus.producer() as producer,
        aiohttp.ClientSession() as http,
    ):
        async with asyncio.timeout(60):
            while True:  # the datafeed is up once it answers
                try:
                    stream = await http.get(url)
                    break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.2)
        async with stream, asyncio.timeout(60):
            assert stream.status == 200
            close = 100 * 10**8
            while True:
                # Its consumer starts at the latest offset once assigned: publish until seen.
                close += 10**8
                producer.send(bar_topic, b"AAPL", _bar(close).SerializeToString())
                try:
                    async with asyncio.timeout(1):
                        line = (await stream.content.readline()).decode()
                        while not line.startswith("data: "):
                            line = (await stream.content.readline()).decode()
                    break
                except TimeoutError:
                    continue
    event = json.loads(line.removeprefix("data: "))
    assert event["time"] == T0
    assert 100 < event["close"] <= close / 1e8
