"""The Cassandra bar store: bounded time-bucketed partitions, concurrent prepared writes.

Tables (created if missing, in the configured keyspace), one per resolution class::

    bars_1s        1s bars             bucket = 1 day       TTL ttl_1s_days
    bars_1m        1m bars             bucket = 30 days     TTL ttl_1m_days
    bars_intraday  5m, 15m and 1h bars bucket = 365 days    kept
    bars_daily     1D bars             bucket = 3650 days   kept

    each: (symbol, resolution, bucket, open_time_ns, open/high/low/close_px_e8, volume_e8,
           trade_count, final)
          PRIMARY KEY ((symbol, resolution, bucket), open_time_ns)  open_time_ns ASC

    bar_buckets  (symbol, resolution, bucket)  PRIMARY KEY ((symbol, resolution), bucket)
    bar_symbols  (shard, symbol)               PRIMARY KEY ((shard), symbol)
    bar_checkpoints (group_id, symbol, partition, offset, state, incarnation)
                                               PRIMARY KEY ((group_id, symbol))

Buckets: ``bucket = open_time_ns // width`` (widths from the Unix epoch, so 1s buckets are
UTC days). The widths keep every partition bounded whatever the history's length, at most
about 105 000 rows (some 10 MB, well under the ~100 MB where Cassandra partitions start to
hurt) and big enough that a chart's request (a few hundred to a few thousand bars) is one
or two partitions:

* 1s: one day, 86 400 bars at most;
* 1m: 30 days, 43 200 bars (a month, give or take; fixed widths keep the arithmetic exact);
* 5m / 15m / 1h: 365 days, 105 120 / 35 040 / 8 760 bars;
* 1D: 3650 days (a decade), about 3 650 bars.

Compaction: TimeWindowCompactionStrategy with a window of the table's bucket width. TWCS
groups SSTables by write time; live bars are written while their bucket is current, so a
bucket's rows sit in one window and a read touches one window's SSTables; once a window's
data has all expired the whole SSTable is dropped, no compaction needed. A backfill of old
bars lands in the window of the day it was written, which only costs read amplification.

Retention: a default TTL per table (``default_time_to_live``), from ``ttl_1s_days`` and
``ttl_1m_days`` (0: kept). One TTL per table, not ``USING TTL`` per write, because TWCS can
only drop a window's SSTables whole when everything in them expires together; that is also
why 1s and 1m bars have tables of their own. TTLs count from the write: a revised bar lives
on from its revision. ``start()`` brings an existing table's TTL and compaction in line with
the config (``ALTER TABLE``); the new TTL applies to bars written after that.
``gc_grace_seconds`` is 3 hours (the hint window) on those two tables: their bars are never
deleted, only expired, so tombstones need not wait 10 days to be dropped.

Bucket index: ``bar_buckets`` lists the buckets holding bars of each (symbol, resolution),
so reads query only buckets that exist instead of walking every bucket back to the epoch
(a countback of 300 1s bars before a weekend would otherwise ask hundreds of empty days).
An index row is written (``USING TTL``: the table's TTL plus two buckets, so it outlives its
bars) before the first bar of its bucket, and again for the first write of each (symbol,
resolution) in a process, so a reader never sees a bar whose bucket it cannot find.
``bar_symbols`` (one partition, clustered by symbol) answers :meth:`symbols`; a symbol
stays listed after its bars expired. Each process remembers the symbols and the latest
bucket per (symbol, resolution) it wrote, so in steady state an upsert writes bars only.

Writes: each bar is one prepared ``INSERT`` (an upsert in Cassandra); no batches, which
would only add coordinator work. They go out concurrently, at most ``max_in_flight`` at a
time per store: each driver callback (on the driver's I/O thread) sends the next statement
and the call's one asyncio future is settled once, with ``call_soon_threadsafe``, when the
last answer arrived. Concurrent ``upsert`` calls of one store take turns. After the first
failed write no further write starts; the call waits for those in flight and raises (see
:meth:`CassandraBarStore.upsert`). Writes of one key in one call are reduced to the last
before sending; across calls the driver's client-side timestamps make the later call win.

Checkpoints: one row per (group, symbol), its own partition, overwritten by each save (one
prepared ``INSERT`` per symbol, sent like bars: concurrently, at most ``max_in_flight`` at
once, taking turns with upserts). No TTL: a checkpoint lives until overwritten. Written and
read at QUORUM, so the member that takes a symbol over reads the last acknowledged save;
between two saves of one symbol the later call wins (client-side timestamps). The default
compaction (size-tiered) suits it: a row is read once, on takeover. ``start()`` adds the
``incarnation`` column to a table made before it (``ALTER TABLE ... ADD``); the rows saved
before read ``''``.

Reads at QUORUM (see :mod:`storage.cassandra`): a range queries the buckets of the range
the index lists, 16 at a time, concatenated in order; a countback or ``last_before`` walks
the listed buckets newest first, with ``ORDER BY open_time_ns DESC LIMIT n``, until it has
enough bars.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cassandra import CoordinationFailure, OperationTimedOut, Timeout, Unavailable
from cassandra.cluster import EXEC_PROFILE_DEFAULT, ExecutionProfile, NoHostAvailable, Session
from cassandra.connection import ConnectionException
from cassandra.query import PreparedStatement, tuple_factory

from mdfeed.kernel.lifecycle import Resource
from proto import mdfeed_pb2 as pb
from storage.bars import (
    Checkpoint,
    check_checkpoints,
    check_history_args,
    check_last_before_args,
    check_symbol,
    latest_per_key,
    name_symbols,
)
from storage.cassandra import CassandraSession, Row, check_keyspace_name, response_rows
from storage.errors import StoreClosedError, StoreError, StoreUnavailableError

__all__ = ["BUCKET_DAYS", "CassandraBarStore", "bucket_of"]

_DAY_NS = 86_400 * 1_000_000_000
_DAY_S = 86_400
#: Tombstone grace on the TTL'd tables: Cassandra's default hint window (see above).
_GC_GRACE_S = 3 * 3600
#: Buckets a range read queries at once.
_READ_FANOUT = 16
_UNAVAILABLE = (
    NoHostAvailable,
    OperationTimedOut,
    Timeout,
    Unavailable,
    CoordinationFailure,
    ConnectionException,
    OSError,
)

#: Bucket width in days per resolution (see the module docstring for the sizes).
BUCKET_DAYS: dict[int, int] = {
    pb.RESOLUTION_1S: 1,
    pb.RESOLUTION_1M: 30,
    pb.RESOLUTION_5M: 365,
    pb.RESOLUTION_15M: 365,
    pb.RESOLUTION_1H: 365,
    pb.RESOLUTION_1D: 3650,
}
_TABLES: dict[int, str] = {
    pb.RESOLUTION_1S: "bars_1s",
    pb.RESOLUTION_1M: "bars_1m",
    pb.RESOLUTION_5M: "bars_intraday",
    pb.RESOLUTION_15M: "bars_intraday",
    pb.RESOLUTION_1H: "bars_intraday",
    pb.RESOLUTION_1D: "bars_daily",
}
_VALUES = "open_px_e8, high_px_e8, low_px_e8, close_px_e8, volume_e8, trade_count, final"
# Reads of one series leave its symbol and resolution out: the caller gave them.
_SERIES_COLUMNS = f"open_time_ns, {_VALUES}"
#: Rows per page of a bar read: a chart's request (up to a few thousand bars from one
#: partition) comes back in one page, one round trip.
_READ_PAGE_ROWS = 10_000


def bucket_of(resolution: int, open_time_ns: int) -> int:
    """The partition bucket of a bar of ``resolution`` opening at ``open_time_ns``."""
    return open_time_ns // (BUCKET_DAYS[resolution] * _DAY_NS)


@dataclass(frozen=True, slots=True)
class _Table:
    name: str
    bucket_days: int
    ttl_s: int
    insert: PreparedStatement | None = None
    select_range: PreparedStatement | None = None
    select_back: PreparedStatement | None = None

    @property
    def index_ttl_s(self) -> int:
        """TTL of this table's bucket index rows: past the last bar of the bucket."""
        return self.ttl_s + 2 * self.bucket_days * _DAY_S if self.ttl_s else 0

    def ddl(self, keyspace: str) -> str:
        grace = f" AND gc_grace_seconds = {_GC_GRACE_S}" if self.ttl_s else ""
        return f"""CREATE TABLE IF NOT EXISTS {keyspace}.{self.name} (
            symbol text, resolution int, bucket bigint, open_time_ns bigint,
            open_px_e8 bigint, high_px_e8 bigint, low_px_e8 bigint, close_px_e8 bigint,
            volume_e8 bigint, trade_count bigint, final boolean,
            PRIMARY KEY ((symbol, resolution, bucket), open_time_ns)
        ) WITH CLUSTERING ORDER BY (open_time_ns ASC)
          AND compaction = {self.compaction()}
          AND default_time_to_live = {self.ttl_s}{grace}"""

    def compaction(self) -> str:
        return (
            "{'class': 'TimeWindowCompactionStrategy', 'compaction_window_unit': 'DAYS', "
            f"'compaction_window_size': {self.bucket_days}}}"
        )

    def is_current(self, row: Row) -> bool:
        compaction = row["compaction"] or {}
        return (
            row["default_time_to_live"] == self.ttl_s
            and str(compaction.get("class", "")).endswith("TimeWindowCompactionStrategy")
            and compaction.get("compaction_window_unit") == "DAYS"
            and compaction.get("compaction_window_size") == str(self.bucket_days)
        )


