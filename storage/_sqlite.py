"""The SQLite file both embedded stores (chat, bars) are built on.

One connection per store, used from one worker thread, so the event loop never blocks on
the file and calls run in the order they were made. WAL with ``synchronous=FULL``: a write
that returned is on disk. Writes take the write lock at once (``BEGIN IMMEDIATE``), so two
processes sharing the file serialize their writes; a call waits up to ``busy_timeout_s``
for the other's lock, then fails with ``StoreUnavailableError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar, TypeVar

from mdfeed.kernel.lifecycle import Resource
from storage.errors import StoreClosedError, StoreError, StoreUnavailableError

__all__ = ["SqliteDatabase", "immediate_transaction"]

_T = TypeVar("_T")


class SqliteDatabase(Resource):
    """An SQLite file at ``path`` (parent directories created) with a worker thread.

    Subclasses name what they store (``kind``, for messages) and their ``schema``
    (statements run in one transaction at start, so they must be idempotent); a file made by
    an earlier schema is brought up to date by ``_migrate``, in the same transaction.
    """

    kind: ClassVar[str] = "sqlite store"
    schema: ClassVar[Sequence[str]] = ()

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
                raise StoreClosedError(f"{self.kind} {self._path} was closed; create a new one")
            if self._conn is not None:
                return
            prefix = "mdfeed-" + self.kind.replace(" ", "-")
            executor = ThreadPoolExecutor(1, thread_name_prefix=prefix)
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
            with immediate_transaction(conn):
                for statement in self.schema:
                    conn.execute(statement)
                self._migrate(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise self._translate(exc) from exc
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Bring tables an earlier schema made up to date (in the schema's transaction)."""

    def _connection(self) -> tuple[sqlite3.Connection, ThreadPoolExecutor]:
        conn, executor = self._conn, self._executor
        if conn is None or executor is None:
            state = "closed" if self._closed else "not started"
            raise StoreClosedError(f"{self.kind} {self._path} is {state}")
        return conn, executor

    async def _call(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``work(connection)`` on the worker thread; sqlite errors become store errors."""
        conn, executor = self._connection()
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
def immediate_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` (take the write lock now) ... ``COMMIT``; rolled back on errors."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
