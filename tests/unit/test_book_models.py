"""The three book models (docs/book-models.md) in the native core against the reference.

For every model, hypothesis drives the native BookNormalizer and the plain-Python
reference (tests/support/reference_books.py) with the same streams of W and X messages,
realistic ones (a venue keeping its book consistent) and adversarial ones (in-place
changes, deletes of levels not held, positions past the count and past the capacity,
duplicate ids, crossing updates, more levels than the capacity), and after every message
compares the encoded ticks byte for byte, every symbol's book, the faults, the invalid and
stale symbols, the faults reported for the log and the trim count; the last tick of each
symbol must show the top of its book. Example tests pin the cases the models exist for.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from reference_books import REASONS, ReferenceNormalizer

from fix_session.normalizer import BookNormalizer
from fix_spec.md_columns import ABSENT, BID, CHANGE, DELETE, NEW, OFFER, OTHER, TRADE, MdMessage
from proto import mdfeed_pb2 as pb

SYMBOLS = ("AAPL", "MSFT", "IBM")
E8 = 100_000_000
SENDING_NS = 1_795_357_800_125_000_000  # 2026-11-22 14:30:00.125 UTC
TICK_NS = 52_200_250_000_000  # 14:30:00.250 as MDEntryTime, ns since midnight

Levels = list[tuple[int, int]]
Model = Literal["price", "position", "entry_id"]
MODELS: tuple[Model, ...] = ("price", "position", "entry_id")


def c(cents: int) -> int:
    """A price in cents, scaled by 10^8."""
    return cents * E8 // 100


# -- building messages ------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    kind: int
    px: int
    size: int = ABSENT
    action: int = NEW
    symbol: str = "AAPL"
    position: int = ABSENT
    level: int = ABSENT
    eid: str = ""
    rid: str = ""
    time_ns: int = ABSENT


def x(*entries: Entry, seq: int = 3) -> MdMessage:
    md = MdMessage()
    md.msg_type, md.seq_num, md.sending_ns = "X", seq, SENDING_NS + seq
    for e in entries:
        md.add_entry(
            e.action,
            e.kind,
            e.symbol,
            e.px,
            e.size,
            time_ns=e.time_ns,
            position_no=e.position,
            price_level=e.level,
            entry_id=e.eid,
            ref_id=e.rid,
        )
    return md


def w(symbol: str, *entries: Entry, seq: int = 2) -> MdMessage:
    md = x(*entries, seq=seq)
    md.msg_type, md.symbol = "W", symbol
    md.entry_symbol[:] = [""] * md.count
    md.action[:] = [NEW] * md.count
    return md


def _entry(kind: int) -> Callable[..., Entry]:
    """An entry maker for one side: ``(px, size=1, *, action, position, level, eid, rid)``."""

    def make(
        px: int,
        size: int = E8,
        *,
        action: int = NEW,
        position: int = ABSENT,
        level: int = ABSENT,
        eid: str = "",
        rid: str = "",
    ) -> Entry:
        return Entry(kind, px, size, action, "AAPL", position, level, eid, rid)

    return make


bid = _entry(BID)
ask = _entry(OFFER)


# -- the native normalizer and the reference, side by side ------------------------------


@dataclass
class Pair:
    model: Model
    capacity: int = 15
    locked_ok: bool = False
    #: Price levels a side each quote tick carries (0: the top only).
    depth: int = 0
    native: BookNormalizer = field(init=False)
    reference: ReferenceNormalizer = field(init=False)
    #: Each symbol's last tick from the native side, as it went out.
    last: dict[str, bytes] = field(default_factory=dict)
    #: The native side's faults reported for the log, all of them in order.
    logged: list[tuple[str, str]] = field(default_factory=list)
    ingest_ns: int = 0

    def __post_init__(self) -> None:
        self.native = BookNormalizer(
            symbols=SYMBOLS,
            book_model=self.model,
            capacity=self.capacity,
            locked_ok=self.locked_ok,
            depth=self.depth,
        )
        self.reference = ReferenceNormalizer(
            book_model=self.model,
            capacity=self.capacity,
            locked_ok=self.locked_ok,
            depth=self.depth,
        )

    def send(self, md: MdMessage) -> list[pb.Tick]:
        """Apply `md` to both and check they agree; the native ticks, decoded."""
        self.ingest_ns += 1
        keys: list[bytes] = []
        values: list[bytes] = []
        self.native.on_message(md, self.ingest_ns, keys, values)
        expected = self.reference.apply(md, self.ingest_ns)
        assert list(zip(keys, values, strict=True)) == expected
        for key, value in expected:
            self.last[key.decode()] = value
        self.check()
        return [pb.Tick.FromString(value) for value in values]

    def events(self) -> None:
        """What the stream exercised (pytest --hypothesis-show-statistics)."""
        for reason in nonzero(self.native.faults):
            event(f"fault {reason}")
        event(f"levels trimmed: {self.native.stats.levels_trimmed > 0}")
        event(f"logged faults: {len(self.logged)}" if len(self.logged) < 3 else "logged: 3+")

    def check(self) -> None:
        native, reference = self.native, self.reference
        for symbol in SYMBOLS:
            assert native.book(symbol) == reference.book(symbol), symbol
            bids, asks = native.book(symbol)
            assert len(bids) <= self.capacity
            assert len(asks) <= self.capacity
        assert nonzero(native.faults) == reference.faults
        assert set(native.faults) <= set(REASONS)
        assert native.invalid == reference.invalid
        assert native.invalid <= native.stale
        assert native.stale == reference.stale
        assert native.stats.levels_trimmed == reference.levels_trimmed
        taken = native.take_faults()
        # Each symbol's first fault, once; their order across symbols is the log's affair.
        assert sorted(taken) == sorted(reference.take_faults())
        assert native.take_faults() == []
        self.logged += taken
        for symbol, value in self.last.items():
            tick = pb.Tick.FromString(value)
            assert shown_top(tick) == top_of(native.book(symbol), self.model), symbol
            assert tick.book_invalid == (symbol in native.invalid), symbol
            if self.depth and tick.kind == pb.TICK_KIND_QUOTE:
                # The depth a quote carries is the book's, its first level the top.
                bids, asks = native.book(symbol)
                shown = [(lv.px_e8, lv.size_e8) for lv in tick.bid_levels]
                assert shown == depth_of(bids, self.model, self.depth), symbol
                shown = [(lv.px_e8, lv.size_e8) for lv in tick.ask_levels]
                assert shown == depth_of(asks, self.model, self.depth), symbol


def nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {reason: n for reason, n in counts.items() if n}


def best(levels: Levels, model: str) -> tuple[int, int] | None:
    if not levels:
        return None
    px = levels[0][0]
    if model != "entry_id":
        return levels[0]
    return px, sum(size for p, size in levels if p == px)


def top_of(book: tuple[Levels, Levels], model: str) -> tuple[object, object]:
    return best(book[0], model), best(book[1], model)


def shown_top(tick: pb.Tick) -> tuple[object, object]:
    bid_top = (tick.bid_px_e8, tick.bid_size_e8) if tick.HasField("bid_px_e8") else None
    ask_top = (tick.ask_px_e8, tick.ask_size_e8) if tick.HasField("ask_px_e8") else None
    return bid_top, ask_top


# -- strategies -------------------------------------------------------------------------

#: Adversarial prices: bids and offers from the same 41 prices, so they lock and cross.
CLASHING = st.integers(9_900, 10_100).map(lambda n: c(n // 5 * 5))
#: A realistic venue's prices: bids below 100, offers above.
BIDS_PX = st.integers(9_000, 9_999).map(c)
ASKS_PX = st.integers(10_001, 11_000).map(c)
SIZES = st.one_of(st.just(ABSENT), st.integers(0, 50).map(lambda n: n * E8 // 10))
IDS = st.sampled_from([f"e{i}" for i in range(8)])


@dataclass
class Venue:
    """What a stream's strategies share: the model, the capacity and fresh ids."""

    model: str
    capacity: int
    fresh: itertools.count[int] = field(default_factory=itertools.count)

    def new_id(self) -> str:
        return f"n{next(self.fresh)}"


