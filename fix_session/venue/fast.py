"""The venue's benchmark stream: pre-encoded X cycles, written as fast as the reader takes.

The random-walk stream (`fix_session.venue.server`) formats every entry as it goes and
tops out near 530K entries/s. This mode (``VenueConfig.stream = "fast"``, ``mdfeed venue
--fast``) encodes the X messages of a session once and then only patches them, so the
benchmark measures the reader, not the simulator.

* Each symbol has a closed cycle of market steps (`symbol_cycle`), drawn from the seed and
  the symbol: size CHANGEs of existing levels (279=1) and occasional top-of-book moves
  done as DELETE + NEW pairs (one side shifting one tick, at most `MAX_SPREAD_TICKS`
  wide), then the same steps undone in reverse order, so the cycle ends on the very book
  the session's snapshot (W) showed; trades (269=2, at the best bid or offer) are
  `VenueConfig.trade_ratio` of the entries. The venue's market never moves in this mode:
  `SimulatedVenue.book` is the W state, and its last trade is the cycle's last trade, so
  after a whole cycle a correct reader holds exactly `book`. The entries carry MDEntryPx
  and MDEntryPositionNo, a shift deleting first, so they hold under the ``price`` and
  ``position`` book models (`VenueConfig.book_model`); ``entry_id`` is refused, as a
  cycle that repeats cannot give every new level a fresh MDEntryID.
* A session's cycle (`SessionCycle`) interleaves the cycles of its subscribed symbols at
  random (each symbol's steps in order) and packs them like the random-walk stream: one
  MDReqID per X, so symbols subscribed together share messages, at most
  `max_entries_per_message` entries per X, a step's entries never split.
* Writing: per message only the header changes. MsgSeqNum(34), BodyLength(9) and
  SendingTime(52) are formatted per message and CheckSum(10) is the body's byte sum,
  computed once, plus the sum of the patched bytes. Entries carry MDEntryTime(273) as in
  the random-walk stream; it is written as a placeholder and replaced in the whole chunk
  by the chunk's time of day (same width, so the lengths hold; the checksum adds the
  difference once per occurrence). Messages go out in chunks of about `CHUNK_BYTES`.
* Back-pressure and pacing: after each chunk the writer waits on the transport's drain
  (write buffer above the venue's `write_high_water`) and yields to the loop, so
  heartbeats, TestRequests and Logout are served in between and nothing is buffered
  without bound. With `VenueConfig.fast_rate_ticks_per_s` = 0 (the default) the rate is
  the reader's pace; a positive rate (or `SimulatedVenue.set_rate`) caps the entries per
  second.
* Boundaries: pausing (`SimulatedVenue.pause_stream`), subscription changes and
  snapshots of symbols the cycle is streaming take effect at the end of the cycle in
  flight (a few milliseconds at full speed), where every book is back to its W state.
  `SimulatedVenue.stream_idle` is True once every session's writer waits at a boundary.

Measured on the shared 2-core development machine (``mdfeed venue --fast``, uvloop, 50
symbols in one MarketDataRequest) against a reader in another process that only counts
bytes, X frames and entries over 5-8 s: 2.2M-3.5M entries/s (112K-175K X/s, 19.9 entries
per X, 144-226 MB/s), the venue at ~0.65 of a core, the reader being the limit; with the
machine at load average ~4.7, ``bench/test_venue_fast_bench.py`` saw 1.38M entries/s with
the venue at 0.35 CPU s per s.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from fix_session.venue.market import MAX_SPREAD_TICKS, LastTrade, SymbolBook, Tick, price_text
from fix_session.venue.market_data import StreamSubscription
from fix_session.venue.stats import SymbolStats
from fix_session.venue.wire import utc_timestamp

SOH = "\x01"
#: Book steps of one symbol's cycle before they are undone (the cycle has twice as many).
HALF_CYCLE_STEPS = 60
#: Share of book steps that move the top of the book (DELETE + NEW) rather than a size.
SHIFT_SHARE = 0.15
#: Bytes the writer puts in one socket write, about.
CHUNK_BYTES = 256 << 10
#: Stands for MDEntryTime(273) in the pre-encoded entries; replaced per chunk.
TIME_PLACEHOLDER = "00:00:00.000"
_PLACEHOLDER_B = TIME_PLACEHOLDER.encode("latin-1")
_PLACEHOLDER_SUM = sum(_PLACEHOLDER_B)
#: A rate-capped writer forgets a backlog older than this instead of bursting it out.
_MAX_BACKLOG_S = 0.1
_INVERSE = {"bid_up": "bid_down", "bid_down": "bid_up", "ask_up": "ask_down", "ask_down": "ask_up"}
_LEVEL_SIZES = tuple(str(n) for n in range(100, 5001, 100))
_TRADE_SIZES = tuple(str(n) for n in (*range(1, 100, 7), *range(100, 2001, 100)))


@dataclass(frozen=True, slots=True)
class SymbolCycle:
    """One symbol's closed cycle: its steps in order and the last trade they leave."""

    symbol: str
    steps: tuple[Tick, ...]
    last_trade: LastTrade | None

    @property
    def entries(self) -> int:
        """Entries of the whole cycle."""
        return sum(step.entries for step in self.steps)


