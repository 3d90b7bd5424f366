"""The simulated market behind the venue: one price-level book per symbol, as wire text.

Each symbol has a book of `depth` levels per side at a tick of 0.01, bids best (highest)
first, offers best (lowest) first. It starts contiguous, the levels one tick apart, and
stays so in the ``price`` and ``entry_id`` book models; in the ``position`` model level 1
also moves in place, so a side can have a gap below its best level. A step of the market
is one of:

* a trade at the best bid or offer (one 269=2 entry, 279=0), with a probability chosen
  so that trades are `trade_ratio` of the entries;
* a side shift, the best level of one side moving one tick (two entries): inwards (the
  bid up, the offer down) a new best level enters and the worst one leaves; outwards
  the best level leaves and a new worst level enters one tick past the last. Shifts move
  the mid as a random walk, pulled gently back towards the symbol's reference price so
  a long run stays realistic, with a spread of 1 to `MAX_SPREAD_TICKS` ticks and never a
  price below one tick;
* a size change at one level (279=1, one entry). In the ``position`` model
  `IN_PLACE_SHARE` of them move level 1 one tick instead, in place, with a new size: the
  best price improving while the spread is wider than one tick (at most one empty tick
  below it), or worsening back into the gap below it; skipped when the book would not
  stay strictly ordered and uncrossed. In the ``entry_id`` model `ID_RENEW_SHARE` of them
  also give the level a new MDEntryID.

How the entries key their levels is the book model (``VenueConfig.book_model``; the
receiver's rules are in docs/book-models.md):

* ``price``: entries carry MDEntryPx(270) and MDEntryPositionNo(290); a shift is the
  Delete of the level leaving, then the New of the level entering (279=2 then 279=0), so
  applying the entries by price or by position reproduces the book.
* ``position``: the same fields, keyed by 290. An inward shift is New at 290=1 (the
  levels shift down) and then an explicit Delete at 290=depth+1 for the level pushed off
  the bottom: a receiver keeping depth + margin levels holds it until that Delete, one
  keeping only `depth` has trimmed it already and ignores the Delete (a trimmed side
  ignores changes and deletes of levels it does not hold). An outward shift is Delete at
  290=1 (the levels shift up), then New at 290=depth. A size change or an in-place move
  is a Change at its position with the level's price and size. Only the position rules
  reproduce the book (an in-place move is a new price at a position).
* ``entry_id``: each level carries an MDEntryID(278), ``SYMBOL-n``, unique per symbol for
  the life of the market (never reused). New carries the new level's id, Change and
  Delete the id of the level they touch; a renewing Change carries the new id in 278 and
  the old one in MDEntryRefID(280). A shift is Delete then New. No 290.

Every entry carries MDUpdateAction(279), MDEntryType(269), [MDEntryID(278),
MDEntryRefID(280)], Symbol(55), MDEntryPx(270), MDEntrySize(271) (not on deletes),
MDEntryTime(273) and, on book entries of the price and position models,
MDEntryPositionNo(290): the field order of MDIncGrp in the FIX 4.4 dictionary. Trades
carry neither 278 nor 290. The entries of a full refresh (W, `SymbolBook.snapshot_entries`)
are 269, 270, 271, 273, 290 in the price and position models, and 269, 278, 270, 271, 273
in the entry_id model (278 where FIX 5.0 SP2's MDFullGrp has it: FIX 4.4's MDFullGrp has
no MDEntryID, so a QuickFIX receiver of entry_id snapshots needs a dictionary adding it).

Prices: a symbol's reference price (`SymbolBook.anchor`, `anchor_ticks`) depends only on
the symbol, a hash of its name mapped log-uniformly into `START_PRICE_RANGE`, so a symbol
quotes near the same price in every run whatever the seed. The seed drives the walk:
each symbol draws from its own random generator seeded from the market seed and the
symbol, so a symbol's path does not depend on which other symbols are subscribed, and
the same seed replays the same market.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple, get_args

SOH = "\x01"
#: How the venue keys the levels of its incremental refreshes (docs/book-models.md).
BookModel = Literal["price", "position", "entry_id"]
BOOK_MODELS: tuple[BookModel, ...] = get_args(BookModel)
#: Widest spread, in ticks, the random walk allows.
MAX_SPREAD_TICKS = 4
#: Share of book steps that shift a side rather than change a size.
SHIFT_SHARE = 0.35
#: ``position`` model: share of size changes that move level 1 in place instead.
IN_PLACE_SHARE = 0.1
#: ``entry_id`` model: share of size changes that also give the level a new MDEntryID.
ID_RENEW_SHARE = 0.1
#: Reference prices are spread log-uniformly over this range (dollars).
START_PRICE_RANGE = (20.0, 500.0)
#: Resting sizes and trade sizes, in shares.
LEVEL_SIZES = tuple(str(n) for n in range(100, 5001, 100))
TRADE_SIZES = tuple(str(n) for n in (*range(1, 100, 7), *range(100, 2001, 100)))

_PRICE_CACHE_LIMIT = 1 << 17
_price_text: dict[int, str] = {}


def price_text(ticks: int) -> str:
    """A price in ticks of 0.01 as exact decimal text with two decimals (``18950`` → ``189.50``)."""
    text = _price_text.get(ticks)
    if text is None:
        if ticks < 0:
            raise ValueError(f"negative price: {ticks} ticks")
        if len(_price_text) >= _PRICE_CACHE_LIMIT:
            _price_text.clear()
        text = _price_text[ticks] = f"{ticks // 100}.{ticks % 100:02d}"
    return text


def anchor_ticks(symbol: str) -> int:
    """The reference price of `symbol` in ticks: its name's hash, log-uniform in the range.

    Depends on nothing but the symbol (not the seed, not the process: no ``hash()``).
    """
    digest = hashlib.blake2b(symbol.encode("utf-8"), digest_size=8).digest()
    u = int.from_bytes(digest, "big") / (1 << 64)
    low, high = START_PRICE_RANGE
    dollars = math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
    return min(max(round(dollars * 100), round(low * 100)), round(high * 100))


class Tick(NamedTuple):
    """The entries one market step produced, as wire text, ready to be put in an X."""

    symbol: str
    text: str
    entries: int
    is_trade: bool


@dataclass(frozen=True, slots=True)
class Level:
    """One price level of a book: price and size as the wire writes them.

    `entry_id` is its MDEntryID(278) in the ``entry_id`` book model, else None.
    """

    position: int
    price: str
    size: str
    entry_id: str | None = None


@dataclass(frozen=True, slots=True)
class LastTrade:
    """The last trade of a symbol: price, size and MDEntryTime as on the wire."""

    price: str
    size: str
    time: str


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    """A copy of one symbol's book: bids best first, offers best first, the last trade."""

    symbol: str
    bids: tuple[Level, ...]
    offers: tuple[Level, ...]
    last_trade: LastTrade | None