@st.composite
def position_fields(draw: st.DrawFn, upper: int) -> tuple[int, int]:
    """(MDEntryPositionNo, MDPriceLevel): a position as the one, else the other, or none."""
    p = draw(st.integers(1, upper))
    how = draw(st.sampled_from(["position"] * 6 + ["level"] * 3 + ["none"]))
    if how == "position":
        return p, ABSENT
    if how == "level":
        return ABSENT, p
    return ABSENT, ABSENT


@st.composite
def id_fields(draw: st.DrawFn) -> tuple[str, str]:
    """(MDEntryID, MDEntryRefID) from a small pool, so they collide."""
    how = draw(st.sampled_from(["eid"] * 4 + ["rid"] * 3 + ["both"] * 2 + ["none"]))
    if how == "eid":
        return draw(IDS), ""
    if how == "rid":
        return "", draw(IDS)
    if how == "both":
        return draw(IDS), draw(IDS)
    return "", ""


@st.composite
def adversarial_entry(draw: st.DrawFn, venue: Venue) -> Entry:
    kind = draw(st.sampled_from([BID, BID, OFFER, OFFER, TRADE, OTHER]))
    action = draw(st.sampled_from([NEW, CHANGE, DELETE]))
    symbol = draw(st.sampled_from(SYMBOLS))
    px = draw(CLASHING)
    if action == DELETE and draw(st.integers(0, 3)) == 0:
        px = ABSENT
    time_ns = ABSENT
    if kind == TRADE and draw(st.booleans()):
        time_ns = TICK_NS + draw(st.integers(0, 10**9))
    position, level, eid, rid = ABSENT, ABSENT, "", ""
    if venue.model == "position":
        position, level = draw(position_fields(venue.capacity + 2))
    elif venue.model == "entry_id":
        eid, rid = draw(id_fields())
    return Entry(kind, px, draw(SIZES), action, symbol, position, level, eid, rid, time_ns)


