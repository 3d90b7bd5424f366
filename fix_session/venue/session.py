"""The FIX 4.4 session layer of the simulated venue: one connection, its numbers and timers.

`AcceptorSession` is the acceptor side of one FIX session; `VenueSession`
(`fix_session.venue.market_data`) is the session the venue runs on each connection, this
layer with market data on top. A session needs from its venue only what `SessionHost`
names: the config, two timeouts, and the calls it makes when it logs on, saves or loads its
sequence numbers and closes. So the session does not import the venue, and the venue is
free to be whatever serves that protocol.

Session layer (FIX 4.4, one session per TCP connection, several connections at once):

* Logon (A): CompIDs checked against the config (SenderCompID = `target_comp_id`,
  TargetCompID = `sender_comp_id`), EncryptMethod 0, HeartBtInt >= 0. The SenderCompID
  of a sharded ingest, `target_comp_id` and ``-K`` (``MDFEED-2``: shard 2), is accepted
  too: the session then speaks to that CompID, so each shard has a session of its own.
  ResetSeqNumFlag(141)=Y resets both sequence numbers to 1 (the Logon must be 34=1) and
  the reply Logon echoes HeartBtInt and 141=Y. Without it the session resumes the
  numbers saved when the last connection with the same CompIDs closed (kept in memory
  for the life of the `SimulatedVenue`), so an initiator with ResetOnLogon=N works too.
  A first message that is not a Logon, wrong CompIDs, or a Logon with a bad
  MsgSeqNum get a Logout with Text, then the connection is closed.
* Heartbeat (0) after HeartBtInt seconds without sending; TestRequest (1) answered by a
  Heartbeat carrying TestReqID(112); the venue's own TestRequest after 1.2 x HeartBtInt
  of silence, and the connection dropped (Logout, close) when another 1.2 x HeartBtInt
  passes without any message.
* MsgSeqNum checks: a gap gets a ResendRequest (2) for the missing range and the message
  is processed; PossDupFlag(43)=Y resends inside a requested range are processed once
  (SequenceReset-GapFill closes the range), other PossDup duplicates are ignored; a number
  too low without PossDupFlag gets a Logout naming both numbers and a disconnect.
* ResendRequest (2) is answered with one SequenceReset-GapFill (35=4, 43=Y, 122, 123=Y,
  36 = the next number): market data is not replayed, the initiator resubscribes for a
  fresh snapshot instead. SequenceReset (4) in GapFill and Reset mode is honoured.
* Logout (5) both ways: answered and closed; `SimulatedVenue.stop` sends one and waits
  briefly for the answer.
* Bytes that do not decode (garbage, broken BodyLength or CheckSum, a missing required
  tag, a bad value) get a session Reject (3) with RefSeqNum(45) (0 when the bytes carry
  no MsgSeqNum), RefTagID(371), SessionRejectReason(373) and Text, and the session stays
  up. Frames are cut from the stream by BodyLength; after garbage the reader
  resynchronises on the next ``8=FIX.4.4<SOH>9=``. A message that framed correctly but
  failed validation consumes its sequence number; a garbled frame does not.
* Application messages go to `AcceptorSession._on_application`; here they get a
  BusinessMessageReject (j), and `VenueSession` serves MarketDataRequest (V).

Not covered: encryption, Username/Password checks, session schedules, SendingTime
accuracy checks, message replay on ResendRequest, queueing of messages received after
a gap (they are processed at once), the FIX 4.4 NextExpectedMsgSeqNum(789) logon.

Test hooks on a session: `send_raw`, `build_message` and `send_message` (also on
`SimulatedVenue`, for its newest logged-on session), ``await logout(text)`` and `abort`
(drop the TCP connection with no Logout) to test reconnects, and `stats`, the counters of
this connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Iterable
from typing import Protocol

from fix_session.venue.stats import VenueStats
from fix_session.venue.wire import (
    SOH,
    FrameSplitter,
    Garbled,
    clean_text,
    fields_text,
    find_msg_type,
    find_seq_num,
    frame,
    utc_timestamp,
)
from fix_spec import fix44
from fix_spec.codec import FixDecodeError
from fix_spec.fix44.enums import (
    BusinessRejectReason,
    EncryptMethod,
    SessionRejectReason,
)
from fix_spec.fix44.header import Header, Message
from fix_spec.fix44.messages import (
    BusinessMessageReject,
    Heartbeat,
    Logon,
    Logout,
    Reject,
    ResendRequest,
    SequenceReset,
    TestRequest,
)
from mdfeed.kernel.config import VenueConfig

# One logger for the whole venue, whichever module logs.
log = logging.getLogger("fix_session.venue")

#: Silence, in heartbeat intervals, before a TestRequest and again before disconnecting.
_SILENCE_FACTOR = 1.2


class SessionHost(Protocol):
    """What a session needs from the venue that accepted its connection."""

    @property
    def config(self) -> VenueConfig:
        """The venue's config: the CompIDs a Logon must carry, the symbols."""
        ...

    @property
    def logon_timeout_s(self) -> float:
        """Seconds a new connection has to log on before it is closed."""
        ...

    @property
    def logout_timeout_s(self) -> float:
        """Seconds `AcceptorSession.logout` waits for the answering Logout by default."""
        ...

    def session_logged_on(self, session: AcceptorSession) -> None:
        """`session` completed its Logon."""
        ...

    def session_closed(self, session: AcceptorSession) -> None:
        """`session`'s connection is closed; it sends and receives nothing more."""
        ...

    def save_sequence_numbers(self, comp_ids: tuple[str, str], next_out: int, next_in: int) -> None:
        """Keep a closing session's next MsgSeqNums for the next Logon without a reset.

        `comp_ids` is the initiator's (SenderCompID, TargetCompID).
        """
        ...

    def load_sequence_numbers(self, comp_ids: tuple[str, str]) -> tuple[int, int]:
        """The (next out, next in) MsgSeqNums saved for `comp_ids`, or (1, 1)."""
        ...


