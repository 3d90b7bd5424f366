"""The ingest scenario of `mdfeed bench`: the ingest alone into Kafka, beside its QuickFIX floor.

Against one fast venue (`bench.harness.fast_venue`, the venue's benchmark stream at the
reader's pace, in a process of its own), one after the other in the same run:

1. the bare QuickFIX floor (`bench.harness.bare_quickfix`): the ingest's QuickFIX settings,
   every symbol in one MarketDataRequest, a ``fromApp`` that only counts;
2. the ingest alone (`bench.harness.ingest_alone`): `FixIngest` publishing to a topic of
   the run on the real Kafka, pinned to one core;
3. scale-out: `SHARDS` ingest processes at once, shard K of N each (`fix_session.shard`:
   its own FIX session on its share of the symbols), each pinned to a core of its own,
   into the same topic; their entries/s, summed and over the one-process figure.

Each is measured over ``ScenarioOptions.ingest_s`` after a second of warm-up. The
pipeline's own venue is paused meanwhile, so its ingest and fanout are idle. Entries per
X are the venue's, over each phase (what it sent to that reader); the floor's entries/s
are its messages/s times that packing (its ``fromApp`` does not look inside). The
headline: N = X entries the ingest took in, normalized and published, per second, and
R = the ingest's FIX messages/s over the floor's.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Protocol

from bench.harness.children import Child, ChildError
from bench.harness.pipeline import PipelineError
from bench.harness.scenarios import Progress, ScenarioOptions, ScenarioResult

__all__ = ["IngestPipe", "headline", "ingest_figures", "run_ingest"]


class IngestPipe(Protocol):
    """What the scenario needs of the pipeline: the symbols, a topic, where logs go, and
    a way to keep its own venue quiet."""

    @property
    def symbols(self) -> tuple[str, ...]: ...

    @property
    def ingest_topic(self) -> str: ...

    @property
    def logs(self) -> Path: ...

    def pause_venue(self) -> None: ...

    def resume_venue(self) -> None: ...


def _per(total: float, count: float) -> float:
    return total / count if count else 0.0


def ingest_figures(
    seconds: float,
    bare: dict[str, Any],
    bare_venue: tuple[dict[str, Any], dict[str, Any]],
    ingest: dict[str, Any],
    ingest_venue: tuple[dict[str, Any], dict[str, Any]],
) -> dict[str, Any]:
    """The scenario's figures from what its processes reported."""

    def packing(before: dict[str, Any], after: dict[str, Any]) -> float:
        return _per(
            after["entries"] - before["entries"], after["x_messages"] - before["x_messages"]
        )

    bare_per_x = packing(*bare_venue)
    ingest_per_x = packing(*ingest_venue)
    bare_msgs = _per(bare["messages"], bare["seconds"])
    msgs = _per(ingest["messages"], ingest["seconds"])
    entries = _per(ingest["entries"], ingest["seconds"])

    def venue_cpu_share(before: dict[str, Any], after: dict[str, Any]) -> float:
        return _per(after["cpu_s"] - before["cpu_s"], after["t"] - before["t"])

    venue_cpu = venue_cpu_share(*ingest_venue)
    stage_us = {
        stage: {
            "per_message": round(_per(ns, ingest["messages"]) / 1e3, 2),
            "per_entry": round(_per(ns, ingest["entries"]) / 1e3, 3),
        }
        for stage, ns in ingest["stage_ns"].items()
    }
    return {
        "duration_s": seconds,
        "bare_quickfix": {
            "fix_msgs_per_s": round(bare_msgs, 1),
            "entries_per_s": round(bare_msgs * bare_per_x, 1),
            "entries_per_x": round(bare_per_x, 2),
            "cpu_per_wall_s": round(_per(bare["cpu_s"], bare["seconds"]), 3),
        },
        "ingest": {
            "fix_msgs_per_s": round(msgs, 1),
            "entries_per_s": round(entries, 1),
            "entries_per_x": round(ingest_per_x, 2),
            "ticks_per_s": round(_per(ingest["ticks"], ingest["seconds"]), 1),
            "cpu_per_wall_s": round(_per(ingest["cpu_s"], ingest["seconds"]), 3),
            "cores_allowed": ingest["cpus_allowed"],
            "stage_us": stage_us,
            "decode_errors": ingest["decode_errors"],
            "rejected_messages": ingest["rejected"],
            "book_faults": ingest.get("book_faults", 0),
            "producer_dropped": ingest["dropped"],
        },
        "venue_cpu_per_wall_s_ingest_phase": round(venue_cpu, 3),
        "venue_cpu_per_wall_s_bare_phase": round(venue_cpu_share(*bare_venue), 3),
        "quote_updates_per_s": round(entries, 1),
        "ratios": {"ingest_vs_bare_quickfix_fix_msgs": round(_per(msgs, bare_msgs), 4)},
    }


