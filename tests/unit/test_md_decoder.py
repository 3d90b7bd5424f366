"""The market data fast path reads W, X and Y as the typed codec does.

Every case compares `MD_DECODER.decode(raw, out)` with the reference reading,
`columns_from_typed(CODEC.decode(raw))`: equal columns when both accept, a FixDecodeError
from both when the typed codec rejects the bytes. The one documented difference: the fast
path does not check the values of fields it does not read (the typed codec checks every
field's type), so where only the typed codec raises, its error must name such a field.
"""

from __future__ import annotations

from decimal import Decimal
from types import ModuleType
from typing import Any

import pytest
from fix_wire import VALID, W_AAPL, W_MSFT, X_BODY, X_MIXED, Y_REJECT, frame, mutations, wire
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fix_spec import fix44, fix50sp2, venue44
from fix_spec.codec import FixDecodeError
from fix_spec.fix44 import enums
from fix_spec.fix44.header import Header
from fix_spec.fix44.messages import (
    MarketDataIncrementalRefresh,
    MarketDataRequestReject,
    MarketDataSnapshotFullRefresh,
)
from fix_spec.md_columns import ABSENT, BID, CHANGE, MdMessage
from fix_spec.md_decoder import MdDecoder
from fix_spec.md_from_typed import columns_from_typed

#: Tags the fast path reads: a value error on one of them must raise there too.
READ_TAGS = {8, 9, 10, 35, 34, 52, 262, 55, 58, 281, 268, 279, 269, 270, 271, 273, 290, 278, 280}


def _columns(md: MdMessage) -> dict[str, Any]:
    # Every public field by name: MdMessage is compiled, a native class without __dict__.
    fields = (k for k in dir(md) if not k.startswith("_") and not callable(getattr(md, k)))
    return {k: list(v) if isinstance(v := getattr(md, k), list) else v for k in fields}


def _outcome(package: ModuleType, raw: bytes) -> tuple[str, Any]:
    """Compare both decoders on `raw`: ("typed", columns), ("fast", columns) or ("error", e)."""
    out = MdMessage()
    typed_error: FixDecodeError | None = None
    try:
        typed = package.CODEC.decode(raw)
    except FixDecodeError as exc:
        typed_error = exc
    if typed_error is not None:
        try:
            fast = package.MD_DECODER.decode(raw, out)
        except FixDecodeError:
            return ("error", typed_error)
        # Accepted by the fast path only: a bad value of a field it does not read.
        assert not fast or typed_error.tag not in READ_TAGS, (typed_error, raw)
        return ("error", typed_error)
    fast = package.MD_DECODER.decode(raw, out)  # must not raise: the typed codec accepted
    if not fast:
        assert _columns(out) == _columns(MdMessage()), "a False decode leaves out cleared"
        return ("typed", typed)
    assert _columns(out) == _columns(columns_from_typed(typed)), raw
    return ("fast", out)


@pytest.mark.parametrize("text", [W_AAPL, W_MSFT, X_MIXED, Y_REJECT])
def test_quickfix_checked_samples_read_the_same(text: str) -> None:
    kind, out = _outcome(fix44, wire(text))
    assert kind == "fast"
    assert out.msg_type == text.split("|35=")[1][0]


def test_incremental_sample_columns() -> None:
    out = MdMessage()
    assert fix44.MD_DECODER.decode(wire(X_MIXED), out)
    assert out.count == 5
    assert out.entry_symbol == ["AAPL", "AAPL", "MSFT", "AAPL", "MSFT"]
    assert out.px_e8[1] == 18_952_000_000
    assert out.size_e8[3] == 7_500_000_000
    assert out.time_ns[3] == (14 * 3600 + 30 * 60) * 10**9 + 249_000_000
    assert out.time_ns[0] == ABSENT
    assert (out.action[1], out.kind[0]) == (CHANGE, BID)
    assert out.position_no[2] == 10
    assert (out.seq_num, out.md_req_id) == (4, "req-1")


def test_not_market_data_is_left_to_the_typed_codec() -> None:
    raw = frame("35=0|49=A|56=B|34=1|52=20261122-14:30:00|")
    out = MdMessage()
    assert fix44.MD_DECODER.decode(raw, out) is False
    assert fix44.CODEC.decode(raw).MSG_TYPE == "0"


