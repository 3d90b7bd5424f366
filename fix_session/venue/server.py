"""`SimulatedVenue`: the acceptor that listens, holds the market and paces the stream.

The venue accepts any number of connections and runs a `VenueSession`
(`fix_session.venue.market_data`) on each; it serves those sessions what they need of it
(`MarketDataHost`: the config, the market, the saved sequence numbers, and the calls they
make when they log on, subscribe and close). Its own work is the stream: one loop that
draws entries from the market (`fix_session.venue.market`) and hands the same ticks to
every streaming session.

* Rate: `rate_ticks_per_s` X entries per second across the subscribed symbols (trades
  included), paced against the loop clock and produced in one batch per wakeup (at
  least 1 ms apart), at most `max_entries_per_message` entries per X (default 20).
  Symbols nobody subscribed to do not move. While any streaming connection holds more
  than `write_high_water` unsent bytes the stream waits (counted in
  `stats.stream_stalls`) instead of buffering without bound: the rate is then the
  reader's pace. A backlog of more than 0.1 s (a blocked loop) is dropped rather than
  sent as a burst. Market data is written as wire text, not through the typed codec
  (see `fix_session.venue.wire`). Measured on the 2-core development machine against a
  reader in another process: 200,000 entries/s held exactly (~10,800 X/s); the ceiling
  is ~530,000 entries/s (~27,000 X/s of 20 entries, one core) on uvloop, as
  ``mdfeed venue`` runs, and ~320,000 on the stock asyncio loop.

With ``VenueConfig.stream = "fast"`` the random walk is off and each streaming session
gets a writer of its own instead (`fix_session.venue.fast`): pre-encoded X cycles at the
reader's pace or at ``fast_rate_ticks_per_s``; `stream_idle` says when every writer waits
at a cycle's end.

Test hooks, all on `SimulatedVenue`:

* ``await start()`` / ``await stop()`` (stop is idempotent; ``async with`` does both).
  Port 0 binds a free port; `port` is the bound port, and a restart after stop binds
  the same port again.
* `sessions` (live connections, `VenueSession`), ``await wait_logged_on(timeout)``.
* `send_raw` writes bytes verbatim; `build_message` and `send_message` frame any fields
  with the session's header and a correct or deliberately wrong BodyLength or CheckSum,
  consuming a real MsgSeqNum by default (`fix_session.venue.session`).
* `pause_stream` / `resume_stream` / `set_rate`; `book(symbol)` is the venue's current
  book of a symbol, to compare with what the ingest rebuilt.
* `stats`: messages, bytes and entries sent, per message type and per symbol, logons,
  ResendRequests and Rejects received, decode errors; `VenueSession.stats` per connection
  (`fix_session.venue.stats`).
* Determinism: a non-zero `seed` replays the same market (each symbol's path depends
  only on the seed and the symbol); with seed 0 the venue draws one, kept in `seed`.
  A symbol's reference price depends on the symbol alone, whatever the seed.
* `VenueConfig.book_model` (``price``, ``position``, ``entry_id``) is how the X entries
  key the book's levels and what the W carries (`fix_session.venue.market`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Iterable, Sequence

from fix_session.venue.fast import (
    FastWriter,
    SessionCycle,
    SymbolCycle,
    session_cycle,
    symbol_cycle,
)
from fix_session.venue.market import BookSnapshot, Market
from fix_session.venue.market_data import StreamSubscription, VenueSession
from fix_session.venue.session import AcceptorSession
from fix_session.venue.stats import VenueStats
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
    """The simulated FIX 4.4 market data venue; see this module and `fix_session.venue`.

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
        if config.stream == "fast" and config.book_model == "entry_id":
            # A closed cycle replays its levels again and again: it cannot give each
            # new level an MDEntryID never used before (fix_session.venue.fast).
            raise ValueError("the fast stream speaks the price and position book models only")
        self.market = Market(
            config.symbols,
            depth=config.depth,
            trade_ratio=config.trade_ratio,
            seed=self.seed,
            book_model=config.book_model,
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
        #: The benchmark stream (`fix_session.venue.fast`) instead of the random walk.
        self.fast = config.stream == "fast"
        self._fast_rate = config.fast_rate_ticks_per_s
        self._fast_wake = asyncio.Event()
        self._writers: dict[VenueSession, tuple[FastWriter, asyncio.Task[None]]] = {}
        self._cycle_cache: dict[tuple[StreamSubscription, ...], SessionCycle] = {}
        #: Each symbol's closed cycle of the fast stream (empty in random mode).
        self.symbol_cycles: dict[str, SymbolCycle] = {}
        if self.fast:
            for symbol, book in self.market.books.items():
                cycle = symbol_cycle(book, trade_ratio=config.trade_ratio, seed=self.seed)
                self.symbol_cycles[symbol] = cycle
                # The market stands still: a whole cycle leaves its last trade behind.
                if cycle.last_trade is not None:
                    book.last_trade = cycle.last_trade

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
        if not self.fast:
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
        writers, self._writers = list(self._writers.values()), {}
        for _, writer_task in writers:
            await cancel_and_wait(writer_task)
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
        """X entries per second the stream is paced at (fast stream: its cap, 0 = none)."""
        return self._fast_rate if self.fast else self._rate

    @property
    def paused(self) -> bool:
        """True between `pause_stream` and `resume_stream`."""
        return self._paused

    @property
    def fast_rate(self) -> int:
        """The fast stream's cap in entries per second; 0: the reader's pace."""
        return self._fast_rate

    @property
    def stream_idle(self) -> bool:
        """Fast stream: True when every session's writer waits at a cycle boundary."""
        return all(writer.idle or task.done() for writer, task in self._writers.values())

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

    async def wait_logged_on(self, timeout: float = 5.0) -> VenueSession:  # noqa: ASYNC109 - the caller's deadline
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
        self._fast_wake.set()

    def set_rate(self, entries_per_s: int) -> None:
        """Change the X entries per second from now on.

        On the fast stream this is its cap, and 0 lifts the cap (the reader's pace).
        """
        if entries_per_s < (0 if self.fast else 1):
            raise ValueError(f"the rate must be at least 1 entry/s, got {entries_per_s}")
        if self.fast:
            self._fast_rate = entries_per_s
        else:
            self._rate = entries_per_s
        self._wake.set()
        self._fast_wake.set()

    # -- what its sessions call (MarketDataHost) ---------------------------------------

    def session_logged_on(self, session: AcceptorSession) -> None:
        """Wake `wait_logged_on`."""
        del session
        self._logon_event.set()

    def session_closed(self, session: AcceptorSession) -> None:
        """Forget a closed session; its counters stay in `stats`."""
        if isinstance(session, VenueSession) and session in self._sessions:
            self._sessions.remove(session)
            self._closed_stats.add(session.stats)

    def save_sequence_numbers(self, comp_ids: tuple[str, str], next_out: int, next_in: int) -> None:
        """Keep a session's next MsgSeqNums for the life of the venue."""
        self._seq_store[comp_ids] = (next_out, next_in)

    def load_sequence_numbers(self, comp_ids: tuple[str, str]) -> tuple[int, int]:
        """The MsgSeqNums saved for `comp_ids`, or (1, 1)."""
        return self._seq_store.get(comp_ids, (1, 1))

    def subscriptions_changed(self) -> None:
        """Move only the symbols some session streams, and wake the stream."""
        symbols: set[str] = set()
        for session in self._sessions:
            symbols.update(session.subscriptions)
        self.market.set_active(symbols)
        self._wake.set()
        self._fast_wake.set()
        if self.fast and self._server is not None:
            for session in self._sessions:
                running = self._writers.get(session)
                if session.streaming and (running is None or running[1].done()):
                    self._start_writer(session)

    # -- what the fast writers call (fix_session.venue.fast.FastHost) ------------------

    def session_cycle(self, subscriptions: Sequence[StreamSubscription]) -> SessionCycle:
        """The packed X cycle of a session streaming `subscriptions` (cached)."""
        key = tuple(subscriptions)
        cycle = self._cycle_cache.get(key)
        if cycle is None:
            if len(self._cycle_cache) > 64:
                self._cycle_cache.clear()
            cycle = self._cycle_cache[key] = session_cycle(
                self.symbol_cycles,
                subscriptions,
                max_entries=self.max_entries_per_message,
                seed=self.seed,
            )
        return cycle

    async def wait_wake(self) -> None:
        """Wait for a resume, a rate or a subscription change."""
        self._fast_wake.clear()
        await self._fast_wake.wait()

    def _start_writer(self, session: VenueSession) -> None:
        writer = FastWriter(self, session)
        # drain() waits above this: a bounded buffer, and heartbeats not far behind.
        session.set_write_high_water(min(self.write_high_water, 1 << 20))
        task = asyncio.create_task(writer.run(), name=f"venue-fast-{session.peer}")
        self._writers[session] = (writer, task)

        def done(t: asyncio.Task[None]) -> None:
            running = self._writers.get(session)
            if running is not None and running[1] is t:
                del self._writers[session]
            self._stream_ended(t)

        task.add_done_callback(done)

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

    def _streaming_sessions(self) -> list[VenueSession]:
        return [s for s in self._sessions if s.streaming]

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
