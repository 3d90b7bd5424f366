"""Errors of the bus port.

::

    BusError                    any error raised by a bus, producer or consumer
    ├── BusClosedError          used after stop(): send(), getmany(), commit()
    ├── BusUnavailableError     a consumer could not reach Kafka or set up its topics
    └── CommitFailedError       commit() refused: no group_id, or the group rebalanced
                                and the partitions now belong to another member

A producer never raises because the bus is down: it buffers, drops past its bound and
reports through ``stats`` and ``on_resumed`` (see :mod:`mdfeed.kernel.bus`).
"""

from __future__ import annotations

__all__ = ["BusClosedError", "BusError", "BusUnavailableError", "CommitFailedError"]


class BusError(Exception):
    """Base of every error the bus raises."""


class BusClosedError(BusError):
    """The producer or consumer was stopped; create a new one."""


class BusUnavailableError(BusError):
    """Kafka could not be reached (or its topics could not be created) in time."""


class CommitFailedError(BusError):
    """Offsets were not committed; the records will be delivered again."""
