"""The native core (fix_session.tick_core) against the Python path and a reference model.

`BookNormalizer.on_raw` decodes, checks and applies raw W and X in C. For every message it
accepts, the ticks must equal those of the Python decoder (fix_spec.md_decoder) followed by
the reference model (tests/support/reference_books.py), byte for byte; every message it
leaves must leave it untouched, so the Python path's own answer (an error, or the same
books) is the only one.
"""

from __future__ import annotations

import select
import threading
from pathlib import Path

import pytest
from fix_wire import X_MIXED, frame, mutations, wire
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference_books import ReferenceNormalizer

from fix_session.ingest import quickfix_feed_type, quickfix_settings
from fix_session.normalizer import BookNormalizer, InvalidEntryError
from fix_session.tick_core import RAW_FALLBACK, RAW_W, RAW_X, RAW_Y, TickCore
from fix_spec import fix44
from fix_spec.codec import FixCodecError
from fix_spec.md_columns import MdMessage
from fix_spec.md_decoder import MdDecoder
from mdfeed.kernel.config import FixSessionConfig
from mdfeed.kernel.tick_records import batch_record, ticks_of
from proto import mdfeed_pb2 as pb

SYMBOLS = ("AAPL", "MSFT", "IBM")
E8 = 100_000_000


def decoder() -> MdDecoder:
    return MdDecoder(fix44.md_layout.LAYOUT, verify_checksum=False)


def fast(symbols: tuple[str, ...] = SYMBOLS) -> BookNormalizer:
    return BookNormalizer(symbols=symbols, decoder=decoder())


def decimal_text(e8: int, pad: int) -> str:
    whole, frac = divmod(e8, E8)
    digits = f"{frac:08d}".rstrip("0")
    digits = (digits + "0" * pad)[: max(len(digits), min(8, len(digits) + pad))]
    return f"{whole}.{digits}" if digits else f"{whole}"


