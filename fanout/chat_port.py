"""The chat contract (``mdfeed.kernel.chat.ChatPort``) on the fanout's chat service: what
the datafeed's chat panel posts and reads through, in the same process."""

from __future__ import annotations

import asyncio
import re
from collections import deque

from fanout.chat import ChatService, validate_room
from mdfeed.kernel.chat import ChatCode, ChatRejected, ChatSubscription
from mdfeed.kernel.entitlements import WILDCARD, User
from proto import mdfeed_pb2 as pb
from storage import StoreError

__all__ = ["ServiceChatPort"]

_AUTHOR = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class _ChatReader:
    """A ``ChatMember`` with a bounded queue: past ``limit`` it is cut off, losing nothing."""

    def __init__(self, service: ChatService, room: str, limit: int) -> None:
        self._service = service
        self._room = room
        self._limit = limit
        self._queue: deque[pb.ChatMessage] = deque()
        self._wake = asyncio.Event()
        self._closed = False
        self.overflowed = False

    def deliver_chat(self, message: pb.ChatMessage, frame: bytes) -> None:
        if self._closed:
            return
        if len(self._queue) >= self._limit:
            # No-loss lane: cut the reader off; it resumes from its last seq.
            self.overflowed = True
            self.close()
            return
        self._queue.append(message)
        self._wake.set()

    async def next(self) -> pb.ChatMessage | None:
        while not self._queue:
            if self._closed:
                return None
            self._wake.clear()
            await self._wake.wait()
        if self._closed and self.overflowed:
            return None
        return self._queue.popleft()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._service.leave(self, self._room)
            self._wake.set()


class ServiceChatPort:
    """``ChatPort`` on the fanout's :class:`~fanout.chat.ChatService`.

    A post is made as the user named ``author`` (checked like a user name: letters, digits,
    ``_ . -``, at most 64), allowed in every room; the service validates room and text and
    rate-limits per author.
    """

    def __init__(self, service: ChatService) -> None:
        self.service = service

    async def post(self, author: str, room: str, text: str) -> pb.ChatMessage:
        if not _AUTHOR.match(author):
            raise ChatRejected(
                ChatCode.INVALID_ARGUMENT,
                f"author: {author[:80]!r} is not a valid name (letters, digits and _ . -, "
                "at most 64, starting with a letter or digit)",
            )
        user = User(name=author, token="", symbols=frozenset(), rooms=frozenset({WILDCARD}))
        return await self.service.post(user, room, text)

    async def last_seq(self, room: str) -> int:
        _check_room(room)
        try:
            return await self.service.store.last_seq(room)
        except StoreError as exc:
            raise ChatRejected(
                ChatCode.UNAVAILABLE, f"chat store unavailable: {exc}"
            ) from exc

    async def subscribe(self, room: str, after_seq: int) -> ChatSubscription:
        _check_room(room)
        reader = _ChatReader(self.service, room, self.service.config.client_queue_max)
        await self.service.join(reader, room, after_seq)
        return reader


def _check_room(room: str) -> None:
    error = validate_room(room)
    if error is not None:
        raise ChatRejected(ChatCode.INVALID_ARGUMENT, error)

