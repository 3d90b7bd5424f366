"""Latency figures and rate series of `mdfeed bench` and the fanout benchmarks.

Latencies are kept in the kernel's :class:`~mdfeed.kernel.histogram.Histogram` with the
fine buckets of :data:`LATENCY_BOUNDS_NS` (32 per doubling of nanoseconds, each about 2.2%
wide, so a percentile read from them is within about 1.1% of the exact value, whatever
the count). They travel between processes as JSON (``to_json``, :func:`latency_from_json`)
and add up with ``merge``. A latency below zero (a hop whose two clocks read the same
millisecond, see ``HOPS``) counts as zero, and every one is observed as a float:
:func:`clamped`.

Rates are counted per bucket of :data:`BUCKET_NS` of wall time in each process
(``time.time_ns``: one clock on one machine) and read over a window with
:func:`window_rate`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from mdfeed.kernel.histogram import Histogram, log2_bounds

__all__ = [
    "BUCKET_NS",
    "HOPS",
    "LATENCY_BOUNDS_NS",
    "PERCENTILES",
    "RateSample",
    "clamped",
    "latency_from_json",
    "latency_histogram",
    "merge_counts",
    "percentiles_ms",
    "recovery_time_s",
    "summary_ms",
    "window_rate",
]

#: The buckets of every latency histogram of the harness, in nanoseconds: zero, then 32
#: per doubling from 1 ns to 2**40 ns.
LATENCY_BOUNDS_NS: tuple[float, ...] = log2_bounds(32, 40)

#: Receipt counts are kept per bucket of this many nanoseconds of wall time.
BUCKET_NS = 50_000_000

#: The hops a tick's timestamps delimit, in order: (name, from field, to field). The client's
#: receive time is ``client``. venue_time_ns has millisecond resolution (FIX UTCTimeOnly)
#: and bus_time_ns too (Kafka record timestamps), so the hops next to them carry up to
#: 1 ms of rounding each; the end-to-end figures from ingest on are exact.
HOPS: tuple[tuple[str, str, str], ...] = (
    ("venue->ingest", "venue", "ingest"),
    ("ingest->bus", "ingest", "bus"),
    ("bus->fanout", "bus", "fanout"),
    ("fanout->client", "fanout", "client"),
    ("ingest->client", "ingest", "client"),
    ("venue->client", "venue", "client"),
)

#: The percentiles reported for every hop.
PERCENTILES: tuple[float, ...] = (50.0, 90.0, 99.0, 99.9)


def latency_histogram() -> Histogram:
    """An empty histogram of nanosecond latencies (:data:`LATENCY_BOUNDS_NS`)."""
    return Histogram(LATENCY_BOUNDS_NS)


def latency_from_json(data: Mapping[str, object]) -> Histogram:
    """A latency histogram another process sent (``Histogram.to_json``)."""
    return Histogram.from_json(data, LATENCY_BOUNDS_NS)


def clamped(latency_ns: int) -> float:
    """A latency as the histograms take it: below zero counts as zero, and a float (which
    the float bounds compare with in half the time an int takes)."""
    return latency_ns * 1.0 if latency_ns > 0 else 0.0


def summary_ms(
    hist: Histogram, points: Sequence[float] = PERCENTILES
) -> dict[str, float | int | None]:
    """``{"count", "p50", ..., "max", "mean"}`` of a nanosecond histogram, times in ms;
    the times are None when it is empty (a slow rate can leave a hop unmeasured)."""
    out: dict[str, float | int | None] = {"count": hist.count}
    empty = not hist.count
    for q in points:
        out[_label(q)] = None if empty else round(hist.percentile(q) / 1e6, 4)
    out["max"] = None if empty else round(hist.max / 1e6, 4)
    out["mean"] = None if empty else round(hist.mean() / 1e6, 4)
    return out


def percentiles_ms(hist: Histogram, points: Sequence[float]) -> list[float]:
    """The given percentiles (0-100) of a nanosecond histogram, in ms (NaN when empty)."""
    return [hist.percentile(q) / 1e6 for q in points]


def _label(q: float) -> str:
    return "p" + (f"{q:g}".replace(".", "_") if q != int(q) else str(int(q)))


def window_rate(buckets: Mapping[int, int], from_ns: int, to_ns: int) -> float:
    """Per-second rate of the counts in the whole buckets inside ``[from_ns, to_ns)``."""
    first = -(-from_ns // BUCKET_NS)
    last = to_ns // BUCKET_NS  # exclusive
    if last <= first:
        return 0.0
    total = sum(buckets.get(b, 0) for b in range(first, last))
    return total / ((last - first) * BUCKET_NS / 1e9)


def merge_counts(parts: Iterable[Mapping[str, int]]) -> dict[int, int]:
    """Per-bucket counts of several processes (JSON: the keys are strings) added up."""
    out: dict[int, int] = {}
    for part in parts:
        for key, count in part.items():
            out[int(key)] = out.get(int(key), 0) + count
    return out


@dataclass(frozen=True, slots=True)
class RateSample:
    """One sampling interval of a scenario: per-stage rates and the clients' latency."""

    #: Seconds since the scenario started (the end of the interval).
    t_s: float
    #: Target rate of the venue during the interval.
    target_per_s: float
    #: Per stage (venue, ingest, fanout_in, grpc_out, mqtt_out, clients): ticks per second.
    rates: Mapping[str, float]
    #: Largest venue-to-client latency a recording client saw in the interval, ms (NaN: none).
    client_max_ms: float
    #: Consumer lag of the fanout at the end of the interval, records.
    fanout_lag: float
    #: The interval's length in seconds (rate x span = the counters' difference).
    span_s: float = 0.0


def recovery_time_s(
    samples: Iterable[RateSample],
    *,
    burst_end_s: float,
    threshold_ms: float,
    hold_s: float = 2.0,
) -> float | None:
    """Seconds from ``burst_end_s`` until the clients' worst latency is back under
    ``threshold_ms`` and stays there for ``hold_s``; None when that never happens.

    Intervals with no latency reading (nothing received) do not count as recovered.
    """
    recovered_at: float | None = None
    for sample in samples:
        if sample.t_s <= burst_end_s:
            continue
        ok = not math.isnan(sample.client_max_ms) and sample.client_max_ms <= threshold_ms
        if not ok:
            recovered_at = None
            continue
        if recovered_at is None:
            recovered_at = sample.t_s
        if sample.t_s - recovered_at >= hold_s:
            return max(0.0, recovered_at - burst_end_s)
    return None
