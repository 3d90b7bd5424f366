"""Market data on a venue session: MarketDataRequest (V), and the W, X and Y it sends.

`VenueSession` is the session the simulated venue runs on each connection: the session
layer of `fix_session.venue.session` with the market data application on top. It keeps
the session's subscriptions, answers V, and writes the X entries its venue's stream loop
hands it (`send_ticks`). What it needs of its venue beyond the session layer's needs is
`MarketDataHost`: the market and a call when its subscriptions change. The market itself
is `fix_session.venue.market`; the pacing of the stream is the venue's
(`fix_session.venue.server`).

* MarketDataRequest (V) with SubscriptionRequestType 0 (snapshot) or 1 (snapshot and
  incremental updates): one MarketDataSnapshotFullRefresh (W) per known symbol (`depth`
  bids and offers with MDEntryPositionNo(290), or MDEntryID(278) in the ``entry_id``
  book model, plus the last trade as 269=2), then
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
* At most `max_entries_per_message` entries per X (the venue's; default 20); the entries
  of one market step (a shift's delete and new) always share an X. Market data is
  written as wire text, not through the typed codec (see `fix_session.venue.wire`).

Test hooks: `incremental_refresh_fields` lays out an X body to break on purpose (a NaN or
negative price, a missing tag) for `SimulatedVenue.send_message`; `subscriptions` is what
a session streams, and `stats.per_symbol` what it sent of each symbol.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from fix_session.venue.market import Market, Tick
from fix_session.venue.session import AcceptorSession, SessionHost, SessionState
from fix_session.venue.stats import SymbolStats
from fix_session.venue.wire import SOH, clean_text, frame, utc_time_only, utc_timestamp
from fix_spec.fix44.enums import (
    MDEntryType,
    MDReqRejReason,
    MDUpdateType,
    SubscriptionRequestType,
)
from fix_spec.fix44.header import Message
from fix_spec.fix44.messages import MarketDataRequest, MarketDataRequestReject


class MarketDataHost(SessionHost, Protocol):
    """What a market data session needs from its venue, besides a session's needs."""

    @property
    def market(self) -> Market:
        """The books the session snapshots (W) and the symbols it accepts."""
        ...

    def subscriptions_changed(self) -> None:
        """A session subscribed, unsubscribed or closed with subscriptions."""
        ...


@dataclass(slots=True)
class _Subscription:
    md_req_id: str
    book: bool
    trades: bool


@dataclass(frozen=True, slots=True)
class StreamSubscription:
    """One streaming symbol of a session: its MDReqID and the entry kinds it asked for."""

    symbol: str
    md_req_id: str
    book: bool
    trades: bool


def incremental_refresh_fields(
    md_req_id: str | None, entries: Iterable[Sequence[tuple[int, str]]]
) -> list[tuple[int, str]]:
    """The body fields of an X: MDReqID(262), NoMDEntries(268) = the count, the entries.

    Entries are written as given, so a test can leave a tag out or put ``NaN`` or
    ``-1.00`` in MDEntryPx(270): ``venue.send_message("X", incremental_refresh_fields(
    "req-1", [[(279, "0"), (269, "0"), (55, "AAPL"), (270, "NaN"), (271, "100")]]))``.
    """
    items = [list(e) for e in entries]
    out: list[tuple[int, str]] = [] if md_req_id is None else [(262, md_req_id)]
    out.append((268, str(len(items))))
    for entry in items:
        out.extend(entry)
    return out


