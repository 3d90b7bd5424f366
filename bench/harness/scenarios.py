"""The scenarios of `mdfeed bench`: fixed rate, maximum sustained rate, market-open burst.

Every scenario drives the venue's rate and samples every stage each ``interval_s``
(``Pipeline.sample``); rates are differences of cumulative counters, so a slow sample
never loses ticks from the figures.

* fixed: ``rate`` for ``warmup_s`` (not measured), then ``duration_s`` measured: per-stage
  rates and per-hop latency percentiles. The bare Kafka floor is measured twice at the
  rate records reach Kafka: with the pipeline idle (the floor the target is stated
  against) and, after the measured window, with the pipeline running on at ``rate`` (the
  floor under the same load, shown beside it). With the pipeline idle it also measures the
  relay floor (bench.harness.relay_floor): bare Kafka, then a bare gRPC relay to as many
  streams, the least an ingest -> client path can take here without mdfeed's code. The
  cores each process used over the measured window are reported too.
* max: steps of ``step_s`` from ``rate``, doubling until a step is not sustained, then
  two bisections. A step is sustained when, over its second half, the venue reached 97% of
  its target, the ingest took in 97% of the FIX messages sent, every gRPC stream received
  at least 95% of what ingest produced, nothing was conflated, and in the median sampling
  interval no tick took more than 500 ms from venue to client (no standing queue anywhere).
  Between steps the rate drops back to ``rate`` until latency is back to normal.
* burst: ``rate`` for 10 s, ``burst_factor`` x ``rate`` for ``burst_s`` (the market
  open), then ``rate`` until the worst latency is back under twice the worst seen before
  the burst (at least 10 ms) for 2 s: that time from the burst's end is the recovery time.
  Its limit: the backlog at the burst's end (FIX messages sent by the venue and not yet
  taken in) worked off with all the spare capacity the max scenario measured.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from bench.harness.pipeline import Counters, Pipeline, PipelineOptions
from bench.harness.stats import RateSample, recovery_time_s, summary_ms
from mdfeed.kernel.histogram import Histogram

__all__ = ["Progress", "ScenarioOptions", "run_burst", "run_fixed", "run_max"]

#: A step whose median interval saw a tick older than this has a standing queue.
MAX_STEP_LATENCY_MS = 500.0


@dataclass(frozen=True, slots=True)
class ScenarioOptions:
    rate_per_s: int = 5000
    duration_s: float = 20.0
    warmup_s: float = 5.0
    step_s: float = 8.0
    max_rate_per_s: int = 1_000_000
    burst_factor: float = 10.0
    burst_s: float = 10.0
    pre_burst_s: float = 10.0
    max_recovery_s: float = 60.0
    #: How long latency must stay back to normal to count as recovered.
    recovery_hold_s: float = 2.0
    interval_s: float = 0.5
    #: Seconds of each floor measurement (bench.harness.kafka_floor, relay_floor): as long
    #: as the measured stretch, so both p99s see the same spells of the shared machine.
    floor_s: float = 20.0
    #: Measured seconds of each phase of the ingest scenario (bench.harness.ingest_scenario).
    ingest_s: float = 15.0
    #: Price levels a side each quote tick carries (fix_session.publish_depth; 0: top only).
    depth: int = 0


class Progress:
    """A one-line progress bar on stderr (a line every few seconds when not a terminal)."""

    def __init__(self, out: TextIO = sys.stderr, width: int = 24) -> None:
        self.out = out
        self.width = width
        self._tty = out.isatty()
        self._last_line = 0.0

    def update(self, label: str, done_s: float, total_s: float, sample: RateSample) -> None:
        share = 0.0 if total_s <= 0 else min(1.0, done_s / total_s)
        filled = int(share * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        r = sample.rates
        worst = "-" if math.isnan(sample.client_max_ms) else f"{sample.client_max_ms:,.1f} ms"
        line = (
            f"{label:<14} [{bar}] {done_s:5.1f}/{total_s:.0f} s"
            f" | target {sample.target_per_s:,.0f}/s"
            f" | venue {r.get('venue', 0):,.0f} ingest {r.get('ingest', 0):,.0f}"
            f" fanout {r.get('fanout_in', 0):,.0f} -> gRPC {r.get('grpc_out', 0):,.0f}"
            f" MQTT {r.get('mqtt_out', 0):,.0f} /s | worst {worst}"
        )
        if self._tty:
            self.out.write("\r\x1b[2K" + line)
            self.out.flush()
        elif sample.t_s - self._last_line >= 5.0 or share >= 1.0 or sample.t_s < self._last_line:
            self._last_line = sample.t_s
            self.out.write(line + "\n")
            self.out.flush()

    def done(self) -> None:
        if self._tty:
            self.out.write("\n")
            self.out.flush()


def _rate_sample(prev: Counters, cur: Counters, t_s: float, target: float) -> RateSample:
    dt = max(cur.at - prev.at, 1e-6)
    rates = {k: (v - prev.values.get(k, 0.0)) / dt for k, v in cur.values.items()}
    worst = math.nan if cur.window_max_ns is None else cur.window_max_ns / 1e6
    return RateSample(
        t_s=t_s,
        target_per_s=target,
        rates=rates,
        client_max_ms=worst,
        fanout_lag=cur.lag,
        span_s=dt,
    )


class Pipe(Protocol):
    """What holding the venue at a rate needs of a pipeline (the max and burst scenarios):
    the real :class:`Pipeline`, or the tests' simulated one."""

    @property
    def options(self) -> PipelineOptions: ...

    def set_rate(self, per_s: float) -> None: ...

    async def sample(self) -> Counters: ...


