"""Sharded ingest: N processes, each its own FIX session on a share of the symbols.

The split (crc32 of the symbol), its config and command line, the venue accepting a
shard's SenderCompID, and two FixIngest shards (real QuickFIX) against one simulated venue
into one in-process bus: every symbol in exactly one shard, sequences contiguous.
"""

from __future__ import annotations

import argparse
import zlib
from pathlib import Path

import pytest
from bus_ticks import ticks_by_symbol
from polling import until

from fix_session.ingest import FixIngest
from fix_session.subscriptions import shard_of, shard_symbols
from fix_session.venue import SimulatedVenue
from mdfeed.cli.ingest import register_cli
from mdfeed.kernel.bus import MemoryBus
from mdfeed.kernel.config import (
    DEFAULT_SYMBOLS,
    BusConfig,
    ConfigError,
    FixSessionConfig,
    VenueConfig,
    build_config,
    parse_shard,
)

SYMBOLS = DEFAULT_SYMBOLS[:12]


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_every_symbol_is_in_exactly_one_shard(n: int) -> None:
    shards = [shard_symbols(DEFAULT_SYMBOLS, k, n) for k in range(1, n + 1)]
    assert sorted(s for shard in shards for s in shard) == sorted(DEFAULT_SYMBOLS)
    for k, shard in enumerate(shards, start=1):
        # The documented rule, the same in every process: crc32(symbol) % N == K - 1.
        assert all(zlib.crc32(s.encode()) % n == k - 1 for s in shard)
        assert all(shard_of(s, n) == k for s in shard)
    if n > 1:
        assert all(shards), "the default symbols leave a shard empty"


def test_shard_config_is_checked_and_names_the_key() -> None:
    assert parse_shard("") is None
    assert parse_shard("2/3") == (2, 3)
    config = build_config({"fix_session": {"shard": "1/2"}}, "test.toml", {})
    assert config.fix_session.shard == "1/2"
    for bad in ("0/2", "3/2", "1", "a/b", "1/2/3", "-1/2"):
        with pytest.raises(ConfigError, match=r"fix_session\.shard: .*K/N|fix_session\.shard:"):
            build_config({"fix_session": {"shard": bad}}, "test.toml", {})
    with pytest.raises(ConfigError) as error:
        build_config({}, "test.toml", {"MDFEED__FIX_SESSION__SHARD": "5/4"})
    assert "fix_session.shard: shard K/N needs 1 <= K <= N, got '5/4'" in str(error.value)


def test_shard_option_on_the_command_line() -> None:
    root = argparse.ArgumentParser(prog="mdfeed")
    register_cli(root.add_subparsers(dest="command", required=True))
    assert root.parse_args(["ingest", "--shard", "2/2"]).shard == "2/2"
    assert root.parse_args(["ingest"]).shard is None
    with pytest.raises(SystemExit):
        root.parse_args(["ingest", "--shard", "3/2"])


def test_a_shard_subscribes_its_symbols_under_its_own_comp_id() -> None:
    bus = MemoryBus(BusConfig(tick_topic="t"))
    producer = bus.producer()
    ingest = FixIngest(
        FixSessionConfig(shard="2/3"), symbols=DEFAULT_SYMBOLS, producer=producer, topic="t"
    )
    assert ingest.symbols == shard_symbols(DEFAULT_SYMBOLS, 2, 3)
    assert ingest.config.sender_comp_id == "MDFEED-2"
    own = FixIngest(
        FixSessionConfig(shard="2/3", sender_comp_id="FEED-B", shard_comp_id_suffix=False),
        symbols=DEFAULT_SYMBOLS,
        producer=producer,
        topic="t",
    )
    assert own.config.sender_comp_id == "FEED-B"
    unsharded = FixIngest(FixSessionConfig(), symbols=SYMBOLS, producer=producer, topic="t")
    assert unsharded.symbols == SYMBOLS
    assert unsharded.config.sender_comp_id == "MDFEED"
    (lonely,) = [s for s in DEFAULT_SYMBOLS if shard_of(s, 2) == 1][:1]
    with pytest.raises(ValueError, match="shard 2/2"):
        FixIngest(FixSessionConfig(shard="2/2"), symbols=[lonely], producer=producer, topic="t")


async def test_two_shards_on_one_venue_cover_every_symbol_once(tmp_path: Path) -> None:
    venue = SimulatedVenue(VenueConfig(port=0, symbols=SYMBOLS, rate_ticks_per_s=3000, seed=4))
    await venue.start()
    bus = MemoryBus(BusConfig(tick_topic="t", tick_partitions=3))
    await bus.start()
    producer = bus.producer()
    await producer.start()
    consumer = bus.consumer(["t"], from_beginning=True)
    await consumer.start()
    shards = [
        FixIngest(
            FixSessionConfig(
                port=venue.port, shard=f"{k}/2", log_dir=str(tmp_path), heartbeat_interval_s=5
            ),
            symbols=SYMBOLS,
            producer=producer,
            topic="t",
        )
        for k in (1, 2)
    ]
    try:
        for ingest in shards:
            await ingest.start()
        for ingest in shards:
            await ingest.wait_logged_on(15)
        assert {i.config.sender_comp_id for i in shards} == {"MDFEED-1", "MDFEED-2"}
        await until(
            lambda: all(
                ingest.normalizer.sequence(s) > 5 for ingest in shards for s in ingest.symbols
            ),
            timeout_s=20,
            interval_s=0.05,
            what="every symbol streaming in its shard",
        )
        # Two venue sessions, each streaming exactly its shard's symbols.
        streamed = sorted(tuple(sorted(s.subscriptions)) for s in venue.sessions)
        assert streamed == sorted(tuple(sorted(i.symbols)) for i in shards)
    finally:
        for ingest in shards:
            await ingest.stop()
    assert await producer.flush(5)
    ticks = await ticks_by_symbol(consumer)
    await consumer.stop()
    await producer.stop()
    await bus.stop()
    await venue.stop()
    first, second = (set(i.symbols) for i in shards)
    assert first.isdisjoint(second)
    assert first | second == set(SYMBOLS) == set(ticks)
    for symbol, items in ticks.items():
        assert [t.seq for t in items] == list(range(1, len(items) + 1)), symbol
        assert items[0].from_snapshot, symbol
