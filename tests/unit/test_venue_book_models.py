"""The venue's book models: each stream, applied by its model's rules, is the venue's book.

The appliers here are written from docs/book-models.md alone, independent of the venue's
code and of the ingest's books: one per model, fed the entries of every step (and a full
refresh, W, midway), compared with `SymbolBook`'s own levels after every step.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from fix_wire import decode_entries

from fix_session.venue.fast import symbol_cycle
from fix_session.venue.market import (
    BOOK_MODELS,
    MAX_SPREAD_TICKS,
    START_PRICE_RANGE,
    BookModel,
    Market,
    SymbolBook,
    anchor_ticks,
)
from fix_session.venue.server import SimulatedVenue
from mdfeed.kernel.config import VenueConfig

SOH = "\x01"
DEPTH = 10
STEPS = 4_000
#: MDIncGrp's fields in the FIX 4.4 dictionary's order (those the venue writes).
INC_ORDER = (279, 269, 278, 280, 55, 270, 271, 273, 290)
#: MDFullGrp's, with 278 where FIX 5.0 SP2 puts it (FIX 4.4 has none).
FULL_ORDER = (269, 278, 270, 271, 273, 290)

Entry = dict[int, str]


def parse(text: str, first_tag: int) -> list[Entry]:
    """Split entry text into entries (each a tag -> value dict) starting at `first_tag`."""
    entries: list[Entry] = []
    order = INC_ORDER if first_tag == 279 else FULL_ORDER
    tags: list[int] = []
    for field_text in text.split(SOH)[:-1]:
        tag_text, _, value = field_text.partition("=")
        tag = int(tag_text)
        if tag == first_tag:
            if entries:
                assert_in_order(tags, order)
            entries.append({})
            tags = []
        assert tag not in entries[-1], f"tag {tag} twice in one entry: {text!r}"
        entries[-1][tag] = value
        tags.append(tag)
    assert_in_order(tags, order)
    return entries


def assert_in_order(tags: list[int], order: tuple[int, ...]) -> None:
    assert all(t in order for t in tags), tags
    indices = [order.index(t) for t in tags]
    assert indices == sorted(indices), f"fields out of the dictionary's order: {tags}"


def ticks(px: str) -> int:
    return int(Decimal(px) * 100)


@dataclass
class Side:
    """One side of a receiver's book: levels best first, (price in ticks, size, id)."""

    bid: bool
    capacity: int
    levels: list[tuple[int, str, str]] = field(default_factory=list)
    trimmed: bool = False

    def better(self, a: int, b: int) -> bool:
        return a > b if self.bid else a < b

    def place(self, px: int) -> int:
        """Index after every level at a price as good as `px` (time priority)."""
        i = 0
        while i < len(self.levels) and not self.better(px, self.levels[i][0]):
            i += 1
        return i

    def insert(self, i: int, level: tuple[int, str, str]) -> None:
        if i >= self.capacity:
            self.trimmed = True
            return
        self.levels.insert(i, level)
        if len(self.levels) > self.capacity:
            del self.levels[self.capacity :]
            self.trimmed = True

    def missing(self) -> None:
        assert self.trimmed, "a change or delete names a level the book does not hold"

    def prices_sizes(self) -> list[tuple[int, str]]:
        return [(px, size) for px, size, _ in self.levels]


