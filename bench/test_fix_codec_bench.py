"""Decode and encode of a 10-entry MarketDataIncrementalRefresh, against two peers.

Peers, each timed on the same wire bytes in the same run:
- QuickFIX (C++ parse through the Python bindings) plus getGroup/getField extraction of
  every entry's fields, as a Python application would read them;
- simplefix (pure Python tag=value parsing, untyped, no group or type validation).

Each benchmark reads the same five fields of each of the ten entries (action, type,
symbol, price, size). `make bench` prints each group (decode-X-10, encode-X-10) as one
pytest-benchmark table, so the codec and its peers are read side by side in one run.

The market data fast path (`fix_spec.md_decoder`, raw bytes into MdMessage columns) has its
own groups, against the typed decode read into the same columns (`columns_from_typed`):
md-decode, for X-10 (the messages above) and X-20 (20 entries over 4 symbols), each
with and without the CheckSum sum (`verify_checksum=False`).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from decimal import Decimal
from importlib import resources
from typing import TypeVar

import pytest
import quickfix
import simplefix
from pytest_benchmark.fixture import BenchmarkFixture

from fix_spec import fix44
from fix_spec.fix44 import enums
from fix_spec.fix44.header import Header
from fix_spec.fix44.messages import MarketDataIncrementalRefresh
from fix_spec.md_columns import MdMessage
from fix_spec.md_decoder import MdDecoder
from fix_spec.md_from_typed import columns_from_typed

T = TypeVar("T")

ENTRIES = 10
#: Distinct messages the decoders cycle through: prices random-walk in cents and sizes
#: vary, as on a real feed, so no parser sees the same bytes over and over.
VARIANTS = 2000


def _entry_time(seq: int) -> str:
    return f"14:{30 + seq // 60000 % 30:02d}:{seq // 1000 % 60:02d}.{seq % 1000:03d}"


def _message(rng: random.Random, seq: int, mid: Decimal) -> MarketDataIncrementalRefresh:
    entries = [
        MarketDataIncrementalRefresh.NoMDEntries(
            md_update_action=enums.MDUpdateAction.CHANGE if i % 3 else enums.MDUpdateAction.NEW,
            md_entry_type=enums.MDEntryType.OFFER if i % 2 else enums.MDEntryType.BID,
            symbol="AAPL",
            md_entry_px=mid + (Decimal(i // 2 + 1) / 100) * (1 if i % 2 else -1),
            md_entry_size=Decimal(rng.randrange(1, 50) * 100),
            md_entry_time=_entry_time(seq),
        )
        for i in range(ENTRIES)
    ]
    return MarketDataIncrementalRefresh(
        md_req_id="req-1",
        no_md_entries=entries,
        header=Header(
            sender_comp_id="VENUE",
            target_comp_id="MDFEED",
            msg_seq_num=seq,
            sending_time=1_795_357_800_125_000_000 + seq * 1_000_000,
        ),
    )


def _variants() -> list[MarketDataIncrementalRefresh]:
    rng = random.Random(42)
    mid = Decimal("189.50")
    out = []
    for seq in range(1, VARIANTS + 1):
        mid += Decimal(rng.choice((-1, 0, 1))) / 100
        out.append(_message(rng, seq, mid))
    return out


MESSAGES = _variants()
WIRES = [fix44.encode(m) for m in MESSAGES]
TEXTS = [w.decode() for w in WIRES]
MESSAGE = MESSAGES[0]
WIRE = WIRES[0]


def _cycle(items: list[T]) -> Callable[[], T]:
    it = itertools.cycle(items)
    return it.__next__


def _check(rows: list[tuple[str, str, str, str, str]]) -> None:
    assert len(rows) == ENTRIES
    assert rows[0][2] == "AAPL"


@pytest.mark.benchmark(group="decode-X-10")
def test_decode_mdfeed_typed(benchmark: BenchmarkFixture) -> None:
    next_wire = _cycle(WIRES)

    def run() -> list[tuple[str, str, str, str, str]]:
        message = fix44.decode(next_wire())
        return [
            (
                e.md_update_action,
                e.md_entry_type,
                e.symbol,
                str(e.md_entry_px),
                str(e.md_entry_size),
            )
            for e in message.no_md_entries  # type: ignore[attr-defined]  # all X; no check in timed code
        ]

    _check(benchmark(run))
    benchmark.extra_info["entries"] = ENTRIES


@pytest.fixture(scope="module")
def data_dictionary() -> quickfix.DataDictionary:
    return quickfix.DataDictionary(str(resources.files("fix_spec") / "dictionaries" / "FIX44.xml"))


@pytest.mark.benchmark(group="decode-X-10")
def test_decode_quickfix_getgroup(
    benchmark: BenchmarkFixture, data_dictionary: quickfix.DataDictionary
) -> None:
    next_text = _cycle(TEXTS)

    def run() -> list[tuple[str, str, str, str, str]]:
        message = quickfix.Message(next_text(), data_dictionary, True)
        group = quickfix.Group(268, 279)
        rows = []
        for i in range(1, int(message.getField(268)) + 1):
            message.getGroup(i, group)
            rows.append(
                (
                    group.getField(279),
                    group.getField(269),
                    group.getField(55),
                    group.getField(270),
                    group.getField(271),
                )
            )
        return rows

    _check(benchmark(run))
    benchmark.extra_info["entries"] = ENTRIES


@pytest.mark.benchmark(group="decode-X-10")
def test_decode_simplefix(benchmark: BenchmarkFixture) -> None:
    next_wire = _cycle(WIRES)

    def run() -> list[tuple[str, str, str, str, str]]:
        parser = simplefix.FixParser()
        parser.append_buffer(next_wire())
        message = parser.get_message()
        return [
            tuple(message.get(tag, nth).decode() for tag in (279, 269, 55, 270, 271))
            for nth in range(1, ENTRIES + 1)
        ]

    _check(benchmark(run))
    benchmark.extra_info["entries"] = ENTRIES


@pytest.mark.benchmark(group="encode-X-10")
def test_encode_mdfeed_typed(benchmark: BenchmarkFixture) -> None:
    next_message = _cycle(MESSAGES)
    assert len(benchmark(lambda: fix44.encode(next_message()))) > 0


@pytest.mark.benchmark(group="encode-X-10")
def test_encode_quickfix(benchmark: BenchmarkFixture) -> None:
    def run() -> str:
        message = quickfix.Message()
        header = message.getHeader()
        header.setField(quickfix.BeginString("FIX.4.4"))
        header.setField(quickfix.MsgType("X"))
        header.setField(49, "VENUE")
        header.setField(56, "MDFEED")
        header.setField(34, "123456")
        header.setField(52, "20261122-14:30:00.126")
        message.setField(262, "req-1")
        for entry in MESSAGE.no_md_entries:
            group = quickfix.Group(268, 279)
            group.setField(279, entry.md_update_action.value)
            group.setField(269, str(entry.md_entry_type.value))  # type: ignore[union-attr]  # _message sets it; no check in timed code
            group.setField(55, "AAPL")
            group.setField(270, str(entry.md_entry_px))
            group.setField(271, str(entry.md_entry_size))
            group.setField(273, str(entry.md_entry_time))
            message.addGroup(group)
        return str(message.toString())

    # QuickFIX orders header fields its own way; the codec reads its output back.
    decoded = fix44.decode(benchmark(run).encode())
    assert isinstance(decoded, MarketDataIncrementalRefresh)
    assert len(decoded.no_md_entries) == ENTRIES


@pytest.mark.benchmark(group="encode-X-10")
def test_encode_simplefix(benchmark: BenchmarkFixture) -> None:
    def run() -> bytes:
        message = simplefix.FixMessage()
        message.append_pair(8, "FIX.4.4")
        message.append_pair(35, "X")
        message.append_pair(49, "VENUE")
        message.append_pair(56, "MDFEED")
        message.append_pair(34, 123456)
        message.append_pair(52, "20261122-14:30:00.126")
        message.append_pair(262, "req-1")
        message.append_pair(268, ENTRIES)
        for entry in MESSAGE.no_md_entries:
            message.append_pair(279, entry.md_update_action.value)
            message.append_pair(269, entry.md_entry_type.value)  # type: ignore[union-attr]  # _message sets it; no check in timed code
            message.append_pair(55, "AAPL")
            message.append_pair(270, str(entry.md_entry_px))
            message.append_pair(271, str(entry.md_entry_size))
            message.append_pair(273, str(entry.md_entry_time))
        return bytes(message.encode())

    decoded = fix44.decode(benchmark(run))
    assert isinstance(decoded, MarketDataIncrementalRefresh)
    assert len(decoded.no_md_entries) == ENTRIES


# -- the market data fast path -------------------------------------------------------------

MD_SYMBOLS = ("AAPL", "MSFT", "NVDA", "AMZN")


def _multi_symbol(rng: random.Random, seq: int, mids: list[Decimal]) -> bytes:
    """A 20-entry X over four symbols: per symbol a bid and an offer change, then trades."""
    entries = []
    for i in range(20):
        s = i % len(MD_SYMBOLS)
        side = (i // len(MD_SYMBOLS)) % 3
        kind = (enums.MDEntryType.BID, enums.MDEntryType.OFFER, enums.MDEntryType.TRADE)[side]
        offset = Decimal((1, -1, 0)[side]) / 100
        entries.append(
            MarketDataIncrementalRefresh.NoMDEntries(
                md_update_action=(
                    enums.MDUpdateAction.CHANGE if side < 2 else enums.MDUpdateAction.NEW
                ),
                md_entry_type=kind,
                symbol=MD_SYMBOLS[s],
                md_entry_px=mids[s] - offset,
                md_entry_size=Decimal(rng.randrange(1, 50) * 100),
                md_entry_time=_entry_time(seq),
            )
        )
    message = MarketDataIncrementalRefresh(
        md_req_id="all",
        no_md_entries=entries,
        header=Header(
            sender_comp_id="VENUE",
            target_comp_id="MDFEED",
            msg_seq_num=seq,
            sending_time=1_795_357_800_125_000_000 + seq * 1_000_000,
        ),
    )
    return fix44.encode(message)


def _multi_symbol_variants() -> list[bytes]:
    rng = random.Random(7)
    mids = [Decimal("189.50"), Decimal("415.10"), Decimal("120.25"), Decimal("185.00")]
    out = []
    for seq in range(1, VARIANTS + 1):
        mids = [m + Decimal(rng.choice((-1, 0, 1))) / 100 for m in mids]
        out.append(_multi_symbol(rng, seq, mids))
    return out


WIRES_20 = _multi_symbol_variants()
MD_WIRES = {"X-10": WIRES, "X-20": WIRES_20}
MD_ENTRIES = {"X-10": ENTRIES, "X-20": 20}
TRUSTING = MdDecoder(fix44.md_layout.LAYOUT, verify_checksum=False)


def _md_run(
    benchmark: BenchmarkFixture, shape: str, decode: Callable[[bytes, MdMessage], bool]
) -> None:
    next_wire = _cycle(MD_WIRES[shape])
    out = MdMessage()

    def run() -> MdMessage:
        decode(next_wire(), out)
        return out

    result = benchmark(run)
    assert result.count == MD_ENTRIES[shape]
    assert result.px_e8[0] > 0
    benchmark.extra_info["entries"] = MD_ENTRIES[shape]


def _typed_columns(data: bytes, out: MdMessage) -> bool:
    columns_from_typed(fix44.decode(data), out)
    return True


@pytest.mark.parametrize("shape", ["X-10", "X-20"])
@pytest.mark.benchmark(group="md-decode")
def test_md_decode_fast(benchmark: BenchmarkFixture, shape: str) -> None:
    _md_run(benchmark, shape, fix44.MD_DECODER.decode)


@pytest.mark.parametrize("shape", ["X-10", "X-20"])
@pytest.mark.benchmark(group="md-decode")
def test_md_decode_fast_without_checksum(benchmark: BenchmarkFixture, shape: str) -> None:
    _md_run(benchmark, shape, TRUSTING.decode)


@pytest.mark.parametrize("shape", ["X-10", "X-20"])
@pytest.mark.benchmark(group="md-decode")
def test_md_decode_typed_then_columns(benchmark: BenchmarkFixture, shape: str) -> None:
    _md_run(benchmark, shape, _typed_columns)


@pytest.mark.parametrize("shape", ["X-10", "X-20"])
@pytest.mark.benchmark(group="md-decode")
def test_md_decode_typed_only(benchmark: BenchmarkFixture, shape: str) -> None:
    next_wire = _cycle(MD_WIRES[shape])
    message = benchmark(lambda: fix44.decode(next_wire()))
    assert isinstance(message, MarketDataIncrementalRefresh)
    assert len(message.no_md_entries) == MD_ENTRIES[shape]