@st.composite
def realistic_entry(draw: st.DrawFn, venue: Venue, reference: ReferenceNormalizer) -> Entry:
    """An entry a consistent venue would send, given the book before the message."""
    symbol = draw(st.sampled_from(SYMBOLS))
    kind = draw(st.sampled_from([BID, BID, OFFER, OFFER, TRADE]))
    size = draw(SIZES)
    if kind == TRADE:
        return Entry(TRADE, draw(BIDS_PX), size, symbol=symbol)
    px = draw(BIDS_PX if kind == BID else ASKS_PX)
    bids, asks = reference.book(symbol)
    held = bids if kind == BID else asks
    action = draw(st.sampled_from([NEW, NEW, CHANGE, DELETE])) if held else NEW
    if venue.model == "price":
        if action == DELETE:
            px = draw(st.sampled_from(held))[0]
        return Entry(kind, px, size, action, symbol)
    if venue.model == "position":
        upper = min(len(held) + 1, venue.capacity) if action == NEW else len(held)
        return Entry(kind, px, size, action, symbol, position=draw(st.integers(1, upper)))
    book = reference.books.get(symbol)
    side = None if book is None else book.bids if kind == BID else book.asks
    if side is not None and side.levels and draw(st.booleans()):
        px = draw(st.sampled_from(side.levels)).px  # join a held price
    if action == NEW or side is None:
        return Entry(kind, px, size, NEW, symbol, eid=venue.new_id())
    named = draw(st.sampled_from(side.levels))
    if action == CHANGE and draw(st.booleans()):
        px = named.px  # a new size only
    named_id = named.ident
    if draw(st.booleans()):
        return Entry(kind, px, size, action, symbol, rid=named_id)
    return Entry(kind, px, size, action, symbol, eid=named_id)


@st.composite
def snapshot(draw: st.DrawFn, venue: Venue, adversarial: bool, seq: int) -> MdMessage:
    symbol = draw(st.sampled_from(SYMBOLS))
    entries: list[Entry] = []
    for kind, prices in ((BID, BIDS_PX), (OFFER, ASKS_PX)):
        depth = draw(st.integers(0, venue.capacity + 3 if adversarial else venue.capacity))
        pxs = draw(st.lists(CLASHING if adversarial else prices, min_size=depth, max_size=depth))
        if not adversarial:
            pxs.sort(reverse=kind == BID)
        for n, px in enumerate(pxs, start=1):
            position, level, eid, rid = ABSENT, ABSENT, "", ""
            if venue.model == "position":
                if not adversarial:
                    position = n
                elif draw(st.booleans()):
                    position, level = draw(position_fields(depth + 1))
                # else neither: the entry goes to count + 1
            elif venue.model == "entry_id":
                eid, rid = draw(id_fields()) if adversarial else (venue.new_id(), "")
            entries.append(Entry(kind, px, draw(SIZES), NEW, "", position, level, eid, rid))
    if draw(st.booleans()):
        time = draw(st.one_of(st.just(ABSENT), st.integers(0, 86_399 * 10**9)))
        trade = Entry(TRADE, draw(BIDS_PX), draw(SIZES), symbol="", time_ns=time)
        entries.insert(draw(st.integers(0, len(entries))), trade)
    return w(symbol, *entries, seq=seq)


