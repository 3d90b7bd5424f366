"""Latency histograms and rate series for `mdfeed bench`: mergeable across processes.

A ``LatencyHistogram`` keeps counts per logarithmic bucket, 32 buckets per power of two
(each about 2.2% wide), so a percentile read from it is within about 1.1% of the exact
value, whatever the count. Histograms travel between processes as JSON
(``to_json``/``from_json``) and add up with ``merge``. Values below one nanosecond (a hop
whose two clocks read the same millisecond, see ``HOPS``) go into a zero bucket.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "HOPS",
    "PERCENTILES",
    "LatencyHistogram",
    "RateSample",
    "recovery_time_s",
]

#: Buckets per power of two.
_STEPS = 32
_ZERO = -1

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


class LatencyHistogram:
    """Counts of nanosecond latencies in log buckets; percentiles, merge, JSON."""

    __slots__ = ("count", "counts", "max_ns", "sum_ns")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.count = 0
        self.sum_ns = 0
        self.max_ns = 0

    @staticmethod
    def bucket_value(key: int, steps: int = _STEPS) -> float:
        """The geometric middle of a bucket, in nanoseconds (0 for the zero bucket), of a
        bucketing with ``steps`` buckets per doubling."""
        if key == _ZERO:
            return 0.0
        return float(2.0 ** ((key + 0.5) / steps))

    def add(self, value_ns: int) -> None:
        key = _ZERO if value_ns < 1 else int(math.log2(value_ns) * _STEPS)
        counts = self.counts
        counts[key] = counts.get(key, 0) + 1
        self.count += 1
        if value_ns > 0:
            self.sum_ns += value_ns
            self.max_ns = max(self.max_ns, value_ns)

    def merge(self, other: LatencyHistogram) -> None:
        for key, n in other.counts.items():
            self.counts[key] = self.counts.get(key, 0) + n
        self.count += other.count
        self.sum_ns += other.sum_ns
        self.max_ns = max(self.max_ns, other.max_ns)

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0-100) in nanoseconds; NaN when empty."""
        if not 0.0 <= q <= 100.0:
            raise ValueError(f"percentile must be within 0..100, got {q}")
        if self.count == 0:
            return math.nan
        rank = max(1, math.ceil(self.count * q / 100.0))
        if rank >= self.count:
            return float(self.max_ns)  # the largest value is known exactly
        seen = 0
        for key in sorted(self.counts):
            seen += self.counts[key]
            if seen >= rank:
                return min(self.bucket_value(key), float(self.max_ns))
        return float(self.max_ns)  # pragma: no cover - the counts add up to count

    def coarse(self, per_doubling: int = 8) -> list[tuple[float, int]]:
        """(bucket middle in ns, count) with ``per_doubling`` buckets per doubling (a divisor
        of 32), in order, without the zero bucket: what a plot on a log axis shows."""
        merge = _STEPS // per_doubling
        bins: dict[int, int] = {}
        for key, n in self.counts.items():
            if key != _ZERO:
                bins[key // merge] = bins.get(key // merge, 0) + n
        return [(self.bucket_value(k, per_doubling), n) for k, n in sorted(bins.items())]

    def mean(self) -> float:
        return self.sum_ns / self.count if self.count else math.nan

    def summary_ms(self, points: Sequence[float] = PERCENTILES) -> dict[str, float | int]:
        """``{"count", "p50", ..., "max", "mean"}`` with times in milliseconds."""
        out: dict[str, float | int] = {"count": self.count}
        for q in points:
            out[_label(q)] = round(self.percentile(q) / 1e6, 4)
        out["max"] = round(self.max_ns / 1e6, 4)
        out["mean"] = round(self.mean() / 1e6, 4)
        return out

    def to_json(self) -> dict[str, object]:
        return {
            "counts": {str(k): n for k, n in self.counts.items()},
            "count": self.count,
            "sum_ns": self.sum_ns,
            "max_ns": self.max_ns,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> LatencyHistogram:
        hist = cls()
        counts = data.get("counts", {})
        if not isinstance(counts, Mapping):
            raise TypeError("histogram counts must be an object")
        hist.counts = {int(k): int(v) for k, v in counts.items()}
        hist.count = _int(data.get("count", 0))
        hist.sum_ns = _int(data.get("sum_ns", 0))
        hist.max_ns = _int(data.get("max_ns", 0))
        return hist


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(f"expected a number, got {value!r}")
    return int(value)


def _label(q: float) -> str:
    return "p" + (f"{q:g}".replace(".", "_") if q != int(q) else str(int(q)))


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
