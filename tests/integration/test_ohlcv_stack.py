"""Bars through the real stack: `mdfeed aggregate` on Kafka and Cassandra, killed with
SIGKILL in the middle and restarted; `mdfeed reconcile` must then find 0 differences."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from polling import until_sync

from mdfeed.kernel.bus import open_bus
from mdfeed.kernel.config import MdfeedConfig
from mdfeed.stack.scratch import free_port
from proto import mdfeed_pb2 as pb

T0 = 1_763_900_000_000_000_000  # 2025-11-23T12:13:20Z
SYMBOLS = [f"S{i:02d}" for i in range(8)]
# The installed build: -P keeps the working directory (the source tree) off sys.path.
MDFEED = [sys.executable, "-P", "-m", "mdfeed.cli"]


def _ticks(start: int, count: int) -> list[pb.Tick]:
    """Per symbol: quotes and ~20% trades, 97 ms apart, prices walking by cents."""
    out = []
    for i in range(start, start + count):
        symbol = SYMBOLS[i % len(SYMBOLS)]
        n = i // len(SYMBOLS)
        px = (100 + (n * 37) % 91) * 1_000_000  # 1.00 .. 1.90, in 1e-8 units x 100
        t = T0 + n * 97_000_000
        if n % 5 == 0:
            tick = pb.Tick(symbol=symbol, seq=n + 1, kind=pb.TICK_KIND_TRADE, venue_time_ns=t)
            tick.last_px_e8 = px
            tick.last_size_e8 = (1 + n % 7) * 100_000_000
        else:
            tick = pb.Tick(symbol=symbol, seq=n + 1, kind=pb.TICK_KIND_QUOTE, venue_time_ns=t)
            tick.bid_px_e8 = px
            tick.ask_px_e8 = px + 1_000_000
        out.append(tick)
    return out


async def _publish(config: MdfeedConfig, ticks: list[pb.Tick]) -> None:
    async with open_bus(config.bus) as bus, bus.producer() as producer:
        for tick in ticks:
            producer.send(config.bus.tick_topic, tick.symbol.encode(), tick.SerializeToString())
        assert await producer.flush(60)


def _ticks_seen(log: Path) -> int:
    found = re.findall(r"ticks ([\d,]+) \|", log.read_text())
    return int(found[-1].replace(",", "")) if found else 0


def _settled(log: Path, at_least: int) -> bool:
    counts = [int(c.replace(",", "")) for c in re.findall(r"ticks ([\d,]+) \|", log.read_text())]
    return len(counts) >= 2 and counts[-1] >= at_least and counts[-1] == counts[-2]


def _start(config_file: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [*MDFEED, "aggregate", "--config", str(config_file)],
            stdout=out,
            stderr=subprocess.STDOUT,
            # Several aggregators on one host: each its own metrics port.
            env={**os.environ, "MDFEED__METRICS__PORT": str(free_port())},
        )


def _wait(
    predicate_text: str, log: Path, proc: subprocess.Popen[bytes], check: Callable[[Path], bool]
) -> None:
    def done() -> bool:
        if check(log):
            return True
        if proc.poll() is not None:
            pytest.fail(f"mdfeed aggregate exited ({predicate_text}):\n{log.read_text()[-3000:]}")
        return False

    until_sync(
        done,
        timeout_s=90,
        interval_s=0.2,
        what=lambda: f"{predicate_text}:\n{log.read_text()[-3000:]}",
    )


def _config_file(tmp_path: Path, stack_config: MdfeedConfig, unique_name: str) -> Path:
    config_file = tmp_path / "bars.toml"
    config_file.write_text(
        f"""
[bus]
kind = "kafka"
bootstrap_servers = "{stack_config.bus.bootstrap_servers}"
tick_topic = "{unique_name}_ticks"
chat_topic = "{unique_name}_chat"
tick_partitions = 3

[store]
kind = "cassandra"
keyspace = "{unique_name}"