class _Walk:
    """A copy of a book's levels that the cycle's steps move and format."""

    def __init__(self, book: SymbolBook) -> None:
        self.symbol = book.symbol
        self.depth = book.depth
        self.bid = book.bid
        self.ask = book.ask
        self.bid_sizes = list(book.bid_sizes)
        self.ask_sizes = list(book.ask_sizes)

    def entry(self, action: str, kind: str, px: int, size: str | None, pos: int | None) -> str:
        text = f"279={action}{SOH}269={kind}{SOH}55={self.symbol}{SOH}270={price_text(px)}{SOH}"
        if size is not None:
            text += f"271={size}{SOH}"
        text += f"273={TIME_PLACEHOLDER}{SOH}"
        if pos is not None:
            text += f"290={pos}{SOH}"
        return text

    def moves(self) -> list[str]:
        """The top-of-book moves that keep 1 <= spread <= MAX_SPREAD_TICKS and prices > 0."""
        spread = self.ask - self.bid
        out = []
        if spread > 1:
            out += ["bid_up", "ask_down"]
        if spread < MAX_SPREAD_TICKS:
            out.append("ask_up")
            if self.bid - self.depth >= 1:
                out.append("bid_down")
        return out

    def shift(self, move: str, size: str) -> tuple[str, str]:
        """Apply a move whose new level has `size`; (wire text, size of the level gone)."""
        depth, last = self.depth, self.depth - 1
        if move == "bid_up":
            gone = self.entry("2", "0", self.bid - last, None, depth)
            gone_size = self.bid_sizes.pop()
            self.bid += 1
            self.bid_sizes.insert(0, size)
            new = self.entry("0", "0", self.bid, size, 1)
        elif move == "bid_down":
            gone = self.entry("2", "0", self.bid, None, 1)
            gone_size = self.bid_sizes.pop(0)
            self.bid -= 1
            self.bid_sizes.append(size)
            new = self.entry("0", "0", self.bid - last, size, depth)
        elif move == "ask_up":
            gone = self.entry("2", "1", self.ask, None, 1)
            gone_size = self.ask_sizes.pop(0)
            self.ask += 1
            self.ask_sizes.append(size)
            new = self.entry("0", "1", self.ask + last, size, depth)
        else:  # ask_down
            gone = self.entry("2", "1", self.ask + last, None, depth)
            gone_size = self.ask_sizes.pop()
            self.ask -= 1
            self.ask_sizes.insert(0, size)
            new = self.entry("0", "1", self.ask, size, 1)
        return gone + new, gone_size

    def change(self, side: str, index: int, size: str) -> tuple[str, str]:
        """Set a level's size; (wire text, the size it had)."""
        sizes = self.bid_sizes if side == "0" else self.ask_sizes
        old, sizes[index] = sizes[index], size
        px = self.bid - index if side == "0" else self.ask + index
        return self.entry("1", side, px, size, index + 1), old