def _bars(
    symbol: str, resolution: pb.Resolution.ValueType, rows: Sequence[tuple[Any, ...]]
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
            final=final,
        )
        for open_time_ns, open_, high, low, close, volume, trades, final in rows
    ]


class _Statements:
    def __init__(self, tables: dict[str, _Table], prepared: Sequence[PreparedStatement]) -> None:
        self.tables = tables
        (
            self.insert_bucket,
            self.select_buckets_up,
            self.select_buckets_down,
            self.insert_symbol,
            self.select_symbols,
            self.insert_checkpoint,
            self.select_checkpoint,
        ) = prepared

    def table(self, resolution: int) -> _Table:
        return self.tables[_TABLES[resolution]]


class CassandraBarStore(Resource):
    """Bars in Cassandra; ``start()`` creates (or migrates) the keyspace and tables.

    ``keyspace`` is created with SimpleStrategy and ``replication_factor`` when it does not
    exist. ``ttl_1s_days`` / ``ttl_1m_days``: days 1s / 1m bars are kept (0: for good).
    ``max_in_flight`` bounds the writes a store has outstanding at once.
    ``checkpoint_group``: the aggregator group whose checkpoints the store saves and loads.
    Nothing connects before ``start()``.
    """

    def __init__(
        self,
        contact_points: Sequence[str],
        port: int,
        keyspace: str,
        replication_factor: int,
        *,
        ttl_1s_days: int = 0,
        ttl_1m_days: int = 0,
        max_in_flight: int = 128,
        connect_timeout_s: float = 5.0,
        request_timeout_s: float = 10.0,
        checkpoint_group: str = "mdfeed-ohlcv",
    ) -> None:
        if isinstance(contact_points, str) or not contact_points:
            raise ValueError(
                f"contact_points must be a non-empty list of hosts, got {contact_points!r}"
            )
        if not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValueError(f"port must be 1..65535, got {port!r}")
        if not isinstance(replication_factor, int) or replication_factor < 1:
            raise ValueError(f"replication_factor must be an int >= 1, got {replication_factor!r}")
        for name, days in (("ttl_1s_days", ttl_1s_days), ("ttl_1m_days", ttl_1m_days)):
            # Cassandra's TTL limit is 20 years; OhlcvConfig allows up to 10.
            if not isinstance(days, int) or not 0 <= days <= 3650:
                raise ValueError(f"{name} must be an int from 0 to 3650, got {days!r}")
        if not isinstance(max_in_flight, int) or max_in_flight < 1:
            raise ValueError(f"max_in_flight must be an int >= 1, got {max_in_flight!r}")
        check_symbol(checkpoint_group, "checkpoint_group")
        self._checkpoint_group = checkpoint_group
        self._contact_points = tuple(contact_points)
        self._port = port
        self._keyspace = check_keyspace_name(keyspace)
        self._replication_factor = replication_factor
        self._ttl_s = {"bars_1s": ttl_1s_days * _DAY_S, "bars_1m": ttl_1m_days * _DAY_S}
        self._max_in_flight = max_in_flight
        self._connect_timeout_s = connect_timeout_s
        self._request_timeout_s = request_timeout_s
        self._db: CassandraSession | None = None
        self._tuple_rows: ExecutionProfile | None = None
        self._statements: _Statements | None = None
        self._closed = False
        self._start_lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()
        # What this process knows is already indexed (see the module docstring).
        self._known_symbols: set[str] = set()
        self._known_bucket: dict[tuple[str, int], int] = {}

    @property
    def keyspace(self) -> str:
        return self._keyspace

    @property
    def checkpoint_group(self) -> str:
        """The aggregator group whose checkpoints this store saves and loads."""
        return self._checkpoint_group

    async def start(self) -> None:
        """Connect, create the keyspace and tables, migrate TTLs, prepare the statements."""
        async with self._start_lock:
            if self._closed:
                raise StoreClosedError(f"{self!r} was closed; create a new one")
            if self._db is not None:
                return
            db = await CassandraSession.connect(
                self._contact_points,
                self._port,
                connect_timeout_s=self._connect_timeout_s,
                request_timeout_s=self._request_timeout_s,
            )
            try:
                await db.ensure_keyspace(self._keyspace, self._replication_factor)
                statements = await self._prepare_schema(db)
            except BaseException:
                await db.close()
                raise
            # Bar reads skip the default profile's dict per row: plain tuples, same policy.
            self._tuple_rows = db.session.execution_profile_clone_update(
                EXEC_PROFILE_DEFAULT, row_factory=tuple_factory
            )
            self._db, self._statements = db, statements

    async def close(self) -> None:
        """Close the session. Safe twice, and before ``start()``."""
        if self._closed:
            return
        self._closed = True
        db, self._db, self._statements = self._db, None, None
        if db is not None:
            await db.close()

    async def upsert(self, bars: Sequence[pb.Bar]) -> None:
        """Write every bar concurrently (at most ``max_in_flight`` at once); all or error.

        Raises :class:`~storage.errors.StoreUnavailableError` naming host:port when a write
        timed out or no replica could take it, :class:`~storage.errors.StoreError` when the
        server refused one: some bars may then be stored; repeat the call.
        """
        unique = latest_per_key(bars)
        db, s = self._session()
        if not unique:
            return
        index_jobs: list[tuple[PreparedStatement, tuple[Any, ...]]] = []
        new_symbols = {bar.symbol for bar in unique} - self._known_symbols
        index_jobs += [(s.insert_symbol, (symbol,)) for symbol in sorted(new_symbols)]
        newest: dict[tuple[str, int], int] = {}
        indexed: set[tuple[str, int, int]] = set()
        bar_jobs: list[tuple[PreparedStatement, tuple[Any, ...]]] = []
        for bar in unique:
            table = s.table(bar.resolution)
            series = (bar.symbol, bar.resolution)
            bucket = bucket_of(bar.resolution, bar.open_time_ns)
            if bucket != self._known_bucket.get(series) and (*series, bucket) not in indexed:
                indexed.add((*series, bucket))
                index_jobs.append((s.insert_bucket, (*series, bucket, table.index_ttl_s)))
            newest[series] = max(bucket, newest.get(series, bucket))
            values = (
                bar.symbol,
                bar.resolution,
                bucket,
                bar.open_time_ns,
                bar.open_px_e8,
                bar.high_px_e8,
                bar.low_px_e8,
                bar.close_px_e8,
                bar.volume_e8,
                bar.trade_count,
                bar.final,
            )
            bar_jobs.append((table.insert, values))
        async with self._write_lock:
            if index_jobs:  # indexed before their bars, so readers always find the bars
                await self._write(db, index_jobs, "bar index")
            await self._write(db, bar_jobs, "bars")
        self._known_symbols |= new_symbols
        self._known_bucket.update(newest)

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
        db, s = self._session()
        if countback > 0:
            newest_first = await self._walk_back(
                db, s, symbol, resolution, before_ns=to_ns, count=countback
            )
            newest_first.reverse()
            return newest_first
        if from_ns >= to_ns:
            return []
        table = s.table(resolution)
        first, last = bucket_of(resolution, from_ns), bucket_of(resolution, to_ns - 1)
        listed = await db.execute(s.select_buckets_up, (symbol, resolution, first, last))
        buckets = [row["bucket"] for row in listed]
        bars: list[pb.Bar] = []
        for start in range(0, len(buckets), _READ_FANOUT):
            parts = await asyncio.gather(
                *(
                    self._read(db, table.select_range, (symbol, resolution, b, from_ns, to_ns))
                    for b in buckets[start : start + _READ_FANOUT]
                )
            )
            for rows in parts:
                bars += _bars(symbol, resolution, rows)
        return bars

    async def last_before(
        self, symbol: str, resolution: pb.Resolution.ValueType, before_ns: int
    ) -> pb.Bar | None:
        """The newest bar with ``open_time_ns < before_ns``, or ``None``."""
        check_last_before_args(symbol, resolution, before_ns)
        db, s = self._session()
        found = await self._walk_back(db, s, symbol, resolution, before_ns=before_ns, count=1)
        return found[0] if found else None

    async def symbols(self) -> list[str]:
        """Every symbol ever given a bar (also after its bars expired), sorted."""
        db, s = self._session()
        rows = await db.execute(s.select_symbols)
        return sorted(row["symbol"] for row in rows)

    async def save_checkpoints(self, checkpoints: Mapping[str, Checkpoint]) -> None:
        """Write every checkpoint concurrently (at most ``max_in_flight`` at once); all or error.

        Errors as :meth:`upsert`'s, naming the symbols and the group: some checkpoints may
        then be stored; repeat the call.
        """
        pairs = check_checkpoints(checkpoints)
        db, s = self._session()
        if not pairs:
            return
        group = self._checkpoint_group
        jobs: list[tuple[PreparedStatement, tuple[Any, ...]]] = [
            (
                s.insert_checkpoint,
                (group, symbol, cp.partition, cp.offset, cp.state, cp.incarnation),
            )
            for symbol, cp in pairs
        ]
        what = f"the checkpoints of {name_symbols([p[0] for p in pairs])} (group {group!r})"
        async with self._write_lock:
            await self._write(db, jobs, what)

    async def load_checkpoint(self, symbol: str) -> Checkpoint | None:
        """The checkpoint saved for ``symbol`` in this store's group, or ``None``."""
        check_symbol(symbol)
        db, s = self._session()
        rows = await db.execute(s.select_checkpoint, (self._checkpoint_group, symbol))
        if not rows:
            return None
        row = rows[0]
        return Checkpoint(
            row["partition"], row["offset"], bytes(row["state"]), row["incarnation"] or ""
        )

    def __repr__(self) -> str:
        points = ",".join(self._contact_points)
        return f"CassandraBarStore({points}:{self._port}, keyspace={self._keyspace!r})"

    async def _prepare_schema(self, db: CassandraSession) -> _Statements:
        ks = self._keyspace
        tables = {
            name: _Table(name, days, self._ttl_s.get(name, 0))
            for name, days in (
                ("bars_1s", 1),
                ("bars_1m", 30),
                ("bars_intraday", 365),
                ("bars_daily", 3650),
            )
        }
        await db.ensure_schema(
            [
                *(table.ddl(ks) for table in tables.values()),
                f"""CREATE TABLE IF NOT EXISTS {ks}.bar_buckets (
                    symbol text, resolution int, bucket bigint,
                    PRIMARY KEY ((symbol, resolution), bucket)
                ) WITH CLUSTERING ORDER BY (bucket ASC)""",
                f"""CREATE TABLE IF NOT EXISTS {ks}.bar_symbols (
                    shard int, symbol text, PRIMARY KEY ((shard), symbol)
                )""",
                f"""CREATE TABLE IF NOT EXISTS {ks}.bar_checkpoints (
                    group_id text, symbol text, partition int, offset bigint, state blob,
                    incarnation text, PRIMARY KEY ((group_id, symbol))
                )""",
            ]
        )
        await self._add_incarnation_column(db)
        current = await db.execute(
            "SELECT table_name, default_time_to_live, compaction FROM system_schema.tables "
            f"WHERE keyspace_name = '{ks}'"
        )
        by_name = {row["table_name"]: row for row in current}
        await db.ensure_schema(
            f"ALTER TABLE {ks}.{table.name} WITH default_time_to_live = {table.ttl_s} "
            f"AND compaction = {table.compaction()}"
            for table in tables.values()
            if not table.is_current(by_name[table.name])
        )
        for name, table in tables.items():
            where = f"FROM {ks}.{name} WHERE symbol = ? AND resolution = ? AND bucket = ?"
            select_range = await db.prepare(
                f"SELECT {_SERIES_COLUMNS} {where} AND open_time_ns >= ? AND open_time_ns < ?"
            )
            select_back = await db.prepare(
                f"SELECT {_SERIES_COLUMNS} {where} AND open_time_ns < ? "
                "ORDER BY open_time_ns DESC LIMIT ?"
            )
            select_range.fetch_size = select_back.fetch_size = _READ_PAGE_ROWS
            tables[name] = _Table(
                name,
                table.bucket_days,
                table.ttl_s,
                insert=await db.prepare(
                    f"INSERT INTO {ks}.{name} (symbol, resolution, bucket, open_time_ns, "
                    f"{_VALUES}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                select_range=select_range,
                select_back=select_back,
            )
        index = f"{ks}.bar_buckets"
        series = "WHERE symbol = ? AND resolution = ?"
        prepared = [
            await db.prepare(
                f"INSERT INTO {index} (symbol, resolution, bucket) VALUES (?, ?, ?) USING TTL ?"
            ),
            await db.prepare(
                f"SELECT bucket FROM {index} {series} AND bucket >= ? AND bucket <= ?"
            ),
            await db.prepare(
                f"SELECT bucket FROM {index} {series} AND bucket <= ? ORDER BY bucket DESC"
            ),
            await db.prepare(f"INSERT INTO {ks}.bar_symbols (shard, symbol) VALUES (0, ?)"),
            await db.prepare(f"SELECT symbol FROM {ks}.bar_symbols WHERE shard = 0"),
            await db.prepare(
                f"INSERT INTO {ks}.bar_checkpoints "
                "(group_id, symbol, partition, offset, state, incarnation) "
                "VALUES (?, ?, ?, ?, ?, ?)"
            ),
            await db.prepare(
                f"SELECT partition, offset, state, incarnation FROM {ks}.bar_checkpoints "
                "WHERE group_id = ? AND symbol = ?"
            ),
        ]
        return _Statements(tables, prepared)

    async def _add_incarnation_column(self, db: CassandraSession) -> None:
        """``bar_checkpoints`` of a keyspace made before checkpoints had an incarnation."""
        ks = self._keyspace

        async def has_it() -> bool:
            rows = await db.execute(
                "SELECT column_name FROM system_schema.columns "
                f"WHERE keyspace_name = '{ks}' AND table_name = 'bar_checkpoints'"
            )
            return any(row["column_name"] == "incarnation" for row in rows)

        if await has_it():
            return
        try:
            await db.ensure_schema([f"ALTER TABLE {ks}.bar_checkpoints ADD incarnation text"])
        except StoreError:
            if not await has_it():  # else another process added it first
                raise

    def _session(self) -> tuple[CassandraSession, _Statements]:
        if self._db is None or self._statements is None:
            state = "closed" if self._closed else "not started"
            raise StoreClosedError(f"{self!r} is {state}")
        return self._db, self._statements

    async def _walk_back(
        self,
        db: CassandraSession,
        s: _Statements,
        symbol: str,
        resolution: pb.Resolution.ValueType,
        *,
        before_ns: int,
        count: int,
    ) -> list[pb.Bar]:
        """Up to ``count`` bars before ``before_ns``, newest first."""
        if before_ns <= -(2**63):
            return []
        table = s.table(resolution)
        last = bucket_of(resolution, before_ns - 1)
        listed = await db.execute(s.select_buckets_down, (symbol, resolution, last))
        bars: list[pb.Bar] = []
        for row in listed:
            wanted = count - len(bars)
            params = (symbol, resolution, row["bucket"], before_ns, wanted)
            bars += _bars(symbol, resolution, await self._read(db, table.select_back, params))
            if len(bars) >= count:
                break
        return bars

    async def _read(
        self, db: CassandraSession, statement: PreparedStatement, params: tuple[Any, ...]
    ) -> list[tuple[Any, ...]]:
        """Every row of a bar read, as tuples (see ``_tuple_rows``); errors translated."""
        try:
            response = db.session.execute_async(
                statement, params, execution_profile=self._tuple_rows
            )
            rows: list[tuple[Any, ...]] = await response_rows(response)  # type: ignore[assignment]  # _tuple_rows makes tuples
        except Exception as exc:
            detail = f"reading bars failed: {exc}"
            if isinstance(exc, _UNAVAILABLE):
                raise StoreUnavailableError(
                    f"cassandra unavailable at {db.endpoints}: {detail}"
                ) from exc
            raise StoreError(f"cassandra at {db.endpoints}: {detail}") from exc
        return rows

    async def _write(
        self,
        db: CassandraSession,
        jobs: list[tuple[PreparedStatement, tuple[Any, ...]]],
        what: str,
    ) -> None:
        writes = _ConcurrentWrites(db.session, jobs, self._max_in_flight)
        try:
            await writes.run()
        except asyncio.CancelledError:
            writes.stop()
            raise
        except Exception as exc:
            detail = f"writing {what} failed ({writes.succeeded} of {len(jobs)} written): {exc}"
            if isinstance(exc, _UNAVAILABLE):
                raise StoreUnavailableError(
                    f"cassandra unavailable at {db.endpoints}: {detail}"
                ) from exc
            raise StoreError(f"cassandra at {db.endpoints}: {detail}") from exc


class _ConcurrentWrites:
    """Runs statements with at most ``window`` in flight; settles one asyncio future.

    Callbacks run on the driver's I/O threads: they count, send the next statement and,
    once nothing is left in flight, hand the outcome to the loop. The first error stops
    further sends.
    """

    def __init__(
        self,
        session: Session,
        jobs: list[tuple[PreparedStatement, tuple[Any, ...]]],
        window: int,
    ) -> None:
        self._session = session
        self._jobs: Iterator[tuple[PreparedStatement, tuple[Any, ...]]] = iter(jobs)
        self._window = window
        self._lock = threading.Lock()
        self._in_flight = 0
        self._exhausted = False
        self._settled = False
        self._stopped = False
        self._error: BaseException | None = None
        self.succeeded = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._future: asyncio.Future[None] | None = None

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._future = self._loop.create_future()
        for _ in range(self._window):
            if not self._send_next():
                break
        await self._future

    def stop(self) -> None:
        """Send nothing more (the awaiting task was cancelled); in-flight writes finish."""
        with self._lock:
            self._stopped = True

    def _send_next(self) -> bool:
        with self._lock:
            job = None
            if self._error is None and not self._stopped:
                job = next(self._jobs, None)
            if job is None:
                self._exhausted = True
            else:
                self._in_flight += 1
        if job is None:
            self._settle_if_idle()
            return False
        statement, params = job
        try:
            response = self._session.execute_async(statement, params)
        except Exception as exc:  # never leave the awaiting coroutine hanging
            self._on_error(exc)
            return False
        response.add_callbacks(self._on_done, self._on_error)
        return True

    def _on_done(self, _rows: object) -> None:
        with self._lock:
            self._in_flight -= 1
            self.succeeded += 1
        self._send_next()

    def _on_error(self, error: BaseException) -> None:
        with self._lock:
            self._in_flight -= 1
            if self._error is None:
                self._error = error
        self._settle_if_idle()

    def _settle_if_idle(self) -> None:
        with self._lock:
            if self._settled or self._in_flight or not (self._exhausted or self._error):
                return
            self._settled = True
            error = self._error
        loop, future = self._loop, self._future
        assert loop is not None
        assert future is not None

        def settle() -> None:
            if future.done():  # the awaiting task was cancelled
                return
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(settle)
