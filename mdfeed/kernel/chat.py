"""The chat contract: what a chat client inside mdfeed may ask, and how a refusal looks.

The fanout implements it (``fanout.chat_port.ServiceChatPort`` on its chat service); the
datafeed's chat panel uses it. Neither side needs the other's code, nor grpc: a refusal
carries a ``ChatCode``, numbered as google.rpc.Code, which gRPC, MQTT error payloads and
HTTP statuses each translate for themselves.
"""

from __future__ import annotations

import enum
from typing import Protocol

from proto import mdfeed_pb2 as pb

__all__ = ["ChatCode", "ChatPort", "ChatRejected", "ChatSubscription"]


class ChatCode(enum.IntEnum):
    """Why a chat request was refused; the values are google.rpc.Code numbers."""

    INVALID_ARGUMENT = 3
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    UNIMPLEMENTED = 12
    UNAVAILABLE = 14


class ChatRejected(Exception):  # noqa: N818 - a refusal of one request, not an error of mdfeed
    """A post or request that is refused: ``code`` says why, ``message`` says what."""

    def __init__(self, code: ChatCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ChatSubscription(Protocol):
    """One reader of one room, in seq order, without gaps."""

    async def next(self) -> pb.ChatMessage | None:
        """The next message; None once closed (or disconnected for falling behind)."""

    def close(self) -> None:
        """Leave the room. Safe twice."""


class ChatPort(Protocol):
    """Post to a room, read its last seq, follow it live: ``ChatRejected`` when refused."""

    async def post(self, author: str, room: str, text: str) -> pb.ChatMessage:
        """Store and publish a post as ``author``; the stored message."""

    async def last_seq(self, room: str) -> int:
        """The newest seq of ``room`` (0 when empty)."""

    async def subscribe(self, room: str, after_seq: int) -> ChatSubscription:
        """Every message of ``room`` after ``after_seq``, then live ones."""
