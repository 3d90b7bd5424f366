"""The Cassandra bar store on the local stack's Cassandra: the shared bar store and
checkpoint contracts, the schema it creates (partition buckets, TWCS, TTLs, their
migration, checkpoints without TTL), a failed write surfacing as an error, and Cassandra
unreachable.

Each test gets a keyspace of its own (named after the test), dropped afterwards.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable

import pytest

from mdfeed.kernel.config import MdfeedConfig
from mdfeed.stack.scratch import free_port
from proto import mdfeed_pb2 as pb
from storage import CassandraBarStore, Checkpoint, StoreError, StoreUnavailableError
from storage._bars_cassandra import bucket_of
from storage.bar_contract import (
    BAR_CONTRACT_CHECKS,
    CHECKPOINT_CONTRACT_CHECKS,
    DAY,
    T0,
    BarContractCheck,
    BarStoreFactory,
    CheckpointContractCheck,
    S,
    make_bar,
)
from storage.cassandra import CassandraSession

MakeStore = Callable[..., CassandraBarStore]


@pytest.fixture
async def make_cassandra_store(
    stack_config: MdfeedConfig, unique_name: str
) -> AsyncIterator[MakeStore]:
    config = stack_config.store

    def make(*, checkpoint_group: str = "mdfeed-ohlcv", **options: int) -> CassandraBarStore:
        return CassandraBarStore(
            config.cassandra_contact_points,
            config.cassandra_port,
            unique_name,
            config.replication_factor,
            checkpoint_group=checkpoint_group,
            **options,
        )

    yield make
    db = await CassandraSession.connect(config.cassandra_contact_points, config.cassandra_port)
    try:
        await db.ensure_schema([f"DROP KEYSPACE IF EXISTS {unique_name}"])
    finally:
        await db.close()


@pytest.fixture
async def db(stack_config: MdfeedConfig) -> AsyncIterator[CassandraSession]:
    config = stack_config.store
    session = await CassandraSession.connect(config.cassandra_contact_points, config.cassandra_port)
    yield session
    await session.close()


@pytest.mark.parametrize("check", BAR_CONTRACT_CHECKS.values(), ids=BAR_CONTRACT_CHECKS.keys())
async def test_cassandra_bar_store_passes_the_bar_store_contract(
    check: BarContractCheck, make_cassandra_store: MakeStore
) -> None:
    factory: BarStoreFactory = make_cassandra_store  # kept for good: no TTL
    async with asyncio.timeout(120):
        await check(factory)


@pytest.mark.parametrize(
    "check", CHECKPOINT_CONTRACT_CHECKS.values(), ids=CHECKPOINT_CONTRACT_CHECKS.keys()
)
async def test_cassandra_bar_store_passes_the_checkpoint_contract(
    check: CheckpointContractCheck, make_cassandra_store: MakeStore
) -> None:
    async with asyncio.timeout(120):
        await check(lambda group: make_cassandra_store(checkpoint_group=group, max_in_flight=16))


async def test_checkpoints_are_one_row_per_group_and_symbol_without_ttl(
    make_cassandra_store: MakeStore, db: CassandraSession, unique_name: str
) -> None:
    async with make_cassandra_store(ttl_1s_days=7, checkpoint_group="g1") as store:
        await store.save_checkpoints({"AAPL": Checkpoint(3, 99, b"\x00s")})
        await store.save_checkpoints({"AAPL": Checkpoint(3, 100, b"\x00t", "kafka:c/t")})
    rows = await db.execute(
        "SELECT group_id, symbol, partition, offset, state, incarnation, TTL(state) AS ttl "
        f"FROM {unique_name}.bar_checkpoints"
    )
    assert rows == [
        {
            "group_id": "g1",
            "symbol": "AAPL",
            "partition": 3,
            "offset": 100,
            "state": b"\x00t",
            "incarnation": "kafka:c/t",
            "ttl": None,
        }
    ]


async def test_a_keyspace_made_before_checkpoints_had_an_incarnation_opens_and_loads_them(
    make_cassandra_store: MakeStore, db: CassandraSession, unique_name: str
) -> None:
    await db.ensure_keyspace(unique_name, 1)
    await db.ensure_schema(  # the bar_checkpoints table of earlier versions
        [
            f"""CREATE TABLE {unique_name}.bar_checkpoints (
                group_id text, symbol text, partition int, offset bigint, state blob,
                PRIMARY KEY ((group_id, symbol))
            )"""
        ]
    )
    await db.execute(
        f"INSERT INTO {unique_name}.bar_checkpoints (group_id, symbol, partition, offset, state) "
        "VALUES ('mdfeed-ohlcv', 'AAPL', 2, 4000, 0x0102)"
    )
    async with make_cassandra_store() as store:
        assert await store.load_checkpoint("AAPL") == Checkpoint(2, 4000, b"\x01\x02", "")
        await store.save_checkpoints({"MSFT": Checkpoint(1, 7, b"m", "kafka:c/md.ticks")})
    async with make_cassandra_store() as store:  # the column is there now: opens as it is
        assert await store.load_checkpoint("MSFT") == Checkpoint(1, 7, b"m", "kafka:c/md.ticks")
        assert await store.load_checkpoint("AAPL") == Checkpoint(2, 4000, b"\x01\x02")


async def test_a_failed_checkpoint_save_raises_naming_server_group_and_symbols(
    make_cassandra_store: MakeStore, db: CassandraSession, unique_name: str
) -> None:
    checkpoints = {f"S{i}": Checkpoint(0, i, b"s") for i in range(10)}
    async with make_cassandra_store(checkpoint_group="g1") as store:
        await store.save_checkpoints(checkpoints)
        await db.ensure_schema([f"DROP TABLE {unique_name}.bar_checkpoints"])
        with pytest.raises(StoreError, match=re.escape(db.endpoints)) as raised:
            await store.save_checkpoints(checkpoints)
        message = str(raised.value)
        assert "checkpoints of 'S0', 'S1', 'S2' and 7 more (group 'g1')" in message, message
        # Bars are another table: still written.
        await store.upsert([make_bar("S0", pb.RESOLUTION_1D, T0)])


async def test_a_series_is_split_into_bounded_buckets_and_read_across_them(
    make_cassandra_store: MakeStore, db: CassandraSession, unique_name: str
) -> None:
    """1s bars across midnight UTC land in two day partitions; reads stitch them."""
    bars = [make_bar("MID", pb.RESOLUTION_1S, T0 - 90 * S + i * S, i) for i in range(180)]
    async with make_cassandra_store(max_in_flight=4) as store:
        await store.upsert(bars)
        assert await store.history("MID", pb.RESOLUTION_1S, T0 - DAY, T0 + DAY) == bars
        assert await store.history("MID", pb.RESOLUTION_1S, 0, T0 + DAY, 120) == bars[60:]
    rows = await db.execute(
        f"SELECT bucket, open_time_ns FROM {unique_name}.bars_1s "
        "WHERE symbol = 'MID' AND resolution = 1 AND bucket IN (%s, %s)",
        (bucket_of(pb.RESOLUTION_1S, T0 - 1), bucket_of(pb.RESOLUTION_1S, T0)),
    )
    per_bucket: dict[int, int] = {}
    for row in rows:
        per_bucket[row["bucket"]] = per_bucket.get(row["bucket"], 0) + 1
    assert per_bucket == {T0 // DAY - 1: 90, T0 // DAY: 90}
    index = await db.execute(
        f"SELECT bucket FROM {unique_name}.bar_buckets WHERE symbol = 'MID' AND resolution = 1"
    )
    assert [row["bucket"] for row in index] == [T0 // DAY - 1, T0 // DAY]


async def _table_options(db: CassandraSession, keyspace: str) -> dict[str, tuple[int, str, str]]:
    rows = await db.execute(
        "SELECT table_name, default_time_to_live, compaction FROM system_schema.tables "
        "WHERE keyspace_name = %s",
        (keyspace,),
    )
    return {
        row["table_name"]: (
            row["default_time_to_live"],
            row["compaction"]["class"].rsplit(".", 1)[-1],
            row["compaction"].get("compaction_window_size", ""),
        )
        for row in rows
    }


async def test_schema_has_twcs_per_bucket_and_ttls_that_follow_the_config(
    make_cassandra_store: MakeStore, db: CassandraSession, unique_name: str
) -> None:
    twcs = "TimeWindowCompactionStrategy"
    async with make_cassandra_store(ttl_1s_days=7, ttl_1m_days=90):
        pass
    tables = await _table_options(db, unique_name)
    assert tables == {
        "bars_1s": (7 * 86_400, twcs, "1"),
        "bars_1m": (90 * 86_400, twcs, "30"),
        "bars_intraday": (0, twcs, "365"),
        "bars_daily": (0, twcs, "3650"),
        "bar_buckets": (0, "SizeTieredCompactionStrategy", ""),
        "bar_symbols": (0, "SizeTieredCompactionStrategy", ""),
        "bar_checkpoints": (0, "SizeTieredCompactionStrategy", ""),
    }
    # A restart with other TTLs migrates the tables; the bars stay.
    bar = make_bar("TTL", pb.RESOLUTION_1M, T0)
    async with make_cassandra_store(ttl_1s_days=3, ttl_1m_days=90) as store:
        await store.upsert([bar])
    async with make_cassandra_store(ttl_1s_days=0, ttl_1m_days=30) as store:
        assert await store.history("TTL", pb.RESOLUTION_1M, 0, T0 + 1) == [bar]
    tables = await _table_options(db, unique_name)
    assert tables["bars_1s"] == (0, twcs, "1")
    assert tables["bars_1m"] == (30 * 86_400, twcs, "30")


async def test_fine_bars_get_the_tables_ttl_and_coarse_ones_none(
    make_cassandra_store: MakeStore, db: CassandraSession, unique_name: str
) -> None:
    async with make_cassandra_store(ttl_1s_days=7) as store:
        await store.upsert(
            [make_bar("EXP", pb.RESOLUTION_1S, T0), make_bar("EXP", pb.RESOLUTION_1D, T0)]
        )
    rows = await db.execute(
        f"SELECT TTL(close_px_e8) AS ttl FROM {unique_name}.bars_1s "
        "WHERE symbol = 'EXP' AND resolution = 1 AND bucket = %s",
        (T0 // DAY,),
    )
    assert len(rows) == 1
    assert 7 * 86_400 - 60 <= rows[0]["ttl"] <= 7 * 86_400
    rows = await db.execute(
        f"SELECT TTL(close_px_e8) AS ttl FROM {unique_name}.bars_daily "
        "WHERE symbol = 'EXP' AND resolution = 6 AND bucket = %s",
        (bucket_of(pb.RESOLUTION_1D, T0),),
    )
    assert [row["ttl"] for row in rows] == [None], "daily bars are kept"


async def test_a_failed_write_raises_and_names_the_server(
    make_cassandra_store: MakeStore, db: CassandraSession, unique_name: str
) -> None:
    """A write the server refuses fails the whole call (so the caller commits nothing)."""
    async with make_cassandra_store() as store:
        await store.upsert([make_bar("GONE", pb.RESOLUTION_1H, T0)])
        await db.ensure_schema([f"DROP TABLE {unique_name}.bars_intraday"])
        bars = [make_bar("GONE", pb.RESOLUTION_1H, T0 + i * 3600 * S, i) for i in range(50)]
        with pytest.raises(StoreError, match=re.escape(db.endpoints)) as raised:
            await store.upsert([make_bar("GONE", pb.RESOLUTION_1D, T0), *bars])
        assert "bars" in str(raised.value)
        # Other tables still work.
        await store.upsert([make_bar("GONE", pb.RESOLUTION_1D, T0)])


async def test_cassandra_down_is_unavailable_naming_host_and_port() -> None:
    port = free_port()
    store = CassandraBarStore(["127.0.0.1"], port, "mdfeed_bars", 1, connect_timeout_s=2.0)
    with pytest.raises(StoreUnavailableError, match=f"127.0.0.1:{port}"):
        await store.start()
    await store.close()