def symbol_cycle(
    book: SymbolBook, *, trade_ratio: float, seed: int, half_steps: int = HALF_CYCLE_STEPS
) -> SymbolCycle:
    """The closed cycle of `book`'s symbol: `half_steps` book steps, undone, and trades.

    Depends only on the book's state, `trade_ratio`, `seed` and the symbol.
    """
    rng = random.Random(f"{seed}:{book.symbol}:fast")
    # Plan the book steps on a copy, each with its undo, so the cycle can close.
    walk = _Walk(book)
    forward: list[tuple[str, str, int, str]] = []  # (kind, move or side, level index, size)
    undo: list[tuple[str, str, int, str]] = []
    for _ in range(half_steps):
        moves = walk.moves()
        if moves and rng.random() < SHIFT_SHARE:
            move, size = rng.choice(moves), rng.choice(_LEVEL_SIZES)
            _, gone_size = walk.shift(move, size)
            forward.append(("shift", move, 0, size))
            undo.append(("shift", _INVERSE[move], 0, gone_size))
        else:
            side, index = ("0" if rng.random() < 0.5 else "1"), rng.randrange(walk.depth)
            sizes = walk.bid_sizes if side == "0" else walk.ask_sizes
            size = rng.choice([s for s in _LEVEL_SIZES if s != sizes[index]])
            _, old = walk.change(side, index, size)
            forward.append(("change", side, index, size))
            undo.append(("change", side, index, old))
    # Replay from the start, now writing the text, with trades between the steps.
    walk = _Walk(book)
    book_entries = 1.0 + SHIFT_SHARE
    denominator = 1.0 - trade_ratio + trade_ratio * book_entries
    p_trade = trade_ratio * book_entries / denominator if denominator else 1.0
    steps: list[Tick] = []
    last_trade: LastTrade | None = None
    for kind, what, index, size in forward + undo[::-1]:
        trades = 0
        while rng.random() < p_trade and trades < 8:
            trades += 1
            px = walk.ask if rng.random() < 0.5 else walk.bid
            trade_size = rng.choice(_TRADE_SIZES)
            steps.append(Tick(book.symbol, walk.entry("0", "2", px, trade_size, None), 1, True))
            last_trade = LastTrade(price_text(px), trade_size, TIME_PLACEHOLDER)
        if kind == "shift":
            text, _ = walk.shift(what, size)
            steps.append(Tick(book.symbol, text, 2, False))
        else:
            text, _ = walk.change(what, index, size)
            steps.append(Tick(book.symbol, text, 1, False))
    if (walk.bid, walk.ask, walk.bid_sizes, walk.ask_sizes) != (
        book.bid,
        book.ask,
        book.bid_sizes,
        book.ask_sizes,
    ):
        raise AssertionError(f"{book.symbol}: the fast cycle does not return to its start")
    return SymbolCycle(book.symbol, tuple(steps), last_trade)


@dataclass(frozen=True, slots=True)
class EncodedX:
    """One pre-encoded X: the body after the header, and what the writer patches in."""

    #: ``262=...<SOH>268=n<SOH>`` and the entries.
    tail: bytes
    #: Byte sum of `tail` as written (with the time placeholder).
    tail_sum: int
    #: MDEntryTime(273) placeholders in `tail`.
    times: int
    entries: int


@dataclass(frozen=True, slots=True)
class SessionCycle:
    """The X messages of one session's cycle, packed, and what they carry per symbol."""

    messages: tuple[EncodedX, ...]
    entries: int
    #: symbol -> (entries, trades) in one cycle.
    per_symbol: Mapping[str, tuple[int, int]]


