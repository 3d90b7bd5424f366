"""The venue's fast (benchmark) stream: closed cycles, correct framing, a live session.

A bare client written for these tests frames and decodes every message with `fix_spec`
(BodyLength and CheckSum checked) and rebuilds the books from the W and X it receives.
No timing is asserted; rates are capped so the tests do not depend on the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal

import pytest
from polling import until

from fix_session.venue import SimulatedVenue
from fix_session.venue.fast import TIME_PLACEHOLDER, session_cycle, symbol_cycle
from fix_session.venue.market import SymbolBook
from fix_session.venue.market_data import StreamSubscription
from fix_spec import fix44
from fix_spec.fix44.enums import (
    EncryptMethod,
    MDEntryType,
    MDUpdateAction,
    MDUpdateType,
    SubscriptionRequestType,
)
from fix_spec.fix44.header import Header, Message
from fix_spec.fix44.messages import (
    Heartbeat,
    Logon,
    Logout,
    MarketDataIncrementalRefresh,
    MarketDataRequest,
    MarketDataSnapshotFullRefresh,
)
from fix_spec.fix44.messages import TestRequest as FixTestRequest  # pytest would collect it
from mdfeed.kernel.config import VenueConfig

SYMBOLS = ("AAPL", "MSFT", "NVDA", "TSLA")
CONFIG = VenueConfig(port=0, seed=42, symbols=SYMBOLS, stream="fast", fast_rate_ticks_per_s=40_000)
Book = dict[MDEntryType, list[tuple[Decimal, Decimal]]]


class Client:
    """A bare FIX 4.4 initiator that keeps every message it reads, decoded."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.seq = 1
        self.buf = b""

    @classmethod
    async def connect(cls, port: int) -> Client:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    def send(self, message: Message) -> None:
        message.header = Header(
            sender_comp_id="MDFEED",
            target_comp_id="VENUE",
            msg_seq_num=self.seq,
            sending_time=time.time_ns() // 1_000_000 * 1_000_000,
        )
        self.seq += 1
        self.writer.write(fix44.encode(message))

    async def recv(self, timeout: float = 3.0) -> Message:  # noqa: ASYNC109 - a default deadline per read
        async with asyncio.timeout(timeout):
            while True:
                soh = self.buf.find(b"\x01", 12)
                if soh > 0:
                    end = soh + 1 + int(self.buf[12:soh]) + 7
                    if len(self.buf) >= end:
                        frame, self.buf = self.buf[:end], self.buf[end:]
                        message = fix44.decode(frame)  # checks BodyLength and CheckSum
                        assert isinstance(message, Message)
                        return message
                data = await self.reader.read(1 << 16)
                if not data:
                    raise EOFError("the venue closed the connection")
                self.buf += data

    async def collect(self, seconds: float) -> list[Message]:
        out: list[Message] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                out.append(await self.recv(left))
            except TimeoutError:
                break
        return out

    async def logon(self) -> None:
        self.send(
            Logon(encrypt_method=EncryptMethod.NONE, heart_bt_int=30, reset_seq_num_flag=True)
        )
        assert isinstance(await self.recv(), Logon)

    def subscribe(self, symbols: Sequence[str], md_req_id: str) -> None:
        request = MarketDataRequest
        kinds = (MDEntryType.BID, MDEntryType.OFFER, MDEntryType.TRADE)
        self.send(
            request(
                md_req_id=md_req_id,
                subscription_request_type=SubscriptionRequestType.SNAPSHOT_AND_UPDATES,
                market_depth=10,
                md_update_type=MDUpdateType.INCREMENTAL_REFRESH,
                no_md_entry_types=[request.NoMDEntryTypes(md_entry_type=t) for t in kinds],
                no_related_sym=[request.NoRelatedSym(symbol=s) for s in symbols],
            )
        )

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


@pytest.fixture
async def venue() -> AsyncIterator[SimulatedVenue]:
    async with SimulatedVenue(CONFIG) as v:
        yield v


@pytest.fixture
async def client(venue: SimulatedVenue) -> AsyncIterator[Client]:
    c = await Client.connect(venue.port)
    yield c
    await c.close()


def apply(
    books: dict[str, Book], last: dict[str, tuple[Decimal, Decimal]], message: Message
) -> None:
    """Apply a W or X to position-keyed books, checking each entry against the book."""
    if isinstance(message, MarketDataSnapshotFullRefresh):
        assert message.symbol is not None
        book: Book = {MDEntryType.BID: [], MDEntryType.OFFER: []}
        for e in message.no_md_entries:
            assert e.md_entry_px is not None
            assert e.md_entry_size is not None
            if e.md_entry_type is MDEntryType.TRADE:
                last[message.symbol] = (e.md_entry_px, e.md_entry_size)
            else:
                book[e.md_entry_type].append((e.md_entry_px, e.md_entry_size))
        books[message.symbol] = book
        return
    assert isinstance(message, MarketDataIncrementalRefresh)
    for x in message.no_md_entries:
        assert x.symbol is not None
        assert x.md_entry_px is not None
        assert x.md_entry_time is not None
        if x.md_entry_type is MDEntryType.TRADE:
            assert x.md_entry_size is not None
            last[x.symbol] = (x.md_entry_px, x.md_entry_size)
            continue
        assert x.md_entry_type is not None
        assert x.md_entry_position_no is not None
        side = books[x.symbol][x.md_entry_type]
        index = x.md_entry_position_no - 1
        if x.md_update_action is MDUpdateAction.NEW:
            assert x.md_entry_size is not None
            side.insert(index, (x.md_entry_px, x.md_entry_size))
        elif x.md_update_action is MDUpdateAction.CHANGE:
            assert x.md_entry_size is not None
            assert side[index][0] == x.md_entry_px
            side[index] = (x.md_entry_px, x.md_entry_size)
        else:
            assert side[index][0] == x.md_entry_px
            del side[index]


