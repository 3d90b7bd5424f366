"""Decoding messages shaped like real feeds, written out by hand, checked against QuickFIX.

The wire text below is literal ('|' stands for SOH), BodyLength and CheckSum included;
QuickFIX's own parser validates the same bytes, so the framing is checked independently of
mdfeed's codec.
"""

from __future__ import annotations

from decimal import Decimal
from importlib import resources

import pytest
import quickfix
from fix_wire import W_AAPL, W_MSFT, X_MIXED, Y_REJECT, wire

from fix_spec import fix44, venue44
from fix_spec.codec import FixCodecError
from fix_spec.fix44 import enums
from fix_spec.fix44.messages import (
    MarketDataIncrementalRefresh,
    MarketDataRequestReject,
    MarketDataSnapshotFullRefresh,
)
from fix_spec.venue44.header import Header as VenueHeader
from fix_spec.venue44.messages import MarketDataIncrementalRefresh as VenueIncrementalRefresh
from fix_spec.venue44.messages import VenueStatus


@pytest.fixture(scope="module")
def fix44_dictionary() -> quickfix.DataDictionary:
    path = resources.files("fix_spec") / "dictionaries" / "FIX44.xml"
    return quickfix.DataDictionary(str(path))


def _quickfix_parse(data: bytes, dd: quickfix.DataDictionary) -> quickfix.Message:
    # validate=True: QuickFIX checks BodyLength and CheckSum itself.
    return quickfix.Message(data.decode(), dd, True)


@pytest.mark.parametrize(
    ("text", "symbol", "best_bid", "best_ask"),
    [(W_AAPL, "AAPL", "189.50", "189.52"), (W_MSFT, "MSFT", "415.10", "415.13")],
)
def test_full_refresh_ten_levels_per_side(
    text: str, symbol: str, best_bid: str, best_ask: str, fix44_dictionary: quickfix.DataDictionary
) -> None:
    data = wire(text)
    _quickfix_parse(data, fix44_dictionary)
    message = fix44.decode(data)
    assert isinstance(message, MarketDataSnapshotFullRefresh)
    assert message.symbol == symbol
    assert message.md_req_id == "req-1"
    assert message.header.sender_comp_id == "VENUE"
    assert message.header.target_comp_id == "MDFEED"
    assert message.header.sending_time == 1_795_357_800_125_000_000
    bids = [e for e in message.no_md_entries if e.md_entry_type is enums.MDEntryType.BID]
    asks = [e for e in message.no_md_entries if e.md_entry_type is enums.MDEntryType.OFFER]
    assert len(bids) == len(asks) == 10
    assert [e.md_entry_position_no for e in bids] == list(range(1, 11))
    assert bids[0].md_entry_px == Decimal(best_bid)
    assert asks[0].md_entry_px == Decimal(best_ask)
    assert bids[9].md_entry_px == Decimal(best_bid) - Decimal("0.09")
    assert asks[9].md_entry_size == Decimal(1000)
    # Bids fall and asks rise level by level: the order on the wire is kept.
    bid_px = [p for e in bids if (p := e.md_entry_px) is not None]
    ask_px = [p for e in asks if (p := e.md_entry_px) is not None]
    assert (len(bid_px), len(ask_px)) == (10, 10), "an entry without a price"
    assert bid_px == sorted(bid_px, reverse=True)
    assert ask_px == sorted(ask_px)
    assert fix44.encode(message) == data


def test_incremental_mixes_bid_offer_trade_and_actions(
    fix44_dictionary: quickfix.DataDictionary,
) -> None:
    data = wire(X_MIXED)
    qf = _quickfix_parse(data, fix44_dictionary)
    message = fix44.decode(data)
    assert isinstance(message, MarketDataIncrementalRefresh)
    actions = [(e.md_update_action, e.md_entry_type, e.symbol) for e in message.no_md_entries]
    assert actions == [
        (enums.MDUpdateAction.NEW, enums.MDEntryType.BID, "AAPL"),
        (enums.MDUpdateAction.CHANGE, enums.MDEntryType.OFFER, "AAPL"),
        (enums.MDUpdateAction.DELETE, enums.MDEntryType.BID, "MSFT"),
        (enums.MDUpdateAction.NEW, enums.MDEntryType.TRADE, "AAPL"),
        (enums.MDUpdateAction.CHANGE, enums.MDEntryType.BID, "MSFT"),
    ]
    trade = message.no_md_entries[3]
    assert (trade.md_entry_px, trade.md_entry_size) == (Decimal("189.51"), Decimal(75))
    assert trade.md_entry_time == "14:30:00.249"
    assert message.no_md_entries[2].md_entry_position_no == 10
    # The same entries as QuickFIX reads them through its group API.
    group = quickfix.Group(268, 279)
    for index, entry in enumerate(message.no_md_entries, start=1):
        qf.getGroup(index, group)
        assert group.getField(270) == str(entry.md_entry_px)
        assert group.getField(55) == entry.symbol
    assert fix44.encode(message) == data


