"""The venue's market model: valid books, realistic prices, determinism, trade share."""

from __future__ import annotations

from decimal import Decimal

import pytest
from fix_wire import decode_entries

from fix_session.venue.market import MAX_SPREAD_TICKS, Market, SymbolBook, price_text
from fix_spec import fix44
from fix_spec.fix44.enums import MDEntryType, MDUpdateAction
from fix_spec.fix44.messages import MarketDataSnapshotFullRefresh

SYMBOLS = ("AAPL", "MSFT", "IBM")


@pytest.mark.parametrize(
    ("ticks", "text"), [(0, "0.00"), (1, "0.01"), (18950, "189.50"), (100007, "1000.07")]
)
def test_price_text_is_exact_with_two_decimals(ticks: int, text: str) -> None:
    assert price_text(ticks) == text


def test_price_text_refuses_negative_prices() -> None:
    with pytest.raises(ValueError, match="negative"):
        price_text(-1)


def test_the_same_seed_replays_the_same_ticks_whatever_else_is_active() -> None:
    one = Market(SYMBOLS, depth=10, trade_ratio=0.1, seed=5)
    two = Market(SYMBOLS, depth=10, trade_ratio=0.1, seed=5)
    one.set_active(["AAPL"])
    two.set_active(["AAPL", "MSFT"])
    aapl_one = [t.text for t in one.generate(2_000, "10:00:00.000")[0]]
    aapl_two = [t.text for t in two.generate(6_000, "10:00:00.000")[0] if t.symbol == "AAPL"]
    n = min(len(aapl_one), len(aapl_two))
    assert n > 500
    assert aapl_one[:n] == aapl_two[:n]
    other = Market(SYMBOLS, depth=10, trade_ratio=0.1, seed=6)
    other.set_active(["AAPL"])
    assert [t.text for t in other.generate(2_000, "10:00:00.000")[0]][:n] != aapl_one[:n]


def test_generate_counts_entries_and_moves_only_active_symbols() -> None:
    market = Market(SYMBOLS, depth=10, trade_ratio=0.1, seed=1)
    assert market.generate(100, "10:00:00.000") == ([], 0)
    market.set_active(["MSFT", "IBM"])
    assert market.active == ("MSFT", "IBM")
    before = market.books["AAPL"].snapshot()
    ticks, count = market.generate(1_000, "10:00:00.000")
    assert 1_000 <= count <= 1_001
    assert count == sum(t.entries for t in ticks)
    assert {t.symbol for t in ticks} == {"MSFT", "IBM"}
    assert market.books["AAPL"].snapshot() == before


@pytest.mark.parametrize("ratio", [0.0, 0.1, 0.5, 1.0])
def test_trades_are_the_configured_share_of_entries(ratio: float) -> None:
    market = Market(SYMBOLS, depth=10, trade_ratio=ratio, seed=3)
    market.set_active(SYMBOLS)
    ticks, count = market.generate(50_000, "10:00:00.000")
    trades = sum(t.entries for t in ticks if t.is_trade)
    assert trades / count == pytest.approx(ratio, abs=0.01)


def test_a_long_walk_keeps_a_valid_book_that_the_entries_reproduce() -> None:
    book = SymbolBook("LOW", depth=10, trade_ratio=0.1, seed=11)
    # Start near the floor and pull the walk down onto it: the mean reversion aims at one
    # tick. The book must still never show a price of zero or below.
    book.bid, book.ask, book.anchor = 16, 17, 1
    sides: dict[MDEntryType, list[tuple[Decimal, Decimal]]] = {
        MDEntryType.BID: [(Decimal(lv.price), Decimal(lv.size)) for lv in book.snapshot().bids],
        MDEntryType.OFFER: [(Decimal(lv.price), Decimal(lv.size)) for lv in book.snapshot().offers],
    }
    lowest_bid = book.bid
    for _ in range(3_000):
        tick = book.step("10:00:00.000")
        entries = decode_entries(tick.text)
        assert len(entries) == tick.entries
        for e in entries:
            assert e.symbol == "LOW"
            assert e.md_entry_time == "10:00:00.000"
            assert e.md_entry_px is not None
            assert e.md_entry_px > 0
            if e.md_entry_type is MDEntryType.TRADE:
                assert tick.is_trade
                assert e.md_update_action is MDUpdateAction.NEW
                continue
            assert e.md_entry_type is not None
            assert e.md_entry_position_no is not None
            side = sides[e.md_entry_type]
            i = e.md_entry_position_no - 1
            if e.md_update_action is MDUpdateAction.NEW:
                assert e.md_entry_size is not None
                side.insert(i, (e.md_entry_px, e.md_entry_size))
            elif e.md_update_action is MDUpdateAction.CHANGE:
                assert e.md_entry_size is not None
                assert side[i][0] == e.md_entry_px
                side[i] = (e.md_entry_px, e.md_entry_size)
            else:
                assert side[i][0] == e.md_entry_px
                del side[i]
        snap = book.snapshot()
        lowest_bid = min(lowest_bid, book.bid)
        assert 1 <= book.ask - book.bid <= MAX_SPREAD_TICKS
        assert Decimal(snap.bids[-1].price) >= Decimal("0.01")
        assert sides[MDEntryType.BID] == [(Decimal(lv.price), Decimal(lv.size)) for lv in snap.bids]
        assert sides[MDEntryType.OFFER] == [
            (Decimal(lv.price), Decimal(lv.size)) for lv in snap.offers
        ]
    assert lowest_bid == 10  # the walk reached the floor: the 10th bid level at 0.01


def test_starting_prices_are_realistic() -> None:
    market = Market([f"S{i}" for i in range(200)], depth=10, trade_ratio=0.1, seed=9)
    mids = [(b.bid + b.ask) / 200 for b in market.books.values()]
    assert all(19.9 <= m <= 500.1 for m in mids)
    assert max(mids) > 200
    assert min(mids) < 50


def test_snapshot_entries_decode_as_a_full_refresh_with_the_last_trade() -> None:
    book = SymbolBook("AAPL", depth=5, trade_ratio=1.0, seed=2)
    book.step("09:30:00.001")  # a trade: the ratio is 1
    text, count = book.snapshot_entries("09:30:00.002")
    body = (
        "35=W\x0149=VENUE\x0156=MDFEED\x0134=1\x0152=20260101-00:00:00.000\x01"
        f"262=r\x0155=AAPL\x01268={count}\x01{text}"
    ).encode()
    head = b"8=FIX.4.4\x019=%d\x01" % len(body)
    message = fix44.decode(head + body + b"10=%03d\x01" % (sum(head + body) % 256))
    assert isinstance(message, MarketDataSnapshotFullRefresh)
    types = [e.md_entry_type for e in message.no_md_entries]
    assert types == [MDEntryType.BID] * 5 + [MDEntryType.OFFER] * 5 + [MDEntryType.TRADE]
    trade = message.no_md_entries[-1]
    assert book.last_trade is not None
    assert trade.md_entry_time == "09:30:00.001"
    assert str(trade.md_entry_px) == book.last_trade.price


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="depth"):
        Market(SYMBOLS, depth=0, trade_ratio=0.1, seed=1)
    with pytest.raises(ValueError, match="trade_ratio"):
        Market(SYMBOLS, depth=10, trade_ratio=1.5, seed=1)
