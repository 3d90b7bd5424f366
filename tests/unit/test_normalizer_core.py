"""BookNormalizer.on_message: MdMessage columns in, encoded ticks and Kafka keys out."""

from __future__ import annotations

import pytest

from fix_session.normalizer import BookNormalizer, InvalidEntryError
from fix_spec.md_columns import ABSENT, BID, CHANGE, DELETE, NEW, OFFER, OTHER, TRADE, MdMessage
from proto import mdfeed_pb2 as pb

SENDING_NS = 1_795_357_800_125_000_000  # 2026-11-22 14:30:00.125 UTC
MIDNIGHT_NS = SENDING_NS - SENDING_NS % 86_400_000_000_000
E8 = 100_000_000

Entry = tuple[int, int, str, int, int]  # action, kind, symbol, px_e8, size_e8


def w(symbol: str, *entries: tuple[int, int, int], seq: int = 2) -> MdMessage:
    md = MdMessage()
    md.msg_type, md.seq_num, md.sending_ns, md.symbol = "W", seq, SENDING_NS, symbol
    for kind, px, size in entries:
        md.add_entry(NEW, kind, "", px, size)
    return md


def x(*entries: Entry, seq: int = 3, times: dict[int, int] | None = None) -> MdMessage:
    md = MdMessage()
    md.msg_type, md.seq_num, md.sending_ns = "X", seq, SENDING_NS
    for i, (action, kind, symbol, px, size) in enumerate(entries):
        md.add_entry(action, kind, symbol, px, size, time_ns=(times or {}).get(i, ABSENT))
    return md


def run(
    normalizer: BookNormalizer, md: MdMessage, ingest_ns: int = 7
) -> list[tuple[bytes, pb.Tick]]:
    keys: list[bytes] = []
    values: list[bytes] = []
    normalizer.on_message(md, ingest_ns, keys, values)
    assert len(keys) == len(values)
    return [(k, pb.Tick.FromString(v)) for k, v in zip(keys, values, strict=True)]


def booked() -> BookNormalizer:
    n = BookNormalizer()
    run(n, w("AAPL", (BID, 100 * E8, 5 * E8), (BID, 99 * E8, 1 * E8), (OFFER, 101 * E8, 2 * E8)))
    run(n, w("MSFT", (BID, 400 * E8, 1 * E8), (OFFER, 402 * E8, 1 * E8), seq=3))
    return n


def test_a_snapshot_replaces_the_book_and_emits_its_top_then_its_last_trade() -> None:
    n = booked()
    [(key, quote), (_, trade)] = run(
        n, w("AAPL", (BID, 50 * E8, E8), (TRADE, 51 * E8, 3 * E8), (OFFER, 52 * E8, E8), seq=9)
    )
    assert key == b"AAPL"
    assert (quote.seq, quote.kind, quote.from_snapshot) == (2, pb.TICK_KIND_QUOTE, True)
    assert (quote.bid_px_e8, quote.ask_px_e8, quote.fix_msg_seq_num) == (50 * E8, 52 * E8, 9)
    assert not quote.HasField("last_px_e8")  # the trade follows, in its own tick
    assert (trade.seq, trade.kind, trade.last_px_e8, trade.last_size_e8) == (
        3, pb.TICK_KIND_TRADE, 51 * E8, 3 * E8,
    )  # fmt: skip
    assert trade.from_snapshot
    assert n.top("AAPL") == (50 * E8, 52 * E8, 51 * E8)


def test_an_increment_emits_trades_in_order_then_one_quote_per_symbol_whose_top_moved() -> None:
    n = booked()
    ticks = run(
        n,
        x(
            (NEW, BID, "MSFT", 401 * E8, E8),  # MSFT: new best bid
            (NEW, TRADE, "AAPL", 101 * E8, 4 * E8),
            (CHANGE, OFFER, "AAPL", 101 * E8, 9 * E8),  # AAPL: best ask size
            (NEW, BID, "MSFT", 300 * E8, E8),  # deeper: no change of its own
            (NEW, OTHER, "MSFT", 7 * E8, E8),  # not quoted
            (DELETE, BID, "AAPL", 98 * E8, 0),  # not in the book: nothing
            times={1: 3_600_000_000_000},
        ),
    )
    assert [(k, t.kind, t.seq) for k, t in ticks] == [
        (b"AAPL", pb.TICK_KIND_TRADE, 2),
        (b"MSFT", pb.TICK_KIND_QUOTE, 2),
        (b"AAPL", pb.TICK_KIND_QUOTE, 3),
    ]
    trade, msft, aapl = (t for _, t in ticks)
    # The trade carries the top as last published; the quote after it the new one.
    assert (trade.ask_size_e8, trade.venue_time_ns) == (2 * E8, MIDNIGHT_NS + 3_600_000_000_000)
    assert (aapl.ask_size_e8, aapl.last_px_e8, aapl.venue_time_ns) == (9 * E8, 101 * E8, SENDING_NS)
    assert (msft.bid_px_e8, msft.ingest_time_ns, msft.from_snapshot) == (401 * E8, 7, False)
    assert n.stats.trades_out == 1
    assert n.stats.quotes_out == 4  # two snapshots, two increments


