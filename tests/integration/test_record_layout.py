"""bench.harness.record_layout against the real Kafka: both layouts carry every tick."""

from __future__ import annotations

from bench.harness.record_layout import measure
from mdfeed.kernel.config import MdfeedConfig


async def test_both_layouts_round_trip_every_tick_through_kafka(
    stack_config: MdfeedConfig,
) -> None:
    results = await measure(stack_config.bus.bootstrap_servers, ticks=2_000, batch=8)
    assert set(results) == {"tick_per_record", "batch_of_8"}
    assert results["tick_per_record"]["records"] == 2_000
    # 50 symbols of 40 ticks each: 5 full batches of 8 per symbol.
    assert results["batch_of_8"]["records"] == 250
    for figures in results.values():
        assert figures["consume_us_per_tick"] > 0
        assert figures["produce_us_per_tick"] > 0
