"""The bus contract: the checks every adapter must pass, written once.

Each check is an async function that takes a :class:`BusFactory` and raises
``AssertionError`` when the adapter breaks the contract. The unit tests run them on
:class:`~mdfeed.kernel.bus.MemoryBus`, the integration tests on :class:`~mdfeed.kernel.bus.KafkaBus`
against a real broker::

    @pytest.mark.parametrize("check", CONTRACT_CHECKS.values(), ids=CONTRACT_CHECKS.keys())
    async def test_contract(check: ContractCheck) -> None:
        await check(make_memory_bus)

A factory returns a new bus, not started, whose ``config.tick_topic`` no other bus has
used, so every check starts from empty topics. The checks publish real proto ``Tick``
records keyed by symbol, as the ingest does.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from mdfeed.kernel.bus.errors import BusClosedError
from mdfeed.kernel.bus.partitioning import kafka_partition
from mdfeed.kernel.bus.ports import Bus, BusConsumer, BusProducer, BusRecord
from proto import mdfeed_pb2 as pb

__all__ = [
    "CONTRACT_CHECKS",
    "BusFactory",
    "ContractCheck",
    "check_flush_delivers_everything",
    "check_from_beginning_and_latest",
    "check_group_splits_partitions_and_resumes",
    "check_incarnation_names_one_log",
    "check_keyed_order_and_exactly_once",
    "check_lag_counts_records_behind",
    "check_overflow_drops_newest_then_resumes",
    "check_stop_is_safe_twice",
    "collect",
    "tick_value",
]

#: Time allowed for records to arrive or for a group to settle.
DEADLINE_S = 30.0
#: How long a check keeps reading after the expected count, to see what should not come.
SETTLE_S = 0.5


class BusFactory(Protocol):
    """Makes a fresh, not started bus for each call (see the module docstring).

    ``buffer_max_records`` overrides the config's producer buffer bound when given.
    """

    def __call__(self, *, buffer_max_records: int | None = None) -> Bus: ...


ContractCheck = Callable[[BusFactory], Awaitable[None]]


def tick_value(symbol: str, seq: int) -> bytes:
    """An encoded quote tick, the kind of record the ingest publishes."""
    return pb.Tick(
        symbol=symbol,
        seq=seq,
        kind=pb.TICK_KIND_QUOTE,
        bid_px_e8=15_025_000_000 + seq,
        ask_px_e8=15_026_000_000 + seq,
        fix_msg_seq_num=seq,
    ).SerializeToString()


def _symbol_seq(record: BusRecord) -> tuple[str, int]:
    tick = pb.Tick.FromString(record.value)
    return tick.symbol, tick.seq


def _publish(producer: BusProducer, topic: str, symbols: Sequence[str], seqs: range) -> int:
    """Interleave the symbols' ticks, as a feed does; returns how many were sent."""
    count = 0
    for seq in seqs:
        for symbol in symbols:
            producer.send(topic, symbol.encode(), tick_value(symbol, seq))
            count += 1
    return count


async def collect(
    consumer: BusConsumer,
    count: int,
    *,
    deadline_s: float = DEADLINE_S,
    settle_s: float = SETTLE_S,
) -> list[BusRecord]:
    """Read until ``count`` records came (or the deadline), then ``settle_s`` more."""
    records: list[BusRecord] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_s
    while len(records) < count and loop.time() < deadline:
        records += await consumer.getmany(timeout_ms=200, max_records=5000)
    settle_until = loop.time() + settle_s
    while loop.time() < settle_until:
        records += await consumer.getmany(timeout_ms=100, max_records=5000)
    return records


async def _flushed(producer: BusProducer) -> None:
    assert await producer.flush(DEADLINE_S), f"flush timed out: {producer.stats}"


def _symbols(count: int) -> list[str]:
    return [f"S{i:03d}" for i in range(count)]


