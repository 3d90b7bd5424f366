"""The bar service: ticks from the bus to OHLCV bars in the bar store, live bars out.

``BarService`` consumes the tick topic as a member of ``ohlcv.group_id`` (instances split
the partitions; ticks are keyed by symbol, so one member sees all of a symbol's ticks in
log order), feeds a ``BarAggregator`` (``ohlcv.bars``) and every
``ohlcv.flush_interval_ms``:

1. drains the changed bars and upserts them into the ``BarStore`` (idempotent: a replayed
   bar overwrites itself);
2. only then commits the consumer's offsets, so a crash redelivers ticks rather than
   losing them;
3. hands the bars to the live listeners (the datafeed's stream, the MQTT bridge).

A store error stops the flush before the commit; the service retries the same bars at the
next interval and keeps consuming meanwhile (the aggregator holds them).

Known limit, not yet solved: a member that takes over a partition (restart, rebalance)
starts from the committed offset with no state for the bars still open at that point, so
its first writes of those bars hold only the ticks after the offset. Exact recovery needs
a per-symbol checkpoint of the open bars written with the bars (planned); until then
``mdfeed reconcile`` finds such bars.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mdfeed.bus import Bus, BusConsumer
from mdfeed.config import OhlcvConfig
from mdfeed.lifecycle import Service
from ohlcv.bars import BarAggregator, parse_resolutions, parse_session_timezone
from proto import mdfeed_pb2 as pb
from storage import BarStore, StoreError

__all__ = ["BarService", "BarServiceStats"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class BarServiceStats:
    records: int = 0
    bad_records: int = 0
    bars_written: int = 0
    flushes: int = 0
    store_errors: int = 0


class BarService(Service):
    """Aggregates the tick topic into the bar store; see the module docstring."""

    def __init__(
        self,
        bus: Bus,
        store: BarStore,
        config: OhlcvConfig,
        *,
        topic: str | None = None,
        from_beginning: bool = False,
    ) -> None:
        self.config = config
        self._bus = bus
        self._store = store
        self._topic = topic if topic is not None else bus.config.tick_topic
        self._from_beginning = from_beginning
        self.aggregator = BarAggregator(
            parse_resolutions(config.resolutions),
            parse_session_timezone(config.session_timezone),
            mid_when_no_trades=config.mid_when_no_trades,
            allowed_lateness_ns=int(config.allowed_lateness_s * 1e9),
        )
        self._listeners: list[Callable[[Sequence[pb.Bar]], None]] = []
        self._consumer: BusConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._unwritten: list[pb.Bar] = []
        self.stats = BarServiceStats()

    def add_listener(self, listener: Callable[[Sequence[pb.Bar]], None]) -> None:
        """Call ``listener(bars)`` with every batch of bars once it is stored. Never await."""
        self._listeners.append(listener)

    async def start(self) -> None:
        consumer = self._bus.consumer(
            [self._topic], group_id=self.config.group_id, from_beginning=self._from_beginning
        )
        await consumer.start()
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(consumer), name="bar-service")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(StoreError):
                await self.flush(consumer)
            await consumer.stop()

    async def _run(self, consumer: BusConsumer) -> None:
        interval_s = self.config.flush_interval_ms / 1000
        next_flush = time.monotonic() + interval_s
        from_string = pb.Tick.FromString
        apply = self.aggregator.apply
        while True:
            timeout_ms = max(0, int((next_flush - time.monotonic()) * 1000))
            records = await consumer.getmany(timeout_ms=timeout_ms, max_records=5000)
            for record in records:
                self.stats.records += 1
                try:
                    tick = from_string(record.value)
                except Exception:  # a junk record must not stop the bars
                    self.stats.bad_records += 1
                    continue
                apply(tick)
            if time.monotonic() >= next_flush:
                try:
                    await self.flush(consumer)
                except StoreError as exc:
                    self.stats.store_errors += 1
                    log.error("bar store write failed, offsets not committed; retrying: %s", exc)
                next_flush = time.monotonic() + interval_s
            else:
                await asyncio.sleep(0)  # a backlog must not starve the rest of the process

    async def flush(self, consumer: BusConsumer | None = None) -> int:
        """Write the changed bars, then commit; returns how many bars were written."""
        bars = self._unwritten + self.aggregator.drain_changed()
        self._unwritten = bars
        if bars:
            await self._store.upsert(bars)
        self._unwritten = []
        consumer = consumer if consumer is not None else self._consumer
        if consumer is not None:
            await consumer.commit()
        self.stats.flushes += 1
        self.stats.bars_written += len(bars)
        if bars:
            for listener in self._listeners:
                listener(bars)
        return len(bars)
