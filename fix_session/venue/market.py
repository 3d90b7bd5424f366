"""The simulated market behind the venue: one price-level book per symbol, as wire text.

Each symbol has a contiguous book of `depth` levels per side at a tick of 0.01: bid level
*p* (MDEntryPositionNo *p*, 1 = best) is at ``best_bid - (p - 1)`` ticks, offer level *p*
at ``best_offer + (p - 1)``. A step of the market is one of:

* a trade at the best bid or offer (one 269=2 entry, 279=0), with a probability chosen
  so that trades are `trade_ratio` of the entries;
* a side shift, one side of the book moving one tick: the level leaving the book is
  deleted and the new one added (279=2 then 279=0, two entries). Shifts move the mid as
  a random walk, pulled gently back towards the starting price so a long run stays
  realistic, with a spread of 1 to `MAX_SPREAD_TICKS` ticks and never a price below one
  tick;
* a size change at one level (279=1, one entry).

Every entry carries MDUpdateAction(279), MDEntryType(269), Symbol(55), MDEntryPx(270),
MDEntrySize(271) (not on deletes), MDEntryTime(273) and, on book entries,
MDEntryPositionNo(290), in the field order of the FIX 4.4 dictionary. Applying the
entries in order, by position or by price, reproduces the book exactly.

Each symbol draws from its own random generator seeded from the market seed and the
symbol, so a symbol's path does not depend on which other symbols are subscribed, and
the same seed replays the same market.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

SOH = "\x01"
#: Widest spread, in ticks, the random walk allows.
MAX_SPREAD_TICKS = 4
#: Share of book steps that shift a side rather than change a size.
SHIFT_SHARE = 0.35
#: Starting prices are drawn log-uniformly from this range (dollars).
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


class Tick(NamedTuple):
    """The entries one market step produced, as wire text, ready to be put in an X."""

    symbol: str
    text: str
    entries: int
    is_trade: bool


@dataclass(frozen=True, slots=True)
class Level:
    """One price level of a book: price and size as the wire writes them."""

    position: int
    price: str
    size: str


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
    """One symbol's contiguous book and its random walk."""

    __slots__ = (
        "_ask_change",
        "_ask_delete",
        "_ask_new",
        "_bid_change",
        "_bid_delete",
        "_bid_new",
        "_rand",
        "_trade",
        "anchor",
        "ask",
        "ask_sizes",
        "bid",
        "bid_sizes",
        "depth",
        "last_trade",
        "p_trade",
        "symbol",
    )

    def __init__(self, symbol: str, depth: int, trade_ratio: float, seed: int) -> None:
        self.symbol = symbol
        self.depth = depth
        rng = random.Random(f"{seed}:{symbol}")
        self._rand = rng.random
        low, high = START_PRICE_RANGE
        dollars = math.exp(rng.uniform(math.log(low), math.log(high)))
        self.anchor = max(round(dollars * 100), depth + MAX_SPREAD_TICKS + 1)
        spread = rng.randint(1, MAX_SPREAD_TICKS - 1)
        self.bid = self.anchor - spread // 2
        self.ask = self.bid + spread
        self.bid_sizes = [self._level_size() for _ in range(depth)]
        self.ask_sizes = [self._level_size() for _ in range(depth)]
        self.last_trade: LastTrade | None = None
        # A trade step writes one entry, a book step 1 + SHIFT_SHARE on average: this
        # step probability makes trades `trade_ratio` of the entries, not of the steps.
        book_entries = 1.0 + SHIFT_SHARE
        denominator = 1.0 - trade_ratio + trade_ratio * book_entries
        self.p_trade = trade_ratio * book_entries / denominator if denominator else 1.0
        # The constant head of every kind of entry, so a step formats only what varies.
        head = f"{SOH}55={symbol}{SOH}270="
        self._bid_new = f"279=0{SOH}269=0{head}"
        self._bid_change = f"279=1{SOH}269=0{head}"
        self._bid_delete = f"279=2{SOH}269=0{head}"
        self._ask_new = f"279=0{SOH}269=1{head}"
        self._ask_change = f"279=1{SOH}269=1{head}"
        self._ask_delete = f"279=2{SOH}269=1{head}"
        self._trade = f"279=0{SOH}269=2{head}"

    def _level_size(self) -> str:
        return LEVEL_SIZES[int(self._rand() * len(LEVEL_SIZES))]

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
        px = price_text(self.ask if rand() < 0.5 else self.bid)
        size = TRADE_SIZES[int(rand() * len(TRADE_SIZES))]
        self.last_trade = LastTrade(px, size, t)
        text = f"{self._trade}{px}{SOH}271={size}{SOH}273={t}{SOH}"
        return Tick(self.symbol, text, 1, True)

    def _step_change(self, t: str) -> Tick:
        rand = self._rand
        position = int(rand() * self.depth)
        size = self._level_size()
        if rand() < 0.5:
            self.bid_sizes[position] = size
            head, px = self._bid_change, self.bid - position
        else:
            self.ask_sizes[position] = size
            head, px = self._ask_change, self.ask + position
        text = f"{head}{price_text(px)}{SOH}271={size}{SOH}273={t}{SOH}290={position + 1}{SOH}"
        return Tick(self.symbol, text, 1, False)

    def _step_shift(self, t: str) -> Tick | None:
        rand = self._rand
        spread = self.ask - self.bid
        # Mean reversion: 10% above the starting price makes a down move 75% likely.
        drift = ((self.bid + self.ask) / 2 - self.anchor) / self.anchor
        up = rand() < 0.5 - max(-0.25, min(0.25, drift * 2.5))
        can_widen = spread < MAX_SPREAD_TICKS
        moves = (
            ("bid_up" if spread > 1 else None, "ask_up" if can_widen else None)
            if up
            else (
                "bid_down" if can_widen and self.bid - self.depth >= 1 else None,
                "ask_down" if spread > 1 else None,
            )
        )
        options = [m for m in moves if m is not None]
        if not options:
            return None
        move = options[0] if len(options) == 1 or rand() < 0.5 else options[1]
        return self._apply_shift(move, t)

    def _apply_shift(self, move: str, t: str) -> Tick:
        depth, size = self.depth, self._level_size()
        last = depth - 1
        if move == "bid_up":
            gone_px, gone_pos = self.bid - last, depth
            self.bid += 1
            new_px, new_pos = self.bid, 1
            self.bid_sizes.pop()
            self.bid_sizes.insert(0, size)
            delete, new = self._bid_delete, self._bid_new
        elif move == "bid_down":
            gone_px, gone_pos = self.bid, 1
            self.bid -= 1
            new_px, new_pos = self.bid - last, depth
            del self.bid_sizes[0]
            self.bid_sizes.append(size)
            delete, new = self._bid_delete, self._bid_new
        elif move == "ask_up":
            gone_px, gone_pos = self.ask, 1
            self.ask += 1
            new_px, new_pos = self.ask + last, depth
            del self.ask_sizes[0]
            self.ask_sizes.append(size)
            delete, new = self._ask_delete, self._ask_new
        else:  # ask_down
            gone_px, gone_pos = self.ask + last, depth
            self.ask -= 1
            new_px, new_pos = self.ask, 1
            self.ask_sizes.pop()
            self.ask_sizes.insert(0, size)
            delete, new = self._ask_delete, self._ask_new
        text = (
            f"{delete}{price_text(gone_px)}{SOH}273={t}{SOH}290={gone_pos}{SOH}"
            f"{new}{price_text(new_px)}{SOH}271={size}{SOH}273={t}{SOH}290={new_pos}{SOH}"
        )
        return Tick(self.symbol, text, 2, False)

    def snapshot(self) -> BookSnapshot:
        """A copy of the book as it stands."""
        bids = tuple(
            Level(p + 1, price_text(self.bid - p), s) for p, s in enumerate(self.bid_sizes)
        )
        offers = tuple(
            Level(p + 1, price_text(self.ask + p), s) for p, s in enumerate(self.ask_sizes)
        )
        return BookSnapshot(self.symbol, bids, offers, self.last_trade)

    def snapshot_entries(self, t: str) -> tuple[str, int]:
        """The NoMDEntries entries of a full refresh (W) and their count.

        `t` is the MDEntryTime of the book levels; the last trade keeps its own time.
        """
        parts: list[str] = []
        for p, size in enumerate(self.bid_sizes):
            parts.append(
                f"269=0{SOH}270={price_text(self.bid - p)}{SOH}271={size}{SOH}"
                f"273={t}{SOH}290={p + 1}{SOH}"
            )
        for p, size in enumerate(self.ask_sizes):
            parts.append(
                f"269=1{SOH}270={price_text(self.ask + p)}{SOH}271={size}{SOH}"
                f"273={t}{SOH}290={p + 1}{SOH}"
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
        self, symbols: Sequence[str], *, depth: int, trade_ratio: float, seed: int
    ) -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        if not 0.0 <= trade_ratio <= 1.0:
            raise ValueError(f"trade_ratio must be within 0..1, got {trade_ratio}")
        self.seed = seed
        self.books = {s: SymbolBook(s, depth, trade_ratio, seed) for s in symbols}
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
