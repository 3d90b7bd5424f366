"""The producer core both adapters share: bounded buffer, background drain, stats, resync.

``send()`` appends ``(topic, key, value)`` to a deque and returns. One background task
takes *windows* of up to ``max_window_records`` records from the front and hands each to
the adapter's ``_deliver``; the next window starts only when the previous one is settled,
so at most one window is with the client at a time and the buffer bound covers every
record not yet confirmed (waiting + in flight).

Records a window could not deliver go back to the front of the buffer, in their order, and
the session with the bus is reopened (with backoff): a key's records never overtake each
other. Past ``buffer_max_records`` send() drops the newest record (see :mod:`mdfeed.kernel.bus`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections import deque

from mdfeed.kernel.bus.errors import BusClosedError
from mdfeed.kernel.bus.ports import ProducerStats, ResumedCallback
from mdfeed.kernel.lifecycle import Service, cancel_and_wait

__all__ = ["BufferedProducer", "Record", "SessionError"]

log = logging.getLogger("mdfeed.kernel.bus")

#: (topic, key, value) as send() received them.
Record = tuple[str, bytes, bytes]

_NEW, _RUNNING, _STOPPING, _STOPPED = "new", "running", "stopping", "stopped"


class SessionError(Exception):
    """The adapter could not open a session with the bus (retried with backoff)."""


class BufferedProducer(ABC, Service):
    """Buffering, draining, counting and the on_resumed hook; adapters say how to deliver."""

    def __init__(
        self,
        *,
        buffer_max_records: int,
        linger_ms: int,
        request_spacing_ms: int = 0,
        on_resumed: ResumedCallback | None,
        max_window_records: int,
        stop_timeout_s: float,
        stall_timeout_s: float,
        reconnect_backoff_s: tuple[float, float],
        name: str,
    ) -> None:
        if buffer_max_records < 1 or max_window_records < 1:
            raise ValueError("buffer_max_records and max_window_records must be at least 1")
        self.on_resumed = on_resumed
        self._max_records = buffer_max_records
        #: on_resumed waits until the buffer is back under half its bound, so that the
        #: snapshot the callback asks for has room and is not dropped in turn.
        self._low_water = buffer_max_records // 2
        self._linger_s = linger_ms / 1000
        self._spacing_s = request_spacing_ms / 1000
        self._window = max_window_records
        self._stop_timeout_s = stop_timeout_s
        self._stall_timeout_s = stall_timeout_s
        self._backoff_min_s, self._backoff_max_s = reconnect_backoff_s
        self._name = name

        self._pending: deque[Record] = deque()
        #: When the oldest waiting record arrived (monotonic s); 0 when it need not linger.
        self._oldest_at = 0.0
        #: When the last window left (monotonic s), for the request spacing.
        self._window_at = 0.0
        self._in_flight = 0
        self._state = _NEW
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._idle = False
        self._progress = asyncio.Event()
        self._flushing = 0
        self._session_open = False

        self._accepted = 0
        self._sent = 0
        self._acked = 0
        self._rejected = 0
        self._dropped = 0
        self._send_errors = 0
        self._connected = False
        self._delivered_once = False
        self._outage = False
        self._warned_unreachable = False
        self._reconnects = 0
        self._resumes = 0
        self._resync_owed = False

    # --- what adapters provide --------------------------------------------------------

    @abstractmethod
    async def _open_session(self) -> None:
        """Connect to the bus; raise :class:`SessionError` when it cannot be reached."""

    @abstractmethod
    async def _deliver(self, window: list[Record]) -> tuple[list[Record], int]:
        """Deliver ``window`` and wait for confirmation.

        Returns (records to retry, in their order; number of records the bus refused for
        good, which are dropped). Anything to retry makes the session be reopened.
        """

    @abstractmethod
    async def _close_session(self, *, abandon: bool) -> None:
        """Close the session; ``abandon``: give up on records the client still holds."""

    # --- the port ---------------------------------------------------------------------

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        # The hot path: a few attribute reads and one append per record.
        pending = self._pending
        if len(pending) + self._in_flight >= self._max_records or self._closed:
            if self._closed:
                raise BusClosedError(f"{self._name}: send() after stop()")
            self._dropped += 1
            self._resync_owed = True
            return
        if not pending:
            self._oldest_at = time.monotonic()
            if self._idle:
                self._idle = False
                self._wake.set()
        pending.append((topic, key, value))
        self._accepted += 1

    async def start(self) -> None:
        if self._state is not _NEW:
            return
        self._state = _RUNNING
        self._task = asyncio.create_task(self._run(), name=f"{self._name}-drain")

    async def flush(self, timeout_s: float) -> bool:
        target = self._accepted
        if self._acked + self._rejected >= target:
            return True
        self._flushing += 1
        self._idle = False
        self._wake.set()
        try:
            async with asyncio.timeout(timeout_s):
                while self._acked + self._rejected < target:
                    self._progress.clear()
                    await self._progress.wait()
        except TimeoutError:
            return False
        finally:
            self._flushing -= 1
        return True

    async def stop(self) -> None:
        if self._state is _STOPPED or self._state is _STOPPING:
            return
        if self._state is _NEW:
            self._state = _STOPPED
            self._closed = True
            return
        self._state = _STOPPING
        self._closed = True
        delivered = await self.flush(self._stop_timeout_s)
        task, self._task = self._task, None
        await cancel_and_wait(task)
        if self._session_open:
            self._session_open = False
            await self._close_quietly(abandon=not delivered)
        self._state = _STOPPED
        self._connected = False
        if not delivered:
            log.warning(
                "%s: stopped with %d records undelivered after %.1f s",
                self._name,
                self._buffered(),
                self._stop_timeout_s,
            )

    @property
    def stats(self) -> ProducerStats:
        return ProducerStats(
            accepted=self._accepted,
            sent=self._sent,
            acked=self._acked,
            buffered=self._buffered(),
            dropped=self._dropped + self._rejected,
            send_errors=self._send_errors,
            connected=self._connected,
            reconnects=self._reconnects,
            resumes=self._resumes,
        )

    # --- the drain --------------------------------------------------------------------

    def _buffered(self) -> int:
        return len(self._pending) + self._in_flight

    async def _run(self) -> None:
        backoff = self._backoff_min_s
        while True:
            if not self._session_open:
                try:
                    await self._open_session()
                except Exception as exc:
                    if not isinstance(exc, SessionError):
                        log.exception("%s: unexpected error opening a session", self._name)
                    self._lost(f"cannot reach the bus: {exc}")
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self._backoff_max_s)
                    continue
                self._session_open = True
                backoff = self._backoff_min_s
                self._reached(confirmed=False)
            if not self._pending:
                self._maybe_resume()
                self._idle = True
                self._wake.clear()
                await self._wake.wait()
                continue
            if (
                (self._linger_s or self._spacing_s)
                and not self._flushing
                and len(self._pending) < self._window
            ):
                # Kafka's linger: give a short window time to fill before it goes. The
                # spacing: a window that would follow the last one sooner than the spacing
                # waits out the rest of it, so a busy bus takes one request per spacing
                # while a record after a quiet spell leaves at once.
                wait_s = (
                    max(
                        self._oldest_at + self._linger_s if self._linger_s else 0.0,
                        self._window_at + self._spacing_s if self._spacing_s else 0.0,
                    )
                    - time.monotonic()
                )
                if wait_s > 0:
                    # A flush or stop sets the wake event: neither waits for the spacing.
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(wait_s):
                            await self._wake.wait()
                    continue
            await self._deliver_window()

    async def _deliver_window(self) -> None:
        pending = self._pending
        window = [pending.popleft() for _ in range(min(len(pending), self._window))]
        # What is left has waited for this delivery already: no linger for it.
        self._oldest_at = 0.0
        self._window_at = time.monotonic()
        self._in_flight = len(window)
        self._sent += len(window)
        delivery = asyncio.ensure_future(self._deliver(window))
        try:
            while not (await asyncio.wait({delivery}, timeout=self._stall_timeout_s))[0]:
                self._lost(f"no confirmation for {self._stall_timeout_s:.1f} s")
            try:
                retry, rejected = delivery.result()
            except Exception:
                log.exception("%s: delivery failed", self._name)
                retry, rejected = window, 0
        finally:
            if not delivery.done():
                delivery.cancel()
        self._in_flight = 0
        self._acked += len(window) - len(retry) - rejected
        if rejected:
            self._rejected += rejected
            self._resync_owed = True
        if retry:
            self._send_errors += len(retry)
            pending.extendleft(reversed(retry))
            self._session_open = False
            await self._close_quietly(abandon=True)
            self._lost(f"{len(retry)} records not confirmed; reopening the session")
        else:
            self._reached(confirmed=True)
            self._maybe_resume()
        self._progress.set()

    async def _close_quietly(self, *, abandon: bool) -> None:
        try:
            await self._close_session(abandon=abandon)
        except Exception:
            log.exception("%s: error closing the session", self._name)

    def _reached(self, *, confirmed: bool) -> None:
        if confirmed:
            self._delivered_once = True
        if self._connected:
            return
        self._connected = True
        if self._outage:
            self._outage = False
            self._reconnects += 1
            log.info("%s: bus reachable again; %d records buffered", self._name, self._buffered())

    def _lost(self, reason: str) -> None:
        if not self._connected:
            if not self._warned_unreachable:
                self._warned_unreachable = True
                log.warning("%s: %s; buffering and retrying", self._name, reason)
            else:
                log.debug("%s: %s", self._name, reason)
            return
        self._connected = False
        if not self._delivered_once:
            # Still starting up (topic leaders being elected, say): nothing was lost yet.
            log.info("%s: %s", self._name, reason)
            return
        self._outage = True
        self._resync_owed = True
        self._warned_unreachable = True
        log.warning(
            "%s: bus lost (%s); buffering up to %d records", self._name, reason, self._max_records
        )

    def _maybe_resume(self) -> None:
        if not (self._resync_owed and self._connected and self._buffered() <= self._low_water):
            return
        self._resync_owed = False
        self._resumes += 1
        callback = self.on_resumed
        if callback is None:
            return
        started = time.monotonic()
        try:
            callback()
        except Exception:
            log.exception("%s: on_resumed callback failed", self._name)
        elapsed = time.monotonic() - started
        if elapsed > 0.05:
            log.warning(
                "%s: on_resumed took %.3f s; it runs in the event loop", self._name, elapsed
            )