def grouped(ticks: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Ticks in order -> one TickBatch record per symbol, in first-appearance order."""
    runs: dict[bytes, list[bytes]] = {}
    for key, value in ticks:
        runs.setdefault(key, []).append(value)
    return [(key, batch_record(run)) for key, run in runs.items()]


@st.composite
def entry(draw: st.DrawFn, incremental: bool) -> str:
    kind = draw(st.sampled_from(["0", "0", "1", "1", "2", "4"]))
    px = draw(st.integers(95, 105)) * E8 // 4 + draw(st.sampled_from([0, 1, 12_345]))
    size = draw(st.integers(0, 3000)) * E8 // 10
    fields = []
    if incremental:
        fields.append(f"279={draw(st.sampled_from(['0', '1', '2']))}")
    fields.append(f"269={kind}")
    if incremental:
        fields.append(f"55={draw(st.sampled_from(SYMBOLS))}")
    fields.append(f"270={decimal_text(px, draw(st.integers(0, 3)))}")
    if draw(st.booleans()):
        fields.append(f"271={decimal_text(size, draw(st.integers(0, 3)))}")
    if draw(st.booleans()):
        fields.append(f"273=14:30:{draw(st.integers(0, 59)):02d}.{draw(st.integers(0, 999)):03d}")
    return "|".join(fields) + "|"


@st.composite
def message(draw: st.DrawFn, seq: int) -> bytes:
    header = f"49=VENUE|56=MDFEED|34={seq}|52=20261122-14:30:00.{draw(st.integers(0, 999)):03d}|"
    if draw(st.integers(0, 4)) == 0:
        entries = draw(st.lists(entry(False), max_size=12))
        symbol = draw(st.sampled_from(SYMBOLS))
        body = f"35=W|{header}262=req-1|55={symbol}|268={len(entries)}|{''.join(entries)}"
    else:
        entries = draw(st.lists(entry(True), min_size=1, max_size=20))
        body = f"35=X|{header}262=req-1|268={len(entries)}|{''.join(entries)}"
    return frame(body)


@st.composite
def sessions(draw: st.DrawFn) -> list[bytes]:
    return [draw(message(seq)) for seq in range(2, 2 + draw(st.integers(1, 25)))]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sessions())
def test_raw_messages_give_the_python_paths_ticks_byte_for_byte(raws: list[bytes]) -> None:
    core = fast()
    columns = BookNormalizer(symbols=SYMBOLS)
    reference = ReferenceNormalizer()
    md = MdMessage()
    read = decoder()
    for ingest_ns, raw in enumerate(raws, start=1):
        assert read.decode(raw, md)
        expected = reference.apply(md, ingest_ns)
        status = core.on_raw(raw.decode("ascii"), ingest_ns)
        assert status == (RAW_W if md.msg_type == "W" else RAW_X)
        assert core.flush() == grouped(expected)
        keys: list[bytes] = []
        values: list[bytes] = []
        columns.on_message(md, ingest_ns, keys, values)
        assert list(zip(keys, values, strict=True)) == expected
    for symbol in SYMBOLS:
        assert core.top(symbol) == columns.top(symbol)
        assert core.sequence(symbol) == columns.sequence(symbol) == _seq(reference, symbol)
    assert core.symbols == columns.symbols
    assert vars_of(core.stats) == vars_of(columns.stats)
    assert core.stats.increments + core.stats.snapshots == len(raws)


def _seq(reference: ReferenceNormalizer, symbol: str) -> int:
    book = reference.books.get(symbol)
    return book.seq if book is not None else 0


def vars_of(stats: object) -> dict[str, int]:
    names = ("snapshots", "increments", "entries", "quotes_out", "trades_out")
    return {name: getattr(stats, name) for name in names}


def both_ways(normalizer: BookNormalizer, raw: bytes, ingest_ns: int, native: bool) -> str:
    """Apply `raw` natively (falling back as the ingest does) or by the Python path only;
    what happened, as text."""
    if native:
        status = normalizer.on_raw(raw, ingest_ns)
        if status in (RAW_X, RAW_W):
            return "applied"
        if status == RAW_Y:
            return "reject"
    md = MdMessage()
    try:
        if not decoder().decode(raw, md):
            return "not market data"
    except FixCodecError as exc:
        return f"decode error: {exc}"
    if md.msg_type == "Y":
        return "reject"
    try:
        normalizer.apply(md, ingest_ns)
    except InvalidEntryError as exc:
        return f"invalid: {exc}"
    return "applied"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_corrupted_message_is_applied_alike_or_left_untouched(data: st.DataObject) -> None:
    history = data.draw(sessions())
    base = data.draw(message(100))
    raw = data.draw(mutations(base))
    native, python = fast(), fast()
    for i, earlier in enumerate(history):
        assert native.on_raw(earlier, i) in (RAW_X, RAW_W)
        both_ways(python, earlier, i, native=False)
    native.flush()
    python.flush()
    native_says = both_ways(native, raw, 99, native=True)
    python_says = both_ways(python, raw, 99, native=False)
    assert native_says.split(":")[0] == python_says.split(":")[0]
    assert native.flush() == python.flush()
    for symbol in SYMBOLS:
        assert native.top(symbol) == python.top(symbol)
        assert native.sequence(symbol) == python.sequence(symbol)
    assert native.stale == python.stale


def test_the_mixed_sample_reads_natively_as_the_python_path_does() -> None:
    normalizer = fast()
    raw = wire(X_MIXED)
    assert normalizer.on_raw(raw, 5) == RAW_X
    native = normalizer.flush()
    md = MdMessage()
    assert decoder().decode(raw, md)
    assert native == grouped(ReferenceNormalizer().apply(md, 5))
    assert [key for key, _ in native] == [b"AAPL", b"MSFT"]


def test_a_snapshot_names_its_symbol_and_clears_stale_and_unavailable() -> None:
    normalizer = fast()
    normalizer.stale.add("MSFT")
    normalizer.on_reject(["MSFT"], "unknown")
    raw = frame(
        "35=W|49=V|56=M|34=2|52=20261122-14:30:00.125|262=r|55=MSFT|268=2|"
        "269=0|270=415.1|271=100|269=1|270=415.2|271=100|"
    )
    assert normalizer.on_raw(raw, 1) == RAW_W
    assert normalizer.last_snapshot == "MSFT"
    assert "MSFT" not in normalizer.stale
    assert "MSFT" not in normalizer.unavailable
    [(key, value)] = normalizer.flush()
    [tick] = [pb.Tick.FromString(t) for t in ticks_of(value)]
    assert (key, tick.bid_px_e8, tick.ask_px_e8, tick.from_snapshot) == (
        b"MSFT",
        415_10000000,
        415_20000000,
        True,
    )


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("35=X|49=V|56=M|34=2|52=20261122-14:30:00|262=r|268=1|279=0|269=0|55=ZZZZ|270=1|", "symbol"),
        ("35=X|49=V|56=M|34=2|52=20261122-14:30:00|262=r|268=1|279=0|269=0|55=AAPL|270=-1|", "price"),
        ("35=X|49=V|56=M|34=2|52=20261122-14:30:00|262=r|268=1|279=0|269=0|55=AAPL|270=1.123456789|", "digits"),
        ("35=X|49=V|56=M|34=2|52=20261122-14:30:00|262=r|268=2|279=0|269=0|55=AAPL|270=1|", "count"),
        ("35=X|49=V|56=M|34=2|52=20261122-25:30:00|262=r|268=1|279=0|269=0|55=AAPL|270=1|", "time"),
        ("35=X|49=V|56=M|34=2|52=20261122-14:30:00|262=r|268=1|279=0|269=0|55=AAPL|", "no price"),
        ("35=X|49=V|56=M|34=2|52=20261122-14:30:00|262=r|268=1|279=0|55=AAPL|270=1|", "no type"),
        ("35=D|49=V|56=M|34=2|52=20261122-14:30:00|11=a|", "not market data"),
    ],
)
def test_what_the_core_cannot_apply_is_left_untouched(body: str, why: str) -> None:
    normalizer = fast()
    assert normalizer.on_raw(frame(body), 1) == RAW_FALLBACK, why
    assert normalizer.pending == 0
    assert normalizer.symbols == []
    assert normalizer.stats.increments == 0


def test_a_reject_is_named_for_the_caller() -> None:
    raw = frame("35=Y|49=V|56=M|34=2|52=20261122-14:30:00|262=r|281=0|58=Unknown symbol|")
    assert fast().on_raw(raw, 1) == RAW_Y


def test_a_non_ascii_message_and_a_core_without_a_dictionary_fall_back() -> None:
    body = "35=X|49=V|56=M|34=2|52=20261122-14:30:00|262=r|268=1|279=0|269=0|55=AAPL|270=1|"
    raw = frame(body)
    assert BookNormalizer(symbols=SYMBOLS).on_raw(raw, 1) == RAW_FALLBACK
    text = frame(body.replace("262=r", "262=\u00e9")).decode("latin-1")
    assert fast().on_raw(text, 1) == RAW_FALLBACK
    assert fast().on_raw(raw.decode("ascii"), 1) == RAW_X


def test_held_back_increments_spend_their_sequence_until_the_next_snapshot() -> None:
    normalizer = fast()
    snapshot = frame(
        "35=W|49=V|56=M|34=2|52=20261122-14:30:00|262=r|55=AAPL|268=1|269=0|270=10|271=1|"
    )

    def increment(px: int) -> bytes:
        return frame(
            f"35=X|49=V|56=M|34=3|52=20261122-14:30:00|262=r|268=1|279=0|269=0|55=AAPL|270={px}|"
        )

    normalizer.on_raw(snapshot, 1)
    normalizer.on_raw(increment(11), 2)
    assert [k for k, _ in normalizer.flush()] == [b"AAPL"]
    normalizer.hold_back()
    normalizer.on_raw(increment(12), 3)
    normalizer.on_raw(increment(13), 4)
    assert normalizer.flush() == []
    assert normalizer.stats.ticks_suppressed == 2
    normalizer.on_raw(snapshot, 5)
    normalizer.on_raw(increment(14), 6)
    [(_, record)] = normalizer.flush()
    seqs = [pb.Tick.FromString(t).seq for t in ticks_of(record)]
    assert seqs == [5, 6]  # 3 and 4 were held back: the gap shows


def test_pending_ticks_survive_the_symbol_table_growing() -> None:
    core = TickCore([])
    md = MdMessage()
    md.msg_type, md.seq_num, md.sending_ns = "X", 2, 1
    for i in range(300):
        md.clear()
        md.msg_type, md.seq_num, md.sending_ns = "X", 2, 1
        md.add_entry(0, 0, f"S{i}", (i + 1) * E8, E8)
        core.apply(md, 1)
    records = core.flush()
    assert [key for key, _ in records] == [f"S{i}".encode() for i in range(300)]
    for i, (_, record) in enumerate(records):
        [tick] = [pb.Tick.FromString(t) for t in ticks_of(record)]
        assert (tick.symbol, tick.bid_px_e8) == (f"S{i}", (i + 1) * E8)
    assert len(core.symbols()) == 300


# -- the inbox: what the QuickFIX thread pushes, the loop drains -------------------------

X_ONE = frame(
    "35=X|49=V|56=M|34=3|52=20261122-14:30:00|262=r|268=1|279=0|269=0|55=AAPL|270=10|"
)


def readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


def test_a_push_wakes_the_loop_once_until_it_settles() -> None:
    normalizer = fast()
    fd = normalizer.open_inbox(16)
    assert not readable(fd)
    assert normalizer.push(X_ONE)
    assert readable(fd)
    assert normalizer.push(X_ONE)  # the loop is already woken: no second signal needed
    taken, snapshots, arrivals, fallback, _ = normalizer.drain(100, 10**9)
    assert (taken, snapshots, len(arrivals), fallback) == (2, [], 2, None)
    assert not readable(fd)  # drain read the signal
    assert normalizer.settle(True) is False  # empty; held: pushes do not wake meanwhile
    normalizer.push(X_ONE)
    assert not readable(fd)
    assert normalizer.settle(False) is True  # one waiting: the caller drains on
    normalizer.drain(100, 10**9)
    assert normalizer.settle(False) is False
    normalizer.push(X_ONE)
    assert readable(fd)
    assert normalizer.inbox == (1, 0, 0, 4)


def test_drain_stops_at_a_message_for_the_python_path_and_keeps_the_order() -> None:
    normalizer = fast()
    normalizer.open_inbox(16)
    reject = frame("35=Y|49=V|56=M|34=4|52=20261122-14:30:00|262=r|281=0|")
    for raw in (X_ONE, reject, X_ONE):
        normalizer.push(raw)
    taken, _, arrivals, fallback, fallback_ns = normalizer.drain(100, 10**9)
    assert (taken, len(arrivals), fallback) == (2, 1, reject)
    assert fallback_ns > 0
    taken, _, arrivals, fallback, _ = normalizer.drain(100, 10**9)
    assert (taken, len(arrivals), fallback) == (1, 1, None)
    assert normalizer.stats.increments == 2  # both X applied; the Y came back between them


def test_a_full_inbox_holds_the_pusher_until_half_drained_and_a_stop_releases_it() -> None:
    normalizer = fast()
    normalizer.open_inbox(4)
    for _ in range(4):
        normalizer.push(X_ONE)
    results: list[bool] = []
    pusher = threading.Thread(target=lambda: results.append(normalizer.push(X_ONE)))
    pusher.start()
    pusher.join(0.2)
    assert pusher.is_alive(), "a push into a full inbox must wait (TCP pushes back)"
    assert normalizer.inbox[1] == 1  # one wait counted
    normalizer.drain(2, 10**9)  # down to half: room
    pusher.join(5)
    assert results == [True]
    while normalizer.inbox_held < 4:
        normalizer.push(X_ONE)
    stopped = threading.Thread(target=lambda: results.append(normalizer.push(X_ONE)))
    stopped.start()
    stopped.join(0.2)
    assert stopped.is_alive()
    normalizer.stop_inbox()
    stopped.join(5)
    assert results == [True, False]
    assert normalizer.clear_inbox() == 4
    assert normalizer.inbox[2] == 5  # the dropped push and the 4 cleared


def test_the_quickfix_feed_takes_only_a_core_with_an_open_inbox(tmp_path: Path) -> None:
    feed_type = quickfix_feed_type()
    settings = tmp_path / "quickfix.cfg"
    settings.write_text(quickfix_settings(FixSessionConfig(), tmp_path))

    def on_event(kind: str, begin: str, sender: str, target: str) -> None:
        raise AssertionError("no session here")

    with pytest.raises(TypeError, match="TickCore whose inbox is open"):
        feed_type(str(settings), fast().core, on_event)
    with pytest.raises(TypeError, match="TickCore whose inbox is open"):
        feed_type(str(settings), object(), on_event)  # type: ignore[arg-type]  # what it refuses
    normalizer = fast()
    normalizer.open_inbox(4)
    with pytest.raises(ValueError, match=r"missing\.cfg"):
        feed_type(str(tmp_path / "missing.cfg"), normalizer.core, on_event)
    feed = feed_type(str(settings), normalizer.core, on_event)
    assert feed.counters == (0, 0)
