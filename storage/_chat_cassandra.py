"""The Cassandra chat store: several fanout processes append to one room safely.

Tables (created if missing, in the configured keyspace)::

    chat_messages     (room, seq, id, author, text, time_ns)  PRIMARY KEY ((room), seq)
    chat_message_ids  (room, id, seq)                         PRIMARY KEY ((room, id))

A room's messages are one partition, clustered by seq, so ``history`` is one slice read.
Each id is a partition of its own, so appends of different messages never contend on it.

Sequencing, across processes: a message takes its seq with a lightweight transaction,
``INSERT INTO chat_messages ... IF NOT EXISTS`` on ``(room, seq)``. Only one appender can
win a seq; a loser moves on to a later one. Seqs are taken in order, from the first free
one, so they stay contiguous: every appender starts at or below the room's first free seq
(the next seq this process knows, or the room's last seq read from the table) and only
moves past a seq that is taken.

Idempotency, across processes: before taking a seq, the append reserves its id with
``INSERT INTO chat_message_ids ... IF NOT EXISTS``, recording the seq it is about to try.
If the id is already reserved, the append continues from the recorded seq instead of
starting anew: either the message is there (it is returned), or the seq is still free
(the message is written there, by whichever of the racing appenders of that id gets
there first; both return the same stored message), or another message took it (the
reservation is moved up with ``UPDATE ... IF seq = <old>``, so two appenders of one id
follow the same path). The message of an id can therefore only ever be written at its
reservation's seq, and never twice; a crash between the two writes leaves a reservation
that a retry of the same id completes, and no gap (the reserved seq is simply taken by
the next message).

Cache: the next seq of each room this process appended to is kept in memory, so the
usual append is two lightweight transactions and no read. It may fall behind when other
processes append (then the first attempt loses, the room's last seq is read and the
append jumps past it); it can never run ahead of the table, because it only moves past
seqs that are taken.

Appends to one room from one process are serialised by a per-room lock (the locks and the
cache hold one small entry per room the process has appended to), so they do not
contend with each other; appenders in different processes contend through the
transactions. When a transaction times out (contention, a slow replica) its outcome is
unknown; the append is retried, which is safe because it is idempotent, up to
``max_attempts`` times, then ``StoreUnavailableError`` is raised and the caller should
retry with the same ``msg_id``.

A room's partition grows with its messages; Cassandra is comfortable with partitions up to
about 100 MB (some 50 000 maximum-length posts), beyond which rooms should be split by
seq range (not done yet).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from cassandra import CoordinationFailure, Timeout
from cassandra.query import PreparedStatement

from mdfeed.kernel.lifecycle import Resource
from proto import mdfeed_pb2 as pb
from storage.cassandra import CassandraSession, Row, check_keyspace_name
from storage.chat import check_append_args, check_history_args, check_room
from storage.errors import StoreClosedError, StoreUnavailableError

__all__ = ["CassandraChatStore"]

_COLUMNS = "room, id, seq, author, text, time_ns"
#: Seqs one append may try before giving up (it jumps to the room's end after each loss).
_MAX_CLAIMS = 1000


def _tables(keyspace: str) -> list[str]:
    return [
        f"""CREATE TABLE IF NOT EXISTS {keyspace}.chat_messages (
            room text, seq bigint, id text, author text, text text, time_ns bigint,
            PRIMARY KEY ((room), seq)
        ) WITH CLUSTERING ORDER BY (seq ASC)""",
        f"""CREATE TABLE IF NOT EXISTS {keyspace}.chat_message_ids (
            room text, id text, seq bigint,
            PRIMARY KEY ((room, id))
        )""",
    ]


def _message(row: Row) -> pb.ChatMessage:
    return pb.ChatMessage(
        room=row["room"],
        id=row["id"],
        seq=row["seq"],
        author=row["author"],
        text=row["text"],
        time_ns=row["time_ns"],
    )


class _Statements:
    def __init__(self, prepared: Sequence[PreparedStatement]) -> None:
        (
            self.reserve_id,
            self.move_id,
            self.claim_seq,
            self.select_seq,
            self.select_after,
            self.select_last,
        ) = prepared


class CassandraChatStore(Resource):
    """Chat messages in Cassandra; ``start()`` creates the keyspace and tables if missing.

    ``keyspace`` is created with SimpleStrategy and ``replication_factor`` when it does not
    exist. Nothing connects before ``start()``.
    """

    def __init__(
        self,
        contact_points: Sequence[str],
        port: int,
        keyspace: str,
        replication_factor: int,
        *,
        connect_timeout_s: float = 5.0,
        request_timeout_s: float = 10.0,
        max_attempts: int = 5,
    ) -> None:
        if isinstance(contact_points, str) or not contact_points:
            raise ValueError(
                f"contact_points must be a non-empty list of hosts, got {contact_points!r}"
            )
        if not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValueError(f"port must be 1..65535, got {port!r}")
        if not isinstance(replication_factor, int) or replication_factor < 1:
            raise ValueError(f"replication_factor must be an int >= 1, got {replication_factor!r}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts!r}")
        self._contact_points = tuple(contact_points)
        self._port = port
        self._keyspace = check_keyspace_name(keyspace)
        self._replication_factor = replication_factor
        self._connect_timeout_s = connect_timeout_s
        self._request_timeout_s = request_timeout_s
        self._max_attempts = max_attempts
        self._db: CassandraSession | None = None
        self._statements: _Statements | None = None
        self._closed = False
        self._next_seq: dict[str, int] = {}
        self._room_locks: dict[str, asyncio.Lock] = {}
        self._start_lock = asyncio.Lock()

    @property
    def keyspace(self) -> str:
        return self._keyspace

    async def start(self) -> None:
        """Connect, create the keyspace and tables if missing, prepare the statements."""
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
                await db.ensure_schema(_tables(self._keyspace))
                statements = _Statements([await db.prepare(query) for query in self._queries()])
            except BaseException:
                await db.close()
                raise
            self._db, self._statements = db, statements

    async def close(self) -> None:
        """Close the session. Safe twice, and before ``start()``."""
        if self._closed:
            return
        self._closed = True
        db, self._db, self._statements = self._db, None, None
        if db is not None:
            await db.close()

    async def append(
        self, room: str, msg_id: str, author: str, text: str, time_ns: int
    ) -> pb.ChatMessage:
        """Store at the room's next seq (or return the stored message with this id)."""
        check_append_args(room, msg_id, author, text, time_ns)
        db, statements = self._session()
        draft = pb.ChatMessage(room=room, id=msg_id, author=author, text=text, time_ns=time_ns)
        lock = self._room_locks.setdefault(room, asyncio.Lock())
        async with lock:
            for attempt in range(1, self._max_attempts + 1):
                try:
                    return await self._append(db, statements, draft)
                except StoreUnavailableError as exc:
                    # A timed-out transaction has an unknown outcome; the append is
                    # idempotent, so trying again is safe (and settles it).
                    if attempt == self._max_attempts or not _outcome_unknown(exc):
                        raise
                    await asyncio.sleep(0.05 * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    async def history(self, room: str, after_seq: int, limit: int) -> list[pb.ChatMessage]:
        """Messages with seq > ``after_seq``, ascending, at most ``limit``."""
        check_history_args(room, after_seq, limit)
        if limit == 0:
            return []
        db, statements = self._session()
        rows = await db.execute(statements.select_after, (room, after_seq, limit))
        return [_message(row) for row in rows]

    async def last_seq(self, room: str) -> int:
        """The room's highest seq, 0 when it has no messages."""
        check_room(room)
        db, statements = self._session()
        last = await self._read_last_seq(db, statements, room)
        self._advance(room, last)
        return last

    def __repr__(self) -> str:
        points = ",".join(self._contact_points)
        return f"CassandraChatStore({points}:{self._port}, keyspace={self._keyspace!r})"

    def _queries(self) -> list[str]:
        messages = f"{self._keyspace}.chat_messages"
        ids = f"{self._keyspace}.chat_message_ids"
        return [
            f"INSERT INTO {ids} (room, id, seq) VALUES (?, ?, ?) IF NOT EXISTS",
            f"UPDATE {ids} SET seq = ? WHERE room = ? AND id = ? IF seq = ?",
            f"INSERT INTO {messages} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) IF NOT EXISTS",
            f"SELECT {_COLUMNS} FROM {messages} WHERE room = ? AND seq = ?",
            f"SELECT {_COLUMNS} FROM {messages} WHERE room = ? AND seq > ? LIMIT ?",
            f"SELECT seq FROM {messages} WHERE room = ? ORDER BY seq DESC LIMIT 1",
        ]

    def _session(self) -> tuple[CassandraSession, _Statements]:
        if self._db is None or self._statements is None:
            state = "closed" if self._closed else "not started"
            raise StoreClosedError(f"{self!r} is {state}")
        return self._db, self._statements

    def _advance(self, room: str, taken_seq: int) -> None:
        """Remember that ``taken_seq`` is taken in ``room`` (0: none): the next is after it."""
        known = self._next_seq.get(room)
        if known is None or known <= taken_seq:
            self._next_seq[room] = taken_seq + 1

    async def _read_last_seq(self, db: CassandraSession, s: _Statements, room: str) -> int:
        rows = await db.execute(s.select_last, (room,))
        return int(rows[0]["seq"]) if rows else 0

    async def _append(
        self, db: CassandraSession, s: _Statements, draft: pb.ChatMessage
    ) -> pb.ChatMessage:
        room, msg_id = draft.room, draft.id
        if room not in self._next_seq:
            self._advance(room, await self._read_last_seq(db, s, room))
        seq = self._next_seq[room]
        reserved, row = await db.execute_conditional(s.reserve_id, (room, msg_id, seq))
        if not reserved:
            # Appended before (or being appended now): continue from its reservation.
            seq = int(row["seq"])
            stored = await db.execute(s.select_seq, (room, seq))
            if stored and stored[0]["id"] == msg_id:
                self._advance(room, seq)
                return _message(stored[0])
        for _ in range(_MAX_CLAIMS):
            values = (room, msg_id, seq, draft.author, draft.text, draft.time_ns)
            claimed, row = await db.execute_conditional(s.claim_seq, values)
            self._advance(room, seq)
            if claimed:
                message = pb.ChatMessage()
                message.CopyFrom(draft)
                message.seq = seq
                return message
            if row["id"] == msg_id:  # a racing append of the same id got there first
                return _message(row)
            # Another message took this seq: move the reservation past the room's end.
            target = max(seq + 1, await self._read_last_seq(db, s, room) + 1)
            moved, row = await db.execute_conditional(s.move_id, (target, room, msg_id, seq))
            seq = target if moved else int(row["seq"])
        raise StoreUnavailableError(
            f"{self!r}: no free seq in room {room!r} after {_MAX_CLAIMS} tries (contention)"
        )


def _outcome_unknown(exc: StoreUnavailableError) -> bool:
    return isinstance(exc.__cause__, (Timeout, CoordinationFailure))
