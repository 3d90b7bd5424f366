"""The SQLite bar store: the embedded default, one file, stdlib ``sqlite3``.

It may share its file with :class:`~storage.SqliteChatStore` (``StoreConfig.sqlite_path``):
its table is its own, and SQLite's file lock keeps the two connections apart.

Writes: ``upsert`` is one transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``) of
``INSERT ... ON CONFLICT DO UPDATE`` rows, so a call is stored entirely or not at all and
its cost is one commit whatever the number of bars. A writer that cannot get the write lock
within ``busy_timeout_s`` (another process writing) gets
:class:`~storage.errors.StoreUnavailableError`.

Durability: WAL journal (readers never block the writer, nor the writer readers) with
``synchronous=FULL``: an acknowledged upsert survives a power cut, as the caller commits
its offsets on it. One fsync per call (the aggregator flushes a few times a second) is
cheap. WAL needs a local file system (not NFS).

Threads: every call runs on the store's own single worker thread (one connection, used by
that thread only, in turn), so the event loop never waits on the disk or on the lock; calls
of one store run one at a time, in the order they were made. A call whose caller is
cancelled still completes on the worker.

Retention: every bar is kept (``OhlcvConfig``'s TTLs are Cassandra's); the embedded
default serves one machine's first run, not years of 1s bars.

Checkpoints: ``save_checkpoints`` is one transaction of ``INSERT ... ON CONFLICT DO
UPDATE`` rows, like ``upsert``, so a call is saved entirely or not at all, with the same
durability. The table is an ordinary rowid table, not ``WITHOUT ROWID`` as ``bars`` is:
states can be hundreds of KB, and SQLite keeps large rows better out of the key's B-tree.

Schema (created if missing; ``start()`` adds ``incarnation`` to a file made before it,
where the checkpoints already saved read ``''``)::

    bars(symbol, resolution, open_time_ns, open_px_e8, high_px_e8, low_px_e8, close_px_e8,
         volume_e8, trade_count, final)  PRIMARY KEY (symbol, resolution, open_time_ns)
    bar_checkpoints(group_id, symbol, partition, offset, state, incarnation)
         PRIMARY KEY (group_id, symbol)

The primary key is the index every read uses: a range, a countback (the same index walked
backwards) and ``last_before`` are each one index seek; a checkpoint is one lookup.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping, Sequence
from typing import TypeVar

from proto import mdfeed_pb2 as pb
from storage._sqlite import SqliteDatabase, immediate_transaction
from storage.bars import (
    Checkpoint,
    check_checkpoints,
    check_history_args,
    check_last_before_args,
    check_symbol,
    latest_per_key,
    name_symbols,
)
from storage.errors import StoreError

__all__ = ["SqliteBarStore"]

_T = TypeVar("_T")

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS bars (
        symbol TEXT NOT NULL,
        resolution INTEGER NOT NULL,
        open_time_ns INTEGER NOT NULL,
        open_px_e8 INTEGER NOT NULL,
        high_px_e8 INTEGER NOT NULL,
        low_px_e8 INTEGER NOT NULL,
        close_px_e8 INTEGER NOT NULL,
        volume_e8 INTEGER NOT NULL,
        trade_count INTEGER NOT NULL,
        final INTEGER NOT NULL,
        PRIMARY KEY (symbol, resolution, open_time_ns)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS bar_checkpoints (
        group_id TEXT NOT NULL,
        symbol TEXT NOT NULL,
        "partition" INTEGER NOT NULL,
        "offset" INTEGER NOT NULL,
        state BLOB NOT NULL,
        incarnation TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (group_id, symbol)
    )""",
)
_ADD_INCARNATION = "ALTER TABLE bar_checkpoints ADD COLUMN incarnation TEXT NOT NULL DEFAULT ''"
_COLUMNS = (
    "symbol, resolution, open_time_ns, open_px_e8, high_px_e8, low_px_e8, close_px_e8, "
    "volume_e8, trade_count, final"
)
_UPSERT = (
    f"INSERT INTO bars ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (symbol, resolution, open_time_ns) DO UPDATE SET "
    "open_px_e8 = excluded.open_px_e8, high_px_e8 = excluded.high_px_e8, "
    "low_px_e8 = excluded.low_px_e8, close_px_e8 = excluded.close_px_e8, "
    "volume_e8 = excluded.volume_e8, trade_count = excluded.trade_count, "
    "final = excluded.final"
)
_Row = tuple[str, int, int, int, int, int, int, int, int, int]
# Reads of one series leave its symbol and resolution out: the caller gave them.
_SERIES_COLUMNS = (
    "open_time_ns, open_px_e8, high_px_e8, low_px_e8, close_px_e8, volume_e8, trade_count, final"
)
_SELECT_RANGE = (
    f"SELECT {_SERIES_COLUMNS} FROM bars WHERE symbol = ? AND resolution = ? "
    "AND open_time_ns >= ? AND open_time_ns < ? ORDER BY open_time_ns"
)
_SELECT_BACK = (
    f"SELECT {_SERIES_COLUMNS} FROM bars WHERE symbol = ? AND resolution = ? "
    "AND open_time_ns < ? ORDER BY open_time_ns DESC LIMIT ?"
)
_SAVE_CHECKPOINT = (
    'INSERT INTO bar_checkpoints (group_id, symbol, "partition", "offset", state, incarnation) '
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (group_id, symbol) DO UPDATE SET "
    '"partition" = excluded."partition", "offset" = excluded."offset", state = excluded.state, '
    "incarnation = excluded.incarnation"
)
_LOAD_CHECKPOINT = (
    'SELECT "partition", "offset", state, incarnation FROM bar_checkpoints '
    "WHERE group_id = ? AND symbol = ?"
)