async def check_keyed_order_and_exactly_once(make_bus: BusFactory) -> None:
    """Each key's records arrive once, in order, all in the partition Kafka would choose."""
    async with make_bus() as bus:
        topic = bus.config.tick_topic
        partitions = bus.config.tick_partitions
        symbols = _symbols(20)
        async with bus.producer() as producer:
            sent = _publish(producer, topic, symbols, range(1, 51))
            await _flushed(producer)
        async with bus.consumer([topic], from_beginning=True) as consumer:
            records = await collect(consumer, sent)

    assert len(records) == sent, f"expected {sent} records, got {len(records)}"
    seen = [_symbol_seq(r) for r in records]
    assert len(set(seen)) == sent, "some records were delivered twice"
    by_symbol: dict[str, list[int]] = defaultdict(list)
    partitions_of: dict[str, set[int]] = defaultdict(set)
    for record, (symbol, seq) in zip(records, seen, strict=True):
        by_symbol[symbol].append(seq)
        partitions_of[symbol].add(record.partition)
        assert record.topic == topic
        assert record.key == symbol.encode()
    for symbol in symbols:
        assert by_symbol[symbol] == list(range(1, 51)), f"{symbol} out of order"
        assert partitions_of[symbol] == {kafka_partition(symbol.encode(), partitions)}
    assert len({p for ps in partitions_of.values() for p in ps}) > 1, "all keys in one partition"
    by_partition: dict[int, list[int]] = defaultdict(list)
    for record in records:
        by_partition[record.partition].append(record.offset)
    for offsets in by_partition.values():
        assert offsets == list(range(offsets[0], offsets[0] + len(offsets))), "offset gap"


async def check_from_beginning_and_latest(make_bus: BusFactory) -> None:
    """from_beginning reads what was there before start(); latest only what came after."""
    async with make_bus() as bus:
        topic = bus.config.tick_topic
        async with bus.producer() as producer:
            before = _publish(producer, topic, ["AAPL", "MSFT"], range(1, 51))
            await _flushed(producer)
            earliest = bus.consumer([topic], from_beginning=True)
            latest = bus.consumer([topic])
            await earliest.start()
            await latest.start()
            after = _publish(producer, topic, ["AAPL", "MSFT"], range(51, 101))
            await _flushed(producer)
        from_start = await collect(earliest, before + after)
        from_end = await collect(latest, after)
        await earliest.stop()
        await latest.stop()

    assert sorted(seq for _, seq in map(_symbol_seq, from_start)) == sorted(list(range(1, 101)) * 2)
    assert sorted(seq for _, seq in map(_symbol_seq, from_end)) == sorted(
        list(range(51, 101)) * 2
    ), "a consumer from the end saw records from before its start"


