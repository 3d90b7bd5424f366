"""A simulated FIX 4.4 market data venue: an asyncio acceptor that streams a random market.

`SimulatedVenue` is what the ingest connects to when no real venue is configured (the
embedded default), and what tests drive: it speaks enough FIX 4.4 for a QuickFIX
initiator and can be told to misbehave. It is built on asyncio rather than QuickFIX so
it can stream at high rates from one Python process and write arbitrary bytes.

Session layer (FIX 4.4, one session per TCP connection, several connections at once):

* Logon (A): CompIDs checked against the config (SenderCompID = `target_comp_id`,
  TargetCompID = `sender_comp_id`), EncryptMethod 0, HeartBtInt >= 0.
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
* Logout (5) both ways: answered and closed; `stop()` sends one and waits briefly for
  the answer.
* Bytes that do not decode (garbage, broken BodyLength or CheckSum, a missing required
  tag, a bad value) get a session Reject (3) with RefSeqNum(45) (0 when the bytes carry
  no MsgSeqNum), RefTagID(371), SessionRejectReason(373) and Text, and the session stays
  up. Frames are cut from the stream by BodyLength; after garbage the reader
  resynchronises on the next ``8=FIX.4.4<SOH>9=``. A message that framed correctly but
  failed validation consumes its sequence number; a garbled frame does not.
* Application messages other than MarketDataRequest get a BusinessMessageReject (j).

Not covered: encryption, Username/Password checks, session schedules, SendingTime
accuracy checks, message replay on ResendRequest, queueing of messages received after
a gap (they are processed at once), the FIX 4.4 NextExpectedMsgSeqNum(789) logon.

Market data (see `fix_session.venue.market` for the model):

* MarketDataRequest (V) with SubscriptionRequestType 0 (snapshot) or 1 (snapshot and
  incremental updates): one MarketDataSnapshotFullRefresh (W) per known symbol (`depth`
  bids and offers with MDEntryPositionNo(290), plus the last trade as 269=2), then
  MarketDataIncrementalRefresh (X) for the subscribed symbols. One V for many symbols
  or one V per symbol both work; each X carries the MDReqID(262) of its subscription,
  so symbols subscribed together share X messages. Subscribing a symbol again moves it
  to the new MDReqID and sends a fresh W. MDEntryTypes select book entries (0 and/or 1
  give both sides) and trades (2). The venue always publishes its configured depth,
  whatever MarketDepth(264) asks.
* SubscriptionRequestType 2 stops the X entries of the listed symbols.
* Rejected with MarketDataRequestReject (Y): each unknown symbol (281=0, Text naming it;
  the known symbols of the same request are served), MDUpdateType(265)=0 full refresh
  streaming (281=6), no supported MDEntryType (281=8).
* Rate: `rate_ticks_per_s` X entries per second across the subscribed symbols (trades
  included), paced against the loop clock and produced in one batch per wakeup (at
  least 1 ms apart), at most `max_entries_per_message` entries per X (default 20); the
  entries of one market step (a shift's delete and new) always share an X. Symbols
  nobody subscribed to do not move. While any streaming connection holds more than
  `write_high_water` unsent bytes the stream waits (counted in `stats.stream_stalls`)
  instead of buffering without bound: the rate is then the reader's pace. A backlog of
  more than 0.1 s (a blocked loop) is dropped rather than sent as a burst. Market data
  is written as wire text, not through the typed codec (see `fix_session.venue.wire`).
  Measured on the 2-core development machine against a reader in another process:
  200,000 entries/s held exactly (~10,800 X/s); the ceiling is ~530,000 entries/s
  (~27,000 X/s of 20 entries, one core) on uvloop, as ``mdfeed venue`` runs, and
  ~320,000 on the stock asyncio loop.

Test hooks, all on `SimulatedVenue` unless noted:

* ``await start()`` / ``await stop()`` (stop is idempotent; ``async with`` does both).
  Port 0 binds a free port; `port` is the bound port, and a restart after stop binds
  the same port again.
* `sessions` (live connections, `VenueSession`), ``await wait_logged_on(timeout)``.
* `send_raw` writes bytes verbatim; `build_message` and `send_message` frame any fields
  with the session's header and a correct or deliberately wrong BodyLength or CheckSum,
  consuming a real MsgSeqNum by default; `incremental_refresh_fields` lays out an X body
  to break on purpose (a NaN or negative price, a missing tag).
* `pause_stream` / `resume_stream` / `set_rate`; `book(symbol)` is the venue's current
  book of a symbol, to compare with what the ingest rebuilt.
* `stats`: messages, bytes and entries sent, per message type and per symbol, logons,
  ResendRequests and Rejects received, decode errors; `VenueSession.stats` per connection.
* `VenueSession.logout(text)` and `VenueSession.abort()` (drop the TCP connection with no
  Logout) to test reconnects.
* What QuickFIX 1.16 (UseDataDictionary=Y) does with broken input, as the interop test
  shows: a bad CheckSum is dropped and the gap it leaves is resent as a gap fill; a group
  count that does not match gets a Reject (3); MDEntryPx ``NaN`` passes its dictionary
  check and reaches ``fromApp``, so the ingest's own decoding has to catch it.
* Determinism: a non-zero `seed` replays the same market (each symbol's path depends
  only on the seed and the symbol); with seed 0 the venue draws one, kept in `seed`.

``mdfeed venue`` (``mdfeed.cli.venue``) runs the venue until Ctrl-C with a status line
every second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Iterable, Sequence

from fix_session.venue.market import BookSnapshot, Market
from fix_session.venue.session import SessionState, VenueSession, VenueStats
from fix_session.venue.wire import utc_time_only, utc_timestamp
from mdfeed.kernel.config import VenueConfig
from mdfeed.kernel.lifecycle import Service, cancel_and_wait

log = logging.getLogger("fix_session.venue")
#: A backlog older than this is dropped instead of being sent as one burst.
_MAX_BACKLOG_S = 0.1
#: One wakeup produces at most this much of a second's entries.
_MAX_BATCH_S = 0.02
#: Pauses longer than this wait on the wake event instead of a plain sleep.
_WAKEABLE_SLEEP_S = 0.05


class SimulatedVenue(Service):
    """The simulated FIX 4.4 market data venue; see the module docstring.

    ``max_entries_per_message`` caps the entries of one X; ``write_high_water`` is the
    unsent bytes per connection past which the stream waits for the reader.
    """

    def __init__(
        self,
        config: VenueConfig,
        *,
        max_entries_per_message: int = 20,
        write_high_water: int = 4 << 20,
        logon_timeout_s: float = 10.0,
        logout_timeout_s: float = 2.0,
        min_wakeup_s: float = 0.001,
    ) -> None:
        if max_entries_per_message < 2:
            # A level shift is a delete and a new entry that must arrive in one X.
            raise ValueError("max_entries_per_message must be at least 2")
        self.config = config
        #: The seed the market runs on: the config's, or one drawn when that is 0.
        self.seed = config.seed or random.SystemRandom().randrange(1, 1 << 31)
        self.market = Market(
            config.symbols, depth=config.depth, trade_ratio=config.trade_ratio, seed=self.seed
        )
        self.max_entries_per_message = max_entries_per_message
        self.write_high_water = write_high_water
        self.logon_timeout_s = logon_timeout_s
        self.logout_timeout_s = logout_timeout_s
        self._min_wakeup_s = min_wakeup_s
        self._rate = config.rate_ticks_per_s
        self._paused = False
        self._server: asyncio.Server | None = None
        self._port: int | None = None
        self._sessions: list[VenueSession] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._stream_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._logon_event = asyncio.Event()
        self._closed_stats = VenueStats()
        self._seq_store: dict[tuple[str, str], tuple[int, int]] = {}

    # -- life cycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and start accepting; a restart after `stop` binds the same port."""
        if self._server is not None:
            return
        port = self._port if self._port is not None else self.config.port
        self._server = await asyncio.start_server(
            self._on_connect, self.config.host, port, reuse_address=True
        )
        self._port = int(self._server.sockets[0].getsockname()[1])
        self._stream_task = asyncio.create_task(self._stream_loop(), name="venue-stream")
        self._stream_task.add_done_callback(self._stream_ended)
        log.info("venue: listening on %s:%s", self.config.host, self._port)

    async def stop(self) -> None:
        """Log every session out, close the listener and stop streaming; safe to repeat."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        task, self._stream_task = self._stream_task, None
        await cancel_and_wait(task)
        sessions = list(self._sessions)
        if sessions:
            await asyncio.gather(
                *(s.logout("venue shutting down") for s in sessions), return_exceptions=True
            )
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=3.0)
        await server.wait_closed()
        log.info("venue: stopped")

    @property
    def port(self) -> int:
        """The bound port (after `start`)."""
        if self._port is None:
            raise RuntimeError("the venue is not started")
        return self._port

    @property
    def running(self) -> bool:
        """True between `start` and `stop`."""
        return self._server is not None

    @property
    def sessions(self) -> tuple[VenueSession, ...]:
        """The live connections, oldest first."""
        return tuple(self._sessions)

    @property
    def rate(self) -> int:
        """X entries per second the stream is paced at."""
        return self._rate

    @property
    def stats(self) -> VenueStats:
        """A snapshot of the counters of every session, past and present."""
        total = self._closed_stats.copy()
        for session in self._sessions:
            total.add(session.stats)
        return total

    def book(self, symbol: str) -> BookSnapshot:
        """The venue's current book of `symbol` (raises KeyError for an unknown one)."""
        return self.market.books[symbol].snapshot()

    async def wait_logged_on(self, timeout: float = 5.0) -> VenueSession:  # noqa: ASYNC109
        """The newest logged-on session, waiting up to `timeout` seconds for one."""
        async with asyncio.timeout(timeout):
            while True:
                for session in reversed(self._sessions):
                    if session.logged_on:
                        return session
                self._logon_event.clear()
                await self._logon_event.wait()

    # -- stream control ----------------------------------------------------------------

    def pause_stream(self) -> None:
        """Stop sending X until `resume_stream` (sessions and heartbeats carry on)."""
        self._paused = True

    def resume_stream(self) -> None:
        """Resume the X stream at the current rate, without catching up the pause."""
        self._paused = False
        self._wake.set()

    def set_rate(self, entries_per_s: int) -> None:
        """Change the X entries per second from now on."""
        if entries_per_s < 1:
            raise ValueError(f"the rate must be at least 1 entry/s, got {entries_per_s}")
        self._rate = entries_per_s
        self._wake.set()

    # -- raw access for tests ----------------------------------------------------------

    def session(self) -> VenueSession:
        """The newest logged-on session (raises RuntimeError when there is none)."""
        for session in reversed(self._sessions):
            if session.logged_on:
                return session
        raise RuntimeError("no logged-on session")

    def send_raw(self, data: bytes, session: VenueSession | None = None) -> None:
        """Write bytes verbatim to `session` (default: the newest logged-on one)."""
        (session or self.session()).send_raw(data)

    def build_message(
        self,
        msg_type: str,
        fields: Iterable[tuple[int, str]],
        *,
        session: VenueSession | None = None,
        seq: int | None = None,
        consume_seq: bool = True,
        body_length: int | str | None = None,
        checksum: int | str | None = None,
    ) -> bytes:
        """`VenueSession.build_message` on `session` (default: the newest logged-on one)."""
        return (session or self.session()).build_message(
            msg_type,
            fields,
            seq=seq,
            consume_seq=consume_seq,
            body_length=body_length,
            checksum=checksum,
        )

    def send_message(
        self,
        msg_type: str,
        fields: Iterable[tuple[int, str]],
        *,
        session: VenueSession | None = None,
        seq: int | None = None,
        consume_seq: bool = True,
        body_length: int | str | None = None,
        checksum: int | str | None = None,
    ) -> bytes:
        """Build a message as `build_message` does and send it; returns the bytes."""
        return (session or self.session()).send_message(
            msg_type,
            fields,
            seq=seq,
            consume_seq=consume_seq,
            body_length=body_length,
            checksum=checksum,
        )

    # -- internals ---------------------------------------------------------------------

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._server is None:
            writer.transport.abort()
            return
        session = VenueSession(self, reader, writer)
        self._sessions.append(session)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        log.info("venue: connection from %s", session.peer)
        try:
            await session.run()
        finally:
            if task is not None:
                self._tasks.discard(task)

    def _session_logged_on(self, session: VenueSession) -> None:
        del session
        self._logon_event.set()

    def _session_closed(self, session: VenueSession) -> None:
        if session in self._sessions:
            self._sessions.remove(session)
            self._closed_stats.add(session.stats)

    def _save_seq(self, session: VenueSession) -> None:
        key = (session._target, session._sender)
        self._seq_store[key] = (session.next_out_seq, session.next_in_seq)

    def _load_seq(self, sender: str, target: str) -> tuple[int, int]:
        return self._seq_store.get((sender, target), (1, 1))

    def _subscriptions_changed(self) -> None:
        symbols: set[str] = set()
        for session in self._sessions:
            symbols.update(session._subs)
        self.market.set_active(symbols)
        self._wake.set()

    def _streaming_sessions(self) -> list[VenueSession]:
        return [s for s in self._sessions if s._subs and s.state is SessionState.LOGGED_ON]

    async def _stream_loop(self) -> None:
        """Pace X entries at `rate` per second, one batch per wakeup."""
        loop = asyncio.get_running_loop()
        base_t, base_n, base_rate = loop.time(), 0, self._rate
        while True:
            streaming = self._streaming_sessions()
            if self._paused or not streaming:
                self._wake.clear()
                await self._wake.wait()
                base_t, base_n, base_rate = loop.time(), 0, self._rate
                continue
            now = loop.time()
            if base_rate != self._rate:
                base_t, base_n, base_rate = now, 0, self._rate
            if any(s.write_buffer_size > self.write_high_water for s in streaming):
                self._closed_stats.stream_stalls += 1
                await asyncio.sleep(self._min_wakeup_s)
                base_t, base_n = loop.time(), 0
                continue
            rate = base_rate
            due = int((now - base_t) * rate) - base_n
            if due > rate * _MAX_BACKLOG_S:
                # The loop was blocked: forget the backlog rather than burst it out.
                base_t, base_n = now, 0
                due = max(1, int(rate * self._min_wakeup_s))
            if due > 0:
                base_n += self._emit(min(due, max(1, int(rate * _MAX_BATCH_S))), streaming)
            delay = base_t + (base_n + 1) / rate - loop.time()
            if delay > _WAKEABLE_SLEEP_S:
                # A slow rate sleeps long: let pause, resume and set_rate cut it short.
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
            else:
                await asyncio.sleep(max(delay, self._min_wakeup_s) if delay > 0 else 0)

    @staticmethod
    def _stream_ended(task: asyncio.Task[None]) -> None:
        # A bug in the stream must not stop the market without a word.
        if not task.cancelled() and task.exception() is not None:
            log.error("venue: the market data stream stopped", exc_info=task.exception())

    def _emit(self, entries: int, sessions: Sequence[VenueSession]) -> int:
        now = time.time_ns()
        ticks, produced = self.market.generate(entries, utc_time_only(now))
        sending_time = utc_timestamp(now)
        for session in sessions:
            session.send_ticks(ticks, sending_time, self.max_entries_per_message)
        return produced