class SymbolBook:
    """One symbol's book, its random walk, and the entries that tell a receiver about it.

    Each side is three parallel lists, best level first: prices in ticks, sizes as wire
    text, and (``entry_id`` model only, else empty) MDEntryIDs.
    """

    __slots__ = (
        "_ask_change",
        "_ask_delete",
        "_ask_new",
        "_bid_change",
        "_bid_delete",
        "_bid_new",
        "_next_id",
        "_rand",
        "_trade",
        "anchor",
        "ask_ids",
        "ask_prices",
        "ask_sizes",
        "bid_ids",
        "bid_prices",
        "bid_sizes",
        "book_model",
        "depth",
        "last_trade",
        "p_trade",
        "symbol",
    )

    def __init__(
        self,
        symbol: str,
        depth: int,
        trade_ratio: float,
        seed: int,
        book_model: BookModel = "price",
    ) -> None:
        if book_model not in BOOK_MODELS:
            raise ValueError(f"book_model must be one of {BOOK_MODELS}, got {book_model!r}")
        self.symbol = symbol
        self.depth = depth
        self.book_model: BookModel = book_model
        rng = random.Random(f"{seed}:{symbol}")
        self._rand = rng.random
        self.anchor = max(anchor_ticks(symbol), depth + MAX_SPREAD_TICKS + 1)
        spread = rng.randint(1, MAX_SPREAD_TICKS - 1)
        best_bid = self.anchor - spread // 2
        self.bid_prices = [best_bid - p for p in range(depth)]
        self.ask_prices = [best_bid + spread + p for p in range(depth)]
        self.bid_sizes = [self._level_size() for _ in range(depth)]
        self.ask_sizes = [self._level_size() for _ in range(depth)]
        self._next_id = 0
        ids = book_model == "entry_id"
        self.bid_ids = [self._new_id() for _ in range(depth)] if ids else []
        self.ask_ids = [self._new_id() for _ in range(depth)] if ids else []
        self.last_trade: LastTrade | None = None
        # A trade step writes one entry, a book step 1 + SHIFT_SHARE on average: this
        # step probability makes trades `trade_ratio` of the entries, not of the steps.
        book_entries = 1.0 + SHIFT_SHARE
        denominator = 1.0 - trade_ratio + trade_ratio * book_entries
        self.p_trade = trade_ratio * book_entries / denominator if denominator else 1.0
        # The constant head of the entries of the price and position models, so a step
        # formats only what varies.
        head = f"{SOH}55={symbol}{SOH}270="
        self._bid_new = f"279=0{SOH}269=0{head}"
        self._bid_change = f"279=1{SOH}269=0{head}"
        self._bid_delete = f"279=2{SOH}269=0{head}"
        self._ask_new = f"279=0{SOH}269=1{head}"
        self._ask_change = f"279=1{SOH}269=1{head}"
        self._ask_delete = f"279=2{SOH}269=1{head}"
        self._trade = f"279=0{SOH}269=2{head}"

    # -- the book ----------------------------------------------------------------------

    @property
    def bid(self) -> int:
        """The best bid in ticks; setting it lays the bids out contiguously below it."""
        return self.bid_prices[0]

    @bid.setter
    def bid(self, ticks: int) -> None:
        self.bid_prices = [ticks - p for p in range(self.depth)]

    @property
    def ask(self) -> int:
        """The best offer in ticks; setting it lays the offers out contiguously above it."""
        return self.ask_prices[0]

    @ask.setter
    def ask(self, ticks: int) -> None:
        self.ask_prices = [ticks + p for p in range(self.depth)]

    @property
    def bids(self) -> list[tuple[int, str]]:
        """The bids, best first: (price in ticks, size)."""
        return list(zip(self.bid_prices, self.bid_sizes, strict=True))

    @property
    def asks(self) -> list[tuple[int, str]]:
        """The offers, best first: (price in ticks, size)."""
        return list(zip(self.ask_prices, self.ask_sizes, strict=True))

    def _level_size(self) -> str:
        return LEVEL_SIZES[int(self._rand() * len(LEVEL_SIZES))]

    def _new_id(self) -> str:
        self._next_id += 1
        return f"{self.symbol}-{self._next_id}"

    # -- steps -------------------------------------------------------------------------

    def step(self, t: str) -> Tick:
        """Move the market one step; `t` is the MDEntryTime (273) of its entries."""
        rand = self._rand
        if rand() < self.p_trade:
            return self._step_trade(t)
        if rand() < SHIFT_SHARE:
            tick = self._step_shift(t)
            if tick is not None:
                return tick
        return self._step_change(t)

    def _step_trade(self, t: str) -> Tick:
        rand = self._rand
        px = price_text(self.ask_prices[0] if rand() < 0.5 else self.bid_prices[0])
        size = TRADE_SIZES[int(rand() * len(TRADE_SIZES))]
        self.last_trade = LastTrade(px, size, t)
        text = f"{self._trade}{px}{SOH}271={size}{SOH}273={t}{SOH}"
        return Tick(self.symbol, text, 1, True)

    def _step_change(self, t: str) -> Tick:
        rand = self._rand
        model = self.book_model
        if model == "position" and rand() < IN_PLACE_SHARE:
            tick = self._step_in_place(t)
            if tick is not None:
                return tick
        position = int(rand() * self.depth)
        size = self._level_size()
        if model == "entry_id":
            return self._change_by_id(position, size, t)
        if rand() < 0.5:
            self.bid_sizes[position] = size
            head, px = self._bid_change, self.bid_prices[position]
        else:
            self.ask_sizes[position] = size
            head, px = self._ask_change, self.ask_prices[position]
        text = f"{head}{price_text(px)}{SOH}271={size}{SOH}273={t}{SOH}290={position + 1}{SOH}"
        return Tick(self.symbol, text, 1, False)

    def _change_by_id(self, position: int, size: str, t: str) -> Tick:
        """``entry_id`` model: a size change, sometimes renaming the level (278 + 280)."""
        rand = self._rand
        if rand() < 0.5:
            side, prices, sizes, ids = "0", self.bid_prices, self.bid_sizes, self.bid_ids
        else:
            side, prices, sizes, ids = "1", self.ask_prices, self.ask_sizes, self.ask_ids
        sizes[position] = size
        ref = ""
        if rand() < ID_RENEW_SHARE:
            ref = f"{SOH}280={ids[position]}"
            ids[position] = self._new_id()
        text = (
            f"279=1{SOH}269={side}{SOH}278={ids[position]}{ref}{SOH}55={self.symbol}{SOH}"
            f"270={price_text(prices[position])}{SOH}271={size}{SOH}273={t}{SOH}"
        )
        return Tick(self.symbol, text, 1, False)

    def _step_in_place(self, t: str) -> Tick | None:
        """``position`` model: level 1 of a side one tick better or worse, in place."""
        rand = self._rand
        bid_side = rand() < 0.5
        prices = self.bid_prices if bid_side else self.ask_prices
        better = 1 if bid_side else -1
        spread = self.ask_prices[0] - self.bid_prices[0]
        best = prices[0]
        if rand() < 0.5:
            # Improve, narrowing the spread, leaving at most one empty tick below.
            new = best + better
            below = prices[1] if len(prices) > 1 else best - better
            ok = spread > 1 and (new - below) * better <= 2
        else:
            # Worsen, widening the spread, into a gap below (strictly above level 2).
            new = best - better
            ok = spread < MAX_SPREAD_TICKS and new >= 1
            if len(prices) > 1:
                ok = ok and (new - prices[1]) * better > 0
        if not ok:
            return None
        size = self._level_size()
        prices[0] = new
        if bid_side:
            self.bid_sizes[0] = size
        else:
            self.ask_sizes[0] = size
        head = self._bid_change if bid_side else self._ask_change
        text = f"{head}{price_text(new)}{SOH}271={size}{SOH}273={t}{SOH}290=1{SOH}"
        return Tick(self.symbol, text, 1, False)

    def _step_shift(self, t: str) -> Tick | None:
        rand = self._rand
        bids, asks = self.bid_prices, self.ask_prices
        bid, ask = bids[0], asks[0]
        spread = ask - bid
        # Mean reversion: 10% above the reference price makes a down move 75% likely.
        drift = ((bid + ask) / 2 - self.anchor) / self.anchor
        up = rand() < 0.5 - max(-0.25, min(0.25, drift * 2.5))
        # An outward move makes level 2 the best (the next tick when the book is one level
        # deep) and adds a level one tick past the last.
        next_bid = bids[1] if len(bids) > 1 else bid - 1
        next_ask = asks[1] if len(asks) > 1 else ask + 1
        moves = (
            (
                "bid_up" if spread > 1 else None,
                "ask_up" if next_ask - bid <= MAX_SPREAD_TICKS else None,
            )
            if up
            else (
                "bid_down" if ask - next_bid <= MAX_SPREAD_TICKS and bids[-1] > 1 else None,
                "ask_down" if spread > 1 else None,
            )
        )
        options = [m for m in moves if m is not None]
        if not options:
            return None
        move = options[0] if len(options) == 1 or rand() < 0.5 else options[1]
        return self._apply_shift(move, t)

    def _apply_shift(self, move: str, t: str) -> Tick:
        size = self._level_size()
        bid_side = move in ("bid_up", "bid_down")
        # Inwards a new best level enters and the worst leaves; outwards the best leaves
        # and a new worst level enters one tick past the last.
        inward = move in ("bid_up", "ask_down")
        if bid_side:
            prices, sizes, ids, better = self.bid_prices, self.bid_sizes, self.bid_ids, 1
        else:
            prices, sizes, ids, better = self.ask_prices, self.ask_sizes, self.ask_ids, -1
        keyed = self.book_model == "entry_id"
        new_id = self._new_id() if keyed else ""
        gone_id = ""
        if inward:
            new_px = prices[0] + better
            gone_px = prices.pop()
            sizes.pop()
            prices.insert(0, new_px)
            sizes.insert(0, size)
            if keyed:
                gone_id = ids.pop()
                ids.insert(0, new_id)
        else:
            gone_px = prices.pop(0)
            sizes.pop(0)
            new_px = (prices[-1] if prices else gone_px) - better
            prices.append(new_px)
            sizes.append(size)
            if keyed:
                gone_id = ids.pop(0)
                ids.append(new_id)
        gone_text, new_text = price_text(gone_px), price_text(new_px)
        if keyed:
            side, head = ("0" if bid_side else "1"), f"{SOH}55={self.symbol}{SOH}270="
            text = (
                f"279=2{SOH}269={side}{SOH}278={gone_id}{head}{gone_text}{SOH}273={t}{SOH}"
                f"279=0{SOH}269={side}{SOH}278={new_id}{head}{new_text}{SOH}271={size}{SOH}"
                f"273={t}{SOH}"
            )
            return Tick(self.symbol, text, 2, False)
        depth = self.depth
        new_first = inward and self.book_model == "position"
        if not inward:
            gone_pos, new_pos = 1, depth
        elif new_first:
            # New at 1 first: the level it pushes down to depth + 1 is then deleted.
            gone_pos, new_pos = depth + 1, 1
        else:
            gone_pos, new_pos = depth, 1
        delete_head, new_head = (
            (self._bid_delete, self._bid_new) if bid_side else (self._ask_delete, self._ask_new)
        )
        delete = f"{delete_head}{gone_text}{SOH}273={t}{SOH}290={gone_pos}{SOH}"
        new = f"{new_head}{new_text}{SOH}271={size}{SOH}273={t}{SOH}290={new_pos}{SOH}"
        return Tick(self.symbol, new + delete if new_first else delete + new, 2, False)

    # -- views -------------------------------------------------------------------------

    def snapshot(self) -> BookSnapshot:
        """A copy of the book as it stands."""
        bid_ids: Iterable[str | None] = self.bid_ids or [None] * self.depth
        ask_ids: Iterable[str | None] = self.ask_ids or [None] * self.depth
        bids = tuple(
            Level(p + 1, price_text(px), size, entry_id)
            for p, (px, size, entry_id) in enumerate(
                zip(self.bid_prices, self.bid_sizes, bid_ids, strict=True)
            )
        )
        offers = tuple(
            Level(p + 1, price_text(px), size, entry_id)
            for p, (px, size, entry_id) in enumerate(
                zip(self.ask_prices, self.ask_sizes, ask_ids, strict=True)
            )
        )
        return BookSnapshot(self.symbol, bids, offers, self.last_trade)

    def snapshot_entries(self, t: str) -> tuple[str, int]:
        """The NoMDEntries entries of a full refresh (W) and their count.

        `t` is the MDEntryTime of the book levels; the last trade keeps its own time.
        Levels carry MDEntryPositionNo(290), or MDEntryID(278) in the ``entry_id`` model.
        """
        parts: list[str] = []
        snap = self.snapshot()
        for side, levels in (("0", snap.bids), ("1", snap.offers)):
            for level in levels:
                if level.entry_id is None:
                    parts.append(
                        f"269={side}{SOH}270={level.price}{SOH}271={level.size}{SOH}"
                        f"273={t}{SOH}290={level.position}{SOH}"
                    )
                else:
                    parts.append(
                        f"269={side}{SOH}278={level.entry_id}{SOH}270={level.price}{SOH}"
                        f"271={level.size}{SOH}273={t}{SOH}"
                    )
        trade = self.last_trade
        if trade is not None:
            parts.append(
                f"269=2{SOH}270={trade.price}{SOH}271={trade.size}{SOH}273={trade.time}{SOH}"
            )
        return "".join(parts), len(parts)