class Applier:
    """A receiver's book of one symbol under one model (docs/book-models.md)."""

    def __init__(self, model: BookModel, capacity: int) -> None:
        self.model = model
        self.capacity = capacity
        self.sides = {"0": Side(True, capacity), "1": Side(False, capacity)}
        #: position model: Change at 290=1 that moved level 1 to a new price.
        self.in_place_moves = 0
        #: entry_id model: changes that renamed their entry (278 with 280).
        self.renames = 0

    def snapshot(self, text: str) -> None:
        """A full refresh: empty the book, apply its book entries in order as New."""
        self.sides = {"0": Side(True, self.capacity), "1": Side(False, self.capacity)}
        for entry in parse(text, 269):
            if entry[269] in self.sides:
                self.apply({279: "0", **entry}, snapshot=True)

    def apply(self, e: Entry, *, snapshot: bool = False) -> None:
        if e[269] == "2":
            return  # trades never touch the book
        side = self.sides[e[269]]
        action = e[279]
        if self.model == "price":
            self._by_price(side, action, e)
        elif self.model == "position":
            self._by_position(side, action, e, snapshot=snapshot)
        else:
            self._by_id(side, action, e)

    def _by_price(self, side: Side, action: str, e: Entry) -> None:
        px = ticks(e[270])
        at = [i for i, lv in enumerate(side.levels) if lv[0] == px]
        if action == "2":
            if not at:
                side.missing()
                return
            del side.levels[at[0]]
        elif at:
            side.levels[at[0]] = (px, e.get(271, "0"), "")
        else:
            side.insert(side.place(px), (px, e.get(271, "0"), ""))

    def _by_position(self, side: Side, action: str, e: Entry, *, snapshot: bool) -> None:
        count = len(side.levels)
        if 290 not in e:
            assert snapshot, f"an incremental entry without a position: {e}"
            p = count + 1
        else:
            p = int(e[290])
        if action == "0":
            assert 1 <= p <= count + 1, f"position_gap: {p} with {count} levels"
            assert p <= self.capacity, f"beyond_depth: {p}"
            side.insert(p - 1, (ticks(e[270]), e[271], ""))
        elif p > count:
            side.missing()
        elif action == "1":
            px = ticks(e[270])
            if p == 1 and px != side.levels[0][0]:
                self.in_place_moves += 1
            side.levels[p - 1] = (px, e[271], "")
        else:
            del side.levels[p - 1]

    def _by_id(self, side: Side, action: str, e: Entry) -> None:
        entry_id = e.get(278)
        ref = e.get(280, entry_id)
        assert ref is not None, f"no_entry_id: {e}"
        if action == "0":
            assert entry_id is not None
            held = {lv[2] for s in self.sides.values() for lv in s.levels}
            assert entry_id not in held, f"duplicate_id {entry_id}"
            px = ticks(e[270])
            side.insert(side.place(px), (px, e[271], entry_id))
            return
        at = [i for i, lv in enumerate(side.levels) if lv[2] == ref]
        if not at:
            side.missing()
            return
        del side.levels[at[0]]
        if action == "1":
            assert entry_id is not None
            if 280 in e:
                self.renames += 1
            px = ticks(e[270])
            side.insert(side.place(px), (px, e[271], entry_id))


def assert_valid(book: SymbolBook) -> None:
    """Strictly ordered sides of `depth` levels, uncrossed, prices of at least one tick."""
    bids, asks = book.bid_prices, book.ask_prices
    assert len(bids) == len(asks) == book.depth
    assert all(a > b for a, b in itertools.pairwise(bids)), bids
    assert all(a < b for a, b in itertools.pairwise(asks)), asks
    assert 1 <= asks[0] - bids[0] <= MAX_SPREAD_TICKS
    assert bids[-1] >= 1


def assert_same(applier: Applier, book: SymbolBook) -> None:
    assert applier.sides["0"].prices_sizes() == book.bids
    assert applier.sides["1"].prices_sizes() == book.asks
    if book.book_model == "entry_id":
        assert [lv[2] for lv in applier.sides["0"].levels] == book.bid_ids
        assert [lv[2] for lv in applier.sides["1"].levels] == book.ask_ids


