"""From decoded FIX market data to sequenced, encoded Ticks.

`BookNormalizer` keeps a book per symbol (`fix_session.books`), applies snapshots (W) and
increments (X: new, change, delete), and emits a Tick whenever a symbol's top of book
changes and for every trade. Each symbol's ticks carry a sequence number that is contiguous
for the life of the normalizer (1, 2, 3, ...), also across reconnects: a fresh snapshot
after a reconnect continues the sequence with `from_snapshot` set, so a consumer sees a
resync, never a sequence that goes back.

The tick path calls `on_message` once per decoded message (a `fix_spec.md_columns.
MdMessage`): it appends each tick's Kafka key (the symbol's UTF-8 bytes) and its encoded
Tick (proto/mdfeed.proto, `fix_session.tick_encoding`) to two lists, with no Tick object
and no object per entry on the way. `on_snapshot` and `on_incremental` take the typed
messages instead and return `pb.Tick` objects, for tests and adapters.

Bad input loses nothing that is good: a message with an invalid entry (a price that is not
positive, a size below zero, a price or size finer than 10^-8 or beyond int64, an entry
without a symbol, type or price) or an entry for a symbol that was not subscribed, is
rejected whole and counted, the books stay as they were, and the symbols it touched are
reported as needing a fresh snapshot (`stale`), since the venue's view of their book has
moved on without us.

Prices become integers scaled by 10^8 (see proto/mdfeed.proto).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any, Final

from fix_spec.md_columns import ABSENT, BID, DELETE, OFFER, TRADE, MdMessage
from fix_spec.md_from_typed import columns_from_typed
from proto import mdfeed_pb2 as pb

from .books import PriceLevelBook
from .tick_encoding import encode_fields

_E8: Final = 8
_DAY_NS: Final = 86_400_000_000_000
_QUOTE: Final = 1  # pb.TICK_KIND_QUOTE
_TRADE_TICK: Final = 2  # pb.TICK_KIND_TRADE
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


class NormalizerStats:
    """Counters of what the normalizer took in and emitted."""

    snapshots: int
    increments: int
    entries: int
    quotes_out: int
    trades_out: int
    rejected_messages: int
    unknown_symbol_rejects: int

    def __init__(self) -> None:
        self.snapshots = 0
        self.increments = 0
        self.entries = 0
        self.quotes_out = 0
        self.trades_out = 0
        self.rejected_messages = 0
        self.unknown_symbol_rejects = 0


class BookNormalizer:
    """Applies W/X/Y messages to per-symbol books and emits sequenced Ticks."""

    def __init__(self, *, symbols: Iterable[str] = ()) -> None:
        #: When given, entries for any other symbol are invalid (nobody subscribed to it).
        self._allowed: frozenset[str] = frozenset(symbols)
        self._restricted = bool(self._allowed)
        self._books: dict[str, PriceLevelBook] = {}
        self.stats = NormalizerStats()
        #: Symbols the venue rejected (MarketDataRequestReject), with its reason.
        self.unavailable: dict[str, str] = {}
        #: Symbols whose book missed an update: they need a fresh snapshot.
        self.stale: set[str] = set()
        self._touched: list[PriceLevelBook] = []
        self._message_count = 0

    # -- the tick path -----------------------------------------------------------

    def on_message(
        self, md: MdMessage, ingest_ns: int, keys: list[bytes], values: list[bytes]
    ) -> None:
        """Apply one decoded W or X and append its ticks, in order, to `keys` (the symbol's
        UTF-8 bytes, the Kafka key) and `values` (the encoded Tick).

        A W's ticks all have `from_snapshot` set, an X's none. A Y carries no ticks and is
        left to the caller, which knows which symbols its MDReqID stands for (`on_reject`).
        A message with an invalid entry raises InvalidEntryError, appends nothing and
        applies nothing; the symbols it names are marked `stale`. Any other MsgType is a
        ValueError.
        """
        msg_type = md.msg_type
        if msg_type == "X":
            self._incremental(md, ingest_ns, keys, values)
        elif msg_type == "W":
            self._snapshot(md, ingest_ns, keys, values)
        elif msg_type != "Y":
            raise ValueError(f"MsgType {msg_type!r} is not market data (W, X or Y)")

    # -- the typed messages --------------------------------------------------------

    def on_snapshot(self, message: Any, fix_seq: int, ingest_ns: int) -> list[pb.Tick]:
        """A typed full refresh (W): replace the symbol's book, return its top (and last
        trade) as Ticks."""
        return self._typed(message, "W", fix_seq, ingest_ns)

    def on_incremental(self, message: Any, fix_seq: int, ingest_ns: int) -> list[pb.Tick]:
        """A typed incremental refresh (X): apply every entry, return what changed.

        A message with an invalid entry is rejected whole (InvalidEntryError) and nothing
        of it is applied; the symbols it names are marked stale.
        """
        return self._typed(message, "X", fix_seq, ingest_ns)

    def _typed(self, message: Any, msg_type: str, fix_seq: int, ingest_ns: int) -> list[pb.Tick]:
        if msg_type != message.MSG_TYPE:
            raise ValueError(f"expected a {msg_type} message, not {message.MSG_TYPE}")
        md = columns_from_typed(message)
        md.seq_num = fix_seq
        keys: list[bytes] = []
        values: list[bytes] = []
        self.on_message(md, ingest_ns, keys, values)
        return [pb.Tick.FromString(value) for value in values]

    def on_reject(self, symbols: Iterable[str], reason: str) -> None:
        """A MarketDataRequestReject (Y): the symbols are unavailable until a snapshot."""
        self.stats.unknown_symbol_rejects += 1
        for symbol in symbols:
            self.unavailable[symbol] = reason

    # -- messages ----------------------------------------------------------------

    def _check(self, md: MdMessage, fallback: str) -> None:
        """Raise InvalidEntryError for the message's first entry that cannot be applied."""
        if md.invalid:
            raise InvalidEntryError(f"{md.invalid} (more than 8 decimal places, or beyond int64)")
        allowed = self._allowed
        restricted = self._restricted
        symbols = md.entry_symbol
        kinds = md.kind
        actions = md.action
        prices = md.px_e8
        sizes = md.size_e8
        for i in range(md.count):
            symbol = symbols[i] or fallback
            if not symbol:
                raise InvalidEntryError("entry without a symbol")
            if restricted and symbol not in allowed:
                raise InvalidEntryError(f"{symbol}: not a subscribed symbol")
            if kinds[i] == ABSENT:
                raise InvalidEntryError(f"{symbol}: entry without MDEntryType")
            if actions[i] == DELETE:
                continue
            px = prices[i]
            if px == ABSENT:
                raise InvalidEntryError(f"{symbol}: entry without MDEntryPx")
            if px <= 0:
                raise InvalidEntryError(f"{symbol}: price {_e8_text(px)} is not positive")
            size = sizes[i]
            if size != ABSENT and size < 0:
                raise InvalidEntryError(f"{symbol}: size {_e8_text(size)} is negative")

    def _snapshot(
        self, md: MdMessage, ingest_ns: int, keys: list[bytes], values: list[bytes]
    ) -> None:
        symbol = md.symbol
        stats = self.stats
        try:
            if not symbol:
                raise InvalidEntryError("full refresh without a symbol")
            self._check(md, symbol)
        except InvalidEntryError:
            stats.rejected_messages += 1
            if symbol:
                self.stale.add(symbol)
            raise
        count = md.count
        stats.snapshots += 1
        stats.entries += count
        book = self._books.get(symbol)
        if book is None:
            book = self._books[symbol] = PriceLevelBook(symbol)
        book.clear()
        kinds = md.kind
        prices = md.px_e8
        sizes = md.size_e8
        trade = -1
        for i in range(count):
            kind = kinds[i]
            if kind in (BID, OFFER):
                size = sizes[i]
                book.set_level(kind, prices[i], 0 if size == ABSENT else size)
            elif kind == TRADE:
                trade = i
        book.publish()
        self.stale.discard(symbol)
        self.unavailable.pop(symbol, None)
        sending_ns = md.sending_ns
        fix_seq = md.seq_num
        stats.quotes_out += 1
        _emit(
            book,
            _QUOTE,
            sending_ns,
            ingest_ns=ingest_ns,
            fix_seq=fix_seq,
            snapshot=True,
            keys=keys,
            values=values,
        )
        if trade >= 0:
            size = sizes[trade]
            book.set_last(prices[trade], 0 if size == ABSENT else size)
            stats.trades_out += 1
            venue_ns = _venue_ns(md.time_ns[trade], sending_ns)
            _emit(
                book,
                _TRADE_TICK,
                venue_ns,
                ingest_ns=ingest_ns,
                fix_seq=fix_seq,
                snapshot=True,
                keys=keys,
                values=values,
            )

    def _incremental(  # noqa: PLR0912, PLR0915 - one inlined entry loop: the per-entry cost
        self, md: MdMessage, ingest_ns: int, keys: list[bytes], values: list[bytes]
    ) -> None:
        stats = self.stats
        fallback = md.symbol
        try:
            self._check(md, fallback)
        except InvalidEntryError:
            stats.rejected_messages += 1
            allowed = self._allowed
            self.stale.update(
                s for s in md.entry_symbol if s and (not self._restricted or s in allowed)
            )
            raise
        count = md.count
        stats.increments += 1
        stats.entries += count
        books = self._books
        touched = self._touched
        touched.clear()
        self._message_count += 1
        mark = self._message_count
        symbols = md.entry_symbol
        kinds = md.kind
        actions = md.action
        prices = md.px_e8
        sizes = md.size_e8
        sending_ns = md.sending_ns
        fix_seq = md.seq_num
        last_symbol = ""
        book: PriceLevelBook | None = None
        for i in range(count):
            symbol = symbols[i] or fallback
            if book is None or symbol != last_symbol:
                book = books.get(symbol)
                if book is None:
                    # An increment before any snapshot: start from it; a snapshot will follow.
                    book = books[symbol] = PriceLevelBook(symbol)
                last_symbol = symbol
            kind = kinds[i]
            px = prices[i]
            deleted = actions[i] == DELETE
            if kind == TRADE:
                # A deleted trade (a bust) is a tick too: size 0, at SendingTime.
                if deleted:
                    book.set_last(0 if px == ABSENT else px, 0)
                    venue_ns = sending_ns
                else:
                    size = sizes[i]
                    book.set_last(px, 0 if size == ABSENT else size)
                    venue_ns = _venue_ns(md.time_ns[i], sending_ns)
                stats.trades_out += 1
                _emit(
                    book,
                    _TRADE_TICK,
                    venue_ns,
                    ingest_ns=ingest_ns,
                    fix_seq=fix_seq,
                    snapshot=False,
                    keys=keys,
                    values=values,
                )
                continue
            if kind not in (BID, OFFER):
                continue  # other entry types (index value, imbalance, ...) are not quoted
            if deleted:
                book.delete_level(kind, 0 if px == ABSENT else px)
            else:
                size = sizes[i]
                book.set_level(kind, px, 0 if size == ABSENT else size)
            if book.mark != mark:
                book.mark = mark
                touched.append(book)
        for book in touched:
            if book.publish():
                stats.quotes_out += 1
                _emit(
                    book,
                    _QUOTE,
                    sending_ns,
                    ingest_ns=ingest_ns,
                    fix_seq=fix_seq,
                    snapshot=False,
                    keys=keys,
                    values=values,
                )

    # -- state -------------------------------------------------------------------

    def top(self, symbol: str) -> tuple[int | None, int | None, int | None]:
        """(best bid, best ask, last trade) prices of a symbol, scaled by 10^8."""
        book = self._books.get(symbol)
        if book is None:
            return None, None, None
        return (
            book.pub_bid_px or None,
            book.pub_ask_px or None,
            book.last_px if book.has_last else None,
        )

    @property
    def symbols(self) -> list[str]:
        return sorted(self._books)

    def sequence(self, symbol: str) -> int:
        """The last sequence number given to `symbol` (0: none yet)."""
        book = self._books.get(symbol)
        return book.seq if book is not None else 0