class Market:
    """The books of every symbol and the choice of which one moves next."""

    def __init__(
        self,
        symbols: Sequence[str],
        *,
        depth: int,
        trade_ratio: float,
        seed: int,
        book_model: BookModel = "price",
    ) -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        if not 0.0 <= trade_ratio <= 1.0:
            raise ValueError(f"trade_ratio must be within 0..1, got {trade_ratio}")
        if book_model not in BOOK_MODELS:
            raise ValueError(f"book_model must be one of {BOOK_MODELS}, got {book_model!r}")
        self.seed = seed
        self.book_model: BookModel = book_model
        self.books = {s: SymbolBook(s, depth, trade_ratio, seed, book_model) for s in symbols}
        self._pick = random.Random(f"{seed}:pick").random
        self._active: list[SymbolBook] = []

    @property
    def active(self) -> tuple[str, ...]:
        """The symbols that move (those someone is subscribed to)."""
        return tuple(b.symbol for b in self._active)

    def set_active(self, symbols: Iterable[str]) -> None:
        """Choose the symbols that move, in the order of the market's symbol list."""
        wanted = set(symbols)
        self._active = [b for s, b in self.books.items() if s in wanted]

    def generate(self, entries: int, t: str) -> tuple[list[Tick], int]:
        """Steps over the active symbols until at least `entries` entries; (ticks, count).

        The count may exceed `entries` by one (a shift writes two entries); the caller
        carries the excess into its pacing.
        """
        active = self._active
        if not active or entries <= 0:
            return [], 0
        pick, n = self._pick, len(active)
        ticks: list[Tick] = []
        append = ticks.append
        produced = 0
        while produced < entries:
            tick = active[int(pick() * n)].step(t)
            append(tick)
            produced += tick.entries
        return ticks, produced
