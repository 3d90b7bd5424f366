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

Bars (:mod:`storage.bars`): the :class:`BarStore` port keeps OHLCV bars per symbol and
resolution, upserted idempotently by the ohlcv aggregator and read back by the datafeed.
Two adapters pass one contract suite (:mod:`storage.bar_contract`): :class:`SqliteBarStore`
and :class:`CassandraBarStore` (time-bucketed partitions, TTLs for 1s and 1m bars).
:func:`open_bar_store` picks one from the config::

    async with open_bar_store(config.store, config.ohlcv) as bars:
        await bars.upsert(flushed)  # all stored: now commit the offsets
        chart = await bars.history(symbol, pb.RESOLUTION_1M, from_ns, to_ns, countback=300)

The bar store also keeps the aggregator's :class:`Checkpoint` per symbol (bus partition and
offset, open-bar state, the bus incarnation of the offset), in the aggregator group
``ohlcv.group_id``, for exact recovery::

    await bars.save_checkpoints({symbol: Checkpoint(partition, offset, state, incarnation)})
    checkpoint = await bars.load_checkpoint(symbol)  # None: start the symbol afresh

Errors are drawn in :mod:`storage.errors`; the Cassandra plumbing the stores share is in
:mod:`storage.cassandra`.
"""

from storage._bars_cassandra import CassandraBarStore
from storage._bars_sqlite import SqliteBarStore
from storage._chat_cassandra import CassandraChatStore
from storage._chat_sqlite import SqliteChatStore
from storage.bars import BarStore, Checkpoint
from storage.chat import ChatStore
from storage.errors import StoreClosedError, StoreError, StoreUnavailableError
from storage.factory import open_bar_store, open_chat_store

__all__ = [
    "BarStore",
    "CassandraBarStore",
    "CassandraChatStore",
    "ChatStore",
    "Checkpoint",
    "SqliteBarStore",
    "SqliteChatStore",
    "StoreClosedError",
    "StoreError",
    "StoreUnavailableError",
    "open_bar_store",
    "open_chat_store",
]
