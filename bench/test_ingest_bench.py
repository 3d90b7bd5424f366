"""Ingest throughput: simulated venue -> TCP FIX (QuickFIX) -> decode -> normalize -> Kafka.

Not part of `make test`; run with `make bench` (it starts the local stack). For each offered
rate, the venue streams quote updates (X entries) for 50 symbols for a fixed time while the
ingest runs beside it on this machine. Reported per rate, every figure beside the limit it
is judged against, measured in the same run:

- quote updates/s the venue sent (the offered load actually produced) and the share of
  them the session took in;
- ticks/s produced to Kafka and acknowledged;
- the cost per stage, in microseconds per FIX message (decode, normalize, produce), and the
  share of one core the loop spent on them.

Results go to `.benchmarks/ingest.json` and the terminal.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fix_session.ingest import FixIngest
from mdfeed.kernel.bus import open_bus
from mdfeed.kernel.config import MdfeedConfig, load_config
from mdfeed.stack.scratch import free_port

RATES = (20_000, 50_000, 100_000, 200_000)
SECONDS = 8.0
TARGET = 200_000


def _kafka_up(config: MdfeedConfig) -> bool:
    host, _, port = config.bus.bootstrap_servers.partition(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    return True


def _venue_process(rate: int, port: int) -> subprocess.Popen[str]:
    # The venue runs in its own process, as a real venue would be another host: the ingest
    # gets a core of its own and the two do not share a GIL.
    mdfeed = str(Path(sys.executable).parent / "mdfeed")
    return subprocess.Popen(
        [mdfeed, "venue", "--port", str(port), "--rate", str(rate), "--seed", "11"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _venue_rates(lines: list[str]) -> list[float]:
    rates = []
    for line in lines:
        match = re.search(r"([\d,]+) entries/s", line)
        if match:
            rates.append(float(match.group(1).replace(",", "")))
    return rates


async def measure(config: MdfeedConfig, rate: int, seconds: float, tmp: Path) -> dict[str, float]:
    port = free_port()
    topic = f"bench.ingest.{rate}.{time.time_ns()}"
    session_cfg = dataclasses.replace(config.fix_session, port=port, log_dir=str(tmp))
    bus_cfg = dataclasses.replace(config.bus, tick_topic=topic)
    venue = _venue_process(rate, port)
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(iter(venue.stdout.readline, "")) if venue.stdout else None,
        daemon=True,
    )
    reader.start()
    try:
        async with open_bus(bus_cfg) as bus:
            producer = bus.producer()
            await producer.start()
            ingest = FixIngest(
                session_cfg, symbols=config.venue.symbols, producer=producer, topic=topic
            )
            await ingest.start()
            try:
                await ingest.wait_logged_on(20)
                await asyncio.sleep(1.5)  # snapshots and warm-up
                s0 = dataclasses.replace(ingest.stats, stage_ns=dict(ingest.stats.stage_ns))
                e0 = ingest.normalizer.stats.entries
                acked0 = producer.stats.acked
                lines_before = len(lines)
                cpu0, t0 = time.process_time(), time.perf_counter()
                await asyncio.sleep(seconds)
                elapsed = time.perf_counter() - t0
                cpu = time.process_time() - cpu0
                s1, e1 = ingest.stats, ingest.normalizer.stats.entries
                venue_rates = _venue_rates(lines[lines_before:])
                await producer.flush(30)
                acked1 = producer.stats.acked
            finally:
                await ingest.stop()
                await producer.stop()
    finally:
        venue.terminate()
        venue.wait(10)
        reader.join(5)
        if venue.stdout is not None:
            venue.stdout.close()
    messages = max(s1.messages_in - s0.messages_in, 1)
    stage = {k: (s1.stage_ns[k] - s0.stage_ns[k]) / messages / 1000 for k in s0.stage_ns}
    venue_rate = sum(venue_rates) / len(venue_rates) if venue_rates else 0.0
    return {
        "offered_entries_per_s": rate,
        "venue_entries_per_s": venue_rate,
        "ingest_entries_per_s": (e1 - e0) / elapsed,
        "fix_messages_per_s": (s1.messages_in - s0.messages_in) / elapsed,
        "ticks_per_s": (s1.ticks_out - s0.ticks_out) / elapsed,
        "kafka_acked_per_s": (acked1 - acked0) / elapsed,
        "core_us_per_msg": stage["core"],
        "decode_us_per_msg": stage["decode"],
        "normalize_us_per_msg": stage["normalize"],
        "produce_us_per_msg": stage["produce"],
        "ingest_process_cpu_cores": cpu / elapsed,
    }


@pytest.mark.parametrize("rate", RATES)
def test_ingest_throughput_into_kafka(rate: int, tmp_path: Path) -> None:
    config = load_config("local-stack")
    if not _kafka_up(config):
        pytest.fail("Kafka is not running: start it with 'mdfeed stack up kafka'")
    result = asyncio.run(measure(config, rate, SECONDS, tmp_path))
    out = Path(".benchmarks")
    out.mkdir(exist_ok=True)
    path = out / "ingest.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results[str(rate)] = result
    path.write_text(json.dumps(results, indent=2))
    ingested = result["ingest_entries_per_s"]
    print(
        f"\noffered {rate:,}/s: venue sent {result['venue_entries_per_s']:,.0f} quote updates/s; "
        f"ingest took in {ingested:,.0f}/s ({ingested / rate:.2f} of offered, "
        f"{ingested / TARGET:.2f} of the {TARGET:,}/s target), "
        f"{result['fix_messages_per_s']:,.0f} FIX msgs/s, "
        f"{result['ticks_per_s']:,.0f} ticks/s, Kafka acked {result['kafka_acked_per_s']:,.0f}/s; "
        f"per message: core {result['core_us_per_msg']:.1f} us (the Python path of messages "
        f"the core leaves: decode {result['decode_us_per_msg']:.1f} us, normalize "
        f"{result['normalize_us_per_msg']:.1f} us), produce {result['produce_us_per_msg']:.1f} us; "
        f"ingest process CPU {result['ingest_process_cpu_cores']:.2f} cores"
    )
    assert result["ticks_per_s"] > 0
