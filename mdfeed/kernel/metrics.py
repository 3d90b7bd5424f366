"""Metrics: a Prometheus endpoint per process, fed from counters the services keep anyway.

Policy: nothing on the tick path calls prometheus_client (its metrics take a lock per
update). Services keep plain ints (``FixIngest.stats``, ``TickFanout.records``, lane
stats, ...) and plain :class:`Histogram` objects, updated once per message or batch;
custom collectors read them when Prometheus scrapes, in the event loop thread that
updates them, so a scrape sees a consistent picture and needs no lock.

What lives here is the generic part: helpers that build metric families (histograms,
bus producers, consumer lag) and :class:`MetricsServer`, which serves ``GET /metrics``
from a per-process registry. The fixed-bucket :class:`Histogram` is
:mod:`mdfeed.kernel.histogram`'s (the one `mdfeed bench` reads percentiles from too),
re-exported here with its default buckets. Each component defines its own
metrics next to it (``fix_session.metrics``, ``fanout.metrics``, ``ohlcv.metrics``).

Ports: ``metrics.port = 0`` (the default) means the command's own port from
:data:`DEFAULT_PORTS`, so every command can run side by side on one host without
configuration; any other value is used as it is.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from mdfeed.kernel.config import ConfigError, MetricsConfig
from mdfeed.kernel.histogram import LATENCY_BUCKETS_S, Histogram
from mdfeed.kernel.lifecycle import Service

if TYPE_CHECKING:
    from mdfeed.kernel.bus import BusProducer

__all__ = [
    "DEFAULT_PORTS",
    "LATENCY_BUCKETS_S",
    "Collector",
    "FunctionCollector",
    "Histogram",
    "LagSource",
    "MetricsServer",
    "consumer_lag_family",
    "counter",
    "gauge",
    "metrics_port",
    "producer_families",
]

log = logging.getLogger(__name__)

#: The metrics port of each command when ``metrics.port`` is 0.
DEFAULT_PORTS: Mapping[str, int] = {
    "run": 9460,
    "ingest": 9461,
    "fanout": 9462,
    "aggregate": 9463,
    "datafeed": 9464,
}


def labelled_histograms(
    name: str, documentation: str, label: str, histograms: Mapping[str, Histogram]
) -> HistogramMetricFamily:
    """One histogram family with one labelled series per entry of ``histograms``."""
    family = HistogramMetricFamily(name, documentation, labels=[label])
    for value, histogram in sorted(histograms.items()):
        family.add_metric([value], histogram.cumulative(), histogram.sum)
    return family


def counter(
    name: str,
    documentation: str,
    value: float | Mapping[tuple[str, ...], float],
    *,
    labels: Sequence[str] = (),
) -> CounterMetricFamily:
    """A counter family: one value, or {label values: value} with ``labels`` named."""
    if isinstance(value, int | float):
        return CounterMetricFamily(name, documentation, value=value)
    family = CounterMetricFamily(name, documentation, labels=labels)
    for label_values, sample in value.items():
        family.add_metric(list(label_values), sample)
    return family


def gauge(
    name: str,
    documentation: str,
    value: float | Mapping[tuple[str, ...], float],
    *,
    labels: Sequence[str] = (),
) -> GaugeMetricFamily:
    """A gauge family: one value, or {label values: value} with ``labels`` named."""
    if isinstance(value, int | float):
        return GaugeMetricFamily(name, documentation, value=value)
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for label_values, sample in value.items():
        family.add_metric(list(label_values), sample)
    return family


class FunctionCollector:
    """A collector whose ``collect()`` is a function returning metric families."""

    def __init__(self, collect: Callable[[], Iterable[Metric]]) -> None:
        self._collect = collect

    def collect(self) -> Iterator[Metric]:
        yield from self._collect()


def producer_families(producers: Mapping[str, BusProducer]) -> list[Metric]:
    """The bus producers' counters, labelled ``producer`` (what each one publishes)."""
    stats = {name: p.stats for name, p in sorted(producers.items())}
    if not stats:
        return []

    def per(attr: str) -> dict[tuple[str, ...], float]:
        return {(name,): float(getattr(s, attr)) for name, s in stats.items()}

    labels = ["producer"]
    return [
        gauge(
            "mdfeed_bus_producer_buffered_records",
            "Records in the producer's buffer: waiting, or sent and not confirmed yet.",
            per("buffered"),
            labels=labels,
        ),
        counter(
            "mdfeed_bus_producer_acked_records_total",
            "Records the bus confirmed.",
            per("acked"),
            labels=labels,
        ),
        counter(
            "mdfeed_bus_producer_dropped_records_total",
            "Records refused because the producer's buffer was full (the newest are dropped).",
            per("dropped"),
            labels=labels,
        ),
        gauge(
            "mdfeed_bus_producer_connected",
            "1 while the bus is reachable and confirms deliveries.",
            per("connected"),
            labels=labels,
        ),
    ]


