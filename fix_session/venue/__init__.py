"""The simulated FIX 4.4 market data venue (see `fix_session.venue.server`)."""

from fix_session.venue.market import BookSnapshot
from fix_session.venue.server import SimulatedVenue
from fix_session.venue.session import (
    SessionState,
    SymbolStats,
    VenueSession,
    VenueStats,
    incremental_refresh_fields,
)

__all__ = [
    "BookSnapshot",
    "SessionState",
    "SimulatedVenue",
    "SymbolStats",
    "VenueSession",
    "VenueStats",
    "incremental_refresh_fields",
]