def _row(bar: pb.Bar) -> _Row:
    return (
        bar.symbol,
        bar.resolution,
        bar.open_time_ns,
        bar.open_px_e8,
        bar.high_px_e8,
        bar.low_px_e8,
        bar.close_px_e8,
        bar.volume_e8,
        bar.trade_count,
        int(bar.final),
    )


def _bar(row: _Row) -> pb.Bar:
    symbol, resolution, open_time_ns, open_, high, low, close, volume, trades, final = row
    return pb.Bar(
        symbol=symbol,
        resolution=resolution,  # type: ignore[arg-type]  # an int the table was given
        open_time_ns=open_time_ns,
        open_px_e8=open_,
        high_px_e8=high,
        low_px_e8=low,
        close_px_e8=close,
        volume_e8=volume,
        trade_count=trades,
        final=bool(final),
    )


def _bars(
    symbol: str, resolution: pb.Resolution.ValueType, rows: list[tuple[int, ...]]
) -> list[pb.Bar]:
    make = pb.Bar
    return [
        make(
            symbol=symbol,
            resolution=resolution,
            open_time_ns=open_time_ns,
            open_px_e8=open_,
            high_px_e8=high,
            low_px_e8=low,
            close_px_e8=close,
            volume_e8=volume,
            trade_count=trades,
            final=bool(final),
        )
        for open_time_ns, open_, high, low, close, volume, trades, final in rows
    ]


_SYMBOLS = """
WITH RECURSIVE symbols(symbol) AS (
    SELECT MIN(symbol) FROM bars
    UNION ALL
    SELECT (SELECT symbol FROM bars WHERE symbol > symbols.symbol ORDER BY symbol LIMIT 1)
    FROM symbols WHERE symbols.symbol IS NOT NULL
)
SELECT symbol FROM symbols WHERE symbol IS NOT NULL
"""


