"""Cassandra plumbing shared by the stores: connecting, schema, and asyncio over the driver.

The chat store uses it now and the bar store will: both get a :class:`CassandraSession`
from :meth:`CassandraSession.connect`, create their keyspace and tables with
:meth:`~CassandraSession.ensure_keyspace` and :meth:`~CassandraSession.ensure_schema`,
prepare their statements once and run them with :meth:`~CassandraSession.execute` /
:meth:`~CassandraSession.execute_conditional`.

Asyncio: the driver answers on its own I/O threads. :func:`response_rows` hands each answer
to the event loop with ``loop.call_soon_threadsafe`` and does nothing else on the driver's
thread, so coroutines await queries without blocking the loop and without a thread per
query. The blocking calls the driver has no async form of (connect, prepare, shutdown) run
in a worker thread (``asyncio.to_thread``).

Consistency: reads and writes at QUORUM, lightweight transactions at SERIAL: with any
replication factor, an acknowledged write is seen by every later read.

Errors (see :mod:`storage.errors`): no host reachable, a request or schema agreement timed
out, not enough replicas alive become :class:`~storage.errors.StoreUnavailableError`
naming the ``host:port`` contact points; everything else the server refuses becomes
:class:`~storage.errors.StoreError`.

Schema changes: keyspaces and tables are created ``IF NOT EXISTS``, and every change waits
until all nodes agree on the schema (the driver waits up to ``max_schema_agreement_wait_s``)
before the next statement; disagreement left after that is an error, not a warning. An
existing keyspace is used as it is, whatever its replication. On a multi-node cluster
start the first process alone before others: concurrent ``CREATE TABLE`` of one table on
different nodes is what Cassandra does worst.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Iterable, Sequence
from typing import Any

from cassandra import (
    ConsistencyLevel,
    CoordinationFailure,
    OperationTimedOut,
    Timeout,
    Unavailable,
)
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    NoHostAvailable,
    ResponseFuture,
    Session,
)
from cassandra.connection import ConnectionException
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
from cassandra.query import PreparedStatement, dict_factory

from storage.errors import StoreError, StoreUnavailableError

__all__ = ["CassandraSession", "Row", "check_keyspace_name", "response_rows"]

#: A result row: column name to value (``[applied]`` for a conditional statement's result).
Row = dict[str, Any]

_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,47}")
_UNAVAILABLE = (
    NoHostAvailable,
    OperationTimedOut,
    Timeout,
    Unavailable,
    CoordinationFailure,
    ConnectionException,
)


def check_keyspace_name(keyspace: str) -> str:
    """Return ``keyspace`` if Cassandra takes it unquoted, else raise ``ValueError``."""
    if not isinstance(keyspace, str) or not _IDENTIFIER.fullmatch(keyspace):
        raise ValueError(
            f"keyspace {keyspace!r} is not a valid Cassandra keyspace name "
            "(a letter, then up to 47 letters, digits or underscores)"
        )
    return keyspace


def response_rows(response: ResponseFuture) -> asyncio.Future[list[Row]]:
    """An asyncio future of every row of ``response`` (all pages), in the running loop.

    The driver calls back on its I/O thread; the callbacks only collect the page, ask for the
    next one and hand the outcome to the loop with ``call_soon_threadsafe``. Driver errors
    come out as they are (see :meth:`CassandraSession.execute` for translated ones).
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[list[Row]] = loop.create_future()
    rows: list[Row] = []

    def settle(result: list[Row] | None, error: BaseException | None) -> None:
        if future.done():  # the awaiting task was cancelled
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result or [])

    def hand_over(result: list[Row] | None, error: BaseException | None) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(settle, result, error)

    def on_page(page: list[Row] | None) -> None:
        try:
            if page:  # None for statements without rows (DDL)
                rows.extend(page)
            if response.has_more_pages:
                response.start_fetching_next_page()  # on_page is called again with it
                return
        except Exception as exc:  # never leave the awaiting coroutine hanging
            hand_over(None, exc)
            return
        hand_over(rows, None)

    def on_error(error: BaseException) -> None:
        hand_over(None, error)

    response.add_callbacks(on_page, on_error)
    return future


