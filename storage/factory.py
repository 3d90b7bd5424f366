"""Choosing the store adapters from the config."""

from __future__ import annotations

from mdfeed.config import StoreConfig
from storage._chat_cassandra import CassandraChatStore
from storage._chat_sqlite import SqliteChatStore
from storage.chat import ChatStore

__all__ = ["open_chat_store"]


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
