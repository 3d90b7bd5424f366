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

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from mdfeed.lifecycle import Resource
from proto import mdfeed_pb2 as pb
from storage.chat import check_append_args, check_history_args, check_room
from storage.errors import StoreClosedError, StoreError, StoreUnavailableError

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


class SqliteChatStore(Resource):
    """Chat messages in an SQLite file at ``path`` (its parent directories are created).

    ``busy_timeout_s`` bounds how long a call waits for another process's write lock.
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_s: float = 30.0) -> None:
        if busy_timeout_s <= 0:
            raise ValueError(f"busy_timeout_s must be > 0, got {busy_timeout_s!r}")
        self._path = Path(path)
        self._busy_timeout_s = busy_timeout_s
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        self._start_lock = asyncio.Lock()

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    async def start(self) -> None:
        """Open the file (creating it and its directories) and create the schema if missing."""
        async with self._start_lock:
            if self._closed:
                raise StoreClosedError(f"chat store {self._path} was closed; create a new one")
            if self._conn is not None:
                return
            executor = ThreadPoolExecutor(1, thread_name_prefix="mdfeed-chat-sqlite")
            loop = asyncio.get_running_loop()
            try:
                self._conn = await loop.run_in_executor(executor, self._open)
            except BaseException:
                executor.shutdown(wait=False)
                raise
            self._executor = executor

    async def close(self) -> None:
        """Close the connection once the calls already made have run. Safe twice."""
        if self._closed:
            return
        self._closed = True
        conn, executor = self._conn, self._executor
        self._conn = self._executor = None
        if conn is not None and executor is not None:
            try:
                await asyncio.get_running_loop().run_in_executor(executor, conn.close)
            finally:
                executor.shutdown(wait=False)

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

    def _open(self) -> sqlite3.Connection:
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailableError(
                f"cannot create the directory of sqlite database {self._path}: {exc}"
            ) from exc
        try:
            conn = sqlite3.connect(
                self._path,
                timeout=self._busy_timeout_s,
                isolation_level=None,  # transactions are begun explicitly
                check_same_thread=False,  # opened here, used only by the worker thread
            )
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            with _immediate_transaction(conn):
                for statement in _SCHEMA:
                    conn.execute(statement)
        except sqlite3.Error as exc:
            conn.close()
            raise self._translate(exc) from exc
        return conn

    async def _call(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        conn, executor = self._conn, self._executor
        if conn is None or executor is None:
            state = "closed" if self._closed else "not started"
            raise StoreClosedError(f"chat store {self._path} is {state}")
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, work, conn)
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc

    def _translate(self, exc: sqlite3.Error) -> StoreError:
        if isinstance(exc, sqlite3.OperationalError):
            detail = str(exc)
            if "locked" in detail or "busy" in detail:
                detail += f" (another process held the write lock for {self._busy_timeout_s} s)"
            return StoreUnavailableError(f"sqlite database {self._path} unavailable: {detail}")
        return StoreError(f"sqlite database {self._path}: {exc}")


@contextlib.contextmanager
def _immediate_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` (take the write lock now) ... ``COMMIT``; rolled back on errors."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _append(conn: sqlite3.Connection, draft: pb.ChatMessage) -> _Row:
    with _immediate_transaction(conn):
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