class CassandraSession:
    """A driver ``Cluster`` and its ``Session``, with asyncio and translated errors.

    Make one with :meth:`connect`; :meth:`close` is safe twice.
    """

    def __init__(self, cluster: Cluster, session: Session, endpoints: str) -> None:
        self.cluster = cluster
        self.session = session
        #: The contact points as ``host:port``, for messages.
        self.endpoints = endpoints
        self._closed = False

    @classmethod
    async def connect(
        cls,
        contact_points: Sequence[str],
        port: int,
        *,
        connect_timeout_s: float = 5.0,
        request_timeout_s: float = 10.0,
        max_schema_agreement_wait_s: float = 30.0,
    ) -> CassandraSession:
        """Connect to the cluster; ``StoreUnavailableError`` naming host:port if none answers."""
        if isinstance(contact_points, str) or not contact_points:
            raise ValueError(
                f"contact_points must be a non-empty list of hosts, got {contact_points!r}"
            )
        endpoints = ", ".join(f"{host}:{port}" for host in contact_points)
        profile = ExecutionProfile(
            load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()),
            consistency_level=ConsistencyLevel.QUORUM,
            serial_consistency_level=ConsistencyLevel.SERIAL,
            request_timeout=request_timeout_s,
            row_factory=dict_factory,
        )
        cluster = Cluster(
            list(contact_points),
            port=port,
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
            connect_timeout=connect_timeout_s,
            control_connection_timeout=connect_timeout_s,
            max_schema_agreement_wait=max_schema_agreement_wait_s,
        )
        try:
            session = await asyncio.to_thread(cluster.connect)
        except BaseException as exc:
            await asyncio.to_thread(cluster.shutdown)
            if isinstance(exc, (*_UNAVAILABLE, OSError)):
                raise StoreUnavailableError(f"cassandra unavailable at {endpoints}: {exc}") from exc
            if isinstance(exc, Exception):
                raise StoreError(f"cannot connect to cassandra at {endpoints}: {exc}") from exc
            raise
        return cls(cluster, session, endpoints)

    async def close(self) -> None:
        """Shut the driver's connections and threads down. Safe twice."""
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self.cluster.shutdown)

    async def execute(
        self,
        statement: str | PreparedStatement,
        params: Sequence[Any] = (),
        *,
        timeout_s: float | None = None,
    ) -> list[Row]:
        """Run one statement; every row of its result (all pages)."""
        rows, _ = await self._run(statement, params, timeout_s)
        return rows

    async def execute_conditional(
        self, statement: str | PreparedStatement, params: Sequence[Any] = ()
    ) -> tuple[bool, Row]:
        """Run a lightweight transaction (``... IF ...``): (applied, the result row).

        When not applied, the row holds the current values the condition was checked
        against (for ``INSERT ... IF NOT EXISTS``: the existing row).
        """
        rows, _ = await self._run(statement, params, None)
        if len(rows) != 1 or "[applied]" not in rows[0]:
            raise StoreError(f"not a conditional statement's result: {rows!r}")
        row = rows[0]
        return bool(row["[applied]"]), row

    async def prepare(self, query: str) -> PreparedStatement:
        """Prepare ``query`` on the cluster (once per statement, at start)."""
        try:
            return await asyncio.to_thread(self.session.prepare, query)
        except Exception as exc:
            raise self._translate(exc) from exc

    async def ensure_keyspace(self, keyspace: str, replication_factor: int) -> None:
        """Create ``keyspace`` (SimpleStrategy) if it does not exist; an existing one is kept."""
        check_keyspace_name(keyspace)
        if isinstance(replication_factor, bool) or not isinstance(replication_factor, int):
            raise ValueError(f"replication_factor must be an int, got {replication_factor!r}")
        if replication_factor < 1:
            raise ValueError(f"replication_factor must be >= 1, got {replication_factor}")
        await self.ensure_schema(
            [
                f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = "
                f"{{'class': 'SimpleStrategy', 'replication_factor': {replication_factor}}}"
            ]
        )

    async def ensure_schema(self, statements: Iterable[str], *, timeout_s: float = 60.0) -> None:
        """Run DDL statements in order, each after the cluster agreed on the previous one."""
        for statement in statements:
            _, response = await self._run(statement, (), timeout_s)
            if not response.is_schema_agreed:
                raise StoreUnavailableError(
                    f"cassandra at {self.endpoints}: nodes did not agree on the schema "
                    f"within {self.cluster.max_schema_agreement_wait} s after: {statement}"
                )

    async def _run(
        self, statement: str | PreparedStatement, params: Sequence[Any], timeout_s: float | None
    ) -> tuple[list[Row], ResponseFuture]:
        if self._closed:
            raise StoreError(f"cassandra session to {self.endpoints} is closed")
        try:
            # Without parameters the driver must not %-format a plain string statement.
            bound = params or None
            if timeout_s is None:
                response = self.session.execute_async(statement, bound)
            else:
                response = self.session.execute_async(statement, bound, timeout=timeout_s)
            return await response_rows(response), response
        except Exception as exc:
            raise self._translate(exc) from exc

    def _translate(self, exc: Exception) -> StoreError:
        if isinstance(exc, StoreError):
            return exc
        if isinstance(exc, (*_UNAVAILABLE, OSError)):
            return StoreUnavailableError(f"cassandra unavailable at {self.endpoints}: {exc}")
        return StoreError(f"cassandra at {self.endpoints}: {exc}")
