"""Encode typed FIX messages to wire bytes and decode wire bytes to typed messages.

Errors: every problem with the input raises `FixDecodeError` (decoding) or
`FixEncodeError` (encoding), both subclasses of `FixCodecError`::

    ValueError
    └── FixCodecError            .tag: the FIX tag at fault (None: the whole message)
        ├── FixDecodeError       .reason: what is wrong
        └── FixEncodeError

Nothing else escapes `decode` for any input bytes: no IndexError, no hang.

Decoding checks, in order: framing (BeginString first, BodyLength second and equal to
the body's size, CheckSum last and equal to the byte sum), that every field is
``tag=value``, the MsgType is known, each value's type (int, decimal, Y/N, char,
UTCTimestamp, time and date formats, DATA lengths) and enum membership, group counts
(a NumInGroup field must match the entries that follow), and required fields at every
level. Tags the dictionary does not define for a level are kept, see
`fix_spec.runtime.FixRecord.extra_fields`.

Speed: a body without DATA fields and without '=' inside values is split in two C calls
(replace SOH by '=' and split) and walked once, with a dict lookup per field; objects are
created without running ``__init__`` (their instance dict is filled in one step). Other
bodies take the exact, slower tokenizer. The checksum is summed with zlib.adler32 over
256-byte chunks, whose low 16 bits hold the exact byte sum of a chunk of that size.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from fix_spec.runtime import FieldMember, FixMessage, FixRecord, GroupMember, ValueType

if TYPE_CHECKING:
    import quickfix

SOH = "\x01"
_SOH_B = b"\x01"
_FIELD_SKELETON = b"=\x01"
_ALL_BUT_SEPARATORS = bytes(b for b in range(256) if b not in _FIELD_SKELETON)


class FixCodecError(ValueError):
    """A FIX message could not be encoded or decoded; names the tag and the reason."""

    def __init__(self, reason: str, tag: int | None = None, field_name: str | None = None):
        self.reason = reason
        self.tag = tag
        self.field_name = field_name
        where = "" if tag is None else f"tag {tag}" + (f" ({field_name})" if field_name else "")
        super().__init__(f"{where}: {reason}" if where else reason)


class FixDecodeError(FixCodecError):
    """Wire bytes are not a valid message of the dictionary."""


class FixEncodeError(FixCodecError):
    """A typed message cannot be written (a required field is missing, a value is invalid)."""


class _BadValue(Exception):  # noqa: N818 - internal signal, always rewrapped as FixDecodeError
    pass


# ---------------------------------------------------------------------------
# Value parsing (wire text -> Python) and formatting (Python -> wire text)
# ---------------------------------------------------------------------------

_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_DAY_NS = 86_400_000_000_000
_date_cache: dict[str, int] = {}


def _parse_int(v: str) -> int:
    try:
        if v.isdigit() or (v[:1] == "-" and v[1:].isdigit()):
            return int(v)
    except ValueError:
        pass
    raise _BadValue(f"not an integer: {v!r}")


_DECIMAL_CHARS = "0123456789.-"


# Market data repeats itself: the same price levels, sizes and entry times recur from one
# message to the next, so parsed values are kept, up to a bound, and reused (Decimal and
# str are immutable). A full cache is cleared, not evicted piecemeal: cheap and bounded.
_CACHE_LIMIT = 1 << 16
_decimal_cache: dict[str, Decimal] = {}
_time_cache: set[str] = set()


def _parse_decimal(v: str) -> Decimal:
    cached = _decimal_cache.get(v)
    if cached is not None:
        return cached
    # Decimal() alone would accept NaN, Infinity, exponents, spaces and underscores.
    if v and not v.strip(_DECIMAL_CHARS) and v.isascii():
        try:
            value = Decimal(v)
        except decimal.InvalidOperation:
            pass
        else:
            if len(_decimal_cache) >= _CACHE_LIMIT:
                _decimal_cache.clear()
            _decimal_cache[v] = value
            return value
    raise _BadValue(f"not a decimal number: {v!r}")


def _parse_bool(v: str) -> bool:
    if v == "Y":
        return True
    if v == "N":
        return False
    raise _BadValue(f"not Y or N: {v!r}")


def _parse_char(v: str) -> str:
    if len(v) == 1:
        return v
    raise _BadValue(f"not a single character: {v!r}")


def _date_days(v: str) -> int:
    days = _date_cache.get(v)
    if days is None:
        if len(v) != 8 or not v.isdigit() or not v.isascii():
            raise _BadValue(f"not a date YYYYMMDD: {v!r}")
        try:
            days = dt.date(int(v[:4]), int(v[4:6]), int(v[6:])).toordinal() - _EPOCH_ORDINAL
        except ValueError:
            raise _BadValue(f"not a date YYYYMMDD: {v!r}") from None
        if len(_date_cache) < 4096:
            _date_cache[v] = days
    return days


def _time_ns(v: str) -> int:
    """HH:MM:SS[.f{1,9}] to nanoseconds since midnight."""
    n = len(v)
    if n < 8 or v[2] != ":" or v[5] != ":" or (n > 8 and (v[8] != "." or n == 9 or n > 18)):
        raise _BadValue(f"not a time HH:MM:SS[.fff]: {v!r}")
    hh, mm, ss, frac = v[0:2], v[3:5], v[6:8], v[9:]
    digits = hh + mm + ss + frac
    if not (digits.isdigit() and digits.isascii()):
        raise _BadValue(f"not a time HH:MM:SS[.fff]: {v!r}")
    h, m, s = int(hh), int(mm), int(ss)
    if h > 23 or m > 59 or s > 60:
        raise _BadValue(f"time out of range: {v!r}")
    ns = ((h * 60 + m) * 60 + s) * 1_000_000_000
    if frac:
        ns += int(frac) * 10 ** (9 - len(frac))
    return ns


def _parse_utc_timestamp(v: str) -> int:
    if len(v) < 17 or v[8] != "-":
        raise _BadValue(f"not a UTCTimestamp YYYYMMDD-HH:MM:SS[.fff]: {v!r}")
    return _date_days(v[:8]) * _DAY_NS + _time_ns(v[9:])


def _parse_utc_time_only(v: str) -> str:
    if v not in _time_cache:
        _time_ns(v)
        if len(_time_cache) >= _CACHE_LIMIT:
            _time_cache.clear()
        _time_cache.add(v)
    return v


def _parse_date(v: str) -> str:
    _date_days(v)
    return v


def _parse_month_year(v: str) -> str:
    # YYYYMM, YYYYMMDD or YYYYMMwN (FIX MonthYear).
    if len(v) >= 6 and v[:6].isdigit() and v.isascii() and 1 <= int(v[4:6]) <= 12:
        rest = v[6:]
        if rest == "" or (len(rest) == 2 and (rest.isdigit() or rest[0] == "w")):
            return v
    raise _BadValue(f"not a MonthYear YYYYMM[DD|wN]: {v!r}")


def _parse_data(v: str) -> bytes:
    return v.encode("latin-1")


def _format_timestamp(ns: int) -> str:
    days, rem = divmod(ns, _DAY_NS)
    date = dt.date.fromordinal(days + _EPOCH_ORDINAL)
    secs, frac = divmod(rem, 1_000_000_000)
    h, rem_s = divmod(secs, 3600)
    m, s = divmod(rem_s, 60)
    text = f"{date.year:04d}{date.month:02d}{date.day:02d}-{h:02d}:{m:02d}:{s:02d}"
    if frac == 0:
        return text
    if frac % 1_000_000 == 0:
        return f"{text}.{frac // 1_000_000:03d}"
    if frac % 1000 == 0:
        return f"{text}.{frac // 1000:06d}"
    return f"{text}.{frac:09d}"


_PARSERS: dict[ValueType, Callable[[str], Any] | None] = {
    ValueType.STRING: None,
    ValueType.INT: _parse_int,
    ValueType.DECIMAL: _parse_decimal,
    ValueType.BOOLEAN: _parse_bool,
    ValueType.CHAR: _parse_char,
    ValueType.UTC_TIMESTAMP: _parse_utc_timestamp,
    ValueType.UTC_TIME_ONLY: _parse_utc_time_only,
    ValueType.UTC_DATE_ONLY: _parse_date,
    ValueType.LOCAL_MKT_DATE: _parse_date,
    ValueType.MONTH_YEAR: _parse_month_year,
    ValueType.DATA: _parse_data,
    ValueType.MULTIPLE_VALUES: None,
}


def _enum_parser(vtype: ValueType, enum_cls: type[enum.Enum]) -> Callable[[str], Any]:
    members: dict[Any, enum.Enum] = dict(enum_cls._value2member_map_)
    if vtype is ValueType.MULTIPLE_VALUES:
        allowed = {str(k) for k in members}

        def parse_multi(v: str) -> str:
            for item in v.split(" "):
                if item not in allowed:
                    raise _BadValue(f"{item!r} is not a value of {enum_cls.__name__}")
            return v

        return parse_multi
    # A bound dict lookup runs in C; a miss raises KeyError, which the decoder reports.
    by_text = {str(k): m for k, m in members.items()}
    return by_text.__getitem__


def _format(member: FieldMember, value: Any) -> str:
    vtype = member.value_type
    cls = type(value)
    # Fast paths first: a member of the field's own enum, a Decimal price or size.
    if cls is member.enum_cls:
        raw = value._value_
        return raw if type(raw) is str else str(raw)
    if cls is Decimal and vtype is ValueType.DECIMAL and value.is_finite():
        return format(value, "f")
    if isinstance(value, enum.Enum):
        return str(value.value)
    if vtype is ValueType.INT:
        if isinstance(value, bool) or not isinstance(value, int):
            raise FixEncodeError(f"expected int, got {type(value).__name__}", member.tag)
        return str(value)
    if vtype is ValueType.DECIMAL:
        if isinstance(value, Decimal):
            if not value.is_finite():
                raise FixEncodeError(f"not a finite number: {value}", member.tag)
            return format(value, "f")
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        raise FixEncodeError(
            f"expected Decimal or int (a float would lose cents), got {type(value).__name__}",
            member.tag,
        )
    if vtype is ValueType.BOOLEAN:
        if not isinstance(value, bool):
            raise FixEncodeError(f"expected bool, got {type(value).__name__}", member.tag)
        return "Y" if value else "N"
    if vtype is ValueType.UTC_TIMESTAMP:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise FixEncodeError("expected nanoseconds since the epoch (int >= 0)", member.tag)
        return _format_timestamp(value)
    if vtype is ValueType.DATA:
        if not isinstance(value, bytes):
            raise FixEncodeError(f"expected bytes, got {type(value).__name__}", member.tag)
        return value.decode("latin-1")
    if not isinstance(value, str):
        raise FixEncodeError(f"expected str, got {type(value).__name__}", member.tag)
    parser = _PARSERS[vtype]
    if parser is not None:
        try:
            parser(value)
        except _BadValue as exc:
            raise FixEncodeError(str(exc), member.tag) from None
    if SOH in value:
        raise FixEncodeError("a value may not contain SOH (use a DATA field)", member.tag)
    return value


# ---------------------------------------------------------------------------
# Levels: per-class lookup tables compiled once from the generated metadata
# ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Level:
    cls: type[FixRecord]
    #: str(tag) -> (attribute, parser or None, tag, entry level of a group or None)
    table: dict[str, tuple[str, Callable[[str], Any] | None, int, _Level | None]]
    #: attribute -> ("tag=", member, plain string field?, DATA field?), for encoding
    field_attrs: dict[str, tuple[str, FieldMember, bool, bool]]
    #: attribute -> ("tag=", entry level) of the groups, for encoding
    group_attrs: dict[str, tuple[str, _Level]]
    required: tuple[tuple[str, int], ...]
    delimiter: str
    #: enclosing scope -> that scope plus this level's tags (for groups nested in this level)
    scopes: dict[frozenset[str], frozenset[str]]

    def inner_scope(self, enclosing: frozenset[str]) -> frozenset[str]:
        scope = self.scopes.get(enclosing)
        if scope is None:
            scope = self.scopes[enclosing] = enclosing | frozenset(self.table)
        return scope


def _compile_level(cls: type[FixRecord], cache: dict[type[FixRecord], _Level]) -> _Level:
    level = cache.get(cls)
    if level is not None:
        return level
    members = cls._FIX_MEMBERS
    level = _Level(cls, {}, {}, {}, (), str(members[0].tag) if members else "", {})
    cache[cls] = level
    for m in members:
        if isinstance(m, GroupMember):
            entry = _compile_level(m.entry_cls, cache)
            level.table[str(m.tag)] = (m.attr, None, m.tag, entry)
            level.group_attrs[m.attr] = (f"{m.tag}=", entry)
        else:
            parser = (
                _enum_parser(m.value_type, m.enum_cls)
                if m.enum_cls is not None
                else _PARSERS[m.value_type]
            )
            level.table[str(m.tag)] = (m.attr, parser, m.tag, None)
            plain = m.value_type is ValueType.STRING and m.enum_cls is None
            is_data = m.value_type is ValueType.DATA
            level.field_attrs[m.attr] = (f"{m.tag}=", m, plain, is_data)
    level.required = tuple((m.attr, m.tag) for m in members if m.required)
    return level


def _checksum(data: bytes) -> int:
    total = 0
    for start in range(0, len(data), 256):
        # adler32's low half is 1 + the byte sum mod 65521; 256 bytes sum to at most 65280.
        total += (zlib.adler32(data[start : start + 256]) & 0xFFFF) - 1
    return total & 0xFF


# ---------------------------------------------------------------------------
# The codec
# ---------------------------------------------------------------------------


class Codec:
    """Encoder and decoder for one generated dictionary (FIX44, FIX50SP2, a venue's)."""

    def __init__(
        self,
        *,
        begin_string: str,
        header: type[FixRecord],
        trailer: type[FixRecord],
        messages: Mapping[str, type[FixMessage]],
        field_names: Mapping[int, str],
        data_lengths: Mapping[int, int],
    ) -> None:
        self.begin_string = begin_string
        self.messages = dict(messages)
        self.field_names = dict(field_names)
        # DATA tag -> the LENGTH tag that precedes it.
        self.data_lengths = dict(data_lengths)
        self._data_tags = {str(t) for t in self.data_lengths}
        self._known = {str(t) for t in self.field_names}
        cache: dict[type[FixRecord], _Level] = {}
        self._header = _compile_level(header, cache)
        self._trailer = _compile_level(trailer, cache)
        self._bodies = {t: _compile_level(c, cache) for t, c in self.messages.items()}
        self._everything = frozenset(self._known)
        self._trailer_scope = frozenset(self._trailer.table)
        self._prefix = f"8={begin_string}{SOH}9=".encode()
        self._new = object.__new__

    # -- decoding ------------------------------------------------------------

    def decode(self, data: object) -> FixMessage:
        """Decode one whole message (from ``8=`` through ``10=nnn<SOH>``).

        `data` is typed loosely on purpose: anything but bytes raises FixDecodeError too.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise FixDecodeError(f"expected bytes, got {type(data).__name__}")
        data = bytes(data)
        prefix = self._prefix
        if not data.startswith(prefix):
            if data.startswith(b"8="):
                # Slices here never take a negative bound: mypyc-compiled slicing differs
                # from CPython's on those.
                end = data.find(_SOH_B)
                got = (data[2:end] if end >= 2 else data[2:]).decode("latin-1")
                raise FixDecodeError(f"BeginString {got!r}, expected {self.begin_string!r}", 8)
            raise FixDecodeError("message does not start with BeginString (8=)", 8)
        soh = data.find(_SOH_B, len(prefix))
        length_text = data[len(prefix) : soh] if soh >= 0 else data[len(prefix) :]
        if soh < 0 or not length_text.isdigit() or len(length_text) > 7:
            raise FixDecodeError(f"BodyLength is not a number: {length_text!r}", 9)
        body_start = soh + 1
        body_end = body_start + int(length_text)
        trailer = data[body_end:]
        if len(trailer) != 7 or not trailer.startswith(b"10=") or trailer[6:] != _SOH_B:
            raise FixDecodeError(
                f"BodyLength {int(length_text)} does not end the body at the CheckSum field "
                f"(message of {len(data)} bytes)",
                9,
            )
        if not trailer[3:6].isdigit():
            raise FixDecodeError(f"CheckSum is not three digits: {trailer[3:6]!r}", 10)
        expected = _checksum(data[:body_end])
        if int(trailer[3:6]) != expected:
            raise FixDecodeError(
                f"CheckSum {trailer[3:6].decode()} does not match the computed {expected:03d}", 10
            )
        return self._decode_body(data[body_start:body_end])

    def _tokens(self, raw: bytes) -> list[str]:
        """The body as [tag, value, tag, value, ...]."""
        body = raw.decode("latin-1")
        if not body.endswith(SOH):
            raise FixDecodeError("the last body field is not terminated by SOH")
        # Fast path, when every field holds exactly one '=' and no value holds SOH: then
        # splitting on both separators at once aligns tags and values. Deleting every other
        # byte and comparing with "=<SOH>" repeated checks that exactly, in C.
        skeleton = raw.translate(None, _ALL_BUT_SEPARATORS)
        if skeleton == _FIELD_SKELETON * (len(skeleton) >> 1):
            tokens = body.replace(SOH, "=").split("=")
            tokens.pop()
            # DATA fields take the exact path, which checks them against their lengths.
            if self._data_tags.isdisjoint(tokens[0::2]):
                return tokens
        return self._tokens_exact(body)

    def _tokens_exact(self, body: str) -> list[str]:
        tokens: list[str] = []
        pos, end = 0, len(body)
        last_int: dict[int, str] = {}
        while pos < end:
            eq = body.find("=", pos)
            soh = body.find(SOH, pos)
            if eq < 0 or soh < eq:
                field = body[pos : soh if soh >= 0 else end]
                raise FixDecodeError(f"field {field!r} is not tag=value")
            tag = body[pos:eq]
            if not tag.isdigit() or not tag.isascii():
                raise FixDecodeError(f"tag {tag!r} is not a number")
            tag_int = int(tag)
            length_tag = self.data_lengths.get(tag_int)
            if length_tag is not None:
                length_text = last_int.get(length_tag)
                if length_text is None or not length_text.isdigit():
                    raise FixDecodeError(
                        f"DATA field without its length field {length_tag} before it", tag_int
                    )
                value_end = eq + 1 + int(length_text)
                if value_end >= end or body[value_end] != SOH:
                    raise FixDecodeError(
                        f"DATA field is not {length_text} bytes followed by SOH", tag_int
                    )
            else:
                value_end = soh
            value = body[eq + 1 : value_end]
            last_int[tag_int] = value
            tokens.append(tag)
            tokens.append(value)
            pos = value_end + 1
        return tokens

    def _decode_body(self, body: bytes) -> FixMessage:
        toks = self._tokens(body)
        n = len(toks)
        if n < 2 or toks[0] != "35":
            raise FixDecodeError("MsgType (35) is not the third field", 35)
        msg_type = toks[1]
        level = self._bodies.get(msg_type)
        if level is None:
            raise FixDecodeError(f"unknown MsgType {msg_type!r}", 35)
        header_values: dict[str, Any] = {}
        header_extra: list[tuple[int, str]] = []
        everything = self._everything
        i = self._walk(
            self._header, toks, 2, n, header_values, header_extra, everything, stop_on_known=True
        )
        values: dict[str, Any] = {}
        extra: list[tuple[int, str]] = []
        trailer_fields = self._trailer.table
        scope = self._trailer_scope
        i = self._walk(
            level, toks, i, n, values, extra, scope, stop_on_known=False, stop=trailer_fields
        )
        trailer_values: dict[str, Any] = {}
        trailer_extra: list[tuple[int, str]] = []
        i = self._walk(
            self._trailer, toks, i, n, trailer_values, trailer_extra, everything, stop_on_known=True
        )
        if i < n:
            raise FixDecodeError("field after the trailer", self._tag_int(toks[i]))
        values["header"] = self._make(self._header, header_values, header_extra)
        values["trailer"] = self._make(self._trailer, trailer_values, trailer_extra)
        message: FixMessage = self._make(level, values, extra)
        return message

    def _tag_int(self, tag: str) -> int | None:
        return int(tag) if tag.isdigit() and tag.isascii() else None

    def _error(self, reason: str, tag: int) -> FixDecodeError:
        return FixDecodeError(reason, tag, self.field_names.get(tag))

    def _make(self, level: _Level, values: dict[str, Any], extra: list[tuple[int, str]]) -> Any:
        for attr, tag in level.required:
            if attr not in values:
                raise self._error(f"required field missing in {level.cls.__name__}", tag)
        if extra:
            values["extra_fields"] = tuple(extra)
        obj = self._new(level.cls)
        obj.__dict__ = values
        return obj

    def _walk(
        self,
        level: _Level,
        toks: list[str],
        i: int,
        n: int,
        values: dict[str, Any],
        extra: list[tuple[int, str]],
        enclosing: frozenset[str],
        *,
        stop_on_known: bool,
        stop: Mapping[str, Any] | None = None,
    ) -> int:
        """Read the header, a body or the trailer from toks[i:]; return where it stopped."""
        table, known = level.table, self._known
        while i < n:
            tag = toks[i]
            spec = table.get(tag)
            if spec is None:
                if stop is not None and tag in stop:
                    return i
                if tag in known:
                    if stop_on_known:
                        return i
                elif not tag.isdigit() or not tag.isascii():
                    raise FixDecodeError(f"malformed field: tag {tag!r} is not a number")
                extra.append((int(tag), toks[i + 1]))
                i += 2
                continue
            attr, parse, tag_int, entry = spec
            if attr in values:
                if stop_on_known:
                    return i
                raise self._error("tag appears more than once", tag_int)
            if entry is not None:
                scope = level.inner_scope(enclosing)
                values[attr], i = self._read_group(entry, toks, i, n, tag_int, scope)
                continue
            i = self._read_value(values, attr, parse, tag_int, toks[i + 1]) + i
        return i

    def _read_value(
        self,
        values: dict[str, Any],
        attr: str,
        parse: Callable[[str], Any] | None,
        tag: int,
        value: str,
    ) -> int:
        if parse is None:
            if not value:
                raise self._error("empty value", tag)
            values[attr] = value
            return 2
        try:
            values[attr] = parse(value)
        except _BadValue as exc:
            raise self._error(str(exc), tag) from None
        except KeyError:
            raise self._error(
                f"{value!r} is not one of the field's enumerated values", tag
            ) from None
        return 2

    def _read_group(
        self,
        level: _Level,
        toks: list[str],
        i: int,
        n: int,
        count_tag: int,
        enclosing: frozenset[str],
    ) -> tuple[list[Any], int]:
        """Read a group from its count field at toks[i]; return the entries and the next index.

        A tag of an enclosing level (`enclosing`) ends the group. Any other tag the entry
        does not define stays in the entry as an extra field: a venue's custom tag, or a
        standard tag the dictionary does not place there.
        """
        count_text = toks[i + 1]
        if not count_text.isdigit() or not count_text.isascii():
            raise self._error(f"group count is not a number: {count_text!r}", count_tag)
        count = int(count_text)
        i += 2
        entries: list[Any] = []
        append = entries.append
        delimiter, table, required, cls = level.delimiter, level.table, level.required, level.cls
        new = self._new
        # The hot loop of market data decoding: one pass per field, no call per plain field.
        while i < n and toks[i] == delimiter:
            if len(entries) == count:
                raise self._error(f"more than the {count} entries the group count says", count_tag)
            values: dict[str, Any] = {}
            extra: list[tuple[int, str]] | None = None
            while i < n:
                tag = toks[i]
                spec = table.get(tag)
                if spec is None:
                    if tag in enclosing:
                        break  # a field of an enclosing level ends the group
                    if not tag.isdigit() or not tag.isascii():
                        raise FixDecodeError(f"malformed field: tag {tag!r} is not a number")
                    if extra is None:
                        extra = []
                    extra.append((int(tag), toks[i + 1]))
                    i += 2
                    continue
                attr, parse, tag_int, entry = spec
                if attr in values:
                    break  # the delimiter of the next entry, or a repeated tag
                if entry is not None:
                    scope = level.inner_scope(enclosing)
                    values[attr], i = self._read_group(entry, toks, i, n, tag_int, scope)
                    continue
                value = toks[i + 1]
                if parse is None:
                    if not value:
                        raise self._error("empty value", tag_int)
                    values[attr] = value
                else:
                    try:
                        values[attr] = parse(value)
                    except (_BadValue, KeyError):
                        self._read_value(values, attr, parse, tag_int, value)  # raises, explained
                i += 2
            for attr, tag_int in required:
                if attr not in values:
                    raise self._error(f"required field missing in {cls.__name__}", tag_int)
            if extra:
                values["extra_fields"] = tuple(extra)
            obj = new(cls)
            obj.__dict__ = values
            append(obj)
        if len(entries) != count:
            raise self._error(
                f"group count is {count} but {len(entries)} entries follow", count_tag
            )
        return entries, i

    # -- encoding ------------------------------------------------------------

    def encode(self, message: FixMessage) -> bytes:
        """Encode a message, computing BodyLength(9) and CheckSum(10)."""
        level = self._bodies.get(message.MSG_TYPE)
        if level is None or not isinstance(message, level.cls):
            raise FixEncodeError(f"{type(message).__name__} is not a message of this dictionary")
        parts: list[str] = [f"35={message.MSG_TYPE}"]
        header = getattr(message, "header", None)
        if header is None:
            raise FixEncodeError("the message has no header")
        self._encode_level(self._header, header, parts)
        self._encode_level(level, message, parts)
        trailer = getattr(message, "trailer", None)
        if trailer is not None:
            self._encode_level(self._trailer, trailer, parts)
        parts.append("")
        body = SOH.join(parts).encode("latin-1")
        out = b"%s%d\x01%s" % (self._prefix, len(body), body)
        return out + b"10=%03d\x01" % _checksum(out)

    def _encode_level(self, level: _Level, record: Any, parts: list[str]) -> None:
        if not isinstance(record, level.cls):
            raise FixEncodeError(f"expected {level.cls.__name__}, got {type(record).__name__}")
        values: dict[str, Any] = record.__dict__
        for attr, tag in level.required:
            value = values.get(attr)
            if value is None or (isinstance(value, list | tuple) and not value):
                raise FixEncodeError(
                    f"required field missing in {level.cls.__name__}",
                    tag,
                    self.field_names.get(tag),
                )
        field_attrs, group_attrs = level.field_attrs, level.group_attrs
        # The instance dict holds the attributes in dictionary order (from __init__) or in
        # wire order (from decode); both keep a group's delimiter first in each entry.
        for attr, value in values.items():
            if value is None:
                continue
            spec = field_attrs.get(attr)
            if spec is None:
                group = group_attrs.get(attr)
                if group is not None and value:
                    self._encode_group(group[0], group[1], value, parts)
                continue  # also: header, trailer, extra_fields
            prefix, member, plain, is_data = spec
            if plain and type(value) is str and SOH not in value:
                parts.append(prefix + value)
                continue
            if is_data:
                self._encode_length(level, values, member.tag, value, parts)
            try:
                parts.append(prefix + _format(member, value))
            except FixEncodeError as exc:
                name = self.field_names.get(member.tag)
                raise FixEncodeError(exc.reason, member.tag, name) from None
        for tag, raw in values.get("extra_fields", ()):
            parts.append(f"{tag}={raw}")

    def _encode_group(self, prefix: str, entry: _Level, items: Any, parts: list[str]) -> None:
        parts.append(f"{prefix}{len(items)}")
        first = entry.table[entry.delimiter][0]
        for item in items:
            if getattr(item, first, None) in (None, (), []):
                tag = int(entry.delimiter)
                raise FixEncodeError(
                    "the first field of a group entry must be set: it delimits entries",
                    tag,
                    self.field_names.get(tag),
                )
            self._encode_level(entry, item, parts)

    def _encode_length(
        self, level: _Level, values: dict[str, Any], data_tag: int, data: Any, parts: list[str]
    ) -> None:
        """Write or check the LENGTH field that precedes a DATA field."""
        length_tag = self.data_lengths.get(data_tag)
        spec = level.table.get(str(length_tag)) if length_tag is not None else None
        if spec is None or not isinstance(data, bytes):
            return
        given = values.get(spec[0])
        if given is None:
            parts.append(f"{length_tag}={len(data)}")
        elif given != len(data):
            raise FixEncodeError(
                f"length field says {given} but the DATA field has {len(data)} bytes", length_tag
            )

    # -- QuickFIX interop ----------------------------------------------------

    def to_quickfix(
        self, message: FixMessage, data_dictionary: quickfix.DataDictionary
    ) -> quickfix.Message:
        """A `quickfix.Message` built from this message's wire form (groups need the dictionary)."""
        import quickfix

        return quickfix.Message(self.encode(message).decode("latin-1"), data_dictionary, False)

    def from_quickfix(self, message: quickfix.Message) -> FixMessage:
        """Decode a `quickfix.Message` through its string form."""
        return self.decode(message.toString().encode("latin-1"))
