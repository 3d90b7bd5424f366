"""From decoded FIX market data to sequenced proto Ticks.

`BookNormalizer` keeps a price-level book per symbol, applies snapshots (W) and increments
(X: new, change, delete), and emits a Tick whenever a symbol's top of book changes and for
every trade. Each symbol's ticks carry a sequence number that is contiguous for the life of
the normalizer (1, 2, 3, ...), also across reconnects: a fresh snapshot after a reconnect
continues the sequence with `from_snapshot` set, so a consumer sees a resync, never a
sequence that goes back.

Bad input loses nothing that is good: a message with an invalid entry (a price that is not
positive, a size below zero, a price finer than 10^-8, an entry without a symbol or price)
or an entry for a symbol that was not subscribed, is rejected whole and counted, the books
stay as they were, and the symbols it touched are reported as needing a fresh snapshot
(`stale`), since the venue's view of their book has moved on without us.

Prices become integers scaled by 10^8 (see proto/mdfeed.proto).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from proto import mdfeed_pb2 as pb

_E8 = 8
_BID, _OFFER, _TRADE = "0", "1", "2"
_NEW, _CHANGE, _DELETE = "0", "1", "2"
_scaled_cache: dict[Decimal, int] = {}


class InvalidEntryError(ValueError):
    """An entry cannot be applied; the message says which and why."""


def scaled(value: Decimal) -> int:
    """A price or size as an integer number of 10^-8 units; exact or InvalidEntryError."""
    cached = _scaled_cache.get(value)
    if cached is not None:
        return cached
    shifted = value.scaleb(_E8)
    as_int = int(shifted)
    if as_int != shifted:
        raise InvalidEntryError(f"{value} has more than {_E8} decimal places")
    if len(_scaled_cache) >= 1 << 16:
        _scaled_cache.clear()
    _scaled_cache[value] = as_int
    return as_int


@dataclass(slots=True)
class _Book:
    bids: dict[int, int] = field(default_factory=dict)  # price_e8 -> size_e8
    asks: dict[int, int] = field(default_factory=dict)
    best_bid: tuple[int, int] | None = None
    best_ask: tuple[int, int] | None = None
    last: tuple[int, int] | None = None
    seq: int = 0

    def refresh_top(self) -> bool:
        """Recompute the best levels; True when the top of book changed."""
        bid = max(self.bids.items()) if self.bids else None
        ask = min(self.asks.items()) if self.asks else None
        changed = bid != self.best_bid or ask != self.best_ask
        self.best_bid, self.best_ask = bid, ask
        return changed


@dataclass(slots=True)
class NormalizerStats:
    snapshots: int = 0
    increments: int = 0
    entries: int = 0
    quotes_out: int = 0
    trades_out: int = 0
    rejected_messages: int = 0
    unknown_symbol_rejects: int = 0


@dataclass(frozen=True, slots=True)
class _Entry:
    action: str
    kind: str
    symbol: str
    price: int
    size: int
    time_of_day: str | None  # MDEntryTime, read only for trades


class BookNormalizer:
    """Applies W/X/Y messages to per-symbol books and emits sequenced Ticks."""

    def __init__(self, *, symbols: Iterable[str] = ()) -> None:
        #: When given, entries for any other symbol are invalid (nobody subscribed to it).
        self._allowed = frozenset(symbols)
        self._books: dict[str, _Book] = {}
        self.stats = NormalizerStats()
        #: Symbols the venue rejected (MarketDataRequestReject), with its reason.
        self.unavailable: dict[str, str] = {}
        #: Symbols whose book missed an update: they need a fresh snapshot.
        self.stale: set[str] = set()

    # -- reading the typed messages --------------------------------------------

    def _entries(self, entries: Iterable[Any], symbol: str | None) -> list[_Entry]:
        out = []
        for e in entries:
            kind = e.md_entry_type
            sym = getattr(e, "symbol", None) or symbol
            if sym is None:
                raise InvalidEntryError("entry without a symbol")
            if self._allowed and sym not in self._allowed:
                raise InvalidEntryError(f"{sym}: not a subscribed symbol")
            if kind is None:
                raise InvalidEntryError(f"{sym}: entry without MDEntryType")
            # Snapshot entries have no MDUpdateAction: they are all "new".
            action = str(getattr(e, "md_update_action", None) or _NEW)
            px, sz = e.md_entry_px, e.md_entry_size
            if action == _DELETE:
                price = scaled(px) if px is not None else 0
                out.append(_Entry(action, str(kind), sym, price, 0, None))
                continue
            if px is None:
                raise InvalidEntryError(f"{sym}: entry without MDEntryPx")
            price = scaled(px)
            if price <= 0:
                raise InvalidEntryError(f"{sym}: price {px} is not positive")
            size = scaled(sz) if sz is not None else 0
            if size < 0:
                raise InvalidEntryError(f"{sym}: size {sz} is negative")
            out.append(_Entry(action, str(kind), sym, price, size, e.md_entry_time))
        return out

    # -- messages ----------------------------------------------------------------

    def on_snapshot(self, message: Any, fix_seq: int, ingest_ns: int) -> list[pb.Tick]:
        """A full refresh (W): replace the symbol's book, emit its top (and last trade)."""
        symbol: str | None = message.symbol
        sending_ns: int = message.header.sending_time
        try:
            if symbol is None:
                raise InvalidEntryError("full refresh without a symbol")
            entries = self._entries(message.no_md_entries, symbol)
        except InvalidEntryError:
            self.stats.rejected_messages += 1
            if symbol is not None:
                self.stale.add(symbol)
            raise
        self.stats.snapshots += 1
        self.stats.entries += len(entries)
        book = self._books.get(symbol)
        if book is None:
            book = self._books[symbol] = _Book()
        book.bids.clear()
        book.asks.clear()
        trade: _Entry | None = None
        for entry in entries:
            if entry.kind == _BID:
                book.bids[entry.price] = entry.size
            elif entry.kind == _OFFER:
                book.asks[entry.price] = entry.size
            elif entry.kind == _TRADE:
                trade = entry
        book.refresh_top()
        self.stale.discard(symbol)
        self.unavailable.pop(symbol, None)
        ticks = [self._quote(symbol, book, sending_ns, ingest_ns, fix_seq, snapshot=True)]
        if trade is not None:
            ticks.append(self._trade(trade, book, sending_ns, ingest_ns, fix_seq, snapshot=True))
        return ticks

    def on_incremental(self, message: Any, fix_seq: int, ingest_ns: int) -> list[pb.Tick]:
        """An incremental refresh (X): apply every entry, then emit what changed.

        A message with an invalid entry is rejected whole (InvalidEntryError) and nothing
        of it is applied; the symbols it names are marked stale.
        """
        sending_ns: int = message.header.sending_time
        try:
            entries = self._entries(message.no_md_entries, None)
        except InvalidEntryError:
            self.stats.rejected_messages += 1
            self.stale.update(
                s
                for e in message.no_md_entries
                if (s := getattr(e, "symbol", None)) and (not self._allowed or s in self._allowed)
            )
            raise
        self.stats.increments += 1
        self.stats.entries += len(entries)
        ticks: list[pb.Tick] = []
        touched: dict[str, _Book] = {}
        books = self._books
        for entry in entries:
            book = books.get(entry.symbol)
            if book is None:
                # An increment before any snapshot: start from it; a snapshot will follow.
                book = books[entry.symbol] = _Book()
            if entry.kind == _TRADE:
                ticks.append(self._trade(entry, book, sending_ns, ingest_ns, fix_seq))
                continue
            side = book.bids if entry.kind == _BID else book.asks
            if entry.kind not in (_BID, _OFFER):
                continue  # other entry types (index value, imbalance, ...) are not quoted
            if entry.action == _DELETE:
                side.pop(entry.price, None)
            else:
                side[entry.price] = entry.size
            touched[entry.symbol] = book
        for symbol, book in touched.items():
            if book.refresh_top():
                ticks.append(self._quote(symbol, book, sending_ns, ingest_ns, fix_seq))
        return ticks

    def on_reject(self, symbols: Iterable[str], reason: str) -> None:
        """A MarketDataRequestReject (Y): the symbols are unavailable until a snapshot."""
        self.stats.unknown_symbol_rejects += 1
        for symbol in symbols:
            self.unavailable[symbol] = reason

    # -- state -------------------------------------------------------------------

    def top(self, symbol: str) -> tuple[int | None, int | None, int | None]:
        """(best bid, best ask, last trade) prices of a symbol, scaled by 10^8."""
        book = self._books.get(symbol)
        if book is None:
            return None, None, None
        return (
            book.best_bid[0] if book.best_bid else None,
            book.best_ask[0] if book.best_ask else None,
            book.last[0] if book.last else None,
        )

    @property
    def symbols(self) -> list[str]:
        return sorted(self._books)

    def sequence(self, symbol: str) -> int:
        """The last sequence number given to `symbol` (0: none yet)."""
        book = self._books.get(symbol)
        return book.seq if book else 0

    # -- ticks -------------------------------------------------------------------

    def _quote(
        self,
        symbol: str,
        book: _Book,
        venue_ns: int,
        ingest_ns: int,
        fix_seq: int,
        *,
        snapshot: bool = False,
    ) -> pb.Tick:
        self.stats.quotes_out += 1
        return _tick(
            symbol,
            book,
            pb.TICK_KIND_QUOTE,
            venue_ns,
            ingest_ns=ingest_ns,
            fix_seq=fix_seq,
            snapshot=snapshot,
        )

    def _trade(
        self,
        entry: _Entry,
        book: _Book,
        sending_ns: int,
        ingest_ns: int,
        fix_seq: int,
        *,
        snapshot: bool = False,
    ) -> pb.Tick:
        book.last = (entry.price, entry.size)
        self.stats.trades_out += 1
        venue_ns = _entry_time(entry.time_of_day, sending_ns)
        return _tick(
            entry.symbol,
            book,
            pb.TICK_KIND_TRADE,
            venue_ns,
            ingest_ns=ingest_ns,
            fix_seq=fix_seq,
            snapshot=snapshot,
        )


