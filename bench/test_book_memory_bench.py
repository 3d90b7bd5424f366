"""Memory per symbol book at depth 50, for each book model.

The native core's books (fix_session/tick_core.c) allocate through PyMem, which
tracemalloc traces: 10,000 symbols each get a full snapshot of 50 levels a side (with
`fix_session.book_margin` 5, so 55 a side kept at most), then a burst of increments that
would grow an unbounded book (new prices below the last level, positions past the count,
new ids): the traced bytes per symbol stay what the capacity allows. The budget below is
the target: 2 sides x 55 levels x 24 bytes is 2,640 bytes, plus the book's header and the
symbol's entry in the core's table.

Run with `make bench` (or `pytest bench/test_book_memory_bench.py`); it prints the bytes
per symbol of each model.
"""

from __future__ import annotations

import tracemalloc

import pytest

from fix_session.normalizer import BookModel, BookNormalizer
from fix_spec.md_columns import BID, NEW, OFFER, MdMessage

SYMBOLS = tuple(f"S{i:05d}" for i in range(10_000))
DEPTH, MARGIN = 50, 5
#: Bytes per symbol the books may take at depth 50 (margin 5), whatever the venue sends.
BUDGET_BYTES = 3_400
E8 = 100_000_000


def _message(msg_type: str, symbol: str, entries: list[tuple[int, int, int, str]]) -> MdMessage:
    """A W or X of bid/offer News: (kind, px_e8, position, id) each, size 1."""
    md = MdMessage()
    md.msg_type, md.symbol, md.seq_num = msg_type, symbol if msg_type == "W" else "", 1
    for kind, px, position, ident in entries:
        md.add_entry(
            kind=kind,
            px_e8=px,
            size_e8=E8,
            action=NEW,
            symbol="" if msg_type == "W" else symbol,
            position_no=position,
            entry_id=ident,
        )
    return md


def _snapshot(symbol: str) -> MdMessage:
    bids = [(BID, (1000 - i) * E8, i + 1, f"{symbol}b{i}") for i in range(DEPTH)]
    asks = [(OFFER, (1001 + i) * E8, i + 1, f"{symbol}a{i}") for i in range(DEPTH)]
    return _message("W", symbol, bids + asks)


def _growth(symbol: str, round_: int) -> MdMessage:
    """Ten bid News an unbounded book would keep: new prices below the last level and new
    ids (price, entry_id), or inserts at position 1 that push levels down (position)."""
    n = DEPTH + 10 * round_
    return _message(
        "X",
        symbol,
        [(BID, (900 - n - i) * E8, 1, f"{symbol}g{n + i}") for i in range(10)],
    )


@pytest.mark.parametrize("model", ["price", "position", "entry_id"])
def test_memory_per_symbol_book_at_depth_50(model: BookModel) -> None:
    normalizer = BookNormalizer(symbols=SYMBOLS, book_model=model, capacity=DEPTH + MARGIN)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for symbol in SYMBOLS:
            normalizer.apply(_snapshot(symbol), 1)
            normalizer.flush()
        full, _ = tracemalloc.get_traced_memory()
        for round_ in range(5):
            for symbol in SYMBOLS[:1000]:
                normalizer.apply(_growth(symbol, round_), 2)
                normalizer.flush()  # as the ingest's slices do: the tick buffer stays small
        grown, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    per_symbol = (full - before) / len(SYMBOLS)
    bids, asks = normalizer.book(SYMBOLS[0])
    print(
        f"\n{model}: {per_symbol:,.0f} bytes per symbol book at depth {DEPTH} (+{MARGIN}); "
        f"after 50 more levels offered to 1,000 symbols: {grown - full:+,} bytes in all, "
        f"{normalizer.stats.levels_trimmed:,} levels trimmed, faults {normalizer.faults}"
    )
    assert (len(bids), len(asks)) == (DEPTH + MARGIN, DEPTH)
    assert per_symbol <= BUDGET_BYTES
    # Bounded: the books took nothing more for the levels past their capacity.
    assert grown - full <= 4 * 1024
    assert normalizer.stats.levels_trimmed > 0
