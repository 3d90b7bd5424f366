"""The SQLite chat store: the embedded default, one file, stdlib ``sqlite3``.

Sequencing: ``append`` runs ``BEGIN IMMEDIATE`` (the database write lock), looks the id up,
reads the room's highest seq and inserts at the next one, then commits. The write lock is
SQLite's, on the file, so appenders in other processes sharing the file queue behind it and
seqs stay contiguous and unique. A writer that cannot get the lock within
``busy_timeout_s`` gets :class:`~storage.errors.StoreUnavailableError`.

Durability: WAL journal (readers never block the writer, nor the writer readers) with
``synchronous=FULL``, so an acknowledged append survives a power cut, not only a crash of
the process: chat is acknowledged only once it is stored. Chat rates are low enough that
the fsync per append does not matter. WAL needs a local file system (not NFS).

Threads: every call runs on the store's own single worker thread (one connection, used by
that thread only in turn), so the event loop never waits on the disk or on the lock; calls
of one store run one at a time, in the order they were made. A call whose caller is
cancelled still completes on the worker: an append may then be stored unseen, and
repeating it with the same ``msg_id`` returns it.

Schema (created if missing)::

    chat_messages(room, seq, id, author, text, time_ns)  PRIMARY KEY (room, seq)
    UNIQUE INDEX chat_messages_room_id ON (room, id)
"""

from __future__ import annotations

import sqlite3
from typing import TypeVar

from proto import mdfeed_pb2 as pb
from storage._sqlite import SqliteDatabase, immediate_transaction
from storage.chat import check_append_args, check_history_args, check_room

__all__ = ["SqliteChatStore"]

_T = TypeVar("_T")

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS chat_messages (
        room TEXT NOT NULL,
        seq INTEGER NOT NULL,
        id TEXT NOT NULL,
        author TEXT NOT NULL,
        text TEXT NOT NULL,
        time_ns INTEGER NOT NULL,
        PRIMARY KEY (room, seq)
    ) WITHOUT ROWID""",
    "CREATE UNIQUE INDEX IF NOT EXISTS chat_messages_room_id ON chat_messages (room, id)",
)
_COLUMNS = "room, id, seq, author, text, time_ns"
_Row = tuple[str, str, int, str, str, int]


def _message(row: _Row) -> pb.ChatMessage:
    room, msg_id, seq, author, text, time_ns = row
    return pb.ChatMessage(room=room, id=msg_id, seq=seq, author=author, text=text, time_ns=time_ns)


class SqliteChatStore(SqliteDatabase):
    """Chat messages in an SQLite file at ``path`` (its parent directories are created).

    ``busy_timeout_s`` bounds how long a call waits for another process's write lock.
    """

    kind = "chat store"
    schema = _SCHEMA

    async def append(
        self, room: str, msg_id: str, author: str, text: str, time_ns: int
    ) -> pb.ChatMessage:
        """Store at the room's next seq (or return the stored message with this id)."""
        check_append_args(room, msg_id, author, text, time_ns)
        draft = pb.ChatMessage(room=room, id=msg_id, author=author, text=text, time_ns=time_ns)
        row = await self._call(lambda c: _append(c, draft))
        return _message(row)

    async def history(self, room: str, after_seq: int, limit: int) -> list[pb.ChatMessage]:
        """Messages with seq > ``after_seq``, ascending, at most ``limit``."""
        check_history_args(room, after_seq, limit)
        if limit == 0:
            return []
        rows = await self._call(lambda c: _history(c, room, after_seq, limit))
        return [_message(row) for row in rows]

    async def last_seq(self, room: str) -> int:
        """The room's highest seq, 0 when it has no messages."""
        check_room(room)
        return await self._call(lambda c: _last_seq(c, room))

    def __repr__(self) -> str:
        return f"SqliteChatStore({str(self._path)!r})"


def _append(conn: sqlite3.Connection, draft: pb.ChatMessage) -> _Row:
    with immediate_transaction(conn):
        stored: _Row | None = conn.execute(
            f"SELECT {_COLUMNS} FROM chat_messages WHERE room = ? AND id = ?",
            (draft.room, draft.id),
        ).fetchone()
        if stored is not None:
            return stored
        row = (
            draft.room,
            draft.id,
            _last_seq(conn, draft.room) + 1,
            draft.author,
            draft.text,
            draft.time_ns,
        )
        conn.execute(f"INSERT INTO chat_messages ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)", row)
    return row


def _history(conn: sqlite3.Connection, room: str, after_seq: int, limit: int) -> list[_Row]:
    return conn.execute(
        f"SELECT {_COLUMNS} FROM chat_messages WHERE room = ? AND seq > ? ORDER BY seq LIMIT ?",
        (room, after_seq, limit),
    ).fetchall()


def _last_seq(conn: sqlite3.Connection, room: str) -> int:
    (last,) = conn.execute(
        "SELECT COALESCE(MAX(seq), 0) FROM chat_messages WHERE room = ?", (room,)
    ).fetchone()
    return int(last)
