"""The pieces of `mdfeed bench` that need no servers: histograms, verdicts, results files."""

from __future__ import annotations

import io
import json
import math
import time
import tomllib
from pathlib import Path

import pytest

from bench.harness.cli import _scenarios
from bench.harness.pipeline import Counters
from bench.harness.report import summary_lines, write_results
from bench.harness.scenarios import (
    Progress,
    ScenarioOptions,
    ScenarioResult,
    judge_step,
    run_burst,
    run_max,
)
from bench.harness.stats import (
    HOPS,
    RateSample,
    clamped,
    latency_from_json,
    latency_histogram,
    merge_counts,
    percentiles_ms,
    recovery_time_s,
    summary_ms,
    window_rate,
)
from bench.harness.subscribers import HopRecorder
from mdfeed.kernel.config import build_config
from proto import mdfeed_pb2 as pb


def test_percentiles_are_within_the_bucket_width_of_the_exact_value() -> None:
    hist = latency_histogram()
    values = list(range(1_000, 1_001_000, 1_000))  # 1 us .. 1 ms, 1000 values
    for v in values:
        hist.observe(v)
    for q in (50.0, 90.0, 99.0, 99.9):
        exact = values[math.ceil(len(values) * q / 100) - 1]
        assert hist.percentile(q) == pytest.approx(exact, rel=0.012)
    assert hist.percentile(100.0) == 1_000_000
    assert hist.count == 1000
    assert hist.max == 1_000_000
    assert hist.mean() == pytest.approx(sum(values) / len(values))
    assert percentiles_ms(hist, (50.0, 100.0)) == [pytest.approx(0.5, rel=0.012), 1.0]


def test_zero_and_negative_latencies_fall_in_the_zero_bucket() -> None:
    hist = latency_histogram()
    for v in (-500_000, 0, 0, 2_000_000):
        hist.observe(clamped(v))
    assert hist.percentile(50.0) == 0.0  # three of four are at or under zero
    assert hist.percentile(99.0) == pytest.approx(2_000_000, rel=0.012)
    assert hist.sum == 2_000_000  # a latency below zero adds nothing to the mean
    assert math.isnan(latency_histogram().percentile(50.0))
    with pytest.raises(ValueError, match=r"0\.\.100"):
        hist.percentile(101.0)


def test_histograms_merge_and_survive_json() -> None:
    a, b = latency_histogram(), latency_histogram()
    for v in (10_000, 20_000):
        a.observe(v)
    b.observe(5_000_000)
    merged = latency_from_json(json.loads(json.dumps(a.to_json())))
    merged.merge(latency_from_json(b.to_json()))
    assert merged.count == 3
    assert merged.max == 5_000_000
    assert merged.percentile(99.0) == pytest.approx(5_000_000, rel=0.012)
    summary = summary_ms(merged)
    assert summary["p50"] == pytest.approx(0.02, rel=0.012)
    assert summary["count"] == 3
    assert summary["max"] == 5.0
    assert summary["mean"] == pytest.approx(5_030_000 / 3 / 1e6, abs=1e-4)
    assert list(summary) == ["count", "p50", "p90", "p99", "p99_9", "max", "mean"]
    # An empty histogram (a hop a slow rate left unmeasured) has no times, and its summary
    # still goes into results.json, which refuses NaN.
    empty = summary_ms(latency_histogram())
    assert empty["count"] == 0
    assert all(empty[k] is None for k in list(empty)[1:])
    json.dumps(empty, allow_nan=False)


def test_rates_are_read_from_the_whole_buckets_of_a_window() -> None:
    # Two processes' receipts per 50 ms bucket, as JSON gives them (string keys).
    merged = merge_counts([{"20": 100, "21": 100}, {"21": 50, "22": 100, "23": 999}])
    assert merged == {20: 100, 21: 150, 22: 100, 23: 999}
    # [1.00 s, 1.15 s): the buckets from 20 (1.00 s) to 22, 350 ticks in 0.15 s.
    assert window_rate(merged, 1_000_000_000, 1_150_000_000) == pytest.approx(350 / 0.15)
    # A window's partial buckets at either end are left out.
    assert window_rate(merged, 1_010_000_000, 1_160_000_000) == pytest.approx(250 / 0.1)
    assert window_rate(merged, 1_010_000_000, 1_040_000_000) == 0.0


