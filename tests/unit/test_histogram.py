"""The kernel's latency histogram: what Prometheus is shown and what `mdfeed bench` reads.

The exposition side is in test_metrics.py (buckets, sum and count through the text format);
here: the bounds, percentiles, the largest value, and merging across processes.
"""

from __future__ import annotations

import json
import math

import pytest

from mdfeed.kernel.histogram import LATENCY_BUCKETS_S, Histogram, log2_bounds


def test_a_value_lands_in_the_first_bucket_at_or_above_it() -> None:
    hist = Histogram((1.0, 2.0, 4.0))
    for value in (0.5, 1.0, 1.5, 2.0, 4.0, 4.5):
        hist.observe(value)
    assert hist.counts == [2, 2, 1, 1]  # the last one is +Inf
    assert hist.count == 6
    assert hist.sum == 13.5
    assert hist.max == 4.5
    assert hist.mean() == pytest.approx(13.5 / 6)
    assert math.isnan(Histogram().mean())


def test_log2_bounds_double_every_per_doubling_buckets() -> None:
    bounds = log2_bounds(4, 3)
    assert bounds[0] == 0.0  # the bucket of zero (and below)
    assert bounds[1] == 1.0
    assert bounds[5] == 2.0
    assert bounds[-1] == 8.0
    assert len(bounds) == 1 + 4 * 3 + 1
    assert log2_bounds(4, 3) is bounds  # one tuple per layout: cheap to compare
    with pytest.raises(ValueError, match="positive"):
        log2_bounds(0, 3)


def test_a_percentile_is_its_bucket_s_geometric_middle_and_never_above_the_max() -> None:
    hist = Histogram(log2_bounds(1, 10))  # buckets (1, 2], (2, 4], ... (512, 1024]
    for value in (3, 3, 3, 100):
        hist.observe(value)
    assert hist.percentile(50.0) == pytest.approx(math.sqrt(2 * 4))
    assert hist.percentile(75.0) == pytest.approx(math.sqrt(2 * 4))
    assert hist.percentile(100.0) == 100  # the largest value is exact
    # The last value is alone in (64, 128]: its middle (90.5) is under the max.
    hist.observe(100)
    assert hist.percentile(99.0) == 100
    lone = Histogram(log2_bounds(1, 10))
    lone.observe(70)
    lone.observe(3)
    assert lone.percentile(50.0) == pytest.approx(math.sqrt(8))
    assert lone.percentile(99.0) == 70


def test_the_prometheus_buckets_give_percentiles_too() -> None:
    hist = Histogram()
    assert hist.bounds == LATENCY_BUCKETS_S
    for _ in range(99):
        hist.observe(0.003)  # in (0.0025, 0.005]
    hist.observe(7.0)  # past the last bound: +Inf
    assert hist.percentile(50.0) == pytest.approx(math.sqrt(0.0025 * 0.005))
    assert hist.percentile(100.0) == 7.0
    first = Histogram()
    first.observe(0.00001)
    first.observe(0.00002)
    assert first.percentile(50.0) == 0.00002  # the first bucket stands for its bound ...
    assert first.percentile(0.0) == 0.00002  # ... but never for more than the max


def test_histograms_merge_across_processes_through_json() -> None:
    bounds = log2_bounds()
    a, b = Histogram(bounds), Histogram(bounds)
    for value in (10, 20, 30):
        a.observe(value)
    b.observe(5_000)
    sent = json.dumps(b.to_json())
    assert len(sent) < 100  # sparse: the counts, not the 1,282 bounds
    a.merge(Histogram.from_json(json.loads(sent), bounds))
    assert (a.count, a.sum, a.max) == (4, 5_060, 5_000)
    assert a.percentile(100.0) == 5_000
    assert a.percentile(50.0) == pytest.approx(20, rel=0.012)
    again = Histogram.from_json(json.loads(json.dumps(a.to_json())), bounds)
    assert again.counts == a.counts
    assert (again.sum, again.max) == (a.sum, a.max)


def test_histograms_of_other_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="different bounds"):
        Histogram().merge(Histogram(log2_bounds()))
    data = Histogram(log2_bounds()).to_json()
    with pytest.raises(ValueError, match="1283 buckets read with bounds of 17"):
        Histogram.from_json(data)
    with pytest.raises(TypeError, match="expected a number"):
        Histogram.from_json({**data, "sum": "12"}, log2_bounds())


def test_coarse_bins_join_buckets_for_a_plot_on_a_log_axis() -> None:
    hist = Histogram(log2_bounds(32, 20))
    for value in (0, 1_000, 1_010, 1_100, 3_000):
        hist.observe(value)
    coarse = hist.coarse(2)  # two bins per doubling: from 2**(k/2) to 2**((k+1)/2)
    # 1,000 and 1,010 share the bin 2**9.5 .. 2**10 (724 .. 1024); the zero is left out.
    assert [count for _, count in coarse] == [2, 1, 1]
    assert [middle for middle, _ in coarse] == pytest.approx([2**9.75, 2**10.25, 2**11.75])
