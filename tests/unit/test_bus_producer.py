"""The producer core both adapters share, driven through a scripted adapter (no network).

The adapter below is a real BufferedProducer whose session and deliveries follow a script:
failing opens, a window that comes back partly undelivered, records refused for good, a
delivery that stalls until released.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from mdfeed.kernel.bus import BusClosedError
from mdfeed.kernel.bus._buffered import BufferedProducer, Record, SessionError
from mdfeed.kernel.config import BusConfig

TOPIC = "md.ticks"


class ScriptedProducer(BufferedProducer):
    def __init__(
        self,
        *,
        buffer_max_records: int = 1000,
        linger_ms: int = 0,
        request_spacing_ms: int = 0,
        max_window_records: int = 100,
        stall_timeout_s: float = 10.0,
        on_resumed: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(
            buffer_max_records=buffer_max_records,
            linger_ms=linger_ms,
            request_spacing_ms=request_spacing_ms,
            on_resumed=on_resumed,
            max_window_records=max_window_records,
            stop_timeout_s=1.0,
            stall_timeout_s=stall_timeout_s,
            reconnect_backoff_s=(0.01, 0.04),
            name="scripted",
        )
        self.failing_opens = 0
        self.opens = 0
        self.closes: list[bool] = []
        self.windows: list[list[Record]] = []
        self.delivered: list[Record] = []
        #: For the next windows, in turn: records to hand back for retry from this index
        #: ("retry", i), records refused for good ("reject", n), or wait for an event.
        self.plan: list[tuple[str, int] | asyncio.Event] = []

    async def _open_session(self) -> None:
        self.opens += 1
        if self.failing_opens:
            self.failing_opens -= 1
            raise SessionError("connection refused")

    async def _deliver(self, window: list[Record]) -> tuple[list[Record], int]:
        self.windows.append(list(window))
        step = self.plan.pop(0) if self.plan else None
        if isinstance(step, asyncio.Event):
            await step.wait()
        elif step is not None and step[0] == "retry":
            self.delivered += window[: step[1]]
            return window[step[1] :], 0
        elif step is not None and step[0] == "reject":
            self.delivered += window[step[1] :]
            return [], step[1]
        self.delivered += window
        return [], 0

    async def _close_session(self, *, abandon: bool) -> None:
        self.closes.append(abandon)


def _send(producer: BufferedProducer, first: int, count: int) -> list[Record]:
    records = [(TOPIC, b"AAPL", str(seq).encode()) for seq in range(first, first + count)]
    for topic, key, value in records:
        producer.send(topic, key, value)
    return records


async def test_an_undelivered_window_is_retried_first_and_in_order() -> None:
    resumed: list[int] = []
    producer = ScriptedProducer(on_resumed=lambda: resumed.append(1))
    async with producer:
        first = _send(producer, 0, 10)
        assert await producer.flush(5)
        producer.plan = [("retry", 30)]
        more = _send(producer, 10, 250)
        assert await producer.flush(5)
    assert producer.delivered == first + more, "records overtook each other"
    assert producer.windows[2][:70] == more[30:100], "the retried records did not go first"
    stats = producer.stats
    assert (stats.acked, stats.send_errors, stats.reconnects, stats.buffered) == (260, 70, 1, 0)
    assert producer.opens == 2
    assert producer.closes[0] is True  # the failed session was abandoned
    assert resumed == [1], "a lost session is an outage: on_resumed once"


async def test_unreachable_at_start_buffers_then_delivers_without_a_resume() -> None:
    resumed: list[int] = []
    producer = ScriptedProducer(on_resumed=lambda: resumed.append(1))
    producer.failing_opens = 3
    records = _send(producer, 0, 50)  # before start: buffered
    async with producer:
        await asyncio.sleep(0)
        before = producer.stats  # a snapshot: the producer's own stats move on
        assert not before.connected
        assert await producer.flush(5)
        assert producer.stats.connected
    assert producer.delivered == records
    assert producer.opens == 4
    assert resumed == [], "the first connection is not a resumption"
    assert producer.stats.reconnects == 0


async def test_a_stalled_delivery_turns_connected_off_until_it_completes() -> None:
    resumed: list[int] = []
    producer = ScriptedProducer(stall_timeout_s=0.05, on_resumed=lambda: resumed.append(1))
    release = asyncio.Event()
    async with producer:
        _send(producer, 0, 1)
        assert await producer.flush(5)
        producer.plan = [release]
        _send(producer, 1, 5)
        assert not await producer.flush(0.2)
        stalled = producer.stats  # a snapshot: the producer's own stats move on
        assert not stalled.connected
        assert stalled.buffered == 5
        assert resumed == []
        release.set()
        assert await producer.flush(5)
        assert producer.stats.connected
        assert producer.stats.reconnects == 1
        assert resumed == [1]


async def test_records_refused_for_good_count_as_dropped() -> None:
    resumed: list[int] = []
    producer = ScriptedProducer(on_resumed=lambda: resumed.append(1))
    async with producer:
        producer.plan = [("reject", 2)]
        records = _send(producer, 0, 5)
        assert await producer.flush(5)
    assert producer.delivered == records[2:]
    assert producer.stats.dropped == 2
    assert resumed == [1]


async def test_windows_are_bounded_and_linger_batches_a_trickle() -> None:
    producer = ScriptedProducer(max_window_records=100, linger_ms=50)
    async with producer:
        _send(producer, 0, 1)
        await asyncio.sleep(0.01)
        _send(producer, 1, 4)  # inside the linger: same window
        await asyncio.sleep(0.1)
        _send(producer, 5, 250)
        assert await producer.flush(5)
    assert [len(w) for w in producer.windows] == [5, 100, 100, 50]


async def test_with_the_default_linger_an_idle_producer_sends_at_once_and_batches_in_flight() -> None:
    """Adaptive linger (the default, linger_ms=0): a record on a quiet bus leaves at once,
    alone; records that arrive while a window is in flight wait only for that delivery,
    and then leave together as the next window."""
    assert BusConfig().linger_ms == 0
    release = asyncio.Event()
    producer = ScriptedProducer(linger_ms=BusConfig().linger_ms, max_window_records=100)
    async with producer:
        producer.plan = [release]
        _send(producer, 0, 1)
        for _ in range(5):  # a few loop turns, far less than any linger: sent without waiting
            await asyncio.sleep(0)
        assert [len(w) for w in producer.windows] == [1]
        _send(producer, 1, 30)  # while the first window is in flight
        await asyncio.sleep(0.01)
        assert [len(w) for w in producer.windows] == [1]
        release.set()
        assert await producer.flush(5)
    assert [len(w) for w in producer.windows] == [1, 30]


async def test_request_spacing_sends_a_record_after_a_quiet_spell_at_once_and_spaces_a_busy_bus() -> None:
    """A record after a quiet spacing leaves at once; records that follow a window sooner
    than the spacing leave together when it has passed; a flush does not wait for it."""
    producer = ScriptedProducer(request_spacing_ms=200, max_window_records=100)
    loop = asyncio.get_running_loop()
    async with producer:
        _send(producer, 0, 1)
        for _ in range(5):  # a few loop turns: the first record did not wait
            await asyncio.sleep(0)
        assert [len(w) for w in producer.windows] == [1]
        first_at = loop.time()
        for i in range(1, 4):  # a busy bus: three more within the spacing
            _send(producer, i, 1)
            await asyncio.sleep(0.005)
        assert [len(w) for w in producer.windows] == [1], "a window left inside the spacing"
        while len(producer.windows) < 2:  # noqa: ASYNC110 - the drain appends; no event to wait on
            await asyncio.sleep(0.002)
        assert loop.time() - first_at >= 0.19
        assert [len(w) for w in producer.windows] == [1, 3]
        await asyncio.sleep(0.25)  # a quiet spell longer than the spacing
        _send(producer, 4, 1)
        for _ in range(5):
            await asyncio.sleep(0)
        assert [len(w) for w in producer.windows] == [1, 3, 1]
        _send(producer, 5, 2)  # inside the spacing again, but flushed: no wait
        assert await producer.flush(0.1)
    assert [len(w) for w in producer.windows] == [1, 3, 1, 2]
    assert [r[2] for r in producer.delivered] == [str(i).encode() for i in range(7)]


async def test_send_never_awaits_and_the_bound_covers_records_in_flight() -> None:
    release = asyncio.Event()
    producer = ScriptedProducer(buffer_max_records=10, max_window_records=4)
    async with producer:
        producer.plan = [release]
        _send(producer, 0, 4)
        await asyncio.sleep(0.01)  # that window is now in flight, stalled
        _send(producer, 4, 10)
        stats = producer.stats
        assert (stats.buffered, stats.dropped, stats.accepted) == (10, 4, 10)
        release.set()
        assert await producer.flush(5)
    assert [int(v) for _, _, v in producer.delivered] == list(range(10))


async def test_send_after_stop_raises_and_stop_is_idempotent() -> None:
    producer = ScriptedProducer()
    await producer.start()
    await producer.stop()
    await producer.stop()
    with pytest.raises(BusClosedError):
        _send(producer, 0, 1)
