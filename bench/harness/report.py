"""What `mdfeed bench` writes: results.json, two PNG plots, and the summary it prints.

* ``results.json``: the run's options, the machine, and per scenario its figures, ratios and
  the sampled series (per-stage rates and the worst client latency every interval).
* ``latency-histogram.png``: per hop, the share of ticks per latency bucket (fixed rate).
* ``throughput.png``: per scenario, each stage's rate over time, and the worst latency.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.harness.scenarios import ScenarioResult
from bench.harness.stats import HOPS

__all__ = ["machine", "summary_lines", "write_results"]

_STAGE_LABELS = {
    "venue": "venue (entries sent)",
    "ingest": "ingest (ticks to Kafka)",
    "fanout_in": "fanout (ticks consumed)",
    "grpc_per_stream": "each gRPC stream",
    "mqtt_per_client": "each MQTT client",
}


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def write_results(
    run_dir: Path, meta: dict[str, Any], results: Sequence[ScenarioResult]
) -> list[Path]:
    """Write results.json and the plots; the paths written."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "results.json"
    document = {**meta, "machine": machine(), "scenarios": [r.to_json() for r in results]}
    path.write_text(json.dumps(document, indent=2, allow_nan=False, default=_json_default) + "\n")
    written = [path]
    written += _plots(run_dir, results)
    return written


def _json_default(value: object) -> object:
    if isinstance(value, float) and math.isnan(value):
        return None
    raise TypeError(f"not JSON: {value!r}")


def _plots(run_dir: Path, results: Sequence[ScenarioResult]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    written: list[Path] = []
    fixed = next((r for r in results if r.name == "fixed" and r.histograms), None)
    if fixed is not None:
        written.append(_latency_plot(run_dir, fixed))
    with_series = [r for r in results if r.samples]
    if with_series:
        written.append(_throughput_plot(run_dir, with_series))
    return written


def _latency_plot(run_dir: Path, fixed: ScenarioResult) -> Path:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5))
    for transport, per_hop in fixed.histograms.items():
        for hop, _, _ in HOPS:
            hist = per_hop[hop]
            count = hist.count
            if count == 0 or (transport == "mqtt" and hop != "fanout->client"):
                continue
            # Eight bins per doubling read better than the histogram's 32.
            points = [(middle / 1e6, n / count) for middle, n in hist.coarse(8)]
            if not points:
                continue
            xs, ys = zip(*points, strict=True)
            ax.step(xs, ys, where="mid", label=f"{transport}: {hop}")
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("share of ticks per bucket")
    ax.set_title(f"Latency per hop, venue at {fixed.figures.get('rate_per_s', 0):,} entries/s")
    ax.legend(fontsize="small")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    out = run_dir / "latency-histogram.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _throughput_plot(run_dir: Path, with_series: Sequence[ScenarioResult]) -> Path:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(with_series), 1, figsize=(10, 3.6 * len(with_series)))
    axes_list = list(axes) if len(with_series) > 1 else [axes]
    for ax, result in zip(axes_list, with_series, strict=True):
        ts = [s.t_s for s in result.samples]
        ax.plot(
            ts, [s.target_per_s for s in result.samples], "k--", label="target (venue entries/s)"
        )
        for stage, label in _STAGE_LABELS.items():
            if stage == "grpc_per_stream":
                streams = result.figures.get("grpc_streams") or 1
                ys = [s.rates.get("grpc_clients", 0.0) / streams for s in result.samples]
            else:
                ys = [s.rates.get(stage, 0.0) for s in result.samples]
            if any(ys):
                ax.plot(ts, ys, label=label)
        ax.set_ylabel("ticks/s")
        ax.set_title(f"{result.name}: throughput per stage")
        ax.grid(True, alpha=0.3)
        twin = ax.twinx()
        worst = [s.client_max_ms for s in result.samples]
        twin.plot(ts, worst, color="tab:red", alpha=0.5, linewidth=1, label="worst latency")
        twin.set_ylabel("worst venue->client latency (ms)", color="tab:red")
        if any(not math.isnan(w) and w > 0 for w in worst):
            twin.set_yscale("log")
        ax.legend(fontsize="small", loc="upper left")
    axes_list[-1].set_xlabel("seconds")
    fig.tight_layout()
    out = run_dir / "throughput.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _ms(value: object) -> str:
    return "-" if not isinstance(value, int | float) else f"{value:,.2f}"