class SqliteBarStore(SqliteDatabase):
    """Bars in an SQLite file at ``path`` (its parent directories are created).

    ``busy_timeout_s`` bounds how long a call waits for another process's write lock.
    ``checkpoint_group``: the aggregator group whose checkpoints the store saves and loads.
    """

    kind = "bar store"
    schema = _SCHEMA

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout_s: float = 30.0,
        checkpoint_group: str = "mdfeed-ohlcv",
    ) -> None:
        super().__init__(path, busy_timeout_s=busy_timeout_s)
        check_symbol(checkpoint_group, "checkpoint_group")
        self._checkpoint_group = checkpoint_group

    @property
    def checkpoint_group(self) -> str:
        """The aggregator group whose checkpoints this store saves and loads."""
        return self._checkpoint_group

    def _migrate(self, conn: sqlite3.Connection) -> None:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(bar_checkpoints)")}
        if "incarnation" not in columns:
            conn.execute(_ADD_INCARNATION)

    async def upsert(self, bars: Sequence[pb.Bar]) -> None:
        """Store every bar in one transaction, overwriting stored bars of the same keys."""
        rows = [_row(bar) for bar in latest_per_key(bars)]
        self._connection()  # refuse a closed store even for an empty call
        if rows:
            await self._call(lambda c: _upsert(c, rows))

    async def history(
        self,
        symbol: str,
        resolution: pb.Resolution.ValueType,
        from_ns: int,
        to_ns: int,
        countback: int = 0,
    ) -> list[pb.Bar]:
        """Bars in ``[from_ns, to_ns)`` ascending, or the last ``countback`` before ``to_ns``."""
        check_history_args(symbol, resolution, from_ns, to_ns, countback)
        if countback > 0:
            params: tuple[object, ...] = (symbol, resolution, to_ns, countback)
            rows = await self._call(lambda c: c.execute(_SELECT_BACK, params).fetchall())
            rows.reverse()
        else:
            params = (symbol, resolution, from_ns, to_ns)
            rows = await self._call(lambda c: c.execute(_SELECT_RANGE, params).fetchall())
        return _bars(symbol, resolution, rows)

    async def last_before(
        self, symbol: str, resolution: pb.Resolution.ValueType, before_ns: int
    ) -> pb.Bar | None:
        """The newest bar with ``open_time_ns < before_ns``, or ``None``."""
        check_last_before_args(symbol, resolution, before_ns)
        query = (
            f"SELECT {_COLUMNS} FROM bars WHERE symbol = ? AND resolution = ? "
            "AND open_time_ns < ? ORDER BY open_time_ns DESC LIMIT 1"
        )
        params = (symbol, resolution, before_ns)
        row = await self._call(lambda c: c.execute(query, params).fetchone())
        return None if row is None else _bar(row)

    async def symbols(self) -> list[str]:
        """Every symbol with a bar, sorted (by code point, as Python sorts)."""
        # SQLite answers DISTINCT with a scan of every row; this skip-scan takes one index
        # seek per symbol instead (the primary key starts with the symbol).
        rows = await self._call(lambda c: c.execute(_SYMBOLS).fetchall())
        return sorted(symbol for (symbol,) in rows)

    async def save_checkpoints(self, checkpoints: Mapping[str, Checkpoint]) -> None:
        """Save every checkpoint in one transaction, overwriting the symbols' stored ones."""
        group = self._checkpoint_group
        rows = [
            (group, symbol, cp.partition, cp.offset, cp.state, cp.incarnation)
            for symbol, cp in check_checkpoints(checkpoints)
        ]
        self._connection()  # refuse a closed store even for an empty call
        if not rows:
            return
        try:
            await self._call(lambda c: _save_checkpoints(c, rows))
        except StoreError as exc:
            raise type(exc)(
                f"saving the checkpoints of {name_symbols([r[1] for r in rows])} (group {group!r}) "
                f"failed: {exc}"
            ) from exc

    async def load_checkpoint(self, symbol: str) -> Checkpoint | None:
        """The checkpoint saved for ``symbol`` in this store's group, or ``None``."""
        check_symbol(symbol)
        params = (self._checkpoint_group, symbol)
        row = await self._call(lambda c: c.execute(_LOAD_CHECKPOINT, params).fetchone())
        if row is None:
            return None
        partition, offset, state, incarnation = row
        return Checkpoint(partition, offset, bytes(state), incarnation)

    def __repr__(self) -> str:
        return f"SqliteBarStore({str(self._path)!r})"


def _upsert(conn: sqlite3.Connection, rows: list[_Row]) -> None:
    with immediate_transaction(conn):
        conn.executemany(_UPSERT, rows)


def _save_checkpoints(
    conn: sqlite3.Connection, rows: list[tuple[str, str, int, int, bytes, str]]
) -> None:
    with immediate_transaction(conn):
        conn.executemany(_SAVE_CHECKPOINT, rows)