def depth_of(levels: Levels, model: str, depth: int) -> list[tuple[int, int]]:
    """A side's first `depth` price levels as a quote tick shows them (entries at one
    price summed in the entry_id model)."""
    out: list[tuple[int, int]] = []
    for px, size in levels:
        if model == "entry_id" and out and out[-1][0] == px:
            out[-1] = (px, out[-1][1] + size)
        else:
            out.append((px, size))
    return out[:depth]


def step(data: st.DataObject, venue: Venue, pair: Pair, seq: int) -> MdMessage:
    """One message of a stream, drawn as the stream is applied: realistic entries read
    the reference's book as it is before the message."""
    adversarial = data.draw(st.integers(0, 2)) == 0
    if data.draw(st.integers(0, 5)) == 0:
        return data.draw(snapshot(venue, adversarial, seq))
    count = data.draw(st.integers(1, 8))
    entries = [
        data.draw(
            adversarial_entry(venue) if adversarial else realistic_entry(venue, pair.reference)
        )
        for _ in range(count)
    ]
    return x(*entries, seq=seq)


CAPACITIES = st.sampled_from([1, 2, 3, 5, 15])


@pytest.mark.parametrize("model", MODELS)
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_core_and_the_reference_agree_after_every_message(
    model: Model, data: st.DataObject
) -> None:
    capacity = data.draw(CAPACITIES)
    depth = data.draw(st.integers(0, capacity))
    pair = Pair(model, capacity=capacity, locked_ok=data.draw(st.booleans()), depth=depth)
    venue = Venue(model, capacity)
    for seq in range(2, 2 + data.draw(st.integers(1, 30))):
        pair.send(step(data, venue, pair, seq))
    pair.events()


@pytest.mark.parametrize("model", MODELS)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_stream_starting_from_snapshots_agrees_too(model: Model, data: st.DataObject) -> None:
    """Each symbol snapshotted first, as the ingest does, then a stream."""
    capacity = data.draw(CAPACITIES)
    pair = Pair(model, capacity=capacity, depth=data.draw(st.integers(0, capacity)))
    venue = Venue(model, capacity)
    for seq in range(2, 2 + len(SYMBOLS)):
        pair.send(data.draw(snapshot(venue, False, seq)))
    start = 2 + len(SYMBOLS)
    for seq in range(start, start + data.draw(st.integers(1, 30))):
        pair.send(step(data, venue, pair, seq))
    pair.events()


# -- the issue: a position venue moving level 1 in place ---------------------------------


def moving_down() -> list[MdMessage]:
    """A venue keyed by position: its book moves down a quarter, every level changed in
    place (Change at the same position, a new price)."""
    return [
        w(
            "AAPL",
            bid(c(10_000), 5 * E8, position=1),
            bid(c(9_975), 3 * E8, position=2),
            ask(c(10_025), 4 * E8, position=1),
            ask(c(10_050), 2 * E8, position=2),
        ),
        x(
            bid(c(9_950), 6 * E8, action=CHANGE, position=1),
            bid(c(9_925), 3 * E8, action=CHANGE, position=2),
            ask(c(9_975), 4 * E8, action=CHANGE, position=1),
            ask(c(10_000), 1 * E8, action=CHANGE, position=2),
        ),
    ]


def test_the_position_model_keeps_a_position_venues_book() -> None:
    pair = Pair("position")
    ticks = [tick for md in moving_down() for tick in pair.send(md)]
    assert pair.native.book("AAPL") == (
        [(c(9_950), 6 * E8), (c(9_925), 3 * E8)],
        [(c(9_975), 4 * E8), (c(10_000), 1 * E8)],
    )
    assert nonzero(pair.native.faults) == {}
    assert pair.native.invalid == set()
    assert "AAPL" not in pair.native.stale
    last = ticks[-1]
    assert (last.bid_px_e8, last.bid_size_e8, last.ask_px_e8, last.ask_size_e8) == (
        c(9_950),
        6 * E8,
        c(9_975),
        4 * E8,
    )
    assert not any(tick.book_invalid for tick in ticks)