def test_reject_names_the_request_and_reason(fix44_dictionary: quickfix.DataDictionary) -> None:
    data = wire(Y_REJECT)
    _quickfix_parse(data, fix44_dictionary)
    message = fix44.decode(data)
    assert isinstance(message, MarketDataRequestReject)
    assert message.md_req_id == "req-2"
    assert message.md_req_rej_reason is enums.MDReqRejReason.UNKNOWN_SYMBOL
    assert message.text == "Unknown symbol: ZZZZ"
    assert message.header.msg_seq_num == 5


def test_quickfix_message_conversion_both_ways(fix44_dictionary: quickfix.DataDictionary) -> None:
    message = fix44.decode(wire(X_MIXED))
    qf = fix44.CODEC.to_quickfix(message, fix44_dictionary)
    assert isinstance(qf, quickfix.Message)
    assert qf.getHeader().getField(35) == "X"
    assert fix44.CODEC.from_quickfix(qf) == message


def test_unknown_tags_are_kept_where_they_stand() -> None:
    body = (
        "35=X|49=VENUE|56=MDFEED|34=9|52=20261122-14:30:00.250|7001=session-tag|268=2|"
        "279=0|269=0|55=AAPL|270=1.5|271=1|9001=a|9002=b|279=2|269=1|55=AAPL|270=1.6|"
    )
    message = fix44.decode(fix44.encode(fix44.decode(_frame(body))))
    assert isinstance(message, MarketDataIncrementalRefresh)
    assert message.header.extra_fields == ((7001, "session-tag"),)
    assert message.no_md_entries[0].extra_fields == ((9001, "a"), (9002, "b"))
    assert message.no_md_entries[1].extra_fields == ()


def test_venue_extension_adds_rpt_seq_and_a_message() -> None:
    body = (
        "35=X|49=VENUE|56=MDFEED|34=9|52=20261122-14:30:00.250|268=1|"
        "279=0|269=0|55=AAPL|270=1.5|271=1|83=77|5101=1795357800250000123|"
    )
    message = venue44.decode(_frame(body))
    assert isinstance(message, VenueIncrementalRefresh)
    entry = message.no_md_entries[0]
    assert entry.rpt_seq == 77
    assert entry.md_entry_time_ns == 1_795_357_800_250_000_123
    # Plain FIX 4.4 has no RptSeq on an entry and no tag 5101: the entry keeps them as extras.
    plain = fix44.decode(_frame(body))
    assert isinstance(plain, MarketDataIncrementalRefresh)
    assert plain.no_md_entries[0].extra_fields == (
        (83, "77"),
        (5101, "1795357800250000123"),
    )
    assert venue44.MESSAGES["U1"] is VenueStatus
    status = VenueStatus(trading_session_id="XNAS", venue_phase=venue44.enums.VenuePhase.HALTED)
    status.header = VenueHeader(
        sender_comp_id="VENUE", target_comp_id="MDFEED", msg_seq_num=1, sending_time=0
    )
    assert venue44.decode(venue44.encode(status)) == status


def test_venue_merged_dictionary_loads_in_quickfix() -> None:
    path = resources.files("fix_spec") / "venue44" / "dictionary.xml"
    dd = quickfix.DataDictionary(str(path))
    assert dd.isMsgType("U1")
    body = (
        "35=X|49=VENUE|56=MDFEED|34=9|52=20261122-14:30:00.250|268=1|"
        "279=0|269=0|55=AAPL|270=1.5|271=1|83=77|"
    )
    qf = quickfix.Message(_frame(body).decode(), dd, True)
    group = quickfix.Group(268, 279)
    qf.getGroup(1, group)
    assert group.getField(83) == "77"


def test_decode_errors_share_one_type() -> None:
    with pytest.raises(FixCodecError):
        fix44.decode(b"8=FIX.4.4\x019=5\x0135=0\x0110=000\x01")


def _frame(body: str) -> bytes:
    raw = body.replace("|", "\x01").encode()
    head = b"8=FIX.4.4\x019=%d\x01" % len(raw)
    return head + raw + b"10=%03d\x01" % (sum(head + raw) % 256)
