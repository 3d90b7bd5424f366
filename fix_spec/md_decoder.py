"""The tick path's decoder: raw W, X and Y messages straight into an `MdMessage`.

`Codec.decode` builds a typed object per message and per entry, with a Decimal and an enum
per value: right for the public API, too slow for market data. `MdDecoder` reads the same
wire bytes into the columns of `fix_spec.md_columns.MdMessage` (prices and sizes as ints of
10^-8, times as ns) and builds no object per entry. Its results are the typed codec's, read
by `fix_spec.md_from_typed.columns_from_typed`, for every message both accept.

What it needs to know of a dictionary, which tags sit at which level, which are required,
the group delimiter and the valid codes of the enums it reads, comes from an `MdLayout`
that the generator writes into each package (``fix_spec.fix44.md_layout``); each package
exposes a ready decoder, ``fix_spec.fix44.MD_DECODER``.

`decode(data, out)`:

- raises `FixDecodeError`, as `Codec.decode` does, for bad framing (BeginString,
  BodyLength, CheckSum), a field that is not ``tag=value``, a tag that is not a number, an
  empty value of a field the dictionary defines at that level, a bad value of a field it
  reads (MsgSeqNum, SendingTime, the entry fields, MDReqID, Text, MDReqRejReason), a code
  outside the dictionary's enum for MDEntryType, MDUpdateAction or MDReqRejReason, a tag
  repeated in the body, a NumInGroup count that does not match its entries, and a
  required field missing from the header, the body or an entry;
- returns False, leaving `out` cleared, for a well-framed message it leaves to the typed
  codec: a MsgType other than W, X and Y, and the rare shapes it does not read itself (a
  value holding ``=``, a DATA field, a nested repeating group such as NoSecurityAltID
  inside an entry or NoHops in the header, a header field sent twice). The caller then
  decodes with `Codec.decode`, which accepts or rejects the message as usual;
- returns True after filling `out`.

Values of header and body fields it does not read are not checked (the typed codec checks
every field's type; QuickFIX, which hands the ingest its messages, has validated them).

`verify_checksum=False` skips summing the bytes for CheckSum (BodyLength is still checked:
it locates the body). For messages QuickFIX has already validated and serialized again;
the saving is measured in bench/test_fix_codec_bench.py.

How: one pass over the body's bytes. Tags are read as ints in place and looked up in a
list per level (tag -> code), prices, sizes, times and counts are parsed from the bytes
without slicing them; only strings (symbols, through a cache, and IDs) are sliced out.
Values outside the common forms (more than 10 integer or 8 fraction digits, ...) go
through the exact slow path, which follows `fix_spec.md_from_typed` to the letter.
Compiled with mypyc (setup.py): module constants are Final, locals typed, and the loops
branch on small int codes rather than calling a function per field.
"""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Iterable
from decimal import Decimal
from typing import Final

from fix_spec.codec import FixDecodeError
from fix_spec.md_columns import (
    ABSENT,
    BID,
    CHANGE,
    DELETE,
    NEW,
    OFFER,
    OTHER,
    TRADE,
    MdMessage,
)
from fix_spec.md_from_typed import scaled_e8

_SOH: Final = b"\x01"
_SOH_BYTE: Final = 1
_EQ_BYTE: Final = 61
_END: Final = -2 << 40
_MISALIGNED: Final = -3 << 40
#: 10 ** (8 - fraction digits): the scale of a fraction of that many digits.
_SCALE: Final[list[int]] = [10 ** (8 - d) for d in range(9)]
#: 10 ** (9 - fraction digits), for nanoseconds.
_TIME_SCALE: Final[list[int]] = [10 ** (9 - d) for d in range(10)]
_EQ: Final = b"="
_INT64_LIMIT: Final = 1 << 63
_E8: Final = 100_000_000
_DAY_NS: Final = 86_400_000_000_000
_EPOCH_ORDINAL: Final = dt.date(1970, 1, 1).toordinal()
_CACHE_LIMIT: Final = 1 << 16

# What a tag is at the level being read: one of the fields the decoder reads (0..15), any
# other field of the level (_OTHER + its index, for the repeated-tag and required checks),
# or a shape left to the typed codec (_OPAQUE: a nested group's count, a DATA field).
_OPAQUE: Final = -1
_NOT_HERE: Final = -2
_OTHER: Final = 16