def test_the_same_stream_keyed_by_price_ends_crossed_and_flagged() -> None:
    pair = Pair("price")
    snapshot_ticks = pair.send(moving_down()[0])
    ticks = pair.send(moving_down()[1])
    bids, asks = pair.native.book("AAPL")
    assert bids[0][0] > asks[0][0]  # the old levels stayed: 100.00 bid over a 99.75 offer
    assert nonzero(pair.native.faults) == {"crossed": 1}
    assert pair.native.invalid == {"AAPL"}
    assert "AAPL" in pair.native.stale
    assert pair.logged == [("AAPL", "crossed")]
    assert not any(tick.book_invalid for tick in snapshot_ticks)
    [quote] = ticks
    assert quote.kind == pb.TICK_KIND_QUOTE
    assert quote.book_invalid
    assert (quote.bid_px_e8, quote.ask_px_e8) == (c(10_000), c(9_975))


# -- bounded memory ---------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_ten_thousand_distinct_prices_keep_at_most_the_capacity(model: Model) -> None:
    pair = Pair(model, capacity=15)
    pair.send(w("AAPL", bid(c(100), position=1, eid="b"), ask(c(1_000_000), position=1, eid="a")))
    n = 10_000
    for start in range(0, n, 500):
        entries: list[Entry] = []
        for i in range(start, start + 500):
            # Every price better than the last: each is kept and pushes the worst out.
            entries.append(bid(c(200 + i), position=1, eid=f"b{i}"))
            entries.append(ask(c(999_000 - i), position=1, eid=f"a{i}"))
        pair.send(x(*entries, seq=3 + start))
    bids, asks = pair.native.book("AAPL")
    assert len(bids) == len(asks) == 15
    assert bids[0][0] == c(200 + n - 1)
    assert asks[0][0] == c(999_000 - n + 1)
    assert pair.native.stats.levels_trimmed == 2 * (n + 1 - 15)
    assert nonzero(pair.native.faults) == {}


def test_a_delete_of_a_trimmed_level_is_ignored_until_the_next_snapshot() -> None:
    pair = Pair("price", capacity=2)
    pair.send(w("AAPL", bid(c(10_000)), bid(c(9_990)), bid(c(9_980)), ask(c(10_010))))
    assert pair.native.book("AAPL")[0] == [(c(10_000), E8), (c(9_990), E8)]
    assert pair.native.stats.levels_trimmed == 1
    pair.send(x(bid(c(9_980), action=DELETE)))  # the trimmed level: no fault
    assert nonzero(pair.native.faults) == {}
    pair.send(w("AAPL", bid(c(10_000)), ask(c(10_010)), seq=4))
    pair.send(x(bid(c(9_980), action=DELETE), seq=5))  # nothing trimmed since the W
    assert nonzero(pair.native.faults) == {"missing_level": 1}
    assert pair.native.invalid == {"AAPL"}


# -- locked books, and what a snapshot clears --------------------------------------------


@pytest.mark.parametrize("locked_ok", [False, True])
def test_a_locked_book_faults_unless_the_venue_allows_it(locked_ok: bool) -> None:
    pair = Pair("price", locked_ok=locked_ok)
    pair.send(w("AAPL", bid(c(10_000)), ask(c(10_010))))
    [quote] = pair.send(x(ask(c(10_000))))
    assert quote.book_invalid is not locked_ok
    assert nonzero(pair.native.faults) == ({} if locked_ok else {"locked": 1})
    assert pair.native.invalid == (set() if locked_ok else {"AAPL"})
    [quote] = pair.send(x(bid(c(10_005)), seq=4))  # crossed: a fault either way
    assert quote.book_invalid
    assert nonzero(pair.native.faults) == (
        {"crossed": 1} if locked_ok else {"locked": 1, "crossed": 1}
    )
    assert pair.logged == [("AAPL", "crossed" if locked_ok else "locked")]