def run(model: BookModel, *, capacity: int, seed: int, symbol: str = "AAPL") -> Applier:
    """Walk a book STEPS steps, checking a receiver's book after each; a W midway."""
    book = SymbolBook(symbol, DEPTH, 0.1, seed, model)
    applier = Applier(model, capacity)
    applier.snapshot(book.snapshot_entries("09:30:00.000")[0])
    assert_same(applier, book)
    ids_seen = set(book.bid_ids) | set(book.ask_ids)
    for step in range(STEPS):
        if step == STEPS // 2:
            # A receiver (re)starting from a full refresh continues from it.
            fresh = Applier(model, capacity)
            fresh.snapshot(book.snapshot_entries("10:00:00.000")[0])
            fresh.in_place_moves, fresh.renames = applier.in_place_moves, applier.renames
            applier = fresh
            assert_same(applier, book)
        tick = book.step("10:00:00.000")
        entries = parse(tick.text, 279)
        assert len(entries) == tick.entries
        for e in entries:
            assert e[55] == symbol
            if model == "entry_id" and e[269] != "2":
                assert 290 not in e
                new_id = e[278] if e[279] == "0" or 280 in e else None
                if new_id is not None:
                    assert new_id not in ids_seen, f"MDEntryID {new_id} used twice"
                    ids_seen.add(new_id)
            elif e[269] != "2":
                assert 278 not in e
                assert 290 in e
            applier.apply(e)
        assert_valid(book)
        assert_same(applier, book)
    return applier


@pytest.mark.parametrize("seed", [1, 7])
def test_price_stream_applied_by_price_is_the_venue_book(seed: int) -> None:
    run("price", capacity=DEPTH + 5, seed=seed)


@pytest.mark.parametrize("seed", [1, 7])
def test_price_stream_also_holds_by_position(seed: int) -> None:
    """Today's stream: delete first, positions that hold, so both models apply it."""
    book = SymbolBook("MSFT", DEPTH, 0.1, seed, "price")
    applier = Applier("position", DEPTH)
    applier.snapshot(book.snapshot_entries("09:30:00.000")[0])
    for _ in range(STEPS):
        for e in parse(book.step("10:00:00.000").text, 279):
            applier.apply(e)
        assert_same(applier, book)
    assert applier.in_place_moves == 0
    assert not applier.sides["0"].trimmed
    assert not applier.sides["1"].trimmed


@pytest.mark.parametrize("margin", [5, 1, 0])
@pytest.mark.parametrize("seed", [1, 7])
def test_position_stream_applied_by_position_is_the_venue_book(margin: int, seed: int) -> None:
    """With a margin the receiver holds the pushed-off level until its Delete at depth+1;
    with none it trims it and ignores that Delete."""
    applier = run("position", capacity=DEPTH + margin, seed=seed)
    sides = applier.sides.values()
    assert any(s.trimmed for s in sides) == (margin == 0)


def test_position_stream_moves_level_one_in_place() -> None:
    applier = run("position", capacity=DEPTH + 5, seed=3)
    assert applier.in_place_moves > 20


def test_position_stream_is_not_a_price_stream() -> None:
    """An in-place move is a new price at a position: keyed by price it would add a level."""
    book = SymbolBook("IBM", DEPTH, 0.1, 3, "position")
    texts = [book.step("10:00:00.000").text for _ in range(STEPS)]
    moves = [e for t in texts for e in parse(t, 279) if e[279] == "1" and e[290] == "1"]
    assert moves
    # An inward shift: New at 1, then Delete of the level pushed to depth + 1.
    pairs = [parse(t, 279) for t in texts if t.count("279=") == 2]
    inward = [p for p in pairs if p[0][279] == "0"]
    assert inward
    assert all(p[0][290] == "1" and p[1][279] == "2" for p in inward)
    assert all(p[1][290] == str(DEPTH + 1) for p in inward)
    outward = [p for p in pairs if p[0][279] == "2"]
    assert outward
    assert all(p[0][290] == "1" and p[1][290] == str(DEPTH) for p in outward)


@pytest.mark.parametrize("margin", [5, 0])
def test_the_fast_cycle_holds_under_the_position_model(margin: int) -> None:
    book = SymbolBook("AAPL", DEPTH, 0.1, 3, "position")
    applier = Applier("position", DEPTH + margin)
    applier.snapshot(book.snapshot_entries("09:30:00.000")[0])
    for step in symbol_cycle(book, trade_ratio=0.1, seed=3).steps:
        for e in parse(step.text, 279):
            applier.apply(e)
    assert_same(applier, book)


