"""Each book model over a real FIX session: the simulated venue speaking it, FixIngest
(real QuickFIX, the native core) applying it, into an in-process bus.

With the same model on both sides the ingest's books are the venue's, level for level,
and no fault is found. With the models mismatched (a venue that updates level 1 in place
by position, read by price) the books go wrong: the faults are counted, the symbols'
ticks carry book_invalid, and a fresh snapshot is asked for and clears the flag.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Literal

import pytest
from bus_ticks import ticks_by_symbol
from polling import until

from fix_session.ingest import FixIngest
from fix_session.venue import SimulatedVenue
from fix_session.venue.market import BookSnapshot
from mdfeed.kernel.bus import MemoryBus
from mdfeed.kernel.config import DEFAULT_SYMBOLS, BusConfig, FixSessionConfig, VenueConfig
from proto import mdfeed_pb2 as pb

SYMBOLS = DEFAULT_SYMBOLS[:6]
Model = Literal["price", "position", "entry_id"]


def e8(text: str) -> int:
    return int(Decimal(text).scaleb(8))


def venue_levels(book: BookSnapshot) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    return (
        [(e8(level.price), e8(level.size)) for level in book.bids],
        [(e8(level.price), e8(level.size)) for level in book.offers],
    )


async def stream(
    tmp_path: Path, venue_model: Model, ingest_model: Model, seconds: float, depth: int = 0
) -> tuple[SimulatedVenue, FixIngest, dict[str, list[pb.Tick]]]:
    """Run the venue and the ingest for `seconds`, pause the venue and let the ingest
    catch up; the ticks it published, per symbol. The venue and ingest are stopped by the
    caller (`stop`)."""
    venue = SimulatedVenue(
        VenueConfig(port=0, symbols=SYMBOLS, rate_ticks_per_s=3000, seed=11, book_model=venue_model)
    )
    await venue.start()
    bus = MemoryBus(BusConfig(tick_topic="t"))
    await bus.start()
    producer = bus.producer()
    await producer.start()
    consumer = bus.consumer(["t"], from_beginning=True)
    await consumer.start()
    ingest = FixIngest(
        FixSessionConfig(
            port=venue.port,
            log_dir=str(tmp_path),
            heartbeat_interval_s=5,
            # FIX 4.4's snapshot group has no MDEntryID; the venue extension adds it.
            dictionary="venue44",
            book_model=ingest_model,
            publish_depth=depth,
        ),
        symbols=SYMBOLS,
        producer=producer,
        topic="t",
    )
    await ingest.start()
    await ingest.wait_logged_on(15)
    await until(
        lambda: all(ingest.normalizer.sequence(s) > 20 for s in SYMBOLS),
        timeout_s=20,
        interval_s=0.05,
        what="every symbol streaming",
    )
    await asyncio.sleep(seconds)
    venue.pause_stream()
    sent = venue.stats.entries_sent
    await until(
        lambda: ingest.normalizer.inbox_held == 0 and ingest.normalizer.pending == 0,
        timeout_s=10,
        interval_s=0.05,
        what="the ingest caught up",
    )
    assert venue.stats.entries_sent == sent, "the venue kept streaming while paused"
    assert await producer.flush(5)
    ticks = await ticks_by_symbol(consumer)
    await consumer.stop()
    await producer.stop()
    await bus.stop()
    return venue, ingest, ticks


@pytest.mark.parametrize("model", ["price", "position", "entry_id"])
async def test_the_ingest_keeps_the_venues_book_in_each_model(tmp_path: Path, model: Model) -> None:
    # With the venue's depth published, each symbol's last quote carries the whole book.
    venue, ingest, ticks = await stream(tmp_path, model, model, seconds=2.0, depth=10)
    try:
        normalizer = ingest.normalizer
        assert sum(normalizer.faults.values()) == 0, normalizer.faults
        assert normalizer.invalid == set()
        for symbol in SYMBOLS:
            assert normalizer.book(symbol) == venue_levels(venue.book(symbol)), symbol
            items = ticks[symbol]
            assert [t.seq for t in items] == list(range(1, len(items) + 1)), symbol
            assert not any(t.book_invalid for t in items), symbol
            last_quote = next(t for t in reversed(items) if t.kind == pb.TICK_KIND_QUOTE)
            bids, asks = normalizer.book(symbol)
            assert (last_quote.bid_px_e8, last_quote.ask_px_e8) == (bids[0][0], asks[0][0])
            shown = (
                [(lv.px_e8, lv.size_e8) for lv in last_quote.bid_levels],
                [(lv.px_e8, lv.size_e8) for lv in last_quote.ask_levels],
            )
            assert shown == venue_levels(venue.book(symbol)), symbol
            assert all(
                len(t.bid_levels) == len(t.ask_levels) == 10
                for t in items
                if t.kind == pb.TICK_KIND_QUOTE
            ), symbol
        assert normalizer.stats.entries > 1000
    finally:
        await ingest.stop()
        await venue.stop()


async def test_a_position_venue_read_by_price_is_flagged_and_resnapshotted(
    tmp_path: Path,
) -> None:
    # The venue moves level 1 in place (Change at MDEntryPositionNo 1 with a new price):
    # read by price, the old level stays and the book crosses or names levels not there.
    venue, ingest, ticks = await stream(tmp_path, "position", "price", seconds=4.0)
    try:
        faults = ingest.normalizer.faults
        assert sum(faults.values()) > 0, faults
        flagged = {s for s, items in ticks.items() if any(t.book_invalid for t in items)}
        assert flagged, "no tick was flagged book_invalid"
        # A flagged symbol was resnapshotted: a snapshot tick after a flagged one, itself
        # not flagged unless the snapshot's own book was wrong.
        resynced = set()
        for symbol in flagged:
            items = ticks[symbol]
            first_bad = next(i for i, t in enumerate(items) if t.book_invalid)
            if any(t.from_snapshot and not t.book_invalid for t in items[first_bad:]):
                resynced.add(symbol)
            assert [t.seq for t in items] == list(range(1, len(items) + 1)), symbol
        assert resynced, "no flagged symbol got a fresh snapshot"
        # Every crossed quote that left was flagged.
        for items in ticks.values():
            for t in items:
                if (
                    t.HasField("bid_px_e8")
                    and t.HasField("ask_px_e8")
                    and t.bid_px_e8 > t.ask_px_e8
                ):
                    assert t.book_invalid, t
    finally:
        await ingest.stop()
        await venue.stop()
