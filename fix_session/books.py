"""Per-symbol book models for the normalizer.

A book model keeps one symbol's book from applied entries and answers its top of book. The
normalizer asks a book for three things only: `clear` (a snapshot replaces it), `set_level`
and `delete_level` (the entries of W and X), and `publish` (after a message: has the top
changed since the last tick?), then reads the published top and the last trade when it
writes a tick. Another model (full depth by MDEntryPositionNo, order by order by
MDEntryID/MDEntryRefID) keeps its own levels behind the same calls.

Prices are positive integers of 10^-8 (the normalizer rejects any other before a book sees
it), so a best price of 0 means that side of the book is empty.
"""

from __future__ import annotations

from typing import Final

from fix_spec.md_columns import BID

from .tick_encoding import symbol_field

#: A side's best price when the side is empty.
EMPTY: Final = 0


class PriceLevelBook:
    """One symbol's book as price levels (price -> size per side), the best level of each
    side kept as entries arrive: a better level replaces it, deleting it searches the side.

    Two tops are kept: the live best levels, moved by every entry, and the published top
    that the symbol's ticks carry, which `publish` moves to the live one after a message,
    so a trade inside a message carries the top its quote tick has not yet announced.
    """

    symbol: str
    #: The Kafka key (the symbol's UTF-8 bytes) and the Tick's encoded field 1.
    key: bytes
    head: bytes
    bids: dict[int, int]
    asks: dict[int, int]
    bid_px: int
    bid_size: int
    ask_px: int
    ask_size: int
    #: The published top (EMPTY price: that side was empty).
    pub_bid_px: int
    pub_bid_size: int
    pub_ask_px: int
    pub_ask_size: int
    has_last: bool
    last_px: int
    last_size: int
    #: The last sequence number given to the symbol's ticks.
    seq: int
    #: The normalizer's message counter when this book was last touched by a quote entry.
    mark: int

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.key = symbol.encode()
        self.head = symbol_field(symbol)
        self.bids = {}
        self.asks = {}
        self.bid_px = self.bid_size = self.ask_px = self.ask_size = EMPTY
        self.pub_bid_px = self.pub_bid_size = self.pub_ask_px = self.pub_ask_size = EMPTY
        self.has_last = False
        self.last_px = self.last_size = 0
        self.seq = 0
        self.mark = 0

    def clear(self) -> None:
        """Empty both sides (the published top stays until `publish`)."""
        self.bids.clear()
        self.asks.clear()
        self.bid_px = self.bid_size = self.ask_px = self.ask_size = EMPTY

    def set_level(self, kind: int, px: int, size: int) -> None:
        """A new or changed level: `kind` is BID or OFFER, `px` positive."""
        if kind == BID:
            self.bids[px] = size
            if px >= self.bid_px:
                self.bid_px = px
                self.bid_size = size
        else:
            self.asks[px] = size
            if self.ask_px == EMPTY or px <= self.ask_px:
                self.ask_px = px
                self.ask_size = size

    def delete_level(self, kind: int, px: int) -> None:
        """A deleted level; deleting a price that is not in the book changes nothing."""
        if kind == BID:
            if self.bids.pop(px, None) is not None and px == self.bid_px:
                self.bid_px, self.bid_size = _best(self.bids, True)
        elif self.asks.pop(px, None) is not None and px == self.ask_px:
            self.ask_px, self.ask_size = _best(self.asks, False)

    def set_last(self, px: int, size: int) -> None:
        self.has_last = True
        self.last_px = px
        self.last_size = size

    def publish(self) -> bool:
        """Make the live top the published one; True when it differs from the last."""
        if (
            self.bid_px == self.pub_bid_px
            and self.bid_size == self.pub_bid_size
            and self.ask_px == self.pub_ask_px
            and self.ask_size == self.pub_ask_size
        ):
            return False
        self.pub_bid_px = self.bid_px
        self.pub_bid_size = self.bid_size
        self.pub_ask_px = self.ask_px
        self.pub_ask_size = self.ask_size
        return True


def _best(side: dict[int, int], highest: bool) -> tuple[int, int]:
    """The best (price, size) of a side: highest or lowest price; (EMPTY, EMPTY) if none."""
    if not side:
        return EMPTY, EMPTY
    px = max(side) if highest else min(side)
    return px, side[px]
