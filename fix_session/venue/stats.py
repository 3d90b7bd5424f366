"""The simulated venue's counters: what one session sent and received, and per symbol.

Each `VenueSession` keeps a `VenueStats` of its own connection; `SimulatedVenue.stats`
sums those of every session, past and present, into one. ``mdfeed venue`` prints its
status line from them, and tests compare them with what the initiator received.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class SymbolStats:
    """What was sent for one symbol."""

    #: Entries in MarketDataIncrementalRefresh (X) messages, trades included.
    entries: int = 0
    #: Of `entries`, the trades (269=2).
    trades: int = 0
    #: MarketDataSnapshotFullRefresh (W) messages.
    snapshots: int = 0
    #: Entries in those W messages.
    snapshot_entries: int = 0


_INT_STATS = (
    "connections",
    "logons",
    "messages_sent",
    "bytes_sent",
    "messages_received",
    "bytes_received",
    "entries_sent",
    "snapshot_entries_sent",
    "heartbeats_sent",
    "test_requests_sent",
    "resend_requests_sent",
    "resend_requests_received",
    "rejects_sent",
    "rejects_received",
    "decode_errors",
    "md_requests_received",
    "md_rejects_sent",
    "stream_stalls",
)


@dataclass(slots=True)
class VenueStats:
    """Counters of one session, or (`SimulatedVenue.stats`) of every session summed."""

    connections: int = 0
    logons: int = 0
    messages_sent: int = 0
    bytes_sent: int = 0
    messages_received: int = 0
    bytes_received: int = 0
    #: X entries sent (the rate the venue is paced at counts these).
    entries_sent: int = 0
    snapshot_entries_sent: int = 0
    heartbeats_sent: int = 0
    test_requests_sent: int = 0
    resend_requests_sent: int = 0
    resend_requests_received: int = 0
    #: Session Rejects (3) sent, one per message or chunk that did not decode.
    rejects_sent: int = 0
    #: Session Rejects (3) received from the initiator.
    rejects_received: int = 0
    #: Received bytes that did not decode (garbage, broken frames, invalid messages).
    decode_errors: int = 0
    md_requests_received: int = 0
    md_rejects_sent: int = 0
    #: Stream wakeups skipped because a reader had fallen behind (venue-wide).
    stream_stalls: int = 0
    sent_by_type: dict[str, int] = field(default_factory=dict)
    received_by_type: dict[str, int] = field(default_factory=dict)
    per_symbol: dict[str, SymbolStats] = field(default_factory=dict)

    def add(self, other: VenueStats) -> None:
        """Add another set of counters to this one."""
        for name in _INT_STATS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for mine, theirs in (
            (self.sent_by_type, other.sent_by_type),
            (self.received_by_type, other.received_by_type),
        ):
            for key, value in theirs.items():
                mine[key] = mine.get(key, 0) + value
        for symbol, s in other.per_symbol.items():
            total = self.per_symbol.setdefault(symbol, SymbolStats())
            total.entries += s.entries
            total.trades += s.trades
            total.snapshots += s.snapshots
            total.snapshot_entries += s.snapshot_entries

    def copy(self) -> VenueStats:
        """An independent copy."""
        out = VenueStats()
        out.add(self)
        return out