# Entry fields read (bit positions in an entry's `seen` mask).
_E_ACTION: Final = 0
_E_KIND: Final = 1
_E_SYMBOL: Final = 2
_E_PX: Final = 3
_E_SIZE: Final = 4
_E_TIME: Final = 5
_E_POSITION: Final = 6
_E_LEVEL: Final = 7
_E_ENTRY_ID: Final = 8
_E_REF_ID: Final = 9

# Body and header fields read.
_B_REQ_ID: Final = 0
_B_SYMBOL: Final = 1
_B_TEXT: Final = 2
_B_REJ_REASON: Final = 3
_B_ENTRIES: Final = 4
_H_SEQ_NUM: Final = 0
_H_SENDING: Final = 1


class MdLevel:
    """The tags of one level (header, a message body, a group entry), from the dictionary."""

    def __init__(
        self, tags: Iterable[int], required: Iterable[int] = (), opaque: Iterable[int] = ()
    ) -> None:
        #: Every tag the dictionary defines at this level, in dictionary order.
        self.tags: tuple[int, ...] = tuple(tags)
        self.required: tuple[int, ...] = tuple(required)
        #: Tags of nested repeating groups and DATA fields: the typed codec reads those.
        self.opaque: tuple[int, ...] = tuple(opaque)


class MdLayout:
    """What the decoder needs of one dictionary; generated into each package's md_layout."""

    def __init__(
        self,
        *,
        begin_string: str,
        known_tags: Iterable[int],
        data_tags: Iterable[int],
        field_names: dict[int, str],
        header: MdLevel,
        trailer: MdLevel,
        bodies: dict[str, MdLevel],
        entries: dict[str, MdLevel],
        md_entry_type_codes: Iterable[str],
        md_update_action_codes: Iterable[str],
        md_req_rej_reason_codes: Iterable[str],
    ) -> None:
        self.begin_string = begin_string
        self.known_tags = frozenset(known_tags)
        #: DATA fields, whose values may hold SOH and '=' (their LENGTH field says how long).
        self.data_tags = frozenset(data_tags)
        self.field_names = field_names
        self.header = header
        self.trailer = trailer
        #: MsgType ("W", "X", "Y") -> its body; "W" and "X" -> their NoMDEntries entry.
        self.bodies = bodies
        self.entries = entries
        self.md_entry_type_codes = frozenset(md_entry_type_codes)
        self.md_update_action_codes = frozenset(md_update_action_codes)
        self.md_req_rej_reason_codes = frozenset(md_req_rej_reason_codes)


# Standard tags of the fields read; a level reads a field only where its dictionary puts it.
_MSG_SEQ_NUM: Final = 34
_SENDING_TIME: Final = 52
_MD_REQ_ID: Final = 262
_SYMBOL: Final = 55
_TEXT: Final = 58
_MD_REQ_REJ_REASON: Final = 281
_NO_MD_ENTRIES: Final = 268
_HEADER_READ: Final = {_MSG_SEQ_NUM: _H_SEQ_NUM, _SENDING_TIME: _H_SENDING}
_BODY_READ: Final = {
    _MD_REQ_ID: _B_REQ_ID,
    _SYMBOL: _B_SYMBOL,
    _TEXT: _B_TEXT,
    _MD_REQ_REJ_REASON: _B_REJ_REASON,
    _NO_MD_ENTRIES: _B_ENTRIES,
}
_ENTRY_READ: Final = {
    279: _E_ACTION,
    269: _E_KIND,
    55: _E_SYMBOL,
    270: _E_PX,
    271: _E_SIZE,
    273: _E_TIME,
    290: _E_POSITION,
    1023: _E_LEVEL,
    278: _E_ENTRY_ID,
    280: _E_REF_ID,
}


_KNOWN_ELSEWHERE: Final = -3
_ENCLOSING: Final = -4
_UNKNOWN: Final = -1 << 40  # a tag with a leading zero or more than 9 digits: never defined