def session_cycle(
    cycles: Mapping[str, SymbolCycle],
    subscriptions: Sequence[StreamSubscription],
    *,
    max_entries: int,
    seed: int,
) -> SessionCycle:
    """Interleave the subscribed symbols' cycles and pack them into X messages."""
    order: list[list[Tick]] = []
    for sub in subscriptions:
        steps = [s for s in cycles[sub.symbol].steps if (sub.trades if s.is_trade else sub.book)]
        order.append(steps)
    picks = [i for i, steps in enumerate(order) for _ in steps]
    random.Random(f"{seed}:fast-order:{len(picks)}").shuffle(picks)
    cursors = [0] * len(order)
    pending: dict[str, tuple[list[str], int]] = {}
    messages: list[EncodedX] = []
    per_symbol: dict[str, tuple[int, int]] = {}

    def emit(md_req_id: str, texts: list[str], count: int) -> None:
        tail = f"262={md_req_id}{SOH}268={count}{SOH}{''.join(texts)}".encode("latin-1")
        messages.append(EncodedX(tail, sum(tail), tail.count(_PLACEHOLDER_B), count))

    for i in picks:
        step = order[i][cursors[i]]
        cursors[i] += 1
        sub = subscriptions[i]
        entries, trades = per_symbol.get(step.symbol, (0, 0))
        per_symbol[step.symbol] = (entries + step.entries, trades + step.is_trade)
        batch = pending.get(sub.md_req_id)
        if batch is None:
            pending[sub.md_req_id] = ([step.text], step.entries)
        elif batch[1] + step.entries > max_entries:
            emit(sub.md_req_id, *batch)
            pending[sub.md_req_id] = ([step.text], step.entries)
        else:
            batch[0].append(step.text)
            pending[sub.md_req_id] = (batch[0], batch[1] + step.entries)
    for md_req_id, batch in pending.items():
        emit(md_req_id, *batch)
    return SessionCycle(tuple(messages), sum(m.entries for m in messages), per_symbol)


class FastSession(Protocol):
    """What the fast writer needs of the session it writes to (`VenueSession`)."""

    next_out_seq: int
    #: Symbols of the cycle in flight: their snapshots wait for its end.
    in_cycle: frozenset[str]

    @property
    def streaming(self) -> bool: ...

    @property
    def subscription_version(self) -> int: ...

    @property
    def header_text(self) -> str: ...

    def stream_subscriptions(self) -> list[StreamSubscription]: ...

    def take_deferred_snapshots(self) -> list[tuple[str, str]]: ...

    def send_snapshot(self, symbol: str, md_req_id: str) -> None: ...

    def write_x(self, data: bytes, messages: int, entries: int) -> None: ...

    async def drain(self) -> None: ...

    @property
    def symbol_stats(self) -> Mapping[str, SymbolStats]: ...


class FastHost(Protocol):
    """What the fast writer needs of its venue."""

    @property
    def paused(self) -> bool: ...

    @property
    def fast_rate(self) -> int: ...

    @property
    def max_entries_per_message(self) -> int: ...

    def session_cycle(self, subscriptions: Sequence[StreamSubscription]) -> SessionCycle: ...

    async def wait_wake(self) -> None: ...


