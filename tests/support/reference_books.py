"""A reference normalizer in plain Python: the price-keyed book model, as simple as it can be.

The native core (fix_session.tick_core) keeps sorted levels and the best level
incrementally; this keeps a dict per side and takes max/min on every read, so the two
are independent readings of the same rules. Tests feed both the same checked MdMessages
and compare every tick, byte for byte.

Rules (FIX 4.4 MarketDataSnapshotFullRefresh W and MarketDataIncrementalRefresh X, keyed
by price): a W replaces the symbol's book and emits its top (and its last trade, if it
has one); in an X, New and Change set a price level, Delete removes it, a trade entry
emits a trade tick at once (a deleted trade: size 0, at SendingTime), and every symbol
whose top changed emits one quote tick after the message, in the order the message
first touched them. Sequence numbers count per symbol from 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fix_session.tick_encoding import encode_fields, symbol_field
from fix_spec.md_columns import ABSENT, BID, DELETE, OFFER, TRADE, MdMessage

DAY_NS = 86_400_000_000_000
QUOTE, TRADE_TICK = 1, 2


@dataclass
class Book:
    bids: dict[int, int] = field(default_factory=dict)
    asks: dict[int, int] = field(default_factory=dict)
    published: tuple[int, int, int, int] = (0, 0, 0, 0)
    last: tuple[int, int] | None = None
    seq: int = 0

    def top(self) -> tuple[int, int, int, int]:
        bid = max(self.bids) if self.bids else 0
        ask = min(self.asks) if self.asks else 0
        return bid, self.bids.get(bid, 0), ask, self.asks.get(ask, 0)


@dataclass
class ReferenceNormalizer:
    books: dict[str, Book] = field(default_factory=dict)
    out: list[tuple[bytes, bytes]] = field(default_factory=list)

    def apply(self, md: MdMessage, ingest_ns: int) -> list[tuple[bytes, bytes]]:
        """Apply a checked W or X; its ticks as (key, encoded Tick)."""
        self.out = []
        if md.msg_type == "W":
            self._snapshot(md, ingest_ns)
        else:
            self._incremental(md, ingest_ns)
        return self.out

    def _book(self, symbol: str) -> Book:
        return self.books.setdefault(symbol, Book())

    def _snapshot(self, md: MdMessage, ingest_ns: int) -> None:
        book = self._book(md.symbol)
        book.bids.clear()
        book.asks.clear()
        trade = -1
        for i in range(md.count):
            size = 0 if md.size_e8[i] == ABSENT else md.size_e8[i]
            if md.kind[i] == BID:
                book.bids[md.px_e8[i]] = size
            elif md.kind[i] == OFFER:
                book.asks[md.px_e8[i]] = size
            elif md.kind[i] == TRADE:
                trade = i
        book.published = book.top()
        self._emit(md.symbol, QUOTE, md.sending_ns, md, ingest_ns, snapshot=True)
        if trade >= 0:
            size = md.size_e8[trade]
            book.last = (md.px_e8[trade], 0 if size == ABSENT else size)
            venue = _venue_ns(md.time_ns[trade], md.sending_ns)
            self._emit(md.symbol, TRADE_TICK, venue, md, ingest_ns, snapshot=True)

    def _incremental(self, md: MdMessage, ingest_ns: int) -> None:
        touched: list[str] = []
        for i in range(md.count):
            symbol = md.entry_symbol[i] or md.symbol
            book = self._book(symbol)
            kind, px = md.kind[i], md.px_e8[i]
            deleted = md.action[i] == DELETE
            size = 0 if md.size_e8[i] == ABSENT else md.size_e8[i]
            if kind == TRADE:
                if deleted:
                    book.last = (0 if px == ABSENT else px, 0)
                    venue = md.sending_ns
                else:
                    book.last = (px, size)
                    venue = _venue_ns(md.time_ns[i], md.sending_ns)
                self._emit(symbol, TRADE_TICK, venue, md, ingest_ns, snapshot=False)
                continue
            if kind not in (BID, OFFER):
                continue
            side = book.bids if kind == BID else book.asks
            if deleted:
                side.pop(0 if px == ABSENT else px, None)
            else:
                side[px] = size
            if symbol not in touched:
                touched.append(symbol)
        for symbol in touched:
            book = self.books[symbol]
            top = book.top()
            if top != book.published:
                book.published = top
                self._emit(symbol, QUOTE, md.sending_ns, md, ingest_ns, snapshot=False)

    def _emit(
        self, symbol: str, kind: int, venue_ns: int, md: MdMessage, ingest_ns: int, *, snapshot: bool
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
        self.out.append((symbol.encode(), value))


def _venue_ns(time_ns: int, sending_ns: int) -> int:
    if time_ns == ABSENT:
        return sending_ns
    return sending_ns - sending_ns % DAY_NS + time_ns
