"""A simulated FIX 4.4 market data venue: an asyncio acceptor that streams a random market.

`SimulatedVenue` is what the ingest connects to when no real venue is configured (the
embedded default), and what tests drive: it speaks enough FIX 4.4 for a QuickFIX
initiator and can be told to misbehave. It is built on asyncio rather than QuickFIX so
it can stream at high rates from one Python process and write arbitrary bytes.

Where each part lives, each module documenting its part in full:

``server``       `SimulatedVenue`: the listener and its connections, the paced market data
                 stream (rate, batching, back-pressure), the saved sequence numbers, and
                 most test hooks (start/stop, pause_stream, set_rate, book, stats, ...).
``session``      `AcceptorSession`, the FIX 4.4 session layer of one connection (Logon,
                 heartbeats, sequence numbers and gaps, Reject, Logout), and `SessionHost`,
                 the protocol of what a session needs from its venue.
``market_data``  `VenueSession`, the session with market data on top: MarketDataRequest
                 (V), the W, X and Y it sends, its subscriptions; `MarketDataHost`, what it
                 needs from its venue besides that.
``stats``        `VenueStats` and `SymbolStats`, the counters of a session and of the venue.
``fast``         The benchmark stream (``VenueConfig.stream = "fast"``): each session's X
                 messages pre-encoded as a closed cycle and rewritten with fresh header
                 fields, at the reader's pace or a capped rate.
``market``       The simulated market: a price-level book per symbol, moved one step at a
                 time and written as wire text.
``wire``         FIX wire text: framing, CheckSum, timestamps, the frame splitter.

The imports point one way: server -> fast -> market_data -> session -> stats, wire; the sessions
know their venue only through the two protocols.

What QuickFIX 1.16 (UseDataDictionary=Y) does with broken input, as the interop test
shows: a bad CheckSum is dropped and the gap it leaves is resent as a gap fill; a group
count that does not match gets a Reject (3); MDEntryPx ``NaN`` passes its dictionary
check and reaches ``fromApp``, so the ingest's own decoding has to catch it.

``mdfeed venue`` (``mdfeed.cli.venue``) runs the venue until Ctrl-C with a status line
every second.
"""

from fix_session.venue.market import BookSnapshot
from fix_session.venue.market_data import VenueSession, incremental_refresh_fields
from fix_session.venue.server import SimulatedVenue
from fix_session.venue.session import SessionState
from fix_session.venue.stats import SymbolStats, VenueStats

__all__ = [
    "BookSnapshot",
    "SessionState",
    "SimulatedVenue",
    "SymbolStats",
    "VenueSession",
    "VenueStats",
    "incremental_refresh_fields",
]
