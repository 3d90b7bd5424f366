"""Grouped subscriptions: the request bookkeeping, then FixIngest (real QuickFIX) against
the simulated venue on loopback, publishing to the in-process bus.

What must hold: a V names many symbols so X messages carry several symbols; a reject (Y)
marks exactly the unknown symbols, found by a per-symbol retry of the rejected group's
symbols with no snapshot; the good symbols of that group keep streaming under it with
contiguous sequences; a resync and a reconnect subscribe grouped again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Protocol

import pytest
from polling import until

from fix_session.ingest import FixIngest
from fix_session.subscriptions import Subscriptions
from fix_session.venue import SimulatedVenue
from mdfeed.kernel.bus import BusConsumer, MemoryBus
from mdfeed.kernel.config import BusConfig, FixSessionConfig, VenueConfig
from mdfeed.kernel.tick_records import ticks_of
from proto import mdfeed_pb2 as pb

KNOWN = ("AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META")

# -- the bookkeeping -----------------------------------------------------------------------


def test_symbols_are_chunked_into_requests_with_unique_ids() -> None:
    subs = Subscriptions(symbols_per_request=2)
    first = subs.subscribe(["A", "B", "C", "A"])
    assert [r.symbols for r in first] == [("A", "B"), ("C",)]
    again = subs.subscribe(["D"])
    ids = [r.md_req_id for r in first + again]
    assert len(set(ids)) == 3
    assert subs.active == {"A": ids[0], "B": ids[0], "C": ids[1], "D": ids[2]}
    subs.new_session()
    # A new session's ids never repeat an earlier session's.
    assert subs.subscribe(["A"])[0].md_req_id not in ids
    assert subs.active == {"A": subs.active["A"]}


def test_a_grouped_reject_retries_only_the_symbols_without_a_snapshot() -> None:
    subs = Subscriptions(symbols_per_request=10)
    (group,) = subs.subscribe(["A", "B", "C", "D"])
    subs.snapshot("A")
    subs.snapshot("C")
    assert not subs.is_single(group.md_req_id)
    assert subs.retry_alone(group.md_req_id) == ("B", "D")
    (alone_b,) = subs.subscribe(["B"])
    (alone_d,) = subs.subscribe(["D"])
    # B moved to its own request; D's alone request is rejected: D, only D, is unavailable.
    assert subs.symbols_of(group.md_req_id) == ("A", "C")
    assert subs.is_single(alone_d.md_req_id)
    assert subs.rejected_alone(alone_d.md_req_id) == ("D",)
    assert "D" not in subs.active
    subs.snapshot("B")
    assert subs.active == {"A": group.md_req_id, "B": alone_b.md_req_id, "C": group.md_req_id}
    # A second reject of the group finds nothing left to retry.
    assert subs.retry_alone(group.md_req_id) == ()


def test_a_reject_of_a_request_whose_symbols_moved_on_names_nothing() -> None:
    subs = Subscriptions(symbols_per_request=10)
    (old,) = subs.subscribe(["A"])
    subs.unsubscribe(["A"])
    subs.subscribe(["A"])
    assert subs.rejected_alone(old.md_req_id) == ()
    assert subs.symbols_of("not-an-id") == ()
    assert subs.open_requests == 1


def test_symbols_per_request_must_be_positive() -> None:
    with pytest.raises(ValueError, match="symbols_per_request"):
        Subscriptions(symbols_per_request=0)


# -- against the simulated venue -----------------------------------------------------------


@dataclasses.dataclass
class Rig:
    venue: SimulatedVenue
    ingest: FixIngest
    consumer: BusConsumer


class StartRig(Protocol):
    async def __call__(
        self, symbols: Sequence[str], *, rate: int = 3000, symbols_per_request: int = 500
    ) -> Rig: ...


#: Shard-style suffixes, unique for the test process.
_SESSION_NUMBERS = itertools.count(1)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[StartRig]:
    """A venue on a free port, an in-process bus and a logged-on FixIngest, on demand."""
    started: list[tuple[SimulatedVenue, FixIngest, MemoryBus]] = []

    async def start(
        symbols: Sequence[str], *, rate: int = 3000, symbols_per_request: int = 500
    ) -> Rig:
        venue = SimulatedVenue(
            VenueConfig(port=0, symbols=KNOWN, rate_ticks_per_s=rate, seed=11, depth=5)
        )
        await venue.start()
        bus = MemoryBus(BusConfig(tick_topic="t", tick_partitions=1))
        await bus.start()
        producer = bus.producer()
        await producer.start()
        # A SenderCompID of its own per session (the venue takes <target>-K as a shard's):
        # stop() may return while QuickFIX is still winding a session down, and a new
        # session under the same SessionID in this process can then hang or crash it.
        config = FixSessionConfig(
            port=venue.port,
            sender_comp_id=f"{FixSessionConfig().sender_comp_id}-{next(_SESSION_NUMBERS)}",
            heartbeat_interval_s=2,
            reconnect_interval_s=1,
            log_dir=str(tmp_path / f"fix{len(started)}"),
            symbols_per_request=symbols_per_request,
        )
        ingest = FixIngest(config, symbols=symbols, producer=producer, topic="t")
        producer.on_resumed = ingest.resync
        consumer = bus.consumer(["t"], from_beginning=True)
        await consumer.start()
        started.append((venue, ingest, bus))
        await ingest.start()
        await ingest.wait_logged_on(15)
        return Rig(venue, ingest, consumer)

    yield start
    for venue, ingest, bus in started:
        await ingest.stop()
        await bus.stop()
        await venue.stop()


async def delivered(rig: Rig) -> dict[str, list[pb.Tick]]:
    """At least every tick published up to now (the stream goes on meanwhile: reading
    until a quiet moment would wait as long as the venue keeps sending)."""
    assert await rig.ingest.producer.flush(5)
    expected = rig.ingest.stats.ticks_out
    out: dict[str, list[pb.Tick]] = defaultdict(list)
    got = 0
    async with asyncio.timeout(30):
        while got < expected:
            for record in await rig.consumer.getmany(timeout_ms=50, max_records=100_000):
                for encoded in ticks_of(record.value):
                    tick = pb.Tick.FromString(encoded)
                    assert record.key == tick.symbol.encode()
                    out[tick.symbol].append(tick)
                    got += 1
    return out


def assert_contiguous(ticks: dict[str, list[pb.Tick]]) -> None:
    for symbol, items in ticks.items():
        assert [t.seq for t in items] == list(range(1, len(items) + 1)), symbol
        assert items[0].from_snapshot, symbol


async def entries_per_x(r: Rig, entries: int) -> float:
    venue = r.venue
    base_entries = venue.stats.entries_sent
    base_x = venue.stats.sent_by_type.get("X", 0)
    await until(
        lambda: venue.stats.entries_sent >= base_entries + entries,
        timeout_s=20,
        interval_s=0.05,
        what=f"{entries} entries streamed",
    )
    sent_x = venue.stats.sent_by_type.get("X", 0) - base_x
    return (venue.stats.entries_sent - base_entries) / sent_x


async def test_one_request_for_all_symbols_packs_several_symbols_per_x(rig: StartRig) -> None:
    grouped = await rig(KNOWN)
    (session,) = grouped.venue.sessions
    await until(
        lambda: len(session.subscriptions) == len(KNOWN),
        timeout_s=10,
        interval_s=0.02,
        what="all symbols subscribed",
    )
    assert len(set(session.subscriptions.values())) == 1
    assert grouped.ingest.stats.requests_sent == 1
    packed = await entries_per_x(grouped, 3000)
    ticks = await delivered(grouped)
    assert set(ticks) == set(KNOWN)
    assert_contiguous(ticks)
    # QuickFIX allows one session per SessionID in a process: the first one goes first.
    await grouped.ingest.stop()
    alone = await rig(KNOWN, symbols_per_request=1)
    assert alone.ingest.stats.requests_sent == len(KNOWN)
    unpacked = await entries_per_x(alone, 3000)
    # Same venue settings and rate: one MDReqID per symbol packs about 1.4 entries per X
    # (one market step's entries), one for all of them several symbols' steps per X.
    assert packed > 1.4
    assert packed > 1.5 * unpacked, (packed, unpacked)


async def test_a_grouped_reject_marks_exactly_the_unknown_symbols(rig: StartRig) -> None:
    symbols = ("AAPL", "ZZZZ", "MSFT", "NVDA", "QQQQ", "AMZN")
    r = await rig(symbols)
    normalizer = r.ingest.normalizer
    await until(
        lambda: set(normalizer.unavailable) == {"ZZZZ", "QQQQ"},
        timeout_s=10,
        interval_s=0.02,
        what="rejects of ZZZZ and QQQQ",
    )
    assert "ZZZZ" in normalizer.unavailable["ZZZZ"]
    assert "QQQQ" in normalizer.unavailable["QQQQ"]
    good = ("AAPL", "MSFT", "NVDA", "AMZN")
    before = {s: normalizer.sequence(s) for s in good}
    await until(
        lambda: all(normalizer.sequence(s) > before[s] + 10 for s in good),
        timeout_s=20,
        interval_s=0.05,
        what="the good symbols still stream",
    )
    stats = r.ingest.stats
    assert stats.grouped_rejects == 2
    # Retried alone: the unknown two, plus any good symbol whose snapshot was not in yet.
    assert 2 <= stats.symbols_retried <= len(symbols)
    assert normalizer.stats.unknown_symbol_rejects == 2
    assert normalizer.sequence("ZZZZ") == normalizer.sequence("QQQQ") == 0
    (session,) = r.venue.sessions
    assert set(session.subscriptions) == set(good)
    ticks = await delivered(r)
    assert set(ticks) == set(good)
    assert_contiguous(ticks)


async def test_resync_stops_and_resubscribes_grouped_and_sequences_continue(
    rig: StartRig,
) -> None:
    r = await rig(KNOWN)
    normalizer = r.ingest.normalizer
    await until(
        lambda: all(normalizer.sequence(s) > 5 for s in KNOWN),
        timeout_s=20,
        interval_s=0.05,
        what="every symbol streaming",
    )
    sent = r.ingest.stats.requests_sent
    stale = ["AAPL", "NVDA", "META"]
    snapshots = {s: r.venue.stats.per_symbol[s].snapshots for s in KNOWN}
    r.ingest.resync(stale)
    # One 263=2 and one 263=1, each naming all three.
    assert r.ingest.stats.requests_sent == sent + 2
    await until(
        lambda: all(r.venue.stats.per_symbol[s].snapshots > snapshots[s] for s in stale),
        timeout_s=10,
        interval_s=0.02,
        what="fresh snapshots of the stale symbols",
    )
    (session,) = r.venue.sessions
    subs = session.subscriptions
    assert len({subs[s] for s in stale}) == 1
    assert {subs[s] for s in stale}.isdisjoint({subs[s] for s in KNOWN if s not in stale})
    after = {s: normalizer.sequence(s) for s in KNOWN}
    await until(
        lambda: all(normalizer.sequence(s) > after[s] + 5 for s in KNOWN),
        timeout_s=20,
        interval_s=0.05,
        what="ticks after the resync",
    )
    ticks = await delivered(r)
    assert_contiguous(ticks)
    for symbol in stale:
        # The fresh snapshot continues the symbol's sequence, marked as a snapshot.
        assert sum(t.from_snapshot for t in ticks[symbol]) >= 2, symbol


async def test_a_reconnect_subscribes_everything_grouped_again(rig: StartRig) -> None:
    r = await rig(KNOWN)
    await until(lambda: r.ingest.stats.ticks_out > 50, timeout_s=20, interval_s=0.05, what="ticks")
    await r.venue.stop()
    await until(lambda: not r.ingest.logged_on, timeout_s=10, interval_s=0.05, what="logged out")
    await r.venue.start()
    await r.ingest.wait_logged_on(20)
    session = await r.venue.wait_logged_on(5)
    await until(
        lambda: len(session.subscriptions) == len(KNOWN),
        timeout_s=10,
        interval_s=0.02,
        what="subscribed after the reconnect",
    )
    assert len(set(session.subscriptions.values())) == 1
    assert session.stats.md_requests_received == 1
    seqs = {s: r.ingest.normalizer.sequence(s) for s in KNOWN}
    await until(
        lambda: all(r.ingest.normalizer.sequence(s) > seqs[s] + 3 for s in KNOWN),
        timeout_s=20,
        interval_s=0.05,
        what="ticks after the reconnect",
    )
    assert_contiguous(await delivered(r))
