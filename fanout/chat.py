"""Chat: validated, sequenced, persisted posts, delivered to every member exactly once.

Chat is the no-loss lane (docs/architecture.md, "Principles": 3. two delivery lanes): never
conflated, never dropped.

A post, from gRPC or MQTT, goes through ``ChatService.post``:

1. validation: the room name, the author's permission for the room (PERMISSION_DENIED), the
   text (non-empty, at most ``chat.max_text_chars``: INVALID_ARGUMENT) and a token bucket per
   author (``chat.rate_per_user_hz`` sustained, ``chat.rate_burst`` burst:
   RESOURCE_EXHAUSTED). A rejection is a ``ChatRejected`` (``mdfeed.kernel.chat``) with its code;
2. the store assigns the next per-room sequence number and persists it (atomic across fanout
   processes). The message id is derived from (author, room, client_ref) when the client
   gave a ref, so a post retried after a lost acknowledgement is stored once;
3. only then is it published on the bus's chat topic (keyed by room) and acknowledged.

Every fanout process consumes the whole chat topic and delivers to its own members. The
invariant that makes delivery exact: **a message on the chat topic is already in the
store**. Each member keeps a cursor per room (the last seq it was given):

* a live message with seq = cursor + 1 is delivered at once;
* seq <= cursor is a duplicate and skipped;
* seq > cursor + 1 means something was missed (the process joined late, the publisher died
  between store and bus, the member resumed from an older seq): the member catches up from
  the store (``history`` after its cursor, in pages) and then continues live. Live messages
  that arrive during a catch-up are not lost: they are in the store, and the catch-up loops
  until it has passed the highest seq seen live.

So a client that reconnects with its last seen seq (``ResumeRequest``) gets exactly the
messages after it: no loss, no duplicates, whichever process it reconnects to.

Members are gRPC clients (one cursor per joined room) and the MQTT bridge (a member of every
room). A member that cannot take its chat fast enough is disconnected past
``chat.client_queue_max`` pending frames; it resumes later from its last seq, losing nothing.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from dataclasses import dataclass, field
from typing import Protocol

from mdfeed.kernel.bus import Bus, BusConsumer, BusProducer
from mdfeed.kernel.chat import ChatCode, ChatRejected
from mdfeed.kernel.clock import MonotonicS, WallClockNs, monotonic_s, wall_ns
from mdfeed.kernel.config import ChatConfig
from mdfeed.kernel.entitlements import User
from mdfeed.kernel.lifecycle import Service, cancel_and_wait
from mdfeed.kernel.varint import encode_varint
from proto import mdfeed_pb2 as pb
from storage import ChatStore, StoreError

__all__ = [
    "ChatMember",
    "ChatService",
    "RateLimiter",
    "chat_frame",
    "validate_room",
]

log = logging.getLogger(__name__)

_ROOM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:=^-]{0,63}$")
#: Namespace of message ids derived from (author, room, client_ref).
_ID_NAMESPACE = uuid.UUID("3f6c1d52-8f0e-4b8e-9a52-6d0f1c2b7e41")
#: Empty store reads (50 ms apart) a catch-up waits for a message already seen live.
_CATCH_UP_EMPTY_POLLS = 100
#: Longest client_ref kept (it is echoed in errors and hashed into the id).
MAX_CLIENT_REF = 128


def validate_room(room: str) -> str | None:
    """Why ``room`` is not a valid room name, or None."""
    if not room:
        return "room: empty room name"
    if not _ROOM.match(room):
        return (
            f"room: {room[:80]!r} is not a valid room name (letters, digits and _ . : = ^ -, "
            "at most 64, starting with a letter or digit)"
        )
    return None


def chat_frame(encoded_message: bytes) -> bytes:
    """A ``ServerFrame{chat: ...}`` from the encoded ChatMessage (field 3, length-delimited)."""
    return b"\x1a" + encode_varint(len(encoded_message)) + encoded_message


class RateLimiter:
    """A token bucket per key: ``rate_hz`` sustained, ``burst`` at once."""

    def __init__(
        self, rate_hz: float, burst: int, clock: MonotonicS = monotonic_s
    ) -> None:
        self.rate_hz = rate_hz
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, key: str) -> bool:
        now = self._clock()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate_hz)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > 100_000:  # forget idle authors; bounded memory
            self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < 60}
        return True


class ChatMember(Protocol):
    """Something that receives chat: a gRPC client, the MQTT bridge."""

    def deliver_chat(self, message: pb.ChatMessage, frame: bytes) -> None:
        """Queue one message (``frame`` is its encoded ServerFrame). Never blocks."""


@dataclass
class _Membership:
    member: ChatMember
    room: str
    cursor: int
    catching_up: bool = False
    wanted: int = 0  # the highest seq seen live while catching up
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class ChatService(Service):
    """Posts in, exactly-once delivery out; see the module docstring for the policy."""

    def __init__(
        self,
        store: ChatStore,
        bus: Bus,
        config: ChatConfig | None = None,
        *,
        topic: str | None = None,
        clock_ns: WallClockNs = wall_ns,
        monotonic: MonotonicS = monotonic_s,
    ) -> None:
        self.store = store
        self.config = config or ChatConfig()
        self._bus = bus
        self._topic = topic if topic is not None else bus.config.chat_topic
        self._clock_ns = clock_ns
        self._limiter = RateLimiter(self.config.rate_per_user_hz, self.config.rate_burst, monotonic)
        self._producer: BusProducer | None = None
        self._consumer: BusConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._rooms: dict[str, dict[int, _Membership]] = {}  # room -> id(member) -> state
        self._all_rooms: dict[int, ChatMember] = {}
        self.posted = 0
        self.rejected = 0
        self.delivered = 0
        self.catch_ups = 0

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        producer = self._bus.producer()
        await producer.start()
        self._producer = producer
        consumer = self._bus.consumer([self._topic], from_beginning=False)
        await consumer.start()
        self._consumer = consumer
        self._task = asyncio.create_task(self._consume(consumer), name="chat-consume")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        for memberships in list(self._rooms.values()):
            for state in list(memberships.values()):
                self._cancel(state)
        self._rooms.clear()
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.flush(5)
            await producer.stop()

    # -- posts and history ----------------------------------------------------------

    def check_room(self, user: User, room: str) -> None:
        """Raise ``ChatRejected`` unless ``room`` is valid and ``user`` may use it."""
        error = validate_room(room)
        if error is not None:
            raise ChatRejected(ChatCode.INVALID_ARGUMENT, error)
        if not user.may_chat(room):
            raise ChatRejected(
                ChatCode.PERMISSION_DENIED, f"room: {user.name} may not use room {room!r}"
            )

    async def post(self, user: User, room: str, text: str, client_ref: str = "") -> pb.ChatMessage:
        """Validate, sequence, persist, publish; the stored message, or ``ChatRejected``."""
        try:
            self.check_room(user, room)
            if not text.strip():
                raise ChatRejected(ChatCode.INVALID_ARGUMENT, "text: empty message")
            limit = self.config.max_text_chars
            if len(text) > limit:
                raise ChatRejected(
                    ChatCode.INVALID_ARGUMENT,
                    f"text: {len(text)} characters, at most {limit}",
                )
            if len(client_ref) > MAX_CLIENT_REF:
                raise ChatRejected(
                    ChatCode.INVALID_ARGUMENT,
                    f"client_ref: {len(client_ref)} characters, at most {MAX_CLIENT_REF}",
                )
            if not self._limiter.allow(user.name):
                raise ChatRejected(
                    ChatCode.RESOURCE_EXHAUSTED,
                    f"rate limit: at most {self.config.rate_per_user_hz:g} posts/s "
                    f"(burst {self.config.rate_burst}) per user",
                )
        except ChatRejected:
            self.rejected += 1
            raise
        if client_ref:
            msg_id = str(uuid.uuid5(_ID_NAMESPACE, f"{user.name}\x00{room}\x00{client_ref}"))
        else:
            msg_id = str(uuid.uuid4())
        try:
            message = await self.store.append(room, msg_id, user.name, text, self._clock_ns())
        except StoreError as exc:
            self.rejected += 1
            raise ChatRejected(
                ChatCode.UNAVAILABLE, f"chat store unavailable, post not taken: {exc}"
            ) from exc
        producer = self._producer
        if producer is None:
            raise ChatRejected(ChatCode.UNAVAILABLE, "chat service is not running")
        producer.send(self._topic, room.encode(), message.SerializeToString())
        self.posted += 1
        return message

    async def history(
        self, user: User, room: str, after_seq: int, limit: int
    ) -> list[pb.ChatMessage]:
        """Messages of ``room`` after ``after_seq``, oldest first, capped at ``history_max``."""
        self.check_room(user, room)
        cap = self.config.history_max
        count = cap if limit <= 0 else min(limit, cap)
        try:
            return await self.store.history(room, after_seq, count)
        except StoreError as exc:
            raise ChatRejected(
                ChatCode.UNAVAILABLE, f"chat store unavailable: {exc}"
            ) from exc

    # -- membership -----------------------------------------------------------------

    async def join(self, member: ChatMember, room: str, after_seq: int | None = None) -> int:
        """Deliver ``room`` to ``member``: after ``after_seq``, or from now when None.

        Returns the cursor the membership starts at. Joining again moves the cursor.
        """
        if after_seq is None:
            try:
                after_seq = await self.store.last_seq(room)
            except StoreError as exc:
                raise ChatRejected(
                    ChatCode.UNAVAILABLE, f"chat store unavailable: {exc}"
                ) from exc
        memberships = self._rooms.setdefault(room, {})
        state = memberships.get(id(member))
        if state is not None:
            self._cancel(state)
        state = _Membership(member=member, room=room, cursor=after_seq)
        memberships[id(member)] = state
        self._catch_up(state, after_seq + 1)
        return after_seq

    def leave(self, member: ChatMember, room: str) -> None:
        memberships = self._rooms.get(room)
        if memberships is None:
            return
        state = memberships.pop(id(member), None)
        if state is not None:
            self._cancel(state)
        if not memberships:
            del self._rooms[room]

    def leave_all(self, member: ChatMember) -> None:
        for room in [r for r, m in self._rooms.items() if id(member) in m]:
            self.leave(member, room)
        self._all_rooms.pop(id(member), None)

    def join_all_rooms(self, member: ChatMember) -> None:
        """Deliver every room's live messages to ``member`` (the MQTT bridge).

        It joins each room at the first message seen there (from that message on) and is
        then a member like any other: in order, gaps caught up from the store.
        """
        self._all_rooms[id(member)] = member

    @property
    def membership_count(self) -> int:
        """Room memberships of this process's members (a member in two rooms counts two)."""
        return sum(len(m) for m in self._rooms.values())

    def lag(self) -> dict[str, int]:
        """Records of the chat topic not consumed yet (see BusConsumer.lag)."""
        return self._consumer.lag() if self._consumer is not None else {}

    def rooms_of(self, member: ChatMember) -> list[str]:
        return sorted(r for r, m in self._rooms.items() if id(member) in m)

    # -- delivery -------------------------------------------------------------------

    async def _consume(self, consumer: BusConsumer) -> None:
        from_string = pb.ChatMessage.FromString
        while True:
            records = await consumer.getmany(timeout_ms=500, max_records=500)
            for record in records:
                try:
                    message = from_string(record.value)
                except Exception:  # junk on the topic must not stop chat
                    log.warning("dropping an undecodable chat record at offset %s", record.offset)
                    continue
                if not message.room or message.seq < 1:
                    log.warning("dropping a chat record without room or seq")
                    continue
                self.on_message(message, record.value)

    def on_message(self, message: pb.ChatMessage, encoded: bytes | None = None) -> None:
        """Deliver one live message (already persisted) to the room's members."""
        frame = chat_frame(encoded if encoded is not None else message.SerializeToString())
        room, seq = message.room, message.seq
        if self._all_rooms:
            memberships = self._rooms.setdefault(room, {})
            for key, member in self._all_rooms.items():
                if key not in memberships:  # first message of the room: start from it
                    memberships[key] = _Membership(member=member, room=room, cursor=seq - 1)
        for state in list(self._rooms.get(room, {}).values()):
            if state.catching_up:
                state.wanted = max(state.wanted, seq)
            elif seq == state.cursor + 1:
                state.cursor = seq
                self.delivered += 1
                state.member.deliver_chat(message, frame)
            elif seq > state.cursor + 1:
                state.wanted = seq
                self._catch_up(state, state.cursor + 1)

    def _catch_up(self, state: _Membership, from_seq: int) -> None:
        self.catch_ups += 1
        state.catching_up = True
        state.wanted = max(state.wanted, from_seq - 1)
        state.task = asyncio.create_task(
            self._run_catch_up(state), name=f"chat-catch-up-{state.room}"
        )

    async def _run_catch_up(self, state: _Membership) -> None:
        page = self.config.history_max
        empty_polls = 0
        try:
            while True:
                messages = await self.store.history(state.room, state.cursor, page)
                for message in messages:
                    if message.seq != state.cursor + 1:
                        log.error(
                            "chat %s: store returned seq %d after %d",
                            state.room,
                            message.seq,
                            state.cursor,
                        )
                        return
                    state.cursor = message.seq
                    self.delivered += 1
                    state.member.deliver_chat(message, chat_frame(message.SerializeToString()))
                if len(messages) < page and state.wanted <= state.cursor:
                    state.catching_up = False  # no await since the check: nothing slips by
                    return
                if messages:
                    empty_polls = 0
                    continue
                # Seen live but not readable yet (a lagging replica): poll a little, then
                # go live again; the next live message restarts the catch-up.
                empty_polls += 1
                if empty_polls > _CATCH_UP_EMPTY_POLLS:
                    log.warning(
                        "chat %s: seq up to %d seen live but not in the store; continuing",
                        state.room,
                        state.wanted,
                    )
                    state.wanted = state.cursor
                    state.catching_up = False
                    return
                await asyncio.sleep(0.05)
        except StoreError as exc:
            log.error("chat %s: catch-up failed, retrying: %s", state.room, exc)
            await asyncio.sleep(1.0)
            if self._rooms.get(state.room, {}).get(id(state.member)) is state:
                self._catch_up(state, state.cursor + 1)

    def _cancel(self, state: _Membership) -> None:
        if state.task is not None and not state.task.done():
            state.task.cancel()