def _tick(
    symbol: str,
    book: _Book,
    kind: pb.TickKind.ValueType,
    venue_ns: int,
    *,
    ingest_ns: int,
    fix_seq: int,
    snapshot: bool,
) -> pb.Tick:
    """The next tick of `symbol`: the book's top and last trade after this event."""
    book.seq += 1
    tick = pb.Tick(
        symbol=symbol,
        seq=book.seq,
        kind=kind,
        venue_time_ns=venue_ns,
        ingest_time_ns=ingest_ns,
        fix_msg_seq_num=fix_seq,
        from_snapshot=snapshot,
    )
    if book.best_bid is not None:
        tick.bid_px_e8, tick.bid_size_e8 = book.best_bid
    if book.best_ask is not None:
        tick.ask_px_e8, tick.ask_size_e8 = book.best_ask
    if book.last is not None:
        tick.last_px_e8, tick.last_size_e8 = book.last
    return tick


_DAY_NS = 86_400_000_000_000


def _entry_time(time_of_day: str | None, sending_ns: int) -> int:
    """MDEntryTime (UTC time of day, validated by the codec) on SendingTime's day, in ns."""
    if not time_of_day:
        return sending_ns
    h, m, rest = time_of_day.split(":")
    seconds, _, frac = rest.partition(".")
    ns = ((int(h) * 60 + int(m)) * 60 + int(seconds)) * 1_000_000_000
    if frac:
        ns += int(frac) * 10 ** (9 - len(frac))
    return sending_ns - sending_ns % _DAY_NS + ns
