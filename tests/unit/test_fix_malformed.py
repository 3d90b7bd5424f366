"""Malformed FIX input raises FixDecodeError naming the tag and the reason, and nothing else.

The fuzz tests feed the decoder random bytes, valid messages with bytes flipped, cut or
inserted, and bodies mutated and then framed again with a correct BodyLength and
CheckSum, so the mutations reach the field parsers and the group logic too.
"""

from __future__ import annotations

import contextlib

import pytest
from fix_wire import VALID, X_BODY, frame, mutations
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fix_spec import fix44, venue44
from fix_spec.codec import FixCodecError, FixDecodeError
from fix_spec.fix44.messages import MarketDataIncrementalRefresh


def test_the_valid_message_decodes() -> None:
    message = fix44.decode(VALID)
    assert isinstance(message, MarketDataIncrementalRefresh)
    assert len(message.no_md_entries) == 2


def _error(data: bytes) -> FixDecodeError:
    with pytest.raises(FixDecodeError) as excinfo:
        fix44.decode(data)
    return excinfo.value


def test_bad_checksum() -> None:
    bad = VALID[:-4] + b"%03d\x01" % ((int(VALID[-4:-1]) + 1) % 256)
    error = _error(bad)
    assert error.tag == 10
    assert "does not match the computed" in error.reason


def test_wrong_body_length() -> None:
    error = _error(VALID.replace(b"9=%d" % (len(X_BODY)), b"9=%d" % (len(X_BODY) - 3), 1))
    assert error.tag == 9


def test_non_numeric_body_length() -> None:
    assert _error(b"8=FIX.4.4\x019=abc\x0135=0\x0110=000\x01").tag == 9


def test_wrong_begin_string() -> None:
    error = _error(frame(X_BODY, begin=b"FIX.4.2"))
    assert error.tag == 8
    assert "'FIX.4.2'" in error.reason


def test_missing_required_tag() -> None:
    error = _error(frame(X_BODY.replace("279=1|", "")))
    # The second entry lost its delimiter: its fields now repeat the first entry's.
    assert error.tag in {268, 269}
    error = _error(frame(X_BODY.replace("|262=req-1", "").replace("268=2|", "268=1|", 1)))
    assert error.tag == 268
    error = _error(frame("35=Y|49=VENUE|56=MDFEED|34=5|52=20261122-14:30:00.300|281=0|"))
    assert (error.tag, error.field_name) == (262, "MDReqID")
    assert "required field missing" in error.reason


def test_missing_required_header_field() -> None:
    error = _error(frame(X_BODY.replace("|56=MDFEED", "")))
    assert (error.tag, error.field_name) == (56, "TargetCompID")


def test_bad_enum_value() -> None:
    error = _error(frame(X_BODY.replace("269=1", "269=Z")))
    assert (error.tag, error.field_name) == (269, "MDEntryType")
    assert "'Z'" in error.reason


@pytest.mark.parametrize("count", ["1", "3", "0"])
def test_group_count_mismatch(count: str) -> None:
    error = _error(frame(X_BODY.replace("268=2", f"268={count}")))
    assert (error.tag, error.field_name) == (268, "NoMDEntries")


@pytest.mark.parametrize(
    "price", ["abc", "NaN", "Infinity", "1e5", "1.2.3", "", " 1", "1_000", "-"]
)
def test_non_numeric_price(price: str) -> None:
    error = _error(frame(X_BODY.replace("270=189.52", f"270={price}")))
    assert (error.tag, error.field_name) == (270, "MDEntryPx")


@pytest.mark.parametrize(
    ("old", "new", "tag"),
    [
        ("34=4", "34=four", 34),
        ("52=20261122-14:30:00.250", "52=20261322-14:30:00", 52),
        ("52=20261122-14:30:00.250", "52=20261122-25:30:00", 52),
        ("52=20261122-14:30:00.250", "52=2026-11-22T14:30", 52),
        ("279=0", "279=00", 279),
    ],
)
def test_bad_values_name_their_tag(old: str, new: str, tag: int) -> None:
    assert _error(frame(X_BODY.replace(old, new, 1))).tag == tag


def test_truncated_message() -> None:
    for cut in range(len(VALID)):
        with pytest.raises(FixDecodeError):
            fix44.decode(VALID[:cut])


def test_unknown_msg_type() -> None:
    error = _error(frame("35=ZZ|49=A|56=B|34=1|52=20261122-14:30:00|"))
    assert error.tag == 35


def test_duplicate_tag() -> None:
    error = _error(frame(X_BODY.replace("|262=req-1", "|262=req-1|262=req-2")))
    assert error.tag == 262


def test_garbage_fields() -> None:
    for body in ("35=X|garbage|", "35=X|=5|", "35=X|12a=5|", "35=X|49=A=B|"):
        with pytest.raises(FixDecodeError):
            fix44.decode(frame(body))


def test_data_field_checked_against_its_length() -> None:
    body = "35=0|49=A|56=B|34=1|52=20261122-14:30:00|354=5|355=ab|"
    with pytest.raises(FixDecodeError):
        fix44.decode(frame(body))


def test_not_bytes() -> None:
    with pytest.raises(FixDecodeError):
        fix44.decode("8=FIX.4.4")  # type: ignore[arg-type]  # a str, not bytes


def _decode_or_documented_error(data: bytes) -> None:
    for module in (fix44, venue44):
        with contextlib.suppress(FixCodecError):
            module.decode(data)


FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(data: bytes) -> None:
    _decode_or_documented_error(data)


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_random_bodies_with_valid_framing(body: bytes) -> None:
    _decode_or_documented_error(frame(body))


@FUZZ
@given(mutations(VALID))
def test_fuzz_mutated_messages(data: bytes) -> None:
    _decode_or_documented_error(data)


@FUZZ
@given(mutations(X_BODY.replace("|", "\x01").encode()))
def test_fuzz_mutated_bodies_reframed(body: bytes) -> None:
    _decode_or_documented_error(frame(body))
