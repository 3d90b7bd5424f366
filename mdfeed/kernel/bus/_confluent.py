"""The Kafka bus's producer on confluent-kafka (librdkafka), beside aiokafka's.

``bus.kafka_producer = "confluent"`` picks it; ``"aiokafka"`` (the default) picks
:class:`mdfeed.kernel.bus._kafka.KafkaProducer`. Both are :class:`BufferedProducer` adapters
with the same buffering, windows, retries and counters, and pass the same bus contract.

Why it exists: at the rates a quiet or moderate market gives, a produce request carries
one or two records, and aiokafka builds and parses each request in Python. librdkafka does
that work in C on its own threads; ``produce_batch()`` only queues a window. Measured side
by side with records arriving one at a time at 1,850/s, net of the pacing loop: 0.34 of a
core for mdfeed's aiokafka producer, 0.12 for this one; at 20,000/s 0.40 against 0.19. In
the pipeline at the bench's fixed rate the ingest used 0.23 cores against 0.36, but
ingest -> bus went from p50 0.21 to 2.07 ms: a window waits for its delivery reports before
the next goes, and the reports reach the loop through a thread that must take the GIL
from the busy loop. Hence not the default; the latency would need windows pipelined.

Delivery reports come through ``poll()``, which a thread of the session's serves (it blocks
in librdkafka without the GIL); the window's last report resolves the window on the loop.
Records are placed in partitions by mdfeed's own key partitioner, as with aiokafka.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from functools import partial
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from mdfeed.kernel.bus._buffered import BufferedProducer, Record, SessionError
from mdfeed.kernel.bus._kafka_producing import KeyPlacement, ProducerBus, buffering_of
from mdfeed.kernel.bus.errors import BusUnavailableError
from mdfeed.kernel.bus.ports import ResumedCallback

__all__ = ["ConfluentProducer"]

log = logging.getLogger(__name__)

#: How long the report thread's poll() blocks before it looks at its stop flag.
_POLL_BLOCK_S = 0.05


class _Window:
    """One window's delivery reports: which records were refused, or are to be sent again.

    Reports arrive on the report thread (or a flush's); the last one resolves ``done`` on
    the event loop, so a window costs one hand-over between threads, not one per record.
    """

    __slots__ = ("_lock", "_loop", "done", "outstanding", "refused", "retry")

    def __init__(self, size: int, loop: asyncio.AbstractEventLoop) -> None:
        self._lock = threading.Lock()
        self._loop = loop
        self.done: asyncio.Future[None] = loop.create_future()
        self.outstanding = size
        #: Indexes of records refused for good and of records to send again.
        self.refused: list[int] = []
        self.retry: list[int] = []

    def settle(self, count: int) -> None:
        """``count`` records are accounted for (reported, or never queued)."""
        with self._lock:
            self.outstanding -= count
            finished = self.outstanding == 0
        if finished:
            self._loop.call_soon_threadsafe(_resolve, self.done)

    def report(self, index: int, error: KafkaError | None, _message: object) -> None:
        if error is not None:
            if error.retriable() or error.code() == KafkaError._MSG_TIMED_OUT:
                self.retry.append(index)
            else:
                log.error("kafka refused a record: %s", error)
                self.refused.append(index)
        self.settle(1)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class ConfluentProducer(BufferedProducer):
    """The buffered, idempotent producer of a :class:`KafkaBus`, on librdkafka."""

    def __init__(self, bus: ProducerBus, *, on_resumed: ResumedCallback | None) -> None:
        super().__init__(on_resumed=on_resumed, **buffering_of(bus))
        self._bus = bus
        self._placement = KeyPlacement(bus)
        self._client: Any = None  # confluent_kafka.Producer: untyped
        #: The thread that serves delivery reports (poll()) while a session is open.
        self._reports = threading.Thread()
        self._stop_reports = threading.Event()

    async def _open_session(self) -> None:
        bus = self._bus
        config = bus.config
        try:
            await bus.ensure_topics([config.tick_topic, config.chat_topic])
        except BusUnavailableError as exc:
            raise SessionError(str(exc)) from exc
        settings: dict[str, object] = {
            "bootstrap.servers": config.bootstrap_servers,
            "client.id": config.client_id,
            "enable.idempotence": True,
            "acks": "all",
            # Linger and spacing are the buffered drain's; this 0.1 ms is only long enough
            # for a window queued in one call to leave as one request (with 0 the first
            # record could go alone, and a consumer would learn of the rest a fetch later).
            "linger.ms": 0.1,
            "message.timeout.ms": bus.request_timeout_ms,
            "compression.type": bus.compression,
            "log_level": 3,  # errors only: reconnect attempts are the drain's to report
        }
        try:
            client = Producer(settings)
            # librdkafka connects lazily: ask for the cluster's metadata to know it is there.
            await asyncio.to_thread(client.list_topics, timeout=bus.request_timeout_ms / 1000)
        except KafkaException as exc:
            raise SessionError(f"kafka at {config.bootstrap_servers}: {exc}") from exc
        self._client = client
        self._stop_reports = threading.Event()
        self._reports = threading.Thread(
            target=_serve_reports,
            args=(client, self._stop_reports),
            name=f"{config.client_id}-kafka-reports",
            daemon=True,
        )
        self._reports.start()

    async def _deliver(self, window: list[Record]) -> tuple[list[Record], int]:
        client = self._client
        assert client is not None
        try:
            partitions = await self._placement.partitions_of(window)
        except BusUnavailableError as exc:
            log.warning("%s: %s", self._name, exc)
            return window, 0
        state = _Window(len(window), asyncio.get_running_loop())
        report = state.report
        # One produce_batch call per topic and partition (its per-message partition is not
        # honoured): librdkafka queues each at once, so a window leaves in as few requests
        # as it can (a record at a time would let the first go alone), in order.
        by_partition: dict[tuple[str, int], list[int]] = {}
        for index, record in enumerate(window):
            by_partition.setdefault((record[0], partitions[index]), []).append(index)
        unsent: list[int] = []
        for (topic, partition), indexes in by_partition.items():
            messages = [
                {"value": window[i][2], "key": window[i][1], "callback": partial(report, i)}
                for i in indexes
            ]
            try:
                queued = client.produce_batch(topic, messages, partition=partition)
            except (BufferError, KafkaException) as exc:
                log.warning("%s: produce failed: %s", self._name, exc)
                unsent += indexes
                continue
            if queued < len(messages):  # the queue was full for the rest: send them again
                unsent += [i for i, m in zip(indexes, messages, strict=True) if "_error" in m]
        if unsent:
            state.settle(len(unsent))
        await state.done
        retry = sorted(state.retry + unsent)
        return [window[i] for i in retry], len(state.refused)

    async def _close_session(self, *, abandon: bool) -> None:
        client, self._client = self._client, None
        self._placement.clear()
        if client is None:
            return
        self._stop_reports.set()
        await asyncio.to_thread(self._reports.join)
        if not abandon:
            left = await asyncio.to_thread(client.flush, self._stop_timeout_s)
            if not left:
                return
        # What is left was put back in our buffer already (or is given up at stop).
        client.purge()
        client.flush(0)


def _serve_reports(client: Any, stop: threading.Event) -> None:
    """Serve a producer's delivery reports until ``stop``; poll() blocks without the GIL."""
    while not stop.is_set():
        client.poll(_POLL_BLOCK_S)