async def _settled_split(members: Sequence[BusConsumer], partitions: int) -> None:
    """Wait until the members' assignments are disjoint and cover every partition."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while True:
        shares = [m.assignment() for m in members]
        union = frozenset().union(*shares)
        if len(union) == partitions and sum(map(len, shares)) == partitions and all(shares):
            return
        assert loop.time() < deadline, f"group did not settle: {shares}"
        for member in members:
            assert not await member.getmany(timeout_ms=100), "records before any were sent"


async def _collect_group(
    first: BusConsumer, second: BusConsumer, count: int
) -> tuple[list[BusRecord], list[BusRecord]]:
    """Read from two members in turn until they have ``count`` records between them."""
    got: tuple[list[BusRecord], list[BusRecord]] = ([], [])
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while len(got[0]) + len(got[1]) < count and loop.time() < deadline:
        got[0].extend(await first.getmany(timeout_ms=50, max_records=5000))
        got[1].extend(await second.getmany(timeout_ms=50, max_records=5000))
    settle_until = loop.time() + SETTLE_S
    while loop.time() < settle_until:
        got[0].extend(await first.getmany(timeout_ms=50, max_records=5000))
        got[1].extend(await second.getmany(timeout_ms=50, max_records=5000))
    return got


async def check_group_splits_partitions_and_resumes(make_bus: BusFactory) -> None:
    """Members split the partitions; a new member resumes from the committed offsets."""
    async with make_bus() as bus:
        topic = bus.config.tick_topic
        group = f"{topic}-group"
        symbols = _symbols(30)
        first = bus.consumer([topic], group_id=group, from_beginning=True)
        second = bus.consumer([topic], group_id=group, from_beginning=True)
        await first.start()
        await second.start()
        await _settled_split([first, second], bus.config.tick_partitions)

        async with bus.producer() as producer:
            sent = _publish(producer, topic, symbols, range(1, 21))
            await _flushed(producer)
            got_first, got_second = await _collect_group(first, second, sent)
            for member, got in ((first, got_first), (second, got_second)):
                assert got, "a member of the group got nothing"
                assert {(r.topic, r.partition) for r in got} <= member.assignment()
            both = [_symbol_seq(r) for r in got_first + got_second]
            assert len(both) == sent == len(set(both)), "records lost or delivered twice"
            await first.commit()
            await second.commit()
            await first.stop()
            await second.stop()

            later = _publish(producer, topic, symbols, range(21, 26))
            await _flushed(producer)
            async with bus.consumer([topic], group_id=group, from_beginning=True) as third:
                resumed = await collect(third, later)
                assert sorted(seq for _, seq in map(_symbol_seq, resumed)) == sorted(
                    list(range(21, 26)) * len(symbols)
                ), "a new member did not resume from the committed offsets"
                await third.commit()
                uncommitted = _publish(producer, topic, symbols, range(26, 28))
                await _flushed(producer)
                assert len(await collect(third, uncommitted)) == uncommitted
            async with bus.consumer([topic], group_id=group, from_beginning=True) as fourth:
                again = await collect(fourth, uncommitted)
        assert sorted(seq for _, seq in map(_symbol_seq, again)) == sorted(
            list(range(26, 28)) * len(symbols)
        ), "records read but not committed were not delivered again"


async def check_flush_delivers_everything(make_bus: BusFactory) -> None:
    """flush() returns True once every record sent before it is confirmed; stats agree."""
    async with make_bus() as bus:
        topic = bus.config.tick_topic
        async with bus.producer() as producer:
            assert await producer.flush(1.0), "flush with nothing buffered must succeed"
            sent = _publish(producer, topic, _symbols(50), range(1, 101))
            assert producer.stats.buffered == sent
            await _flushed(producer)
            stats = producer.stats
            assert (stats.accepted, stats.acked, stats.buffered, stats.dropped) == (
                sent,
                sent,
                0,
                0,
            ), stats
            assert stats.sent >= sent
            assert stats.connected
        async with bus.consumer([topic], from_beginning=True) as consumer:
            records = await collect(consumer, sent)
    assert len(records) == sent


async def check_overflow_drops_newest_then_resumes(make_bus: BusFactory) -> None:
    """Past buffer_max_records the newest records are dropped; on_resumed fires once."""
    bound = 100
    async with make_bus(buffer_max_records=bound) as bus:
        topic = bus.config.tick_topic
        resumed: list[int] = []
        producer = bus.producer()
        producer.on_resumed = lambda: resumed.append(producer.stats.buffered)
        async with producer:
            producer.send(topic, b"AAPL", tick_value("AAPL", 0))
            await _flushed(producer)  # connected: the burst below meets a live bus
            for seq in range(1, 251):  # no await: the drain cannot run in between
                producer.send(topic, b"AAPL", tick_value("AAPL", seq))
            stats = producer.stats
            assert (stats.accepted, stats.buffered, stats.dropped) == (1 + bound, bound, 150)
            assert resumed == [], "on_resumed before the bus took the records"
            await _flushed(producer)
            assert len(resumed) == 1, f"on_resumed called {len(resumed)} times, expected once"
            assert resumed[0] <= bound // 2
            for seq in range(251, 261):
                producer.send(topic, b"AAPL", tick_value("AAPL", seq))
            await _flushed(producer)
            assert len(resumed) == 1, "on_resumed called again without a new drop"
            assert producer.stats.resumes == 1
        async with bus.consumer([topic], from_beginning=True) as consumer:
            records = await collect(consumer, 1 + bound + 10)
    seqs = [seq for _, seq in map(_symbol_seq, records)]
    assert seqs == [*range(0, bound + 1), *range(251, 261)], "not the oldest records kept"


async def check_stop_is_safe_twice(make_bus: BusFactory) -> None:
    """stop() twice is harmless everywhere; stop() delivers; use after stop() raises."""
    bus = make_bus()
    await bus.start()
    topic = bus.config.tick_topic
    never_started = bus.producer()
    await never_started.stop()
    await never_started.stop()

    producer = bus.producer()
    await producer.start()
    sent = _publish(producer, topic, ["AAPL", "MSFT"], range(1, 101))
    await producer.stop()  # no flush: stop() delivers what it can
    await producer.stop()
    try:
        producer.send(topic, b"AAPL", tick_value("AAPL", 101))
    except BusClosedError:
        pass
    else:
        raise AssertionError("send() after stop() did not raise BusClosedError")

    consumer = bus.consumer([topic], from_beginning=True)
    await consumer.start()
    assert len(await collect(consumer, sent)) == sent, "stop() did not deliver the buffer"
    await consumer.stop()
    await consumer.stop()
    try:
        await consumer.getmany(timeout_ms=0)
    except BusClosedError:
        pass
    else:
        raise AssertionError("getmany() after stop() did not raise BusClosedError")
    bus.consumer([topic])  # made and never started: the bus stops it anyway
    await bus.stop()
    await bus.stop()


async def check_lag_counts_records_behind(make_bus: BusFactory) -> None:
    """lag() is the records between the position and the end, summed per topic."""
    async with make_bus() as bus:
        topic = bus.config.tick_topic
        loop = asyncio.get_running_loop()
        async with bus.producer() as producer:
            consumer = bus.consumer([topic], from_beginning=True)
            assert consumer.lag() == {}, "lag() of a consumer not started"
            sent = _publish(producer, topic, ["AAPL"], range(1, 101))  # one key: one partition
            await _flushed(producer)
            async with consumer:
                first: list[BusRecord] = []
                deadline = loop.time() + DEADLINE_S
                while not first and loop.time() < deadline:
                    first = await consumer.getmany(timeout_ms=200, max_records=30)
                assert 0 < len(first) <= 30, f"expected up to 30 records, got {len(first)}"
                assert consumer.lag() == {topic: sent - len(first)}, consumer.lag()
                rest = await collect(consumer, sent - len(first), settle_s=0)
                assert len(first) + len(rest) == sent
                assert consumer.lag() == {topic: 0}, "lag after reading everything"

                more = _publish(producer, topic, ["AAPL"], range(101, 111))
                await _flushed(producer)
                # Kafka learns the end from fetch responses, which its consumer makes in the
                # background: wait for it, without reading.
                deadline = loop.time() + DEADLINE_S
                while consumer.lag() != {topic: more} and loop.time() < deadline:  # noqa: ASYNC110 - lag() moves in the background
                    await asyncio.sleep(0.05)
                assert consumer.lag() == {topic: more}, consumer.lag()
                assert len(await collect(consumer, more, settle_s=0)) == more
                assert consumer.lag() == {topic: 0}
            assert consumer.lag() == {}, "lag() of a stopped consumer"


async def check_incarnation_names_one_log(make_bus: BusFactory) -> None:
    """incarnation(topic) stays the same for the bus's life and differs for another log."""
    other_bus = make_bus()  # a new tick_topic: another log, whose offsets begin at 0
    async with make_bus() as bus, other_bus:
        topic = bus.config.tick_topic
        first = await bus.incarnation(topic)
        assert isinstance(first, str), f"incarnation is a {type(first).__name__}, not a str"
        assert first, "incarnation is empty"
        async with bus.producer() as producer:
            sent = _publish(producer, topic, ["AAPL", "MSFT"], range(1, 21))
            await _flushed(producer)
        async with bus.consumer([topic], from_beginning=True) as consumer:
            assert len(await collect(consumer, sent, settle_s=0)) == sent
        assert await bus.incarnation(topic) == first, "incarnation changed with the records"
        assert await bus.incarnation(topic) == first, "incarnation changed between two calls"
        other_topic = bus.config.chat_topic
        assert await bus.incarnation(other_topic) != first, "two topics share an incarnation"
        other = await other_bus.incarnation(other_bus.config.tick_topic)
        assert other != first, "another bus's new log has the same incarnation"
    assert await bus.incarnation(topic) == first, "incarnation changed when the bus stopped"


CONTRACT_CHECKS: dict[str, ContractCheck] = {
    "keyed_order_and_exactly_once": check_keyed_order_and_exactly_once,
    "from_beginning_and_latest": check_from_beginning_and_latest,
    "group_splits_partitions_and_resumes": check_group_splits_partitions_and_resumes,
    "flush_delivers_everything": check_flush_delivers_everything,
    "overflow_drops_newest_then_resumes": check_overflow_drops_newest_then_resumes,
    "stop_is_safe_twice": check_stop_is_safe_twice,
    "lag_counts_records_behind": check_lag_counts_records_behind,
    "incarnation_names_one_log": check_incarnation_names_one_log,
}