class _Level:
    """A level compiled for decoding: the code of every tag (a list indexed by tag), and
    the required codes."""

    def __init__(
        self,
        level: MdLevel,
        read: dict[int, int],
        *,
        known: frozenset[int],
        data_tags: frozenset[int],
        enclosing: frozenset[int] = frozenset(),
    ) -> None:
        self.tags: list[int] = list(level.tags)
        codes: dict[int, int] = {}
        for index, tag in enumerate(level.tags):
            codes[tag] = _OPAQUE if tag in level.opaque else read.get(tag, _OTHER + index)
        # Any DATA field, wherever it stands: the typed codec checks it against its length.
        for tag in [*level.opaque, *data_tags]:
            codes[tag] = _OPAQUE
        size = max([*known, *codes, 0]) + 1
        table = [_NOT_HERE] * size
        for tag in known:
            table[tag] = _KNOWN_ELSEWHERE
        for tag in enclosing:
            table[tag] = _ENCLOSING
        for tag, code in codes.items():
            table[tag] = code
        #: tag -> code; a tag past the end is _NOT_HERE.
        self.table: list[int] = table
        self.size: int = size
        self.codes = codes
        required = 0
        for tag in level.required:
            code = codes.get(tag, _OPAQUE)
            if code >= 0:
                required |= 1 << code
        #: Bits (1 << code) of the required fields, read or not.
        self.required_mask: int = required
        self.first_tag: int = level.tags[0] if level.tags else -1

    def code(self, tag: int) -> int:
        if 0 <= tag < self.size:
            return self.table[tag]
        return _NOT_HERE

    def missing(self, seen: int) -> int:
        """The tag of the first required field whose bit is not in `seen`."""
        for tag, code in self.codes.items():
            if code >= 0 and self.required_mask & (1 << code) and not seen & (1 << code):
                return tag
        return 0