def test_a_snapshot_clears_the_flag_and_the_next_fault_is_reported_again() -> None:
    pair = Pair("price")
    pair.send(w("AAPL", bid(c(10_000)), ask(c(10_010))))
    [trade, quote] = pair.send(
        x(Entry(TRADE, c(10_005), E8), bid(c(9_000), action=DELETE), bid(c(9_100), action=DELETE))
    )
    assert trade.book_invalid  # before the faulting entry, but of the message that faulted
    assert quote.book_invalid  # the top did not change; the flag did
    assert (quote.bid_px_e8, quote.ask_px_e8) == (c(10_000), c(10_010))
    assert pair.native.faults["missing_level"] == 2
    assert pair.logged == [("AAPL", "missing_level")]  # once per symbol
    [trade] = pair.send(x(Entry(TRADE, c(10_005), E8), seq=4))
    assert trade.book_invalid  # every tick of an invalid symbol
    ticks = pair.send(w("AAPL", bid(c(10_000)), ask(c(10_010)), seq=5))
    assert [tick.book_invalid for tick in ticks] == [False]
    assert pair.native.invalid == set()
    assert "AAPL" not in pair.native.stale
    [quote] = pair.send(x(bid(c(10_001)), seq=6))
    assert not quote.book_invalid
    pair.send(x(ask(c(1), action=DELETE), seq=7))
    assert pair.logged == [("AAPL", "missing_level"), ("AAPL", "missing_level")]


# -- each model's faults ----------------------------------------------------------------


def test_position_faults() -> None:
    pair = Pair("position", capacity=3)
    pair.send(w("AAPL", bid(c(10_000)), ask(c(10_010), position=1)))  # no position: count + 1
    pair.send(x(bid(c(9_980), position=3)))  # past count + 1
    assert nonzero(pair.native.faults) == {"position_gap": 1}
    pair.send(x(bid(c(9_990), level=2), bid(c(9_980), level=3), seq=4))  # MDPriceLevel
    assert pair.native.book("AAPL")[0] == [(c(10_000), E8), (c(9_990), E8), (c(9_980), E8)]
    pair.send(x(bid(c(9_970), position=4), seq=5))  # count + 1, but past the capacity
    pair.send(x(bid(c(10_005), position=1), seq=6))  # pushes 99.80 off: trimmed
    assert pair.native.stats.levels_trimmed == 1
    pair.send(x(bid(c(9_990), action=DELETE, position=3), seq=7))
    pair.send(x(bid(c(9_000), action=CHANGE, position=3), seq=8))  # may be 99.80: ignored
    pair.send(x(bid(c(9_000), action=DELETE, position=3), seq=9))  # ignored
    pair.send(x(ask(c(10_015), action=CHANGE, position=2), seq=10))  # past the count
    pair.send(x(ask(c(10_015), action=CHANGE), seq=11))  # no position at all
    assert pair.native.book("AAPL") == ([(c(10_005), E8), (c(10_000), E8)], [(c(10_010), E8)])
    assert nonzero(pair.native.faults) == {
        "position_gap": 1,
        "beyond_depth": 1,
        "missing_level": 1,
        "no_position": 1,
    }
    assert pair.logged == [("AAPL", "position_gap")]


def test_a_position_past_the_capacity_is_beyond_depth_even_past_the_count() -> None:
    pair = Pair("position", capacity=3)
    pair.send(w("AAPL", bid(c(10_000), position=1)))
    pair.send(x(bid(c(9_990), position=5)))
    assert nonzero(pair.native.faults) == {"beyond_depth": 1}


def test_entry_id_faults_and_time_priority() -> None:
    pair = Pair("entry_id")
    pair.send(
        w("AAPL", bid(c(10_000), eid="a"), bid(c(10_000), 2 * E8, eid="b"), ask(c(10_010), eid="c"))
    )
    [quote] = pair.send(x(bid(c(10_000), 3 * E8, eid="d")))  # behind a and b
    assert (quote.bid_px_e8, quote.bid_size_e8) == (c(10_000), 6 * E8)
    pair.send(x(bid(c(9_990), 5 * E8, action=CHANGE, rid="b"), seq=4))  # moves down
    pair.send(x(bid(c(10_000), 4 * E8, action=CHANGE, eid="b"), seq=5))  # back, behind d
    pair.send(x(bid(c(9_995), action=CHANGE, rid="a", eid="a2"), seq=6))  # renamed, moved
    assert pair.native.book("AAPL")[0] == [
        (c(10_000), 3 * E8),
        (c(10_000), 4 * E8),
        (c(9_995), E8),
    ]
    pair.send(x(ask(c(10_020), eid="a2"), seq=7))  # held on the other side
    pair.send(x(ask(c(10_020)), seq=8))  # no id
    pair.send(x(ask(c(10_020), rid="q"), seq=9))  # a New is keyed by its MDEntryID
    pair.send(x(ask(c(10_020), action=DELETE, rid="zz"), seq=10))
    pair.send(x(bid(c(10_000), action=DELETE, rid="a2", eid="d"), seq=11))  # the ref names it
    pair.send(x(bid(c(10_000), action=DELETE, rid="c"), seq=12))  # c is an offer: not held
    assert pair.native.book("AAPL") == (
        [(c(10_000), 3 * E8), (c(10_000), 4 * E8)],
        [(c(10_010), E8)],
    )
    assert nonzero(pair.native.faults) == {
        "duplicate_id": 1,
        "no_entry_id": 2,
        "missing_level": 2,
    }


