"""The ingest's metrics, read from ``FixIngest.stats`` and its producer at scrape time.

=========================================  =========  ======================================
metric                                     type       meaning
=========================================  =========  ======================================
mdfeed_ingest_fix_messages_total           counter    FIX application messages received
mdfeed_ingest_ticks_total                  counter    ticks handed to the bus producer
mdfeed_ingest_rejected_total{reason}       counter    decode, normalize (refused entries),
                                                      session_reject (35=3 sent),
                                                      resend_request (35=2 sent: a gap)
mdfeed_ingest_suppressed_ticks_total       counter    increments held back after bus drops
mdfeed_ingest_latency_seconds              histogram  message received -> ticks to producer
mdfeed_ingest_stage_seconds_total{stage}   counter    time in decode, normalize, produce
mdfeed_fix_logged_on                       gauge      1 while the FIX session is logged on
mdfeed_fix_logons_total                    counter    logons (reconnects show here)
mdfeed_bus_producer_*{producer="ingest"}   various    see mdfeed.kernel.metrics.producer_families
=========================================  =========  ======================================
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import Metric

from fix_session.ingest import FixIngest
from mdfeed.kernel.metrics import MetricsServer, counter, gauge

__all__ = ["IngestCollector", "register_ingest_metrics"]


class IngestCollector:
    """Collects the metrics of one :class:`FixIngest` (the table in the module docstring)."""

    def __init__(self, ingest: FixIngest) -> None:
        self._ingest = ingest

    def collect(self) -> Iterator[Metric]:
        ingest = self._ingest
        stats = ingest.stats
        yield counter(
            "mdfeed_ingest_fix_messages_total",
            "FIX application messages received from the venue.",
            stats.messages_in,
        )
        yield counter(
            "mdfeed_ingest_ticks_total", "Ticks handed to the bus producer.", stats.ticks_out
        )
        yield counter(
            "mdfeed_ingest_rejected_total",
            "FIX messages rejected, by where: the codec, the normalizer, QuickFIX session "
            "rejects sent, resend requests sent after a gap.",
            {
                ("decode",): stats.decode_errors,
                ("normalize",): stats.rejected_messages,
                ("session_reject",): stats.session_rejects_sent,
                ("resend_request",): stats.resend_requests_sent,
            },
            labels=["reason"],
        )
        yield counter(
            "mdfeed_ingest_suppressed_ticks_total",
            "Increments held back after the bus dropped ticks, until the symbol's snapshot.",
            stats.ticks_suppressed,
        )
        normalizer = ingest.normalizer
        yield counter(
            "mdfeed_book_faults_total",
            "Books found that cannot be right, by reason (docs/book-models.md): the symbol's "
            "ticks carry book_invalid until its next snapshot.",
            {(reason,): n for reason, n in normalizer.faults.items()},
            labels=["reason"],
        )
        yield counter(
            "mdfeed_book_levels_trimmed_total",
            "Book levels not kept because a side held market_depth + book_margin levels.",
            normalizer.stats.levels_trimmed,
        )
        yield ingest.latency.family(
            "mdfeed_ingest_latency_seconds",
            "From a FIX message's arrival to its ticks handed to the bus producer.",
        )
        yield counter(
            "mdfeed_ingest_stage_seconds_total",
            "Event loop time spent per stage of the ingest.",
            {(stage,): ns * 1e-9 for stage, ns in sorted(stats.stage_ns.items())},
            labels=["stage"],
        )
        yield gauge(
            "mdfeed_fix_logged_on",
            "1 while the FIX session is logged on.",
            1 if ingest.logged_on else 0,
        )
        yield counter("mdfeed_fix_logons_total", "FIX session logons.", stats.logons)


def register_ingest_metrics(metrics: MetricsServer, ingest: FixIngest) -> None:
    """Expose ``ingest`` on ``metrics``: its collector and its producer."""
    metrics.register(IngestCollector(ingest))
    metrics.add_producer("ingest", ingest.producer)