def venue_book(venue: SimulatedVenue, symbol: str) -> tuple[Book, tuple[Decimal, Decimal] | None]:
    snap = venue.book(symbol)
    book: Book = {
        MDEntryType.BID: [(Decimal(lv.price), Decimal(lv.size)) for lv in snap.bids],
        MDEntryType.OFFER: [(Decimal(lv.price), Decimal(lv.size)) for lv in snap.offers],
    }
    trade = snap.last_trade
    return book, (Decimal(trade.price), Decimal(trade.size)) if trade else None


# -- the cycles, without a network -------------------------------------------------------


@pytest.mark.parametrize("trade_ratio", [0.0, 0.1, 1.0])
def test_a_symbol_cycle_closes_on_its_starting_book_and_moves_the_top(trade_ratio: float) -> None:
    book = SymbolBook("AAPL", depth=10, trade_ratio=0.1, seed=3)
    before = book.snapshot()
    cycle = symbol_cycle(book, trade_ratio=trade_ratio, seed=3)
    assert book.snapshot() == before  # the cycle is planned on a copy
    texts = [step.text for step in cycle.steps]
    trades = sum(1 for step in cycle.steps if step.is_trade)
    if trade_ratio == 0.0:
        assert trades == 0
        assert cycle.last_trade is None
    else:
        assert trades > 0
        assert cycle.last_trade is not None
    if trade_ratio < 1.0:
        assert any("279=2" in t for t in texts)  # top-of-book moves: DELETE + NEW
        assert any(t.startswith("279=1") for t in texts)  # size changes
        assert 0.5 * trade_ratio <= trades / cycle.entries <= 2 * trade_ratio + 0.01
    assert all(f"273={TIME_PLACEHOLDER}" in t for t in texts)


def test_the_same_seed_gives_the_same_cycle_and_another_seed_another() -> None:
    one = symbol_cycle(SymbolBook("MSFT", 10, 0.1, 5), trade_ratio=0.1, seed=5)
    two = symbol_cycle(SymbolBook("MSFT", 10, 0.1, 5), trade_ratio=0.1, seed=5)
    other = symbol_cycle(SymbolBook("MSFT", 10, 0.1, 5), trade_ratio=0.1, seed=6)
    assert one == two
    assert one.steps != other.steps


def test_a_session_cycle_packs_up_to_the_cap_and_shares_messages_between_symbols() -> None:
    cycles = {s: symbol_cycle(SymbolBook(s, 10, 0.1, 1), trade_ratio=0.1, seed=1) for s in SYMBOLS}
    grouped = [StreamSubscription(s, "all", book=True, trades=True) for s in SYMBOLS]
    cycle = session_cycle(cycles, grouped, max_entries=20, seed=1)
    assert cycle.entries == sum(c.entries for c in cycles.values())
    assert all(m.entries <= 20 for m in cycle.messages)
    assert sum(m.entries for m in cycle.messages) / len(cycle.messages) > 18
    assert max(sum(f"55={s}\x01".encode() in m.tail for s in SYMBOLS) for m in cycle.messages) > 1
    assert all(m.tail_sum == sum(m.tail) for m in cycle.messages)
    # One request per symbol: an X carries one MDReqID, so one symbol.
    single = [StreamSubscription(s, s, book=True, trades=True) for s in SYMBOLS]
    alone = session_cycle(cycles, single, max_entries=20, seed=1)
    for m in alone.messages:
        req = m.tail.split(b"\x01", 1)[0].removeprefix(b"262=").decode()
        assert m.tail.count(f"55={req}\x01".encode()) == m.tail.count(b"\x0155=") + (
            m.tail.startswith(b"55=")
        )


# -- a live session ---------------------------------------------------------------------