class SessionState(enum.Enum):
    """Where a connection is in the FIX session life cycle."""

    AWAITING_LOGON = "awaiting logon"
    LOGGED_ON = "logged on"
    LOGGING_OUT = "logging out"
    CLOSED = "closed"


# The codec explains a decode error in words; SessionRejectReason(373) wants a code.
# First match wins, so the specific phrases come before the generic "not ".
_REJECT_REASONS = (
    ("required field missing", SessionRejectReason.REQUIRED_TAG_MISSING),
    ("empty value", SessionRejectReason.TAG_SPECIFIED_WITHOUT_A_VALUE),
    ("enumerated values", SessionRejectReason.VALUE_IS_INCORRECT),
    ("unknown MsgType", SessionRejectReason.INVALID_MSG_TYPE),
    ("not the third field", SessionRejectReason.TAG_SPECIFIED_OUT_OF_REQUIRED_ORDER),
    ("more than once", SessionRejectReason.TAG_APPEARS_MORE_THAN_ONCE),
    ("group count", SessionRejectReason.INCORRECT_NUM_IN_GROUP_COUNT_FOR_REPEATING_GROUP),
    ("not ", SessionRejectReason.INCORRECT_DATA_FORMAT_FOR_VALUE),
)


def _reject_reason(error: FixDecodeError) -> SessionRejectReason:
    reason = error.reason
    if error.tag is None or error.tag in (8, 9, 10):
        return SessionRejectReason.OTHER
    for needle, code in _REJECT_REASONS:
        if needle in reason:
            return code
    return SessionRejectReason.OTHER