class MdDecoder:
    """Raw W, X and Y messages of one dictionary into `MdMessage` columns (module docstring)."""

    def __init__(self, layout: MdLayout, *, verify_checksum: bool = True) -> None:
        self.layout = layout
        self.verify_checksum = verify_checksum
        self._field_names = layout.field_names
        self._prefix = b"8=" + layout.begin_string.encode() + b"\x019="
        known = frozenset(layout.known_tags)
        data_tags = frozenset(layout.data_tags)
        self._data_tags: frozenset[bytes] = frozenset(str(t).encode() for t in data_tags)
        self._header = _Level(layout.header, _HEADER_READ, known=known, data_tags=data_tags)
        trailer = frozenset(layout.trailer.tags)
        self._bodies: dict[bytes, _Level] = {}
        self._entries: dict[bytes, _Level] = {}
        for msg_type, body in layout.bodies.items():
            key = msg_type.encode()
            # A body stops at the trailer's fields (Signature: DATA): left to the codec.
            self._bodies[key] = _Level(
                body, _BODY_READ, known=known, data_tags=data_tags | trailer
            )
            entry = layout.entries.get(msg_type)
            if entry is not None:
                # A tag of the body or the trailer ends the group, as in the typed codec.
                self._entries[key] = _Level(
                    entry,
                    _ENTRY_READ,
                    known=known,
                    data_tags=data_tags,
                    enclosing=trailer | frozenset(body.tags),
                )
        self._kind_codes: frozenset[bytes] = frozenset(
            c.encode() for c in layout.md_entry_type_codes
        )
        self._action_codes: frozenset[bytes] = frozenset(
            c.encode() for c in layout.md_update_action_codes
        )
        self._reject_codes: frozenset[bytes] = frozenset(
            c.encode() for c in layout.md_req_rej_reason_codes
        )
        self._kind_chars = _char_table(self._kind_codes)
        self._action_chars = _char_table(self._action_codes)
        self._e8_cache: dict[bytes, int] = {}
        self._time_cache: dict[bytes, int] = {}
        self._date_cache: dict[bytes, int] = {}
        self._text_cache: dict[bytes, str] = {}

    def native_layout(
        self,
    ) -> (
        tuple[
            bytes,
            tuple[list[int], list[int], int],
            tuple[list[int], list[int], int],
            tuple[list[int], list[int], int],
            tuple[list[int], list[int], int],
            tuple[list[int], list[int], int],
            bytes,
            bytes,
        ]
        | None
    ):
        """This decoder's tables for the ingest's native core (fix_session.tick_core), which
        reads W and X as this decoder does: the framing prefix, (tag -> code table, the
        required codes, the group delimiter) of the header and of the W and X bodies and
        entries, and the MDEntryType and MDUpdateAction single-byte codes; None when the
        dictionary has no W or X with NoMDEntries."""
        try:
            levels = (
                self._header,
                self._bodies[b"W"],
                self._entries[b"W"],
                self._bodies[b"X"],
                self._entries[b"X"],
            )
        except KeyError:
            return None
        specs = [_level_spec(level) for level in levels]
        return (
            self._prefix,
            specs[0],
            specs[1],
            specs[2],
            specs[3],
            specs[4],
            bytes(self._kind_chars),
            bytes(self._action_chars),
        )

    # -- errors ----------------------------------------------------------------

    def _error(self, reason: str, tag: int) -> FixDecodeError:
        return FixDecodeError(reason, tag, self._field_names.get(tag))

    def _bad_value(self, tag: int, value: bytes, what: str) -> FixDecodeError:
        return self._error(f"not {what}: {value.decode('latin-1')!r}", tag)

    # -- framing ---------------------------------------------------------------

    def _body(self, data: bytes) -> bytes:
        """The body (MsgType through the last field before CheckSum), framing checked."""
        prefix = self._prefix
        if not data.startswith(prefix):
            if data.startswith(b"8="):
                end = data.find(_SOH)
                got = (data[2:end] if end >= 2 else data[2:]).decode("latin-1")
                raise FixDecodeError(
                    f"BeginString {got!r}, expected {self.layout.begin_string!r}", 8
                )
            raise FixDecodeError("message does not start with BeginString (8=)", 8)
        start = len(prefix)
        soh = data.find(_SOH, start)
        length_text = data[start:soh] if soh >= 0 else data[start:]
        if soh < 0 or not length_text.isdigit() or len(length_text) > 7:
            raise FixDecodeError(f"BodyLength is not a number: {length_text!r}", 9)
        body_start = soh + 1
        body_end = body_start + int(length_text)
        trailer = data[body_end:]
        if len(trailer) != 7 or not trailer.startswith(b"10=") or trailer[6] != 1:
            raise FixDecodeError(
                f"BodyLength {int(length_text)} does not end the body at the CheckSum field "
                f"(message of {len(data)} bytes)",
                9,
            )
        digits = trailer[3:6]
        if not digits.isdigit():
            raise FixDecodeError(f"CheckSum is not three digits: {digits!r}", 10)
        if self.verify_checksum:
            expected = _checksum(data, body_end)
            if int(digits) != expected:
                raise FixDecodeError(
                    f"CheckSum {digits.decode()} does not match the computed {expected:03d}", 10
                )
        return data[body_start:body_end]

    # -- values ----------------------------------------------------------------

    def _e8(self, tag: int, value: bytes, invalid: list[str]) -> int:
        """A PRICE or QTY as ints of 10^-8; ABSENT, named in `invalid`, if not representable."""
        cached = self._e8_cache.get(value, ABSENT)
        if cached != ABSENT:
            return cached
        negative = value[:1] == b"-"
        text = value[1:] if negative else value
        dot = text.find(b".")
        whole = text if dot < 0 else text[:dot]
        frac = b"" if dot < 0 else text[dot + 1 :]
        if (
            (not whole and not frac)
            or (whole and not whole.isdigit())
            or (frac and not frac.isdigit())
        ):
            raise self._bad_value(tag, value, "a decimal number")
        whole = whole.lstrip(b"0")
        frac = frac.rstrip(b"0")
        result = ABSENT
        if len(frac) <= 8 and len(whole) <= 19:
            scaled = (int(whole) if whole else 0) * _E8 + (int(frac.ljust(8, b"0")) if frac else 0)
            if negative:
                scaled = -scaled
            if -_INT64_LIMIT < scaled < _INT64_LIMIT:
                result = scaled
        if result == ABSENT:
            # Rare: the reference reading's own Decimal rules decide (28-digit context).
            exact = Decimal(value.decode("ascii"))
            as_e8 = scaled_e8(exact)
            if as_e8 is None:
                name = self._field_names.get(tag, str(tag))
                invalid.append(f"{name} {exact} is not a whole number of 10^-8 in int64 range")
                return ABSENT
            result = as_e8
        if len(self._e8_cache) >= _CACHE_LIMIT:
            self._e8_cache.clear()
        self._e8_cache[value] = result
        return result

    def _int(self, tag: int, value: bytes) -> int:
        if value.isdigit() or (value[:1] == b"-" and value[1:].isdigit()):
            try:
                return int(value)
            except ValueError:
                pass  # more digits than int() reads
        raise self._bad_value(tag, value, "an integer")

    def _time_ns(self, tag: int, value: bytes) -> int:
        """UTCTimeOnly HH:MM:SS[.f{1,9}] as ns since midnight."""
        cached = self._time_cache.get(value, -1)
        if cached >= 0:
            return cached
        ns = _parse_time(value)
        if ns < 0:
            raise self._bad_value(tag, value, "a time HH:MM:SS[.fff]")
        if len(self._time_cache) >= _CACHE_LIMIT:
            self._time_cache.clear()
        self._time_cache[value] = ns
        return ns

    def _timestamp_ns(self, tag: int, value: bytes) -> int:
        """UTCTimestamp YYYYMMDD-HH:MM:SS[.f{1,9}] as ns since the epoch."""
        if len(value) < 17 or value[8] != 45:  # '-'
            raise self._bad_value(tag, value, "a UTCTimestamp YYYYMMDD-HH:MM:SS[.fff]")
        date = value[:8]
        days = self._date_cache.get(date, ABSENT)
        if days == ABSENT:
            days = _parse_date(date)
            if days == ABSENT:
                raise self._bad_value(tag, value, "a UTCTimestamp YYYYMMDD-HH:MM:SS[.fff]")
            if len(self._date_cache) < 4096:
                self._date_cache[date] = days
        return days * _DAY_NS + self._time_ns(tag, value[9:])

    def _text(self, value: bytes) -> str:
        text = self._text_cache.get(value)
        if text is None:
            text = value.decode("latin-1")
            if len(self._text_cache) >= _CACHE_LIMIT:
                self._text_cache.clear()
            self._text_cache[value] = text
        return text

    # -- decoding --------------------------------------------------------------

    def decode(self, data: bytes, out: MdMessage) -> bool:
        """Read one whole message into `out`; False: leave it to the typed codec."""
        out.clear()
        body = self._body(data)
        n = len(body)
        if n == 0 or body[n - 1] != _SOH_BYTE:
            raise FixDecodeError("the last body field is not terminated by SOH")
        if not body.startswith(b"35="):
            raise FixDecodeError("MsgType (35) is not the third field", 35)
        i = 3
        while body[i] != _SOH_BYTE:
            if body[i] == _EQ_BYTE:
                return self._misaligned(body)
            i += 1
        msg_type = body[3:i]
        body_level = self._bodies.get(msg_type)
        if body_level is None:
            return False
        i = self._read_header(body, i + 1, n, out)
        if i < 0:
            return self._leave(out)
        out.msg_type = msg_type.decode()
        i = self._read_body(msg_type, body_level, body, i, n, out)
        if i < 0:
            return self._leave(out)
        return True

    def _misaligned(self, body: bytes) -> bool:
        """A body with a field of no '=' or of several: raise, or leave it to the codec."""
        fields = body.split(_SOH)
        for field in fields:
            if field.partition(_EQ)[0] in self._data_tags:
                return False  # a DATA value may hold SOH and '=': the codec checks its length
        for field in fields:
            if field and _EQ not in field:
                raise FixDecodeError(f"field {field!r} is not tag=value")
        return False

    def _leave(self, out: MdMessage) -> bool:
        out.clear()
        return False

    def _tag_error(self, body: bytes, start: int) -> FixDecodeError:
        """The error for the field at `start`, whose tag is not digits followed by '='."""
        end = body.find(_SOH, start)
        field = body[start:end]
        if _EQ not in field:
            return FixDecodeError(f"field {field!r} is not tag=value")
        tag = field.partition(_EQ)[0]
        return FixDecodeError(f"malformed field: tag {tag!r} is not a number")

    def _read_header(self, body: bytes, i: int, n: int, out: MdMessage) -> int:
        """Read the header from body[i:]; the index of the body's first field, -1 to leave."""
        level = self._header
        seen = 0
        while i < n:
            start = i
            tag = 0
            c = body[i]
            while 48 <= c <= 57:
                tag = tag * 10 + (c - 48)
                i += 1
                c = body[i]
            if c != _EQ_BYTE or i == start:
                raise self._tag_error(body, start)
            if body[start] == 48 or i - start > 9:
                tag = _UNKNOWN
            i += 1
            value_start = i
            c = body[i]
            while c != _SOH_BYTE:
                if c == _EQ_BYTE:
                    return self._misaligned_at(body)
                i += 1
                c = body[i]
            value_end = i
            i += 1
            code = level.code(tag)
            if code == _NOT_HERE:
                continue  # a tag the dictionary does not define: kept by the codec
            if code in (_KNOWN_ELSEWHERE, _ENCLOSING):
                i = start
                break  # the body's first field
            if code == _OPAQUE:
                return -1
            bit = 1 << code
            if seen & bit:
                return -1  # a header field sent twice
            seen |= bit
            if value_start == value_end:
                raise self._error("empty value", tag)
            if code == _H_SEQ_NUM:
                out.seq_num = self._int(_MSG_SEQ_NUM, body[value_start:value_end])
            elif code == _H_SENDING:
                out.sending_ns = self._timestamp_ns(_SENDING_TIME, body[value_start:value_end])
        if seen & level.required_mask != level.required_mask:
            missing = level.missing(seen)
            raise self._error("required field missing in Header", missing)
        return i

    def _misaligned_at(self, body: bytes) -> int:
        self._misaligned(body)
        return -1

    def _read_body(
        self,
        msg_type: bytes,
        level: _Level,
        body: bytes,
        i: int,
        n: int,
        out: MdMessage,
    ) -> int:
        """Read the message body from body[i:] to the end; n on success, -1 to leave."""
        seen = 0
        invalid: list[str] = []
        while i < n:
            start = i
            tag = 0
            c = body[i]
            while 48 <= c <= 57:
                tag = tag * 10 + (c - 48)
                i += 1
                c = body[i]
            if c != _EQ_BYTE or i == start:
                raise self._tag_error(body, start)
            if body[start] == 48 or i - start > 9:
                tag = _UNKNOWN
            i += 1
            value_start = i
            c = body[i]
            while c != _SOH_BYTE:
                if c == _EQ_BYTE:
                    return self._misaligned_at(body)
                i += 1
                c = body[i]
            value_end = i
            i += 1
            code = level.code(tag)
            if code < 0:
                if code == _OPAQUE:
                    return -1
                continue  # a field of another level or none: kept by the codec as extra
            bit = 1 << code
            if seen & bit:
                raise self._error("tag appears more than once", tag)
            seen |= bit
            if value_start == value_end:
                raise self._error("empty value", tag)
            if code == _B_ENTRIES:
                i = self._read_entries(msg_type, body, value_start, value_end, n, out, invalid)
                if i < 0:
                    return -1
            elif code == _B_REQ_ID:
                out.md_req_id = body[value_start:value_end].decode("latin-1")
            elif code == _B_SYMBOL:
                out.symbol = self._text(body[value_start:value_end])
            elif code == _B_TEXT:
                out.text = body[value_start:value_end].decode("latin-1")
            elif code == _B_REJ_REASON:
                value = body[value_start:value_end]
                if self._reject_codes and value not in self._reject_codes:
                    raise self._not_enumerated(_MD_REQ_REJ_REASON, value)
                out.rej_reason = value.decode("latin-1")
        if seen & level.required_mask != level.required_mask:
            raise self._error(
                f"required field missing in the {msg_type.decode()} body", level.missing(seen)
            )
        out.invalid = "; ".join(invalid)
        return n

    def _read_entries(
        self,
        msg_type: bytes,
        body: bytes,
        count_start: int,
        count_end: int,
        n: int,
        out: MdMessage,
        invalid: list[str],
    ) -> int:
        """Read NoMDEntries, whose count is body[count_start:count_end]; the index of the
        field after the group, -1 to leave."""
        level = self._entries.get(msg_type)
        if level is None:
            return -1
        count_text = body[count_start:count_end]
        if not count_text.isdigit():
            raise self._error(
                f"group count is not a number: {count_text.decode('latin-1')!r}", _NO_MD_ENTRIES
            )
        count = int(count_text)
        i = count_end + 1
        required = level.required_mask
        delimiter = level.first_tag
        kind_chars = self._kind_chars
        action_chars = self._action_chars
        actions, kinds, symbols = out.action, out.kind, out.entry_symbol
        prices, sizes, times = out.px_e8, out.size_e8, out.time_ns
        positions, levels = out.position_no, out.price_level
        entry_ids, ref_ids = out.entry_id, out.ref_id
        entries = 0
        # The field read but not yet consumed: an entry starts at its delimiter.
        start, tag, value_start, value_end = self._field(body, i)
        if tag == _MISALIGNED:
            return -1
        while tag == delimiter:
            if entries == count:
                raise self._error(
                    f"more than the {count} entries the group count says", _NO_MD_ENTRIES
                )
            action = NEW
            kind = ABSENT
            symbol = ""
            px = ABSENT
            size = ABSENT
            time_ns = ABSENT
            position = ABSENT
            price_level = ABSENT
            entry_id = ""
            ref_id = ""
            seen = 0
            while True:
                code = level.code(tag)
                if code < 0:
                    if code == _OPAQUE:
                        return -1
                    if code == _ENCLOSING:
                        break  # a field of the body ends the group
                elif code >= 0:
                    bit = 1 << code
                    if seen & bit:
                        break  # the next entry's delimiter, or a repeated tag
                    seen |= bit
                    if value_start == value_end:
                        raise self._error("empty value", tag)
                    if code == _E_PX:
                        px = self._px(270, body, value_start, value_end, invalid)
                    elif code == _E_SIZE:
                        size = self._px(271, body, value_start, value_end, invalid)
                    elif code == _E_KIND:
                        c = body[value_start]
                        if value_end - value_start == 1 and kind_chars[c]:
                            if c == 48:
                                kind = BID
                            elif c == 49:
                                kind = OFFER
                            elif c == 50:
                                kind = TRADE
                            else:
                                kind = OTHER
                        else:
                            value = body[value_start:value_end]
                            if self._kind_codes and value not in self._kind_codes:
                                raise self._not_enumerated(269, value)
                            kind = OTHER
                    elif code == _E_ACTION:
                        c = body[value_start]
                        if value_end - value_start == 1 and action_chars[c]:
                            if c == 48:
                                action = NEW
                            elif c == 49:
                                action = CHANGE
                            elif c == 50:
                                action = DELETE
                            else:
                                action = ABSENT
                        else:
                            value = body[value_start:value_end]
                            if self._action_codes and value not in self._action_codes:
                                raise self._not_enumerated(279, value)
                            action = ABSENT
                    elif code == _E_SYMBOL:
                        symbol = self._text(body[value_start:value_end])
                    elif code == _E_TIME:
                        time_ns = _time_at(body, value_start, value_end)
                        if time_ns < 0:
                            time_ns = self._time_ns(273, body[value_start:value_end])
                    elif code == _E_POSITION:
                        position = self._int(290, body[value_start:value_end])
                    elif code == _E_LEVEL:
                        price_level = self._int(1023, body[value_start:value_end])
                    elif code == _E_ENTRY_ID:
                        entry_id = body[value_start:value_end].decode("latin-1")
                    elif code == _E_REF_ID:
                        ref_id = body[value_start:value_end].decode("latin-1")
                # The next field, scanned inline: a call returning a tuple per field costs
                # more than the field.
                i = value_end + 1
                start = i
                if i >= n:
                    tag = _END
                    break
                tag = 0
                c = body[i]
                while 48 <= c <= 57:
                    tag = tag * 10 + (c - 48)
                    i += 1
                    c = body[i]
                if c != _EQ_BYTE or i == start:
                    raise self._tag_error(body, start)
                if body[start] == 48 or i - start > 9:
                    tag = _UNKNOWN
                i += 1
                value_start = i
                c = body[i]
                while c != _SOH_BYTE:
                    if c == _EQ_BYTE:
                        return self._misaligned_at(body)
                    i += 1
                    c = body[i]
                value_end = i
            if seen & required != required:
                raise self._error(
                    f"required field missing in {msg_type.decode()} NoMDEntries entry",
                    level.missing(seen),
                )
            actions.append(action)
            kinds.append(kind)
            symbols.append(symbol)
            prices.append(px)
            sizes.append(size)
            times.append(time_ns)
            positions.append(position)
            levels.append(price_level)
            entry_ids.append(entry_id)
            ref_ids.append(ref_id)
            entries += 1
        if entries != count:
            raise self._error(
                f"group count is {count} but {entries} entries follow", _NO_MD_ENTRIES
            )
        out.count = entries
        return start

    def _field(self, body: bytes, i: int) -> tuple[int, int, int, int]:
        """The field at body[i:]: (start, tag, value start, value end); tag _END at the
        end of the body, _MISALIGNED for a value holding '=' (after _misaligned's checks)."""
        n = len(body)
        if i >= n:
            return i, _END, i, i
        start = i
        tag = 0
        c = body[i]
        while 48 <= c <= 57:
            tag = tag * 10 + (c - 48)
            i += 1
            c = body[i]
        if c != _EQ_BYTE or i == start:
            raise self._tag_error(body, start)
        if body[start] == 48 or i - start > 9:
            tag = _UNKNOWN
        i += 1
        value_start = i
        c = body[i]
        while c != _SOH_BYTE:
            if c == _EQ_BYTE:
                self._misaligned(body)
                return start, _MISALIGNED, i, i
            i += 1
            c = body[i]
        return start, tag, value_start, i

    def _px(self, tag: int, body: bytes, start: int, end: int, invalid: list[str]) -> int:
        """A PRICE or QTY at body[start:end] as ints of 10^-8 (see `_e8`)."""
        j = start
        negative = body[j] == 45
        if negative:
            j += 1
        whole = 0
        whole_digits = 0
        c = body[j] if j < end else 0
        while j < end and 48 <= c <= 57:
            whole = whole * 10 + (c - 48)
            whole_digits += 1
            j += 1
            c = body[j]
        frac = 0
        frac_digits = 0
        if j < end and c == 46:
            j += 1
            c = body[j]
            while j < end and 48 <= c <= 57:
                frac = frac * 10 + (c - 48)
                frac_digits += 1
                j += 1
                c = body[j]
        if j != end or whole_digits > 10 or frac_digits > 8 or whole_digits + frac_digits == 0:
            return self._e8(tag, body[start:end], invalid)  # raises, or the exact rules
        scaled = whole * _E8 + frac * _SCALE[frac_digits]
        return -scaled if negative else scaled

    def _not_enumerated(self, tag: int, value: bytes) -> FixDecodeError:
        return self._error(
            f"{value.decode('latin-1')!r} is not one of the field's enumerated values", tag
        )


