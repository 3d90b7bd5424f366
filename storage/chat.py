"""The chat store port: sequenced, persisted chat rooms, whichever database is behind.

Chat is never lost (docs/architecture.md, "Principles": 3. two delivery lanes): the fanout
appends every post here BEFORE it acknowledges or delivers it, and a client that reconnects
with the last seq it saw gets exactly the messages after it from :meth:`ChatStore.history`.

Policy every adapter keeps:

* Sequence numbers are per room, contiguous from 1: ``append`` stores the message at the
  room's last seq + 1, atomically even when other processes append to the same room on the
  same database at the same time (several fanout processes share one Cassandra). There are
  never gaps and never two messages with one seq.
* ``append`` is idempotent on ``(room, msg_id)``: appending an id the room already holds
  stores nothing and returns the stored message (its seq, text and time, whatever the
  repeat carried). A caller that lost the answer (timeout, ``StoreUnavailableError``,
  cancellation, a crash) retries with the same id and cannot create a duplicate.
* Message ids are unique within a room; the same id in two rooms is two messages.
* Text, author and room round-trip exactly (any Unicode, newlines included); the store does
  not police content (length and rate limits are the fanout's, see ``ChatConfig``).
* Messages are kept for good; nothing expires them.

Adapters: :class:`~storage.SqliteChatStore` (the embedded default) and
:class:`~storage.CassandraChatStore`. Both pass the contract suite in
:mod:`storage.contract`; :func:`~storage.open_chat_store` picks one from the config.
Errors are drawn in :mod:`storage.errors`.
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self

from proto import mdfeed_pb2 as pb

__all__ = ["ChatStore", "check_append_args", "check_history_args", "check_room"]

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_INT32_MAX = 2**31 - 1


class ChatStore(Protocol):
    """Sequenced, persisted chat messages per room (see the module docstring for the policy).

    An async context manager: ``async with store:`` starts it and closes it.
    """

    async def start(self) -> None:
        """Connect, and create the schema if it is missing (safe on an existing database).

        Raises :class:`~storage.errors.StoreUnavailableError` when the database cannot be
        reached or opened.
        """

    async def close(self) -> None:
        """Release the connection. Safe to call twice, and before ``start()``."""

    async def append(
        self, room: str, msg_id: str, author: str, text: str, time_ns: int
    ) -> pb.ChatMessage:
        """Store a message at the room's next seq and return it as stored.

        If ``(room, msg_id)`` is already stored, returns that message unchanged instead.
        """

    async def history(self, room: str, after_seq: int, limit: int) -> list[pb.ChatMessage]:
        """The room's messages with seq > ``after_seq``, ascending, at most ``limit`` of them.

        ``after_seq`` 0 starts at the first message; ``limit`` 0 returns ``[]``.
        """

    async def last_seq(self, room: str) -> int:
        """The room's highest seq; 0 for a room without messages."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def check_room(room: str) -> None:
    """Raise ``ValueError`` unless ``room`` is a non-empty string."""
    if not isinstance(room, str) or not room:
        raise ValueError(f"room must be a non-empty string, got {room!r}")
    _check_unicode("room", room)


def check_append_args(room: str, msg_id: str, author: str, text: str, time_ns: int) -> None:
    """Raise ``ValueError`` naming the first bad argument of ``append``."""
    check_room(room)
    if not isinstance(msg_id, str) or not msg_id:
        raise ValueError(f"msg_id must be a non-empty string, got {msg_id!r}")
    if not isinstance(author, str):
        raise ValueError(f"author must be a string, got {type(author).__name__}")
    if not isinstance(text, str):
        raise ValueError(f"text must be a string, got {type(text).__name__}")
    if not _is_int(time_ns):
        raise ValueError(f"time_ns must be an int (ns since the Unix epoch), got {time_ns!r}")
    if not _INT64_MIN <= time_ns <= _INT64_MAX:
        raise ValueError(f"time_ns {time_ns} does not fit in 64 bits")
    for name, value in (("msg_id", msg_id), ("author", author), ("text", text)):
        _check_unicode(name, value)


def check_history_args(room: str, after_seq: int, limit: int) -> None:
    """Raise ``ValueError`` naming the first bad argument of ``history``."""
    check_room(room)
    if not _is_int(after_seq) or not 0 <= after_seq <= _INT64_MAX:
        raise ValueError(f"after_seq must be an int from 0 to 2**63-1, got {after_seq!r}")
    if not _is_int(limit) or not 0 <= limit <= _INT32_MAX:
        raise ValueError(f"limit must be an int from 0 to 2**31-1, got {limit!r}")


def _check_unicode(name: str, value: str) -> None:
    # Lone surrogates cannot be stored as UTF-8 (neither database nor protobuf takes them).
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{name} is not valid Unicode text: {exc.reason}") from None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
