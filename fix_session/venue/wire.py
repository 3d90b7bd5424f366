"""FIX 4.4 wire text for the simulated venue: framing, timestamps and a stream splitter.

The venue writes market data as wire text rather than through the typed codec: building
typed objects per entry and encoding them costs ~3 µs per entry, which caps a Python
venue far below the rates the ingest must be tested at. Everything here is plain string
and bytes work, shared by the hot path (`frame`) and by the test hooks that build
deliberately malformed messages (`frame` with a wrong BodyLength or CheckSum).
"""

from __future__ import annotations

import re
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

SOH = "\x01"
BEGIN_STRING = "FIX.4.4"
#: Every FIX 4.4 frame starts with these bytes; the splitter resynchronises on them.
FRAME_START = b"8=FIX.4.4\x019="
#: Frames announcing a longer body than this are treated as garbage, not waited for.
MAX_BODY_LENGTH = 1 << 20
#: Text(58) the venue writes is cut to this many characters.
TEXT_LIMIT = 200

_TRAILER_LEN = len(b"10=000\x01")
_SEQ_RE = re.compile(rb"\x0134=(\d{1,9})\x01")
_TYPE_RE = re.compile(rb"\x0135=([^\x01=]{1,4})\x01")


def checksum(data: bytes) -> int:
    """FIX CheckSum(10): the byte sum of `data` modulo 256.

    adler32's low 16 bits are 1 + the byte sum modulo 65521; a 256-byte chunk sums to at
    most 65280, so per chunk that is the exact sum, computed in C.
    """
    total = 0
    for start in range(0, len(data), 256):
        total += (zlib.adler32(data[start : start + 256]) & 0xFFFF) - 1
    return total & 0xFF


def frame(
    body: bytes,
    *,
    body_length: int | str | None = None,
    checksum_value: int | str | None = None,
    begin_string: str = BEGIN_STRING,
) -> bytes:
    """Frame a body (``35=...`` through its last SOH) as ``8=...|9=...|body|10=...|``.

    ``body_length`` and ``checksum_value`` replace the computed BodyLength(9) and
    CheckSum(10), for tests that need a deliberately broken frame: an int is written as a
    number (the checksum as three digits), a str verbatim.
    """
    length = len(body) if body_length is None else body_length
    head = f"8={begin_string}{SOH}9={length}{SOH}".encode("latin-1")
    out = head + body
    if checksum_value is None:
        cks = f"{checksum(out):03d}"
    elif isinstance(checksum_value, int):
        cks = f"{checksum_value:03d}"
    else:
        cks = checksum_value
    return out + f"10={cks}{SOH}".encode("latin-1")


def fields_text(fields: Iterable[tuple[int, str]]) -> str:
    """``tag=value<SOH>`` for each field, in the order given (values are not checked)."""
    return "".join(f"{tag}={value}{SOH}" for tag, value in fields)


def clean_text(text: str) -> str:
    """Text(58) that cannot break the frame it goes into."""
    return text.replace(SOH, "|").replace("\r", " ").replace("\n", " ")[:TEXT_LIMIT]


def utc_timestamp(ns: int) -> str:
    """A UTCTimestamp with milliseconds, ``YYYYMMDD-HH:MM:SS.sss``, as SendingTime uses."""
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(secs)) + f".{frac // 1_000_000:03d}"


def utc_time_only(ns: int) -> str:
    """A UTCTimeOnly with milliseconds, ``HH:MM:SS.sss``, as MDEntryTime(273) uses."""
    secs, frac = divmod(ns, 1_000_000_000)
    day_secs = secs % 86_400
    h, rem = divmod(day_secs, 3600)
    m, s = divmod(rem, 60)
    return f"{h:02d}:{m:02d}:{s:02d}.{frac // 1_000_000:03d}"


def find_seq_num(data: bytes) -> int | None:
    """MsgSeqNum(34) found anywhere in raw bytes, for rejecting what does not decode."""
    match = _SEQ_RE.search(data)
    return int(match.group(1)) if match else None


def find_msg_type(data: bytes) -> str | None:
    """MsgType(35) found anywhere in raw bytes."""
    match = _TYPE_RE.search(data)
    return match.group(1).decode("latin-1") if match else None


@dataclass(frozen=True, slots=True)
class Garbled:
    """Bytes the splitter had to skip: not a frame, or a frame whose framing is broken."""

    data: bytes
    reason: str


class FrameSplitter:
    """Cut a TCP byte stream into FIX frames by BodyLength(9).

    `feed` adds bytes; `next` returns one whole frame (``8=`` through ``10=nnn<SOH>``,
    CheckSum not yet verified), a `Garbled` chunk that was skipped, or None when more
    bytes are needed. After garbage the splitter resynchronises on the next
    ``8=FIX.4.4<SOH>9=``, so one broken message costs only itself.
    """

    def __init__(self, max_body_length: int = MAX_BODY_LENGTH) -> None:
        self._buf = bytearray()
        self._max = max_body_length

    def feed(self, data: bytes) -> None:
        """Append received bytes."""
        self._buf += data

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned."""
        return len(self._buf)

    def next(self) -> bytes | Garbled | None:
        """The next frame, skipped garbage, or None when the buffer holds no whole frame."""
        buf = self._buf
        if not buf:
            return None
        start = buf.find(FRAME_START)
        if start != 0:
            return self._skip_to(start)
        return self._frame_at_start()

    def _frame_at_start(self) -> bytes | Garbled | None:
        """The frame the buffer starts with (it starts with FRAME_START)."""
        buf = self._buf
        soh = buf.find(b"\x01", len(FRAME_START))
        if soh < 0:
            if len(buf) - len(FRAME_START) > 8:
                return self._resync("BodyLength(9) is not terminated by SOH")
            return None
        length_text = bytes(buf[len(FRAME_START) : soh])
        if not length_text.isdigit() or int(length_text) > self._max:
            return self._resync(f"BodyLength(9) {length_text!r} is not a usable length")
        end = soh + 1 + int(length_text) + _TRAILER_LEN
        if len(buf) < end:
            return None
        trailer = bytes(buf[end - _TRAILER_LEN : end])
        if not (trailer.startswith(b"10=") and trailer.endswith(b"\x01")):
            return self._resync(
                f"BodyLength(9) {int(length_text)} does not end the body at CheckSum(10)"
            )
        data = bytes(buf[:end])
        del buf[:end]
        return data

    def _partial_start(self) -> int:
        """Where a tail that may begin a frame still arriving starts (len(buf) if none)."""
        buf = self._buf
        for n in range(min(len(FRAME_START) - 1, len(buf)), 0, -1):
            if buf.endswith(FRAME_START[:n]):
                return len(buf) - n
        return len(buf)

    def _skip_to(self, start: int) -> Garbled | None:
        if start < 0:
            start = self._partial_start()
            if start == 0:
                return None
        data = bytes(self._buf[:start])
        del self._buf[:start]
        return Garbled(data, f"{len(data)} bytes before BeginString(8)")

    def _resync(self, reason: str) -> Garbled:
        buf = self._buf
        nxt = buf.find(FRAME_START, 1)
        cut = nxt if nxt > 0 else max(1, self._partial_start())
        data = bytes(buf[:cut])
        del buf[:cut]
        return Garbled(data, reason)
