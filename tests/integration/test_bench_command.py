"""`mdfeed bench` end to end on the real stack: a short fixed-rate run, its files and figures."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.harness.stats import HOPS

pytestmark = pytest.mark.integration


async def _topics() -> set[str]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers="127.0.0.1:9092")
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def _gone(topic: str) -> bool:
    # Deleting is asynchronous on the broker: allow it a few seconds to show.
    for _ in range(50):
        if topic not in await _topics():
            return True
        await asyncio.sleep(0.2)
    return False


def test_a_short_fixed_run_times_every_hop_and_writes_its_results(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            "-P",  # the installed build, not the source tree that may be the working directory
            "-m",
            "mdfeed.cli",
            "bench",
            "--scenarios",
            "fixed",
            "--rate",
            "2000",
            "--duration",
            "3",
            "--warmup",
            "2",
            "--floor-seconds",
            "2",
            "--grpc",
            "2",
            "--mqtt",
            "1",
            "--symbols",
            "10",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # The stack was up before (the test session's), so the bench left it alone.
    assert "already running (left running)" in result.stderr
    assert "fixed: venue at 2,000 entries/s for 3 s" in result.stdout
    document = json.loads((out / "results.json").read_text())
    (fixed,) = document["scenarios"]
    rates = fixed["rates_per_s"]
    for stage in ("venue", "ingest", "fanout_in", "grpc_out", "grpc_per_stream", "mqtt_clients"):
        assert rates[stage] > 0, stage
    # Every stream got what the fanout consumed, give or take a sampling interval's edge.
    assert 0.8 < rates["grpc_per_stream"] / rates["fanout_in"] < 1.2
    grpc = fixed["latency_ms"]["grpc"]
    for hop, _, _ in HOPS:
        assert grpc[hop]["count"] > 0, hop
        assert grpc[hop]["p50"] <= grpc[hop]["p99"] <= grpc[hop]["p99_9"] <= grpc[hop]["max"]
    # A later point of the same tick is never earlier: exact stamps from ingest on.
    assert grpc["ingest->client"]["p50"] >= grpc["fanout->client"]["p50"]
    assert fixed["latency_ms"]["mqtt"]["fanout->client"]["count"] > 0
    assert fixed["kafka_floor_ms"]["count"] > 0
    assert fixed["ratios"]["ingest_to_client_p99_vs_kafka_floor"] > 0
    # The floor again with the pipeline running: its records come from the same rate.
    assert fixed["kafka_floor_loaded_ms"]["count"] > 0
    assert fixed["ratios"]["ingest_to_client_p99_vs_loaded_kafka_floor"] > 0
    # The relay floor (bare Kafka, then a bare gRPC relay to as many streams) timed records.
    assert fixed["relay_floor_ms"]["count"] > 0
    assert fixed["relay_floor_ms"]["streams"] == 2
    assert fixed["ratios"]["ingest_to_client_p99_vs_relay_floor"] > 0
    assert "relay floor (bare aiokafka, then bare grpc.aio to 2 streams)" in result.stdout
    # Cores used over the measured seconds, per process: the services and Kafka worked.
    cpu = fixed["cpu_cores"]
    for name in ("ingest", "fanout", "kafka", "grpc subscribers", "harness and venue"):
        assert cpu[name] > 0, name
    assert "cores used (" in result.stdout
    assert len(fixed["series"]) >= 5
    for png in ("latency-histogram.png", "throughput.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    # The run's topics are deleted with it.
    assert document["tick_topic"].startswith("bench.")
    assert asyncio.run(_gone(document["tick_topic"]))
    # Everything the run started is stopped: the venue, the services and their endpoints.
    for name in ("venue", "grpc", "ingest_metrics", "fanout_metrics"):
        with (
            pytest.raises(ConnectionRefusedError),
            socket.create_connection(("127.0.0.1", document["ports"][name]), timeout=2),
        ):
            pass


def test_the_ingest_scenario_ends_with_its_headline_against_the_bare_quickfix_floor(
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable, "-P", "-m", "mdfeed.cli", "bench",
            "--scenarios", "ingest", "--ingest-seconds", "2",
            "--grpc", "1", "--mqtt", "0", "--symbols", "10", "--out", str(out),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    match = re.fullmatch(
        r"ingest: ([\d,]+) quote updates/s \((\d+\.\d\d) of bare QuickFIX\)", last
    )
    assert match, result.stdout[-2000:]
    assert int(match.group(1).replace(",", "")) > 0
    assert float(match.group(2)) > 0
    document = json.loads((out / "results.json").read_text())
    (ingest,) = document["scenarios"]
    assert ingest["name"] == "ingest"
    assert ingest["bare_quickfix"]["fix_msgs_per_s"] > 0
    assert ingest["bare_quickfix"]["entries_per_x"] > 1  # one request: several per X
    assert ingest["ingest"]["ticks_per_s"] > 0
    assert ingest["ingest"]["cores_allowed"] == 1
    assert ingest["ingest"]["decode_errors"] == 0
    assert set(ingest["ingest"]["stage_us"]) >= {"decode", "normalize", "produce"}


def test_sigterm_stops_everything_the_run_started(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable, "-P", "-m", "mdfeed.cli", "bench",
            "--scenarios", "fixed", "--duration", "120", "--warmup", "60",
            "--grpc", "1", "--mqtt", "1", "--symbols", "5", "--out", str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        seen.append(line)
        if line.startswith("pipeline up:") or not line:
            break
    assert seen[-1].startswith("pipeline up:"), "".join(seen)[-3000:]
    ports = [int(p) for p in re.findall(r":(\d+)", seen[-1])]
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr[-3000:]
    assert "interrupted; stopping what it started" in stderr
    assert "no scenario finished; nothing written" in stderr
    assert not (out / "results.json").exists()
    # The venue, gRPC and both metrics endpoints are gone with the services behind them.
    assert len(ports) >= 4
    for port in ports:
        with (
            pytest.raises(ConnectionRefusedError),
            socket.create_connection(("127.0.0.1", port), timeout=2),
        ):
            pass