def test_a_tick_is_timed_on_every_hop_its_stamps_delimit() -> None:
    recorder = HopRecorder()
    tick = pb.Tick(
        symbol="S0001",
        seq=1,
        venue_time_ns=1_000_000_000,
        ingest_time_ns=1_000_400_000,
        bus_time_ns=1_002_000_000,
        fanout_time_ns=1_002_500_000,
    )
    recorder.record([tick], client_ns=1_003_000_000)
    got = {name: h.max for name, h in recorder.hops.items()}
    assert got == {
        "venue->ingest": 400_000,
        "ingest->bus": 1_600_000,
        "bus->fanout": 500_000,
        "fanout->client": 500_000,
        "ingest->client": 2_600_000,
        "venue->client": 3_000_000,
    }
    assert recorder.take_window_max() == 3_000_000
    assert recorder.take_window_max() is None  # a window ends when it is read
    # Without the fanout's stamps only the hops both ends of which are known count.
    recorder.record([pb.Tick(symbol="S0001", seq=2, venue_time_ns=5, ingest_time_ns=9)], 20)
    taken = recorder.take_histograms()
    assert taken["bus->fanout"].count == 1
    assert taken["venue->ingest"].count == 2
    assert all(h.count == 0 for h in recorder.hops.values())


def test_one_hop_in_a_window_is_timed_as_the_fanout_benchmark_does() -> None:
    recorder = HopRecorder([("ingest->client", "ingest", "client")])
    recorder.window = (1_000, 2_000)  # receipts from 1,000 ns up to 2,000 ns
    ticks = [
        pb.Tick(symbol="S0001", seq=1, ingest_time_ns=900),
        pb.Tick(symbol="S0001", seq=2, ingest_time_ns=1_600),  # a later clock: zero
        pb.Tick(symbol="S0001", seq=3),  # not stamped: not timed
    ]
    recorder.record(ticks, client_ns=1_500)
    recorder.record(ticks, client_ns=2_000)  # outside the window
    (hist,) = recorder.take_histograms().values()
    assert (hist.count, hist.max, hist.sum) == (2, 600, 600)
    assert recorder.take_window_max() is None  # no venue hop, no venue-to-client worst


def test_a_subscriber_process_is_driven_with_json_lines() -> None:
    from bench.harness.children import Child, ChildError

    child = Child("bench.harness.subscribers", "raw", "--port", "9")
    try:
        ready = child.read(timeout_s=60)
        assert ready["ready"] is True
        assert ready["pid"] == child.pid
        report = child.request(cmd="report")
        assert (report["ticks"], report["buckets"], report["errors"]) == (0, {}, [])
        assert child.request(cmd="histograms").keys() == {name for name, _, _ in HOPS}
        with pytest.raises(ChildError, match="unknown command 'warp'"):
            child.request(cmd="warp")
        assert child.request(cmd="sample")["window_max_ns"] is None  # still up
    finally:
        child.close()
    assert child.proc.returncode == 0


def test_benchmarks_refuse_the_pure_python_source_of_a_compiled_module() -> None:
    from bench.harness.children import check_compiled, compiled_modules

    files = compiled_modules()
    assert set(files) == {
        "ohlcv.bars",
        "fix_spec.codec",
        "fix_session.normalizer",
        "fix_session.tick_core",
        "fix_session.tick_encoding",
        "fix_spec.md_columns",
    }
    check_compiled(files)  # the tests, like the benchmarks, import the installed build
    with pytest.raises(RuntimeError, match=r"ohlcv\.bars is /src/ohlcv/bars\.py"):
        check_compiled({**files, "ohlcv.bars": "/src/ohlcv/bars.py"})


def _sample(t: float, worst: float, **rates: float) -> RateSample:
    return RateSample(t_s=t, target_per_s=1000, rates=rates, client_max_ms=worst, fanout_lag=0)


def test_recovery_is_the_first_time_latency_stays_under_the_threshold() -> None:
    samples = [_sample(t / 2, w) for t, w in enumerate([5, 5, 900, 800, 9, 400, 8, 7, 6, 6, 6])]
    # Burst ends at 1.5 s; 9 ms at 2.0 does not hold (400 at 2.5); from 3.0 s it holds 2 s.
    assert recovery_time_s(samples, burst_end_s=1.5, threshold_ms=10, hold_s=2.0) == 1.5
    assert recovery_time_s(samples, burst_end_s=1.5, threshold_ms=1, hold_s=2.0) is None
    gap = [_sample(2.0, math.nan), _sample(2.5, 1), _sample(3.0, 1)]
    assert recovery_time_s(gap, burst_end_s=1.5, threshold_ms=10, hold_s=0.5) == 1.0