[ohlcv]
group_id = "{unique_name}"
flush_interval_ms = 100
allowed_lateness_s = 1.0
""",
        encoding="utf-8",
    )
    return config_file


def _bus_config(stack_config: MdfeedConfig, unique_name: str) -> MdfeedConfig:
    return dataclasses.replace(
        stack_config,
        bus=dataclasses.replace(
            stack_config.bus, tick_topic=f"{unique_name}_ticks", tick_partitions=3
        ),
    )


def _reconcile(config_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MDFEED, "reconcile", "--config", str(config_file)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _assert_exact(result: subprocess.CompletedProcess[str], total: int) -> None:
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert f"ticks read {total:,} (0 undecodable)" in result.stdout, result.stdout
    assert "missing 0, extra 0, different 0: 0 differences" in result.stdout, result.stdout
    found = re.search(r"bars recomputed ([\d,]+)", result.stdout)
    assert found is not None, result.stdout
    assert int(found.group(1).replace(",", "")) > 1_000, result.stdout


def test_bars_survive_a_kill_9_with_zero_differences(
    tmp_path: Path, stack_config: MdfeedConfig, unique_name: str
) -> None:
    config_file = _config_file(tmp_path, stack_config, unique_name)
    config = _bus_config(stack_config, unique_name)
    first_part, second_part, third_part = (
        _ticks(0, 12_000),
        _ticks(12_000, 12_000),
        _ticks(24_000, 8_000),
    )
    asyncio.run(_publish(config, first_part))
    log1, log2 = tmp_path / "aggregate1.log", tmp_path / "aggregate2.log"
    proc = _start(config_file, log1)
    try:
        _wait("ready", log1, proc, lambda log: "aggregator ready" in log.read_text())
        asyncio.run(_publish(config, second_part))
        _wait("16,000 ticks", log1, proc, lambda log: _ticks_seen(log) >= 16_000)
        proc.send_signal(signal.SIGKILL)  # in the middle of the second part
        proc.wait(10)
        proc = _start(config_file, log2)
        _wait("ready again", log2, proc, lambda log: "aggregator ready" in log.read_text())
        asyncio.run(_publish(config, third_part))
        total = len(first_part) + len(second_part) + len(third_part)
        # The restarted member reads from the last commit to the end: wait until its count
        # has stopped moving (two progress lines alike), then for a last flush.
        _wait("the rest of the log", log2, proc, lambda log: _settled(log, len(third_part)))
        time.sleep(1.0)
        result = _reconcile(config_file)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    _assert_exact(result, total)
    restored = re.findall(r"restored (\d+)", log2.read_text())
    assert int((restored or ["0"])[-1]) >= 1, "the restart did not use the checkpoints"


def test_a_second_member_takes_over_a_killed_one_with_zero_differences(
    tmp_path: Path, stack_config: MdfeedConfig, unique_name: str
) -> None:
    # Two members split the 3 partitions; one is killed; after the group's session
    # timeout the other takes its partitions over from their checkpoints.
    config_file = _config_file(tmp_path, stack_config, unique_name)
    config = _bus_config(stack_config, unique_name)
    parts = _ticks(0, 9_000), _ticks(9_000, 9_000), _ticks(18_000, 6_000)
    logs = tmp_path / "a.log", tmp_path / "b.log"
    procs = [_start(config_file, log) for log in logs]
    try:
        for proc, log in zip(procs, logs, strict=True):
            _wait("ready", log, proc, lambda log: "aggregator ready" in log.read_text())
        asyncio.run(_publish(config, parts[0]))
        for proc, log in zip(procs, logs, strict=True):  # both hold partitions
            _wait("ticks", log, proc, lambda log: _ticks_seen(log) > 0)
        asyncio.run(_publish(config, parts[1]))
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(10)
        asyncio.run(_publish(config, parts[2]))
        total = sum(len(part) for part in parts)
        # The takeover waits for the group's session timeout (10 s): reconcile until the
        # survivor has caught up, or the deadline shows the differences that stayed.
        deadline = time.monotonic() + 90
        result = _reconcile(config_file)
        while result.returncode != 0 and time.monotonic() < deadline:
            assert procs[1].poll() is None, logs[1].read_text()[-3000:]
            time.sleep(2.0)
            result = _reconcile(config_file)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
    _assert_exact(result, total)
    restored = re.findall(r"restored (\d+)", logs[1].read_text())
    assert int((restored or ["0"])[-1]) >= 1, "the survivor took nothing over"
