"""Choosing the store adapters from the config."""

from __future__ import annotations

from mdfeed.kernel.config import OhlcvConfig, StoreConfig
from storage._bars_cassandra import CassandraBarStore
from storage._bars_sqlite import SqliteBarStore
from storage._chat_cassandra import CassandraChatStore
from storage._chat_sqlite import SqliteChatStore
from storage.bars import BarStore
from storage.chat import ChatStore

__all__ = ["open_bar_store", "open_chat_store"]


def open_chat_store(config: StoreConfig) -> ChatStore:
    """The chat store ``config.kind`` names, not started (nothing is opened until ``start()``).

    "sqlite": :class:`SqliteChatStore` on ``sqlite_path``; "cassandra":
    :class:`CassandraChatStore` on ``cassandra_contact_points``/``cassandra_port``, in
    ``keyspace`` (created with ``replication_factor`` if missing).
    """
    if config.kind == "sqlite":
        return SqliteChatStore(config.sqlite_path)
    if config.kind == "cassandra":
        return CassandraChatStore(
            config.cassandra_contact_points,
            config.cassandra_port,
            config.keyspace,
            config.replication_factor,
        )
    raise ValueError(f"unknown store kind {config.kind!r} (store.kind: 'sqlite' or 'cassandra')")


def open_bar_store(store: StoreConfig, ohlcv: OhlcvConfig) -> BarStore:
    """The bar store ``store.kind`` names, not started (nothing is opened until ``start()``).

    "sqlite": :class:`SqliteBarStore` on ``sqlite_path`` (the chat store's file, a table of
    its own; it keeps every bar); "cassandra": :class:`CassandraBarStore` on
    ``cassandra_contact_points``/``cassandra_port``, in ``keyspace`` (created with
    ``replication_factor`` if missing), keeping 1s and 1m bars ``ohlcv.ttl_1s_days`` and
    ``ohlcv.ttl_1m_days`` (0: for good). Either saves and loads the checkpoints of the
    aggregator group ``ohlcv.group_id``.
    """
    if store.kind == "sqlite":
        return SqliteBarStore(store.sqlite_path, checkpoint_group=ohlcv.group_id)
    if store.kind == "cassandra":
        return CassandraBarStore(
            store.cassandra_contact_points,
            store.cassandra_port,
            store.keyspace,
            store.replication_factor,
            ttl_1s_days=ohlcv.ttl_1s_days,
            ttl_1m_days=ohlcv.ttl_1m_days,
            checkpoint_group=ohlcv.group_id,
        )
    raise ValueError(f"unknown store kind {store.kind!r} (store.kind: 'sqlite' or 'cassandra')")
