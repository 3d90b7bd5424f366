"""The bar service: ticks from the bus to OHLCV bars in the bar store, live bars out.

``BarService`` consumes the tick topic as a member of ``ohlcv.group_id``, from the group's
committed offsets or, for a new group, from the start of the log (bars are a function of
the whole log). Instances split the partitions; ticks are keyed by symbol, so one member
sees all of a symbol's ticks in log order. It feeds a ``BarAggregator`` (``ohlcv.bars``)
and every ``ohlcv.flush_interval_ms``:

1. drains the changed bars and upserts them into the ``BarStore`` (idempotent: a replayed
   bar overwrites itself);
2. saves a checkpoint per symbol touched since the last flush: the partition and offset of
   its last tick applied, the bus incarnation (below) and its open-bar state
   (``BarAggregator.export_symbol``);
3. only then commits the consumer's offsets, so a crash redelivers ticks rather than
   losing them;
4. hands the bars to the live listeners (the datafeed's stream, the MQTT bridge).

Recovery is exact. A member that sees a symbol for the first time (start, restart, a
partition taken over in a rebalance) loads its checkpoint, restores the open bars, and
skips that symbol's records up to the checkpoint's offset: ticks already in the stored
state are not applied twice, ticks after it are applied once. A crash between the bar
writes and the checkpoint only means the same bars are computed and written again. When a
partition leaves this member, the state of its symbols is dropped (the next owner
restores it from the checkpoint). ``mdfeed reconcile`` checks the result against the log.

Checkpoints and offsets belong to one bus incarnation (``Bus.incarnation``: which log the
topic is, and which life of it). Each checkpoint records the incarnation it was saved
under. A checkpoint of another incarnation (the in-process bus of the embedded default
starts empty on every run while the SQLite checkpoints stay; a Kafka stack created anew)
keeps its open bars, so today's 1h and 1D bars go on instead of starting from scratch (the
new log's ticks are later in time), but not its offset, which names records of a log that
is gone: the new log is applied from its start. The service logs once, at INFO, that the
bus started anew and how many checkpoints' offsets it dropped (when a flush interval went
by without another, or at stop; later ones are counted in ``stats.offsets_dropped``). A
checkpoint saved before incarnations were kept counts as another incarnation's: on the
embedded default it is one, and on Kafka a clean stop committed past its offset anyway.
Why not an embedded bus that keeps its log on disk instead: that would put a file write on
the tick path of the embedded default and still leave a Kafka cluster created anew
undetected; the incarnation covers both.

A store error stops the flush before the checkpoint and the commit; the service retries at
the next interval and keeps consuming meanwhile (the aggregator holds the bars).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mdfeed.kernel.bus import Bus, BusConsumer, BusError
from mdfeed.kernel.config import OhlcvConfig
from mdfeed.kernel.lifecycle import Service, cancel_and_wait
from mdfeed.kernel.metrics import Histogram
from mdfeed.kernel.tick_records import TickRecordError, ticks_of
from ohlcv.bar_config import parse_resolutions, parse_session_timezone
from ohlcv.bars import BarAggregator
from proto import mdfeed_pb2 as pb
from storage import BarStore, Checkpoint, StoreError

__all__ = ["BarService", "BarServiceStats"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class BarServiceStats:
    records: int = 0
    bad_records: int = 0
    bars_written: int = 0
    flushes: int = 0
    store_errors: int = 0
    commit_errors: int = 0  # offset commits refused (bars and checkpoints were stored)
    restored: int = 0  # symbols taken over from a checkpoint
    replayed_skipped: int = 0  # redelivered records already in a checkpoint's state
    handed_over: int = 0  # symbols dropped when their partition went elsewhere
    offsets_dropped: int = 0  # checkpoints of another bus incarnation: bars kept, offset not


class BarService(Service):
    """Aggregates the tick topic into the bar store; see the module docstring."""

    def __init__(
        self,
        bus: Bus,
        store: BarStore,
        config: OhlcvConfig,
        *,
        topic: str | None = None,
        from_beginning: bool = True,
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
        self._loaded: set[str] = set()  # symbols whose checkpoint was consulted
        self._skip_to: dict[str, int] = {}  # records at or below this offset are applied
        self._position: dict[str, tuple[int, int]] = {}  # last (partition, offset) applied
        self._touched: set[str] = set()  # symbols applied since the last checkpoint
        self._assignment: frozenset[tuple[str, int]] = frozenset()
        self._incarnation = ""  # the bus's, for the tick topic (known once started)
        self._other_incarnation: str | None = None  # the first other one a checkpoint named
        self._dropped_reported = False  # the one log line about them was written
        self._dropped_at_last_flush = 0
        self.stats = BarServiceStats()
        #: Seconds per successful flush: bars upserted, checkpoints saved, offsets committed.
        self.flush_seconds = Histogram()

    def add_listener(self, listener: Callable[[Sequence[pb.Bar]], None]) -> None:
        """Call ``listener(bars)`` with every batch of bars once it is stored. Never await."""
        self._listeners.append(listener)

    async def start(self) -> None:
        self._incarnation = await self._bus.incarnation(self._topic)
        consumer = self._bus.consumer(
            [self._topic], group_id=self.config.group_id, from_beginning=self._from_beginning
        )
        await consumer.start()
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(consumer), name="bar-service")
        self._task.add_done_callback(self._ended)

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(StoreError):
                await self.flush(consumer)
            await consumer.stop()
        self._report_dropped_offsets()

    #: Why the consume loop ended on its own (it only ends by stop() otherwise).
    failure: BaseException | None = None

    def _ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.failure = task.exception()
            log.critical("the bar service stopped: %r", self.failure)

    async def _run(self, consumer: BusConsumer) -> None:
        interval_s = self.config.flush_interval_ms / 1000
        next_flush = time.monotonic() + interval_s
        from_string = pb.Tick.FromString
        apply = self.aggregator.apply
        while True:
            timeout_ms = max(0, int((next_flush - time.monotonic()) * 1000))
            records = await consumer.getmany(timeout_ms=timeout_ms, max_records=5000)
            self._follow_assignment(consumer)
            for record in records:
                self.stats.records += 1
                try:
                    encoded_ticks = ticks_of(record.value)
                except TickRecordError:  # a junk record must not stop the bars
                    self.stats.bad_records += 1
                    continue
                for encoded in encoded_ticks:
                    try:
                        tick = from_string(encoded)
                    except Exception:  # a junk tick must not stop the bars
                        self.stats.bad_records += 1
                        continue
                    symbol = tick.symbol
                    if symbol not in self._loaded:
                        await self._restore(symbol)
                    if record.offset <= self._skip_to.get(symbol, -1):
                        self.stats.replayed_skipped += 1
                        continue
                    apply(tick)
                    self._position[symbol] = (record.partition, record.offset)
                    self._touched.add(symbol)
            if time.monotonic() >= next_flush:
                try:
                    await self.flush(consumer)
                except StoreError as exc:
                    self.stats.store_errors += 1
                    log.error("bar store write failed, offsets not committed; retrying: %s", exc)
                except BusError as exc:
                    # Bars and checkpoints are stored; the records come again and the
                    # checkpoints' offsets skip them. A rebalance is the usual cause.
                    self.stats.commit_errors += 1
                    log.warning("offset commit failed; continuing: %s", exc)
                next_flush = time.monotonic() + interval_s
            else:
                await asyncio.sleep(0)  # a backlog must not starve the rest of the process

    async def _restore(self, symbol: str) -> None:
        """Take ``symbol`` over from its checkpoint, if it has one."""
        checkpoint = await self._store.load_checkpoint(symbol)
        self._loaded.add(symbol)
        if checkpoint is None:
            return
        self.aggregator.import_symbol(symbol, checkpoint.state)
        self.stats.restored += 1
        if checkpoint.incarnation == self._incarnation:
            self._skip_to[symbol] = checkpoint.offset
        else:
            # Its offset names a record of another log: this one is applied from its start.
            self.stats.offsets_dropped += 1
            if self._other_incarnation is None:
                self._other_incarnation = checkpoint.incarnation
            log.debug(
                "%s: checkpoint of bus incarnation %r: offset %d dropped, open bars kept",
                symbol,
                checkpoint.incarnation,
                checkpoint.offset,
            )

    def _report_dropped_offsets(self) -> None:
        """Log, once, how many checkpoints' offsets were dropped (later ones: stats only)."""
        dropped = self.stats.offsets_dropped
        if self._dropped_reported or not dropped:
            return
        self._dropped_reported = True
        saved_under = self._other_incarnation or "no incarnation (an earlier mdfeed)"
        log.info(
            "the bus started anew (%s; checkpoints saved under %s): the offsets of %d "
            "checkpoint%s were dropped, their open bars kept; ticks apply from the log's start",
            self._incarnation,
            saved_under,
            dropped,
            "" if dropped == 1 else "s",
        )

    def _follow_assignment(self, consumer: BusConsumer) -> None:
        """Drop the state of symbols whose partition went to another member."""
        assignment = consumer.assignment()
        if assignment == self._assignment:
            return
        self._assignment = assignment
        partitions = {p for topic, p in assignment if topic == self._topic}
        gone: set[str] = set()
        for symbol, (partition, _) in list(self._position.items()):
            if partition not in partitions:
                self.aggregator.forget(symbol)
                self._loaded.discard(symbol)
                self._skip_to.pop(symbol, None)
                self._position.pop(symbol, None)
                self._touched.discard(symbol)
                gone.add(symbol)
                self.stats.handed_over += 1
        if gone and self._unwritten:
            self._unwritten = [bar for bar in self._unwritten if bar.symbol not in gone]

    def lag(self) -> dict[str, int]:
        """Records of the tick topic not consumed yet (see BusConsumer.lag)."""
        return self._consumer.lag() if self._consumer is not None else {}

    async def flush(self, consumer: BusConsumer | None = None) -> int:
        """Write the changed bars, then the checkpoints, then commit; returns the bar count."""
        started = time.perf_counter()
        bars = self._unwritten + self.aggregator.drain_changed()
        self._unwritten = bars
        if bars:
            await self._store.upsert(bars)
        self._unwritten = []
        touched = self._touched
        if touched:
            export = self.aggregator.export_symbol
            incarnation = self._incarnation
            checkpoints = {
                symbol: Checkpoint(*self._position[symbol], export(symbol), incarnation)
                for symbol in touched
            }
            await self._store.save_checkpoints(checkpoints)
            self._touched = set()
        consumer = consumer if consumer is not None else self._consumer
        if consumer is not None:
            await consumer.commit()
        self.stats.flushes += 1
        self.stats.bars_written += len(bars)
        self.flush_seconds.observe(time.perf_counter() - started)
        if self.stats.offsets_dropped == self._dropped_at_last_flush:
            self._report_dropped_offsets()  # none since the last flush: the count has settled
        self._dropped_at_last_flush = self.stats.offsets_dropped
        if bars:
            for listener in self._listeners:
                listener(bars)
        return len(bars)