class LagSource(Protocol):
    """A bus consumer, or a service that owns one (``TickFanout``, ``BarService``...)."""

    def lag(self) -> dict[str, int]: ...


def consumer_lag_family(consumers: Mapping[str, LagSource]) -> GaugeMetricFamily:
    """Records behind the end of the log, per consumer and topic (assigned partitions)."""
    family = GaugeMetricFamily(
        "mdfeed_consumer_lag_records",
        "Records between a consumer's position and the end of its assigned partitions.",
        labels=["consumer", "topic"],
    )
    for name, consumer in sorted(consumers.items()):
        for topic, lag in sorted(consumer.lag().items()):
            family.add_metric([name, topic], lag)
    return family


def metrics_port(config: MetricsConfig, command: str) -> int:
    """The port ``command`` serves metrics on: ``metrics.port``, or its default when 0."""
    if config.port:
        return config.port
    return DEFAULT_PORTS[command]


class MetricsServer(Service):
    """``GET /metrics`` on ``metrics.host:port`` for one command, from its own registry.

    ``async with MetricsServer(config.metrics, "fanout") as metrics:`` binds the port
    (a port in use raises :class:`~mdfeed.kernel.config.ConfigError` naming ``metrics.port``),
    then ``metrics.register(collector)`` as the components come up. Bus producers and
    consumers are added by name (``add_producer``, ``add_lag_source``) rather than by
    each component's collector, so that one process with several components (``mdfeed
    run``) still exposes each of those metric families once. With ``metrics.enabled =
    false`` nothing listens and ``url`` is None. The registry also holds the process
    collector (CPU seconds, resident memory, open files).
    """

    def __init__(self, config: MetricsConfig, command: str) -> None:
        if command not in DEFAULT_PORTS:
            raise ValueError(f"unknown command {command!r}: one of {', '.join(DEFAULT_PORTS)}")
        self.config = config
        self.command = command
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self._producers: dict[str, BusProducer] = {}
        self._lag_sources: dict[str, LagSource] = {}
        self.registry.register(FunctionCollector(self._bus_families))
        self._runner: web.AppRunner | None = None
        self._port = 0

    @property
    def port(self) -> int:
        """The bound port once started (0 when disabled)."""
        return self._port

    @property
    def url(self) -> str | None:
        if self._runner is None:
            return None
        return f"http://{self.config.host}:{self._port}/metrics"

    def describe(self) -> str:
        """One line for the start-up banner."""
        url = self.url
        return f"metrics on {url}" if url else "metrics: off (metrics.enabled = false)"

    def register(self, collector: Collector) -> None:
        self.registry.register(collector)

    def add_producer(self, name: str, producer: BusProducer) -> None:
        """Expose ``producer``'s counters as ``mdfeed_bus_producer_*{producer=name}``."""
        self._producers[name] = producer

    def add_lag_source(self, name: str, source: LagSource) -> None:
        """Expose ``source.lag()`` as ``mdfeed_consumer_lag_records{consumer=name}``."""
        self._lag_sources[name] = source

    def _bus_families(self) -> list[Metric]:
        families = producer_families(self._producers)
        if self._lag_sources:
            families.append(consumer_lag_family(self._lag_sources))
        return families

    def app(self) -> web.Application:
        app = web.Application()

        async def handler(request: web.Request) -> web.Response:
            # In the event loop, like every update of the counters it reads: no lock needed.
            body = generate_latest(self.registry)
            return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

        app.router.add_get("/metrics", handler)
        return app

    async def start(self) -> None:
        if self._runner is not None or not self.config.enabled:
            return
        port = metrics_port(self.config, self.command)
        runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        # Bind here rather than in aiohttp's TCPSite: a port taken between two processes
        # starting at once must fail as EADDRINUSE, naming the key, every time (uvloop's
        # create_server has been seen to return a server without sockets instead).
        try:
            family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
            sock = socket.create_server((self.config.host, port), family=family)
        except OSError as exc:
            await runner.cleanup()
            where = f"{self.config.host}:{port}"
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"metrics.port: {where} is already in use (another 'mdfeed "
                    f"{self.command}'?); set another with MDFEED__METRICS__PORT"
                ) from None
            raise ConfigError(
                f"metrics.host/metrics.port: cannot listen on {where}: {exc}"
            ) from None
        site = web.SockSite(runner, sock)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            sock.close()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        log.info("metrics on http://%s:%d/metrics", self.config.host, self._port)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