def headline(figures: dict[str, Any]) -> str:
    """The scenario's last line: ``ingest: N quote updates/s (R of bare QuickFIX)``."""
    ratio = figures["ratios"]["ingest_vs_bare_quickfix_fix_msgs"]
    n = figures["quote_updates_per_s"]
    return f"ingest: {n:,.0f} quote updates/s ({ratio:.2f} of bare QuickFIX)"


def summary(figures: dict[str, Any]) -> list[str]:
    """What the scenario prints, the headline last."""
    bare, ing = figures["bare_quickfix"], figures["ingest"]
    stages = ", ".join(
        f"{stage} {cost['per_message']:,.2f} us/msg {cost['per_entry']:,.3f} us/entry"
        for stage, cost in ing["stage_us"].items()
    )
    return [
        f"ingest scenario: fast venue, {figures['duration_s']:.0f} s each, same venue and run"
        + (f", depth {figures['publish_depth']} published" if figures.get("publish_depth") else ""),
        f"  bare QuickFIX: {bare['fix_msgs_per_s']:,.0f} FIX msgs/s, "
        f"{bare['entries_per_s']:,.0f} entries/s, {bare['entries_per_x']:.2f} entries per X, "
        f"{bare['cpu_per_wall_s']:.2f} CPU s per s",
        f"  ingest: {ing['fix_msgs_per_s']:,.0f} FIX msgs/s, {ing['entries_per_s']:,.0f} "
        f"entries/s, {ing['entries_per_x']:.2f} entries per X, {ing['ticks_per_s']:,.0f} "
        f"ticks/s to Kafka, {ing['cpu_per_wall_s']:.2f} CPU s per s on "
        f"{ing['cores_allowed']} core(s)",
        f"  ingest per stage: {stages}",
        f"  ingest decode errors {ing['decode_errors']}, rejected {ing['rejected_messages']}, "
        f"book faults {ing.get('book_faults', 0)}, "
        f"producer dropped {ing['producer_dropped']}; venue "
        f"{figures['venue_cpu_per_wall_s_ingest_phase']:.2f} CPU s per s over the ingest phase "
        f"({figures.get('venue_cpu_per_wall_s_bare_phase', 0.0):.2f} over the floor's)",
        *_scale_out_lines(figures.get("scale_out")),
        headline(figures),
    ]


def _scale_out_lines(scale: dict[str, Any] | None) -> list[str]:
    if not scale:
        return []
    shards = "; ".join(
        f"shard {s['shard']} ({s['symbols']} symbols) {s['entries_per_s']:,.0f} entries/s "
        f"{s['fix_msgs_per_s']:,.0f} FIX msgs/s {s['cpu_per_wall_s']:.2f} CPU s per s"
        for s in scale["shards"]
    )
    return [
        f"  scale-out, {scale['processes']} ingest processes at once: "
        f"{scale['entries_per_s']:,.0f} entries/s in all "
        f"({scale['vs_one_process']:.2f}x one process); {shards}"
    ]


async def _one_shot(
    pipe: IngestPipe, name: str, target: str, args: list[str], wait_s: float
) -> dict[str, Any]:
    with (pipe.logs / f"{name}.log").open("wb") as log:
        child = Child(target, *args, name=name, stderr=log)
    try:
        return await child.aread(timeout_s=wait_s)
    except ChildError as exc:
        raise PipelineError(f"{exc} (see {pipe.logs / (name + '.log')})") from None
    finally:
        await child.aclose()


