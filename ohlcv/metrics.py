"""The bar service's and the datafeed's metrics, read from their counters at scrape time.

=========================================  =========  ======================================
metric                                     type       meaning
=========================================  =========  ======================================
mdfeed_ohlcv_ticks_total                   counter    tick records consumed
mdfeed_ohlcv_bad_records_total             counter    undecodable tick records
mdfeed_ohlcv_bars_written_total            counter    bars upserted into the store
mdfeed_ohlcv_flushes_total                 counter    flushes (bars, checkpoints, commit)
mdfeed_ohlcv_flush_seconds                 histogram  time per successful flush
mdfeed_ohlcv_store_errors_total            counter    failed flushes (retried)
mdfeed_ohlcv_late_dropped_total            counter    ticks later than the allowed lateness
mdfeed_ohlcv_replayed_skipped_total        counter    redelivered ticks a checkpoint held
mdfeed_datafeed_requests_total             counter    requests by endpoint (route) and status
  {endpoint,status}
mdfeed_datafeed_request_seconds{endpoint}  histogram  time to answer (streams not timed)
mdfeed_datafeed_stream_clients             gauge      open /stream (live bars) connections
mdfeed_datafeed_chat_stream_clients        gauge      open /chat/{room}/stream connections
=========================================  =========  ======================================
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric

from mdfeed.kernel.bus import BusProducer
from mdfeed.kernel.metrics import MetricsServer, counter, gauge, labelled_histograms
from ohlcv.aggregator import BarService
from ohlcv.datafeed import Datafeed

__all__ = [
    "BarServiceCollector",
    "DatafeedCollector",
    "register_bar_metrics",
    "register_datafeed_metrics",
]


class BarServiceCollector:
    """Collects the metrics of one :class:`BarService`."""

    def __init__(self, service: BarService) -> None:
        self._service = service

    def collect(self) -> Iterator[Metric]:
        service = self._service
        stats = service.stats
        yield counter("mdfeed_ohlcv_ticks_total", "Tick records consumed.", stats.records)
        yield counter(
            "mdfeed_ohlcv_bad_records_total",
            "Tick records that could not be decoded.",
            stats.bad_records,
        )
        yield counter(
            "mdfeed_ohlcv_bars_written_total",
            "Bars upserted into the bar store.",
            stats.bars_written,
        )
        yield counter(
            "mdfeed_ohlcv_flushes_total",
            "Flushes: changed bars upserted, checkpoints saved, offsets committed.",
            stats.flushes,
        )
        yield service.flush_seconds.family(
            "mdfeed_ohlcv_flush_seconds", "Time per successful flush."
        )
        yield counter(
            "mdfeed_ohlcv_store_errors_total",
            "Flushes that failed on the bar store (retried; offsets not committed).",
            stats.store_errors,
        )
        yield counter(
            "mdfeed_ohlcv_late_dropped_total",
            "Ticks later than ohlcv.allowed_lateness_s behind their symbol, dropped.",
            service.aggregator.stats.late_dropped,
        )
        yield counter(
            "mdfeed_ohlcv_replayed_skipped_total",
            "Redelivered ticks already in a checkpoint's state, skipped.",
            stats.replayed_skipped,
        )


class DatafeedCollector:
    """Collects the metrics of one :class:`Datafeed`."""

    def __init__(self, datafeed: Datafeed) -> None:
        self._datafeed = datafeed

    def collect(self) -> Iterator[Metric]:
        datafeed = self._datafeed
        requests = CounterMetricFamily(
            "mdfeed_datafeed_requests_total",
            "HTTP requests answered, by endpoint (route) and status.",
            labels=["endpoint", "status"],
        )
        for (endpoint, status), count in sorted(datafeed.requests.items()):
            requests.add_metric([endpoint, str(status)], count)
        yield requests
        yield labelled_histograms(
            "mdfeed_datafeed_request_seconds",
            "Time to answer a request, by endpoint (event streams are not timed).",
            "endpoint",
            datafeed.request_seconds,
        )
        yield gauge(
            "mdfeed_datafeed_stream_clients",
            "Open /stream connections (live bars).",
            datafeed.hub.subscriber_count,
        )
        yield gauge(
            "mdfeed_datafeed_chat_stream_clients",
            "Open /chat/{room}/stream connections.",
            datafeed.chat_stream_count,
        )


def register_bar_metrics(
    metrics: MetricsServer, service: BarService, producer: BusProducer | None = None
) -> None:
    """Expose ``service`` on ``metrics``, and the producer of its bar updates if given."""
    metrics.register(BarServiceCollector(service))
    metrics.add_lag_source("ohlcv", service)
    if producer is not None:
        metrics.add_producer("bars", producer)


def register_datafeed_metrics(metrics: MetricsServer, datafeed: Datafeed) -> None:
    """Expose ``datafeed`` on ``metrics``."""
    metrics.register(DatafeedCollector(datafeed))