def test_a_step_is_sustained_only_when_every_stage_keeps_up() -> None:
    ok = [_sample(t, 20, venue=10_000, ingest=4_000, grpc_clients=8_000) for t in range(4)]
    verdict = judge_step(10_000, ok, grpc_streams=2)
    assert verdict.sustained
    assert verdict.rates["grpc_per_stream"] == 4_000
    slow = [_sample(t, 20, venue=10_000, ingest=4_000, grpc_clients=6_000) for t in range(4)]
    assert "gRPC streams got 3,000/s each" in " ".join(judge_step(10_000, slow, 2).reasons)
    pushed_back = [_sample(t, 20, venue=9_000, ingest=4_000, grpc_clients=8_000) for t in range(4)]
    assert "pushed back" in judge_step(10_000, pushed_back, 2).reasons[0]
    queued = [_sample(t, 1500, venue=10_000, ingest=4_000, grpc_clients=8_000) for t in range(4)]
    assert judge_step(10_000, queued, 2).reasons == (
        "worst latency 1,500 ms in the median interval",
    )
    # One slow interval among quick ones is a hiccup, not a queue.
    hiccup = [
        _sample(t, w, venue=10_000, ingest=4_000, grpc_clients=8_000)
        for t, w in enumerate([20, 20, 20, 20, 3000, 20])
    ]
    assert judge_step(10_000, hiccup, 2).sustained
    conflating = [
        _sample(t, 20, venue=10_000, ingest=4_000, grpc_clients=8_000, conflated=5)
        for t in range(4)
    ]
    assert not judge_step(10_000, conflating, 2).sustained


def test_scenario_names_are_checked_and_put_in_running_order() -> None:
    assert _scenarios("burst,fixed") == ("fixed", "burst")
    with pytest.raises(Exception, match="unknown scenario warp"):
        _scenarios("fixed,warp")


def test_results_are_written_as_json_and_png(tmp_path: Path) -> None:
    hists = {name: latency_histogram() for name, _, _ in HOPS}
    for name, h in hists.items():
        for v in (1_000_000, 2_000_000, 3_000_000):
            h.observe(v + len(name))
    samples = [_sample(t * 0.5, 3.0, venue=5000, ingest=2000, grpc_clients=4000) for t in range(6)]
    fixed = ScenarioResult(
        "fixed",
        {
            "rate_per_s": 5000,
            "duration_s": 3.0,
            "grpc_streams": 2,
            "rates_per_s": {"venue": 5000, "ingest": 2000, "grpc_per_stream": 2000},
            "latency_ms": {"grpc": {n: summary_ms(h) for n, h in hists.items()}},
            "ratios": {"grpc_per_stream_vs_fanout_in": 1.0},
        },
        samples,
        {"grpc": hists},
    )
    written = write_results(tmp_path, {"options": {"rate": 5000}}, [fixed])
    assert [p.name for p in written] == ["results.json", "latency-histogram.png", "throughput.png"]
    document = json.loads((tmp_path / "results.json").read_text())
    (scenario,) = document["scenarios"]
    assert scenario["latency_ms"]["grpc"]["venue->client"]["count"] == 3
    assert len(scenario["series"]) == 6
    assert document["machine"]["cpus"] >= 1
    for png in written[1:]:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = summary_lines([fixed])
    assert lines[0].startswith("fixed: venue at 5,000 entries/s for 3 s")
    assert any("venue->client" in line and "p99.9" in line for line in lines)


class SimulatedPipe:
    """A pipeline with a known capacity, as `Driver.hold` sees one: the ingest takes in at
    most ``capacity`` FIX messages/s (two venue entries each, one tick each), the rest
    queues before it, and a tick's latency is 5 ms plus the queue's wait."""

    def __init__(self, capacity: float) -> None:
        from bench.harness.pipeline import PipelineOptions

        self.options = PipelineOptions(grpc_streams=2, mqtt_clients=0)
        self.capacity = capacity
        self.rate = 0.0
        self.sent = self.taken = self.queue = 0.0
        self.at = time.monotonic()

    def set_rate(self, per_s: float) -> None:
        self._advance()
        self.rate = per_s

    def _advance(self) -> None:
        now = time.monotonic()
        dt, self.at = now - self.at, now
        offered = self.rate / 2 * dt
        self.sent += offered
        self.queue += offered
        took = min(self.queue, self.capacity * dt)
        self.queue -= took
        self.taken += took

    async def sample(self) -> Counters:
        self._advance()
        values = {
            "venue": self.sent * 2,
            "venue_msgs": self.sent,
            "ingest_msgs": self.taken,
            "ingest": self.taken,
            "fanout_in": self.taken,
            "grpc_clients": self.taken * 2,
            "conflated": 0.0,
        }
        latency_ns = int((0.005 + self.queue / self.capacity) * 1e9)
        return Counters(at=self.at, values=values, window_max_ns=latency_ns, lag=0.0)