class VenueSession(AcceptorSession):
    """A venue session: the FIX session of one connection, serving market data.

    Read its attributes freely; the methods documented as test hooks may be called from
    tests on the venue's event loop.
    """

    _venue: MarketDataHost

    def __init__(
        self,
        venue: MarketDataHost,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        super().__init__(venue, reader, writer)
        self._subs: dict[str, _Subscription] = {}
        self._subs_version = 0
        #: Fast stream (`fix_session.venue.fast`): the symbols of the cycle in flight,
        #: whose snapshots wait for its end so each W matches the book the X left.
        self.in_cycle: frozenset[str] = frozenset()
        self._deferred: list[tuple[str, str]] = []
        for symbol in venue.config.symbols:
            self.stats.per_symbol[symbol] = SymbolStats()

    # -- public view -------------------------------------------------------------------

    @property
    def subscriptions(self) -> dict[str, str]:
        """Streaming symbols and the MDReqID each one is sent under (a copy)."""
        return {symbol: sub.md_req_id for symbol, sub in self._subs.items()}

    @property
    def streaming(self) -> bool:
        """True while the session is logged on with at least one subscription."""
        return bool(self._subs) and self.state is SessionState.LOGGED_ON

    # -- what the fast stream uses (fix_session.venue.fast.FastSession) -----------------

    @property
    def subscription_version(self) -> int:
        """Changes whenever the subscriptions change."""
        return self._subs_version

    @property
    def header_text(self) -> str:
        """``49=...<SOH>56=...<SOH>``: the CompIDs every message of this session carries."""
        return self._header_text

    @property
    def symbol_stats(self) -> dict[str, SymbolStats]:
        """The per-symbol counters of this session (live, not a copy)."""
        return self.stats.per_symbol

    def stream_subscriptions(self) -> list[StreamSubscription]:
        """The streaming symbols, in subscription order."""
        return [
            StreamSubscription(symbol, sub.md_req_id, sub.book, sub.trades)
            for symbol, sub in self._subs.items()
        ]

    def take_deferred_snapshots(self) -> list[tuple[str, str]]:
        """(symbol, MDReqID) of the snapshots held back for the end of a cycle; clears them."""
        out, self._deferred = self._deferred, []
        return out

    def send_snapshot(self, symbol: str, md_req_id: str) -> None:
        """Write the W of `symbol` under `md_req_id` now."""
        if self.state is SessionState.LOGGED_ON and not self._transport.is_closing():
            self._send_snapshot(symbol, md_req_id)

    def write_x(self, data: bytes, messages: int, entries: int) -> None:
        """Write pre-framed X messages carrying `entries` entries in all."""
        if self._transport.is_closing():
            return
        self.stats.entries_sent += entries
        self._write(data, messages, "X")

    def set_write_high_water(self, high: int) -> None:
        """Unsent bytes above which `drain` waits (it resumes below a quarter of that)."""
        self._transport.set_write_buffer_limits(high=high, low=high // 4)

    async def drain(self) -> None:
        """Wait while the transport holds more than its high-water mark of unsent bytes."""
        try:
            await self._writer.drain()
        except ConnectionError:
            # The connection is gone: the session's reader sees it and closes the session.
            self.abort()

    # -- writing -----------------------------------------------------------------------

    def send_ticks(self, ticks: Sequence[Tick], sending_time: str, max_entries: int) -> None:
        """Write the entries of `ticks` this session subscribed to, as X messages."""
        subs = self._subs
        if not subs or self.state is not SessionState.LOGGED_ON or self._transport.is_closing():
            return
        per_symbol = self.stats.per_symbol
        # MDReqID -> [entry texts, entry count]; a tick's entries never straddle two X.
        pending: dict[str, tuple[list[str], list[int]]] = {}
        out: list[bytes] = []
        entries = 0
        for tick in ticks:
            sub = subs.get(tick.symbol)
            if sub is None or not (sub.trades if tick.is_trade else sub.book):
                continue
            n = tick.entries
            sym_stats = per_symbol[tick.symbol]
            sym_stats.entries += n
            if tick.is_trade:
                sym_stats.trades += n
            entries += n
            batch = pending.get(sub.md_req_id)
            if batch is None:
                pending[sub.md_req_id] = ([tick.text], [n])
                continue
            texts, count = batch
            if count[0] + n > max_entries:
                out.append(self._frame_x(sub.md_req_id, texts, count[0], sending_time))
                pending[sub.md_req_id] = ([tick.text], [n])
            else:
                texts.append(tick.text)
                count[0] += n
        for md_req_id, (texts, count) in pending.items():
            out.append(self._frame_x(md_req_id, texts, count[0], sending_time))
        if out:
            self.stats.entries_sent += entries
            self._write(b"".join(out), len(out), "X")

    def _frame_x(self, md_req_id: str, texts: list[str], count: int, sending_time: str) -> bytes:
        seq = self.next_out_seq
        self.next_out_seq = seq + 1
        body = (
            f"35=X{SOH}{self._header_text}34={seq}{SOH}52={sending_time}{SOH}"
            f"262={md_req_id}{SOH}268={count}{SOH}{''.join(texts)}"
        )
        return frame(body.encode("latin-1"))

    def _send_snapshot(self, symbol: str, md_req_id: str) -> None:
        now = time.time_ns()
        book = self._venue.market.books[symbol]
        entries, count = book.snapshot_entries(utc_time_only(now))
        seq = self.next_out_seq
        self.next_out_seq = seq + 1
        body = (
            f"35=W{SOH}{self._header_text}34={seq}{SOH}52={utc_timestamp(now)}{SOH}"
            f"262={md_req_id}{SOH}55={symbol}{SOH}268={count}{SOH}{entries}"
        )
        self._write(frame(body.encode("latin-1")), 1, "W")
        sym_stats = self.stats.per_symbol[symbol]
        sym_stats.snapshots += 1
        sym_stats.snapshot_entries += count
        self.stats.snapshot_entries_sent += count

    # -- MarketDataRequest -------------------------------------------------------------

    def _on_application(self, message: Message) -> None:
        if isinstance(message, MarketDataRequest):
            self._on_market_data_request(message)
        else:
            super()._on_application(message)

    def _md_reject(self, md_req_id: str, reason: MDReqRejReason, text: str) -> None:
        self._send(
            MarketDataRequestReject(md_req_id=md_req_id, md_req_rej_reason=reason, text=text)
        )
        self.stats.md_rejects_sent += 1

    def _on_market_data_request(self, message: MarketDataRequest) -> None:
        self.stats.md_requests_received += 1
        req_id = message.md_req_id
        kind = message.subscription_request_type
        symbols = [entry.symbol for entry in message.no_related_sym]
        if kind is SubscriptionRequestType.DISABLE_PREVIOUS_SNAPSHOT:
            changed = [s for s in symbols if s is not None and self._subs.pop(s, None) is not None]
            if changed:
                self._subs_version += 1
                self._venue.subscriptions_changed()
            return
        streaming = kind is SubscriptionRequestType.SNAPSHOT_AND_UPDATES
        if streaming and message.md_update_type is MDUpdateType.FULL_REFRESH:
            self._md_reject(
                req_id,
                MDReqRejReason.UNSUPPORTED_MD_UPDATE_TYPE,
                "only incremental refresh (265=1) streaming is supported",
            )
            return
        types = {entry.md_entry_type for entry in message.no_md_entry_types}
        book = MDEntryType.BID in types or MDEntryType.OFFER in types
        trades = MDEntryType.TRADE in types
        if not (book or trades):
            self._md_reject(
                req_id,
                MDReqRejReason.UNSUPPORTED_MD_ENTRY_TYPE,
                "supported MDEntryTypes are 0 (bid), 1 (offer) and 2 (trade)",
            )
            return
        known = self._venue.market.books
        added = False
        for symbol in symbols:
            if symbol is None or symbol not in known:
                name = "no Symbol(55)" if symbol is None else f"unknown symbol {symbol!r}"
                self._md_reject(req_id, MDReqRejReason.UNKNOWN_SYMBOL, clean_text(name))
                continue
            if symbol in self.in_cycle:
                self._deferred.append((symbol, req_id))
            else:
                self._send_snapshot(symbol, req_id)
            if streaming:
                self._subs[symbol] = _Subscription(req_id, book, trades)
                added = True
        if added:
            self._subs_version += 1
            self._venue.subscriptions_changed()

    def _session_ended(self) -> None:
        if self._subs:
            self._subs.clear()
            self._subs_version += 1
            self._venue.subscriptions_changed()
