"""The Cassandra chat store on the local stack's Cassandra: the shared chat store contract,
two sessions appending to one room, and Cassandra unreachable.

Each test gets a keyspace of its own (named after the test), dropped afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from cassandra.cluster import Cluster

from mdfeed.kernel.config import MdfeedConfig
from mdfeed.stack.scratch import free_port
from storage import CassandraChatStore, ChatStore, StoreUnavailableError
from storage.cassandra import CassandraSession
from storage.contract import CONTRACT_CHECKS, ChatStoreFactory, ContractCheck


@pytest.fixture
async def make_cassandra_store(
    stack_config: MdfeedConfig, unique_name: str
) -> AsyncIterator[ChatStoreFactory]:
    config = stack_config.store

    def make() -> CassandraChatStore:
        return CassandraChatStore(
            config.cassandra_contact_points,
            config.cassandra_port,
            unique_name,
            config.replication_factor,
        )

    yield make
    db = await CassandraSession.connect(config.cassandra_contact_points, config.cassandra_port)
    try:
        await db.ensure_schema([f"DROP KEYSPACE IF EXISTS {unique_name}"])
    finally:
        await db.close()


@pytest.mark.parametrize("check", CONTRACT_CHECKS.values(), ids=CONTRACT_CHECKS.keys())
async def test_cassandra_chat_store_passes_the_chat_store_contract(
    check: ContractCheck, make_cassandra_store: ChatStoreFactory
) -> None:
    async with asyncio.timeout(120):
        await check(make_cassandra_store)


async def test_two_sessions_appending_at_once_get_contiguous_unique_seqs(
    make_cassandra_store: ChatStoreFactory,
) -> None:
    """Two stores (two driver sessions, as two fanout processes have) race on one room."""
    count = 40
    first, second = make_cassandra_store(), make_cassandra_store()
    async with asyncio.timeout(120), first, second:

        async def append(store: ChatStore, who: str) -> list[int]:
            seqs = []
            for i in range(count):
                message = await store.append("race", f"{who}-{i}", who, f"{who} {i}", i)
                seqs.append(message.seq)
            return seqs

        got_first, got_second = await asyncio.gather(
            append(first, "first"), append(second, "second")
        )
        history = await first.history("race", 0, 1000)
    assert sorted(got_first + got_second) == list(range(1, 2 * count + 1))
    assert got_first == sorted(got_first)
    assert got_second == sorted(got_second)
    assert [m.seq for m in history] == list(range(1, 2 * count + 1))
    by_seq = {m.seq: m.id for m in history}
    assert [by_seq[s] for s in got_first] == [f"first-{i}" for i in range(count)]
    assert [by_seq[s] for s in got_second] == [f"second-{i}" for i in range(count)]


async def test_a_reservation_left_by_a_crash_is_completed_by_the_retry(
    make_cassandra_store: ChatStoreFactory, stack_config: MdfeedConfig, unique_name: str
) -> None:
    """An append that died between reserving its id and writing the message leaves no
    gap and no duplicate: other messages take the reserved seq, and the retry finishes."""
    config = stack_config.store
    async with make_cassandra_store() as store, make_cassandra_store() as other_process:
        await store.append("lobby", "m1", "alice", "first", 1)
        db = await CassandraSession.connect(config.cassandra_contact_points, config.cassandra_port)
        try:
            reserve = f"INSERT INTO {unique_name}.chat_message_ids (room, id, seq) VALUES (?, ?, ?)"
            await db.execute(await db.prepare(reserve), ("lobby", "crashed", 2))
            await db.execute(await db.prepare(reserve), ("lobby", "ghost", 4))
        finally:
            await db.close()
        taken = await other_process.append("lobby", "other", "bob", "took seq 2", 2)
        retried = await store.append("lobby", "crashed", "carol", "retried", 3)
        ghost = await other_process.append("lobby", "ghost", "dave", "its seq was free", 4)
        assert (taken.seq, retried.seq, ghost.seq) == (2, 3, 4)
        assert await store.append("lobby", "crashed", "carol", "again", 5) == retried
        history = await store.history("lobby", 0, 10)
    assert [(m.seq, m.id) for m in history] == [
        (1, "m1"),
        (2, "other"),
        (3, "crashed"),
        (4, "ghost"),
    ]


async def test_the_schema_is_created_in_the_configured_keyspace(
    make_cassandra_store: ChatStoreFactory, stack_config: MdfeedConfig, unique_name: str
) -> None:
    async with make_cassandra_store() as store:
        await store.append("lobby", "m1", "alice", "hi", 1)
    cluster = Cluster(
        list(stack_config.store.cassandra_contact_points),
        port=stack_config.store.cassandra_port,
    )
    try:
        session = await asyncio.to_thread(cluster.connect)
        keyspace = cluster.metadata.keyspaces[unique_name]
        assert keyspace.replication_strategy.replication_factor == 1
        assert set(keyspace.tables) == {"chat_messages", "chat_message_ids"}
        rows = await asyncio.to_thread(
            session.execute, f"SELECT room, seq, id FROM {unique_name}.chat_messages"
        )
        assert [(r.room, r.seq, r.id) for r in rows] == [("lobby", 1, "m1")]
    finally:
        await asyncio.to_thread(cluster.shutdown)


async def test_cassandra_down_is_unavailable_naming_host_and_port() -> None:
    port = free_port()
    store = CassandraChatStore(["127.0.0.1"], port, "mdfeed_chat", 1, connect_timeout_s=2.0)
    with pytest.raises(StoreUnavailableError, match=f"127.0.0.1:{port}"):
        await store.start()
    await store.close()