async def test_the_burst_scenario_measures_recovery_against_the_ideal_drain() -> None:
    pipe = SimulatedPipe(capacity=1000.0)
    options = ScenarioOptions(
        rate_per_s=1000,  # 500 msgs/s: half the capacity
        burst_factor=4.0,  # 2,000 msgs/s: 1,000 more than the ingest takes
        burst_s=0.6,
        pre_burst_s=0.4,
        max_recovery_s=5.0,
        recovery_hold_s=0.2,
        interval_s=0.05,
    )
    result = await run_burst(pipe, options, Progress(io.StringIO()), max_fix_msgs_per_s=1000.0)
    f = result.figures
    # 0.6 s at 1,000 msgs/s over capacity: about 600 messages behind at the burst's end.
    assert f["backlog_fix_msgs_at_burst_end"] == pytest.approx(600, rel=0.2)
    # Worked off at 1,000 - 500 spare msgs/s: 1.2 s, the ideal, and the simulated pipeline
    # is ideal, so it recovers in about that time (plus at most a sampling interval).
    assert f["ideal_drain_s"] == pytest.approx(1.2, rel=0.2)
    assert f["recovery_s"] == pytest.approx(f["ideal_drain_s"], abs=0.25)
    assert f["ratios"]["recovery_vs_ideal_drain"] == pytest.approx(1.0, abs=0.25)
    assert f["worst_during_or_after_ms"] == pytest.approx(5 + 600, rel=0.2)


async def test_the_max_scenario_finds_the_capacity() -> None:
    pipe = SimulatedPipe(capacity=1500.0)  # 3,000 venue entries/s
    options = ScenarioOptions(rate_per_s=1000, step_s=0.5, interval_s=0.05, max_rate_per_s=100_000)
    result = await run_max(pipe, options, Progress(io.StringIO()))
    f = result.figures
    # Steps 1,000, 2,000 (sustained), 4,000 (not), then 3,000 and 2,500 or 3,500.
    targets = [s["target_per_s"] for s in f["steps"]]
    assert targets[:3] == [1000.0, 2000.0, 4000.0]
    assert 2000.0 <= f["max_sustained_target_per_s"] <= 3000.0
    assert f["steps"][2]["sustained"] is False
    assert f["steps"][2]["reasons"] == ["ingest took in 1,500 of 2,000 FIX msgs/s sent"]
    # The limit: what the ingest put out when pushed past it, the simulated capacity.
    assert f["ingest_capacity_per_s"] == pytest.approx(1500, rel=0.1)
    assert f["ratios"]["sustained_vs_ingest_capacity"] == pytest.approx(
        f["max_sustained_per_s"] / f["ingest_capacity_per_s"], rel=0.01
    )
    assert 0.6 <= f["ratios"]["sustained_vs_ingest_capacity"] <= 1.05


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate", "x"], "argument --rate: not a whole number: 'x'"),
        (["--grpc", "-1"], "argument --grpc: must be at least 0, got -1"),
        (["--duration", "nan"], "argument --duration: must be more than 0, got nan"),
        (["--scenarios", "warp"], "unknown scenario warp"),
        (["--depth", "16"], "argument --depth: invalid choice: 16"),
    ],
)
def test_bad_bench_options_are_refused_naming_the_option(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from mdfeed.cli import build_parser

    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["bench", *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_bench_depth_reaches_the_ingest_config_and_the_ingest_scenario(tmp_path: Path) -> None:
    from bench.harness.cli import _options
    from bench.harness.pipeline import Pipeline
    from mdfeed.cli import build_parser

    args = build_parser().parse_args(["bench", "--depth", "10", "--out", str(tmp_path)])
    scenario, pipeline = _options(args)
    assert (scenario.depth, pipeline.depth) == (10, 10)
    # The floors last as long as the measured stretch unless told otherwise.
    assert scenario.floor_s == scenario.duration_s
    pipe = Pipeline(pipeline)
    pipe.ports.update(venue=1, grpc=2, ingest_metrics=3, fanout_metrics=4)
    tmp_path.mkdir(exist_ok=True)
    written = pipe._write_config().read_text()  # the config the ingest and fanout run on
    config = build_config(tomllib.loads(written), "pipeline.toml", {})
    assert config.fix_session.publish_depth == 10