class AcceptorSession:
    """One initiator connection and its FIX session.

    Read its attributes freely; the methods documented as test hooks may be called from
    tests on the venue's event loop. A subclass serves the application messages
    (`_on_application`), writes its own through `_send` (typed) or `_write` (wire text
    framed with `_header_text` and the next `next_out_seq`), and lets go of what it holds
    when the session ends (`_session_ended`).
    """

    def __init__(
        self,
        venue: SessionHost,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self._venue = venue
        self._reader = reader
        self._writer = writer
        self._transport = writer.transport
        peer = writer.get_extra_info("peername")
        #: ``host:port`` of the initiator.
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.state = SessionState.AWAITING_LOGON
        #: HeartBtInt(108) agreed at logon, seconds (0: no heartbeats).
        self.heartbeat_interval = 0
        #: The MsgSeqNum the venue sends next.
        self.next_out_seq = 1
        #: The MsgSeqNum the venue expects next from the initiator.
        self.next_in_seq = 1
        self.stats = VenueStats(connections=1)
        config = venue.config
        self._sender = config.sender_comp_id
        self._target = config.target_comp_id
        self._header_text = f"49={self._sender}{SOH}56={self._target}{SOH}"
        self._gaps: list[tuple[int, int]] = []
        loop = asyncio.get_running_loop()
        self._loop = loop
        self.connected_at = loop.time()
        self._last_sent = self._last_recv = self.connected_at
        self._test_request_at: float | None = None
        self._test_request_count = 0
        self._logout_deadline = 0.0
        self._splitter = FrameSplitter()
        self._closed = asyncio.Event()

    # -- public view -------------------------------------------------------------------

    @property
    def logged_on(self) -> bool:
        """True between a successful Logon and the start of a logout."""
        return self.state is SessionState.LOGGED_ON

    @property
    def write_buffer_size(self) -> int:
        """Bytes written but not yet accepted by the socket."""
        return int(self._transport.get_write_buffer_size())

    async def wait_closed(self) -> None:
        """Wait until the connection is closed."""
        await self._closed.wait()

    # -- test hooks --------------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        """Write `data` to the initiator verbatim (no framing, no sequence number)."""
        self._write(data, 0)

    def build_message(
        self,
        msg_type: str,
        fields: Iterable[tuple[int, str]],
        *,
        seq: int | None = None,
        consume_seq: bool = True,
        body_length: int | str | None = None,
        checksum: int | str | None = None,
        header_fields: Iterable[tuple[int, str]] = (),
    ) -> bytes:
        """Frame a message: 35, this session's 49/56, 34, 52, `header_fields`, `fields`.

        MsgSeqNum is `seq` if given, else the next number, which is consumed (as a real
        venue's broken message would consume it) unless `consume_seq` is False.
        `body_length` and `checksum` override the computed BodyLength(9) and
        CheckSum(10): an int as a number, a str verbatim.
        """
        if seq is None:
            seq = self.next_out_seq
            if consume_seq:
                self.next_out_seq += 1
        now = utc_timestamp(time.time_ns())
        head = f"35={msg_type}{SOH}{self._header_text}34={seq}{SOH}52={now}{SOH}"
        body = (head + fields_text(header_fields) + fields_text(fields)).encode("latin-1")
        return frame(body, body_length=body_length, checksum_value=checksum)

    def send_message(
        self,
        msg_type: str,
        fields: Iterable[tuple[int, str]],
        *,
        seq: int | None = None,
        consume_seq: bool = True,
        body_length: int | str | None = None,
        checksum: int | str | None = None,
        header_fields: Iterable[tuple[int, str]] = (),
    ) -> bytes:
        """`build_message` and write it; returns the bytes sent."""
        data = self.build_message(
            msg_type,
            fields,
            seq=seq,
            consume_seq=consume_seq,
            body_length=body_length,
            checksum=checksum,
            header_fields=header_fields,
        )
        self._write(data, 1, msg_type)
        return data

    async def logout(self, text: str = "", answer_timeout_s: float | None = None) -> None:
        """Send Logout, wait for the initiator's Logout (or the timeout), then close.

        The default timeout is the venue's `logout_timeout_s`.
        """
        if self.state in (SessionState.CLOSED, SessionState.LOGGING_OUT):
            await self.wait_closed()
            return
        if self.state is SessionState.AWAITING_LOGON:
            self.abort()
            return
        wait = self._venue.logout_timeout_s if answer_timeout_s is None else answer_timeout_s
        self._start_logout(text, wait)
        try:
            await asyncio.wait_for(self._closed.wait(), wait + 1.0)
        except TimeoutError:
            self.abort()

    def abort(self) -> None:
        """Drop the TCP connection at once, without Logout."""
        self._set_closed()
        self._transport.abort()

    # -- connection life cycle ---------------------------------------------------------

    async def run(self) -> None:
        """Serve the connection until it closes."""
        timer = asyncio.create_task(self._timer_loop(), name=f"venue-timer-{self.peer}")
        try:
            while self.state is not SessionState.CLOSED:
                data = await self._reader.read(1 << 16)
                if not data:
                    break
                self._on_data(data)
        except (ConnectionError, OSError) as exc:
            log.info("venue: %s: connection error: %s", self.peer, exc)
        finally:
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
            self._set_closed()
            self._writer.close()
            try:
                await asyncio.wait_for(self._writer.wait_closed(), 2.0)
            except (TimeoutError, ConnectionError, OSError):
                self._transport.abort()
            self._venue.session_closed(self)

    def _set_closed(self) -> None:
        if self.state is not SessionState.CLOSED:
            was_logged_on = self.state is not SessionState.AWAITING_LOGON
            self.state = SessionState.CLOSED
            self._closed.set()
            if was_logged_on:
                self._venue.save_sequence_numbers(
                    (self._target, self._sender), self.next_out_seq, self.next_in_seq
                )
            self._session_ended()

    def _session_ended(self) -> None:
        """The session has just closed (its sequence numbers are saved): a subclass hook."""

    def _close(self, reason: str) -> None:
        """Close after what is written is flushed."""
        if self.state is not SessionState.CLOSED:
            log.info("venue: %s: closing: %s", self.peer, reason)
        self._set_closed()
        self._writer.close()

    def _fatal(self, text: str) -> None:
        """Logout with `text`, then close without waiting for the answer."""
        log.warning("venue: %s: %s", self.peer, text)
        if not self._transport.is_closing():
            self._send(Logout(text=clean_text(text)))
        self._close(text)

    def _start_logout(self, text: str, wait: float) -> None:
        self._send(Logout(text=clean_text(text) or None))
        self.state = SessionState.LOGGING_OUT
        self._logout_deadline = self._loop.time() + wait

    async def _timer_loop(self) -> None:
        venue = self._venue
        while self.state is not SessionState.CLOSED:
            hbi = self.heartbeat_interval
            await asyncio.sleep(min(0.1, hbi / 10) if hbi else 0.1)
            now = self._loop.time()
            if self.state is SessionState.AWAITING_LOGON:
                if now - self.connected_at > venue.logon_timeout_s:
                    self._close(f"no Logon within {venue.logon_timeout_s:g} s")
            elif self.state is SessionState.LOGGING_OUT:
                if now >= self._logout_deadline:
                    self._close("no Logout answer")
            elif hbi > 0:
                self._check_liveness(now, hbi)

    def _check_liveness(self, now: float, hbi: int) -> None:
        limit = hbi * _SILENCE_FACTOR
        if self._test_request_at is None:
            if now - self._last_recv >= limit:
                self._test_request_count += 1
                test_id = f"{self._sender}-TEST-{self._test_request_count}"
                self._send(TestRequest(test_req_id=test_id))
                self.stats.test_requests_sent += 1
                self._test_request_at = now
        elif now - self._test_request_at >= limit:
            self._fatal(f"no answer to TestRequest within {limit:g} s")
            return
        if now - self._last_sent >= hbi:
            self._send(Heartbeat())
            self.stats.heartbeats_sent += 1

    # -- writing -----------------------------------------------------------------------

    def _write(self, data: bytes, messages: int, msg_type: str | None = None) -> None:
        if self._transport.is_closing():
            return
        self._transport.write(data)
        self._last_sent = self._loop.time()
        stats = self.stats
        stats.bytes_sent += len(data)
        stats.messages_sent += messages
        if msg_type is not None:
            stats.sent_by_type[msg_type] = stats.sent_by_type.get(msg_type, 0) + messages

    def _send(self, message: Message, *, seq: int | None = None, poss_dup: bool = False) -> None:
        """Encode a typed message with this session's header and send it."""
        if seq is None:
            seq = self.next_out_seq
            self.next_out_seq += 1
        now = time.time_ns()
        now -= now % 1_000_000  # milliseconds, like every other venue timestamp
        message.header = Header(
            sender_comp_id=self._sender,
            target_comp_id=self._target,
            msg_seq_num=seq,
            sending_time=now,
            poss_dup_flag=True if poss_dup else None,
            orig_sending_time=now if poss_dup else None,
        )
        self._write(fix44.encode(message), 1, message.MSG_TYPE)

    # -- reading -----------------------------------------------------------------------

    def _on_data(self, data: bytes) -> None:
        self._last_recv = self._loop.time()
        self.stats.bytes_received += len(data)
        splitter = self._splitter
        splitter.feed(data)
        while self.state is not SessionState.CLOSED:
            item = splitter.next()
            if item is None:
                return
            if isinstance(item, Garbled):
                self._on_undecodable(item.data, item.reason, None, framed=False)
                continue
            try:
                message = fix44.decode(item)
            except FixDecodeError as exc:
                self._on_undecodable(item, str(exc), exc, framed=exc.tag not in (8, 9, 10))
                continue
            if isinstance(message, Message):  # always: fix44 decodes to fix44 messages
                self._on_message(message)

    def _on_undecodable(
        self, data: bytes, text: str, error: FixDecodeError | None, *, framed: bool
    ) -> None:
        self.stats.decode_errors += 1
        seq = find_seq_num(data)
        msg_type = find_msg_type(data)
        log.warning("venue: %s: undecodable input (MsgSeqNum %s): %s", self.peer, seq, text)
        if self.state is SessionState.AWAITING_LOGON:
            self._fatal(f"the first message is not a valid Logon: {text}")
            return
        self._send(
            Reject(
                ref_seq_num=seq if seq is not None else 0,
                ref_tag_id=error.tag if error is not None else None,
                ref_msg_type=msg_type,
                session_reject_reason=(
                    _reject_reason(error) if error is not None else SessionRejectReason.OTHER
                ),
                text=clean_text(text),
            )
        )
        self.stats.rejects_sent += 1
        # A message that framed correctly was received, only invalid: its number counts.
        if framed and seq is not None and seq >= self.next_in_seq:
            self._check_seq(seq, poss_dup=False)

    def _on_message(self, message: Message) -> None:
        stats = self.stats
        stats.messages_received += 1
        msg_type = message.MSG_TYPE
        stats.received_by_type[msg_type] = stats.received_by_type.get(msg_type, 0) + 1
        self._test_request_at = None
        header = message.header
        shard_id = header.sender_comp_id
        if (
            self.state is SessionState.AWAITING_LOGON
            and isinstance(message, Logon)
            and shard_id is not None
            and _is_shard_of(shard_id, self._target)
        ):
            self._target = shard_id
            self._header_text = f"49={self._sender}{SOH}56={self._target}{SOH}"
        if header.sender_comp_id != self._target or header.target_comp_id != self._sender:
            self._fatal(
                f"wrong CompIDs: expected SenderCompID={self._target} "
                f"TargetCompID={self._sender}, got SenderCompID={header.sender_comp_id} "
                f"TargetCompID={header.target_comp_id}"
            )
            return
        if isinstance(message, Logon):
            self._on_logon(message)
            return
        if self.state is SessionState.AWAITING_LOGON:
            self._fatal(f"the first message must be a Logon (A), got {msg_type}")
            return
        seq = header.msg_seq_num or 0
        if isinstance(message, SequenceReset) and not message.gap_fill_flag:
            self._on_sequence_reset(message)
            return
        if not self._check_seq(seq, poss_dup=bool(header.poss_dup_flag), message=message):
            return
        self._dispatch(message)

    def _dispatch(self, message: Message) -> None:
        if isinstance(message, Heartbeat):
            return
        if isinstance(message, TestRequest):
            self._send(Heartbeat(test_req_id=message.test_req_id))
            self.stats.heartbeats_sent += 1
        elif isinstance(message, ResendRequest):
            self._on_resend_request(message)
        elif isinstance(message, Reject):
            self.stats.rejects_received += 1
            log.warning(
                "venue: %s: Reject of our MsgSeqNum %s: %s",
                self.peer,
                message.ref_seq_num,
                message.text,
            )
        elif isinstance(message, SequenceReset):
            self._on_sequence_reset(message)
        elif isinstance(message, Logout):
            self._on_logout(message)
        else:
            self._on_application(message)

    def _on_application(self, message: Message) -> None:
        """An application message, in sequence: rejected here, served by a subclass."""
        self._send(
            BusinessMessageReject(
                ref_seq_num=message.header.msg_seq_num,
                ref_msg_type=message.MSG_TYPE,
                business_reject_reason=BusinessRejectReason.UNSUPPORTED_MESSAGE_TYPE,
                text=f"this venue serves market data only, not MsgType {message.MSG_TYPE}",
            )
        )

    # -- sequence numbers --------------------------------------------------------------

    def _check_seq(self, seq: int, *, poss_dup: bool, message: Message | None = None) -> bool:
        """Account for an incoming MsgSeqNum; True if the message should be processed."""
        expected = self.next_in_seq
        if seq == expected:
            self.next_in_seq = seq + 1
            return True
        if seq > expected:
            self._gaps.append((expected, seq))
            self._send(ResendRequest(begin_seq_no=expected, end_seq_no=seq - 1))
            self.stats.resend_requests_sent += 1
            self.next_in_seq = seq + 1
            return True
        if poss_dup:
            # A resend we asked for is processed once; any other duplicate is ignored.
            end = seq + 1
            if isinstance(message, SequenceReset) and message.new_seq_no > seq:
                end = message.new_seq_no
            return self._fill_gap(seq, end)
        self._fatal(f"MsgSeqNum too low, expecting {expected} but received {seq}")
        return False

    def _fill_gap(self, low: int, high: int) -> bool:
        """Remove [low, high) from the outstanding gaps; True if `low` was missing."""
        hit = False
        remaining: list[tuple[int, int]] = []
        for gap_low, gap_high in self._gaps:
            if gap_low <= low < gap_high:
                hit = True
            if high <= gap_low or low >= gap_high:
                remaining.append((gap_low, gap_high))
                continue
            if gap_low < low:
                remaining.append((gap_low, low))
            if high < gap_high:
                remaining.append((high, gap_high))
        self._gaps = remaining
        return hit

    def _on_sequence_reset(self, message: SequenceReset) -> None:
        new = message.new_seq_no
        if message.gap_fill_flag and message.header.poss_dup_flag and new <= self.next_in_seq:
            return  # a gap fill inside a requested range: _check_seq has recorded it
        if new < self.next_in_seq:
            self._send(
                Reject(
                    ref_seq_num=message.header.msg_seq_num or 0,
                    ref_tag_id=36,
                    ref_msg_type="4",
                    session_reject_reason=SessionRejectReason.VALUE_IS_INCORRECT,
                    text=f"NewSeqNo {new} is lower than the expected {self.next_in_seq}",
                )
            )
            self.stats.rejects_sent += 1
            return
        self._fill_gap(self.next_in_seq, new)
        self.next_in_seq = new

    def _on_resend_request(self, message: ResendRequest) -> None:
        self.stats.resend_requests_received += 1
        begin = max(1, message.begin_seq_no)
        if begin >= self.next_out_seq:
            log.info("venue: %s: ResendRequest from %s: nothing sent there yet", self.peer, begin)
            return
        # Market data is stale once resent: one gap fill over everything, and the
        # initiator resubscribes if it wants the book back.
        gap_fill = SequenceReset(gap_fill_flag=True, new_seq_no=self.next_out_seq)
        self._send(gap_fill, seq=begin, poss_dup=True)

    # -- session messages --------------------------------------------------------------

    def _on_logon(self, message: Logon) -> None:
        header = message.header
        seq = header.msg_seq_num or 0
        if self.state is SessionState.LOGGING_OUT:
            return
        if message.encrypt_method is not EncryptMethod.NONE:
            self._fatal("EncryptMethod(98) must be 0: encryption is not supported")
            return
        if message.heart_bt_int < 0:
            self._fatal(f"HeartBtInt(108) must be >= 0, got {message.heart_bt_int}")
            return
        reset = bool(message.reset_seq_num_flag)
        if reset:
            if seq != 1:
                self._fatal(f"a Logon with ResetSeqNumFlag=Y must have MsgSeqNum 1, got {seq}")
                return
            self.next_out_seq = 1
            self.next_in_seq = 1
            self._gaps.clear()
        elif self.state is SessionState.AWAITING_LOGON:
            self.next_out_seq, self.next_in_seq = self._venue.load_sequence_numbers(
                (self._target, self._sender)
            )
        else:
            self._fatal("Logon received on a logged-on session without ResetSeqNumFlag")
            return
        if seq < self.next_in_seq:
            self._fatal(f"MsgSeqNum too low, expecting {self.next_in_seq} but received {seq}")
            return
        gap_from = self.next_in_seq if seq > self.next_in_seq else None
        self.next_in_seq = seq + 1
        self.heartbeat_interval = message.heart_bt_int
        self._send(
            Logon(
                encrypt_method=EncryptMethod.NONE,
                heart_bt_int=message.heart_bt_int,
                reset_seq_num_flag=True if reset else None,
            )
        )
        if gap_from is not None:
            self._gaps.append((gap_from, seq))
            self._send(ResendRequest(begin_seq_no=gap_from, end_seq_no=seq - 1))
            self.stats.resend_requests_sent += 1
        self.state = SessionState.LOGGED_ON
        self.stats.logons += 1
        log.info(
            "venue: %s: logged on (HeartBtInt %s, reset %s)", self.peer, message.heart_bt_int, reset
        )
        self._venue.session_logged_on(self)

    def _on_logout(self, message: Logout) -> None:
        if self.state is SessionState.LOGGING_OUT:
            self._close("Logout answered")
            return
        log.info("venue: %s: Logout from the initiator: %s", self.peer, message.text)
        self._send(Logout())
        self._close("Logout from the initiator")


def _is_shard_of(comp_id: str, base: str) -> bool:
    """True for ``<base>-K`` with K a positive number: the CompID of an ingest shard."""
    if not comp_id.startswith(base + "-"):
        return False
    k = comp_id[len(base) + 1 :]
    return k.isdigit() and int(k) > 0
