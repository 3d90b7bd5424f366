"""BookNormalizer: snapshots and increments become sequenced top-of-book and trade Ticks."""

from __future__ import annotations

from decimal import Decimal

import pytest

from fix_session.normalizer import BookNormalizer, InvalidEntryError, scaled
from fix_spec.fix44 import enums
from fix_spec.fix44.groups import MDIncGrpNoMDEntries
from fix_spec.fix44.header import Header
from fix_spec.fix44.messages import MarketDataIncrementalRefresh as X
from fix_spec.fix44.messages import MarketDataSnapshotFullRefresh as W
from proto import mdfeed_pb2 as pb

SENDING_NS = 1_795_357_800_125_000_000  # 2026-11-22 14:30:00.125 UTC
BID, OFFER, TRADE = enums.MDEntryType.BID, enums.MDEntryType.OFFER, enums.MDEntryType.TRADE
NEW, CHANGE, DELETE = (
    enums.MDUpdateAction.NEW,
    enums.MDUpdateAction.CHANGE,
    enums.MDUpdateAction.DELETE,
)


def header(seq: int) -> Header:
    return Header(
        sender_comp_id="VENUE", target_comp_id="MDFEED", msg_seq_num=seq, sending_time=SENDING_NS
    )


def snapshot(
    symbol: str, bids: list[tuple[str, int]], asks: list[tuple[str, int]], seq: int = 2
) -> W:
    entries = [
        W.NoMDEntries(md_entry_type=BID, md_entry_px=Decimal(p), md_entry_size=Decimal(s))
        for p, s in bids
    ]
    entries += [
        W.NoMDEntries(md_entry_type=OFFER, md_entry_px=Decimal(p), md_entry_size=Decimal(s))
        for p, s in asks
    ]
    return W(symbol=symbol, no_md_entries=entries, header=header(seq))


def entry(
    action: enums.MDUpdateAction,
    kind: enums.MDEntryType,
    symbol: str,
    px: str,
    size: int = 100,
    *,
    time: str | None = None,
) -> MDIncGrpNoMDEntries:
    return X.NoMDEntries(
        md_update_action=action, md_entry_type=kind, symbol=symbol,
        md_entry_px=Decimal(px), md_entry_size=Decimal(size), md_entry_time=time,
    )  # fmt: skip


def incremental(*entries: MDIncGrpNoMDEntries, seq: int = 3) -> X:
    return X(no_md_entries=list(entries), header=header(seq))


@pytest.fixture
def normalizer() -> BookNormalizer:
    return BookNormalizer()


def test_snapshot_emits_the_top_of_book(normalizer: BookNormalizer) -> None:
    [tick] = normalizer.on_snapshot(
        snapshot("AAPL", [("189.50", 100), ("189.49", 200)], [("189.52", 300)]), 2, 99
    )
    assert tick.symbol == "AAPL"
    assert tick.seq == 1
    assert tick.kind == pb.TICK_KIND_QUOTE
    assert (tick.bid_px_e8, tick.bid_size_e8) == (18_950_000_000, 10_000_000_000)
    assert (tick.ask_px_e8, tick.ask_size_e8) == (18_952_000_000, 30_000_000_000)
    assert tick.from_snapshot
    assert (tick.venue_time_ns, tick.ingest_time_ns, tick.fix_msg_seq_num) == (SENDING_NS, 99, 2)
    assert not tick.HasField("last_px_e8")


def test_increments_move_the_book_and_sequences_stay_contiguous(normalizer: BookNormalizer) -> None:
    normalizer.on_snapshot(
        snapshot("AAPL", [("189.50", 100), ("189.49", 200)], [("189.52", 300)]), 2, 0
    )
    normalizer.on_snapshot(snapshot("MSFT", [("415.10", 100)], [("415.13", 100)]), 3, 0)
    ticks = normalizer.on_incremental(
        incremental(
            entry(NEW, BID, "AAPL", "189.51", 50),      # new best bid
            entry(CHANGE, OFFER, "AAPL", "189.52", 10),  # best ask size changes
            entry(CHANGE, BID, "MSFT", "415.05", 10),    # deeper level: no top change
        ),
        4,
        0,
    )  # fmt: skip
    # One quote per symbol whose top changed, after all its entries were applied.
    assert [(t.symbol, t.seq) for t in ticks] == [("AAPL", 2)]
    assert (ticks[0].bid_px_e8, ticks[0].ask_size_e8) == (18_951_000_000, 1_000_000_000)
    assert not ticks[0].from_snapshot
    ticks = normalizer.on_incremental(incremental(entry(DELETE, BID, "AAPL", "189.51")), 5, 0)
    assert [(t.symbol, t.seq, t.bid_px_e8) for t in ticks] == [("AAPL", 3, 18_950_000_000)]
    ticks = normalizer.on_incremental(incremental(entry(DELETE, BID, "MSFT", "415.10")), 6, 0)
    assert (ticks[0].seq, ticks[0].bid_px_e8) == (2, 41_505_000_000)  # the next level up
    ticks = normalizer.on_incremental(incremental(entry(DELETE, BID, "MSFT", "415.05")), 7, 0)
    assert ticks[0].seq == 3
    assert not ticks[0].HasField("bid_px_e8")  # that side of the book is empty now