@dataclass(frozen=True, slots=True)
class Driver:
    """Holds the venue at a rate while sampling every stage (see ``hold``)."""

    pipe: Pipe
    progress: Progress
    interval_s: float

    async def hold(
        self,
        label: str,
        seconds: float,
        rate: float,
        *,
        offset_s: float = 0.0,
        until: Callable[[list[RateSample]], bool] | None = None,
    ) -> list[RateSample]:
        """The venue at ``rate`` for ``seconds`` (or until ``until(samples)``); the samples,
        their times counted from ``offset_s``."""
        pipe, interval_s = self.pipe, self.interval_s
        loop = asyncio.get_running_loop()
        start = loop.time()
        pipe.set_rate(rate)
        prev = await pipe.sample()
        samples: list[RateSample] = []
        while loop.time() - start < seconds:
            next_at = start + (len(samples) + 1) * interval_s
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            cur = await pipe.sample()
            sample = _rate_sample(prev, cur, offset_s + loop.time() - start, rate)
            samples.append(sample)
            self.progress.update(label, loop.time() - start, seconds, sample)
            prev = cur
            if until is not None and until(samples):
                break
        self.progress.done()
        return samples


def mean_rates(samples: list[RateSample]) -> dict[str, float]:
    if not samples:
        return {}
    keys = {k for s in samples for k in s.rates}
    return {k: sum(s.rates.get(k, 0.0) for s in samples) / len(samples) for k in sorted(keys)}


def _per_stream(rates: dict[str, float], pipe: Pipe) -> dict[str, float]:
    out = dict(rates)
    streams = pipe.options.grpc_streams
    mqtt = pipe.options.mqtt_clients
    out["grpc_per_stream"] = rates.get("grpc_clients", 0.0) / streams if streams else 0.0
    out["mqtt_per_client"] = rates.get("mqtt_clients", 0.0) / mqtt if mqtt else 0.0
    return out


def _ratio(a: float, b: float) -> float | None:
    return None if b <= 0 else round(a / b, 4)


def _series(samples: list[RateSample]) -> list[dict[str, Any]]:
    return [
        {
            "t_s": round(s.t_s, 3),
            "target_per_s": s.target_per_s,
            "rates": {k: round(v, 1) for k, v in s.rates.items()},
            "client_max_ms": None if math.isnan(s.client_max_ms) else round(s.client_max_ms, 3),
            "fanout_lag": s.fanout_lag,
        }
        for s in samples
    ]


@dataclass
class ScenarioResult:
    name: str
    figures: dict[str, Any] = field(default_factory=dict)
    samples: list[RateSample] = field(default_factory=list)
    #: Per transport, per hop (the fixed scenario).
    histograms: dict[str, dict[str, Histogram]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, **self.figures, "series": _series(self.samples)}