def _fixed_lines(f: dict[str, Any]) -> list[str]:
    """The fixed scenario's lines: rates, latency per hop, the floors, cores, ratios."""
    lines: list[str] = []
    rates = f["rates_per_s"]
    lines.append(
        f"fixed: venue at {f['rate_per_s']:,} entries/s for {f['duration_s']:.0f} s "
        f"(sent {rates.get('venue', 0):,.0f}/s); ticks/s: ingest "
        f"{rates.get('ingest', 0):,.0f}, fanout {rates.get('fanout_in', 0):,.0f}, "
        f"each gRPC stream {rates.get('grpc_per_stream', 0):,.0f}, each MQTT client "
        f"{rates.get('mqtt_per_client', 0):,.0f}"
    )
    for transport, hops in f["latency_ms"].items():
        for hop, _, _ in HOPS:
            s = hops[hop]
            if not s["count"]:
                continue
            lines.append(
                f"  {transport:<4} {hop:<15} p50 {_ms(s['p50'])}  p99 {_ms(s['p99'])}  "
                f"p99.9 {_ms(s['p99_9'])}  max {_ms(s['max'])} ms  ({s['count']:,} ticks)"
            )
    floor = f.get("kafka_floor_ms")
    if floor:
        lines.append(
            f"  Kafka floor (bare aiokafka, {floor['rate_per_s']:,.0f}/s): "
            f"p50 {_ms(floor['p50'])}  p99 {_ms(floor['p99'])}  "
            f"p99.9 {_ms(floor['p99_9'])} ms"
        )
    relay = f.get("relay_floor_ms")
    if relay and relay["count"]:
        lines.append(
            f"  relay floor (bare aiokafka, then bare grpc.aio to {relay['streams']} "
            f"streams): p50 {_ms(relay['p50'])}  p99 {_ms(relay['p99'])}  "
            f"p99.9 {_ms(relay['p99_9'])} ms; the relay process used "
            f"{relay['relay_cores']:.2f} cores"
        )
    loaded = f.get("kafka_floor_loaded_ms")
    if loaded:
        lines.append(
            "  Kafka floor under the pipeline's load (the same, with the pipeline "
            f"running at the fixed rate): p50 {_ms(loaded['p50'])}  "
            f"p99 {_ms(loaded['p99'])}  p99.9 {_ms(loaded['p99_9'])} ms"
        )
    cpu = f.get("cpu_cores")
    if cpu:
        lines.append(
            f"  cores used ({sum(cpu.values()):.2f} in all): "
            + ", ".join(f"{name} {cores:.2f}" for name, cores in cpu.items())
        )
    lines.append(f"  ratios: {json.dumps(f['ratios'])}")
    return lines


def summary_lines(results: Sequence[ScenarioResult]) -> list[str]:
    """The headline figures, as printed at the end of a run."""
    lines: list[str] = []
    for result in results:
        f = result.figures
        if result.name == "ingest":
            from bench.harness.ingest_scenario import summary

            lines += summary(f)
        elif result.name == "fixed":
            lines += _fixed_lines(f)
        elif result.name == "max":
            best = f.get("max_sustained_per_s")
            lines.append(
                "max sustained end to end: "
                + ("none" if best is None else f"{best:,.0f} ticks/s to each gRPC stream")
                + (
                    f" ({best * f.get('grpc_streams', 1):,.0f} deliveries/s; venue at "
                    f"{f['max_sustained_target_per_s']:,.0f} entries/s)"
                    if best is not None and f.get("max_sustained_target_per_s")
                    else ""
                )
            )
            bad = f.get("first_unsustained")
            if bad:
                lines.append(
                    f"  first unsustained step {bad['target_per_s']:,.0f}/s: "
                    + "; ".join(bad["reasons"])
                )
            if "ratios" in f:
                lines.append(f"  ratios: {json.dumps(f['ratios'])}")
        elif result.name == "burst":
            recovery = f.get("recovery_s")
            lines.append(
                f"burst: venue {f['base_per_s']:,.0f} -> {f['peak_target_per_s']:,.0f} "
                "entries/s for "
                f"{f['burst_s']:.0f} s: venue reached "
                f"{f['burst_rates_per_s'].get('venue', 0):,.0f}/s, "
                f"backlog {f['backlog_fix_msgs_at_burst_end']:,} FIX messages, worst "
                f"{_ms(f['worst_during_or_after_ms'])} ms, recovery "
                + ("not within the limit" if recovery is None else f"{recovery:.1f} s")
                + f" (back under {f['threshold_ms']:.1f} ms)"
            )
            lines.append(f"  ratios: {json.dumps(f['ratios'])}")
    return lines