def _level_spec(level: _Level) -> tuple[list[int], list[int], int]:
    mask = level.required_mask
    required = [code for code in range(mask.bit_length()) if mask >> code & 1]
    return list(level.table), required, level.first_tag


def _char_table(codes: frozenset[bytes]) -> list[bool]:
    """For each byte: is it, alone, one of `codes`."""
    return [bytes([b]) in codes for b in range(256)]


def _time_at(v: bytes, start: int, end: int) -> int:
    """HH:MM:SS[.f{1,9}] at v[start:end] as ns since midnight, -1 if not such a time."""
    n = end - start
    if n < 8 or v[start + 2] != 58 or v[start + 5] != 58:
        return -1
    if n > 8 and (v[start + 8] != 46 or n == 9 or n > 18):
        return -1
    h = _two_digits(v, start)
    m = _two_digits(v, start + 3)
    s = _two_digits(v, start + 6)
    if h < 0 or m < 0 or s < 0 or h > 23 or m > 59 or s > 60:
        return -1
    ns = ((h * 60 + m) * 60 + s) * 1_000_000_000
    if n > 8:
        frac = 0
        for j in range(start + 9, end):
            c = v[j]
            if not 48 <= c <= 57:
                return -1
            frac = frac * 10 + (c - 48)
        ns += frac * _TIME_SCALE[n - 9]
    return ns