def _emit(
    book: PriceLevelBook,
    kind: int,
    venue_ns: int,
    *,
    ingest_ns: int,
    fix_seq: int,
    snapshot: bool,
    keys: list[bytes],
    values: list[bytes],
) -> None:
    """The next tick of the book's symbol: its published top and last trade."""
    book.seq += 1
    keys.append(book.key)
    values.append(
        encode_fields(
            book.head,
            seq=book.seq,
            kind=kind,
            has_bid=book.pub_bid_px != 0,
            bid_px_e8=book.pub_bid_px,
            bid_size_e8=book.pub_bid_size,
            has_ask=book.pub_ask_px != 0,
            ask_px_e8=book.pub_ask_px,
            ask_size_e8=book.pub_ask_size,
            has_last=book.has_last,
            last_px_e8=book.last_px,
            last_size_e8=book.last_size,
            venue_time_ns=venue_ns,
            ingest_time_ns=ingest_ns,
            fix_msg_seq_num=fix_seq,
            from_snapshot=snapshot,
        )
    )


def _venue_ns(time_ns: int, sending_ns: int) -> int:
    """MDEntryTime (ns since midnight UTC) on SendingTime's day; SendingTime without one."""
    if time_ns == ABSENT:
        return sending_ns
    return sending_ns - sending_ns % _DAY_NS + time_ns


def _e8_text(value: int) -> str:
    """A scaled integer as the decimal it stands for (-150000000 -> "-1.5")."""
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 10**_E8)
    if not frac:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{str(frac).rjust(_E8, '0').rstrip('0')}"
