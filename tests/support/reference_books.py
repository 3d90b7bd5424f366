"""A reference normalizer in plain Python: the three book models, as simple as they can be.

The native core (fix_session.tick_core) keeps its books in fixed arrays and the best level
incrementally; this keeps a plain list per side and scans it on every read, so the two are
independent readings of the same rules (docs/book-models.md). Tests feed both the same
checked MdMessages and compare every tick, byte for byte, and the books, faults and
invalid symbols after every message.

Rules (FIX 4.4 MarketDataSnapshotFullRefresh W and MarketDataIncrementalRefresh X): a W
empties the symbol's book, ends its fault state, applies its bid and offer entries as New
entries under the model, and emits its top (and its last trade, if it has one); in an X,
each bid or offer entry is applied under the model (`price`, `position` or `entry_id`),
an entry that faults is not applied, a trade entry emits a trade tick at once (a deleted
trade: size 0, at SendingTime), and after the message every symbol a bid or offer entry
touched is checked for a crossed or locked book, then emits one quote tick when its top or
its invalid flag changed, in the order the message first touched them. Each side keeps at
most `capacity` levels; what falls past it is trimmed (counted), and after a trim, until
the next W, a change or delete naming a level the side does not hold is ignored instead of
a fault. Every tick of an invalid symbol (from its first fault to its next W) carries
`book_invalid` (field 16). Sequence numbers count per symbol from 1. With `depth` N > 0,
every quote tick also carries the first N price levels of each side (`bid_levels`,
`ask_levels`; entries at one price summed in the entry_id model), encoded here by
protobuf itself, and a quote tick goes out when any of them changed too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fix_session.tick_encoding import encode_fields, symbol_field
from fix_spec.md_columns import ABSENT, BID, DELETE, NEW, OFFER, TRADE, MdMessage
from proto import mdfeed_pb2 as pb

DAY_NS = 86_400_000_000_000
QUOTE, TRADE_TICK = 1, 2
MODELS = ("price", "position", "entry_id")
#: Fault reasons (docs/book-models.md), as the normalizer counts them.
REASONS = (
    "missing_level",
    "position_gap",
    "beyond_depth",
    "no_position",
    "duplicate_id",
    "no_entry_id",
    "crossed",
    "locked",
)
#: Tick field 16 (bool book_invalid) set: tag 16 << 3 | 0 as a varint, then true; appended
#: to an encoded tick, as fields 14 and 15 are never set on the tick path.
BOOK_INVALID = b"\x80\x01\x01"


@dataclass
class Level:
    """One level (price, position models) or one entry (entry_id model)."""

    px: int
    size: int
    ident: str = ""


@dataclass
class Side:
    bid: bool
    levels: list[Level] = field(default_factory=list)
    #: A level fell past the capacity since the symbol's last snapshot.
    trimmed: bool = False

    def better(self, a: int, b: int) -> bool:
        """Price `a` is strictly better than `b` on this side."""
        return a > b if self.bid else a < b

    def place(self, px: int) -> int:
        """Where a new level at `px` goes: after every level as good as it."""
        for i, level in enumerate(self.levels):
            if self.better(px, level.px):
                return i
        return len(self.levels)

    def find_px(self, px: int) -> int:
        for i, level in enumerate(self.levels):
            if level.px == px:
                return i
        return -1

    def find_id(self, ident: str) -> int:
        for i, level in enumerate(self.levels):
            if level.ident == ident:
                return i
        return -1


@dataclass
class Book:
    bids: Side = field(default_factory=lambda: Side(bid=True))
    asks: Side = field(default_factory=lambda: Side(bid=False))
    published: tuple[int, int, int, int] = (0, 0, 0, 0)
    published_invalid: bool = False
    #: With depth: the (bids, asks) price levels the last quote tick carried.
    published_depth: tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]] = ((), ())
    invalid: bool = False
    last: tuple[int, int] | None = None
    seq: int = 0

    def top(self, aggregate: bool = False) -> tuple[int, int, int, int]:
        """(bid px, bid size, ask px, ask size): each side's first level, 0 when empty; with
        `aggregate` (entry_id) the size is that of every entry at the best price."""
        bid, bid_size = _best(self.bids, aggregate)
        ask, ask_size = _best(self.asks, aggregate)
        return bid, bid_size, ask, ask_size


def _view(side: Side, aggregate: bool, n: int) -> tuple[tuple[int, int], ...]:
    """The side's first `n` price levels; with `aggregate`, entries at one price summed."""
    levels: list[tuple[int, int]] = []
    for level in side.levels:
        if aggregate and levels and levels[-1][0] == level.px:
            levels[-1] = (level.px, levels[-1][1] + level.size)
        else:
            levels.append((level.px, level.size))
    return tuple(levels[:n])


