"""The simulated venue over real TCP, driven by a raw FIX client written for these tests.

The client frames and decodes with `fix_spec` (so every message the venue sends is also
checked against the FIX 4.4 dictionary) and cuts frames itself, independently of the
venue's own frame splitter. Timing assertions are generous bounds, never exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from decimal import Decimal

import pytest

from fix_session.venue import SimulatedVenue, incremental_refresh_fields
from fix_spec import fix44
from fix_spec.codec import FixDecodeError
from fix_spec.fix44.enums import (
    EncryptMethod,
    MDEntryType,
    MDReqRejReason,
    MDUpdateAction,
    MDUpdateType,
    SessionRejectReason,
    SubscriptionRequestType,
)
from fix_spec.fix44.groups import MDIncGrpNoMDEntries
from fix_spec.fix44.header import Header, Message
from fix_spec.fix44.messages import (
    Heartbeat,
    Logon,
    Logout,
    MarketDataIncrementalRefresh,
    MarketDataRequest,
    MarketDataRequestReject,
    MarketDataSnapshotFullRefresh,
    Reject,
    ResendRequest,
    SequenceReset,
)
from fix_spec.fix44.messages import (
    TestRequest as FixTestRequest,  # not TestRequest: pytest would collect it
)
from mdfeed.kernel.config import VenueConfig

FRAME_START = b"8=FIX.4.4\x019="
CONFIG = VenueConfig(port=0, seed=42, rate_ticks_per_s=2000)


class FixClient:
    """A bare FIX 4.4 initiator: sends typed messages, reads and decodes frames."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sender: str, target: str
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.sender = sender
        self.target = target
        self.seq = 1
        self.buf = b""

    @classmethod
    async def connect(cls, port: int, sender: str = "MDFEED", target: str = "VENUE") -> FixClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer, sender, target)

    def send(self, message: Message, *, seq: int | None = None, poss_dup: bool = False) -> int:
        if seq is None:
            seq = self.seq
            self.seq += 1
        now = time.time_ns() // 1_000_000 * 1_000_000
        message.header = Header(
            sender_comp_id=self.sender,
            target_comp_id=self.target,
            msg_seq_num=seq,
            sending_time=now,
            poss_dup_flag=True if poss_dup else None,
            orig_sending_time=now if poss_dup else None,
        )
        self.writer.write(fix44.encode(message))
        return seq

    def send_bytes(self, data: bytes) -> None:
        self.writer.write(data)

    def _take(self) -> bytes | None:
        buf = self.buf
        if not buf:
            return None
        assert buf.startswith(FRAME_START[: len(buf)]), f"venue sent non-FIX bytes: {buf[:80]!r}"
        soh = buf.find(b"\x01", len(FRAME_START))
        if soh < 0:
            return None
        end = soh + 1 + int(buf[len(FRAME_START) : soh]) + 7
        if len(buf) < end:
            return None
        self.buf = buf[end:]
        return buf[:end]

    async def read_frame(self, timeout: float = 3.0) -> bytes:  # noqa: ASYNC109 - a default deadline for each read
        async with asyncio.timeout(timeout):
            while True:
                frame = self._take()
                if frame is not None:
                    return frame
                data = await self.reader.read(1 << 16)
                if not data:
                    raise EOFError("the venue closed the connection")
                self.buf += data

    async def recv(self, timeout: float = 3.0) -> Message:  # noqa: ASYNC109 - a default deadline for each read
        message = fix44.decode(await self.read_frame(timeout))
        assert isinstance(message, Message)
        assert message.header.sender_comp_id == "VENUE"
        assert message.header.target_comp_id == "MDFEED"
        return message

    async def expect(
        self,
        cls: type[Message],
        timeout: float = 3.0,  # noqa: ASYNC109 - a default deadline for each read
        skip: Sequence[str] = ("0",),
    ) -> Message:
        """The next message of type `cls`, skipping only the MsgTypes in `skip`."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.recv(timeout)
                if isinstance(message, cls):
                    return message
                assert message.MSG_TYPE in skip, f"expected {cls.MSG_TYPE}, got {message!r}"

    async def collect(self, seconds: float) -> list[Message]:
        out: list[Message] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                out.append(await self.recv(left))
            except TimeoutError:
                break
        return out

    async def until_closed(self, timeout: float = 5.0) -> list[Message]:  # noqa: ASYNC109 - a default deadline for each read
        """Every message until the venue closes the connection."""
        out: list[Message] = []
        async with asyncio.timeout(timeout):
            while True:
                try:
                    out.append(await self.recv(timeout))
                except EOFError:
                    return out

    async def logon(self, heartbeat: int = 30, reset: bool = True) -> Logon:
        self.send(
            Logon(
                encrypt_method=EncryptMethod.NONE,
                heart_bt_int=heartbeat,
                reset_seq_num_flag=True if reset else None,
            )
        )
        reply = await self.expect(Logon, skip=())
        assert isinstance(reply, Logon)
        return reply

    def subscribe(
        self,
        symbols: Sequence[str],
        md_req_id: str = "req-1",
        kind: SubscriptionRequestType = SubscriptionRequestType.SNAPSHOT_AND_UPDATES,
        types: Sequence[MDEntryType] = (MDEntryType.BID, MDEntryType.OFFER, MDEntryType.TRADE),
    ) -> int:
        request = MarketDataRequest
        return self.send(
            request(
                md_req_id=md_req_id,
                subscription_request_type=kind,
                market_depth=10,
                md_update_type=MDUpdateType.INCREMENTAL_REFRESH,
                no_md_entry_types=[request.NoMDEntryTypes(md_entry_type=t) for t in types],
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
async def client(venue: SimulatedVenue) -> AsyncIterator[FixClient]:
    c = await FixClient.connect(venue.port)
    yield c
    await c.close()


def x_entries(messages: Sequence[Message]) -> list[MDIncGrpNoMDEntries]:
    return [
        e for m in messages if isinstance(m, MarketDataIncrementalRefresh) for e in m.no_md_entries
    ]


# -- session layer ----------------------------------------------------------------------


async def test_logon_with_reset_is_answered_with_reset_and_heartbeat_interval(
    venue: SimulatedVenue, client: FixClient
) -> None:
    reply = await client.logon(heartbeat=17)
    assert reply.header.msg_seq_num == 1
    assert reply.heart_bt_int == 17
    assert reply.reset_seq_num_flag is True
    assert reply.encrypt_method is EncryptMethod.NONE
    session = await venue.wait_logged_on(1.0)
    assert session.heartbeat_interval == 17
    assert (session.next_out_seq, session.next_in_seq) == (2, 2)
    assert venue.stats.logons == 1


async def test_test_request_is_answered_with_its_test_req_id(client: FixClient) -> None:
    await client.logon()
    client.send(FixTestRequest(test_req_id="ping-7"))
    reply = await client.expect(Heartbeat, skip=())
    assert isinstance(reply, Heartbeat)
    assert reply.test_req_id == "ping-7"
    assert reply.header.msg_seq_num == 2


async def test_idle_venue_heartbeats_then_tests_then_drops_a_silent_peer(
    venue: SimulatedVenue, client: FixClient
) -> None:
    await client.logon(heartbeat=1)
    start = time.monotonic()
    messages = await client.until_closed(timeout=6.0)
    elapsed = time.monotonic() - start
    types = [m.MSG_TYPE for m in messages]
    assert "0" in types, types  # a heartbeat while idle
    test_requests = [m for m in messages if isinstance(m, FixTestRequest)]
    assert len(test_requests) == 1, types
    assert types[-1] == "5", types  # Logout, then the connection closes
    assert 2.0 <= elapsed <= 4.5, elapsed  # 1.2 s to the TestRequest + 1.2 s to give up
    assert venue.stats.test_requests_sent == 1


async def test_a_peer_that_answers_test_requests_stays_connected(
    venue: SimulatedVenue, client: FixClient
) -> None:
    await client.logon(heartbeat=1)
    deadline = time.monotonic() + 3.5
    while time.monotonic() < deadline:
        try:
            message = await client.recv(0.3)
        except TimeoutError:
            continue
        if isinstance(message, FixTestRequest):
            client.send(Heartbeat(test_req_id=message.test_req_id))
        assert not isinstance(message, Logout)
    assert venue.session().logged_on
    assert venue.stats.test_requests_sent >= 1


async def test_resend_request_is_answered_with_one_gap_fill(
    venue: SimulatedVenue, client: FixClient
) -> None:
    await client.logon()
    client.subscribe(["AAPL"], kind=SubscriptionRequestType.SNAPSHOT)
    await client.expect(MarketDataSnapshotFullRefresh, skip=())
    client.send(ResendRequest(begin_seq_no=1, end_seq_no=0))
    fill = await client.expect(SequenceReset, skip=())
    assert isinstance(fill, SequenceReset)
    assert fill.header.msg_seq_num == 1
    assert fill.header.poss_dup_flag is True
    assert fill.header.orig_sending_time is not None
    assert fill.gap_fill_flag is True
    assert fill.new_seq_no == 3
    # The gap fill did not consume a number: the next message is 3.
    client.send(FixTestRequest(test_req_id="after"))
    assert (await client.expect(Heartbeat, skip=())).header.msg_seq_num == 3
    assert venue.stats.resend_requests_received == 1


@pytest.mark.parametrize(("sender", "target"), [("INTRUDER", "VENUE"), ("MDFEED", "ELSEWHERE")])
async def test_wrong_comp_ids_get_a_logout_and_a_disconnect(
    venue: SimulatedVenue, sender: str, target: str
) -> None:
    client = await FixClient.connect(venue.port, sender=sender, target=target)
    try:
        client.send(Logon(encrypt_method=EncryptMethod.NONE, heart_bt_int=30))
        messages = await client.until_closed()
        assert [m.MSG_TYPE for m in messages] == ["5"]
        assert isinstance(messages[0], Logout)
        assert messages[0].text is not None
        assert "CompID" in messages[0].text
        assert sender in messages[0].text or target in messages[0].text
        assert venue.stats.logons == 0
    finally:
        await client.close()


async def test_a_first_message_other_than_logon_is_refused(client: FixClient) -> None:
    client.send(FixTestRequest(test_req_id="too-early"))
    messages = await client.until_closed()
    assert [m.MSG_TYPE for m in messages] == ["5"]
    assert isinstance(messages[0], Logout)
    assert "Logon" in (messages[0].text or "")


async def test_a_sequence_gap_gets_a_resend_request_and_a_gap_fill_closes_it(
    venue: SimulatedVenue, client: FixClient
) -> None:
    await client.logon()
    client.send(Heartbeat(), seq=5)
    request = await client.expect(ResendRequest, skip=())
    assert isinstance(request, ResendRequest)
    assert (request.begin_seq_no, request.end_seq_no) == (2, 4)
    client.send(SequenceReset(gap_fill_flag=True, new_seq_no=6), seq=2, poss_dup=True)
    client.seq = 6
    client.send(FixTestRequest(test_req_id="still-here"))
    reply = await client.expect(Heartbeat, skip=())
    assert isinstance(reply, Heartbeat)
    assert reply.test_req_id == "still-here"
    session = venue.session()
    assert session.next_in_seq == 7
    assert venue.stats.resend_requests_sent == 1


async def test_a_sequence_number_too_low_ends_the_session(client: FixClient) -> None:
    await client.logon()
    client.send(Heartbeat())  # 2
    client.send(Heartbeat(), seq=2, poss_dup=True)  # a duplicate: ignored
    client.send(Heartbeat(), seq=2)  # too low without PossDupFlag
    messages = await client.until_closed()
    assert messages
    assert isinstance(messages[-1], Logout)
    assert messages[-1].text == "MsgSeqNum too low, expecting 3 but received 2"


async def test_undecodable_input_gets_rejects_and_the_session_stays_up(
    venue: SimulatedVenue, client: FixClient
) -> None:
    await client.logon()
    client.send_bytes(b"this is not FIX\x01at all\x01")
    garbage = await client.expect(Reject, skip=())
    assert isinstance(garbage, Reject)
    assert garbage.ref_seq_num == 0
    assert garbage.text
    assert "BeginString" in garbage.text

    test_request = fix44.encode(
        FixTestRequest(
            test_req_id="x",
            header=Header(
                sender_comp_id="MDFEED", target_comp_id="VENUE", msg_seq_num=2, sending_time=0
            ),
        )
    )
    client.send_bytes(test_request[:-4] + b"000\x01")  # wrong CheckSum
    bad_checksum = await client.expect(Reject, skip=())
    assert isinstance(bad_checksum, Reject)
    assert (bad_checksum.ref_seq_num, bad_checksum.ref_tag_id) == (2, 10)

    # Framed correctly but TestReqID(112), required, is missing: MsgSeqNum 2 is consumed.
    body = b"35=1\x0149=MDFEED\x0156=VENUE\x0134=2\x0152=20260101-00:00:00.000\x01"
    head = b"8=FIX.4.4\x019=%d\x01" % len(body)
    client.send_bytes(head + body + b"10=%03d\x01" % (sum(head + body) % 256))
    missing = await client.expect(Reject, skip=())
    assert isinstance(missing, Reject)
    assert (missing.ref_seq_num, missing.ref_tag_id) == (2, 112)
    assert missing.session_reject_reason is SessionRejectReason.REQUIRED_TAG_MISSING
    assert missing.ref_msg_type == "1"

    client.seq = 3
    client.send(FixTestRequest(test_req_id="alive"))
    reply = await client.expect(Heartbeat, skip=())
    assert isinstance(reply, Heartbeat)
    assert reply.test_req_id == "alive"
    stats = venue.stats
    assert (stats.decode_errors, stats.rejects_sent) == (3, 3)
    assert venue.session().logged_on


async def test_logout_from_the_initiator_is_answered_and_closed(
    venue: SimulatedVenue, client: FixClient
) -> None:
    await client.logon()
    session = await venue.wait_logged_on(1.0)
    client.send(Logout(text="bye"))
    messages = await client.until_closed()
    assert [m.MSG_TYPE for m in messages] == ["5"]
    async with asyncio.timeout(2):
        await session.wait_closed()


async def test_stop_logs_sessions_out_and_is_safe_twice(venue: SimulatedVenue) -> None:
    client = await FixClient.connect(venue.port)
    try:
        await client.logon()
        stopping = asyncio.create_task(venue.stop())
        logout = await client.expect(Logout, skip=())
        assert isinstance(logout, Logout)
        client.send(Logout())
        await client.until_closed()
        await stopping
        await venue.stop()
        assert not venue.running
        with pytest.raises(ConnectionRefusedError):
            await FixClient.connect(venue.port)
    finally:
        await client.close()


async def test_restart_binds_the_same_port_and_resumes_sequence_numbers_without_reset(
    venue: SimulatedVenue,
) -> None:
    port = venue.port
    client = await FixClient.connect(port)
    await client.logon()
    client.send(FixTestRequest(test_req_id="1"))
    await client.expect(Heartbeat, skip=())
    client.send(Logout())
    await client.until_closed()
    await client.close()
    await venue.stop()
    await venue.start()
    assert venue.port == port
    again = await FixClient.connect(port)
    try:
        again.seq = 4  # the venue expects 4 from MDFEED after 1..3
        reply = await again.logon(reset=False)
        assert reply.header.msg_seq_num == 4  # it sent 1..3 before
        assert reply.reset_seq_num_flag is None
    finally:
        await again.close()


async def test_send_raw_delivers_bytes_verbatim(venue: SimulatedVenue, client: FixClient) -> None:
    await client.logon()
    await venue.wait_logged_on(1.0)
    payload = b"\x00\xffnot a frame\x01 at all 8=FIX.4.4\x01"
    venue.send_raw(payload)
    async with asyncio.timeout(2):
        assert await client.reader.readexactly(len(payload)) == payload


async def test_built_messages_break_framing_on_request_and_consume_sequence_numbers(
    venue: SimulatedVenue, client: FixClient
) -> None:
    await client.logon()
    await venue.wait_logged_on(1.0)
    good = venue.build_message("1", [(112, "x")], consume_seq=False)
    decoded = fix44.decode(good)
    assert isinstance(decoded, Message)
    assert decoded.header.msg_seq_num == 2
    with pytest.raises(FixDecodeError) as bad_checksum:
        fix44.decode(venue.build_message("1", [(112, "x")], checksum=0, consume_seq=False))
    assert bad_checksum.value.tag == 10
    with pytest.raises(FixDecodeError) as bad_length:
        fix44.decode(venue.build_message("1", [(112, "x")], body_length=3, consume_seq=False))
    assert bad_length.value.tag == 9
    nan = incremental_refresh_fields(
        "req-1", [[(279, "0"), (269, "0"), (55, "AAPL"), (270, "NaN"), (271, "100")]]
    )
    sent = venue.send_message("X", nan)  # consumes MsgSeqNum 2
    async with asyncio.timeout(2):
        assert await client.read_frame() == sent
    with pytest.raises(FixDecodeError) as bad_price:
        fix44.decode(sent)
    assert bad_price.value.tag == 270
    client.send(FixTestRequest(test_req_id="next"))
    reply = await client.expect(Heartbeat, skip=())
    assert reply.header.msg_seq_num == 3


# -- market data ------------------------------------------------------------------------


def check_snapshot(snapshot: Message, symbol: str, depth: int = 10) -> None:
    assert isinstance(snapshot, MarketDataSnapshotFullRefresh)
    assert snapshot.symbol == symbol
    bids = [e for e in snapshot.no_md_entries if e.md_entry_type is MDEntryType.BID]
    offers = [e for e in snapshot.no_md_entries if e.md_entry_type is MDEntryType.OFFER]
    assert [e.md_entry_position_no for e in bids] == list(range(1, depth + 1))
    assert [e.md_entry_position_no for e in offers] == list(range(1, depth + 1))
    bid_px = [p for e in bids if (p := e.md_entry_px) is not None]
    offer_px = [p for e in offers if (p := e.md_entry_px) is not None]
    assert (len(bid_px), len(offer_px)) == (len(bids), len(offers)), "an entry without a price"
    assert all(p > 0 and p.as_tuple().exponent == -2 for p in bid_px + offer_px)
    assert bid_px == sorted(bid_px, reverse=True)
    assert offer_px == sorted(offer_px)
    assert bid_px[0] < offer_px[0]
    assert all(e.md_entry_size and e.md_entry_size > 0 for e in bids + offers)
    assert all(e.md_entry_time for e in snapshot.no_md_entries)


async def test_request_for_known_and_unknown_symbols_gets_snapshots_a_reject_and_a_stream(
    venue: SimulatedVenue, client: FixClient
) -> None:
    await client.logon()
    client.subscribe(["AAPL", "NOPE", "MSFT"], md_req_id="md-1")
    first = [await client.recv() for _ in range(3)]
    assert [m.MSG_TYPE for m in first] == ["W", "Y", "W"]
    check_snapshot(first[0], "AAPL")
    check_snapshot(first[2], "MSFT")
    reject = first[1]
    assert isinstance(reject, MarketDataRequestReject)
    assert reject.md_req_id == "md-1"
    assert reject.md_req_rej_reason is MDReqRejReason.UNKNOWN_SYMBOL
    assert "NOPE" in (reject.text or "")

    window = 1.5
    messages = await client.collect(window)
    assert {m.MSG_TYPE for m in messages} <= {"X", "0"}
    xs = [m for m in messages if isinstance(m, MarketDataIncrementalRefresh)]
    assert all(m.md_req_id == "md-1" for m in xs)
    entries = x_entries(xs)
    assert {e.symbol for e in entries} == {"AAPL", "MSFT"}
    assert all(e.md_entry_time for e in entries)
    assert all(e.md_entry_px is not None and e.md_entry_px > 0 for e in entries)
    assert 0.5 * CONFIG.rate_ticks_per_s * window <= len(entries)
    assert len(entries) <= 1.5 * CONFIG.rate_ticks_per_s * window
    assert max(len(m.no_md_entries) for m in xs) > 1  # several entries per X
    trades = [e for e in entries if e.md_entry_type is MDEntryType.TRADE]
    assert trades
    assert all(e.md_entry_size and e.md_entry_size > 0 for e in trades)
    stats = venue.stats
    assert stats.md_rejects_sent == 1
    assert stats.per_symbol["AAPL"].snapshots == 1
    assert stats.per_symbol["IBM"].entries == 0


def apply(book: dict[MDEntryType, list[tuple[Decimal, Decimal]]], entry: object) -> None:
    """Apply one X entry to a position-keyed book, checking it against the book."""
    assert isinstance(entry, MDIncGrpNoMDEntries)
    if entry.md_entry_type is MDEntryType.TRADE:
        return
    assert entry.md_entry_type is not None
    assert entry.md_entry_position_no is not None
    assert entry.md_entry_px is not None
    side = book[entry.md_entry_type]
    index = entry.md_entry_position_no - 1
    if entry.md_update_action is MDUpdateAction.NEW:
        assert entry.md_entry_size is not None
        side.insert(index, (entry.md_entry_px, entry.md_entry_size))
    elif entry.md_update_action is MDUpdateAction.CHANGE:
        assert entry.md_entry_size is not None
        assert side[index][0] == entry.md_entry_px
        side[index] = (entry.md_entry_px, entry.md_entry_size)
    else:
        assert side[index][0] == entry.md_entry_px
        del side[index]


async def test_snapshot_plus_increments_rebuild_the_venue_book_exactly(
    venue: SimulatedVenue, client: FixClient
) -> None:
    venue.set_rate(20_000)
    await client.logon()
    client.subscribe(["TSLA"])
    snapshot = await client.expect(MarketDataSnapshotFullRefresh, skip=())
    assert isinstance(snapshot, MarketDataSnapshotFullRefresh)
    book: dict[MDEntryType, list[tuple[Decimal, Decimal]]] = {
        MDEntryType.BID: [],
        MDEntryType.OFFER: [],
    }
    for e in snapshot.no_md_entries:
        assert e.md_entry_px is not None
        assert e.md_entry_size is not None
        book[e.md_entry_type].append((e.md_entry_px, e.md_entry_size))
    messages = await client.collect(1.0)
    venue.pause_stream()
    messages += await client.collect(0.3)  # what was in flight
    for message in messages:
        if not isinstance(message, MarketDataIncrementalRefresh):
            continue
        for entry in message.no_md_entries:
            apply(book, entry)
        bids, offers = book[MDEntryType.BID], book[MDEntryType.OFFER]
        # Shifts are delete + new in one X: whole messages keep the book whole.
        assert len(bids) == len(offers) == 10
        assert Decimal("0.01") <= bids[0][0] < offers[0][0] <= bids[0][0] + Decimal("0.04")
    count = len(x_entries(messages))
    assert count > 5_000
    assert venue.stats.per_symbol["TSLA"].entries == count
    expected = venue.book("TSLA")
    assert book[MDEntryType.BID] == [(Decimal(lv.price), Decimal(lv.size)) for lv in expected.bids]
    assert book[MDEntryType.OFFER] == [
        (Decimal(lv.price), Decimal(lv.size)) for lv in expected.offers
    ]


async def test_one_request_per_symbol_keeps_each_symbol_under_its_own_id(
    client: FixClient,
) -> None:
    await client.logon()
    client.subscribe(["AAPL"], md_req_id="a")
    client.subscribe(["MSFT"], md_req_id="m")
    await client.expect(MarketDataSnapshotFullRefresh, skip=())
    await client.expect(MarketDataSnapshotFullRefresh, skip=())
    xs = [m for m in await client.collect(0.8) if isinstance(m, MarketDataIncrementalRefresh)]
    assert {m.md_req_id for m in xs} == {"a", "m"}
    for message in xs:
        expected = "AAPL" if message.md_req_id == "a" else "MSFT"
        assert {e.symbol for e in message.no_md_entries} == {expected}


async def test_unsubscribe_stops_the_stream_for_those_symbols(
    venue: SimulatedVenue, client: FixClient
) -> None:
    await client.logon()
    client.subscribe(["AAPL", "MSFT"])
    await client.collect(0.3)
    client.subscribe(["MSFT"], kind=SubscriptionRequestType.DISABLE_PREVIOUS_SNAPSHOT)
    await client.collect(0.2)  # in flight before the venue read the request
    later = x_entries(await client.collect(0.6))
    assert later
    assert {e.symbol for e in later} == {"AAPL"}
    client.subscribe(["AAPL"], kind=SubscriptionRequestType.DISABLE_PREVIOUS_SNAPSHOT)
    await client.collect(0.2)
    assert x_entries(await client.collect(0.5)) == []
    assert venue.session().subscriptions == {}


async def test_pause_resume_and_rate_change(venue: SimulatedVenue, client: FixClient) -> None:
    await client.logon()
    client.subscribe(["AAPL"])
    await client.collect(0.3)
    venue.pause_stream()
    await client.collect(0.1)
    assert x_entries(await client.collect(0.5)) == []
    venue.set_rate(500)
    venue.resume_stream()
    slow = x_entries(await client.collect(1.0))
    assert 250 <= len(slow) <= 750


async def test_trades_only_subscription_gets_only_trades(client: FixClient) -> None:
    await client.logon()
    client.subscribe(["AAPL", "MSFT"], types=[MDEntryType.TRADE])
    entries = x_entries(await client.collect(1.5))
    assert entries
    assert {e.md_entry_type for e in entries} == {MDEntryType.TRADE}


async def test_full_refresh_streaming_is_rejected(client: FixClient) -> None:
    await client.logon()
    request = MarketDataRequest
    client.send(
        request(
            md_req_id="full",
            subscription_request_type=SubscriptionRequestType.SNAPSHOT_AND_UPDATES,
            market_depth=0,
            md_update_type=MDUpdateType.FULL_REFRESH,
            no_md_entry_types=[request.NoMDEntryTypes(md_entry_type=MDEntryType.BID)],
            no_related_sym=[request.NoRelatedSym(symbol="AAPL")],
        )
    )
    reject = await client.expect(MarketDataRequestReject, skip=())
    assert isinstance(reject, MarketDataRequestReject)
    assert reject.md_req_rej_reason is MDReqRejReason.UNSUPPORTED_MD_UPDATE_TYPE


async def test_two_connections_stream_independently(venue: SimulatedVenue) -> None:
    first = await FixClient.connect(venue.port)
    second = await FixClient.connect(venue.port)
    try:
        await first.logon()
        await second.logon()
        first.subscribe(["AAPL"])
        second.subscribe(["MSFT"])
        one, two = await asyncio.gather(first.collect(0.8), second.collect(0.8))
        assert {e.symbol for e in x_entries(one)} == {"AAPL"}
        assert {e.symbol for e in x_entries(two)} == {"MSFT"}
        assert len(venue.sessions) == 2
        stats = venue.stats
        assert stats.connections == 2
        assert stats.logons == 2
    finally:
        await first.close()
        await second.close()


async def test_the_same_seed_gives_the_same_market() -> None:
    config = replace(CONFIG, seed=7)
    one, two, other = (
        SimulatedVenue(config),
        SimulatedVenue(config),
        SimulatedVenue(replace(config, seed=8)),
    )
    assert one.book("AAPL") == two.book("AAPL")
    assert one.book("AAPL") != other.book("AAPL")
    drawn = SimulatedVenue(replace(config, seed=0))
    assert drawn.seed != 0


async def test_x_messages_respect_the_entry_cap_and_keep_shifts_whole() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        SimulatedVenue(CONFIG, max_entries_per_message=1)
    config = replace(CONFIG, rate_ticks_per_s=20_000)
    async with SimulatedVenue(config, max_entries_per_message=5) as venue:
        client = await FixClient.connect(venue.port)
        try:
            await client.logon()
            client.subscribe(["AAPL", "MSFT"])
            xs = [
                m for m in await client.collect(0.5) if isinstance(m, MarketDataIncrementalRefresh)
            ]
        finally:
            await client.close()
    sizes = [len(m.no_md_entries) for m in xs]
    assert max(sizes) == 5
    for message in xs:
        actions = [e.md_update_action for e in message.no_md_entries]
        # A delete is always followed by its new level in the same message.
        for i, action in enumerate(actions):
            if action is MDUpdateAction.DELETE:
                assert i + 1 < len(actions)
                assert actions[i + 1] is MDUpdateAction.NEW
