"""The per-symbol rate cap of MQTT quotes: a symbol's latest tick waits for its interval.

Quotes (``md/{symbol}``, QoS 0, retained) are conflated per symbol: at most
``quote_max_rate_per_symbol_hz`` publishes per symbol per second, latest value wins
(docs/architecture.md, "Principles": 3. two delivery lanes). ``offer``, a ``TickFanout``
listener called for every tick in the consume loop, only stores the encoded tick (the bytes
from the bus, never re-encoded) and wakes the publisher; the publisher (the bridge's flush
task, ``fanout.transports.mqtt_bridge``) publishes a symbol as soon as its interval allows,
so the last update of a burst always goes out one interval later and the retained value is
never stale. The last value published per symbol (one encoded tick each, the bytes already
held) is kept: after every reconnect ``requeue_last`` queues all of them again, since QoS 0
publishes written just before a connection loss may never have arrived, and a broker
restarted without persistence lost its retained values.

Every waiting symbol is in exactly one of ``ready`` (due now, in order) and ``due`` (a heap of
(due time, symbol)); its tick is in ``pending``. The publisher drains ``ready`` inline, with
no call per quote: it pops a symbol and takes its tick out of ``pending``; once the tick is
out it sets ``next_due[symbol] = now + period_s`` and ``last[symbol]``, and a tick it could
not publish goes back in front (into ``pending``, and ``ready.appendleft``).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable

from fanout.transports.mqtt_stats import MqttStats

__all__ = ["QuoteRate"]


class QuoteRate:
    """The quotes waiting per symbol and when each symbol may go out again.

    ``clock`` is the time seam (seconds, monotonic); tests freeze it.
    """

    __slots__ = (
        "_clock",
        "_stats",
        "due",
        "last",
        "next_due",
        "pending",
        "period_s",
        "ready",
        "wake",
    )

    def __init__(self, max_rate_hz: float, stats: MqttStats, clock: Callable[[], float]) -> None:
        self.period_s = 1.0 / max_rate_hz
        self.pending: dict[str, bytes] = {}
        self.ready: deque[str] = deque()
        self.due: list[tuple[float, str]] = []
        self.next_due: dict[str, float] = {}
        self.last: dict[str, bytes] = {}  # last published, per symbol
        #: Wakes the publisher when a quote is offered; None while no publisher runs.
        self.wake: Callable[[], None] | None = None
        self._stats = stats
        self._clock = clock

    def offer(self, symbol: str, seq: int, encoded: bytes) -> None:
        """Queue ``encoded`` as the latest quote of ``symbol``; never blocks.

        A ``TickFanout`` listener. ``seq`` is not checked: after an upstream restart the
        sequence starts again and the newest tick is still the value to retain.
        """
        stats = self._stats
        stats.quotes_in += 1
        pending = self.pending
        if symbol in pending:
            pending[symbol] = encoded
            stats.quotes_conflated += 1
            return
        pending[symbol] = encoded
        due = self.next_due.get(symbol)
        if due is None or due <= self._clock():
            self.ready.append(symbol)
        else:
            heapq.heappush(self.due, (due, symbol))
        wake = self.wake
        if wake is not None:
            wake()

    def release_due(self, now: float) -> None:
        """Move the symbols whose interval has passed from ``due`` to ``ready``."""
        due, ready = self.due, self.ready
        while due and due[0][0] <= now:
            ready.append(heapq.heappop(due)[1])

    def wait_s(self, now: float) -> float | None:
        """Seconds until the next symbol is due; None when none waits for its interval."""
        due = self.due
        return max(0.0, due[0][0] - now) if due else None

    def requeue_last(self) -> None:
        """Queue the last published value of every symbol again (after a reconnect)."""
        pending, ready = self.pending, self.ready
        for symbol, payload in self.last.items():
            if symbol not in pending:
                pending[symbol] = payload
                ready.append(symbol)