@pytest.mark.parametrize(
    "body",
    [
        # A nested group inside an entry (NoSecurityAltID) and a value holding '='.
        X_BODY.replace("55=AAPL|270=189.49", "55=AAPL|454=1|455=US0378331005|456=4|270=189.49"),
        "35=Y|49=VENUE|56=MDFEED|34=5|52=20261122-14:30:00.300|262=r|281=0|58=a=b|",
    ],
)
def test_unusual_shapes_are_left_to_the_typed_codec(body: str) -> None:
    assert _outcome(fix44, frame(body))[0] == "typed"


def test_checksum_can_be_skipped() -> None:
    bad = VALID[:-4] + b"%03d\x01" % ((int(VALID[-4:-1]) + 1) % 256)
    with pytest.raises(FixDecodeError) as excinfo:
        fix44.MD_DECODER.decode(bad, MdMessage())
    assert excinfo.value.tag == 10
    trusting = MdDecoder(fix44.md_layout.LAYOUT, verify_checksum=False)
    out = MdMessage()
    assert trusting.decode(bad, out)
    assert out.count == 2


def test_unrepresentable_prices_are_named_not_raised() -> None:
    raw = frame(X_BODY.replace("270=189.52", "270=0.000000001").replace("271=300", "271=1e0"))
    assert _outcome(fix44, raw)[0] == "error"  # 1e0 is not a FIX decimal
    raw = frame(X_BODY.replace("270=189.52", "270=0.000000001"))
    kind, out = _outcome(fix44, raw)
    assert kind == "fast"
    assert out.px_e8[1] == ABSENT
    assert "MDEntryPx 1E-9" in out.invalid
    raw = frame(X_BODY.replace("271=300", "271=99999999999999999999"))
    assert "MDEntrySize" in _outcome(fix44, raw)[1].invalid


MALFORMED = [
    VALID[:-4] + b"%03d\x01" % ((int(VALID[-4:-1]) + 1) % 256),
    VALID.replace(b"9=%d" % len(X_BODY), b"9=%d" % (len(X_BODY) - 3), 1),
    b"8=FIX.4.4\x019=abc\x0135=0\x0110=000\x01",
    frame(X_BODY, begin=b"FIX.4.2"),
    frame(X_BODY.replace("279=1|", "")),
    frame(X_BODY.replace("|262=req-1", "").replace("268=2|", "268=1|", 1)),
    frame("35=Y|49=VENUE|56=MDFEED|34=5|52=20261122-14:30:00.300|281=0|"),
    frame(X_BODY.replace("|56=MDFEED", "")),
    frame(X_BODY.replace("269=1", "269=Z")),
    frame(X_BODY.replace("|262=req-1", "|262=req-1|262=req-2")),
    frame("35=Y|49=VENUE|56=MDFEED|34=5|52=20261122-14:30:00.300|262=r|281=Q|"),
    *[frame(X_BODY.replace("268=2", f"268={count}")) for count in ("1", "3", "0", "x")],
    *[
        frame(X_BODY.replace("270=189.52", f"270={price}"))
        for price in ["abc", "NaN", "Infinity", "1e5", "1.2.3", "", " 1", "1_000", "-", "."]
    ],
    *[
        frame(X_BODY.replace(old, new, 1))
        for old, new in [
            ("34=4", "34=four"),
            ("52=20261122-14:30:00.250", "52=20261322-14:30:00"),
            ("52=20261122-14:30:00.250", "52=20261122-25:30:00"),
            ("52=20261122-14:30:00.250", "52=2026-11-22T14:30"),
            ("279=0", "279=00"),
            ("271=300", "271=300|273=14:61:00"),
            ("271=300", "271=300|290=1.5"),
            ("55=AAPL", "55="),
        ]
    ],
    *[frame(body) for body in ("35=X|garbage|", "35=X|=5|", "35=X|12a=5|")],
]


@pytest.mark.parametrize("raw", MALFORMED)
def test_malformed_messages_raise_in_both(raw: bytes) -> None:
    with pytest.raises(FixDecodeError):
        fix44.CODEC.decode(raw)
    with pytest.raises(FixDecodeError):
        fix44.MD_DECODER.decode(raw, MdMessage())


def test_a_value_holding_equals_is_left_to_the_typed_codec_which_rejects_it() -> None:
    raw = frame("35=X|49=A=B|")
    assert fix44.MD_DECODER.decode(raw, MdMessage()) is False
    with pytest.raises(FixDecodeError):
        fix44.CODEC.decode(raw)


def test_truncated_messages_raise_in_both() -> None:
    for cut in range(len(VALID)):
        with pytest.raises(FixDecodeError):
            fix44.MD_DECODER.decode(VALID[:cut], MdMessage())