async def test_fast_stream_rebuilds_the_venue_books_with_contiguous_sequences(
    venue: SimulatedVenue, client: Client
) -> None:
    await client.logon()
    client.subscribe(SYMBOLS, "all")
    books: dict[str, Book] = {}
    last: dict[str, tuple[Decimal, Decimal]] = {}
    messages = await client.collect(1.0)
    # A TestRequest in the middle of the stream is answered with its id.
    client.send(FixTestRequest(test_req_id="mid-stream"))
    messages += await client.collect(0.3)
    venue.pause_stream()
    await until(lambda: venue.stream_idle, timeout_s=5, interval_s=0.01, what="cycle end")
    messages += await client.collect(0.3)  # what was in flight
    seqs = [m.header.msg_seq_num for m in messages]
    assert seqs == list(range(2, 2 + len(messages)))  # 1 was the Logon
    assert [m.MSG_TYPE for m in messages[: len(SYMBOLS)]] == ["W"] * len(SYMBOLS)
    assert any(isinstance(m, Heartbeat) and m.test_req_id == "mid-stream" for m in messages)
    xs = [m for m in messages if isinstance(m, MarketDataIncrementalRefresh)]
    assert all(m.md_req_id == "all" for m in xs)
    assert all(len(m.no_md_entries) <= 20 for m in xs)
    assert sum(len(m.no_md_entries) for m in xs) / len(xs) > 15
    assert any(len({e.symbol for e in m.no_md_entries}) > 1 for m in xs)
    for message in messages:
        if isinstance(message, MarketDataSnapshotFullRefresh | MarketDataIncrementalRefresh):
            apply(books, last, message)
    entries = sum(len(m.no_md_entries) for m in xs)
    assert entries > 5_000
    assert venue.stats.entries_sent == entries
    assert sum(venue.stats.per_symbol[s].entries for s in SYMBOLS) == entries
    for symbol in SYMBOLS:
        expected_book, expected_last = venue_book(venue, symbol)
        assert books[symbol] == expected_book, symbol
        assert last.get(symbol) == expected_last, symbol


async def test_resubscribing_mid_stream_sends_a_snapshot_the_stream_continues_from(
    venue: SimulatedVenue, client: Client
) -> None:
    await client.logon()
    client.subscribe(SYMBOLS[:2], "first")
    messages = await client.collect(0.4)
    client.subscribe(SYMBOLS[1:3], "second")
    messages += await client.collect(0.4)
    venue.pause_stream()
    await until(lambda: venue.stream_idle, timeout_s=5, interval_s=0.01, what="cycle end")
    messages += await client.collect(0.3)
    books: dict[str, Book] = {}
    last: dict[str, tuple[Decimal, Decimal]] = {}
    for message in messages:
        if isinstance(message, MarketDataSnapshotFullRefresh | MarketDataIncrementalRefresh):
            apply(books, last, message)
    snapshots = [m for m in messages if isinstance(m, MarketDataSnapshotFullRefresh)]
    # The moved symbol's snapshot waits for the end of the cycle in flight; the new one's not.
    assert [m.symbol for m in snapshots] == [*SYMBOLS[:2], SYMBOLS[2], SYMBOLS[1]]
    xs = [m for m in messages if isinstance(m, MarketDataIncrementalRefresh)]
    # After its new snapshot, the moved symbol streams under the new MDReqID only.
    moved_w = messages.index(snapshots[3])
    for m in xs:
        if messages.index(m) > moved_w and m.md_req_id == "first":
            assert {e.symbol for e in m.no_md_entries} == {SYMBOLS[0]}
    assert {m.md_req_id for m in xs} == {"first", "second"}
    for symbol in SYMBOLS[:3]:
        assert books[symbol] == venue_book(venue, symbol)[0], symbol


async def test_an_unread_connection_stays_bounded_and_the_session_still_logs_out() -> None:
    config = VenueConfig(port=0, seed=1, symbols=SYMBOLS, stream="fast")
    async with SimulatedVenue(config, write_high_water=256 << 10) as venue:
        client = await Client.connect(venue.port)
        await client.logon()
        client.subscribe(SYMBOLS, "all")
        await until(
            lambda: venue.stats.entries_sent > 10_000, timeout_s=10, interval_s=0.01, what="stream"
        )
        session = venue.session()
        for _ in range(20):  # the writer waits on the reader: nothing grows without bound
            await asyncio.sleep(0.02)
            assert session.write_buffer_size < (256 << 10) + (300 << 10)
        sent = venue.stats.bytes_sent
        await asyncio.sleep(0.2)
        assert venue.stats.bytes_sent - sent < 1 << 20  # stalled, not streaming on
        client.send(Logout())
        seen = []
        with contextlib.suppress(EOFError):
            while True:
                seen.append(await client.recv(5.0))
        assert isinstance(seen[-1], Logout)
        await client.close()


async def read_raw(client: Client, seconds: float) -> bytes:
    """Bytes as they come, undecoded, so the reader keeps up with an uncapped stream."""
    out = bytearray()
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(left):
                out += await client.reader.read(1 << 20)
    return bytes(out)


async def test_uncapped_stream_runs_at_the_readers_pace_and_set_rate_caps_it(
    venue: SimulatedVenue, client: Client
) -> None:
    venue.set_rate(0)
    assert venue.rate == 0
    await client.logon()
    client.subscribe(SYMBOLS, "all")
    uncapped = await read_raw(client, 0.5)
    assert uncapped.count(b"\x0135=X\x01") > 1_000
    venue.set_rate(2_000)
    await read_raw(client, 0.3)  # what the uncapped writer had queued
    capped = await read_raw(client, 1.0)
    assert 1_000 <= capped.count(b"\x01279=") <= 2 * 2_000
