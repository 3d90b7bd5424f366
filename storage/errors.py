"""Errors of the stores (chat now, bars later).

::

    StoreError                  any error a store raises
    ├── StoreClosedError        used before start() or after close()
    └── StoreUnavailableError   the database cannot be reached or opened, or did not answer
                                in time: Cassandra down or timing out (the message names
                                host:port), an SQLite file that cannot be opened or stayed
                                locked by another process past the busy timeout

Bad arguments (an empty room, a negative ``after_seq``) raise ``ValueError`` naming the
argument: they are the caller's mistake, not the store's.

After ``StoreUnavailableError`` from ``append`` the message may or may not have been stored:
append the same ``msg_id`` again once the store is back; appends are idempotent on
``(room, msg_id)``, so the retry returns the stored message if the first attempt got through.
"""

from __future__ import annotations

__all__ = ["StoreClosedError", "StoreError", "StoreUnavailableError"]


class StoreError(Exception):
    """Base of every error a store raises."""


class StoreClosedError(StoreError):
    """The store is not started, or was closed; create a new one."""


class StoreUnavailableError(StoreError):
    """The database could not be reached, opened, or did not answer in time."""
