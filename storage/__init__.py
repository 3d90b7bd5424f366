"""Bar and chat stores: Cassandra for production, SQLite for the embedded default.

Chat (:mod:`storage.chat`): the :class:`ChatStore` port keeps every room's messages,
sequenced from 1 without gaps, so a client that reconnects resumes exactly after the last
seq it saw. Two adapters pass one contract suite (:mod:`storage.contract`):
:class:`SqliteChatStore` (one file, the embedded default) and :class:`CassandraChatStore`
(several fanout processes may append to one room). :func:`open_chat_store` picks one from
the config::

    async with open_chat_store(config.store) as chat:
        message = await chat.append(room, msg_id, author, text, time_ns)  # stored: now deliver
        missed = await chat.history(room, after_seq=last_seen, limit=1000)

Errors are drawn in :mod:`storage.errors`; the Cassandra plumbing the stores share is in
:mod:`storage.cassandra`.
"""

from storage._chat_cassandra import CassandraChatStore
from storage._chat_sqlite import SqliteChatStore
from storage.chat import ChatStore
from storage.errors import StoreClosedError, StoreError, StoreUnavailableError
from storage.factory import open_chat_store

__all__ = [
    "CassandraChatStore",
    "ChatStore",
    "SqliteChatStore",
    "StoreClosedError",
    "StoreError",
    "StoreUnavailableError",
    "open_chat_store",
]
