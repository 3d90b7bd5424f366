"""The SQLite chat store: the shared chat store contract, plus what only SQLite has."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path

import pytest

from mdfeed.kernel.config import StoreConfig
from storage import (
    CassandraChatStore,
    SqliteChatStore,
    StoreUnavailableError,
    open_chat_store,
)
from storage.contract import CONTRACT_CHECKS, ContractCheck


@pytest.mark.parametrize("check", CONTRACT_CHECKS.values(), ids=CONTRACT_CHECKS.keys())
async def test_sqlite_chat_store_passes_the_chat_store_contract(
    check: ContractCheck, tmp_path: Path
) -> None:
    path = tmp_path / "chat.sqlite3"
    async with asyncio.timeout(120):
        await check(lambda: SqliteChatStore(path))


async def test_parent_directories_are_created_and_the_journal_is_wal(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "mdfeed.sqlite3"
    async with SqliteChatStore(path) as store:
        await store.append("lobby", "m1", "alice", "hi", 1)
    assert path.is_file()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT room, seq, id FROM chat_messages").fetchall() == [
            ("lobby", 1, "m1")
        ]


async def test_a_file_that_cannot_be_opened_is_unavailable_and_named(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a directory should be")
    path = blocker / "chat.sqlite3"
    store = SqliteChatStore(path)
    with pytest.raises(StoreUnavailableError, match=str(path)):
        await store.start()
    await store.close()


async def test_a_write_lock_held_too_long_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "chat.sqlite3"
    async with SqliteChatStore(path, busy_timeout_s=0.2) as store:
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
        try:
            with pytest.raises(StoreUnavailableError, match="write lock"):
                await store.append("lobby", "m1", "alice", "hi", 1)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert (await store.append("lobby", "m1", "alice", "hi", 1)).seq == 1


_CHILD = """
import asyncio, sys
from storage import SqliteChatStore

async def main(path: str, count: int) -> None:
    async with SqliteChatStore(path) as store:
        print("ready", flush=True)
        sys.stdin.readline()
        for i in range(count):
            await store.append("shared", f"child-{i}", "child", f"from the child {i}", i)

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


async def test_two_processes_append_to_one_file_without_loss(tmp_path: Path) -> None:
    path = tmp_path / "chat.sqlite3"
    count = 100
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-P",  # the installed build, not the source tree that may be the working directory
        "-c",
        _CHILD,
        str(path),
        str(count),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    async with asyncio.timeout(120), SqliteChatStore(path) as store:
        assert await child.stdout.readline() == b"ready\n"
        child.stdin.write(b"go\n")
        await child.stdin.drain()
        for i in range(count):
            await store.append("shared", f"parent-{i}", "parent", f"from the parent {i}", i)
        assert await child.wait() == 0
        history = await store.history("shared", 0, 10 * count)
    assert [m.seq for m in history] == list(range(1, 2 * count + 1))
    ids = [m.id for m in history]
    assert sorted(ids) == sorted(
        [f"parent-{i}" for i in range(count)] + [f"child-{i}" for i in range(count)]
    )
    # Each writer's own messages keep the order it appended them in.
    for who in ("parent", "child"):
        mine = [int(i.split("-")[1]) for i in ids if i.startswith(who)]
        assert mine == list(range(count))


def test_open_chat_store_picks_the_adapter_the_config_names(tmp_path: Path) -> None:
    sqlite = open_chat_store(StoreConfig(kind="sqlite", sqlite_path=str(tmp_path / "x.db")))
    assert isinstance(sqlite, SqliteChatStore)
    assert sqlite.path == tmp_path / "x.db"
    assert not sqlite.path.exists(), "nothing is opened before start()"
    cassandra = open_chat_store(StoreConfig(kind="cassandra", keyspace="mdfeed_chat"))
    assert isinstance(cassandra, CassandraChatStore)  # no connection until start()
    assert cassandra.keyspace == "mdfeed_chat"


@pytest.mark.parametrize("keyspace", ["", "1abc", "has-dash", "x" * 49, "drop table;"])
def test_a_bad_keyspace_name_is_refused_up_front(keyspace: str) -> None:
    with pytest.raises(ValueError, match="keyspace"):
        CassandraChatStore(["127.0.0.1"], 9042, keyspace, 1)