def test_a_change_at_the_same_price_keeps_its_place() -> None:
    """docs/book-models.md: "a new price moves it to its place"; the same price does not."""
    pair = Pair("entry_id")
    pair.send(w("AAPL", bid(c(10_000), eid="a"), bid(c(10_000), 2 * E8, eid="b")))
    [quote] = pair.send(x(bid(c(10_000), 5 * E8, action=CHANGE, rid="a")))
    assert pair.native.book("AAPL")[0] == [(c(10_000), 5 * E8), (c(10_000), 2 * E8)]
    assert (quote.bid_px_e8, quote.bid_size_e8) == (c(10_000), 7 * E8)


def test_a_rename_to_an_id_already_held_is_a_duplicate_and_changes_nothing() -> None:
    pair = Pair("entry_id")
    pair.send(w("AAPL", bid(c(10_000), eid="a"), bid(c(9_990), eid="b"), ask(c(10_010), eid="c")))
    pair.send(x(bid(c(9_980), 3 * E8, action=CHANGE, rid="a", eid="c")))  # c is held (offer)
    assert pair.native.book("AAPL")[0] == [(c(10_000), E8), (c(9_990), E8)]
    assert nonzero(pair.native.faults) == {"duplicate_id": 1}
    assert pair.native.invalid == {"AAPL"}


def test_a_position_snapshot_deeper_than_the_capacity_faults_beyond_depth() -> None:
    pair = Pair("position", capacity=2)
    [quote] = pair.send(w("AAPL", bid(c(10_000)), bid(c(9_990)), bid(c(9_980))))
    assert pair.native.book("AAPL") == ([(c(10_000), E8), (c(9_990), E8)], [])
    assert nonzero(pair.native.faults) == {"beyond_depth": 1}
    assert quote.from_snapshot
    assert quote.book_invalid
    assert pair.native.invalid == {"AAPL"}
    assert "AAPL" in pair.native.stale


@pytest.mark.parametrize("model", MODELS)
def test_with_depth_a_change_below_the_top_sends_the_book(model: Model) -> None:
    # A level-2 size change: no tick at depth 0 (the top did not move); at depth 3 a quote
    # tick carrying the three best levels a side, the change among them.
    book = (
        bid(c(10_000), eid="a", position=1),
        bid(c(9_990), eid="b", position=2),
        ask(c(10_010), eid="c", position=1),
    )
    change = bid(c(9_990), 7 * E8, action=CHANGE, eid="b", position=2)
    top_only = Pair(model)
    top_only.send(w("AAPL", *book))
    assert top_only.send(x(change)) == []
    deep = Pair(model, depth=3)
    [snap] = deep.send(w("AAPL", *book))
    assert [(lv.px_e8, lv.size_e8) for lv in snap.bid_levels] == [(c(10_000), E8), (c(9_990), E8)]
    [quote] = deep.send(x(change))
    assert quote.kind == pb.TICK_KIND_QUOTE
    assert [(lv.px_e8, lv.size_e8) for lv in quote.bid_levels] == [
        (c(10_000), E8),
        (c(9_990), 7 * E8),
    ]
    assert [(lv.px_e8, lv.size_e8) for lv in quote.ask_levels] == [(c(10_010), E8)]
    # A change past the depth shown sends nothing.
    deep.send(x(bid(c(9_980), eid="d", position=3), bid(c(9_970), eid="e", position=4), seq=4))
    assert deep.send(x(bid(c(9_970), 2 * E8, action=CHANGE, eid="e", position=4), seq=5)) == []
