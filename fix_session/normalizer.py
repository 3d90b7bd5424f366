"""From decoded FIX market data to sequenced, encoded Ticks.

`BookNormalizer` keeps a book per symbol (in the native core, `fix_session.tick_core`),
applies snapshots (W) and increments (X: new, change, delete), and emits a Tick whenever
a symbol's top of book changes and for every trade. Each symbol's ticks carry a sequence
number that is contiguous for the life of the normalizer (1, 2, 3, ...), also across
reconnects: a fresh snapshot after a reconnect continues the sequence with `from_snapshot`
set, so a consumer sees a resync, never a sequence that goes back.

The ingest calls `on_raw` with each raw message: the native core decodes a W or X, checks
and applies it and writes its ticks encoded (proto/mdfeed.proto, the bytes
`fix_session.tick_encoding` writes), with no object per entry or per tick; `flush` hands
out one TickBatch record per symbol. A message the core leaves (malformed, unusual, a Y)
is decoded by `fix_spec.md_decoder` into an `MdMessage` and goes through `apply`, which
raises the precise errors and otherwise applies it to the same books. `on_message` applies
an MdMessage and appends each tick's Kafka key (the symbol's UTF-8 bytes) and encoded Tick
to two lists; `on_snapshot` and `on_incremental` take the typed messages and return
`pb.Tick` objects, for tests and adapters.

Bad input loses nothing that is good: a message with an invalid entry (a price that is not
positive, a size below zero, a price or size finer than 10^-8 or beyond int64, an entry
without a symbol, type or price) or an entry for a symbol that was not subscribed, is
rejected whole and counted, the books stay as they were, and the symbols it touched are
reported as needing a fresh snapshot (`stale`), since the venue's view of their book has
moved on without us.

Prices become integers scaled by 10^8 (see proto/mdfeed.proto).

Books follow the session's book model (`price`, `position` or `entry_id`: how an X names
the level it updates) and keep at most `capacity` levels per side; a book that cannot be
right (crossed, locked where not allowed, an update naming a level that is not there) is
counted per reason, its symbol's ticks carry `book_invalid` until its next snapshot, and
the symbol is `stale` so the session asks for one. docs/book-models.md has the rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any, Final, Literal

from fix_spec.md_columns import ABSENT, DELETE, MdMessage
from fix_spec.md_decoder import MdDecoder
from fix_spec.md_from_typed import columns_from_typed
from proto import mdfeed_pb2 as pb

from .tick_core import RAW_W, TickCore

_E8: Final = 8
BookModel = Literal["price", "position", "entry_id"]
#: The native core's code of each book model.
BOOK_MODELS: Final[dict[str, int]] = {"price": 0, "position": 1, "entry_id": 2}
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
    """Counters of what the normalizer took in and emitted (a snapshot of them)."""

    snapshots: int
    increments: int
    entries: int
    quotes_out: int
    trades_out: int
    rejected_messages: int
    unknown_symbol_rejects: int
    #: Increments' ticks held back after the bus dropped ticks (`hold_back`).
    ticks_suppressed: int
    #: Book faults per reason (docs/book-models.md).
    book_faults: dict[str, int]
    #: Levels not kept because a side was at its capacity.
    levels_trimmed: int

    def __init__(self) -> None:
        self.snapshots = 0
        self.increments = 0
        self.entries = 0
        self.quotes_out = 0
        self.trades_out = 0
        self.rejected_messages = 0
        self.unknown_symbol_rejects = 0
        self.ticks_suppressed = 0
        self.book_faults = {}
        self.levels_trimmed = 0


class BookNormalizer:
    """Applies W/X/Y messages to per-symbol books and emits sequenced Ticks.

    The books, the tick sequences and the encoding live in the native core
    (`fix_session.tick_core.TickCore`); this class checks decoded messages, keeps what the
    session needs to know (stale and unavailable symbols, rejects) and hands ticks out.
    With a `decoder`, `on_raw` also takes raw W and X straight to ticks (the ingest's path).
    """

    def __init__(
        self,
        *,
        symbols: Iterable[str] = (),
        decoder: MdDecoder | None = None,
        book_model: BookModel = "price",
        capacity: int = 15,
        locked_ok: bool = False,
        depth: int = 0,
    ) -> None:
        """`capacity`: levels kept per side (the session's market_depth plus book_margin);
        `locked_ok`: a locked book (best bid = best offer) is legal at this venue; `depth`:
        price levels a side each quote tick carries (`Tick.bid_levels`, `ask_levels`), a
        quote tick going out whenever one of them changed; 0 (the default): the top only."""
        #: When given, entries for any other symbol are invalid (nobody subscribed to it).
        self._allowed: frozenset[str] = frozenset(symbols)
        self._restricted = bool(self._allowed)
        if book_model not in BOOK_MODELS:
            raise ValueError(f"book model {book_model!r}: one of {', '.join(BOOK_MODELS)}")
        self.book_model = book_model
        layout = decoder.native_layout() if decoder is not None else None
        self._core = TickCore(
            sorted(self._allowed),
            layout,
            model=BOOK_MODELS[book_model],
            capacity=capacity,
            locked_ok=locked_ok,
            depth=depth,
        )
        self._rejected_messages = 0
        self._unknown_symbol_rejects = 0
        #: Symbols the venue rejected (MarketDataRequestReject), with its reason.
        self.unavailable: dict[str, str] = {}
        #: Symbols whose book missed an update or turned invalid: they need a fresh snapshot.
        self.stale: set[str] = set()
        self._faults: list[tuple[str, str]] = []
        self._take_faults = self._core.take_faults

    @property
    def stats(self) -> NormalizerStats:
        """The counters now."""
        stats = NormalizerStats()
        (
            stats.snapshots,
            stats.increments,
            stats.entries,
            stats.quotes_out,
            stats.trades_out,
            stats.ticks_suppressed,
        ) = self._core.counters
        stats.rejected_messages = self._rejected_messages
        stats.unknown_symbol_rejects = self._unknown_symbol_rejects
        stats.book_faults = self._core.faults
        stats.levels_trimmed = self._core.levels_trimmed
        return stats

    @property
    def faults(self) -> dict[str, int]:
        """Book faults so far, per reason (docs/book-models.md)."""
        return self._core.faults

    @property
    def invalid(self) -> set[str]:
        """The symbols whose book is invalid: their ticks carry `book_invalid` until their
        next snapshot."""
        return set(self._core.invalid())

    def take_faults(self) -> list[tuple[str, str]]:
        """(symbol, reason) of each book that turned invalid since the last call, once per
        spell of invalidity (for the log). Those symbols are `stale` from the message that
        faulted them on, so the session asks for a snapshot of each."""
        faults, self._faults = self._faults, []
        return faults

    def _faulted(self, faults: tuple[tuple[str, str], ...]) -> None:
        """Books turned invalid (the core's take_faults, asked after applying, which is the
        shared empty tuple when none did): they are stale, and to be logged."""
        self._faults += faults
        self.stale.update(symbol for symbol, _ in faults)

    def book(self, symbol: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """(bids, asks): the levels held, best first, as (price, size) scaled by 10^8; in
        the entry_id model, the entries in order."""
        return self._core.book(symbol)

    # -- the tick path -----------------------------------------------------------

    def on_raw(self, data: str | bytes, ingest_ns: int) -> int:
        """Decode and apply one raw message in the native core, its ticks left pending for
        `flush`. RAW_X and RAW_W: applied (a W's symbol is `last_snapshot`, and is no longer
        stale or unavailable); RAW_Y: a reject, for the caller; RAW_FALLBACK: nothing was
        applied, decode the message with the Python decoder and `apply` it (that path
        raises the precise errors of a malformed message or entry)."""
        status = self._core.on_raw(data, ingest_ns)
        if status == RAW_W:
            self._snapshotted(self._core.last_symbol)
        if faults := self._take_faults():
            self._faulted(faults)
        return status

    def _snapshotted(self, symbol: str) -> None:
        """A snapshot of `symbol` was applied: it is no longer stale or unavailable."""
        self.stale.discard(symbol)
        self.unavailable.pop(symbol, None)

    # -- the inbox (the QuickFIX thread pushes raw messages, the loop drains them) ----

    @property
    def core(self) -> TickCore:
        """The native core (its inbox is what fix_session.quickfix_feed pushes into)."""
        return self._core

    def open_inbox(self, capacity: int) -> int:
        """Open the core's inbox of `capacity` raw messages; the eventfd that is readable
        when the QuickFIX thread has pushed into it."""
        return self._core.open_inbox(capacity)

    def drain(
        self, max_messages: int, max_ns: int
    ) -> tuple[int, list[str], list[int], bytes | None, int]:
        """Apply inbox messages in the core (see `TickCore.drain`): (taken, symbols
        snapshotted, arrival times, the message left to the Python path or None, its
        arrival time). A snapshotted symbol is no longer stale or unavailable."""
        result = self._core.drain(max_messages, max_ns)
        for symbol in result[1]:
            self._snapshotted(symbol)
        if faults := self._take_faults():
            self._faulted(faults)
        return result

    def settle(self, hold: bool) -> bool:
        """After a drain: True when the inbox holds more (`TickCore.settle`)."""
        return self._core.settle(hold)

    def stop_inbox(self) -> None:
        """Release a QuickFIX thread waiting for room; later messages are dropped."""
        self._core.stop_inbox()

    def clear_inbox(self) -> int:
        """Drop what the inbox holds (counted as dropped on stop); how many."""
        return self._core.clear_inbox()

    def push(self, data: bytes) -> bool:
        """Push one raw message as the QuickFIX thread does (tests and tools)."""
        return self._core.push(data)

    @property
    def inbox_held(self) -> int:
        """Messages waiting in the inbox."""
        return self._core.inbox[0]

    @property
    def inbox(self) -> tuple[int, int, int, int]:
        """(held, waits for room, dropped on stop, pushed) of the inbox."""
        return self._core.inbox

    @property
    def last_snapshot(self) -> str:
        """The symbol of the last W that `on_raw` applied."""
        return self._core.last_symbol

    def apply(self, md: MdMessage, ingest_ns: int) -> None:
        """Check and apply one decoded W or X, its ticks left pending for `flush`.

        A message with an invalid entry raises InvalidEntryError, applies nothing and
        marks the symbols it names `stale`. A Y carries no ticks and is left to the caller,
        which knows which symbols its MDReqID stands for (`on_reject`). Any other MsgType
        is a ValueError.
        """
        msg_type = md.msg_type
        if msg_type == "X":
            try:
                self._check(md, md.symbol)
            except InvalidEntryError:
                self._rejected_messages += 1
                allowed = self._allowed
                self.stale.update(
                    s for s in md.entry_symbol if s and (not self._restricted or s in allowed)
                )
                raise
            self._core.apply(md, ingest_ns)
            if faults := self._take_faults():
                self._faulted(faults)
        elif msg_type == "W":
            symbol = md.symbol
            try:
                if not symbol:
                    raise InvalidEntryError("full refresh without a symbol")
                self._check(md, symbol)
            except InvalidEntryError:
                self._rejected_messages += 1
                if symbol:
                    self.stale.add(symbol)
                raise
            self._core.apply(md, ingest_ns)
            self._snapshotted(symbol)
            if faults := self._take_faults():
                self._faulted(faults)
        elif msg_type != "Y":
            raise ValueError(f"MsgType {msg_type!r} is not market data (W, X or Y)")

    def flush(self) -> list[tuple[bytes, bytes]]:
        """The pending ticks as bus records: one (key, TickBatch value) per symbol, each
        symbol's ticks in order (`mdfeed.kernel.tick_records`)."""
        return self._core.flush()

    @property
    def pending(self) -> int:
        """Ticks applied and not yet flushed."""
        return self._core.pending

    def hold_back(self) -> None:
        """After the bus dropped ticks: every symbol's increments are held back (their
        ticks dropped and counted, sequence numbers still spent, so consumers see the gap)
        until the symbol's next snapshot."""
        self._core.hold_back()

    def on_message(
        self, md: MdMessage, ingest_ns: int, keys: list[bytes], values: list[bytes]
    ) -> None:
        """Apply one decoded W or X and append its ticks, in order, to `keys` (the symbol's
        UTF-8 bytes, the Kafka key) and `values` (the encoded Tick).

        A W's ticks all have `from_snapshot` set, an X's none. Errors as `apply`; ticks
        still pending from `on_raw` or `apply` come first.
        """
        self.apply(md, ingest_ns)
        self._core.take(keys, values)

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
        self._unknown_symbol_rejects += 1
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

    # -- state -------------------------------------------------------------------

    def top(self, symbol: str) -> tuple[int | None, int | None, int | None]:
        """(best bid, best ask, last trade) prices of a symbol, scaled by 10^8."""
        return self._core.top(symbol)

    @property
    def symbols(self) -> list[str]:
        return sorted(self._core.symbols())

    def sequence(self, symbol: str) -> int:
        """The last sequence number given to `symbol` (0: none yet)."""
        return self._core.sequence(symbol)


def _e8_text(value: int) -> str:
    """A scaled integer as the decimal it stands for (-150000000 -> "-1.5")."""
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 10**_E8)
    if not frac:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{str(frac).rjust(_E8, '0').rstrip('0')}"