class FastWriter:
    """Writes one session's cycle again and again; `run` until the session stops streaming."""

    def __init__(self, host: FastHost, session: FastSession) -> None:
        self._host = host
        self._session = session
        #: True while the writer waits at a cycle boundary (paused or nothing to stream).
        self.idle = True
        self.cycles_sent = 0
        # Pacing of a capped rate: entries sent since _base_t at _base_rate.
        self._base_t: float | None = None
        self._base_n = 0
        self._base_rate = 0

    def _frames(
        self, cycle: SessionCycle, start: int, budget_entries: int
    ) -> tuple[bytes, int, int]:
        """Messages from `start` until CHUNK_BYTES or `budget_entries`: (bytes, count, entries)."""
        session = self._session
        now = time.time_ns()
        sending = utc_timestamp(now).encode("latin-1")
        time_of_day = sending[9:]
        head_mid = f"35=X{SOH}{session.header_text}34=".encode("latin-1")
        time_part = b"\x0152=" + sending + b"\x01"
        # BodyLength counts from 35= through the SOH before 10=; the checksum all before it.
        fixed_len = len(head_mid) + len(time_part)
        fixed_sum = sum(b"8=FIX.4.4\x019=\x01") + sum(head_mid) + sum(time_part)
        delta = sum(time_of_day) - _PLACEHOLDER_SUM
        messages = cycle.messages
        seq = session.next_out_seq
        parts: list[bytes] = []
        size = 0
        entries = 0
        i = start
        end = len(messages)
        while i < end and size < CHUNK_BYTES and entries < budget_entries:
            m = messages[i]
            seq_b = b"%d" % seq
            length_b = b"%d" % (fixed_len + len(seq_b) + len(m.tail))
            total = fixed_sum + sum(seq_b) + sum(length_b) + m.tail_sum + m.times * delta
            parts.append(
                b"8=FIX.4.4\x019=%b\x01%b%b%b%b10=%03d\x01"
                % (length_b, head_mid, seq_b, time_part, m.tail, total & 0xFF)
            )
            size += len(m.tail) + 100
            entries += m.entries
            seq += 1
            i += 1
        session.next_out_seq = seq
        data = b"".join(parts)
        if time_of_day != _PLACEHOLDER_B:
            data = data.replace(_PLACEHOLDER_B, time_of_day)
        return data, i - start, entries

    async def run(self) -> None:
        """Write cycles until the session stops streaming."""
        host, session = self._host, self._session
        cycle: SessionCycle | None = None
        version = -1
        while session.streaming:
            # A cycle boundary: every book of the session is back at its snapshot.
            if host.paused:
                self.idle = True
                await host.wait_wake()
                continue
            for symbol, md_req_id in session.take_deferred_snapshots():
                session.send_snapshot(symbol, md_req_id)
            if cycle is None or version != session.subscription_version:
                version = session.subscription_version
                cycle = host.session_cycle(session.stream_subscriptions())
            if not cycle.messages:
                self.idle = True
                await host.wait_wake()
                continue
            self.idle = False
            session.in_cycle = frozenset(cycle.per_symbol)
            if not await self._write_cycle(cycle):
                break
            session.in_cycle = frozenset()
            self.cycles_sent += 1
            stats = session.symbol_stats
            for symbol, (entries, trades) in cycle.per_symbol.items():
                sym = stats.get(symbol)
                if sym is not None:
                    sym.entries += entries
                    sym.trades += trades
        self.idle = True

    async def _write_cycle(self, cycle: SessionCycle) -> bool:
        """Write one whole cycle; False if the session stopped streaming on the way."""
        host, session = self._host, self._session
        loop = asyncio.get_running_loop()
        i, count = 0, len(cycle.messages)
        while i < count:
            budget = 1 << 62
            rate = host.fast_rate
            if rate > 0:
                now = loop.time()
                if rate != self._base_rate or self._base_t is None:
                    self._base_t, self._base_n, self._base_rate = now, 0, rate
                budget = int((now - self._base_t) * rate) - self._base_n
                if budget > rate * _MAX_BACKLOG_S:
                    # Paused or blocked: forget the backlog rather than burst it out.
                    self._base_t, self._base_n = now, 0
                    budget = max(1, rate // 1000)
                if budget <= 0:
                    await asyncio.sleep(max(0.001, -budget / rate))
                    continue
            data, sent, entries = self._frames(cycle, i, budget)
            i += sent
            self._base_n += entries
            session.write_x(data, sent, entries)
            await session.drain()
            await asyncio.sleep(0)
            if not session.streaming:
                return False
        return True
