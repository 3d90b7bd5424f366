"""The normalizer per message: its column core against its typed entry points.

Per group, on the same messages in the same run (`make bench` prints each group as one
pytest-benchmark table):

- ``core``: `BookNormalizer.on_message` on a decoded `MdMessage`, appending each tick's
  Kafka key and encoded Tick bytes: the tick path's cost per message, encoding included;
- ``typed``: `on_incremental` / `on_snapshot` on the typed message (fix_spec.fix44), which
  reads it into columns (`columns_from_typed`), runs the same core and parses the ticks
  into `pb.Tick` objects, then `SerializeToString` of each: what a caller holding typed
  messages pays for the same bytes.

Decoding is excluded from both (bench/test_fix_codec_bench.py times it), but not from
the ``raw-X-10`` and ``raw-W-20`` groups, which time what the ingest does per raw message:
``native``, `BookNormalizer.on_raw` (the C core: decode, check, book, encode), against
``python``, the market data decoder (compiled) into an MdMessage, then
`BookNormalizer.apply`; each flushes its ticks every 10 messages, as the ingest's slices
do. Groups:
``normalize-X-10``: 10-entry increments over 4 symbols (size changes, a trade, a deeper
level added and removed, the best bid deleted and restored), cycled over 1,000 variants
against books built by a snapshot; ``normalize-W-20``: 20-entry snapshots (10 levels a
side) of 4 symbols in turn; ``encode-tick``: one full quote tick, hand encoder against
protobuf's.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from decimal import Decimal
from typing import TypeVar

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from fix_session.ingest import md_fast_decoder
from fix_session.normalizer import BookNormalizer
from fix_session.tick_core import RAW_W, RAW_X
from fix_session.tick_encoding import encode_fields, symbol_field
from fix_spec import fix44
from fix_spec.fix44 import enums
from fix_spec.fix44.groups import MDIncGrpNoMDEntries
from fix_spec.fix44.header import Header
from fix_spec.fix44.messages import MarketDataIncrementalRefresh as X
from fix_spec.fix44.messages import MarketDataSnapshotFullRefresh as W
from fix_spec.md_columns import MdMessage
from fix_spec.md_from_typed import columns_from_typed
from proto import mdfeed_pb2 as pb

T = TypeVar("T")

SYMBOLS = ("AAPL", "MSFT", "IBM", "BRK.B")
LEVELS = 5
VARIANTS = 1000
SENDING_NS = 1_795_357_800_125_000_000
INGEST_NS = SENDING_NS + 80_000
CENT = Decimal("0.01")
BID, OFFER, TRADE = enums.MDEntryType.BID, enums.MDEntryType.OFFER, enums.MDEntryType.TRADE
NEW, CHANGE, DELETE = (
    enums.MDUpdateAction.NEW,
    enums.MDUpdateAction.CHANGE,
    enums.MDUpdateAction.DELETE,
)
MIDS = {s: Decimal(100 + 50 * i) for i, s in enumerate(SYMBOLS)}


def _header(seq: int) -> Header:
    return Header(
        sender_comp_id="VENUE",
        target_comp_id="MDFEED",
        msg_seq_num=seq,
        sending_time=SENDING_NS + seq * 1_000_000,
    )


def _price(symbol: str, kind: enums.MDEntryType, level: int) -> Decimal:
    step = CENT * (level + 1)
    return MIDS[symbol] - step if kind is BID else MIDS[symbol] + step


def _snapshot(symbol: str, seq: int, levels: int, rng: random.Random) -> W:
    entries = [
        W.NoMDEntries(
            md_entry_type=kind,
            md_entry_px=_price(symbol, kind, level),
            md_entry_size=Decimal(rng.randrange(1, 50) * 100),
        )
        for level in range(levels)
        for kind in (BID, OFFER)
    ]
    return W(symbol=symbol, no_md_entries=entries, header=_header(seq))


def _x_entry(
    action: enums.MDUpdateAction,
    kind: enums.MDEntryType,
    symbol: str,
    px: Decimal,
    size: int,
) -> MDIncGrpNoMDEntries:
    return X.NoMDEntries(
        md_update_action=action,
        md_entry_type=kind,
        symbol=symbol,
        md_entry_px=px,
        md_entry_size=Decimal(size),
        md_entry_time="14:30:00.100" if kind is TRADE else None,
    )


def _increment(m: int, rng: random.Random) -> X:
    entries = []
    for i in range(8):
        symbol = SYMBOLS[(m + i) % len(SYMBOLS)]
        kind = BID if i % 2 == 0 else OFFER
        level = rng.randrange(LEVELS)
        entries.append(
            _x_entry(CHANGE, kind, symbol, _price(symbol, kind, level), rng.randrange(1, 50) * 100)
        )
    symbol = SYMBOLS[m // 4 % len(SYMBOLS)]
    entries.append(_x_entry(NEW, TRADE, symbol, MIDS[symbol], rng.randrange(1, 10) * 100))
    # Cycles of four leave every book as it was: a deeper level added, then removed; the
    # best bid deleted (the side is searched for the next), then restored.
    step = m % 4
    deep = _price(symbol, OFFER, LEVELS)
    best = _price(symbol, BID, 0)
    action, kind, px = (
        (NEW, OFFER, deep),
        (DELETE, OFFER, deep),
        (DELETE, BID, best),
        (NEW, BID, best),
    )[step]
    entries.append(_x_entry(action, kind, symbol, px, 300))
    return X(no_md_entries=entries, header=_header(m + 10))


def _cycle(items: list[T]) -> Callable[[], T]:
    return itertools.cycle(items).__next__


RNG = random.Random(12)
BOOKS = [_snapshot(s, i + 1, LEVELS, RNG) for i, s in enumerate(SYMBOLS)]
INCREMENTS = [_increment(m, RNG) for m in range(VARIANTS)]
SNAPSHOTS = [_snapshot(SYMBOLS[m % len(SYMBOLS)], m + 10, 10, RNG) for m in range(VARIANTS)]


def _columns(messages: list[X] | list[W]) -> list[MdMessage]:
    return [columns_from_typed(message) for message in messages]


def _booked() -> BookNormalizer:
    normalizer = BookNormalizer(symbols=SYMBOLS)
    for snapshot in BOOKS:
        normalizer.on_snapshot(snapshot, 1, INGEST_NS)
    return normalizer


def _core(benchmark: BenchmarkFixture, messages: list[MdMessage]) -> None:
    normalizer = _booked()
    next_md = _cycle(messages)
    keys: list[bytes] = []
    values: list[bytes] = []

    def run() -> int:
        keys.clear()
        values.clear()
        normalizer.on_message(next_md(), INGEST_NS, keys, values)
        return len(values)

    assert benchmark(run) > 0
    stats = normalizer.stats
    benchmark.extra_info["ticks_per_message"] = (stats.quotes_out + stats.trades_out) / max(
        1, stats.increments + stats.snapshots
    )


@pytest.mark.benchmark(group="normalize-X-10")
def test_normalize_x_core(benchmark: BenchmarkFixture) -> None:
    _core(benchmark, _columns(INCREMENTS))


@pytest.mark.benchmark(group="normalize-X-10")
def test_normalize_x_typed(benchmark: BenchmarkFixture) -> None:
    normalizer = _booked()
    next_message = _cycle(list(enumerate(INCREMENTS, 10)))

    def run() -> int:
        seq, message = next_message()
        ticks = normalizer.on_incremental(message, seq, INGEST_NS)
        return len([tick.SerializeToString() for tick in ticks])

    assert benchmark(run) > 0


@pytest.mark.benchmark(group="normalize-W-20")
def test_normalize_w_core(benchmark: BenchmarkFixture) -> None:
    _core(benchmark, _columns(SNAPSHOTS))


@pytest.mark.benchmark(group="normalize-W-20")
def test_normalize_w_typed(benchmark: BenchmarkFixture) -> None:
    normalizer = _booked()
    next_message = _cycle(list(enumerate(SNAPSHOTS, 10)))

    def run() -> int:
        seq, message = next_message()
        ticks = normalizer.on_snapshot(message, seq, INGEST_NS)
        return len([tick.SerializeToString() for tick in ticks])

    assert benchmark(run) > 0


def _raw(messages: list[X] | list[W]) -> list[str]:
    return [fix44.encode(message).decode("ascii") for message in messages]


def _raw_booked() -> BookNormalizer:
    normalizer = BookNormalizer(symbols=SYMBOLS, decoder=md_fast_decoder("fix44"))
    for snapshot in BOOKS:
        normalizer.on_snapshot(snapshot, 1, INGEST_NS)
    return normalizer


def _native(benchmark: BenchmarkFixture, raws: list[str], status: int) -> None:
    normalizer = _raw_booked()
    next_raw = _cycle(raws)
    count = itertools.count()

    def run() -> int:
        done = normalizer.on_raw(next_raw(), INGEST_NS)
        if next(count) % 10 == 9:
            normalizer.flush()
        return done

    assert benchmark(run) == status


def _python(benchmark: BenchmarkFixture, raws: list[str]) -> None:
    normalizer = _raw_booked()
    decode = md_fast_decoder("fix44").decode
    md = MdMessage()
    next_raw = _cycle(raws)
    count = itertools.count()

    def run() -> int:
        decode(next_raw().encode("latin-1"), md)
        normalizer.apply(md, INGEST_NS)
        if next(count) % 10 == 9:
            normalizer.flush()
        return md.count

    assert benchmark(run) > 0


RAW_INCREMENTS = _raw(INCREMENTS)
RAW_SNAPSHOTS = _raw(SNAPSHOTS)


@pytest.mark.benchmark(group="raw-X-10")
def test_raw_x_native(benchmark: BenchmarkFixture) -> None:
    _native(benchmark, RAW_INCREMENTS, RAW_X)


@pytest.mark.benchmark(group="raw-X-10")
def test_raw_x_python(benchmark: BenchmarkFixture) -> None:
    _python(benchmark, RAW_INCREMENTS)


@pytest.mark.benchmark(group="raw-W-20")
def test_raw_w_native(benchmark: BenchmarkFixture) -> None:
    _native(benchmark, RAW_SNAPSHOTS, RAW_W)


@pytest.mark.benchmark(group="raw-W-20")
def test_raw_w_python(benchmark: BenchmarkFixture) -> None:
    _python(benchmark, RAW_SNAPSHOTS)


def _protobuf_quote() -> bytes:
    return pb.Tick(
        symbol="AAPL",
        seq=123_456,
        kind=pb.TICK_KIND_QUOTE,
        bid_px_e8=18_950_000_000,
        bid_size_e8=10_000_000_000,
        ask_px_e8=18_952_000_000,
        ask_size_e8=30_000_000_000,
        last_px_e8=18_951_000_000,
        last_size_e8=7_500_000_000,
        venue_time_ns=SENDING_NS,
        ingest_time_ns=INGEST_NS,
        fix_msg_seq_num=98_765,
    ).SerializeToString()


@pytest.mark.benchmark(group="encode-tick")
def test_encode_tick_by_hand(benchmark: BenchmarkFixture) -> None:
    head = symbol_field("AAPL")

    def run() -> bytes:
        return encode_fields(
            head,
            seq=123_456,
            kind=pb.TICK_KIND_QUOTE,
            has_bid=True,
            bid_px_e8=18_950_000_000,
            bid_size_e8=10_000_000_000,
            has_ask=True,
            ask_px_e8=18_952_000_000,
            ask_size_e8=30_000_000_000,
            has_last=True,
            last_px_e8=18_951_000_000,
            last_size_e8=7_500_000_000,
            venue_time_ns=SENDING_NS,
            ingest_time_ns=INGEST_NS,
            fix_msg_seq_num=98_765,
            from_snapshot=False,
        )

    assert benchmark(run) == _protobuf_quote()


@pytest.mark.benchmark(group="encode-tick")
def test_encode_tick_protobuf(benchmark: BenchmarkFixture) -> None:
    assert len(benchmark(_protobuf_quote)) > 0
