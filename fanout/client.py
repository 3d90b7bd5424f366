"""One connected client, whatever its transport: its tick lane, chat and control frames.

A ``FanoutClient`` is one connection: its ``TickLane`` (``fanout.lane``: snapshots, tick
frames, gap and resync notices, in order), chat frames (never dropped; docs/architecture.md,
"Principles": 3. two delivery lanes) and control frames (errors, resume notices, bar
updates). Its transport iterates ``frames()`` and writes the bytes as they are; the client
imports no transport, so every transport (gRPC now, a WebSocket next) reuses it whole.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator

from fanout.frames import SharedFrame
from fanout.lane import TickLane
from proto import mdfeed_pb2 as pb

__all__ = ["FanoutClient"]

#: Queued tick frames of a client that fell behind are joined into messages up to this size
#: (well under gRPC's default 4 MB receive limit).
DEFAULT_MAX_MESSAGE_BYTES = 512 * 1024
#: Undelivered chat frames a client may hold before it is disconnected.
DEFAULT_MAX_PENDING_CHAT = 10_000


class FanoutClient:
    """One connected client: its tick lane and its pending control frames."""

    def __init__(
        self,
        lane: TickLane,
        *,
        max_pending_chat: int = DEFAULT_MAX_PENDING_CHAT,
    ) -> None:
        self.lane = lane
        self.max_pending_chat = max_pending_chat
        self.max_message_bytes = DEFAULT_MAX_MESSAGE_BYTES
        self.symbols: set[str] = set()
        self._control: deque[bytes] = deque()
        self._chat: deque[bytes] = deque()
        self._wake = asyncio.Event()

    def deliver_chat(self, message: pb.ChatMessage, frame: bytes) -> None:
        """Queue a chat frame; chat is never dropped, so a client too far behind is closed.

        It can reconnect and resume from its last seq without losing anything.
        """
        if self.lane.closed:
            return
        if len(self._chat) >= self.max_pending_chat:
            self.close(
                f"chat backlog: {len(self._chat)} undelivered chat messages "
                f"(limit {self.max_pending_chat}); resume from seq to continue"
            )
            return
        self._chat.append(frame)
        self._wake.set()

    def push_frame(self, frame: SharedFrame) -> None:
        """Queue a shared tick frame (or an in-order notice) on the lane; never blocks."""
        self.lane.push(frame)
        self._wake.set()

    def push(self, frame: bytes) -> None:
        """Queue a control frame (an error, a resume notice) ahead of the lane's frames."""
        self._control.append(frame)
        self._wake.set()

    def close(self, reason: str) -> None:
        self.lane.close(reason)
        self._wake.set()

    async def frames(self) -> AsyncIterator[bytes]:
        """Encoded server frames until the lane must disconnect; then the iterator ends.

        Control frames (errors) and chat go first, then the lane's frames in order
        (snapshots, tick batches, gap and resync notices).
        """
        lane = self.lane
        control = self._control
        chat = self._chat
        while True:
            while control:
                yield control.popleft()
            while chat and not lane.closed:
                yield chat.popleft()
            if lane.disconnect_reason() is not None:
                return
            frame = lane.take(self.max_message_bytes)
            if frame is not None:
                yield frame
                continue
            self._wake.clear()
            if control or chat or lane.queued_frames:
                continue
            # No timer while idle: every way a lane comes to need a disconnect while its
            # writer waits here (closed, cut off by the fanout's watchdog, overflowing on a
            # push) sets the wake event; a timeout per wait cost a timer per frame and stream.
            await self._wake.wait()