def test_trades_are_ticks_with_their_venue_time(normalizer: BookNormalizer) -> None:
    normalizer.on_snapshot(snapshot("AAPL", [("189.50", 100)], [("189.52", 300)]), 2, 0)
    [trade] = normalizer.on_incremental(
        incremental(entry(NEW, TRADE, "AAPL", "189.51", 75, time="14:30:00.100")), 3, 0
    )
    assert trade.kind == pb.TICK_KIND_TRADE
    assert (trade.last_px_e8, trade.last_size_e8) == (18_951_000_000, 7_500_000_000)
    assert trade.venue_time_ns == SENDING_NS - 25_000_000
    assert (trade.bid_px_e8, trade.ask_px_e8) == (18_950_000_000, 18_952_000_000)
    assert normalizer.top("AAPL") == (18_950_000_000, 18_952_000_000, 18_951_000_000)


def test_a_fresh_snapshot_continues_the_sequence(normalizer: BookNormalizer) -> None:
    normalizer.on_snapshot(snapshot("AAPL", [("1.00", 1)], [("1.02", 1)]), 2, 0)
    normalizer.on_incremental(incremental(entry(NEW, BID, "AAPL", "1.01")), 3, 0)
    [tick] = normalizer.on_snapshot(snapshot("AAPL", [("2.00", 1)], [("2.02", 1)]), 2, 0)
    assert (tick.seq, tick.from_snapshot, tick.bid_px_e8) == (3, True, 200_000_000)
    assert normalizer.sequence("AAPL") == 3


@pytest.mark.parametrize(
    ("px", "reason"),
    [("-1.00", "not positive"), ("0", "not positive"), ("1.000000001", "decimal places")],
)
def test_a_bad_entry_rejects_the_whole_message(
    normalizer: BookNormalizer, px: str, reason: str
) -> None:
    normalizer.on_snapshot(snapshot("AAPL", [("1.00", 1)], [("1.02", 1)]), 2, 0)
    with pytest.raises(InvalidEntryError, match=reason):
        normalizer.on_incremental(
            incremental(entry(NEW, BID, "AAPL", "1.01"), entry(NEW, OFFER, "AAPL", px)), 3, 0
        )
    assert normalizer.stats.rejected_messages == 1
    # Nothing of it was applied, and the symbol waits for a fresh snapshot.
    assert normalizer.top("AAPL")[0] == 100_000_000
    assert normalizer.stale == {"AAPL"}
    normalizer.on_snapshot(snapshot("AAPL", [("1.00", 1)], [("1.02", 1)]), 4, 0)
    assert normalizer.stale == set()


def test_entry_without_a_symbol_is_rejected(normalizer: BookNormalizer) -> None:
    bare = X.NoMDEntries(md_update_action=NEW, md_entry_type=BID, md_entry_px=Decimal(1))
    with pytest.raises(InvalidEntryError, match="without a symbol"):
        normalizer.on_incremental(incremental(bare), 3, 0)


def test_rejected_symbols_are_unavailable_until_a_snapshot(normalizer: BookNormalizer) -> None:
    normalizer.on_reject(["ZZZZ"], "Unknown symbol")
    assert normalizer.unavailable == {"ZZZZ": "Unknown symbol"}
    normalizer.on_snapshot(snapshot("ZZZZ", [("1.00", 1)], [("1.02", 1)]), 2, 0)
    assert normalizer.unavailable == {}


def test_scaled_is_exact() -> None:
    assert scaled(Decimal("189.50")) == 18_950_000_000
    assert scaled(Decimal("0.00000001")) == 1
    assert scaled(Decimal("-3.5")) == -350_000_000
    with pytest.raises(InvalidEntryError):
        scaled(Decimal("0.000000001"))


def test_entries_for_symbols_nobody_subscribed_are_rejected() -> None:
    normalizer = BookNormalizer(symbols=["AAPL"])
    normalizer.on_snapshot(snapshot("AAPL", [("1.00", 1)], [("1.02", 1)]), 2, 0)
    with pytest.raises(InvalidEntryError, match="QQQQ: not a subscribed symbol"):
        normalizer.on_incremental(incremental(entry(NEW, BID, "QQQQ", "1.01")), 3, 0)
    assert normalizer.symbols == ["AAPL"]
    assert normalizer.stale == set()
