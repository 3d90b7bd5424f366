"""`mdfeed run`'s /metrics, scraped while it runs on the embedded config."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from mdfeed.cli.clients import watch
from mdfeed.cli.run import run_pipeline
from mdfeed.kernel.config import load_config
from mdfeed.stack.scratch import free_port

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


async def _scrape(url: str) -> Samples:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        text = await response.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[labels] = sample.value
    return samples


def _one(samples: Samples, name: str, **labels: str) -> float:
    return samples[name][tuple(sorted(labels.items()))]


async def test_mdfeed_run_exposes_consistent_tick_counters(tmp_path: Path) -> None:
    venue, grpc, metrics = free_port(), free_port(), free_port()
    env = {
        "MDFEED__VENUE__PORT": str(venue),
        "MDFEED__FIX_SESSION__PORT": str(venue),
        "MDFEED__FIX_SESSION__LOG_DIR": str(tmp_path / "fix"),
        "MDFEED__FANOUT__GRPC_PORT": str(grpc),
        "MDFEED__MQTT__PORT": str(free_port()),
        "MDFEED__STORE__SQLITE_PATH": str(tmp_path / "store.sqlite3"),
        "MDFEED__DATAFEED__HTTP_PORT": str(free_port()),
        "MDFEED__METRICS__PORT": str(metrics),
    }
    config = load_config("embedded", env)
    out = io.StringIO()
    url = f"http://127.0.0.1:{metrics}/metrics"
    run = asyncio.create_task(run_pipeline(config, duration_s=60, out=out))
    try:
        async with asyncio.timeout(45):
            while f"metrics on {url}" not in out.getvalue():
                assert not run.done(), out.getvalue()
                await asyncio.sleep(0.1)
            # A gRPC client takes 50 ticks: the fanout has ticks out, not only in.
            assert (
                await watch(f"127.0.0.1:{grpc}", ["AAPL", "MSFT"], count=50, out=io.StringIO()) == 0
            )
            while True:
                samples = await _scrape(url)
                if _one(samples, "mdfeed_ohlcv_ticks_total") > 0:
                    break
                await asyncio.sleep(0.2)
    finally:
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)

    ingest_ticks = _one(samples, "mdfeed_ingest_ticks_total")
    fanout_in = _one(samples, "mdfeed_fanout_ticks_in_total")
    assert _one(samples, "mdfeed_fix_logged_on") == 1
    assert _one(samples, "mdfeed_ingest_fix_messages_total") > 0
    assert 0 < fanout_in <= ingest_ticks
    assert 0 < _one(samples, "mdfeed_ohlcv_ticks_total") <= ingest_ticks
    assert _one(samples, "mdfeed_fanout_ticks_out_total", transport="grpc") >= 50
    assert _one(samples, "mdfeed_ingest_rejected_total", reason="decode") == 0
    latency_count = _one(samples, "mdfeed_ingest_latency_seconds_count")
    assert 0 < latency_count <= _one(samples, "mdfeed_ingest_fix_messages_total")
    assert _one(samples, "mdfeed_ingest_latency_seconds_bucket", le="+Inf") == latency_count
    assert _one(samples, "mdfeed_fanout_bus_latency_seconds_count") > 0
    assert _one(samples, "mdfeed_ohlcv_flush_seconds_count") > 0
    assert set(samples["mdfeed_bus_producer_buffered_records"]) == {
        (("producer", "bars"),),
        (("producer", "ingest"),),
    }
    consumers = {dict(labels)["consumer"] for labels in samples["mdfeed_consumer_lag_records"]}
    assert consumers == {"fanout", "chat", "bars", "ohlcv"}
    assert _one(samples, "mdfeed_datafeed_stream_clients") == 0