async def run_ingest(
    pipe: IngestPipe, options: ScenarioOptions, progress: Progress, *, bootstrap: str
) -> ScenarioResult:
    """Run the floor, then the ingest, against one fast venue; see the module."""
    del progress  # the phases are one-shot processes: nothing to sample in between
    seconds = options.ingest_s
    symbols = ",".join(pipe.symbols)
    pipe.logs.mkdir(parents=True, exist_ok=True)
    pipe.pause_venue()
    try:
        with (pipe.logs / "fast-venue.log").open("wb") as log:
            venue = Child(
                "bench.harness.fast_venue", "--symbols", symbols, name="fast venue", stderr=log
            )
        try:
            port = str((await venue.aread())["port"])
            common = ["--port", port, "--symbols", symbols, "--seconds", str(seconds)]
            depth = ["--depth", str(options.depth)]
            before_bare = await venue.arequest(cmd="stats")
            bare = await _one_shot(
                pipe, "bare-quickfix", "bench.harness.bare_quickfix", common, seconds + 90
            )
            after_bare = await venue.arequest(cmd="stats")
            ingest = await _one_shot(
                pipe,
                "ingest-alone",
                "bench.harness.ingest_alone",
                [*common, *depth, "--topic", pipe.ingest_topic, "--bootstrap", bootstrap],
                seconds + 120,
            )
            after_ingest = await venue.arequest(cmd="stats")
            shards = await _scale_out(pipe, [*common, *depth], bootstrap, seconds)
        finally:
            await venue.aclose()
    finally:
        pipe.resume_venue()
    figures = ingest_figures(
        seconds, bare, (before_bare, after_bare), ingest, (after_bare, after_ingest)
    )
    figures["scale_out"] = scale_out_figures(shards, figures)
    figures["publish_depth"] = options.depth
    return ScenarioResult("ingest", figures)


#: Processes of the scale-out phase: one shard each, one core each.
SHARDS = 2


async def _scale_out(
    pipe: IngestPipe, common: list[str], bootstrap: str, seconds: float
) -> list[dict[str, Any]]:
    """Shards 1/N .. N/N of the ingest at once, each its own FIX session and core."""
    children = []
    for k in range(1, SHARDS + 1):
        name = f"ingest-shard-{k}"
        with (pipe.logs / f"{name}.log").open("wb") as log:
            args = [*common, "--topic", pipe.ingest_topic, "--bootstrap", bootstrap]
            args += ["--shard", f"{k}/{SHARDS}", "--cpu", str(k - 1)]
            children.append(Child("bench.harness.ingest_alone", *args, name=name, stderr=log))
    try:
        return list(await asyncio.gather(*(c.aread(timeout_s=seconds + 120) for c in children)))
    except ChildError as exc:
        raise PipelineError(f"{exc} (see {pipe.logs}/ingest-shard-*.log)") from None
    finally:
        for child in children:
            await child.aclose()


def scale_out_figures(shards: list[dict[str, Any]], figures: dict[str, Any]) -> dict[str, Any]:
    """The shards' rates, their sum, and the sum over the one-process ingest of the run."""
    per_shard = [
        {
            "shard": s["shard"],
            "symbols": s["symbols"],
            "fix_msgs_per_s": round(_per(s["messages"], s["seconds"]), 1),
            "entries_per_s": round(_per(s["entries"], s["seconds"]), 1),
            "cpu_per_wall_s": round(_per(s["cpu_s"], s["seconds"]), 3),
            "producer_dropped": s["dropped"],
        }
        for s in shards
    ]
    total = sum(s["entries_per_s"] for s in per_shard)
    return {
        "processes": len(per_shard),
        "shards": per_shard,
        "entries_per_s": round(total, 1),
        "vs_one_process": round(_per(total, figures["quote_updates_per_s"]), 3),
    }