def _two_digits(v: bytes, at: int) -> int:
    a = v[at] - 48
    b = v[at + 1] - 48
    if not (0 <= a <= 9 and 0 <= b <= 9):
        return -1
    return a * 10 + b


def _checksum(data: bytes, end: int) -> int:
    total = 0
    for start in range(0, end, 256):
        # adler32's low half is 1 + the byte sum mod 65521; 256 bytes sum to at most 65280.
        total += (zlib.adler32(data[start : min(start + 256, end)]) & 0xFFFF) - 1
    return total & 0xFF


def _parse_time(v: bytes) -> int:
    """HH:MM:SS[.f{1,9}] as ns since midnight, -1 if not such a time."""
    n = len(v)
    if n < 8 or v[2] != 58 or v[5] != 58 or (n > 8 and (v[8] != 46 or n == 9 or n > 18)):
        return -1
    hh, mm, ss, frac = v[0:2], v[3:5], v[6:8], v[9:]
    if not (hh + mm + ss + frac).isdigit():
        return -1
    h, m, s = int(hh), int(mm), int(ss)
    if h > 23 or m > 59 or s > 60:
        return -1
    ns = ((h * 60 + m) * 60 + s) * 1_000_000_000
    if frac:
        ns += int(frac) * 10 ** (9 - len(frac))
    return ns


def _parse_date(v: bytes) -> int:
    """YYYYMMDD as days since 1970-01-01, ABSENT if not a date."""
    if len(v) != 8 or not v.isdigit():
        return ABSENT
    try:
        return dt.date(int(v[:4]), int(v[4:6]), int(v[6:])).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return ABSENT
