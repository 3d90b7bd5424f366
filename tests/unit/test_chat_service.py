"""ChatService: validation, sequencing, and exactly-once delivery to members.

Runs on the in-process bus and the SQLite chat store; the same service runs on Kafka and
Cassandra in tests/integration/test_fanout_chat_stack.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from polling import until

from fanout.chat import ChatService, RateLimiter, chat_frame
from mdfeed.kernel.bus import MemoryBus
from mdfeed.kernel.chat import ChatCode, ChatRejected
from mdfeed.kernel.clock import MonotonicS, monotonic_s
from mdfeed.kernel.config import BusConfig, ChatConfig
from mdfeed.kernel.entitlements import ANONYMOUS, User
from proto import mdfeed_pb2 as pb
from storage import SqliteChatStore

ALICE = User(name="alice", token="alice-token", symbols=frozenset(), rooms=frozenset({"lobby"}))


class Member:
    def __init__(self) -> None:
        self.messages: list[pb.ChatMessage] = []
        self.frames: list[bytes] = []

    def deliver_chat(self, message: pb.ChatMessage, frame: bytes) -> None:
        self.messages.append(message)
        self.frames.append(frame)

    def seqs(self, room: str = "lobby") -> list[int]:
        return [m.seq for m in self.messages if m.room == room]


@asynccontextmanager
async def service(
    tmp_path: Path, config: ChatConfig | None = None, monotonic: MonotonicS = monotonic_s
) -> AsyncIterator[ChatService]:
    bus = MemoryBus(dataclasses.replace(BusConfig(kind="memory"), tick_partitions=2))
    async with (
        bus,
        SqliteChatStore(tmp_path / "chat.sqlite3") as store,
        ChatService(store, bus, config or ChatConfig(), monotonic=monotonic) as chat,
    ):
        yield chat


def test_chat_frame_is_the_server_frame_encoding() -> None:
    message = pb.ChatMessage(room="lobby", id="x", seq=300, author="a", text="é" * 100)
    assert (
        chat_frame(message.SerializeToString()) == pb.ServerFrame(chat=message).SerializeToString()
    )


def test_rate_limiter_allows_the_burst_then_the_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(2.0, 3, clock=lambda: now[0])
    assert [limiter.allow("a") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("b")
    now[0] = 0.5
    assert limiter.allow("a")
    assert not limiter.allow("a")


@pytest.mark.parametrize(
    ("user", "room", "text", "code", "message"),
    [
        (ANONYMOUS, "", "hi", ChatCode.INVALID_ARGUMENT, "room: empty room name"),
        (ANONYMOUS, "a/b", "hi", ChatCode.INVALID_ARGUMENT, "room: 'a/b' is not a valid"),
        (ANONYMOUS, "lobby", "  ", ChatCode.INVALID_ARGUMENT, "text: empty message"),
        (ANONYMOUS, "lobby", "x" * 11, ChatCode.INVALID_ARGUMENT, "text: 11 characters"),
        (ALICE, "desk", "hi", ChatCode.PERMISSION_DENIED, "room: alice may not use"),
    ],
)
async def test_bad_posts_are_rejected_with_a_precise_code(  # noqa: PLR0917 - parametrized
    tmp_path: Path, user: User, room: str, text: str, code: ChatCode, message: str
) -> None:
    async with service(tmp_path, ChatConfig(max_text_chars=10)) as chat:
        with pytest.raises(ChatRejected) as info:
            await chat.post(user, room, text)
        assert info.value.code == code
        assert info.value.message.startswith(message), info.value.message
        assert chat.rejected == 1
        assert await chat.store.last_seq(room or "lobby") == 0


async def test_rate_limit_per_user(tmp_path: Path) -> None:
    now = [100.0]
    config = ChatConfig(rate_per_user_hz=1.0, rate_burst=2)
    async with service(tmp_path, config, monotonic=lambda: now[0]) as chat:
        await chat.post(ALICE, "lobby", "one")
        await chat.post(ALICE, "lobby", "two")
        with pytest.raises(ChatRejected) as info:
            await chat.post(ALICE, "lobby", "three")
        assert info.value.code == ChatCode.RESOURCE_EXHAUSTED
        await chat.post(ANONYMOUS, "lobby", "someone else is not limited")
        now[0] += 1.0
        assert (await chat.post(ALICE, "lobby", "three, later")).seq == 4


async def test_posts_are_sequenced_and_delivered_once_in_order(tmp_path: Path) -> None:
    async with service(tmp_path) as chat:
        early, late = Member(), Member()
        assert await chat.join(early, "lobby") == 0
        posted = [await chat.post(ALICE, "lobby", f"m{i}") for i in range(1, 6)]
        assert [m.seq for m in posted] == [1, 2, 3, 4, 5]
        await until(lambda: len(early.messages) == 5)
        assert early.seqs() == [1, 2, 3, 4, 5]
        assert [m.text for m in early.messages] == ["m1", "m2", "m3", "m4", "m5"]
        assert early.frames[0] == pb.ServerFrame(chat=posted[0]).SerializeToString()
        # A member resuming after seq 2 gets exactly 3..5 from the store, then live ones.
        assert await chat.join(late, "lobby", after_seq=2) == 2
        await until(lambda: len(late.messages) == 3)
        await chat.post(ALICE, "lobby", "m6")
        await until(lambda: len(late.messages) == 4 and len(early.messages) == 6)
        assert late.seqs() == [3, 4, 5, 6]
        assert early.seqs() == [1, 2, 3, 4, 5, 6]


async def test_a_message_stored_but_never_published_is_still_delivered(tmp_path: Path) -> None:
    # A fanout killed between the store and the bus leaves seq N stored, never published:
    # members see N+1 arrive live, notice the hole and fill it from the store.
    async with service(tmp_path) as chat:
        member, everything = Member(), Member()
        await chat.join(member, "lobby")
        chat.join_all_rooms(everything)
        await chat.post(ALICE, "lobby", "first")
        await until(lambda: member.seqs() == [1] and everything.seqs() == [1])
        await chat.store.append("lobby", "orphan-id", "alice", "stored, not published", 1)
        await chat.post(ALICE, "lobby", "third")
        await until(lambda: len(member.messages) == 3 and len(everything.messages) == 3)
        assert member.seqs() == [1, 2, 3]
        assert everything.seqs() == [1, 2, 3]
        assert member.messages[1].text == "stored, not published"


async def test_the_all_rooms_member_gets_a_gap_filled_in_order(tmp_path: Path) -> None:
    # The MQTT bridge sees 1, then 3 and 4 while 2 is only in the store: it must get 2
    # before 3 and 4, and 3 and 4 once each, as any member does.
    async with service(tmp_path) as chat:
        everything = Member()
        chat.join_all_rooms(everything)
        stored = [
            await chat.store.append("lobby", f"id-{i}", "alice", f"m{i}", i) for i in range(1, 5)
        ]
        chat.on_message(stored[0])
        chat.on_message(stored[2])
        chat.on_message(stored[3])  # arrives while 2 is being read from the store
        await until(lambda: len(everything.messages) >= 4)
        await asyncio.sleep(0.1)  # nothing more follows
        assert everything.seqs() == [1, 2, 3, 4]
        # A room it has not seen yet starts at its first message there.
        later = await chat.store.append("other", "id-x", "alice", "hi", 5)
        chat.on_message(later)
        assert everything.seqs("other") == [1]


async def test_a_retried_post_with_the_same_client_ref_is_stored_once(tmp_path: Path) -> None:
    async with service(tmp_path) as chat:
        first = await chat.post(ALICE, "lobby", "hello", client_ref="ref-1")
        again = await chat.post(ALICE, "lobby", "hello", client_ref="ref-1")
        other = await chat.post(ALICE, "lobby", "hello", client_ref="ref-2")
        assert (first.seq, again.seq, other.seq) == (1, 1, 2)
        assert first.id == again.id != other.id
        assert [m.seq for m in await chat.history(ALICE, "lobby", 0, 100)] == [1, 2]


async def test_history_is_capped_and_checks_the_room(tmp_path: Path) -> None:
    async with service(tmp_path, ChatConfig(history_max=3, rate_burst=100)) as chat:
        for i in range(5):
            await chat.post(ALICE, "lobby", f"m{i}")
        assert [m.seq for m in await chat.history(ALICE, "lobby", 0, 0)] == [1, 2, 3]
        assert [m.seq for m in await chat.history(ALICE, "lobby", 3, 10)] == [4, 5]
        with pytest.raises(ChatRejected) as info:
            await chat.history(ALICE, "desk", 0, 10)
        assert info.value.code == ChatCode.PERMISSION_DENIED


async def test_rooms_are_independent_and_leave_stops_delivery(tmp_path: Path) -> None:
    async with service(tmp_path) as chat:
        member = Member()
        await chat.join(member, "lobby")
        await chat.join(member, "desk")
        await chat.post(ANONYMOUS, "lobby", "a")
        await chat.post(ANONYMOUS, "desk", "b")
        await until(lambda: len(member.messages) == 2)
        assert member.seqs("lobby") == [1]
        assert member.seqs("desk") == [1]
        assert chat.rooms_of(member) == ["desk", "lobby"]
        chat.leave(member, "desk")
        await chat.post(ANONYMOUS, "desk", "c")
        await chat.post(ANONYMOUS, "lobby", "d")
        await until(lambda: len(member.messages) == 3)
        assert member.seqs("lobby") == [1, 2]
        assert member.seqs("desk") == [1]