def _best(side: Side, aggregate: bool) -> tuple[int, int]:
    if not side.levels:
        return 0, 0
    px = side.levels[0].px
    if not aggregate:
        return px, side.levels[0].size
    return px, sum(level.size for level in side.levels if level.px == px)


@dataclass
class ReferenceNormalizer:
    book_model: str = "price"
    capacity: int = 15
    locked_ok: bool = False
    #: Price levels a side each quote tick carries; 0: the top of book only.
    depth: int = 0
    books: dict[str, Book] = field(default_factory=dict)
    #: The message's ticks as (key, encoded fields 1-15, encoded depth fields 17-18).
    out: list[tuple[bytes, bytes, bytes]] = field(default_factory=list)
    #: Faults counted per reason (only reasons that occurred).
    faults: dict[str, int] = field(default_factory=dict)
    levels_trimmed: int = 0
    #: Symbols whose book is invalid: from a fault to the symbol's next snapshot.
    invalid: set[str] = field(default_factory=set)
    #: Symbols needing a snapshot (here: the invalid ones; a W clears it).
    stale: set[str] = field(default_factory=set)
    #: (symbol, reason) of each symbol's first fault since it became invalid, not yet taken.
    fault_log: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.book_model not in MODELS:
            raise ValueError(f"book model {self.book_model!r} is not one of {MODELS}")
        if self.capacity < 1:
            raise ValueError("capacity must be at least 1")

    # -- reading ---------------------------------------------------------------------

    def book(self, symbol: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """(bids, asks): the held levels (entries, in the entry_id model) best first."""
        book = self.books.get(symbol)
        if book is None:
            return [], []
        return (
            [(level.px, level.size) for level in book.bids.levels],
            [(level.px, level.size) for level in book.asks.levels],
        )

    def take_faults(self) -> list[tuple[str, str]]:
        taken, self.fault_log = self.fault_log, []
        return taken

    # -- applying --------------------------------------------------------------------

    def apply(self, md: MdMessage, ingest_ns: int) -> list[tuple[bytes, bytes]]:
        """Apply a checked W or X; its ticks as (key, encoded Tick)."""
        self.out = []
        if md.msg_type == "W":
            self._snapshot(md, ingest_ns)
        else:
            self._incremental(md, ingest_ns)
        # Every tick of a symbol invalid after the message is flagged, those of the message
        # that made it invalid too (a trade before the faulting entry, say); field 16 goes
        # between the first fifteen and the depth's 17 and 18.
        return [
            (key, value + (BOOK_INVALID if key.decode() in self.invalid else b"") + depth)
            for key, value, depth in self.out
        ]

    def _depth_view(
        self, book: Book
    ) -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]:
        aggregate = self.book_model == "entry_id"
        return _view(book.bids, aggregate, self.depth), _view(book.asks, aggregate, self.depth)

    def _book(self, symbol: str) -> Book:
        return self.books.setdefault(symbol, Book())

    def _snapshot(self, md: MdMessage, ingest_ns: int) -> None:
        symbol = md.symbol
        book = self._book(symbol)
        book.bids = Side(bid=True)
        book.asks = Side(bid=False)
        book.invalid = False
        self.invalid.discard(symbol)
        self.stale.discard(symbol)
        trade = -1
        for i in range(md.count):
            kind = md.kind[i]
            if kind in (BID, OFFER):
                self._entry(md, i, symbol, book, snapshot=True)
            elif kind == TRADE:
                trade = i
        self._check_integrity(symbol, book)
        book.published = book.top(self.book_model == "entry_id")
        book.published_invalid = book.invalid
        book.published_depth = self._depth_view(book)
        self._emit(symbol, QUOTE, md.sending_ns, md, ingest_ns, snapshot=True)
        if trade >= 0:
            size = md.size_e8[trade]
            book.last = (md.px_e8[trade], 0 if size == ABSENT else size)
            venue = _venue_ns(md.time_ns[trade], md.sending_ns)
            self._emit(symbol, TRADE_TICK, venue, md, ingest_ns, snapshot=True)

    def _incremental(self, md: MdMessage, ingest_ns: int) -> None:
        touched: list[str] = []
        for i in range(md.count):
            symbol = md.entry_symbol[i] or md.symbol
            book = self._book(symbol)
            kind, px = md.kind[i], md.px_e8[i]
            if kind == TRADE:
                if md.action[i] == DELETE:
                    book.last = (0 if px == ABSENT else px, 0)
                    venue = md.sending_ns
                else:
                    size = 0 if md.size_e8[i] == ABSENT else md.size_e8[i]
                    book.last = (px, size)
                    venue = _venue_ns(md.time_ns[i], md.sending_ns)
                self._emit(symbol, TRADE_TICK, venue, md, ingest_ns, snapshot=False)
                continue
            if kind not in (BID, OFFER):
                continue
            if symbol not in touched:
                touched.append(symbol)
            self._entry(md, i, symbol, book, snapshot=False)
        for symbol in touched:
            book = self.books[symbol]
            self._check_integrity(symbol, book)
            top = book.top(self.book_model == "entry_id")
            depth = self._depth_view(book)
            if (
                top != book.published
                or book.invalid != book.published_invalid
                or depth != book.published_depth
            ):
                book.published = top
                book.published_invalid = book.invalid
                book.published_depth = depth
                self._emit(symbol, QUOTE, md.sending_ns, md, ingest_ns, snapshot=False)

    def _entry(self, md: MdMessage, i: int, symbol: str, book: Book, *, snapshot: bool) -> None:
        """Apply bid or offer entry `i` under the model; a fault leaves the book as it was."""
        side = book.bids if md.kind[i] == BID else book.asks
        action = NEW if snapshot else md.action[i]
        size = 0 if md.size_e8[i] == ABSENT else md.size_e8[i]
        if self.book_model == "price":
            reason = self._price(side, action, md.px_e8[i], size)
        elif self.book_model == "position":
            position = md.position_no[i]
            if position == ABSENT:
                position = md.price_level[i]
            if position == ABSENT and snapshot:
                position = len(side.levels) + 1
            reason = self._position(side, action, position, md.px_e8[i], size)
        else:
            ids = md.entry_id[i], md.ref_id[i]
            reason = self._entry_id(book, side, action, ids, px=md.px_e8[i], size=size)
        if reason:
            self._fault(symbol, book, reason)

    def _trim(self, side: Side) -> None:
        while len(side.levels) > self.capacity:
            side.levels.pop()
            side.trimmed = True
            self.levels_trimmed += 1

    def _insert(self, side: Side, level: Level) -> None:
        """Insert in price order after the levels as good; past the capacity, trimmed."""
        side.levels.insert(side.place(level.px), level)
        self._trim(side)

    def _missing(self, side: Side) -> str:
        """A change or delete names a level the side does not hold: after a trim it may
        name a trimmed level (ignored), else a fault."""
        return "" if side.trimmed else "missing_level"

    def _price(self, side: Side, action: int, px: int, size: int) -> str:
        at = side.find_px(0 if px == ABSENT else px)
        if action == DELETE:
            if at < 0:
                return self._missing(side)
            del side.levels[at]
        elif at >= 0:
            side.levels[at].size = size
        else:
            self._insert(side, Level(px, size))
        return ""

    def _position(self, side: Side, action: int, position: int, px: int, size: int) -> str:
        if position == ABSENT:
            return "no_position"
        count = len(side.levels)
        if action == NEW:
            if position > self.capacity:  # past count + 1 as well: beyond_depth first
                return "beyond_depth"
            if position < 1 or position > count + 1:
                return "position_gap"
            side.levels.insert(position - 1, Level(px, size))
            self._trim(side)
            return ""
        if position < 1 or position > count:
            return self._missing(side)
        if action == DELETE:
            del side.levels[position - 1]
        else:
            side.levels[position - 1] = Level(px, size)
        return ""

    def _entry_id(
        self, book: Book, side: Side, action: int, ids: tuple[str, str], *, px: int, size: int
    ) -> str:
        entry_id, ref_id = ids
        if not entry_id and not ref_id:
            return "no_entry_id"
        if action == NEW:
            # A New is keyed by its MDEntryID: one with only an MDEntryRefID has no id.
            if not entry_id:
                return "no_entry_id"
            if book.bids.find_id(entry_id) >= 0 or book.asks.find_id(entry_id) >= 0:
                return "duplicate_id"
            self._insert(side, Level(px, size, entry_id))
            return ""
        at = side.find_id(ref_id or entry_id)
        if at < 0:
            return self._missing(side)
        if action == DELETE:
            del side.levels[at]
            return ""
        level = side.levels[at]
        ident = level.ident
        if entry_id and ref_id and entry_id != ref_id:
            # Renamed: the new id must not be held already, on either side.
            if book.bids.find_id(entry_id) >= 0 or book.asks.find_id(entry_id) >= 0:
                return "duplicate_id"
            ident = entry_id
        if px == level.px:  # the same price: it keeps its place (its time priority)
            side.levels[at] = Level(px, size, ident)
        else:
            del side.levels[at]
            self._insert(side, Level(px, size, ident))
        return ""

    def _check_integrity(self, symbol: str, book: Book) -> None:
        if not book.bids.levels or not book.asks.levels:
            return
        bid, ask = book.bids.levels[0].px, book.asks.levels[0].px
        if bid > ask:
            self._fault(symbol, book, "crossed")
        elif bid == ask and not self.locked_ok:
            self._fault(symbol, book, "locked")

    def _fault(self, symbol: str, book: Book, reason: str) -> None:
        self.faults[reason] = self.faults.get(reason, 0) + 1
        if not book.invalid:
            book.invalid = True
            self.invalid.add(symbol)
            self.stale.add(symbol)
            self.fault_log.append((symbol, reason))

    def _emit(
        self,
        symbol: str,
        kind: int,
        venue_ns: int,
        md: MdMessage,
        ingest_ns: int,
        *,
        snapshot: bool,
    ) -> None:
        book = self.books[symbol]
        book.seq += 1
        bid, bid_size, ask, ask_size = book.published
        last_px, last_size = book.last or (0, 0)
        value = encode_fields(
            symbol_field(symbol),
            seq=book.seq,
            kind=kind,
            has_bid=bid != 0,
            bid_px_e8=bid,
            bid_size_e8=bid_size,
            has_ask=ask != 0,
            ask_px_e8=ask,
            ask_size_e8=ask_size,
            has_last=book.last is not None,
            last_px_e8=last_px,
            last_size_e8=last_size,
            venue_time_ns=venue_ns,
            ingest_time_ns=ingest_ns,
            fix_msg_seq_num=md.seq_num,
            from_snapshot=snapshot,
        )
        levels = b""
        if kind == QUOTE and self.depth:
            bids, asks = book.published_depth
            levels = pb.Tick(
                bid_levels=[pb.BookLevel(px_e8=px, size_e8=size) for px, size in bids],
                ask_levels=[pb.BookLevel(px_e8=px, size_e8=size) for px, size in asks],
            ).SerializeToString()
        self.out.append((symbol.encode(), value, levels))


def _venue_ns(time_ns: int, sending_ns: int) -> int:
    if time_ns == ABSENT:
        return sending_ns
    return sending_ns - sending_ns % DAY_NS + time_ns
