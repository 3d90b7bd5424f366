"""The chat store contract: the checks every adapter must pass, written once.

Each check is an async function that takes a :class:`ChatStoreFactory` and raises
``AssertionError`` when the adapter breaks the contract (see :mod:`storage.chat` for the
policy it checks). The unit tests run them on :class:`~storage.SqliteChatStore`, the
integration tests on :class:`~storage.CassandraChatStore` against a real Cassandra::

    @pytest.mark.parametrize("check", CONTRACT_CHECKS.values(), ids=CONTRACT_CHECKS.keys())
    async def test_contract(check: ContractCheck, tmp_path: Path) -> None:
        await check(lambda: SqliteChatStore(tmp_path / "chat.sqlite3"))

A factory returns a new store, not started, on the same database each time it is called
(the same file, the same keyspace): several stores from one factory stand for several
processes sharing the database, and a new store after ``close()`` for a restart. Each
check needs a database of its own, which no other check has written to.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from proto import mdfeed_pb2 as pb
from storage.chat import ChatStore
from storage.errors import StoreClosedError

__all__ = [
    "CONTRACT_CHECKS",
    "ChatStoreFactory",
    "ContractCheck",
    "check_append_is_idempotent",
    "check_bad_arguments_are_refused",
    "check_close_is_safe_twice",
    "check_concurrent_appends_get_unique_contiguous_seqs",
    "check_history_after_seq_and_limit",
    "check_restart_keeps_messages_and_numbering",
    "check_rooms_are_independent",
    "check_seqs_are_contiguous_from_one",
    "check_text_round_trips_exactly",
    "check_two_stores_share_one_sequence",
]

#: Makes a new, not started store on the check's database (see the module docstring).
ChatStoreFactory = Callable[[], ChatStore]
ContractCheck = Callable[[ChatStoreFactory], Awaitable[None]]

_BASE_TIME_NS = 1_750_000_000_000_000_000


def _time(n: int) -> int:
    return _BASE_TIME_NS + n * 1_000_000


async def _append_all(
    store: ChatStore, room: str, ids: Sequence[str], author: str = "alice"
) -> list[pb.ChatMessage]:
    return [
        await store.append(room, msg_id, author, f"text of {msg_id}", _time(i))
        for i, msg_id in enumerate(ids)
    ]


async def _whole_history(store: ChatStore, room: str) -> list[pb.ChatMessage]:
    return await store.history(room, 0, 1_000_000)


def _assert_complete(history: list[pb.ChatMessage], ids: set[str], room: str) -> None:
    """The room holds each of ``ids`` exactly once, at seqs 1..len(ids)."""
    seqs = [m.seq for m in history]
    assert seqs == list(range(1, len(history) + 1)), f"{room}: seqs not contiguous: {seqs}"
    stored = [m.id for m in history]
    assert len(stored) == len(set(stored)), f"{room}: an id was stored twice"
    assert set(stored) == ids, f"{room}: lost {ids - set(stored)}, extra {set(stored) - ids}"
    assert all(m.room == room for m in history)


async def check_seqs_are_contiguous_from_one(make_store: ChatStoreFactory) -> None:
    """Appends get seqs 1, 2, 3...; the returned message is what history holds."""
    async with make_store() as store:
        assert await store.last_seq("lobby") == 0, "an empty room must have last_seq 0"
        assert await store.history("lobby", 0, 10) == []
        appended = []
        for i in range(10):
            message = await store.append("lobby", f"m{i}", f"user{i % 3}", f"hello {i}", _time(i))
            appended.append(message)
            assert await store.last_seq("lobby") == i + 1
        assert [m.seq for m in appended] == list(range(1, 11))
        expected = [
            pb.ChatMessage(
                room="lobby",
                id=f"m{i}",
                seq=i + 1,
                author=f"user{i % 3}",
                text=f"hello {i}",
                time_ns=_time(i),
            )
            for i in range(10)
        ]
        assert appended == expected, "append did not return the message as stored"
        assert await store.history("lobby", 0, 100) == expected


async def check_history_after_seq_and_limit(make_store: ChatStoreFactory) -> None:
    """History gives seq > after_seq, ascending, at most limit: pages resume exactly."""
    async with make_store() as store:
        await _append_all(store, "pages", [f"p{i}" for i in range(25)])
        pages = []
        after = 0
        while page := await store.history("pages", after, 10):
            assert len(page) <= 10
            pages.append([m.seq for m in page])
            after = page[-1].seq
        assert pages == [list(range(1, 11)), list(range(11, 21)), list(range(21, 26))]
        assert [m.seq for m in await store.history("pages", 7, 3)] == [8, 9, 10]
        assert [m.id for m in await store.history("pages", 23, 1)] == ["p23"]
        assert [m.seq for m in await store.history("pages", 24, 1000)] == [25]
        assert await store.history("pages", 25, 10) == []
        assert await store.history("pages", 0, 0) == [], "limit 0 asks for nothing"
        assert await store.history("pages", 10_000, 10) == []
        assert await store.history("no-such-room", 0, 10) == []


async def check_append_is_idempotent(make_store: ChatStoreFactory) -> None:
    """Appending a stored (room, id) again returns the stored message and stores nothing."""
    async with make_store() as store:
        first = await store.append("idem", "a", "alice", "original", _time(1))
        second = await store.append("idem", "b", "bob", "next", _time(2))
        again = await store.append("idem", "a", "mallory", "changed", _time(99))
        assert again == first, "a repeated id must return the stored message unchanged"
        assert await store.append("idem", "b", "bob", "next", _time(2)) == second
        assert await store.last_seq("idem") == 2
        assert await store.history("idem", 0, 10) == [first, second]
        third = await store.append("idem", "c", "carol", "after the repeats", _time(3))
        assert third.seq == 3, "a repeat must not use up a seq"
        # Ids are per room: the same id elsewhere is another message.
        other = await store.append("idem-2", "a", "alice", "other room", _time(4))
        assert (other.room, other.seq, other.text) == ("idem-2", 1, "other room")


async def check_rooms_are_independent(make_store: ChatStoreFactory) -> None:
    """Each room has its own sequence from 1, whatever is appended elsewhere."""
    rooms = ["r-a", "r-b", "r-c"]
    async with make_store() as store:
        for i in range(12):
            room = rooms[i % 3] if i < 9 else "r-a"
            await store.append(room, f"{room}-{i}", "alice", str(i), _time(i))
        assert [await store.last_seq(r) for r in rooms] == [6, 3, 3]
        for room in rooms:
            history = await _whole_history(store, room)
            assert [m.seq for m in history] == list(range(1, len(history) + 1))
            assert all(m.id.startswith(f"{room}-") for m in history), f"{room} got others' messages"


async def check_concurrent_appends_get_unique_contiguous_seqs(
    make_store: ChatStoreFactory,
) -> None:
    """Tasks appending at once lose nothing and share no seq, even racing on one id."""
    tasks, per_task = 4, 20
    async with make_store() as store:
        distinct = [[f"t{t}-{i}" for i in range(per_task)] for t in range(tasks)]
        shared = [f"shared-{i}" for i in range(per_task)]
        results = await asyncio.gather(
            *(_append_all(store, "busy", ids) for ids in distinct),
            _append_all(store, "busy", shared, author="first"),
            _append_all(store, "busy", shared, author="second"),
        )
        history = await _whole_history(store, "busy")
    _assert_complete(history, {i for ids in distinct for i in ids} | set(shared), "busy")
    by_id = {m.id: m for m in history}
    for returned in results:
        for message in returned:
            assert message == by_id[message.id], "append returned another message than stored"
    assert results[-1] == results[-2], "racing appends of one id returned different messages"


async def check_two_stores_share_one_sequence(make_store: ChatStoreFactory) -> None:
    """Two stores on one database (two processes) keep one sequence per room.

    Each store's knowledge of the room goes stale when the other appends; appends from
    both, in turn and at once, still get unique contiguous seqs, and an id appended
    through both is stored once.
    """
    first, second = make_store(), make_store()
    async with first, second:
        for i in range(6):  # in turn: each append follows one from the other store
            store = first if i % 2 == 0 else second
            message = await store.append("shared", f"turn-{i}", "alice", str(i), _time(i))
            assert message.seq == i + 1, f"store {i % 2} ignored the other's appends"
        # One store goes ahead by several messages; the other continues after them.
        await _append_all(first, "shared", [f"ahead-{i}" for i in range(5)])
        assert (await second.append("shared", "behind", "bob", "x", _time(0))).seq == 12
        assert await second.last_seq("shared") == 12

        # At once: three tasks on each store, and one id list appended through both.
        lists = {
            (store, t): [f"s{n}-t{t}-{i}" for i in range(12)]
            for n, store in enumerate((first, second))
            for t in range(3)
        }
        both = [f"both-{i}" for i in range(10)]
        results = await asyncio.gather(
            *(_append_all(store, "shared", ids) for (store, _), ids in lists.items()),
            _append_all(first, "shared", both),
            _append_all(second, "shared", both),
        )
        history = await _whole_history(second, "shared")
        assert history == await _whole_history(first, "shared")
    expected = {f"turn-{i}" for i in range(6)} | {f"ahead-{i}" for i in range(5)} | {"behind"}
    expected |= {msg_id for ids in lists.values() for msg_id in ids} | set(both)
    _assert_complete(history, expected, "shared")
    assert results[-1] == results[-2], "an id appended through both stores got two answers"


async def check_restart_keeps_messages_and_numbering(make_store: ChatStoreFactory) -> None:
    """A new store on the database (a restart) has every message and continues the seqs."""
    async with make_store() as store:
        before = await _append_all(store, "durable", [f"d{i}" for i in range(5)])
    async with make_store() as store:
        assert await store.last_seq("durable") == 5
        assert await store.history("durable", 0, 10) == before
        after = await store.append("durable", "d5", "alice", "after restart", _time(5))
        assert after.seq == 6
        assert await store.append("durable", "d2", "alice", "retry", _time(9)) == before[2]
        assert await store.last_seq("durable") == 6


#: Texts that must come back exactly as they went in.
ROUND_TRIP_TEXTS = (
    "",
    "plain",
    "two\nlines",
    "windows\r\nline end and a lone \r carriage return",
    "\ttabs\tand  double  spaces  ",
    "\n\nleading and trailing newlines\n\n",
    "emoji 🚀📈💹 and CJK 株価 and RTL שלום and accents e\u0301 Zoë",
    "quotes ' \" ` and SQL -- ; DROP TABLE chat_messages; %s ? :name",
    "nul \x00 inside and other controls \x01\x1f\x7f",
    "\u2028line separator\u2029paragraph separator\ufeffbom",
    "long " + "x" * 20_000 + " end",
)


async def check_text_round_trips_exactly(make_store: ChatStoreFactory) -> None:
    """Any Unicode text, author and room name comes back exactly, after a restart too."""
    room = "salle générale 💬"
    async with make_store() as store:
        appended = [
            await store.append(room, f"u{i}", "Zoë 🦊\nauthor", text, _time(i))
            for i, text in enumerate(ROUND_TRIP_TEXTS)
        ]
        assert [m.text for m in appended] == list(ROUND_TRIP_TEXTS)
    async with make_store() as store:
        history = await _whole_history(store, room)
    assert [m.text for m in history] == list(ROUND_TRIP_TEXTS), "text changed in the store"
    assert history == appended
    assert {m.author for m in history} == {"Zoë 🦊\nauthor"}
    assert {m.room for m in history} == {room}


async def _refused_when_closed(store: ChatStore, when: str) -> None:
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "append": lambda: store.append("lobby", "late", "alice", "hi", _time(0)),
        "history": lambda: store.history("lobby", 0, 10),
        "last_seq": lambda: store.last_seq("lobby"),
    }
    for name, call in calls.items():
        try:
            await call()
        except StoreClosedError:
            continue
        raise AssertionError(f"{name}() {when} did not raise StoreClosedError")


async def check_close_is_safe_twice(make_store: ChatStoreFactory) -> None:
    """close() twice (and before start) is fine; calls before start or after close refuse."""
    never_started = make_store()
    await _refused_when_closed(never_started, "before start()")
    await never_started.close()
    await never_started.close()

    store = make_store()
    async with store as entered:
        assert entered is store, "async with must give the store itself"
        await store.start()  # starting a started store changes nothing
        await store.append("lobby", "m1", "alice", "hi", _time(1))
    await store.close()
    await store.close()
    await _refused_when_closed(store, "after close()")
    try:
        await store.start()
    except StoreClosedError:
        pass
    else:
        raise AssertionError("start() after close() did not raise StoreClosedError")


async def check_bad_arguments_are_refused(make_store: ChatStoreFactory) -> None:
    """Bad arguments raise ValueError naming the argument, and store nothing."""
    bad_calls: list[tuple[str, Callable[[ChatStore], Awaitable[object]]]] = [
        ("room", lambda s: s.append("", "m", "alice", "hi", 0)),
        ("msg_id", lambda s: s.append("lobby", "", "alice", "hi", 0)),
        ("time_ns", lambda s: s.append("lobby", "m", "alice", "hi", 2**63)),
        ("text", lambda s: s.append("lobby", "m", "alice", "lone \ud800 surrogate", 0)),
        ("after_seq", lambda s: s.history("lobby", -1, 10)),
        ("limit", lambda s: s.history("lobby", 0, -1)),
        ("room", lambda s: s.last_seq("")),
    ]
    async with make_store() as store:
        for argument, call in bad_calls:
            message = ""
            try:
                await call(store)
            except ValueError as exc:
                message = str(exc)
            if not message:
                raise AssertionError(f"a bad {argument} was accepted")
            assert argument in message, f"the error does not name {argument!r}: {message}"
        assert await store.last_seq("lobby") == 0


CONTRACT_CHECKS: dict[str, ContractCheck] = {
    "seqs_are_contiguous_from_one": check_seqs_are_contiguous_from_one,
    "history_after_seq_and_limit": check_history_after_seq_and_limit,
    "append_is_idempotent": check_append_is_idempotent,
    "rooms_are_independent": check_rooms_are_independent,
    "concurrent_appends_get_unique_contiguous_seqs": (
        check_concurrent_appends_get_unique_contiguous_seqs
    ),
    "two_stores_share_one_sequence": check_two_stores_share_one_sequence,
    "restart_keeps_messages_and_numbering": check_restart_keeps_messages_and_numbering,
    "text_round_trips_exactly": check_text_round_trips_exactly,
    "close_is_safe_twice": check_close_is_safe_twice,
    "bad_arguments_are_refused": check_bad_arguments_are_refused,
}
