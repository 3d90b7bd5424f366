"""What generated FIX code is built on: base classes, member metadata and value types.

A generated class is a dataclass whose fields are the FIX fields of one level (a message
body, a group entry, the header or the trailer) and whose `_FIX_MEMBERS` lists, in
dictionary order, how each attribute maps to the wire: its tag, its value type, its enum
and whether it is required; groups name the class of their entries.

Python types of FIX values:

=====================================================  ==============================
FIX type                                               Python
=====================================================  ==============================
INT, LENGTH, SEQNUM, NUMINGROUP, TAGNUM, DAYOFMONTH    ``int``
PRICE, QTY, AMT, FLOAT, PRICEOFFSET, PERCENTAGE        ``decimal.Decimal`` (exact)
BOOLEAN                                                ``bool`` (``Y``/``N``)
UTCTIMESTAMP                                           ``int``: nanoseconds since the epoch
CHAR with values; other types with values              the field's enum (``StrEnum``/``IntEnum``)
DATA                                                   ``bytes``
everything else (STRING, UTCTIMEONLY, dates, ...)      ``str``, format-checked
=====================================================  ==============================
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple


class ValueType(enum.IntEnum):
    """How a FIX value is read and written."""

    STRING = 0
    INT = 1
    DECIMAL = 2
    BOOLEAN = 3
    CHAR = 4
    UTC_TIMESTAMP = 5
    UTC_TIME_ONLY = 6
    UTC_DATE_ONLY = 7
    LOCAL_MKT_DATE = 8
    MONTH_YEAR = 9
    DATA = 10
    MULTIPLE_VALUES = 11


FIX_TYPES: dict[str, ValueType] = {
    **dict.fromkeys(
        ("INT", "LENGTH", "SEQNUM", "NUMINGROUP", "TAGNUM", "DAYOFMONTH"), ValueType.INT
    ),
    **dict.fromkeys(
        ("PRICE", "QTY", "AMT", "FLOAT", "PRICEOFFSET", "PERCENTAGE"), ValueType.DECIMAL
    ),
    "BOOLEAN": ValueType.BOOLEAN,
    "CHAR": ValueType.CHAR,
    "UTCTIMESTAMP": ValueType.UTC_TIMESTAMP,
    "UTCTIMEONLY": ValueType.UTC_TIME_ONLY,
    "UTCDATEONLY": ValueType.UTC_DATE_ONLY,
    "UTCDATE": ValueType.UTC_DATE_ONLY,
    "LOCALMKTDATE": ValueType.LOCAL_MKT_DATE,
    "MONTHYEAR": ValueType.MONTH_YEAR,
    "DATA": ValueType.DATA,
    **dict.fromkeys(
        ("MULTIPLEVALUESTRING", "MULTIPLESTRINGVALUE", "MULTIPLECHARVALUE"),
        ValueType.MULTIPLE_VALUES,
    ),
}


def value_type(fix_type: str) -> ValueType:
    """The ValueType of a dictionary type name; unknown types read as strings."""
    return FIX_TYPES.get(fix_type.upper(), ValueType.STRING)


class FieldMember(NamedTuple):
    """One field of a level: tag, attribute name, value type, enum class, required."""

    tag: int
    attr: str
    value_type: ValueType
    enum_cls: type[enum.Enum] | None
    required: bool


class GroupMember(NamedTuple):
    """One repeating group of a level: its count tag, attribute, entry class, required."""

    tag: int
    attr: str
    entry_cls: type[FixRecord]
    required: bool


Member = FieldMember | GroupMember


@dataclass(kw_only=True, repr=False)
class FixRecord:
    """Base of every generated message body, group entry, header and trailer.

    `extra_fields` holds the tags the dictionary does not define for this level, as
    (tag, raw value) pairs in wire order: decoding keeps them where they stood (in the
    group entry they follow, else the message body) and encoding writes them back after
    the known fields of that level. Nothing a venue sends is silently dropped.
    """

    _FIX_MEMBERS: ClassVar[tuple[Member, ...]] = ()
    extra_fields: Sequence[tuple[int, str]] = ()

    def __repr__(self) -> str:
        # Only what is set: a flattened FIX class has dozens of unset attributes.
        items = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items())
        return f"{type(self).__name__}({items})"


@dataclass(kw_only=True, repr=False)
class FixMessage(FixRecord):
    """Base of every generated message class."""

    MSG_TYPE: ClassVar[str] = ""
    MSG_NAME: ClassVar[str] = ""


_EMPTY: tuple[()] = ()


def init_record(record: FixRecord, given: dict[str, Any]) -> None:
    """Store the constructor arguments that were given: not None, not the empty default."""
    values = record.__dict__
    for name, value in given.items():
        if value is not None and value is not _EMPTY and name != "self":
            values[name] = value
