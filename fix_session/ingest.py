"""The market data session: a QuickFIX initiator whose quotes become sequenced Ticks on the bus.

Flow: QuickFIX owns the TCP session (logon, heartbeats, sequence numbers, resends, the
schedule, reconnects). Its Application is C++ (`fix_session.quickfix_feed`): for each
application message the QuickFIX thread serializes it, stamps the ingest time and copies
it into the bounded inbox of the native core (`fix_session.tick_core`), without the GIL
and without a call into Python; logon and logout come to Python as events. The asyncio
loop drains the inbox in slices: the core reads each raw W or X straight into its books
and writes the ticks encoded, with no object per entry; a message it leaves (a Y, a
malformed or unusual one) is read by the Python decoder into
`fix_spec.md_columns.MdMessage` and applied to the same books, or rejected and counted,
before the core goes on. At the end of the slice each symbol's ticks go to the bus
producer as one record keyed by the symbol (`mdfeed.kernel.tick_records`). Requests
(MarketDataRequest) are built and sent from Python through the `quickfix` bindings, which
share the one QuickFIX library and its session registry with the feed.

Choices, and why:

- Store: a memory store with ``ResetOnLogon=Y`` (and reset on logout and disconnect), not
  a file store. Market data is not worth replaying: after any reconnect the session starts
  at sequence 1 on both sides, re-subscribes and takes a fresh snapshot, which is the only
  way downstream books become consistent again anyway. Resuming sequence numbers from a
  file would make the venue resend stale quotes. Tick sequence numbers (per symbol) are
  mdfeed's own and keep counting across reconnects.
- ``UseDataDictionary=Y``: QuickFIX needs the dictionary to parse repeating groups, but its
  field validation is off (``Validate*=N``): the codec validates, and counts what it rejects.
- Grouped subscriptions: one MarketDataRequest for up to ``symbols_per_request`` symbols
  (MDReqIDs unique per request, `fix_session.subscriptions`), so the venue can pack
  several symbols into one X: per-message cost is what limits the ingest. A reject (Y) of
  a one-symbol request marks that symbol unavailable; a reject of a grouped request
  (the venue rejects each unknown symbol of it with the group's MDReqID and serves the
  rest) is followed, `REJECT_RETRY_DELAY_S` later, by a request of its own for each
  symbol of that group with no snapshot yet, whose answer marks exactly the unknown
  ones; the symbols that streamed keep their group. A resync of stale symbols stops them
  (263=2) and subscribes them again grouped; a logon subscribes everything grouped.
- Sharding (``fix_session.shard = "K/N"``, ``mdfeed ingest --shard K/N``): this session
  subscribes only the symbols with ``zlib.crc32(symbol) % N == K - 1`` and logs on as
  ``<sender_comp_id>-K`` (unless ``shard_comp_id_suffix`` is false), so N processes, each
  its own FIX session, publish every symbol exactly once into the same topic, each
  symbol's sequence intact.
- Bus outage: see mdfeed.kernel.bus for the producer's bound. After it dropped ticks, increments
  are held back per symbol until that symbol's fresh snapshot is published (the snapshot
  is requested when the bus resumes), so consumers see a gap, then a snapshot tick.
- Inbox overflow: the QuickFIX thread waits (it does not drop) while the inbox holds
  `inbox_max_messages`; QuickFIX then stops reading the socket and TCP pushes back on the
  venue. Dropping here would silently corrupt books. The wait is on a condition the loop
  signals once the inbox is down to half.
- Wakeups: the QuickFIX thread wakes the loop (an eventfd) for the first message after a
  drain; under load (a slice found several messages) the next slice runs `COALESCE_S`
  later instead, so the loop wakes about a thousand times a second, not once per message.
- Overload costs latency, never liveness: the loop processes the inbox in slices of at
  most `DRAIN_SLICE_S` (and `_SLICE_MESSAGES`), so timers, status, metrics and health are
  answered between slices however far behind it is. `stop()` releases a waiting QuickFIX
  thread at once, stops QuickFIX, then drains what the inbox holds for at most
  `STOP_DRAIN_S` and drops the rest (counted in `IngestStats.dropped_on_stop`): a stop
  ends within about 2 s whatever the inbox holds.

Counters in `IngestStats` say what was rejected where: QuickFIX session-level rejects we
sent (35=3), resend requests we sent after a gap (a garbled message from the venue shows
up as one), codec decode errors, and messages the normalizer refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import quickfix

from fix_spec.codec import FixCodecError
from fix_spec.md_columns import MdMessage
from fix_spec.md_decoder import MdDecoder
from fix_spec.md_from_typed import columns_from_typed
from mdfeed.kernel.bus import BusProducer
from mdfeed.kernel.clock import wall_ns
from mdfeed.kernel.config import FixSessionConfig, parse_shard
from mdfeed.kernel.metrics import Histogram

from .normalizer import BookNormalizer, InvalidEntryError
from .subscriptions import Request, Subscriptions, shard_symbols

if TYPE_CHECKING:
    from .quickfix_feed import QuickfixFeed

log = logging.getLogger("mdfeed.fix_session")

_SOH = "\x01"
#: Messages per turn of the loop: a slice of the inbox is decoded and published, then the
#: loop runs everything else that waits before the next slice.
_SLICE_MESSAGES = 2000
#: Seconds from a reject of a grouped request to the per-symbol retry of its symbols with
#: no snapshot yet: the venue answers a V symbol by symbol, so the snapshots of the good
#: symbols listed after the rejected one are usually in by then (a late one only costs a
#: redundant request and a fresh snapshot, never a wrong mark).
REJECT_RETRY_DELAY_S = 0.2
#: The most one slice of the message loop runs before it yields to the event loop.
DRAIN_SLICE_S = 0.02
_SLICE_NS = int(DRAIN_SLICE_S * 1e9)
#: Wakeup coalescing: after a slice of at least COALESCE_MIN_MESSAGES messages the next
#: slice runs COALESCE_S later instead of at the next message. Each wakeup costs a thread
#: switch on the shared core, a pass of the loop and a produce request, more than the
#: message's own work in the core; under load they came one or two messages apart
#: (measured: 22.6K against 28-33K FIX msgs/s with coalescing). A message after a quiet
#: spell still wakes the loop at once.
COALESCE_S = 0.001
COALESCE_MIN_MESSAGES = 4
#: How long `stop()` goes on processing the inbox before it drops what is left.
STOP_DRAIN_S = 0.5
#: How long `stop()` waits for QuickFIX's threads to end.
STOP_QUICKFIX_S = 1.0


@dataclass(slots=True)
class IngestStats:
    """What the session has seen and done; read from the event loop."""

    logons: int = 0
    logouts: int = 0
    messages_in: int = 0
    decode_errors: int = 0
    rejected_messages: int = 0
    session_rejects_sent: int = 0
    resend_requests_sent: int = 0
    requests_sent: int = 0
    #: Rejects (Y) of grouped requests, answered by per-symbol retries.
    grouped_rejects: int = 0
    #: Symbols requested again alone after their group's reject.
    symbols_retried: int = 0
    #: Rejects whose MDReqID names no live request of this session (logged, ignored).
    stray_rejects: int = 0
    ticks_out: int = 0
    #: Bus records the ticks went out in (one per symbol per slice of the inbox).
    records_out: int = 0
    #: Increments held back after the bus dropped ticks, until the symbol's snapshot.
    ticks_suppressed: int = 0
    inbox_waits: int = 0
    #: Messages left in the inbox when `stop()` gave up draining, or received after it.
    dropped_on_stop: int = 0
    #: Time spent per stage, in nanoseconds: core (the native decode, book and encode of
    #: the messages it takes, the slice loop included), decode and normalize (the Python
    #: path of the messages the core leaves), produce.
    stage_ns: dict[str, int] = field(
        default_factory=lambda: {"core": 0, "decode": 0, "normalize": 0, "produce": 0}
    )
    last_error: str = ""


def dictionary_path(name: str) -> Path:
    """The QuickFIX data dictionary file for a FixSessionConfig.dictionary name."""
    base = resources.files("fix_spec")
    if name == "venue44":
        return Path(str(base / "venue44" / "dictionary.xml"))
    return Path(str(base / "dictionaries" / "FIX44.xml"))


def codec_module(name: str) -> ModuleType:
    """The generated fix_spec package for a FixSessionConfig.dictionary name."""
    if name == "venue44":
        from fix_spec import venue44

        return venue44
    from fix_spec import fix44

    return fix44


def md_fast_decoder(name: str) -> MdDecoder:
    """The market data decoder of a dictionary, CheckSum not summed (QuickFIX verified it)."""
    return MdDecoder(codec_module(name).md_layout.LAYOUT, verify_checksum=False)


def md_decoder(name: str) -> Callable[[bytes, MdMessage], bool]:
    """The tick path's decoder for a dictionary: raw FIX -> MdMessage; False when the
    message is valid but not market data (W, X, Y); FixCodecError when it is not valid.

    `fix_spec.md_decoder.MdDecoder` reads W/X/Y without an object per entry; the rare
    shapes it leaves to the typed codec (a nested group in an entry, a DATA field) are
    decoded by the codec and read into the same columns. The CheckSum is not summed again:
    QuickFIX has verified it, and `toString()` writes the message anew.
    """
    module = codec_module(name)
    codec = module.CODEC
    fast = md_fast_decoder(name).decode

    def decode(data: bytes, out: MdMessage) -> bool:
        if fast(data, out):
            return True
        message = codec.decode(data)
        if message.MSG_TYPE not in ("W", "X", "Y"):
            return False
        columns_from_typed(message, out)
        return True

    return decode


def quickfix_settings(config: FixSessionConfig, log_dir: Path) -> str:
    """The QuickFIX settings file text for `config`."""
    options = {
        "ConnectionType": "initiator",
        "BeginString": "FIX.4.4",
        "SenderCompID": config.sender_comp_id,
        "TargetCompID": config.target_comp_id,
        "SocketConnectHost": config.host,
        "SocketConnectPort": str(config.port),
        "HeartBtInt": str(config.heartbeat_interval_s),
        "ReconnectInterval": str(config.reconnect_interval_s),
        "StartTime": config.start_time,
        "EndTime": config.end_time,
        "UseDataDictionary": "Y",
        "DataDictionary": str(dictionary_path(config.dictionary)),
        "ValidateFieldsOutOfOrder": "N",
        "ValidateFieldsHaveValues": "N",
        "ValidateUserDefinedFields": "N",
        "AllowUnknownMsgFields": "Y",
        "ResetOnLogon": "Y",
        "ResetOnLogout": "Y",
        "ResetOnDisconnect": "Y",
        "PersistMessages": "N",
        "SocketNodelay": "Y",
        "FileLogPath": str(log_dir),
        "ScreenLogShowIncoming": "N",
        "ScreenLogShowOutgoing": "N",
        "ScreenLogShowEvents": "N",
    }
    lines = ["[DEFAULT]"]
    lines += [f"{k}={v}" for k, v in options.items() if k not in _SESSION_KEYS]
    lines.append("[SESSION]")
    lines += [f"{k}={v}" for k, v in options.items() if k in _SESSION_KEYS]
    return "\n".join(lines) + "\n"


_SESSION_KEYS = {
    "BeginString",
    "SenderCompID",
    "TargetCompID",
    "SocketConnectHost",
    "SocketConnectPort",
    "HeartBtInt",
}


def quickfix_feed_type() -> type[QuickfixFeed]:
    """fix_session.quickfix_feed, loaded. It is compiled against QuickFIX's headers and
    takes QuickFIX's C++ symbols from the `quickfix` package's own extension, which Python
    loaded privately: it is made global first, so the two share one QuickFIX (one session
    registry, which `quickfix.Session.sendToTarget` looks sessions up in)."""
    ctypes.CDLL(quickfix._quickfix.__file__, mode=os.RTLD_GLOBAL | os.RTLD_NOLOAD)
    from .quickfix_feed import QuickfixFeed

    return QuickfixFeed


class FixIngest:
    """A QuickFIX market data session publishing sequenced Ticks to a bus producer.

    Async context manager: `start()` creates the initiator inside the running loop and
    returns at once (QuickFIX connects and reconnects in the background); `stop()` logs out
    and is safe to call twice.
    """

    def __init__(
        self,
        config: FixSessionConfig,
        *,
        symbols: Sequence[str],
        producer: BusProducer,
        topic: str,
        inbox_max_messages: int = 50_000,
    ) -> None:
        if not symbols:
            raise ValueError("no symbols to subscribe to")
        shard = parse_shard(config.shard)
        if shard is not None:
            k, n = shard
            mine = shard_symbols(symbols, k, n)
            if not mine:
                raise ValueError(f"shard {k}/{n} of these {len(symbols)} symbols has none")
            symbols = mine
            if config.shard_comp_id_suffix:
                config = dataclasses.replace(config, sender_comp_id=f"{config.sender_comp_id}-{k}")
        #: The session's config; when sharded, with the shard's SenderCompID.
        self.config = config
        #: The symbols this session subscribes to (when sharded, its shard's).
        self.symbols = tuple(symbols)
        self.producer = producer
        self.topic = topic
        self.normalizer = BookNormalizer(
            symbols=self.symbols,
            decoder=md_fast_decoder(config.dictionary),
            book_model=config.book_model,
            capacity=config.market_depth + config.book_margin,
            locked_ok=config.locked_book_ok,
            depth=config.publish_depth,
        )
        self._stats = IngestStats()
        #: Seconds from a FIX message's arrival (QuickFIX callback) to its ticks handed to
        #: the producer, once per message that passed decoding and normalizing.
        self.latency = Histogram()
        self._md_decode = md_decoder(config.dictionary)
        self._md = MdMessage()
        self._arrivals: list[int] = []
        #: The inbox the QuickFIX thread copies raw messages into, in the native core, and
        #: the eventfd that wakes the loop for them.
        self._wakeup_fd = self.normalizer.open_inbox(inbox_max_messages)
        #: The core's drain (a seam for tests that slow the ingest down).
        self._drain_core = self.normalizer.drain
        self._loop: asyncio.AbstractEventLoop | None = None
        self._feed: QuickfixFeed | None = None
        self._reading = False
        self._session_id: Any = None
        self._logged_on = asyncio.Event()
        self.subscriptions = Subscriptions(config.symbols_per_request)
        self._retry_pending: set[str] = set()
        self._resyncing: set[str] = set()
        self._stopped = False
        self._dropped_seen = 0

    async def __aenter__(self) -> FixIngest:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Create and start the QuickFIX initiator; connecting happens in the background."""
        self._loop = loop = asyncio.get_running_loop()
        feed_type = quickfix_feed_type()
        self._feed = feed_type(
            str(self._write_settings()),
            self.normalizer.core,
            self._on_feed_event,
            self.config.username,
            self.config.password,
            self.config.log_messages,
        )
        loop.add_reader(self._wakeup_fd, self._drain)
        self._reading = True
        self._feed.start()
        log.info(
            "FIX session %s->%s connecting to %s:%d",
            self.config.sender_comp_id,
            self.config.target_comp_id,
            self.config.host,
            self.config.port,
        )

    def _write_settings(self) -> Path:
        # QuickFIX reads its settings from a file; it also tells an operator what ran.
        log_dir = Path(self.config.log_dir).absolute()
        log_dir.mkdir(parents=True, exist_ok=True)
        # One file per shard: several shard processes may share a log directory.
        name = f"quickfix-{self.config.sender_comp_id}.cfg" if self.config.shard else "quickfix.cfg"
        settings_file = log_dir / name
        settings_file.write_text(quickfix_settings(self.config, log_dir), encoding="utf-8")
        return settings_file

    async def stop(self) -> None:
        """Stop QuickFIX's threads, process what the inbox holds for at most `STOP_DRAIN_S`
        and drop the rest; ends within about 2 s whatever the inbox holds. Safe twice."""
        if self._stopped:
            return
        self._stopped = True
        self.normalizer.stop_inbox()  # a QuickFIX thread waiting for room returns at once
        feed, self._feed = self._feed, None
        if feed is not None:
            await self._stop_quickfix(feed)
        deadline = time.monotonic() + STOP_DRAIN_S
        while self.normalizer.inbox_held and time.monotonic() < deadline:
            self._drain()
            await asyncio.sleep(0)
        left = self.normalizer.clear_inbox()
        if left:
            log.warning("stopping: dropped %d FIX messages still in the inbox", left)
        if self._reading and self._loop is not None:
            self._loop.remove_reader(self._wakeup_fd)
            self._reading = False

    async def _stop_quickfix(self, feed: QuickfixFeed) -> None:
        # Its own daemon thread, not the loop's executor: asyncio.run waits for executor
        # threads at exit, so a QuickFIX stop that hangs would keep the process alive.
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def stop_initiator() -> None:
            try:
                feed.stop(True)
            finally:
                with contextlib.suppress(RuntimeError):  # the loop is closed
                    loop.call_soon_threadsafe(_resolve, done)

        threading.Thread(target=stop_initiator, name="quickfix-stop", daemon=True).start()
        try:
            await asyncio.wait_for(asyncio.shield(done), STOP_QUICKFIX_S)
        except TimeoutError:
            log.warning("QuickFIX did not stop within %.1f s; not waiting for it", STOP_QUICKFIX_S)

    async def wait_logged_on(self, timeout_s: float) -> None:
        """Wait until the session is logged on; TimeoutError otherwise."""
        async with asyncio.timeout(timeout_s):
            await self._logged_on.wait()

    @property
    def logged_on(self) -> bool:
        return self._logged_on.is_set()

    @property
    def stats(self) -> IngestStats:
        """The counters now, including those the QuickFIX thread and the core keep (also
        brought up to date after every slice)."""
        self._refresh_counters()
        return self._stats

    def _refresh_counters(self) -> None:
        stats = self._stats
        stats.ticks_suppressed = self.normalizer.stats.ticks_suppressed
        _, stats.inbox_waits, stats.dropped_on_stop, _ = self.normalizer.inbox
        if self._feed is not None:
            stats.session_rejects_sent, stats.resend_requests_sent = self._feed.counters

    # -- QuickFIX thread side ----------------------------------------------------

    def _on_feed_event(self, event: str, begin: str, sender: str, target: str) -> None:
        """A logon or logout, from the QuickFIX thread (with the GIL)."""
        if self._loop is None:
            return
        session_id = quickfix.SessionID(begin, sender, target)
        with contextlib.suppress(RuntimeError):  # the loop is closing
            self._loop.call_soon_threadsafe(self._session_event, event, session_id)

    # -- event loop side ---------------------------------------------------------

    def _session_event(self, event: str, session_id: Any) -> None:
        if event == "logon":
            self._stats.logons += 1
            self._session_id = session_id
            self._logged_on.set()
            log.info("FIX session logged on; subscribing to %d symbols", len(self.symbols))
            self._resyncing.clear()
            self._retry_pending.clear()
            self.subscriptions.new_session()
            self._send_requests(self.subscriptions.subscribe(self.symbols), "1")
        else:
            self._stats.logouts += 1
            self._logged_on.clear()
            log.warning("FIX session logged out; QuickFIX reconnects")

    def resync(self, symbols: Sequence[str] | None = None) -> None:
        """Take a fresh snapshot of `symbols` (all by default): stop them (263=2), then
        subscribe them again, grouped as at logon."""
        if self._stopped or not self.logged_on:
            return
        todo = [s for s in symbols or self.symbols if s not in self._resyncing]
        if not todo:
            return
        self._resyncing.update(todo)
        subs = self.subscriptions
        self._send_requests(subs.unsubscribe(todo), "2")
        self._send_requests(subs.subscribe(todo), "1")

    def _send_requests(self, requests: Sequence[Request], subscription_type: str) -> None:
        for request in requests:
            self._send_request(request, subscription_type)

    def _send_request(self, request: Request, subscription_type: str) -> None:
        message = quickfix.Message()
        message.getHeader().setField(35, "V")
        message.setField(262, request.md_req_id)
        message.setField(263, subscription_type)
        message.setField(264, str(self.config.market_depth))
        message.setField(265, "1")
        for entry_type in ("0", "1", "2"):
            group = quickfix.Group(267, 269)
            group.setField(269, entry_type)
            message.addGroup(group)
        for symbol in request.symbols:
            group = quickfix.Group(146, 55)
            group.setField(55, symbol)
            message.addGroup(group)
        if self._session_id is not None and quickfix.Session.sendToTarget(
            message, self._session_id
        ):
            self._stats.requests_sent += 1

    def _drain(self) -> None:
        """Process what the QuickFIX thread queued, in slices that keep the loop responsive.

        The native core applies the inbox's W and X messages in C (decode, book, encode:
        `BookNormalizer.drain`) and stops at a message it leaves (a Y, a malformed or
        unusual one), which the Python path takes before the core goes on, so the order of
        messages holds. At the end of the slice each symbol's ticks go to the producer as
        one record (`mdfeed.kernel.tick_records`), so the Kafka clients' cost is per
        symbol and slice, not per tick.
        """
        stats = self._stats
        drain = self._drain_core
        arrivals = self._arrivals
        clock = time.perf_counter_ns
        start = clock()
        deadline = start + _SLICE_NS
        taken = 0
        slow_ns = 0
        while taken < _SLICE_MESSAGES:
            left_ns = deadline - clock()
            if left_ns <= 0:
                break
            count, snapshots, applied, fallback, fallback_ns = drain(
                _SLICE_MESSAGES - taken, left_ns
            )
            taken += count
            for symbol in snapshots:
                self._on_snapshot(symbol)
            arrivals += applied
            if fallback is None:
                break
            t1 = clock()
            self._slow_path(fallback, fallback_ns)  # times itself as decode and normalize
            slow_ns += clock() - t1
        stats.messages_in += taken
        stats.stage_ns["core"] += clock() - start - slow_ns
        if self.normalizer.pending:
            t2 = clock()
            self._publish()
            stats.stage_ns["produce"] += clock() - t2
        if arrivals:
            observe = self.latency.observe
            now = wall_ns()  # the clock the core stamps arrivals with (CLOCK_REALTIME)
            for ingest_ns in arrivals:
                observe((now - ingest_ns) * 1e-9)
            arrivals.clear()
        self._check_drops()
        self._refresh_counters()
        hold = taken >= COALESCE_MIN_MESSAGES and not self._stopped
        if self._loop is not None and not self._stopped:
            # More waiting: go on at the next turn of the loop. A slice of several messages
            # (they arrive faster than the loop wakes for them): gather the next ones for
            # COALESCE_S. Otherwise the next message wakes the loop.
            if self.normalizer.settle(hold):
                self._loop.call_soon(self._drain)
            elif hold:
                self._loop.call_later(COALESCE_S, self._drain)
        faults = self.normalizer.take_faults()
        for symbol, reason in faults:
            log.warning(
                "%s: book fault %s (book model %s): its ticks are flagged book_invalid "
                "until a fresh snapshot, which is requested",
                symbol,
                reason,
                self.config.book_model,
            )
        stale = self.normalizer.stale - self._resyncing
        if stale:
            self.resync(sorted(stale))

    def _slow_path(self, raw: bytes, ingest_ns: int) -> None:
        """A message the native core left: the Python decoder, then `apply` (both raise the
        precise error of a malformed message or entry, which is counted and logged)."""
        stats = self._stats
        md = self._md
        clock = time.perf_counter_ns
        t0 = clock()
        try:
            is_md = self._md_decode(raw, md)
        except FixCodecError as exc:
            stats.decode_errors += 1
            stats.last_error = f"decode: {exc}"
            log.warning("rejected FIX message: %s", exc)
            return
        finally:
            stats.stage_ns["decode"] += clock() - t0
        if not is_md:
            return  # other application messages carry no market data
        msg_type = md.msg_type
        if msg_type == "Y":
            self._on_reject(md.md_req_id, md.text, md.rej_reason)
            return
        t1 = clock()
        try:
            self.normalizer.apply(md, ingest_ns)
        except InvalidEntryError as exc:
            stats.rejected_messages += 1
            stats.last_error = f"normalize: {exc}"
            log.warning("rejected market data: %s", exc)
            return
        finally:
            stats.stage_ns["normalize"] += clock() - t1
        if msg_type == "W":
            self._on_snapshot(md.symbol)
        self._arrivals.append(ingest_ns)

    def _publish(self) -> None:
        """Hand the slice's ticks to the producer: one record per symbol, ticks in order."""
        stats = self._stats
        stats.ticks_out += self.normalizer.pending
        records = self.normalizer.flush()
        send, topic = self.producer.send, self.topic
        for key, value in records:
            send(topic, key, value)
        stats.records_out += len(records)

    def _check_drops(self) -> None:
        dropped = self.producer.stats.dropped
        if dropped != self._dropped_seen:
            # The bus lost ticks: until each symbol's fresh snapshot (requested when the bus
            # resumes) goes out, its increments are held back, so a consumer sees the gap
            # followed by a snapshot tick, never increments on a book it cannot have.
            self._dropped_seen = dropped
            self.normalizer.hold_back()

    # -- subscription answers (called per W and Y by the message loop) -------------------

    def _on_snapshot(self, symbol: str) -> None:
        """A snapshot (W) of `symbol` was applied: its resync is over, it is known good."""
        self._resyncing.discard(symbol)
        self.subscriptions.snapshot(symbol)

    def _on_reject(self, md_req_id: str, text: str, reason: str) -> None:
        """A MarketDataRequestReject (Y): MDReqID(262), Text(58), MDReqRejReason(281).

        A one-symbol request's reject marks its symbol unavailable; a grouped request's
        reject schedules the per-symbol retry of its symbols with no snapshot yet."""
        subs = self.subscriptions
        why = text or (f"rejected (MDReqRejReason {reason})" if reason else "rejected")
        if subs.is_single(md_req_id):
            symbols = subs.rejected_alone(md_req_id)
            for symbol in symbols:
                self._resyncing.discard(symbol)
            if symbols:
                self.normalizer.on_reject(symbols, why)
                log.warning("venue rejected %s: %s", ", ".join(symbols), why)
                return
        elif subs.symbols_of(md_req_id):
            self._stats.grouped_rejects += 1
            log.info("venue rejected part of request %s (%s); retrying alone", md_req_id, why)
            if md_req_id not in self._retry_pending and self._loop is not None:
                self._retry_pending.add(md_req_id)
                self._loop.call_later(REJECT_RETRY_DELAY_S, self._retry_alone, md_req_id)
            return
        self._stats.stray_rejects += 1
        log.warning("venue rejected request %r, not a live one: %s", md_req_id, why)

    def _retry_alone(self, md_req_id: str) -> None:
        if md_req_id not in self._retry_pending:
            return  # a new session since: everything was requested again
        self._retry_pending.discard(md_req_id)
        if self._stopped or not self.logged_on:
            return
        subs = self.subscriptions
        for symbol in subs.retry_alone(md_req_id):
            self._stats.symbols_retried += 1
            self._send_requests(subs.subscribe([symbol]), "1")


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
