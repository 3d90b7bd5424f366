"""The SQLite bar store: the shared bar store contract, plus what only SQLite has."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from mdfeed.kernel.config import OhlcvConfig, StoreConfig
from proto import mdfeed_pb2 as pb
from storage import (
    CassandraBarStore,
    Checkpoint,
    SqliteBarStore,
    SqliteChatStore,
    StoreUnavailableError,
    open_bar_store,
)
from storage.bar_contract import (
    BAR_CONTRACT_CHECKS,
    CHECKPOINT_CONTRACT_CHECKS,
    T0,
    BarContractCheck,
    CheckpointContractCheck,
    make_bar,
)


@pytest.mark.parametrize("check", BAR_CONTRACT_CHECKS.values(), ids=BAR_CONTRACT_CHECKS.keys())
async def test_sqlite_bar_store_passes_the_bar_store_contract(
    check: BarContractCheck, tmp_path: Path
) -> None:
    path = tmp_path / "bars.sqlite3"
    async with asyncio.timeout(120):
        await check(lambda: SqliteBarStore(path))


@pytest.mark.parametrize(
    "check", CHECKPOINT_CONTRACT_CHECKS.values(), ids=CHECKPOINT_CONTRACT_CHECKS.keys()
)
async def test_sqlite_bar_store_passes_the_checkpoint_contract(
    check: CheckpointContractCheck, tmp_path: Path
) -> None:
    path = tmp_path / "bars.sqlite3"
    async with asyncio.timeout(120):
        await check(lambda group: SqliteBarStore(path, checkpoint_group=group))


async def test_a_file_made_before_checkpoints_had_an_incarnation_opens_and_loads_them(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bars.sqlite3"
    with sqlite3.connect(path) as conn:  # the bar_checkpoints table of earlier versions
        conn.execute(
            """CREATE TABLE bar_checkpoints (
                group_id TEXT NOT NULL, symbol TEXT NOT NULL, "partition" INTEGER NOT NULL,
                "offset" INTEGER NOT NULL, state BLOB NOT NULL, PRIMARY KEY (group_id, symbol)
            )"""
        )
        conn.execute(
            "INSERT INTO bar_checkpoints VALUES ('mdfeed-ohlcv', 'AAPL', 2, 4000, x'0102')"
        )
    conn.close()
    async with SqliteBarStore(path) as store:
        assert await store.load_checkpoint("AAPL") == Checkpoint(2, 4000, b"\x01\x02", "")
        await store.save_checkpoints({"MSFT": Checkpoint(1, 7, b"m", "memory:b/md.ticks")})
    async with SqliteBarStore(path) as store:  # the column is there now: opens as it is
        assert await store.load_checkpoint("MSFT") == Checkpoint(1, 7, b"m", "memory:b/md.ticks")
        assert await store.load_checkpoint("AAPL") == Checkpoint(2, 4000, b"\x01\x02")


async def test_a_checkpoint_save_is_one_transaction_refused_whole_when_locked(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bars.sqlite3"
    before = {"A": Checkpoint(0, 1, b"a1"), "B": Checkpoint(1, 1, b"b1")}
    async with SqliteBarStore(path, busy_timeout_s=0.2) as store:
        await store.save_checkpoints(before)
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
        try:
            with pytest.raises(StoreUnavailableError, match=r"checkpoints of 'A', 'B'.*write lock"):
                await store.save_checkpoints(
                    {"A": Checkpoint(0, 2, b"a2"), "B": Checkpoint(1, 2, b"")}
                )
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert await store.load_checkpoint("A") == before["A"]
        assert await store.load_checkpoint("B") == before["B"]
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            'SELECT group_id, symbol, "partition", "offset", state FROM bar_checkpoints ORDER BY symbol'
        ).fetchall()
    assert rows == [("mdfeed-ohlcv", "A", 0, 1, b"a1"), ("mdfeed-ohlcv", "B", 1, 1, b"b1")]


async def test_bars_share_the_chat_stores_file_in_a_table_of_their_own(tmp_path: Path) -> None:
    path = tmp_path / "a" / "mdfeed.sqlite3"
    bar = make_bar("AAPL", pb.RESOLUTION_1M, T0)
    async with SqliteChatStore(path) as chat, SqliteBarStore(path) as bars:
        await chat.append("lobby", "m1", "alice", "hi", 1)
        await bars.upsert([bar])
        assert await bars.history("AAPL", pb.RESOLUTION_1M, 0, T0 + 1) == [bar]
        assert (await chat.history("lobby", 0, 10))[0].text == "hi"
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT symbol, resolution, open_time_ns FROM bars").fetchall() == [
            ("AAPL", pb.RESOLUTION_1M, T0)
        ]


async def test_a_file_that_cannot_be_opened_is_unavailable_and_named(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a directory should be")
    path = blocker / "bars.sqlite3"
    store = SqliteBarStore(path)
    with pytest.raises(StoreUnavailableError, match=str(path)):
        await store.start()
    await store.close()


async def test_a_write_lock_held_too_long_is_unavailable_and_stores_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bars.sqlite3"
    async with SqliteBarStore(path, busy_timeout_s=0.2) as store:
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
        try:
            with pytest.raises(StoreUnavailableError, match="write lock"):
                await store.upsert([make_bar("AAPL", pb.RESOLUTION_1S, T0)])
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert await store.symbols() == []
        await store.upsert([make_bar("AAPL", pb.RESOLUTION_1S, T0)])
        assert await store.symbols() == ["AAPL"]


def test_open_bar_store_picks_the_adapter_the_config_names(tmp_path: Path) -> None:
    ohlcv = OhlcvConfig(group_id="ohlcv-blue", ttl_1s_days=3, ttl_1m_days=0)
    sqlite = open_bar_store(StoreConfig(kind="sqlite", sqlite_path=str(tmp_path / "x.db")), ohlcv)
    assert isinstance(sqlite, SqliteBarStore)
    assert sqlite.path == tmp_path / "x.db"
    assert sqlite.checkpoint_group == "ohlcv-blue"
    assert not sqlite.path.exists(), "nothing is opened before start()"
    cassandra = open_bar_store(StoreConfig(kind="cassandra", keyspace="mdfeed_bars"), ohlcv)
    assert isinstance(cassandra, CassandraBarStore)  # no connection until start()
    assert cassandra.keyspace == "mdfeed_bars"
    assert cassandra.checkpoint_group == "ohlcv-blue"
    assert SqliteBarStore(tmp_path / "y.db").checkpoint_group == OhlcvConfig().group_id


@pytest.mark.parametrize("group", ["", None, "\ud800"])
def test_a_bad_checkpoint_group_is_refused_up_front(group: object, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="checkpoint_group"):
        SqliteBarStore(tmp_path / "x.db", checkpoint_group=group)  # type: ignore[arg-type]  # None too
    with pytest.raises(ValueError, match="checkpoint_group"):
        CassandraBarStore(["127.0.0.1"], 9042, "mdfeed", 1, checkpoint_group=group)  # type: ignore[arg-type]  # None too


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"keyspace": "has-dash"}, "keyspace"),
        ({"keyspace": "1abc"}, "keyspace"),
        ({"ttl_1s_days": -1}, "ttl_1s_days"),
        ({"ttl_1m_days": 4000}, "ttl_1m_days"),
        ({"max_in_flight": 0}, "max_in_flight"),
        ({"port": 0}, "port"),
    ],
)
def test_bad_cassandra_settings_are_refused_up_front(kwargs: dict[str, object], named: str) -> None:
    settings: dict[str, object] = {"port": 9042, "keyspace": "mdfeed", **kwargs}
    port, keyspace = settings.pop("port"), settings.pop("keyspace")
    with pytest.raises(ValueError, match=named):
        CassandraBarStore(["127.0.0.1"], port, keyspace, 1, **settings)  # type: ignore[arg-type]  # bad values