async def run_fixed(pipe: Pipeline, options: ScenarioOptions, progress: Progress) -> ScenarioResult:
    rate = options.rate_per_s
    drive = Driver(pipe, progress, options.interval_s)
    warm = await drive.hold(
        "fixed warm-up",
        options.warmup_s,
        rate,
    )
    # The floor at the rate records reach Kafka in this scenario, with the pipeline idle.
    into_bus = mean_rates(warm[len(warm) // 2 :]).get("ingest", 0.0) or float(rate)
    floor = await pipe.kafka_floor(into_bus, options.floor_s)
    # The same, then a bare gRPC relay to as many streams: the least the ingest -> client
    # path (a Kafka hop, then a gRPC hop) can have here; mdfeed's own code is what is above.
    relay, relay_cores = await pipe.relay_floor(into_bus, options.floor_s)
    await drive.hold(
        "fixed resume",
        2.0,
        rate,
    )
    await pipe.histograms()  # what the warm-up saw is not measured
    cpu_before, cpu_from = pipe.cpu_seconds(), time.monotonic()
    samples = await drive.hold(
        "fixed",
        options.duration_s,
        rate,
    )
    cpu_after, cpu_to = pipe.cpu_seconds(), time.monotonic()
    hists = await pipe.histograms()
    # The same floor again while the pipeline runs on at the fixed rate: what bare Kafka
    # gives on these shared cores with everything else beside it (not the target's floor,
    # which is the idle one; shown beside it).
    loaded_task = asyncio.create_task(pipe.kafka_floor(into_bus, options.floor_s, idle=False))
    await drive.hold(
        "fixed, floor under load",
        options.floor_s + 60,
        rate,
        until=lambda _samples: loaded_task.done(),
    )
    loaded = await loaded_task
    rates = _per_stream(mean_rates(samples), pipe)
    latency: dict[str, Any] = {
        transport: {hop: summary_ms(hist) for hop, hist in per_hop.items()}
        for transport, per_hop in hists.items()
    }
    floor_ms = summary_ms(floor)
    loaded_ms = summary_ms(loaded)
    relay_ms = summary_ms(relay)
    fanout_in = rates.get("fanout_in", 0.0)
    ratios: dict[str, float | None] = {
        "venue_vs_target": _ratio(rates.get("venue", 0.0), rate),
        "fanout_in_vs_ingest": _ratio(fanout_in, rates.get("ingest", 0.0)),
        "grpc_per_stream_vs_fanout_in": _ratio(rates["grpc_per_stream"], fanout_in),
    }
    if "grpc" in latency:
        path = latency["grpc"]["ingest->client"]
        for floor_name, summary in (
            ("kafka_floor", floor_ms),
            ("loaded_kafka_floor", loaded_ms),
            ("relay_floor", relay_ms),
        ):
            for q in ("p50", "p99", "p99_9"):
                measured, least = path[q], summary[q]
                if measured is not None and least is not None:
                    ratios[f"ingest_to_client_{q}_vs_{floor_name}"] = _ratio(measured, least)
    figures = {
        "rate_per_s": rate,
        "duration_s": options.duration_s,
        "rates_per_s": {k: round(v, 1) for k, v in rates.items()},
        "latency_ms": latency,
        "kafka_floor_ms": {"rate_per_s": round(into_bus, 1), **floor_ms},
        "kafka_floor_loaded_ms": {"rate_per_s": round(into_bus, 1), **loaded_ms},
        "relay_floor_ms": {
            "rate_per_s": round(into_bus, 1),
            "streams": pipe.options.grpc_streams,
            "relay_cores": relay_cores,
            **relay_ms,
        },
        "ratios": ratios,
        # Cores each process used over the measured seconds (CPU seconds per second).
        "cpu_cores": {
            name: round((cpu_after[name] - used) / (cpu_to - cpu_from), 3)
            for name, used in cpu_before.items()
            if name in cpu_after and not math.isnan(cpu_after[name] - used)
        },
    }
    return ScenarioResult("fixed", figures, samples, hists)


@dataclass(frozen=True, slots=True)
class StepVerdict:
    target_per_s: float
    rates: dict[str, float]
    worst_ms: float
    sustained: bool
    #: Why not, when not sustained.
    reasons: tuple[str, ...]


def judge_step(target: float, samples: list[RateSample], grpc_streams: int) -> StepVerdict:
    """Whether a max-search step was sustained, from its second half (see the module doc)."""
    measured = samples[len(samples) // 2 :] or samples
    rates = mean_rates(measured)
    per_stream = rates.get("grpc_clients", 0.0) / grpc_streams if grpc_streams else 0.0
    rates["grpc_per_stream"] = per_stream
    readings = sorted(s.client_max_ms for s in measured if not math.isnan(s.client_max_ms))
    # The median interval's worst case: one collector pause or scheduler hiccup on a shared
    # two-core machine is not a standing queue; a queue that grows shows in most intervals.
    worst = readings[len(readings) // 2] if readings else math.nan
    reasons: list[str] = []
    if rates.get("venue", 0.0) < 0.97 * target:
        reasons.append(
            f"venue sent {rates.get('venue', 0.0):,.0f}/s of {target:,.0f}/s (pushed back)"
        )
    sent_msgs, took_msgs = rates.get("venue_msgs", 0.0), rates.get("ingest_msgs", 0.0)
    if sent_msgs and took_msgs < 0.97 * sent_msgs:
        reasons.append(f"ingest took in {took_msgs:,.0f} of {sent_msgs:,.0f} FIX msgs/s sent")
    ingest = rates.get("ingest", 0.0)
    if grpc_streams and per_stream < 0.95 * ingest:
        reasons.append(f"gRPC streams got {per_stream:,.0f}/s each of {ingest:,.0f}/s ingested")
    if rates.get("conflated", 0.0) > 0:
        reasons.append(f"{rates['conflated']:,.0f} ticks/s conflated")
    if math.isnan(worst) or worst > MAX_STEP_LATENCY_MS:
        reasons.append(
            "no latency reading"
            if math.isnan(worst)
            else f"worst latency {worst:,.0f} ms in the median interval"
        )
    return StepVerdict(target, rates, worst, not reasons, tuple(reasons))


async def _settle(drive: Driver, options: ScenarioOptions) -> None:
    """Back to the base rate until the worst latency is under 300 ms (at most 30 s)."""
    await drive.hold(
        "max settle",
        30.0,
        options.rate_per_s,
        until=lambda ss: (
            len(ss) >= 4
            and all(not math.isnan(s.client_max_ms) and s.client_max_ms < 300.0 for s in ss[-2:])
        ),
    )


async def run_max(pipe: Pipe, options: ScenarioOptions, progress: Progress) -> ScenarioResult:
    drive = Driver(pipe, progress, options.interval_s)
    steps: list[StepVerdict] = []
    samples: list[RateSample] = []
    offset = 0.0

    async def step(target: float) -> StepVerdict:
        nonlocal offset
        got = await drive.hold(
            f"max {target / 1000:,.0f}K/s",
            options.step_s,
            target,
            offset_s=offset,
        )
        samples.extend(got)
        offset = samples[-1].t_s if samples else offset
        verdict = judge_step(target, got, pipe.options.grpc_streams)
        steps.append(verdict)
        if not verdict.sustained:
            await _settle(drive, options)
        return verdict

    good: StepVerdict | None = None
    bad: StepVerdict | None = None
    target = float(options.rate_per_s)
    while target <= options.max_rate_per_s:
        verdict = await step(target)
        if not verdict.sustained:
            bad = verdict
            break
        good = verdict
        target *= 2
    for _ in range(2):  # bisect between the last good and the first bad step
        if good is None or bad is None:
            break
        middle = (good.target_per_s + bad.target_per_s) / 2
        verdict = await step(middle)
        if verdict.sustained:
            good = verdict
        else:
            bad = verdict
    figures: dict[str, Any] = {
        "steps": [
            {
                "target_per_s": v.target_per_s,
                "sustained": v.sustained,
                "reasons": list(v.reasons),
                "worst_ms": None if math.isnan(v.worst_ms) else round(v.worst_ms, 2),
                "rates_per_s": {k: round(x, 1) for k, x in v.rates.items()},
            }
            for v in steps
        ],
        "max_sustained_per_s": None if good is None else round(good.rates["grpc_per_stream"], 1),
        "max_sustained_fix_msgs_per_s": None
        if good is None
        else round(good.rates.get("ingest_msgs", 0.0), 1),
        "max_sustained_target_per_s": None if good is None else good.target_per_s,
        "first_unsustained": None
        if bad is None
        else {
            "target_per_s": bad.target_per_s,
            "reasons": list(bad.reasons),
            "rates_per_s": {k: round(x, 1) for k, x in bad.rates.items()},
        },
    }
    pushed = [v.rates.get("ingest", 0.0) for v in steps if not v.sustained]
    if good is not None and pushed:
        # The limit in this run: the most the ingest (the first stage to fall behind) put
        # out in any step it could not sustain.
        figures["ingest_capacity_per_s"] = round(max(pushed), 1)
        figures["ratios"] = {
            "sustained_vs_ingest_capacity": _ratio(good.rates["grpc_per_stream"], max(pushed)),
        }
    return ScenarioResult("max", figures, samples)


async def run_burst(
    pipe: Pipe,
    options: ScenarioOptions,
    progress: Progress,
    *,
    max_fix_msgs_per_s: float | None = None,
) -> ScenarioResult:
    drive = Driver(pipe, progress, options.interval_s)
    base = float(options.rate_per_s)
    peak = base * options.burst_factor
    pre = await drive.hold(
        "burst: before",
        options.pre_burst_s,
        base,
    )
    before = [s.client_max_ms for s in pre[len(pre) // 2 :] if not math.isnan(s.client_max_ms)]
    # Twice the usual worst case (the median interval's, so one hiccup does not set it).
    threshold = max(2.0 * sorted(before)[len(before) // 2], 10.0) if before else 10.0
    burst = await drive.hold(
        "burst: open",
        options.burst_s,
        peak,
        offset_s=pre[-1].t_s if pre else 0.0,
    )
    burst_end = burst[-1].t_s if burst else options.pre_burst_s + options.burst_s
    after = await drive.hold(
        "burst: after",
        options.max_recovery_s,
        base,
        offset_s=burst_end,
        until=lambda ss: (
            recovery_time_s(
                ss, burst_end_s=burst_end, threshold_ms=threshold, hold_s=options.recovery_hold_s
            )
            is not None
        ),
    )
    samples = pre + burst + after
    recovery = recovery_time_s(
        samples, burst_end_s=burst_end, threshold_ms=threshold, hold_s=options.recovery_hold_s
    )
    # The backlog at the burst's end, in FIX messages the venue sent and the ingest had not
    # taken in yet (the queue builds before the ingest: its socket and QuickFIX), over the
    # steady difference before the burst (messages in flight).
    pre_rates = mean_rates(pre)
    steady = pre_rates.get("venue_msgs", 0.0) - pre_rates.get("ingest_msgs", 0.0)
    backlog = sum(
        (s.rates.get("venue_msgs", 0.0) - s.rates.get("ingest_msgs", 0.0) - steady) * s.span_s
        for s in burst
    )
    burst_rates = _per_stream(mean_rates(burst), pipe)
    figures: dict[str, Any] = {
        "base_per_s": base,
        "peak_target_per_s": peak,
        "burst_s": options.burst_s,
        "burst_rates_per_s": {k: round(v, 1) for k, v in burst_rates.items()},
        "threshold_ms": round(threshold, 3),
        "worst_before_ms": round(max(before, default=math.nan), 3),
        "worst_during_or_after_ms": round(
            max(
                (s.client_max_ms for s in burst + after if not math.isnan(s.client_max_ms)),
                default=math.nan,
            ),
            3,
        ),
        "backlog_fix_msgs_at_burst_end": round(max(backlog, 0.0)),
        "recovery_s": None if recovery is None else round(recovery, 2),
        "ratios": {
            "peak_venue_vs_target": _ratio(burst_rates.get("venue", 0.0), peak),
            "recovery_vs_burst_length": None
            if recovery is None
            else _ratio(recovery, options.burst_s),
        },
    }
    base_msgs = pre_rates.get("ingest_msgs", 0.0)
    if (
        recovery is not None
        and max_fix_msgs_per_s
        and max_fix_msgs_per_s > base_msgs
        and backlog > 0
    ):
        # Working off the backlog with all the spare capacity the max scenario measured is
        # the fastest possible recovery.
        ideal = backlog / (max_fix_msgs_per_s - base_msgs)
        figures["ideal_drain_s"] = round(ideal, 2)
        figures["ratios"]["recovery_vs_ideal_drain"] = _ratio(recovery, ideal)
    return ScenarioResult("burst", figures, samples)
