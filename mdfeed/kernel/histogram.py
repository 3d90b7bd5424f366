"""The latency histogram: fixed buckets, cheap to observe on the tick path, exposed to
Prometheus, read as percentiles, and added up across processes.

One class serves both uses:

* the services' Prometheus histograms (``mdfeed_*_seconds``): the buckets of
  :data:`LATENCY_BUCKETS_S`, observed once per message or batch on the event loop, and
  exposed by a collector with :meth:`Histogram.family` (``le`` buckets, sum, count);
* `mdfeed bench` and the benchmarks in ``bench/``: latencies in nanoseconds in the fine
  buckets of :func:`log2_bounds` (32 per doubling, each about 2.2% wide, so a percentile
  read from them is within about 1.1% of the exact value, whatever the count), sent from
  the process that measured them as JSON (:meth:`Histogram.to_json`,
  :meth:`Histogram.from_json`) and added up with :meth:`Histogram.merge`.

A histogram knows no unit: its values are in the unit of its bounds. It is meant for
quantities that are not negative (durations, latencies): the largest value it keeps
starts at 0.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from functools import lru_cache
from itertools import pairwise

from prometheus_client.core import HistogramMetricFamily

__all__ = ["LATENCY_BUCKETS_S", "Histogram", "log2_bounds"]

#: Upper bounds (seconds) of the latency buckets: 50 us to 5 s, about 2-2.5x apart.
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.00005, 0.0001, 0.00025, 0.0005,
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip


@lru_cache(maxsize=8)
def log2_bounds(per_doubling: int = 32, doublings: int = 40) -> tuple[float, ...]:
    """Bounds ``0, 1, 2**(1/per_doubling), ..., 2**doublings``: a bucket for zero (and
    anything below it), then ``per_doubling`` buckets per doubling from 1.

    In nanoseconds the defaults reach 2**40 ns (about 18 minutes) in 1,282 bounds. The
    same tuple is returned for the same arguments, so histograms made from it compare
    their bounds at the cost of an identity check.
    """
    if per_doubling < 1 or doublings < 1:
        raise ValueError(f"log2_bounds needs positive arguments, got {per_doubling}, {doublings}")
    return (0.0, *(2.0 ** (k / per_doubling) for k in range(per_doubling * doublings + 1)))


class Histogram:
    """Counts per fixed bucket, their sum and the largest value.

    ``observe`` costs a bisect, an addition and a comparison, no lock: call it from one
    thread (the event loop). A value lands in the first bucket whose bound is at or above
    it (Prometheus' ``le``); values past the last bound land in ``+Inf``.
    """

    __slots__ = ("bounds", "counts", "max", "sum")

    def __init__(self, bounds: Sequence[float] = LATENCY_BUCKETS_S) -> None:
        if not isinstance(bounds, tuple) or not all(type(b) is float for b in bounds):
            bounds = tuple(float(b) for b in bounds)
        if not bounds or any(b >= c for b, c in pairwise(bounds)):
            raise ValueError(f"histogram bounds must be increasing and non-empty: {bounds}")
        self.bounds: tuple[float, ...] = bounds
        #: Per bucket (not cumulative); the last one is ``+Inf``.
        self.counts = [0] * (len(bounds) + 1)
        self.sum: float = 0
        #: The largest value observed (exact), 0 while none above 0 was.
        self.max: float = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        if value > self.max:  # noqa: PLR1730 - a comparison is cheaper than max() here
            self.max = value

    @property
    def count(self) -> int:
        """Values observed (the counts add up when read: ``observe`` stays cheaper)."""
        return sum(self.counts)

    def mean(self) -> float:
        count = self.count
        return self.sum / count if count else math.nan

    # -- Prometheus -----------------------------------------------------------------

    def cumulative(self) -> list[tuple[str, float]]:
        """(le, cumulative count) pairs as Prometheus exposes them, ``+Inf`` last."""
        out: list[tuple[str, float]] = []
        total = 0
        for bound, count in zip(self.bounds, self.counts, strict=False):
            total += count
            out.append((_float_text(bound), total))
        out.append(("+Inf", total + self.counts[-1]))
        return out

    def family(self, name: str, documentation: str) -> HistogramMetricFamily:
        """This histogram as a metric family without labels."""
        return HistogramMetricFamily(
            name, documentation, buckets=self.cumulative(), sum_value=self.sum
        )

    # -- percentiles ----------------------------------------------------------------

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0-100): the geometric middle of the bucket holding it
        (never above the largest value, which is exact); NaN when empty."""
        if not 0.0 <= q <= 100.0:
            raise ValueError(f"percentile must be within 0..100, got {q}")
        count = self.count
        if count == 0:
            return math.nan
        rank = max(1, math.ceil(count * q / 100.0))
        if rank >= count:
            return float(self.max)  # the largest value is known exactly
        seen = 0
        for index, n in enumerate(self.counts):
            seen += n
            if seen >= rank:
                return min(self._middle(index), float(self.max))
        return float(self.max)  # pragma: no cover - the counts add up to count

    def _middle(self, index: int) -> float:
        """The value a bucket stands for: the geometric middle of its bounds; its upper
        bound when the bucket below reaches zero; the largest value for ``+Inf``."""
        bounds = self.bounds
        if index >= len(bounds):
            return float(self.max)
        upper = bounds[index]
        lower = bounds[index - 1] if index else 0.0
        if lower <= 0.0 or upper <= 0.0:
            return upper
        return math.sqrt(lower * upper)

    def coarse(self, per_doubling: int = 8) -> list[tuple[float, int]]:
        """(bin middle, count) with ``per_doubling`` bins per doubling, in order, without
        the bucket at or below zero: what a plot on a log axis shows."""
        bins: dict[int, int] = {}
        for index, n in enumerate(self.counts):
            middle = self._middle(index)
            if n and middle > 0.0:
                key = math.floor(math.log2(middle) * per_doubling)
                bins[key] = bins.get(key, 0) + n
        return [(2.0 ** ((k + 0.5) / per_doubling), n) for k, n in sorted(bins.items())]

    # -- across processes -------------------------------------------------------------

    def merge(self, other: Histogram) -> None:
        """Add ``other``'s counts to this one's; both must have the same bounds."""
        if other.bounds is not self.bounds and other.bounds != self.bounds:
            raise ValueError("cannot merge histograms with different bounds")
        counts = self.counts
        for index, n in enumerate(other.counts):
            if n:
                counts[index] += n
        self.sum += other.sum
        self.max = max(self.max, other.max)

    def to_json(self) -> dict[str, object]:
        """The counts (sparse, by bucket index), sum and largest value; the bounds are not
        sent: the reader names them (:meth:`from_json`), and ``buckets`` checks they match."""
        return {
            "buckets": len(self.counts),
            "counts": {str(i): n for i, n in enumerate(self.counts) if n},
            "sum": self.sum,
            "max": self.max,
        }

    @classmethod
    def from_json(
        cls, data: Mapping[str, object], bounds: Sequence[float] = LATENCY_BUCKETS_S
    ) -> Histogram:
        """A histogram with ``bounds`` from what :meth:`to_json` wrote with the same bounds."""
        hist = cls(bounds)
        buckets = _number(data.get("buckets"))
        if buckets != len(hist.counts):
            raise ValueError(
                f"histogram of {buckets} buckets read with bounds of {len(hist.counts)}"
            )
        counts = data.get("counts", {})
        if not isinstance(counts, Mapping):
            raise TypeError("histogram counts must be an object")
        for index, n in counts.items():
            hist.counts[int(index)] = int(_number(n))
        hist.sum = _number(data.get("sum", 0))
        hist.max = _number(data.get("max", 0))
        return hist


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    return value


def _float_text(value: float) -> str:
    # Prometheus' own clients write bucket bounds as Go/Python floats do: 0.00005 is "5e-05".
    return repr(float(value))