@pytest.mark.parametrize("seed", [1, 7])
def test_entry_id_stream_applied_by_id_is_the_venue_book(seed: int) -> None:
    applier = run("entry_id", capacity=DEPTH + 5, seed=seed)
    assert applier.renames > 10


def test_entry_ids_are_unique_per_symbol_and_never_reused() -> None:
    book = SymbolBook("NVDA", DEPTH, 0.1, 5, "entry_id")
    news: list[str] = list(book.bid_ids + book.ask_ids)
    for _ in range(STEPS):
        for e in parse(book.step("10:00:00.000").text, 279):
            if e[269] != "2" and (e[279] == "0" or 280 in e):
                news.append(e[278])
    assert len(news) == len(set(news))
    assert all(i.startswith("NVDA-") for i in news)


@pytest.mark.parametrize("model", BOOK_MODELS)
def test_the_entries_decode_as_fix44(model: BookModel) -> None:
    book = SymbolBook("AAPL", DEPTH, 0.2, 2, model)
    ticks_ = [book.step("10:00:00.000") for _ in range(500)]
    entries = decode_entries("".join(t.text for t in ticks_))
    assert len(entries) == sum(t.entries for t in ticks_)
    if model == "entry_id":
        ids = [e.md_entry_id for e in entries if e.md_entry_type != "2"]
        assert all(ids)
        assert any(e.md_entry_ref_id for e in entries)


@pytest.mark.parametrize("model", BOOK_MODELS)
def test_the_snapshot_carries_what_the_model_keys_on(model: BookModel) -> None:
    book = SymbolBook("AAPL", 5, 0.1, 2, model)
    entries = parse(book.snapshot_entries("09:30:00.000")[0], 269)
    assert len(entries) == 10
    if model == "entry_id":
        assert [e[278] for e in entries] == book.bid_ids + book.ask_ids
        assert all(290 not in e for e in entries)
    else:
        assert [e[290] for e in entries] == [str(p) for p in (1, 2, 3, 4, 5)] * 2
        assert all(278 not in e for e in entries)


def test_anchor_price_depends_on_the_symbol_only() -> None:
    low, high = (round(x * 100) for x in START_PRICE_RANGE)
    for symbol in ("AAPL", "MSFT", "IBM", "C", "S17"):
        anchors = {SymbolBook(symbol, DEPTH, 0.1, seed).anchor for seed in (1, 2, 12345)}
        anchors |= {SymbolBook(symbol, DEPTH, 0.1, 9, model).anchor for model in BOOK_MODELS}
        assert anchors == {anchor_ticks(symbol)}
        assert low <= anchor_ticks(symbol) <= high
    # The seed still drives the walk.
    one, two = (SymbolBook("AAPL", DEPTH, 0.1, seed) for seed in (1, 2))
    assert [one.step("t").text for _ in range(50)] != [two.step("t").text for _ in range(50)]


def test_anchor_prices_spread_over_the_range() -> None:
    anchors = [anchor_ticks(f"S{i}") / 100 for i in range(500)]
    low, high = START_PRICE_RANGE
    assert all(low <= a <= high for a in anchors)
    # Log-uniform: about a third below the range's geometric third points.
    below_50 = sum(a < 50 for a in anchors) / len(anchors)
    above_200 = sum(a > 200 for a in anchors) / len(anchors)
    assert 0.2 < below_50 < 0.4
    assert 0.2 < above_200 < 0.4


def test_the_model_reaches_the_market_and_bad_ones_are_refused() -> None:
    assert VenueConfig().book_model == "price"
    venue = SimulatedVenue(VenueConfig(port=0, seed=1, symbols=("AAPL",), book_model="position"))
    assert venue.market.books["AAPL"].book_model == "position"
    with pytest.raises(ValueError, match="fast stream"):
        SimulatedVenue(VenueConfig(port=0, seed=1, stream="fast", book_model="entry_id"))
    with pytest.raises(ValueError, match="book_model"):
        Market(["AAPL"], depth=10, trade_ratio=0.1, seed=1, book_model="level")  # type: ignore[arg-type]  # a bad value on purpose