def test_deleting_the_best_level_finds_the_next_and_an_empty_side_is_unset() -> None:
    n = booked()
    [(_, tick)] = run(n, x((DELETE, BID, "AAPL", 100 * E8, 0)))
    assert (tick.bid_px_e8, tick.bid_size_e8) == (99 * E8, E8)
    [(_, tick)] = run(n, x((DELETE, BID, "AAPL", 99 * E8, 0), (DELETE, OFFER, "AAPL", 101 * E8, 0)))
    assert not tick.HasField("bid_px_e8")
    assert not tick.HasField("ask_size_e8")
    assert n.top("AAPL") == (None, None, None)
    # A change that ends where the message began emits nothing.
    assert run(n, x((NEW, BID, "MSFT", 405 * E8, E8), (DELETE, BID, "MSFT", 405 * E8, 0))) == []
    assert n.sequence("AAPL") == 3


def test_a_better_ask_and_a_new_level_of_the_same_price_replace_the_best() -> None:
    n = booked()
    run(n, x((NEW, OFFER, "AAPL", 100_50 * E8 // 100, E8)))
    assert n.top("AAPL")[1] == 100_50 * E8 // 100
    [(_, tick)] = run(n, x((CHANGE, BID, "AAPL", 100 * E8, 8 * E8)))
    assert tick.bid_size_e8 == 8 * E8


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ((NEW, BID, "AAPL", -E8, E8), "AAPL: price -1 is not positive"),
        ((NEW, BID, "AAPL", 0, E8), "not positive"),
        ((NEW, OFFER, "AAPL", E8, -E8 // 2), "AAPL: size -0.5 is negative"),
        ((NEW, ABSENT, "AAPL", E8, E8), "without MDEntryType"),
        ((NEW, BID, "AAPL", ABSENT, E8), "without MDEntryPx"),
        ((NEW, BID, "", E8, E8), "without a symbol"),
    ],
)
def test_an_invalid_entry_rejects_the_whole_message(entry: Entry, reason: str) -> None:
    n = booked()
    keys: list[bytes] = []
    values: list[bytes] = []
    with pytest.raises(InvalidEntryError, match=reason):
        n.on_message(
            x((NEW, BID, "MSFT", 401 * E8, E8), (NEW, TRADE, "AAPL", E8, E8), entry),
            7,
            keys,
            values,
        )
    assert (keys, values) == ([], [])
    assert n.top("MSFT") == (400 * E8, 402 * E8, None)
    assert (n.sequence("MSFT"), n.sequence("AAPL")) == (1, 1)
    assert n.stats.rejected_messages == 1
    assert n.stale == {"MSFT", "AAPL"}


def test_a_value_the_decoder_could_not_scale_rejects_the_message() -> None:
    n = booked()
    md = x((NEW, BID, "AAPL", ABSENT, E8))
    md.invalid = "MDEntryPx 1.000000001 is not a whole number of 10^-8 in int64 range"
    with pytest.raises(InvalidEntryError, match=r"MDEntryPx 1\.000000001"):
        run(n, md)
    assert n.stale == {"AAPL"}


def test_unsubscribed_symbols_are_rejected_and_not_marked_stale() -> None:
    n = BookNormalizer(symbols=["AAPL"])
    with pytest.raises(InvalidEntryError, match="QQQQ: not a subscribed symbol"):
        run(n, x((NEW, BID, "AAPL", E8, E8), (NEW, BID, "QQQQ", E8, E8)))
    assert n.stale == {"AAPL"}
    assert n.symbols == []


def test_a_rejected_snapshot_marks_its_symbol_and_a_good_one_clears_it() -> None:
    n = booked()
    n.on_reject(["AAPL"], "halted")
    with pytest.raises(InvalidEntryError, match="not positive"):
        run(n, w("AAPL", (BID, -E8, E8)))
    with pytest.raises(InvalidEntryError, match="without a symbol"):
        run(n, w("", (BID, E8, E8)))
    assert n.stale == {"AAPL"}
    assert n.stats.rejected_messages == 2
    run(n, w("AAPL", (BID, E8, E8)))
    assert (n.stale, n.unavailable) == (set(), {})


def test_a_reject_carries_no_ticks_and_other_messages_are_refused() -> None:
    n = booked()
    md = MdMessage()
    md.msg_type = "Y"
    assert run(n, md) == []
    md.msg_type = "D"
    with pytest.raises(ValueError, match="not market data"):
        run(n, md)


def test_increments_before_a_snapshot_start_a_book_and_sequences_stay_contiguous() -> None:
    n = BookNormalizer()
    seqs: list[int] = []
    for i in range(1, 6):
        ticks = run(n, x((NEW, BID, "IBM", i * E8, E8), (NEW, TRADE, "IBM", i * E8, E8)))
        seqs += [t.seq for _, t in ticks]
    ticks = run(n, w("IBM", (BID, E8, E8)))
    assert seqs + [t.seq for _, t in ticks] == list(range(1, 12))
    assert ticks[0][1].from_snapshot
    assert n.stats.entries == 11


def test_a_deleted_trade_is_a_tick_of_size_zero_at_sending_time() -> None:
    n = booked()
    [(_, bust)] = run(n, x((DELETE, TRADE, "AAPL", 101 * E8, 0), times={0: 3_600_000_000_000}))
    assert (bust.kind, bust.last_px_e8, bust.last_size_e8) == (pb.TICK_KIND_TRADE, 101 * E8, 0)
    assert bust.venue_time_ns == SENDING_NS