def test_every_shipped_package_has_a_decoder() -> None:
    for package in (fix44, fix50sp2, venue44):
        assert isinstance(package.MD_DECODER, MdDecoder)
    venue = frame(X_BODY.replace("271=250|", "271=250|83=7|5101=1795357800250000123|"))
    assert _outcome(venue44, venue)[0] == "fast"


# -- generated messages ----------------------------------------------------------------------

_DECIMALS = st.decimals(
    min_value=Decimal("-1e12"), max_value=Decimal("1e12"), places=10, allow_nan=False
) | st.sampled_from([Decimal("189.50"), Decimal("0.00000001"), Decimal("1E+20"), Decimal(0)])
_SYMBOLS = st.sampled_from(["AAPL", "MSFT", "ES Z6", "BRK.B", "7203"])
_TIMES = st.builds(
    lambda h, m, s, frac: f"{h:02d}:{m:02d}:{s:02d}{frac}",
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(0, 60),
    st.sampled_from(["", ".1", ".123", ".123456", ".123456789"]),
)
_TEXT = st.text(
    st.characters(min_codepoint=32, max_codepoint=126, blacklist_characters="="), min_size=1
)


def _header(seq: int) -> Header:
    return Header(
        sender_comp_id="VENUE",
        target_comp_id="MDFEED",
        msg_seq_num=seq,
        sending_time=1_795_357_800_125_000_000 + seq,
    )


@st.composite
def incremental(draw: st.DrawFn) -> MarketDataIncrementalRefresh:
    entry = st.builds(
        MarketDataIncrementalRefresh.NoMDEntries,
        md_update_action=st.sampled_from(list(enums.MDUpdateAction)),
        md_entry_type=st.none() | st.sampled_from(list(enums.MDEntryType)),
        symbol=st.none() | _SYMBOLS,
        md_entry_px=st.none() | _DECIMALS,
        md_entry_size=st.none() | _DECIMALS,
        md_entry_time=st.none() | _TIMES,
        md_entry_position_no=st.none() | st.integers(-5, 10**6),
        md_entry_id=st.none() | _TEXT,
        md_entry_ref_id=st.none() | _TEXT,
    )
    return MarketDataIncrementalRefresh(
        md_req_id=draw(st.none() | _TEXT),
        no_md_entries=draw(st.lists(entry, min_size=1, max_size=20)),
        header=_header(draw(st.integers(1, 10**9))),
    )


@st.composite
def snapshot(draw: st.DrawFn) -> MarketDataSnapshotFullRefresh:
    entry = st.builds(
        MarketDataSnapshotFullRefresh.NoMDEntries,
        md_entry_type=st.sampled_from(list(enums.MDEntryType)),
        md_entry_px=st.none() | _DECIMALS,
        md_entry_size=st.none() | _DECIMALS,
        md_entry_position_no=st.none() | st.integers(1, 20),
        md_entry_time=st.none() | _TIMES,
    )
    return MarketDataSnapshotFullRefresh(
        md_req_id=draw(st.none() | _TEXT),
        symbol=draw(st.none() | _SYMBOLS),
        no_md_entries=draw(st.lists(entry, min_size=1, max_size=20)),
        header=_header(draw(st.integers(1, 10**9))),
    )


@st.composite
def reject(draw: st.DrawFn) -> MarketDataRequestReject:
    return MarketDataRequestReject(
        md_req_id=draw(_TEXT),
        md_req_rej_reason=draw(st.none() | st.sampled_from(list(enums.MDReqRejReason))),
        text=draw(st.none() | _TEXT),
        header=_header(draw(st.integers(1, 10**9))),
    )


GENERATED = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@GENERATED
@given(st.one_of(incremental(), snapshot(), reject()))
def test_generated_messages_read_the_same(message: Any) -> None:
    assert _outcome(fix44, fix44.encode(message))[0] == "fast"


@GENERATED
@given(st.data())
def test_corrupted_generated_messages_agree_on_raising(data: st.DataObject) -> None:
    message = data.draw(st.one_of(incremental(), snapshot(), reject()))
    raw = fix44.encode(message)
    body = raw[raw.index(b"\x0135=") + 1 : raw.rindex(b"10=")]
    _outcome(fix44, data.draw(mutations(raw)))
    _outcome(fix44, frame(data.draw(mutations(body))))


@GENERATED
@given(mutations(VALID))
def test_mutated_messages_agree(raw: bytes) -> None:
    _outcome(fix44, raw)
    _outcome(venue44, raw)


@GENERATED
@given(mutations(X_BODY.replace("|", "\x01").encode()))
def test_mutated_bodies_reframed_agree(body: bytes) -> None:
    _outcome(fix44, frame(body))
