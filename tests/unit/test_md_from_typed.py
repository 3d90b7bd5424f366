"""fix_spec.md_from_typed: the reference reading of typed W/X/Y messages as columns."""

from __future__ import annotations

from decimal import Decimal

from fix_spec.fix44 import enums
from fix_spec.fix44.header import Header
from fix_spec.fix44.messages import MarketDataIncrementalRefresh as X
from fix_spec.fix44.messages import MarketDataRequestReject as Y
from fix_spec.fix44.messages import MarketDataSnapshotFullRefresh as W
from fix_spec.md_columns import ABSENT, BID, CHANGE, DELETE, NEW, OFFER, OTHER, TRADE
from fix_spec.md_from_typed import columns_from_typed, scaled_e8, time_of_day_ns

SENDING_NS = 1_795_357_800_125_000_000


def header(seq: int) -> Header:
    return Header(
        sender_comp_id="VENUE", target_comp_id="MDFEED", msg_seq_num=seq, sending_time=SENDING_NS
    )


def test_a_snapshot_reads_as_new_entries_of_its_symbol() -> None:
    message = W(
        symbol="AAPL",
        md_req_id="r1",
        no_md_entries=[
            W.NoMDEntries(
                md_entry_type=enums.MDEntryType.BID,
                md_entry_px=Decimal("187.5"),
                md_entry_size=Decimal("300"),
                md_entry_position_no=1,
            ),
            W.NoMDEntries(md_entry_type=enums.MDEntryType.TRADE, md_entry_px=Decimal("187.55"),
                          md_entry_size=Decimal(5), md_entry_time="14:30:00.250"),
        ],
        header=header(7),
    )  # fmt: skip
    md = columns_from_typed(message)
    assert (md.msg_type, md.seq_num, md.sending_ns, md.md_req_id, md.symbol) == (
        "W", 7, SENDING_NS, "r1", "AAPL",
    )  # fmt: skip
    assert md.count == 2
    assert md.action == [NEW, NEW]
    assert md.kind == [BID, TRADE]
    assert md.px_e8 == [18_750_000_000, 18_755_000_000]
    assert md.size_e8 == [30_000_000_000, 500_000_000]
    assert md.position_no == [1, ABSENT]
    assert md.time_ns == [ABSENT, (14 * 3600 + 30 * 60) * 10**9 + 250_000_000]
    assert md.invalid == ""


def test_increments_keep_action_kind_symbol_and_ids_and_name_what_cannot_be_scaled() -> None:
    message = X(
        no_md_entries=[
            X.NoMDEntries(md_update_action=enums.MDUpdateAction.CHANGE,
                          md_entry_type=enums.MDEntryType.OFFER, symbol="MSFT",
                          md_entry_px=Decimal("410.01"), md_entry_size=Decimal(2),
                          md_entry_id="o9", md_entry_ref_id="o8"),
            X.NoMDEntries(md_update_action=enums.MDUpdateAction.DELETE, symbol="IBM",
                          md_entry_type=enums.MDEntryType.OPENING_PRICE,
                          md_entry_px=Decimal("1.000000001")),
            X.NoMDEntries(md_update_action=enums.MDUpdateAction.NEW, symbol="IBM"),
        ],
        header=header(8),
    )  # fmt: skip
    md = columns_from_typed(message)
    assert md.action == [CHANGE, DELETE, NEW]
    assert md.kind == [OFFER, OTHER, ABSENT]
    assert md.entry_symbol == ["MSFT", "IBM", "IBM"]
    assert md.px_e8 == [41_001_000_000, ABSENT, ABSENT]
    assert md.size_e8 == [200_000_000, ABSENT, ABSENT]
    assert (md.entry_id, md.ref_id) == (["o9", "", ""], ["o8", "", ""])
    assert "MDEntryPx 1.000000001" in md.invalid


def test_a_reject_keeps_its_request_text_and_reason() -> None:
    message = Y(
        md_req_id="g3",
        md_req_rej_reason=enums.MDReqRejReason.UNKNOWN_SYMBOL,
        text="unknown symbol ZZZZ",
        header=header(9),
    )
    md = columns_from_typed(message)
    assert (md.msg_type, md.md_req_id, md.rej_reason, md.text, md.count) == (
        "Y", "g3", "0", "unknown symbol ZZZZ", 0,
    )  # fmt: skip


def test_scaling_is_exact_and_bounded() -> None:
    assert scaled_e8(Decimal("0.00000001")) == 1
    assert scaled_e8(Decimal("-2.5")) == -250_000_000
    assert scaled_e8(Decimal("0.000000001")) is None
    assert scaled_e8(Decimal("1e12")) is None  # 10^20 units: beyond int64
    assert time_of_day_ns("23:59:59") == 86_399 * 10**9
    assert time_of_day_ns("00:00:00.000000001") == 1
