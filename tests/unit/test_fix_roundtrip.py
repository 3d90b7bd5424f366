"""Round trips of every FIX 4.4 message type, with values drawn from the dictionary itself.

The strategies read each generated class's `_FIX_MEMBERS`: every field gets values of its
FIX type (enum members for enumerated fields), required fields are always set, groups get
zero to three entries, nested as deep as the dictionary nests them.
"""

from __future__ import annotations

import datetime as dt
import enum
import string
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fix_spec import fix44, fix50sp2
from fix_spec.codec import Codec
from fix_spec.runtime import FieldMember, FixMessage, FixRecord, GroupMember, ValueType

TEXT = st.text(
    alphabet=string.ascii_letters + string.digits + " =.,:;-_/()#@!?+*&%$",
    min_size=1,
    max_size=12,
)
DAY = st.dates(min_value=dt.date(1970, 1, 1), max_value=dt.date(2199, 12, 31))


def _time(draw: st.DrawFn) -> str:
    base = f"{draw(st.integers(0, 23)):02d}:{draw(st.integers(0, 59)):02d}:{draw(st.integers(0, 59)):02d}"
    digits = draw(st.sampled_from([0, 3, 6, 9]))
    if digits:
        base += "." + "".join(
            draw(st.lists(st.sampled_from(string.digits), min_size=digits, max_size=digits))
        )
    return base


@st.composite
def _value(draw: st.DrawFn, member: FieldMember) -> Any:
    if member.enum_cls is not None:
        members: list[enum.Enum] = list(member.enum_cls)
        if member.value_type is ValueType.MULTIPLE_VALUES:
            chosen = draw(st.lists(st.sampled_from(members), min_size=1, max_size=3, unique=True))
            return " ".join(str(m.value) for m in chosen)
        return draw(st.sampled_from(members))
    vtype = member.value_type
    if vtype is ValueType.INT:
        return draw(st.integers(-(2**31), 2**31))
    if vtype is ValueType.DECIMAL:
        return draw(
            st.decimals(
                min_value=Decimal("-1e12"),
                max_value=Decimal("1e12"),
                places=draw(st.integers(0, 8)),
                allow_nan=False,
                allow_infinity=False,
            )
        )
    if vtype is ValueType.BOOLEAN:
        return draw(st.booleans())
    if vtype is ValueType.CHAR:
        return draw(st.sampled_from(string.ascii_letters + string.digits + "=-"))
    if vtype is ValueType.UTC_TIMESTAMP:
        unit = draw(st.sampled_from([1_000_000_000, 1_000_000, 1000, 1]))
        return draw(st.integers(0, 7_000_000_000_000_000_000 // unit)) * unit
    if vtype is ValueType.UTC_TIME_ONLY:
        return _time(draw)
    if vtype in (ValueType.UTC_DATE_ONLY, ValueType.LOCAL_MKT_DATE):
        return draw(DAY).strftime("%Y%m%d")
    if vtype is ValueType.MONTH_YEAR:
        return draw(DAY).strftime("%Y%m")
    if vtype is ValueType.DATA:
        # DATA may hold anything, SOH and '=' included: its length field delimits it.
        return draw(st.binary(min_size=1, max_size=10))
    return draw(TEXT)


def _group_tags(cls: type[FixRecord]) -> set[int]:
    tags: set[int] = set()
    for m in cls._FIX_MEMBERS:
        tags.add(m.tag)
        if isinstance(m, GroupMember):
            tags |= _group_tags(m.entry_cls)
    return tags


@st.composite
def records(
    draw: st.DrawFn,
    cls: type[FixRecord],
    data_lengths: dict[int, int],
    depth: int = 0,
    in_group: bool = False,
) -> Any:
    values: dict[str, Any] = {}
    length_tags = set(data_lengths.values())
    # A field after a group whose entries could also hold it is ambiguous on the wire (the
    # group would take it); FIX dictionaries avoid that, and so do the drawn messages.
    claimed: set[int] = set()
    members = cls._FIX_MEMBERS
    # Large flattened classes (FIX 5's instruments) get fewer optional fields per draw.
    sparse = 3 if len(members) <= 30 else 12
    for index, m in enumerate(members):
        if isinstance(m, GroupMember):
            # An entry's first member delimits it, so it is always present.
            needed = m.required or (in_group and index == 0)
            count = draw(st.integers(1 if needed else 0, 1 if depth > 1 else 3 - depth))
            if count:
                values[m.attr] = [
                    draw(records(m.entry_cls, data_lengths, depth + 1, in_group=True))
                    for _ in range(count)
                ]
                claimed |= _group_tags(m.entry_cls)
            continue
        if m.tag in length_tags or m.tag in claimed:
            continue  # the codec writes a DATA field's length itself
        first_of_entry = in_group and index == 0
        if m.required or first_of_entry or draw(st.integers(0, sparse)) == 0:
            values[m.attr] = draw(_value(m))
            length_tag = data_lengths.get(m.tag)
            if length_tag is not None:
                length_attr = next(
                    (x.attr for x in members if isinstance(x, FieldMember) and x.tag == length_tag),
                    None,
                )
                if length_attr is not None:
                    values[length_attr] = len(values[m.attr])
    return cls(**values)


def _header(data: st.DataObject, module: Any) -> Any:
    return module.Header(
        sender_comp_id=data.draw(TEXT),
        target_comp_id=data.draw(TEXT),
        msg_seq_num=data.draw(st.integers(1, 2**31)),
        sending_time=data.draw(st.integers(0, 4_000_000_000)) * 1_000_000,
    )


def _roundtrip(codec: Codec, message: FixMessage) -> None:
    wire = codec.encode(message)
    decoded = codec.decode(wire)
    assert decoded == message
    assert codec.encode(decoded) == wire


FIX44_TYPES = sorted(fix44.MESSAGES)


@pytest.mark.parametrize("msg_type", FIX44_TYPES)
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_every_fix44_message_round_trips(msg_type: str, data: st.DataObject) -> None:
    cls = fix44.MESSAGES[msg_type]
    message = data.draw(records(cls, fix44.tags.DATA_LENGTHS))
    message.header = _header(data, fix44)
    _roundtrip(fix44.CODEC, message)


def test_every_fix44_message_type_is_covered() -> None:
    assert len(FIX44_TYPES) == 93


@pytest.mark.parametrize("msg_type", ["V", "W", "X", "Y", "AE", "8", "D"])
@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_fix50sp2_market_data_round_trips(msg_type: str, data: st.DataObject) -> None:
    cls = fix50sp2.MESSAGES[msg_type]
    message = data.draw(records(cls, fix50sp2.tags.DATA_LENGTHS))
    message.header = _header(data, fix50sp2)
    _roundtrip(fix50sp2.CODEC, message)
